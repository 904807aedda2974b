//! Opik's rules for batch bodies, as pure functions on JSON: what the real backend refuses
//! (its id and timestamp rules and the `Span_Write` / `Trace_Write` schemas of Opik's
//! OpenAPI spec).
//!
//! Written against Opik's rules, not against the crate's own record structs, so that a field
//! misnamed in `record` fails here. Stricter than the backend on one point, on purpose:
//! unknown fields are refused (the backend would silently drop them).

use std::collections::HashSet;

use http::StatusCode;
use serde_json::{Map, Value};

/// Which batch endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Span,
    Trace,
    /// `PUT v1/private/spans/feedback-scores`.
    SpanScore,
    /// `PUT v1/private/traces/feedback-scores`.
    TraceScore,
}

impl Kind {
    pub(crate) fn key(self) -> &'static str {
        match self {
            Kind::Span => "spans",
            Kind::Trace => "traces",
            Kind::SpanScore | Kind::TraceScore => "scores",
        }
    }
}

/// A refusal: the status the backend would answer, and why.
pub(crate) type Refusal = (StatusCode, String);

const SPAN_FIELDS: &[&str] = &[
    "id",
    "project_name",
    "trace_id",
    "parent_span_id",
    "name",
    "type",
    "start_time",
    "end_time",
    "input",
    "output",
    "metadata",
    "model",
    "provider",
    "tags",
    "usage",
    "error_info",
    "last_updated_at",
    "total_estimated_cost",
    "total_estimated_cost_version",
    "ttft",
    "source",
    "environment",
];
const TRACE_FIELDS: &[&str] = &[
    "id",
    "project_name",
    "name",
    "start_time",
    "end_time",
    "input",
    "output",
    "metadata",
    "tags",
    "error_info",
    "last_updated_at",
    "ttft",
    "thread_id",
    "source",
    "environment",
];
const SPAN_TYPES: &[&str] = &["general", "tool", "llm", "guardrail"];
const SOURCES: &[&str] = &[
    "sdk",
    "experiment",
    "playground",
    "optimization",
    "evaluator",
];

/// The largest batch Opik accepts.
pub(crate) const MAX_ITEMS: usize = 1000;

/// Checks a whole batch body; on success returns its items. One bad item refuses the whole
/// batch, as the backend does. `nulls` counts the optional fields sent as `null`.
pub(crate) fn batch(
    kind: Kind,
    body: &Value,
    now_ms: u64,
    nulls: &mut usize,
) -> Result<Vec<Map<String, Value>>, Refusal> {
    let unprocessable = |m: String| (StatusCode::UNPROCESSABLE_ENTITY, m);
    let Some(object) = body.as_object() else {
        return Err((
            StatusCode::BAD_REQUEST,
            "the body must be a JSON object".into(),
        ));
    };
    if let Some(other) = object.keys().find(|k| *k != kind.key()) {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("unknown field `{other}` in the batch"),
        ));
    }
    let Some(items) = object.get(kind.key()).filter(|v| !v.is_null()) else {
        return Err(unprocessable(format!("{} must not be null", kind.key())));
    };
    let Some(items) = items.as_array() else {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("{} must be an array", kind.key()),
        ));
    };
    if items.is_empty() || items.len() > MAX_ITEMS {
        return Err(unprocessable(format!(
            "{} size must be between 1 and {MAX_ITEMS}, got {}",
            kind.key(),
            items.len()
        )));
    }
    let mut out = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let record = self::item(kind, item, now_ms, nulls).map_err(|(status, why)| {
            let id = item.get("id").and_then(Value::as_str).unwrap_or("?");
            (status, format!("{}[{index}] (id {id}): {why}", kind.key()))
        })?;
        out.push(record);
    }
    Ok(out)
}

