//! The records' JSON, written straight into the batch body. Hand-written on the measured hot
//! path (BENCHMARKS.md §7): payloads are copied as the JSON text they already are (no
//! `Value` tree, no re-validation), strings are escaped by serde_json, and the trace record
//! of a root span is written from the span's own record, not from a copy made on the
//! request path. `SpanRecord`'s and `TraceRecord`'s `Serialize` go through here too, so
//! there is one encoder.

use std::io::Write as _;

use uuid::Uuid;

use super::{Metadata, Payload, RequestMetadata, SpanRecord, TraceFields, TraceRecord};
use crate::time::Timestamp;

/// The fields a span and a trace share, borrowed from either.
struct Common<'a> {
    id: Uuid,
    project_name: Option<&'a str>,
    name: &'a str,
    start_time: Timestamp,
    end_time: Option<Timestamp>,
    input: Option<&'a Payload>,
    output: Option<&'a Payload>,
    metadata: &'a Metadata,
    request: Option<&'a RequestMetadata>,
    tags: &'a [String],
    error_info: Option<&'a super::ErrorInfo>,
    last_updated_at: Option<Timestamp>,
    ttft: Option<f64>,
    environment: Option<&'a str>,
    /// Trace-level updates, written over the fields above (the trace of a root span).
    updates: Option<&'a TraceFields>,
}

impl<'a> Common<'a> {
    /// A span's fields, as the span (`id` its own) or as its trace (`id` the trace's, with
    /// the trace-level updates).
    fn of_span(s: &'a SpanRecord, id: Uuid, updates: Option<&'a TraceFields>) -> Self {
        Common {
            id,
            project_name: s.project_name.as_deref(),
            name: &s.name,
            start_time: s.start_time,
            end_time: s.end_time,
            input: s.input.as_ref(),
            output: s.output.as_ref(),
            metadata: &s.metadata,
            request: s.request.as_ref(),
            tags: &s.tags,
            error_info: s.error_info.as_ref(),
            last_updated_at: s.last_updated_at,
            ttft: s.ttft,
            environment: s.environment.as_deref(),
            updates,
        }
    }
}

/// Writes a span's `SpanWrite` JSON.
pub(crate) fn span(s: &SpanRecord, out: &mut Vec<u8>) -> serde_json::Result<()> {
    let c = Common::of_span(s, s.id, None);
    out.extend_from_slice(b"{\"id\":");
    uuid(out, c.id);
    if let Some(p) = c.project_name {
        key(out, "project_name");
        string(out, p)?;
    }
    key(out, "trace_id");
    uuid(out, s.trace_id);
    if let Some(parent) = s.parent_span_id {
        key(out, "parent_span_id");
        uuid(out, parent);
    }
    name(out, &c)?;
    key(out, "type");
    out.push(b'"');
    out.extend_from_slice(match s.span_type {
        super::SpanType::General => b"general".as_slice(),
        super::SpanType::Llm => b"llm",
        super::SpanType::Tool => b"tool",
        super::SpanType::Guardrail => b"guardrail",
    });
    out.push(b'"');
    let end = times_and_payloads(out, &c)?;
    if let Some(model) = &s.model {
        key(out, "model");
        string(out, model)?;
    }
    if let Some(provider) = &s.provider {
        key(out, "provider");
        string(out, provider)?;
    }
    tags(out, c.tags)?;
    if let Some(usage) = &s.usage {
        key(out, "usage");
        serde_json::to_writer(&mut *out, usage)?;
    }
    error_and_update(out, &c, end)?;
    if let Some(cost) = s.total_estimated_cost {
        key(out, "total_estimated_cost");
        serde_json::to_writer(&mut *out, &cost)?;
    }
    tail(out, &c, None)
}

/// Writes the `TraceWrite` JSON of the trace a root span owns, from the span's record.
pub(crate) fn trace_of_span(s: &SpanRecord, out: &mut Vec<u8>) -> serde_json::Result<()> {
    let c = Common::of_span(s, s.trace_id, s.trace.as_deref());
    let thread_id = s.trace.as_ref().and_then(|t| t.thread_id.as_deref());
    trace_common(out, &c, thread_id)
}

