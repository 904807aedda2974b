//! The wire records: Opik's `TraceWrite` and `SpanWrite` (SPEC §3), and nothing else.
//!
//! Absent fields are left out of the JSON, never sent as `null`; times are RFC 3339 with
//! microseconds and `Z`; `input`, `output` and `metadata` are always JSON objects.

use std::borrow::Cow;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::time::Timestamp;

mod error_info;
mod usage;

pub use error_info::ErrorInfo;
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
pub enum Source {
    /// Written by an SDK (this crate).
    #[default]
    Sdk,
}

/// Opik's `SpanWrite`: one span, as sent to `POST v1/private/spans/batch`.
///
/// Built by [`Span`](crate::Span) when it ends; public so that custom
/// [`Exporter`](crate::store::Exporter)s can read it.
///
/// ```
/// use tower_opik::{record::SpanRecord, Timestamp};
/// let rec = SpanRecord::new(tower_opik::id::new_id(), tower_opik::id::new_id(), "step", Timestamp::now());
/// let json = serde_json::to_value(&rec).unwrap();
/// assert_eq!(json["type"], "general");
/// assert!(json.get("end_time").is_none()); // absent, not null
/// ```
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct SpanRecord {
    /// The span's id (UUIDv7).
    pub id: Uuid,
    /// The project; `None` means Opik's "Default Project".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_name: Option<Arc<str>>,
    /// The trace the span belongs to.
    pub trace_id: Uuid,
    /// The parent span, `None` for a root span.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<Uuid>,
    /// The span's name.
    pub name: Cow<'static, str>,
    /// The span's type.
    #[serde(rename = "type")]
    pub span_type: SpanType,
    /// When it started.
    pub start_time: Timestamp,
    /// When it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Timestamp>,
    /// Its input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<JsonObject>,
    /// Its output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<JsonObject>,
    /// Free-form metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<JsonObject>,
    /// The model of an LLM span.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The provider of an LLM span (`openai`, `anthropic`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Tags (unique).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Token usage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// The error, if the span failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_info: Option<ErrorInfo>,
    /// When the record was last changed; the newest wins in Opik's upsert.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_updated_at: Option<Timestamp>,
    /// Estimated cost in USD (>= 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_estimated_cost: Option<f64>,
    /// Time to first token, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft: Option<f64>,
    /// Always `sdk`.
    pub source: Source,
    /// The deployment environment (`production`, `staging`, ...), at most 150 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Request metadata still in typed form; the export task writes it into `metadata`.
    #[serde(skip)]
    pub(crate) request: Option<RequestMetadata>,
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
            metadata: None,
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
        }
    }

    /// Writes the typed request metadata into `name` and `metadata` (done by the export
    /// task before encoding; a no-op when there is none).
    pub(crate) fn materialize(&mut self) {
        if let Some(request) = self.request.take() {
            request.write_into(&mut self.name, &mut self.metadata);
        }
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
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct TraceRecord {
    /// The trace's id (UUIDv7).
    pub id: Uuid,
    /// The project; `None` means Opik's "Default Project".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_name: Option<Arc<str>>,
    /// The trace's name.
    pub name: Cow<'static, str>,
    /// When it started.
    pub start_time: Timestamp,
    /// When it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Timestamp>,
    /// Its input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<JsonObject>,
    /// Its output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<JsonObject>,
    /// Free-form metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<JsonObject>,
    /// Tags (unique).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The error, if the trace failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_info: Option<ErrorInfo>,
    /// When the record was last changed; the newest wins in Opik's upsert.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_updated_at: Option<Timestamp>,
    /// Time to first token, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft: Option<f64>,
    /// Groups the traces of one conversation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    /// Always `sdk`.
    pub source: Source,
    /// The deployment environment (`production`, `staging`, ...), at most 150 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Request metadata still in typed form; the export task writes it into `metadata`.
    #[serde(skip)]
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
            metadata: None,
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

    /// See [`SpanRecord::materialize`].
    pub(crate) fn materialize(&mut self) {
        if let Some(request) = self.request.take() {
            request.write_into(&mut self.name, &mut self.metadata);
        }
    }
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

impl RequestMetadata {
    fn write_into(self, name: &mut Cow<'static, str>, metadata: &mut Option<JsonObject>) {
        if self.name_from_route
            && let (Some(method), Some(route)) = (&self.method, &self.route)
        {
            *name = Cow::Owned(route_name(method.as_str(), route));
        }
        let map = metadata.get_or_insert_with(JsonObject::new);
        let mut put = |key: &str, value: Value| {
            if !map.contains_key(key) {
                map.insert(key.to_owned(), value);
            }
        };
        if let Some(method) = self.method {
            put("http.method", method.as_str().into());
        }
        if let Some(route) = self.route {
            put("http.route", route.as_ref().into());
        }
        if self.grpc {
            put("rpc.system", "grpc".into());
        }
        if let Some(status) = self.status {
            put("http.status_code", status.into());
        }
        if let Some(code) = self.grpc_status {
            put("grpc.status_code", code.into());
        }
    }
}

/// One finished record on its way to Opik.
///
/// ```
/// use tower_opik::record::{Record, TraceRecord};
/// let r = Record::from(TraceRecord::new(tower_opik::id::new_id(), "t", tower_opik::Timestamp::now()));
/// assert!(matches!(r, Record::Trace(_)));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// A span.
    Span(Box<SpanRecord>),
    /// A trace.
    Trace(Box<TraceRecord>),
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
        }
    }

    /// Its JSON, as sent inside a batch.
    ///
    /// ```
    /// use tower_opik::record::{Record, TraceRecord};
    /// let r = Record::from(TraceRecord::new(tower_opik::id::new_id(), "t", tower_opik::Timestamp::now()));
    /// assert!(r.to_json().unwrap().starts_with(b"{\"id\":"));
    /// ```
    pub fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(512);
        if self.has_typed_metadata() {
            // Only a record taken before the export task saw it: materialize a copy.
            let mut copy = self.clone();
            copy.materialize();
            copy.write_json(&mut out)?;
        } else {
            self.write_json(&mut out)?;
        }
        Ok(out)
    }

    fn has_typed_metadata(&self) -> bool {
        match self {
            Record::Span(s) => s.request.is_some(),
            Record::Trace(t) => t.request.is_some(),
        }
    }

    /// Appends its JSON to `out` (typed request metadata must have been materialized).
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        match self {
            Record::Span(s) => serde_json::to_writer(out, s),
            Record::Trace(t) => serde_json::to_writer(out, t),
        }
    }

    /// Writes typed request metadata into the record's JSON fields (see
    /// [`SpanRecord::materialize`]); the export task calls it before encoding.
    pub(crate) fn materialize(&mut self) {
        match self {
            Record::Span(s) => s.materialize(),
            Record::Trace(t) => t.materialize(),
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

impl From<TraceRecord> for Record {
    fn from(t: TraceRecord) -> Self {
        Record::Trace(Box::new(t))
    }
}

/// Makes any JSON value an object, as the Python SDK does: an object stays as it is, any
/// other value `v` becomes `{key: v}`; `null` becomes `None`.
///
/// ```
/// use serde_json::json;
/// use tower_opik::record::into_object;
/// assert_eq!(into_object(json!({"a": 1}), "input"), Some(json!({"a": 1}).as_object().unwrap().clone()));
/// assert_eq!(into_object(json!("hi"), "input"), Some(json!({"input": "hi"}).as_object().unwrap().clone()));
/// assert_eq!(into_object(json!(null), "input"), None);
/// ```
pub fn into_object(value: Value, key: &str) -> Option<JsonObject> {
    match value {
        Value::Null => None,
        Value::Object(map) => Some(map),
        other => {
            let mut map = JsonObject::new();
            map.insert(key.to_owned(), other);
            Some(map)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_json_writes_typed_request_metadata_like_the_export_task() {
        let mut span = SpanRecord::new(
            crate::id::new_id(),
            crate::id::new_id(),
            "GET",
            Timestamp::now(),
        );
        span.metadata =
            Some(into_object(serde_json::json!({"http.status_code": "mine"}), "m").unwrap());
        span.request = Some(RequestMetadata {
            method: Some(http::Method::GET),
            route: Some(Arc::from("/a/{b}")),
            status: Some(503),
            grpc: true,
            grpc_status: Some(14),
            name_from_route: true,
        });
        let record = Record::from(span);
        let json: Value = serde_json::from_slice(&record.to_json().unwrap()).unwrap();
        assert_eq!(json["name"], "GET /a/{b}");
        assert_eq!(
            json["metadata"],
            serde_json::json!({
                "http.method": "GET",
                "http.route": "/a/{b}",
                "http.status_code": "mine",
                "rpc.system": "grpc",
                "grpc.status_code": 14,
            })
        );
        let mut materialized = record.clone();
        materialized.materialize();
        assert_eq!(materialized.to_json().unwrap(), record.to_json().unwrap());
        assert!(matches!(&materialized, Record::Span(s) if s.request.is_none()));
    }
}
