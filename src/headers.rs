//! Distributed trace headers, as the Opik SDKs send them (`opik_trace_id`,
//! `opik_parent_span_id`; the Python SDK's `opik_context.get_distributed_trace_headers`):
//! parse, validate, inject. Pure functions, no I/O.
//!
//! Every adapter of the crate (server layer, client middleware, scope helper, OTel bridge)
//! reads and writes the ids through this module, so the rules live in one place:
//!
//! - `opik_trace_id` (required) and `opik_parent_span_id` (optional), names matched
//!   case-insensitively, values trimmed, each a canonical UUIDv7 dated no more than 12 h
//!   ahead of now (Opik's backend refuses a span that references an id further ahead; see
//!   [`crate::id::parse_remote`]), of any age in the past;
//! - a missing, blank or invalid trace id means *no remote parent* (a fresh trace), with a
//!   warning when something invalid was sent; a blank or invalid parent span id is dropped
//!   while a valid trace id is kept; a parent span id without a trace id is ignored;
//! - when neither is present, go-opik's `X-Opik-Trace-ID` / `X-Opik-Parent-Span-ID` are read
//!   with the same rules (the Go SDK's names; never sent by this crate);
//! - when none of those is present, the W3C `baggage` header is read instead,
//!   under the keys `opik.trace_id` and `opik.span_id` (`opik.parent_span_id` is accepted too),
//!   for services behind proxies that drop header names with underscores.

use http::{HeaderMap, HeaderName, HeaderValue};
use uuid::Uuid;

use crate::id::{RemoteIdError, parse_remote};
use crate::warn::RateLimit;

/// Header carrying the Opik trace id.
///
/// ```
/// assert_eq!(tower_opik::headers::TRACE_ID_HEADER, "opik_trace_id");
/// ```
pub const TRACE_ID_HEADER: &str = "opik_trace_id";
/// Header carrying the caller's current span id, the receiver's parent.
///
/// ```
/// assert_eq!(tower_opik::headers::PARENT_SPAN_ID_HEADER, "opik_parent_span_id");
/// ```
pub const PARENT_SPAN_ID_HEADER: &str = "opik_parent_span_id";

/// The trace id header of go-opik, the Go SDK for Opik (`X-Opik-Trace-ID`; header names are
/// case-insensitive): accepted on receipt when `opik_trace_id` is absent, never sent.
///
/// ```
/// assert_eq!(tower_opik::headers::GO_TRACE_ID_HEADER, "x-opik-trace-id");
/// ```
pub const GO_TRACE_ID_HEADER: &str = "x-opik-trace-id";
/// go-opik's parent span id header (`X-Opik-Parent-Span-ID`): accepted with
/// [`GO_TRACE_ID_HEADER`], never sent.
///
/// ```
/// assert_eq!(tower_opik::headers::GO_PARENT_SPAN_ID_HEADER, "x-opik-parent-span-id");
/// ```
pub const GO_PARENT_SPAN_ID_HEADER: &str = "x-opik-parent-span-id";

/// The header names as `HeaderName`s: a lookup by `&str` parses and validates the name on
/// every request.
const TRACE_ID_NAME: HeaderName = HeaderName::from_static(TRACE_ID_HEADER);
const PARENT_SPAN_ID_NAME: HeaderName = HeaderName::from_static(PARENT_SPAN_ID_HEADER);
const GO_TRACE_ID_NAME: HeaderName = HeaderName::from_static(GO_TRACE_ID_HEADER);
const GO_PARENT_SPAN_ID_NAME: HeaderName = HeaderName::from_static(GO_PARENT_SPAN_ID_HEADER);
/// W3C baggage key for the trace id.
///
/// ```
/// assert_eq!(tower_opik::headers::BAGGAGE_TRACE_ID, "opik.trace_id");
/// ```
pub const BAGGAGE_TRACE_ID: &str = "opik.trace_id";
/// W3C baggage key for the sender's span id (the receiver's parent).
///
/// ```
/// assert_eq!(tower_opik::headers::BAGGAGE_SPAN_ID, "opik.span_id");
/// ```
pub const BAGGAGE_SPAN_ID: &str = "opik.span_id";
/// Alternative baggage key for the parent span id, accepted on receipt, never sent.
///
/// ```
/// assert_eq!(tower_opik::headers::BAGGAGE_PARENT_SPAN_ID, "opik.parent_span_id");
/// ```
pub const BAGGAGE_PARENT_SPAN_ID: &str = "opik.parent_span_id";