/// Writes a trace record's `TraceWrite` JSON.
pub(crate) fn trace(t: &TraceRecord, out: &mut Vec<u8>) -> serde_json::Result<()> {
    let c = Common {
        id: t.id,
        project_name: t.project_name.as_deref(),
        name: &t.name,
        start_time: t.start_time,
        end_time: t.end_time,
        input: t.input.as_ref(),
        output: t.output.as_ref(),
        metadata: &t.metadata,
        request: t.request.as_ref(),
        tags: &t.tags,
        error_info: t.error_info.as_ref(),
        last_updated_at: t.last_updated_at,
        ttft: t.ttft,
        environment: t.environment.as_deref(),
        updates: None,
    };
    trace_common(out, &c, t.thread_id.as_deref())
}

fn trace_common(
    out: &mut Vec<u8>,
    c: &Common<'_>,
    thread_id: Option<&str>,
) -> serde_json::Result<()> {
    out.extend_from_slice(b"{\"id\":");
    uuid(out, c.id);
    if let Some(p) = c.project_name {
        key(out, "project_name");
        string(out, p)?;
    }
    name(out, c)?;
    let end = times_and_payloads(out, c)?;
    match c.updates {
        Some(u) if !u.tags.is_empty() => {
            let mut all: Vec<String> = c.tags.to_vec();
            all.extend(u.tags.iter().filter(|t| !c.tags.contains(t)).cloned());
            tags(out, &all)?;
        }
        _ => tags(out, c.tags)?,
    }
    error_and_update(out, c, end)?;
    tail(out, c, thread_id)
}

fn name(out: &mut Vec<u8>, c: &Common<'_>) -> serde_json::Result<()> {
    key(out, "name");
    if let Some(name) = c.updates.and_then(|u| u.name.as_deref()) {
        return string(out, name);
    }
    match c.request {
        Some(r) if r.name_from_route => match (&r.method, &r.route) {
            (Some(method), Some(route)) => {
                serde_json::to_writer(&mut *out, &RouteName(method.as_str(), route))
            }
            _ => string(out, c.name),
        },
        _ => string(out, c.name),
    }
}

/// `"{method} {route}"`, escaped as it is written (no string built for it).
struct RouteName<'a>(&'a str, &'a str);

impl serde::Serialize for RouteName<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{} {}", self.0, self.1))
    }
}

fn times_and_payloads(out: &mut Vec<u8>, c: &Common<'_>) -> serde_json::Result<EndText> {
    key(out, "start_time");
    timestamp(out, c.start_time);
    let mut end_text = None;
    if let Some(end) = c.end_time {
        key(out, "end_time");
        match end.rfc3339() {
            Some(text) => {
                out.push(b'"');
                out.extend_from_slice(&text);
                out.push(b'"');
                end_text = Some((end, text));
            }
            None => timestamp(out, end),
        }
    }
    let no_updates = Metadata::default();
    let (input_updates, output_updates, metadata_updates) = match c.updates {
        Some(u) => (&u.input, &u.output, &u.metadata),
        None => (&no_updates, &no_updates, &no_updates),
    };
    payload(out, "input", c.input, input_updates)?;
    payload(out, "output", c.output, output_updates)?;
    metadata(out, c.metadata, c.request, metadata_updates)?;
    Ok(end_text)
}

/// `input` or `output`: the payload's text as it is, or, with trace-level updates, its
/// members merged with them (an update's key wins).
fn payload(
    out: &mut Vec<u8>,
    name: &str,
    text: Option<&Payload>,
    updates: &Metadata,
) -> serde_json::Result<()> {
    if updates.is_empty() {
        if let Some(text) = text {
            key(out, name);
            out.extend_from_slice(text.as_str().as_bytes());
        }
        return Ok(());
    }
    key(out, name);
    out.push(b'{');
    let mut first = true;
    let members = text.map(|t| super::payload::object_members(t.as_str()));
    for (k, v) in members.iter().flatten() {
        if updates.contains_key(k) {
            continue;
        }
        member(out, &mut first, k)?;
        out.extend_from_slice(v.get().as_bytes());
    }
    for (k, v) in updates.iter() {
        member(out, &mut first, k)?;
        out.extend_from_slice(v.as_bytes());
    }
    out.push(b'}');
    Ok(())
}

