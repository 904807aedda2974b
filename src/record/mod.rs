//! The wire records: Opik's `TraceWrite` and `SpanWrite` (the `Trace_Write` / `Span_Write`
//! schemas of Opik's REST API), and nothing else.
//!
//! Absent fields are left out of the JSON, never sent as `null`; times are RFC 3339 with
//! microseconds and `Z`; `input`, `output` and `metadata` are always JSON objects, held as
//! JSON text from the moment they are set ([`Payload`], [`Metadata`]).

use std::borrow::Cow;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::time::Timestamp;

pub(crate) mod encode;
mod error_info;
mod payload;
mod score;
mod usage;

pub use error_info::ErrorInfo;
pub use payload::{Metadata, Payload};
pub use score::{FeedbackScore, ScoreRecord, ScoreTarget};
pub use usage::Usage;

/// A JSON object, the shape Opik wants for `input`, `output` and `metadata`.
///
/// ```
/// let mut input = tower_opik::record::JsonObject::new();
/// input.insert("prompt".into(), "hi".into());
/// ```
pub type JsonObject = Map<String, Value>;

/// The type of a span, as Opik knows it. Anything else is a 400 from the backend.
///
/// ```
/// use tower_opik::SpanType;
/// assert_eq!(serde_json::to_string(&SpanType::Llm).unwrap(), "\"llm\"");
/// assert_eq!(SpanType::default(), SpanType::General);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum SpanType {
    /// Any other work (the default; an HTTP request span).
    #[default]
    General,
    /// A call to a language model.
    Llm,
    /// A tool call.
    Tool,
    /// A guardrail check.
    Guardrail,
}

/// Where a record comes from. This crate always sends `sdk`.
///
/// ```
/// assert_eq!(serde_json::to_string(&tower_opik::record::Source::Sdk).unwrap(), "\"sdk\"");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Source {
    /// Written by an SDK (this crate).
    #[default]
    Sdk,
}

/// Opik's `SpanWrite`: one span, as sent to `POST v1/private/spans/batch`.
///
/// Built by [`Span`](crate::Span) when it ends, and handed to
/// [`SpanStore::record`](crate::SpanStore::record); public so that records can be built and
/// recorded by hand. Exporters receive the encoded JSON
/// ([`ExportBatch`](crate::store::ExportBatch)), not the records.
///
/// ```
/// use tower_opik::{record::SpanRecord, Timestamp};
/// let rec = SpanRecord::new(tower_opik::id::new_id(), tower_opik::id::new_id(), "step", Timestamp::now());
/// let json = serde_json::to_value(&rec).unwrap();
/// assert_eq!(json["type"], "general");
/// assert!(json.get("end_time").is_none()); // absent, not null
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct SpanRecord {
    /// The span's id (UUIDv7).
    pub id: Uuid,
    /// The project; `None` means Opik's "Default Project".
    pub project_name: Option<Arc<str>>,
    /// The trace the span belongs to.
    pub trace_id: Uuid,
    /// The parent span, `None` for a root span.
    pub parent_span_id: Option<Uuid>,
    /// The span's name.
    pub name: Cow<'static, str>,
    /// The span's type.
    pub span_type: SpanType,
    /// When it started.
    pub start_time: Timestamp,
    /// When it ended.
    pub end_time: Option<Timestamp>,
    /// Its input: a JSON object's text.
    pub input: Option<Payload>,
    /// Its output: a JSON object's text.
    pub output: Option<Payload>,
    /// Free-form metadata (empty: absent from the JSON).
    pub metadata: Metadata,
    /// The model of an LLM span.
    pub model: Option<String>,
    /// The provider of an LLM span (`openai`, `anthropic`, ...).
    pub provider: Option<String>,
    /// Tags (unique).
    pub tags: Vec<String>,
    /// Token usage.
    pub usage: Option<Usage>,
    /// The error, if the span failed.
    pub error_info: Option<ErrorInfo>,
    /// When the record was last changed; the newest wins in Opik's upsert.
    pub last_updated_at: Option<Timestamp>,
    /// Estimated cost in USD (>= 0).
    pub total_estimated_cost: Option<f64>,
    /// Time to first token, in milliseconds.
    pub ttft: Option<f64>,
    /// Always `sdk`.
    pub source: Source,
    /// The deployment environment (`production`, `staging`, ...), at most 150 characters.
    pub environment: Option<String>,
    /// Request metadata still in typed form; the export task writes it into `metadata`.
    pub(crate) request: Option<RequestMetadata>,
    /// Set on the root span of a trace this service owns: the trace record is written from
    /// this span's record at export, with these trace-only fields.
    pub(crate) trace: Option<Box<TraceFields>>,
    /// Feedback scores given to the span while it was open, sent after it.
    pub(crate) scores: Vec<FeedbackScore>,
}

