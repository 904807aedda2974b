//! The mapping of one `tracing` field onto the Opik span it belongs to (the table in the
//! [module docs](super)). Fields are gathered here as they are recorded (at creation and by
//! `span.record(..)` later) and written to the span once, when it closes
//! ([`super::apply`]).

use std::borrow::Cow;

use ::tracing::field::{Field, Visit};
use serde_json::Value;

use super::value::{FieldValue, parse_json};
use crate::SpanType;
use crate::record::JsonObject;

/// What a mirrored span has gathered so far.
#[derive(Debug, Default)]
pub(super) struct Fields {
    pub(super) opik_name: Option<String>,
    pub(super) otel_name: Option<String>,
    pub(super) request_model: Option<String>,
    pub(super) response_model: Option<String>,
    pub(super) provider_name: Option<String>,
    pub(super) system: Option<String>,
    pub(super) server_address: Option<String>,
    /// Token counts under Opik's (OpenAI's) names, each name once.
    pub(super) usage: Vec<(Cow<'static, str>, u64)>,
    pub(super) input: JsonObject,
    pub(super) output: JsonObject,
    pub(super) opik_input: Option<Value>,
    pub(super) opik_output: Option<Value>,
    pub(super) thread_id: Option<String>,
    pub(super) operation: Option<String>,
    pub(super) opik_type: Option<SpanType>,
    pub(super) tags: Vec<String>,
    pub(super) metadata: JsonObject,
    pub(super) error: ErrorFields,
    pub(super) events: Vec<Value>,
    pub(super) events_dropped: u64,
    pub(super) follows_from: Vec<Value>,
}

/// The error signals of a span; any of them marks it failed (see [`super::apply`]).
#[derive(Debug, Default)]
pub(super) struct ErrorFields {
    /// `error = true`.
    pub(super) flag: bool,
    /// `error = "..."`, `error = %e`, `error = &e as &dyn Error`, `error.message`.
    pub(super) message: Option<String>,
    /// `error.type` (OpenTelemetry: set only when the operation failed).
    pub(super) error_type: Option<String>,
    pub(super) exception_type: Option<String>,
    pub(super) exception_message: Option<String>,
    pub(super) exception_stacktrace: Option<String>,
    /// `otel.status_code = "error"`.
    pub(super) status_error: bool,
    pub(super) status_message: Option<String>,
    /// The last `ERROR`-level event in the span: (type, message).
    pub(super) event: Option<(Option<String>, String)>,
}

/// Fields that `tracing` and its bridges add for themselves: never sent.
pub(super) fn is_internal(name: &str) -> bool {
    name.starts_with("code.")
        || name.starts_with("thread.")
        || name.starts_with("log.")
        || name == "busy_ns"
        || name == "idle_ns"
        || name == "otel.kind"
}

/// The span type a `gen_ai.operation.name` implies.
pub(super) fn operation_type(operation: &str) -> Option<SpanType> {
    match operation {
        "chat" | "text_completion" | "generate_content" | "embeddings" => Some(SpanType::Llm),
        "execute_tool" => Some(SpanType::Tool),
        _ => None,
    }
}

fn parse_type(text: &str) -> Option<SpanType> {
    match text.trim().to_ascii_lowercase().as_str() {
        "general" => Some(SpanType::General),
        "llm" => Some(SpanType::Llm),
        "tool" => Some(SpanType::Tool),
        "guardrail" => Some(SpanType::Guardrail),
        _ => None,
    }
}

/// Tags from a JSON array of strings or a comma-separated list (as Opik's backend reads
/// `opik.tags`).
fn parse_tags(value: FieldValue<'_>) -> Vec<String> {
    let text = value.into_text();
    if let Some(Value::Array(items)) = parse_json(&text) {
        return items
            .into_iter()
            .filter_map(|v| match v {
                Value::String(s) => Some(s.trim().to_owned()),
                _ => None,
            })
            .filter(|s| !s.is_empty())
            .collect();
    }
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Fields {
    /// Files one field where the mapping table says.
    pub(super) fn set(&mut self, name: &str, value: FieldValue<'_>) {
        if is_internal(name) {
            return;
        }
        match name {
            "opik.name" => self.opik_name = Some(value.into_text()),
            "otel.name" => self.otel_name = Some(value.into_text()),
            "otel.status_code" => {
                self.error.status_error = value.into_text().trim().eq_ignore_ascii_case("error")
            }
            "otel.status_message" => self.error.status_message = Some(value.into_text()),
            "error" => match value {
                FieldValue::Bool(flag) => self.error.flag = flag,
                other if other.is_false() => self.error.flag = false,
                other => self.error.message = Some(other.into_text()),
            },
            "error.message" => self.error.message = Some(value.into_text()),
            "error.type" => self.error.error_type = Some(value.into_text()),
            "exception.type" => self.error.exception_type = Some(value.into_text()),
            "exception.message" => self.error.exception_message = Some(value.into_text()),
            "exception.stacktrace" => self.error.exception_stacktrace = Some(value.into_text()),
            "gen_ai.request.model" => self.request_model = Some(value.into_text()),
            "gen_ai.response.model" => self.response_model = Some(value.into_text()),
            "gen_ai.provider.name" => self.provider_name = Some(value.into_text()),
            "gen_ai.system" => self.system = Some(value.into_text()),
            "gen_ai.conversation.id" | "opik.thread_id" => self.thread_id = Some(value.into_text()),
            "gen_ai.operation.name" => {
                let operation = value.into_text();
                self.metadata
                    .insert(name.to_owned(), Value::String(operation.clone()));
                self.operation = Some(operation);
            }
            "server.address" => {
                let address = value.into_text();
                self.metadata
                    .insert(name.to_owned(), Value::String(address.clone()));
                self.server_address = Some(address);
            }
            "gen_ai.system_instructions" => {
                self.input
                    .insert("system_instructions".into(), value.into_json(true));
            }
            // A request attribute ("text", "json"), despite its prefix.
            "gen_ai.output.type" => {
                self.metadata.insert(name.to_owned(), value.into_json(true));
            }
            "opik.type" => {
                let text = value.into_text();
                match parse_type(&text) {
                    Some(t) => self.opik_type = Some(t),
                    None => {
                        self.metadata.insert(name.to_owned(), Value::String(text));
                    }
                }
            }
            "opik.tags" => {
                for tag in parse_tags(value) {
                    if !self.tags.contains(&tag) {
                        self.tags.push(tag);
                    }
                }
            }
            "opik.input" => self.opik_input = Some(value.into_json(true)),
            "opik.output" => self.opik_output = Some(value.into_json(true)),
            "opik.metadata" => match value.into_json(true) {
                Value::Object(entries) => self.metadata.extend(entries),
                other => {
                    self.metadata.insert(name.to_owned(), other);
                }
            },
            _ => self.set_prefixed(name, value),
        }
    }

    fn set_prefixed(&mut self, name: &str, value: FieldValue<'_>) {
        if let Some(counter) = name.strip_prefix("gen_ai.usage.") {
            match value.as_count() {
                Some(count) => {
                    let key = match counter {
                        "input_tokens" => Cow::Borrowed("prompt_tokens"),
                        "output_tokens" => Cow::Borrowed("completion_tokens"),
                        "total_tokens" => Cow::Borrowed("total_tokens"),
                        other => Cow::Owned(other.to_owned()),
                    };
                    match self.usage.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, c)) => *c = count,
                        None => self.usage.push((key, count)),
                    }
                }
                None => {
                    self.metadata.insert(name.to_owned(), value.into_json(true));
                }
            }
        } else if let Some(key) = name.strip_prefix("gen_ai.input.") {
            self.input.insert(key.to_owned(), value.into_json(true));
        } else if let Some(key) = name.strip_prefix("gen_ai.output.") {
            self.output.insert(key.to_owned(), value.into_json(true));
        } else if name == "gen_ai.prompt" || name.starts_with("gen_ai.prompt.") {
            self.input
                .insert(name[7..].to_owned(), value.into_json(true));
        } else if name == "gen_ai.completion" || name.starts_with("gen_ai.completion.") {
            self.output
                .insert(name[7..].to_owned(), value.into_json(true));
        } else if let Some(key) = name.strip_prefix("opik.metadata.") {
            self.metadata.insert(key.to_owned(), value.into_json(true));
        } else {
            // Everything else is metadata under its own name; the GenAI and opik.* values
            // are often JSON text (finish reasons, tool definitions): parse those.
            let parse = name.starts_with("gen_ai.") || name.starts_with("opik.");
            self.metadata
                .insert(name.to_owned(), value.into_json(parse));
        }
    }
}