/// The longest `opik_*` header value read (a UUID is 36 characters; padding is allowed).
///
/// ```
/// assert_eq!(tower_opik::headers::MAX_ID_VALUE_LEN, 256);
/// ```
pub const MAX_ID_VALUE_LEN: usize = 256;
/// The longest `baggage` header read, in bytes (the W3C limit).
///
/// ```
/// assert_eq!(tower_opik::headers::MAX_BAGGAGE_LEN, 8192);
/// ```
pub const MAX_BAGGAGE_LEN: usize = 8192;

/// The remote parent of a request: the Opik trace it belongs to and, usually, the caller's
/// span.
///
/// ```
/// use tower_opik::DistributedHeaders;
/// let trace = tower_opik::id::new_id();
/// let parent = tower_opik::id::new_id();
/// let d = DistributedHeaders::new(trace, Some(parent));
/// let mut headers = http::HeaderMap::new();
/// d.inject(&mut headers);
/// assert_eq!(headers["opik_trace_id"], trace.to_string().as_str());
/// assert_eq!(DistributedHeaders::extract(&headers).headers, Some(d));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DistributedHeaders {
    trace_id: Uuid,
    parent_span_id: Option<Uuid>,
}

/// Where valid distributed headers were found ([`Extracted::source`]): worth a metric or a
/// log field, to see which callers still go through a proxy that drops `opik_*` headers.
///
/// ```
/// use tower_opik::{DistributedHeaders, headers::HeaderSource};
/// let (t, s) = (tower_opik::id::new_id(), tower_opik::id::new_id());
/// let mut h = http::HeaderMap::new();
/// // A proxy dropped the underscore names; the W3C baggage got through.
/// h.insert("baggage", format!("opik.trace_id={t},opik.span_id={s}").parse().unwrap());
/// assert_eq!(DistributedHeaders::extract(&h).source, Some(HeaderSource::Baggage));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HeaderSource {
    /// The `opik_trace_id` / `opik_parent_span_id` headers.
    OpikHeaders,
    /// go-opik's `X-Opik-Trace-ID` / `X-Opik-Parent-Span-ID` headers.
    GoOpikHeaders,
    /// The W3C `baggage` header.
    Baggage,
}

/// Something wrong with incoming distributed headers. Never an error for the caller: the
/// request goes on, as a fresh trace or without its parent, and the problem is logged.
///
/// ```
/// use tower_opik::{DistributedHeaders, headers::HeaderProblem};
/// let mut h = http::HeaderMap::new();
/// h.insert("opik_trace_id", "garbage".parse().unwrap());
/// let got = DistributedHeaders::extract(&h);
/// assert_eq!(got.headers, None);
/// assert_eq!(got.problems, vec![HeaderProblem::InvalidTraceId]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HeaderProblem {
    /// The trace id is blank.
    BlankTraceId,
    /// The trace id is not a UUIDv7 (or not text, or too long).
    InvalidTraceId,
    /// The parent span id is blank; it was dropped.
    BlankParentSpanId,
    /// The parent span id is not a UUIDv7 (or not text, or too long); it was dropped.
    InvalidParentSpanId,
    /// A parent span id came without a trace id; it was ignored.
    ParentWithoutTrace,
    /// The baggage header is too long or not text; it was ignored.
    InvalidBaggage,
    /// The trace id is a UUIDv7 dated more than
    /// [`MAX_FUTURE_SKEW`](crate::id::MAX_FUTURE_SKEW) ahead: Opik would refuse every span
    /// referencing it (and the batch around it), so a new trace is started.
    TraceIdInFuture,
    /// The parent span id is dated more than
    /// [`MAX_FUTURE_SKEW`](crate::id::MAX_FUTURE_SKEW) ahead; it was dropped.
    ParentSpanIdInFuture,
}