impl TraceFields {
    /// The bytes its strings and payloads hold.
    fn byte_len(&self) -> usize {
        self.thread_id.as_ref().map_or(0, String::len)
            + self.name.as_ref().map_or(0, |n| n.len())
            + self.input.byte_len()
            + self.output.byte_len()
            + self.metadata.byte_len()
            + self.tags.iter().map(String::len).sum::<usize>()
            + self.error_info.as_ref().map_or(0, ErrorInfo::byte_len)
            + self
                .scores
                .iter()
                .map(FeedbackScore::byte_len)
                .sum::<usize>()
    }
}

/// What a trace record has that its root span's record has not: its thread, and the
/// trace-level updates made from any span of the trace (written over the root's fields at
/// export).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct TraceFields {
    pub(crate) thread_id: Option<String>,
    pub(crate) name: Option<Cow<'static, str>>,
    /// Merged over the root span's input, key by key.
    pub(crate) input: Metadata,
    /// Merged over the root span's output.
    pub(crate) output: Metadata,
    /// Merged over the root span's metadata.
    pub(crate) metadata: Metadata,
    /// Added to the root span's tags.
    pub(crate) tags: Vec<String>,
    pub(crate) error_info: Option<ErrorInfo>,
    /// Feedback scores given to the trace, sent after it.
    pub(crate) scores: Vec<FeedbackScore>,
}

impl SpanRecord {
    /// A span record with the required fields; everything else absent.
    ///
    /// ```
    /// use tower_opik::{record::SpanRecord, Timestamp, id::new_id};
    /// let rec = SpanRecord::new(new_id(), new_id(), "x", Timestamp::now());
    /// assert!(rec.parent_span_id.is_none());
    /// ```
    pub fn new(
        id: Uuid,
        trace_id: Uuid,
        name: impl Into<Cow<'static, str>>,
        start_time: Timestamp,
    ) -> Self {
        Self {
            id,
            project_name: None,
            trace_id,
            parent_span_id: None,
            name: name.into(),
            span_type: SpanType::General,
            start_time,
            end_time: None,
            input: None,
            output: None,
            metadata: Metadata::default(),
            model: None,
            provider: None,
            tags: Vec::new(),
            usage: None,
            error_info: None,
            last_updated_at: None,
            total_estimated_cost: None,
            ttft: None,
            source: Source::Sdk,
            environment: None,
            request: None,
            trace: None,
            scores: Vec::new(),
        }
    }

    /// The bytes its payloads hold, for the store's memory bound (the fixed part of a
    /// record is counted apart).
    pub(crate) fn payload_bytes(&self) -> usize {
        let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        self.input.as_ref().map_or(0, Payload::len)
            + self.output.as_ref().map_or(0, Payload::len)
            + self.metadata.byte_len()
            + self.name.len()
            + self.error_info.as_ref().map_or(0, ErrorInfo::byte_len)
            + self.tags.iter().map(String::len).sum::<usize>()
            + opt(&self.model)
            + opt(&self.provider)
            + opt(&self.environment)
            + self.trace.as_deref().map_or(0, TraceFields::byte_len)
            + self
                .scores
                .iter()
                .map(FeedbackScore::byte_len)
                .sum::<usize>()
    }
}

impl Serialize for SpanRecord {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = Vec::with_capacity(512);
        encode::span(self, &mut out).map_err(serde::ser::Error::custom)?;
        serialize_json(out, s)
    }
}

