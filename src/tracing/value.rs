//! One `tracing` field value, as the visitor receives it, and its conversions: to text, to
//! JSON (parsing strings that hold JSON, as Opik's OTLP mapper does), to a token count.

use std::borrow::Cow;
use std::fmt;

use serde_json::Value;

/// A field value.
#[derive(Debug)]
pub(super) enum FieldValue<'a> {
    /// A string (`record_str`), or a `Debug`/`Display` rendering, or an error's chain.
    Text(Cow<'a, str>),
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
    /// An `i128`/`u128` that does not fit JSON's integers.
    Big(String),
}

impl FieldValue<'_> {
    /// A `Debug` value (`?x`, and `%x` through `DisplayValue`) rendered once.
    pub(super) fn debug(value: &dyn fmt::Debug) -> FieldValue<'static> {
        FieldValue::Text(Cow::Owned(format!("{value:?}")))
    }

    /// An error with the chain of its sources, one per line.
    pub(super) fn error(err: &(dyn std::error::Error + 'static)) -> FieldValue<'static> {
        let mut text = err.to_string();
        let mut source = err.source();
        while let Some(s) = source {
            text.push_str("\ncaused by: ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        FieldValue::Text(Cow::Owned(text))
    }

    pub(super) fn i128(v: i128) -> FieldValue<'static> {
        match i64::try_from(v) {
            Ok(v) => FieldValue::I64(v),
            Err(_) => FieldValue::Big(v.to_string()),
        }
    }

    pub(super) fn u128(v: u128) -> FieldValue<'static> {
        match u64::try_from(v) {
            Ok(v) => FieldValue::U64(v),
            Err(_) => FieldValue::Big(v.to_string()),
        }
    }

    /// The value as text (numbers and booleans printed).
    pub(super) fn into_text(self) -> String {
        match self {
            FieldValue::Text(s) => s.into_owned(),
            FieldValue::Bool(b) => b.to_string(),
            FieldValue::I64(v) => v.to_string(),
            FieldValue::U64(v) => v.to_string(),
            FieldValue::F64(v) => v.to_string(),
            FieldValue::Big(s) => s,
        }
    }

    /// The value as JSON; with `parse`, a string that holds a JSON object, array or string
    /// is parsed (a string that does not parse stays a string).
    pub(super) fn into_json(self, parse: bool) -> Value {
        match self {
            FieldValue::Text(s) => {
                if parse && let Some(v) = parse_json(&s) {
                    return v;
                }
                Value::String(s.into_owned())
            }
            FieldValue::Bool(b) => Value::Bool(b),
            FieldValue::I64(v) => Value::from(v),
            FieldValue::U64(v) => Value::from(v),
            FieldValue::F64(v) => serde_json::Number::from_f64(v)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(v.to_string())),
            FieldValue::Big(s) => Value::String(s),
        }
    }

    /// The value as a token count: a non-negative integer, an integral float, or a string
    /// holding one.
    pub(super) fn as_count(&self) -> Option<u64> {
        match self {
            FieldValue::U64(v) => Some(*v),
            FieldValue::I64(v) => u64::try_from(*v).ok(),
            FieldValue::F64(v) if v.is_finite() && *v >= 0.0 && v.fract() == 0.0 => Some(*v as u64),
            FieldValue::Text(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// Whether the value is the boolean `false`, or a string saying so.
    pub(super) fn is_false(&self) -> bool {
        match self {
            FieldValue::Bool(b) => !b,
            FieldValue::Text(s) => s.trim().eq_ignore_ascii_case("false"),
            _ => false,
        }
    }
}

/// Parses `text` when it looks like a JSON object, array or string; `None` otherwise or when
/// it does not parse. A JSON string that itself holds JSON is parsed once more (a value
/// serialized twice), as Opik's backend does.
pub(super) fn parse_json(text: &str) -> Option<Value> {
    let trimmed = text.trim_start();
    if !(trimmed.starts_with('{') || trimmed.starts_with('[') || trimmed.starts_with('"')) {
        return None;
    }
    match serde_json::from_str::<Value>(text).ok()? {
        Value::String(inner) => Some(parse_json(&inner).unwrap_or(Value::String(inner))),
        other => Some(other),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn json_strings_are_parsed_only_when_asked_and_valid() {
        let text = |s: &'static str| FieldValue::Text(Cow::Borrowed(s));
        assert_eq!(
            text(r#"[{"role":"user"}]"#).into_json(true),
            json!([{"role": "user"}])
        );
        assert_eq!(
            text(r#"[{"role":"user"}]"#).into_json(false),
            json!(r#"[{"role":"user"}]"#)
        );
        assert_eq!(text("{not json").into_json(true), json!("{not json"));
        assert_eq!(text("plain").into_json(true), json!("plain"));
        assert_eq!(text(r#""{\"a\":1}""#).into_json(true), json!({"a": 1}));
        assert_eq!(FieldValue::F64(f64::NAN).into_json(true), json!("NaN"));
        assert_eq!(
            FieldValue::u128(u128::MAX).into_json(true),
            json!(u128::MAX.to_string())
        );
    }

    #[test]
    fn counts_are_non_negative_integers() {
        assert_eq!(FieldValue::I64(12).as_count(), Some(12));
        assert_eq!(FieldValue::I64(-1).as_count(), None);
        assert_eq!(FieldValue::F64(3.0).as_count(), Some(3));
        assert_eq!(FieldValue::F64(3.5).as_count(), None);
        assert_eq!(FieldValue::Text(Cow::Borrowed(" 7 ")).as_count(), Some(7));
        assert_eq!(FieldValue::Bool(true).as_count(), None);
    }
}