impl std::fmt::Display for HeaderProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::BlankTraceId => "blank opik trace id: starting a new trace",
            Self::InvalidTraceId => "opik trace id is not a UUIDv7: starting a new trace",
            Self::BlankParentSpanId => "blank opik parent span id: dropped",
            Self::InvalidParentSpanId => "opik parent span id is not a UUIDv7: dropped",
            Self::ParentWithoutTrace => "opik parent span id without a trace id: ignored",
            Self::InvalidBaggage => "baggage header too long or not text: ignored",
            Self::TraceIdInFuture => {
                "opik trace id is dated more than 12 h ahead: starting a new trace"
            }
            Self::ParentSpanIdInFuture => {
                "opik parent span id is dated more than 12 h ahead: dropped"
            }
        })
    }
}

/// What [`DistributedHeaders::extract`] found: the remote parent, if any, where it came from,
/// and the problems to warn about.
///
/// `headers` and `source` are `None` together (no remote parent: start a new trace);
/// `problems` is empty when nothing was wrong, including when no header was sent at all.
///
/// ```
/// use tower_opik::{DistributedHeaders, headers::HeaderProblem};
/// let t = tower_opik::id::new_id();
/// let mut h = http::HeaderMap::new();
/// h.insert("opik_trace_id", t.to_string().parse().unwrap());
/// h.insert("opik_parent_span_id", "not-an-id".parse().unwrap());
/// let got = DistributedHeaders::extract(&h);
/// // The trace is joined; the bad parent is dropped and reported.
/// assert_eq!(got.headers, Some(DistributedHeaders::new(t, None)));
/// assert_eq!(got.problems, [HeaderProblem::InvalidParentSpanId]);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Extracted {
    /// The remote parent, when a valid trace id was found.
    pub headers: Option<DistributedHeaders>,
    /// Where it was found.
    pub source: Option<HeaderSource>,
    /// What was wrong (empty when nothing was).
    pub problems: Vec<HeaderProblem>,
}

impl Extracted {
    /// Logs each problem as a warning through `tracing` (target `tower_opik`), rate-limited
    /// over the whole process so that a misbehaving caller cannot flood the logs; the line
    /// counts the warnings suppressed since the last one. Nothing is logged without
    /// problems. The server layer calls it; call it yourself after
    /// [`DistributedHeaders::extract`] in your own adapter.
    ///
    /// ```
    /// # let message_headers = http::HeaderMap::new();
    /// let got = tower_opik::DistributedHeaders::extract(&message_headers);
    /// got.warn();
    /// let parent = got.headers; // None: the consumer starts a new trace
    /// # assert!(parent.is_none());
    /// ```
    pub fn warn(&self) {
        static LIMIT: RateLimit = RateLimit::new();
        for problem in &self.problems {
            if let Some(suppressed) = LIMIT.check() {
                tracing::warn!(target: "tower_opik", suppressed, "{problem}");
            }
        }
    }
}

/// One raw value as read from a carrier.
enum Raw<'a> {
    Absent,
    Text(&'a str),
    /// Present but unusable (not text, or longer than the limit).
    Unusable,
}

impl DistributedHeaders {
    /// A remote parent from its two ids.
    ///
    /// ```
    /// let t = tower_opik::id::new_id();
    /// assert_eq!(tower_opik::DistributedHeaders::new(t, None).trace_id(), t);
    /// ```
    pub fn new(trace_id: Uuid, parent_span_id: Option<Uuid>) -> Self {
        Self {
            trace_id,
            parent_span_id,
        }
    }

    /// The trace id (from `opik_trace_id`): a UUIDv7, checked on extraction to be dated no
    /// more than 12 h ahead.
    ///
    /// ```
    /// use tower_opik::DistributedHeaders;
    /// let mut h = http::HeaderMap::new();
    /// h.insert("opik_trace_id", "0190a3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d".parse().unwrap());
    /// let parent = DistributedHeaders::extract(&h).headers.unwrap();
    /// assert_eq!(parent.trace_id().to_string(), "0190a3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d");
    /// assert_eq!(parent.parent_span_id(), None); // the caller sent no span id
    /// ```
    pub fn trace_id(&self) -> Uuid {
        self.trace_id
    }