/// Opik's `TraceWrite`: one trace, as sent to `POST v1/private/traces/batch`.
///
/// Written only by the service that started the trace, from its root span.
///
/// ```
/// use tower_opik::{record::TraceRecord, Timestamp};
/// let rec = TraceRecord::new(tower_opik::id::new_id(), "chat", Timestamp::now());
/// let json = serde_json::to_value(&rec).unwrap();
/// assert_eq!(json["name"], "chat");
/// assert!(json.get("thread_id").is_none());
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct TraceRecord {
    /// The trace's id (UUIDv7).
    pub id: Uuid,
    /// The project; `None` means Opik's "Default Project".
    pub project_name: Option<Arc<str>>,
    /// The trace's name.
    pub name: Cow<'static, str>,
    /// When it started.
    pub start_time: Timestamp,
    /// When it ended.
    pub end_time: Option<Timestamp>,
    /// Its input: a JSON object's text.
    pub input: Option<Payload>,
    /// Its output: a JSON object's text.
    pub output: Option<Payload>,
    /// Free-form metadata (empty: absent from the JSON).
    pub metadata: Metadata,
    /// Tags (unique).
    pub tags: Vec<String>,
    /// The error, if the trace failed.
    pub error_info: Option<ErrorInfo>,
    /// When the record was last changed; the newest wins in Opik's upsert.
    pub last_updated_at: Option<Timestamp>,
    /// Time to first token, in milliseconds.
    pub ttft: Option<f64>,
    /// Groups the traces of one conversation.
    pub thread_id: Option<String>,
    /// Always `sdk`.
    pub source: Source,
    /// The deployment environment (`production`, `staging`, ...), at most 150 characters.
    pub environment: Option<String>,
    /// Request metadata still in typed form; the export task writes it into `metadata`.
    pub(crate) request: Option<RequestMetadata>,
}

impl TraceRecord {
    /// A trace record with the required fields; everything else absent.
    ///
    /// ```
    /// let rec = tower_opik::record::TraceRecord::new(tower_opik::id::new_id(), "t", tower_opik::Timestamp::now());
    /// assert!(rec.end_time.is_none());
    /// ```
    pub fn new(id: Uuid, name: impl Into<Cow<'static, str>>, start_time: Timestamp) -> Self {
        Self {
            id,
            project_name: None,
            name: name.into(),
            start_time,
            end_time: None,
            input: None,
            output: None,
            metadata: Metadata::default(),
            tags: Vec::new(),
            error_info: None,
            last_updated_at: None,
            ttft: None,
            thread_id: None,
            source: Source::Sdk,
            environment: None,
            request: None,
        }
    }
}

impl Serialize for TraceRecord {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = Vec::with_capacity(512);
        encode::trace(self, &mut out).map_err(serde::ser::Error::custom)?;
        serialize_json(out, s)
    }
}

/// Hands JSON text our encoder wrote to any serde serializer (checked once by serde_json's
/// `RawValue`: this is the public path, never the store's).
fn serialize_json<S: serde::Serializer>(json: Vec<u8>, s: S) -> Result<S::Ok, S::Error> {
    let text = String::from_utf8(json).map_err(serde::ser::Error::custom)?;
    let raw = serde_json::value::RawValue::from_string(text).map_err(serde::ser::Error::custom)?;
    raw.serialize(s)
}

/// What the server layer knows of a request, kept as typed values while the request runs
/// and written as JSON metadata by the export task: building the JSON map on the request
/// path (owned keys and values, a B-tree node) was a quarter of the layer's cost.
///
/// Keys the user set on the span win over these.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct RequestMetadata {
    pub(crate) method: Option<http::Method>,
    pub(crate) route: Option<Arc<str>>,
    pub(crate) status: Option<u16>,
    pub(crate) grpc: bool,
    pub(crate) grpc_status: Option<i32>,
    /// The record's name is `"{method} {route}"`, written at export (the placeholder until
    /// then is the method).
    pub(crate) name_from_route: bool,
}

/// The name of a request span with a matched route: `"GET /users/{id}"` (low cardinality).
pub(crate) fn route_name(method: &str, route: &str) -> String {
    let mut name = String::with_capacity(method.len() + 1 + route.len());
    name.push_str(method);
    name.push(' ');
    name.push_str(route);
    name
}

/// One finished record on its way to Opik.
///
/// ```
/// use tower_opik::record::{Record, TraceRecord};
/// let r = Record::from(TraceRecord::new(tower_opik::id::new_id(), "t", tower_opik::Timestamp::now()));
/// assert!(matches!(r, Record::Trace(_)));
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Record {
    /// A span.
    Span(Box<SpanRecord>),
    /// A trace.
    Trace(Box<TraceRecord>),
    /// A feedback score given by id.
    Score(Box<ScoreRecord>),
}