/// `"key":` inside an object, with the comma before all but the first.
fn member(out: &mut Vec<u8>, first: &mut bool, k: &str) -> serde_json::Result<()> {
    if !*first {
        out.push(b',');
    }
    *first = false;
    string(out, k)?;
    out.push(b':');
    Ok(())
}

/// `metadata`: the user's entries, then the request's typed ones whose keys the user did not
/// set (the user's win); trace-level updates win over both.
fn metadata(
    out: &mut Vec<u8>,
    user: &Metadata,
    request: Option<&RequestMetadata>,
    updates: &Metadata,
) -> serde_json::Result<()> {
    let has_request = request.is_some_and(|r| {
        r.method.is_some()
            || r.route.is_some()
            || r.grpc
            || r.status.is_some()
            || r.grpc_status.is_some()
    });
    if user.is_empty() && !has_request && updates.is_empty() {
        return Ok(());
    }
    key(out, "metadata");
    out.push(b'{');
    let mut first = true;
    let mut entry = |out: &mut Vec<u8>, k: &str| member(out, &mut first, k);
    for (k, v) in user.iter() {
        if updates.contains_key(k) {
            continue;
        }
        entry(out, k)?;
        out.extend_from_slice(v.as_bytes());
    }
    if let Some(r) = request {
        let free = |k: &str| !user.contains_key(k) && !updates.contains_key(k);
        if let Some(method) = &r.method
            && free("http.request.method")
        {
            entry(out, "http.request.method")?;
            string(out, method.as_str())?;
        }
        if let Some(route) = &r.route
            && free("http.route")
        {
            entry(out, "http.route")?;
            string(out, route)?;
        }
        if r.grpc && free("rpc.system") {
            entry(out, "rpc.system")?;
            out.extend_from_slice(b"\"grpc\"");
        }
        if let Some(status) = r.status
            && free("http.response.status_code")
        {
            entry(out, "http.response.status_code")?;
            let _ = write!(out, "{status}");
        }
        if let Some(code) = r.grpc_status
            && free("rpc.grpc.status_code")
        {
            entry(out, "rpc.grpc.status_code")?;
            let _ = write!(out, "{code}");
        }
    }
    for (k, v) in updates.iter() {
        entry(out, k)?;
        out.extend_from_slice(v.as_bytes());
    }
    out.push(b'}');
    Ok(())
}

fn tags(out: &mut Vec<u8>, tags: &[String]) -> serde_json::Result<()> {
    if !tags.is_empty() {
        key(out, "tags");
        serde_json::to_writer(&mut *out, tags)?;
    }
    Ok(())
}

fn error_and_update(out: &mut Vec<u8>, c: &Common<'_>, end: EndText) -> serde_json::Result<()> {
    let error = c
        .updates
        .and_then(|u| u.error_info.as_ref())
        .or(c.error_info);
    if let Some(e) = error {
        key(out, "error_info");
        serde_json::to_writer(&mut *out, e)?;
    }
    if let Some(t) = c.last_updated_at {
        key(out, "last_updated_at");
        match end {
            // Usually the end time, formatted a few fields back: copied, not formatted again.
            Some((end, text)) if end == t => {
                out.push(b'"');
                out.extend_from_slice(&text);
                out.push(b'"');
            }
            _ => timestamp(out, t),
        }
    }
    Ok(())
}

fn tail(out: &mut Vec<u8>, c: &Common<'_>, thread_id: Option<&str>) -> serde_json::Result<()> {
    if let Some(ttft) = c.ttft {
        key(out, "ttft");
        serde_json::to_writer(&mut *out, &ttft)?;
    }
    if let Some(thread) = thread_id {
        key(out, "thread_id");
        string(out, thread)?;
    }
    out.extend_from_slice(b",\"source\":\"sdk\"");
    if let Some(env) = c.environment {
        key(out, "environment");
        string(out, env)?;
    }
    out.push(b'}');
    Ok(())
}