    /// The parent span id.
    ///
    /// ```
    /// let (t, p) = (tower_opik::id::new_id(), tower_opik::id::new_id());
    /// assert_eq!(tower_opik::DistributedHeaders::new(t, Some(p)).parent_span_id(), Some(p));
    /// ```
    pub fn parent_span_id(&self) -> Option<Uuid> {
        self.parent_span_id
    }

    /// Reads the remote parent from HTTP headers (or gRPC metadata converted to a
    /// `HeaderMap`): the `opik_*` headers; when neither is present, go-opik's
    /// `X-Opik-Trace-ID` / `X-Opik-Parent-Span-ID`; when none is, the `baggage` header.
    ///
    /// ```
    /// use tower_opik::{DistributedHeaders, headers::HeaderSource};
    /// let t = tower_opik::id::new_id();
    /// let mut h = http::HeaderMap::new();
    /// h.insert("OPIK_TRACE_ID", format!("  {t} ").parse().unwrap());
    /// let got = DistributedHeaders::extract(&h);
    /// assert_eq!(got.headers.unwrap().trace_id(), t);
    /// assert_eq!(got.source, Some(HeaderSource::OpikHeaders));
    /// ```
    pub fn extract(headers: &HeaderMap) -> Extracted {
        let read = |name: &HeaderName| -> Raw<'_> {
            match headers.get(name) {
                None => Raw::Absent,
                Some(v) => match v.to_str() {
                    Ok(s) if s.len() <= MAX_ID_VALUE_LEN => Raw::Text(s),
                    _ => Raw::Unusable,
                },
            }
        };
        match Self::validate_pair([read(&TRACE_ID_NAME), read(&PARENT_SPAN_ID_NAME)], || {
            [read(&GO_TRACE_ID_NAME), read(&GO_PARENT_SPAN_ID_NAME)]
        }) {
            Some(got) => got,
            None => Self::extract_baggage(headers),
        }
    }

    /// Reads the remote parent from any key-value carrier (a message's attributes, a
    /// websocket handshake, a map): `get` answers the value of `opik_trace_id` and
    /// `opik_parent_span_id` (and, when both are absent, of go-opik's `x-opik-trace-id` and
    /// `x-opik-parent-span-id`, asked in lowercase). The same rules as
    /// [`extract`](Self::extract), without baggage.
    ///
    /// ```
    /// use std::collections::HashMap;
    /// let t = tower_opik::id::new_id().to_string();
    /// let map = HashMap::from([("opik_trace_id", t.as_str())]);
    /// let got = tower_opik::DistributedHeaders::extract_with(|k| map.get(k).copied());
    /// assert_eq!(got.headers.unwrap().trace_id().to_string(), t);
    /// ```
    pub fn extract_with<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Extracted {
        let read = |name: &str| match get(name) {
            None => Raw::Absent,
            Some(s) if s.len() <= MAX_ID_VALUE_LEN => Raw::Text(s),
            Some(_) => Raw::Unusable,
        };
        Self::validate_pair([read(TRACE_ID_HEADER), read(PARENT_SPAN_ID_HEADER)], || {
            [read(GO_TRACE_ID_HEADER), read(GO_PARENT_SPAN_ID_HEADER)]
        })
        .unwrap_or_default()
    }

    /// The rules on the official pair of values or, when neither is present, on go-opik's
    /// (the official names win; go-opik's only stand in for them); `None` when no value of
    /// either pair is present.
    fn validate_pair<'a>(
        official: [Raw<'a>; 2],
        go_opik: impl FnOnce() -> [Raw<'a>; 2],
    ) -> Option<Extracted> {
        let absent = |pair: &[Raw<'_>; 2]| pair.iter().all(|r| matches!(r, Raw::Absent));
        let (pair, source) = if absent(&official) {
            (go_opik(), HeaderSource::GoOpikHeaders)
        } else {
            (official, HeaderSource::OpikHeaders)
        };
        if absent(&pair) {
            return None;
        }
        let [trace, parent] = pair;
        let mut got = Self::validate(trace, parent);
        if got.headers.is_some() {
            got.source = Some(source);
        }
        Some(got)
    }

    /// The rules on a raw pair of values: both ids UUID v7 (Opik's `IdGenerator`), not
    /// dated far ahead (see [`crate::id::check_remote`]), a parent only with a trace.
    fn validate(trace: Raw<'_>, parent: Raw<'_>) -> Extracted {
        let mut problems = Vec::new();
        let trace_id = match trace {
            Raw::Absent => None,
            Raw::Unusable => {
                problems.push(HeaderProblem::InvalidTraceId);
                None
            }
            Raw::Text(s) if s.trim().is_empty() => {
                problems.push(HeaderProblem::BlankTraceId);
                None
            }
            Raw::Text(s) => match parse_remote(s) {
                Ok(id) => Some(id),
                Err(RemoteIdError::InFuture) => {
                    problems.push(HeaderProblem::TraceIdInFuture);
                    None
                }
                Err(_) => {
                    problems.push(HeaderProblem::InvalidTraceId);
                    None
                }
            },
        };
        let Some(trace_id) = trace_id else {
            // Without a usable trace id the parent means nothing. Only warn about it when the
            // trace id was missing altogether (otherwise the trace-id problem says enough).
            if problems.is_empty() && !matches!(parent, Raw::Absent) {
                problems.push(HeaderProblem::ParentWithoutTrace);
            }
            return Extracted {
                headers: None,
                source: None,
                problems,
            };
        };
        let parent_span_id = match parent {
            Raw::Absent => None,
            Raw::Unusable => {
                problems.push(HeaderProblem::InvalidParentSpanId);
                None
            }
            Raw::Text(s) if s.trim().is_empty() => {
                problems.push(HeaderProblem::BlankParentSpanId);
                None
            }
            Raw::Text(s) => match parse_remote(s) {
                Ok(id) => Some(id),
                Err(RemoteIdError::InFuture) => {
                    problems.push(HeaderProblem::ParentSpanIdInFuture);
                    None
                }
                Err(_) => {
                    problems.push(HeaderProblem::InvalidParentSpanId);
                    None
                }
            },
        };
        Extracted {
            headers: Some(Self {
                trace_id,
                parent_span_id,
            }),
            source: None,
            problems,
        }
    }

    /// Reads the remote parent from the W3C `baggage` header(s) only.
    ///
    /// ```
    /// use tower_opik::{DistributedHeaders, headers::HeaderSource};
    /// let (t, s) = (tower_opik::id::new_id(), tower_opik::id::new_id());
    /// let mut h = http::HeaderMap::new();
    /// h.insert("baggage", format!("user=42, opik.trace_id={t}, opik.span_id={s};p=1").parse().unwrap());
    /// let got = DistributedHeaders::extract_baggage(&h);
    /// assert_eq!(got.headers, Some(DistributedHeaders::new(t, Some(s))));
    /// assert_eq!(got.source, Some(HeaderSource::Baggage));
    /// ```
    pub fn extract_baggage(headers: &HeaderMap) -> Extracted {
        let mut values = headers
            .get_all(http::header::HeaderName::from_static("baggage"))
            .iter();
        let Some(first) = values.next() else {
            return Extracted::default();
        };
        let mut trace: Option<String> = None;
        let mut span: Option<String> = None;
        let mut parent: Option<String> = None;
        let mut total = 0usize;
        for value in std::iter::once(first).chain(values) {
            total += value.len();
            let Ok(text) = value.to_str() else {
                return bad_baggage();
            };
            if total > MAX_BAGGAGE_LEN {
                return bad_baggage();
            }
            for member in text.split(',') {
                // `key=value;property;...`: properties are ignored.
                let kv = member.split(';').next().unwrap_or_default();
                let Some((key, value)) = kv.split_once('=') else {
                    continue;
                };
                let slot = match key.trim() {
                    BAGGAGE_TRACE_ID => &mut trace,
                    BAGGAGE_SPAN_ID => &mut span,
                    BAGGAGE_PARENT_SPAN_ID => &mut parent,
                    _ => continue,
                };
                // The first valid value of a key wins; an invalid one only until a valid
                // one comes.
                let decoded = percent_decode(value.trim());
                let valid = |v: &str| crate::id::parse_remote(v).is_ok();
                if slot
                    .as_deref()
                    .is_none_or(|held| !valid(held) && valid(&decoded))
                {
                    *slot = Some(decoded);
                }
            }
        }
        // `opik.span_id` (what we send) before `opik.parent_span_id`, unless only the
        // latter is valid.
        let valid = |v: &Option<String>| {
            v.as_deref()
                .is_some_and(|v| crate::id::parse_remote(v).is_ok())
        };
        let parent = if span.is_some() && (valid(&span) || !valid(&parent)) {
            &span
        } else {
            &parent
        };
        let mut got = Self::validate(owned_raw(&trace), owned_raw(parent));
        if got.headers.is_some() {
            got.source = Some(HeaderSource::Baggage);
        }
        got
    }

    /// Writes `opik_trace_id` and, when known, `opik_parent_span_id` into `headers`,
    /// replacing any earlier values.
    ///
    /// ```
    /// let (t, p) = (tower_opik::id::new_id(), tower_opik::id::new_id());
    /// let mut h = http::HeaderMap::new();
    /// tower_opik::DistributedHeaders::new(t, Some(p)).inject(&mut h);
    /// assert_eq!(h["opik_parent_span_id"], p.to_string().as_str());
    /// ```
    pub fn inject(&self, headers: &mut HeaderMap) {
        headers.insert(TRACE_ID_NAME, uuid_value(self.trace_id));
        match self.parent_span_id {
            Some(p) => {
                headers.insert(PARENT_SPAN_ID_NAME, uuid_value(p));
            }
            None => {
                headers.remove(&PARENT_SPAN_ID_NAME);
            }
        }
    }

    /// The ids as `(name, value)` pairs, for transports that are not HTTP headers.
    ///
    /// ```
    /// let t = tower_opik::id::new_id();
    /// let pairs = tower_opik::DistributedHeaders::new(t, None).to_pairs();
    /// assert_eq!(pairs, vec![("opik_trace_id", t.to_string())]);
    /// ```
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![(TRACE_ID_HEADER, self.trace_id.to_string())];
        if let Some(p) = self.parent_span_id {
            pairs.push((PARENT_SPAN_ID_HEADER, p.to_string()));
        }
        pairs
    }

    /// The ids as W3C baggage members (`opik.trace_id=...,opik.span_id=...`), to append to
    /// or send as a `baggage` header.
    ///
    /// ```
    /// let (t, p) = (tower_opik::id::new_id(), tower_opik::id::new_id());
    /// let b = tower_opik::DistributedHeaders::new(t, Some(p)).to_baggage();
    /// assert_eq!(b, format!("opik.trace_id={t},opik.span_id={p}"));
    /// ```
    pub fn to_baggage(&self) -> String {
        match self.parent_span_id {
            Some(p) => format!("{BAGGAGE_TRACE_ID}={},{BAGGAGE_SPAN_ID}={p}", self.trace_id),
            None => format!("{BAGGAGE_TRACE_ID}={}", self.trace_id),
        }
    }
}

fn owned_raw(value: &Option<String>) -> Raw<'_> {
    match value {
        None => Raw::Absent,
        Some(s) if s.len() > MAX_ID_VALUE_LEN => Raw::Unusable,
        Some(s) => Raw::Text(s),
    }
}

fn bad_baggage() -> Extracted {
    Extracted {
        headers: None,
        source: None,
        problems: vec![HeaderProblem::InvalidBaggage],
    }
}

pub(crate) fn uuid_value(id: Uuid) -> HeaderValue {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = id.hyphenated().encode_lower(&mut buf);
    // A hyphenated UUID is always a valid header value; fall back to an empty one rather
    // than panic should that ever change.
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Percent-decodes a baggage value (or a `grpc-message`): an invalid escape is kept as it
/// is, invalid UTF-8 becomes U+FFFD (W3C Baggage, HTTP_HEADER_FORMAT.md §value: MUST), and
/// `+` stays `+`, a literal there and in gRPC's PROTOCOL-HTTP2.md (OTel Python's propagator
/// reads it as a space with `unquote_plus`; no Opik id holds either).
pub(crate) fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
#[path = "headers_tests.rs"]
mod tests;