/// Checks one record; returns it without its `null` fields.
fn item(
    kind: Kind,
    item: &Value,
    now_ms: u64,
    nulls: &mut usize,
) -> Result<Map<String, Value>, Refusal> {
    if matches!(kind, Kind::SpanScore | Kind::TraceScore) {
        return super::scores::item(item, nulls);
    }
    let bad = |m: String| (StatusCode::BAD_REQUEST, m);
    let unprocessable = |m: String| (StatusCode::UNPROCESSABLE_ENTITY, m);
    let Some(object) = item.as_object() else {
        return Err(bad("each item must be a JSON object".into()));
    };
    let known = match kind {
        Kind::Span => SPAN_FIELDS,
        Kind::Trace | Kind::SpanScore | Kind::TraceScore => TRACE_FIELDS,
    };
    let mut record = Map::new();
    for (key, value) in object {
        if !known.contains(&key.as_str()) {
            return Err(bad(format!("unknown field `{key}`")));
        }
        if value.is_null() {
            *nulls += 1;
            continue;
        }
        record.insert(key.clone(), value.clone());
    }
    let get = |k: &str| record.get(k);

    match get("id") {
        None => return Err(bad("`id` is required (the SDKs always send one)".into())),
        Some(v) => uuid_v7(v, "id", now_ms, Window::AroundNow).map_err(bad)?,
    }
    if kind == Kind::Span {
        match get("trace_id") {
            None => return Err(bad("`trace_id` is required".into())),
            Some(v) => uuid_v7(v, "trace_id", now_ms, Window::NotAhead).map_err(bad)?,
        }
        if let Some(v) = get("parent_span_id") {
            uuid_v7(v, "parent_span_id", now_ms, Window::NotAhead).map_err(bad)?;
        }
        if let Some(v) = get("type") {
            enumerated(v, "type", SPAN_TYPES).map_err(bad)?;
        }
        for field in ["model", "provider", "total_estimated_cost_version"] {
            if let Some(v) = get(field) {
                string(v, field).map_err(bad)?;
            }
        }
        if let Some(v) = get("usage") {
            usage(v).map_err(bad)?;
        }
        if let Some(v) = get("total_estimated_cost") {
            match v.as_f64() {
                None => return Err(bad("`total_estimated_cost` must be a number".into())),
                Some(c) if c < 0.0 => {
                    return Err(unprocessable("`total_estimated_cost` must be >= 0".into()));
                }
                Some(_) => {}
            }
        }
    } else if let Some(v) = get("thread_id") {
        string(v, "thread_id").map_err(bad)?;
    }
    match get("start_time") {
        None => return Err(bad("`start_time` is required".into())),
        Some(v) => date_time(v, "start_time").map_err(bad)?,
    };
    for field in ["end_time", "last_updated_at"] {
        if let Some(v) = get(field) {
            date_time(v, field).map_err(bad)?;
        }
    }
    if let Some(v) = get("project_name") {
        let name = string(v, "project_name").map_err(bad)?;
        if name.trim().is_empty() {
            return Err(unprocessable("`project_name` must not be blank".into()));
        }
    }
    if let Some(v) = get("name") {
        string(v, "name").map_err(bad)?;
    }
    for field in ["input", "output", "metadata"] {
        if let Some(v) = get(field) {
            json_list_string(v, field).map_err(bad)?;
        }
    }
    if let Some(v) = get("tags") {
        let Some(tags) = v.as_array() else {
            return Err(bad("`tags` must be an array of strings".into()));
        };
        let mut seen = HashSet::new();
        for tag in tags {
            let Some(tag) = tag.as_str() else {
                return Err(bad("`tags` must be an array of strings".into()));
            };
            if !seen.insert(tag) {
                return Err(unprocessable(format!(
                    "`tags` must be unique: `{tag}` twice"
                )));
            }
        }
    }
    if let Some(v) = get("error_info") {
        error_info(v)?;
    }
    if let Some(v) = get("ttft")
        && !v.is_number()
    {
        return Err(bad("`ttft` must be a number".into()));
    }
    if let Some(v) = get("source") {
        enumerated(v, "source", SOURCES).map_err(bad)?;
    }
    if let Some(v) = get("environment") {
        let env = string(v, "environment").map_err(bad)?;
        if env.chars().count() > 150 {
            return Err(unprocessable(
                "`environment` must be at most 150 characters".into(),
            ));
        }
    }
    Ok(record)
}