impl Record {
    /// The record's id.
    ///
    /// ```
    /// use tower_opik::record::{Record, TraceRecord};
    /// let id = tower_opik::id::new_id();
    /// assert_eq!(Record::from(TraceRecord::new(id, "t", tower_opik::Timestamp::now())).id(), id);
    /// ```
    pub fn id(&self) -> Uuid {
        match self {
            Record::Span(s) => s.id,
            Record::Trace(t) => t.id,
            Record::Score(s) => s.id,
        }
    }

    /// Its JSON, as sent inside a batch (a root span's: the span's; its trace's is
    /// [`trace_json`](Self::trace_json)).
    ///
    /// ```
    /// use tower_opik::record::{Record, TraceRecord};
    /// let r = Record::from(TraceRecord::new(tower_opik::id::new_id(), "t", tower_opik::Timestamp::now()));
    /// assert!(r.to_json().unwrap().starts_with(b"{\"id\":"));
    /// ```
    pub fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(512);
        self.write_json(&mut out)?;
        Ok(out)
    }

    /// The JSON of the trace record this record carries: a trace's own, or the trace a
    /// root span owns (written from the span's record); `None` for other spans.
    ///
    /// ```
    /// use tower_opik::record::{Record, SpanRecord};
    /// let span = SpanRecord::new(tower_opik::id::new_id(), tower_opik::id::new_id(), "x", tower_opik::Timestamp::now());
    /// assert!(Record::from(span).trace_json().is_none());
    /// ```
    pub fn trace_json(&self) -> Option<serde_json::Result<Vec<u8>>> {
        let mut out = Vec::with_capacity(512);
        match self {
            Record::Trace(t) => Some(encode::trace(t, &mut out).map(|()| out)),
            Record::Span(s) if s.trace.is_some() => {
                Some(encode::trace_of_span(s, &mut out).map(|()| out))
            }
            Record::Span(_) | Record::Score(_) => None,
        }
    }

    /// Appends its JSON to `out`.
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        match self {
            Record::Span(s) => encode::span(s, out),
            Record::Trace(t) => encode::trace(t, out),
            Record::Score(s) => score::encode(s.id, s.project_name.as_deref(), &s.score, out),
        }
    }

    /// How many records Opik receives from it: a span, its scores, and, for a root span,
    /// its trace and the trace's scores.
    pub(crate) fn count(&self) -> u64 {
        match self {
            Record::Span(s) => {
                1 + s.scores.len() as u64
                    + s.trace.as_ref().map_or(0, |t| 1 + t.scores.len() as u64)
            }
            _ => 1,
        }
    }

    /// Roughly the memory it holds, in bytes, for the store's bound: its payloads and
    /// strings, plus a fixed part.
    pub(crate) fn approx_bytes(&self) -> usize {
        const FIXED: usize = 512;
        match self {
            Record::Span(s) => FIXED + s.payload_bytes(),
            Record::Trace(t) => {
                FIXED
                    + t.input.as_ref().map_or(0, Payload::len)
                    + t.output.as_ref().map_or(0, Payload::len)
                    + t.metadata.byte_len()
                    + t.name.len()
                    + t.error_info.as_ref().map_or(0, ErrorInfo::byte_len)
                    + t.tags.iter().map(String::len).sum::<usize>()
                    + t.thread_id.as_ref().map_or(0, String::len)
            }
            Record::Score(s) => FIXED + s.score.byte_len(),
        }
    }
}

impl From<SpanRecord> for Record {
    fn from(s: SpanRecord) -> Self {
        Record::Span(Box::new(s))
    }
}

impl From<Box<SpanRecord>> for Record {
    fn from(s: Box<SpanRecord>) -> Self {
        Record::Span(s)
    }
}

impl From<ScoreRecord> for Record {
    fn from(s: ScoreRecord) -> Self {
        Record::Score(Box::new(s))
    }
}

impl From<TraceRecord> for Record {
    fn from(t: TraceRecord) -> Self {
        Record::Trace(Box::new(t))
    }
}

#[cfg(test)]
mod tests;