/// Records a span's fields into [`Fields`].
pub(super) struct SpanVisitor<'a>(pub(super) &'a mut Fields);

impl Visit for SpanVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.set(field.name(), FieldValue::Text(value.into()));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.set(field.name(), FieldValue::Bool(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.set(field.name(), FieldValue::I64(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.set(field.name(), FieldValue::U64(value));
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        self.0.set(field.name(), FieldValue::i128(value));
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        self.0.set(field.name(), FieldValue::u128(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.set(field.name(), FieldValue::F64(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.set(field.name(), FieldValue::error(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.set(field.name(), FieldValue::debug(value));
    }
}

/// Records an event's fields: its message, the error signals, and the rest as JSON.
#[derive(Default)]
pub(super) struct EventVisitor {
    pub(super) message: Option<String>,
    pub(super) error: Option<String>,
    pub(super) error_type: Option<String>,
    pub(super) fields: JsonObject,
}

impl EventVisitor {
    fn set(&mut self, name: &str, value: FieldValue<'_>) {
        if is_internal(name) {
            return;
        }
        match name {
            "message" => self.message = Some(value.into_text()),
            "error" | "exception.message" if !value.is_false() => {
                let text = value.into_text();
                self.fields
                    .insert(name.to_owned(), Value::String(text.clone()));
                self.error = Some(text);
            }
            "error.type" | "exception.type" => {
                let text = value.into_text();
                self.fields
                    .insert(name.to_owned(), Value::String(text.clone()));
                self.error_type = Some(text);
            }
            _ => {
                self.fields.insert(name.to_owned(), value.into_json(false));
            }
        }
    }
}

impl Visit for EventVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field.name(), FieldValue::Text(value.into()));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field.name(), FieldValue::Bool(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field.name(), FieldValue::I64(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(field.name(), FieldValue::U64(value));
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        self.set(field.name(), FieldValue::i128(value));
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        self.set(field.name(), FieldValue::u128(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.set(field.name(), FieldValue::F64(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.set(field.name(), FieldValue::error(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.set(field.name(), FieldValue::debug(value));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn text(s: &str) -> FieldValue<'_> {
        FieldValue::Text(s.into())
    }

    #[test]
    fn prefixes_land_where_the_table_says() {
        let mut f = Fields::default();
        f.set("gen_ai.usage.input_tokens", FieldValue::I64(3));
        f.set("gen_ai.usage.cache_read.input_tokens", FieldValue::U64(1));
        f.set("gen_ai.usage.output_tokens", text("not a number"));
        f.set("gen_ai.prompt", text(r#"[{"role":"user","content":"hi"}]"#));
        f.set("gen_ai.completion", text("hello"));
        f.set("gen_ai.input.messages", text("[1]"));
        f.set("gen_ai.output.messages", text("[2]"));
        f.set("gen_ai.output.type", text("json"));
        f.set("gen_ai.response.finish_reasons", text(r#"["stop"]"#));
        f.set("opik.metadata.team", text("search"));
        f.set("opik.tags", text(r#"["a", "b"]"#));
        f.set("opik.tags", text("b, c"));
        f.set("plain", text(r#"["kept as text"]"#));
        f.set("code.lineno", FieldValue::U64(1));
        f.set("busy_ns", FieldValue::U64(1));
        assert_eq!(
            f.usage,
            [
                ("prompt_tokens".into(), 3),
                ("cache_read.input_tokens".into(), 1)
            ]
        );
        assert_eq!(
            f.metadata["gen_ai.usage.output_tokens"],
            json!("not a number")
        );
        assert_eq!(
            f.input["prompt"],
            json!([{"role": "user", "content": "hi"}])
        );
        assert_eq!(f.input["messages"], json!([1]));
        assert_eq!(f.output["completion"], json!("hello"));
        assert_eq!(f.output["messages"], json!([2]));
        assert_eq!(f.metadata["gen_ai.output.type"], json!("json"));
        assert_eq!(
            f.metadata["gen_ai.response.finish_reasons"],
            json!(["stop"])
        );
        assert_eq!(f.metadata["team"], json!("search"));
        assert_eq!(f.metadata["plain"], json!(r#"["kept as text"]"#));
        assert_eq!(f.tags, ["a", "b", "c"]);
        assert!(!f.metadata.contains_key("code.lineno") && !f.metadata.contains_key("busy_ns"));
        assert!(!f.output.contains_key("type"));
    }

    #[test]
    fn types_and_errors() {
        let mut f = Fields::default();
        f.set("opik.type", text("GUARDRAIL"));
        assert_eq!(f.opik_type, Some(SpanType::Guardrail));
        f.set("opik.type", text("agent"));
        assert_eq!(
            f.opik_type,
            Some(SpanType::Guardrail),
            "an unknown type is ignored"
        );
        assert_eq!(f.metadata["opik.type"], json!("agent"));
        f.set("error", FieldValue::Bool(true));
        f.set("error", text("false"));
        assert!(!f.error.flag);
        f.set("otel.status_code", text("ERROR"));
        assert!(f.error.status_error);
        assert_eq!(operation_type("execute_tool"), Some(SpanType::Tool));
        assert_eq!(operation_type("embeddings"), Some(SpanType::Llm));
        assert_eq!(operation_type("invoke_agent"), None);
    }
}