fn string<'a>(v: &'a Value, field: &str) -> Result<&'a str, String> {
    v.as_str()
        .ok_or_else(|| format!("`{field}` must be a string"))
}

fn enumerated(v: &Value, field: &str, allowed: &[&str]) -> Result<(), String> {
    let s = string(v, field)?;
    if allowed.contains(&s) {
        Ok(())
    } else {
        Err(format!("`{field}` must be one of {allowed:?}, got {s:?}"))
    }
}

/// Where an id's embedded time may be, as Opik's backend checks it with its ingestion
/// window on (`UuidV7TimestampValidator`, default window 24 h): the id of a new entity within
/// the window around now; a referenced id (a span's `trace_id`, `parent_span_id`) of any
/// age, but not beyond the window ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Window {
    AroundNow,
    NotAhead,
}

const WINDOW_MS: u64 = 24 * 3600 * 1000;

/// A canonical UUID of version 7 whose embedded time fits `window`.
fn uuid_v7(v: &Value, field: &str, now_ms: u64, window: Window) -> Result<(), String> {
    let s = string(v, field)?;
    let canonical = s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    if !canonical {
        return Err(format!("`{field}` is not a UUID: {s:?}"));
    }
    if &s[14..15] != "7" {
        return Err(format!("`{field}` must be a version 7 UUID: {s}"));
    }
    if !matches!(&s[19..20], "8" | "9" | "a" | "b" | "A" | "B") {
        return Err(format!("`{field}` has an invalid UUID variant: {s}"));
    }
    let hex: String = s[..13].chars().filter(|c| *c != '-').collect();
    let ms = u64::from_str_radix(&hex, 16).map_err(|e| e.to_string())?;
    if ms > now_ms.saturating_add(WINDOW_MS) {
        return Err(format!(
            "`{field}` carries a time more than 24 h ahead of now (too_far_future): {s}"
        ));
    }
    if window == Window::AroundNow && ms < now_ms.saturating_sub(WINDOW_MS) {
        return Err(format!(
            "`{field}` carries a time more than 24 h before now (too_old): {s}"
        ));
    }
    Ok(())
}