/// `,"key":` (every field but the first `id`).
fn key(out: &mut Vec<u8>, k: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(k.as_bytes());
    out.extend_from_slice(b"\":");
}

fn string(out: &mut Vec<u8>, s: &str) -> serde_json::Result<()> {
    serde_json::to_writer(&mut *out, s)
}

fn uuid(out: &mut Vec<u8>, id: Uuid) {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    out.push(b'"');
    out.extend_from_slice(id.hyphenated().encode_lower(&mut buf).as_bytes());
    out.push(b'"');
}

/// The end time and its text, as `times_and_payloads` formatted it.
type EndText = Option<(Timestamp, [u8; 27])>;

fn timestamp(out: &mut Vec<u8>, t: Timestamp) {
    out.push(b'"');
    match t.rfc3339() {
        Some(text) => out.extend_from_slice(&text),
        None => {
            let _ = write!(out, "{t}");
        }
    }
    out.push(b'"');
}

/// One piece of JSON a record gives: a span, a trace (its own, or its root span's), or a
/// feedback score (given while the span or trace was open, or by id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    Span,
    TraceOfSpan,
    Trace,
    /// The span's score at this index.
    SpanScore(usize),
    /// The trace's score at this index (a root span's trace).
    TraceScore(usize),
    /// A score record's score.
    Score,
}

impl Part {
    /// Whether it goes to a scores endpoint (and to which: spans' or traces').
    pub(crate) fn is_score_of_span(self, record: &super::Record) -> Option<bool> {
        match (self, record) {
            (Part::SpanScore(_), _) => Some(true),
            (Part::TraceScore(_), _) => Some(false),
            (Part::Score, super::Record::Score(s)) => Some(s.target == super::ScoreTarget::Span),
            _ => None,
        }
    }
}

/// The pieces `record` gives, each with the id it is filed under, in the order they are
/// sent: a span before its scores, a trace before its scores.
pub(crate) fn parts(record: &super::Record) -> Vec<(Part, Uuid)> {
    use super::Record;
    let mut out = Vec::new();
    match record {
        Record::Span(s) => {
            out.push((Part::Span, s.id));
            out.extend((0..s.scores.len()).map(|i| (Part::SpanScore(i), s.id)));
            if let Some(t) = &s.trace {
                out.push((Part::TraceOfSpan, s.trace_id));
                out.extend((0..t.scores.len()).map(|i| (Part::TraceScore(i), s.trace_id)));
            }
        }
        Record::Trace(t) => out.push((Part::Trace, t.id)),
        Record::Score(s) => out.push((Part::Score, s.id)),
    }
    out
}

/// Writes one piece of `record` into `out`.
pub(crate) fn write_part(
    record: &super::Record,
    part: Part,
    out: &mut Vec<u8>,
) -> serde_json::Result<()> {
    use super::Record;
    let missing = || serde::ser::Error::custom("no such part");
    match (part, record) {
        (Part::Span, Record::Span(s)) => span(s, out),
        (Part::TraceOfSpan, Record::Span(s)) => trace_of_span(s, out),
        (Part::Trace, Record::Trace(t)) => trace(t, out),
        (Part::SpanScore(i), Record::Span(s)) => {
            let score = s.scores.get(i).ok_or_else(missing)?;
            super::score::encode(s.id, s.project_name.as_deref(), score, out)
        }
        (Part::TraceScore(i), Record::Span(s)) => {
            let score = s
                .trace
                .as_ref()
                .and_then(|t| t.scores.get(i))
                .ok_or_else(missing)?;
            super::score::encode(s.trace_id, s.project_name.as_deref(), score, out)
        }
        (Part::Score, Record::Score(s)) => {
            super::score::encode(s.id, s.project_name.as_deref(), &s.score, out)
        }
        _ => Err(missing()),
    }
}