/// `JsonListString_Write`: an object, an array of objects, or a string.
fn json_list_string(v: &Value, field: &str) -> Result<(), String> {
    let ok = match v {
        Value::Object(_) | Value::String(_) => true,
        Value::Array(items) => items.iter().all(Value::is_object),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{field}` must be an object, an array of objects or a string"
        ))
    }
}

fn usage(v: &Value) -> Result<(), String> {
    let Some(map) = v.as_object() else {
        return Err("`usage` must be an object of integers".into());
    };
    for (k, n) in map {
        let fits = n.as_i64().is_some_and(|n| i32::try_from(n).is_ok());
        if !fits {
            return Err(format!("`usage.{k}` must be an int32, got {n}"));
        }
    }
    Ok(())
}

fn error_info(v: &Value) -> Result<(), Refusal> {
    let bad = |m: &str| (StatusCode::BAD_REQUEST, m.to_owned());
    let Some(map) = v.as_object() else {
        return Err(bad("`error_info` must be an object"));
    };
    for (k, value) in map {
        if !matches!(k.as_str(), "exception_type" | "message" | "traceback") {
            return Err(bad(&format!("unknown field `error_info.{k}`")));
        }
        if !value.is_string() && !value.is_null() {
            return Err(bad(&format!("`error_info.{k}` must be a string")));
        }
    }
    for required in ["exception_type", "traceback"] {
        if map
            .get(required)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err((
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("`error_info.{required}` must not be empty"),
            ));
        }
    }
    Ok(())
}

/// An RFC 3339 date-time with a zone: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
fn date_time(v: &Value, field: &str) -> Result<i64, String> {
    let s = string(v, field)?;
    parse_date_time(s)
        .ok_or_else(|| format!("`{field}` must be an RFC 3339 date-time with a zone, got {s:?}"))
}

/// Microseconds since the epoch of an RFC 3339 date-time with a zone, `None` if invalid.
///
/// The `time` crate parses; two rules stay LocalOpik's own, as they were before it:
/// - only `T` between date and time, only `Z` for UTC (`time` takes any byte there, and
///   `z`; Java's case-insensitive `ISO_INSTANT` takes `t`/`z` too, but Opik's SDKs and
///   our formatter write them uppercase, so a lowercase one means a broken formatter);
/// - a leap second `:60` at any minute, counted as the next second (RFC 3339's grammar;
///   `time` takes one only at the last second of a UTC month).
pub(crate) fn parse_date_time(s: &str) -> Option<i64> {
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;
    if s.as_bytes().get(10) != Some(&b'T') || s.ends_with('z') {
        return None;
    }
    let (parsed, leap) = match s.get(17..19) {
        Some("60") => {
            let at_59 = format!("{}59{}", &s[..17], &s[19..]);
            (OffsetDateTime::parse(&at_59, &Rfc3339), 1_000_000)
        }
        _ => (OffsetDateTime::parse(s, &Rfc3339), 0),
    };
    // Floored to the microsecond, as before.
    let micros = parsed.ok()?.unix_timestamp_nanos().div_euclid(1000) + leap;
    i64::try_from(micros).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_times() {
        assert_eq!(parse_date_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_date_time("1970-01-01T00:00:00.5Z"), Some(500_000));
        assert_eq!(parse_date_time("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(
            parse_date_time("2026-11-22T22:57:56.168246Z"),
            Some(1_795_906_676_168_246 - 6 * 86_400_000_000)
        );
        // More than six fraction digits: floored to the microsecond, before 1970 too.
        assert_eq!(
            parse_date_time("1970-01-01T00:00:00.1234567891234Z"),
            Some(123_456)
        );
        assert_eq!(
            parse_date_time("1969-12-31T23:59:59.5000005Z"),
            Some(-500_000)
        );
        assert_eq!(
            parse_date_time("1970-01-01T00:00:00-00:30"),
            Some(1_800_000_000)
        );
        assert_eq!(
            parse_date_time("0000-01-01T00:00:00Z"),
            Some(-62_167_219_200_000_000)
        );
        assert_eq!(
            parse_date_time("2024-02-29T00:00:00Z"),
            Some(1_709_164_800_000_000)
        );
        // A leap second at any minute, as the next second.
        assert_eq!(parse_date_time("1970-01-01T00:00:60Z"), Some(60_000_000));
        assert_eq!(
            parse_date_time("1970-01-01T00:00:60.25+00:00"),
            Some(60_250_000)
        );
        assert_eq!(
            parse_date_time("2016-12-31T23:59:60Z"),
            parse_date_time("2017-01-01T00:00:00Z")
        );
        for bad in [
            "2026-11-22T22:57:56.168246",
            "2026-11-22 22:57:56Z",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-22T24:00:00Z",
            "2026-11-22T22:57:56.Z",
            "2026-11-22T22:57:56+0100",
            "2026-11-22T22:57:56z",
            "",
            "garbage-garbage-garbage",
            "2026-11-22T22:57:56Zjunk",
            "٢٠٢٦-11-22T22:57:56Z",
            "2026-11-22t22:57:56Z",
            "2026-11-22_22:57:56Z",
            "2026-11-22T22:57:61Z",
            "2026-11-22T22:57:56+24:00",
            "2026-11-22T22:57:56+01:60",
            "2026-11-22T22:57:56-01:00:00",
            "2026-11-22T22:57Z",
            "2026-11-22T22:57:56.1234567890123Z ",
            "-026-11-22T22:57:56Z",
            "+2026-11-22T22:57:56Z",
            "2026-11-22T22:57:56\0",
            "2026-11-22T22:57:\u{e9}Z",
            "2026-11-22T22:57:60z",
        ] {
            assert_eq!(parse_date_time(bad), None, "{bad}");
        }
    }
}
