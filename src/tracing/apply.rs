//! Writes what a mirrored span gathered ([`Fields`]) onto its Opik span, once, when the
//! `tracing` span closes.

use std::borrow::Cow;

use serde_json::Value;

use super::fields::{Fields, operation_type};
use super::provider;
use crate::record::JsonObject;
use crate::{ErrorInfo, Span, SpanType, Usage};

/// Metadata key of the span's events (a list, at most `max_events` long).
pub(super) const EVENTS_KEY: &str = "tracing.events";
/// Metadata key of the number of events left out of [`EVENTS_KEY`].
pub(super) const EVENTS_DROPPED_KEY: &str = "tracing.events_dropped";
/// Metadata key of the spans this one follows from (`follows_from`).
pub(super) const FOLLOWS_FROM_KEY: &str = "tracing.follows_from";

impl Fields {
    /// Sets everything gathered on `span` (which the caller then ends).
    pub(super) fn apply(self, span: &Span) {
        let Fields {
            opik_name,
            otel_name,
            request_model,
            response_model,
            provider_name,
            system,
            server_address,
            usage,
            input,
            output,
            opik_input,
            opik_output,
            thread_id,
            operation,
            opik_type,
            tags,
            mut metadata,
            error,
            events,
            events_dropped,
            follows_from,
        } = self;

        if let Some(name) = opik_name.or(otel_name) {
            span.set_name(name);
        }
        let model = response_model.or(request_model);
        let provider = provider_name
            .or(system)
            .and_then(|p| provider::normalize(&p, model.as_deref(), server_address.as_deref()));
        let usage = opik_usage(usage);
        let span_type = opik_type
            .or_else(|| operation.as_deref().and_then(operation_type))
            .or_else(|| {
                (model.is_some() || provider.is_some() || usage.is_some()).then_some(SpanType::Llm)
            });
        if let Some(t) = span_type {
            span.set_type(t);
        }
        if let Some(model) = model {
            span.set_model(model);
        }
        if let Some(provider) = provider {
            span.set_provider(provider);
        }
        if let Some(usage) = usage {
            span.set_usage(usage);
        }
        if let Some(input) = merge(input, opik_input, "input") {
            span.set_input(input);
        }
        if let Some(output) = merge(output, opik_output, "output") {
            span.set_output(output);
        }
        for tag in tags {
            span.add_tag(tag);
        }
        if let Some(thread_id) = thread_id {
            if span.owns_trace() {
                span.set_thread_id(thread_id);
            } else {
                // Only the trace's owner writes the trace record, and so its thread.
                metadata.insert("gen_ai.conversation.id".into(), Value::String(thread_id));
            }
        }
        if !events.is_empty() {
            metadata.insert(EVENTS_KEY.into(), Value::Array(events));
        }
        if events_dropped > 0 {
            metadata.insert(EVENTS_DROPPED_KEY.into(), events_dropped.into());
        }
        if !follows_from.is_empty() {
            metadata.insert(FOLLOWS_FROM_KEY.into(), Value::Array(follows_from));
        }
        // One entry at a time: `extend_metadata` would serialize the whole map again.
        for (key, value) in metadata {
            span.set_metadata(key, value);
        }
        if let Some(error) = error.into_info() {
            span.set_error(error);
        }
    }
}

/// Usage under Opik's names, with `total_tokens` computed when absent; `None` when empty.
fn opik_usage(counts: Vec<(Cow<'static, str>, u64)>) -> Option<Usage> {
    if counts.is_empty() {
        return None;
    }
    let count = |name: &str| counts.iter().find(|(k, _)| k == name).map(|(_, c)| *c);
    let total = match (
        count("total_tokens"),
        count("prompt_tokens"),
        count("completion_tokens"),
    ) {
        (None, None, None) | (Some(_), _, _) => None,
        (None, prompt, completion) => Some(prompt.unwrap_or(0) + completion.unwrap_or(0)),
    };
    let mut usage = Usage::default();
    for (name, count) in counts {
        usage = usage.with(name, count);
    }
    if let Some(total) = total {
        usage = usage.with("total_tokens", total);
    }
    Some(usage)
}

/// The GenAI parts of an input (or output) with `opik.input` merged over them: an object's
/// keys, any other value under `key`.
fn merge(mut parts: JsonObject, opik: Option<Value>, key: &str) -> Option<JsonObject> {
    match opik {
        Some(Value::Object(entries)) => parts.extend(entries),
        Some(Value::Null) | None => {}
        Some(other) => {
            parts.insert(key.to_owned(), other);
        }
    }
    (!parts.is_empty()).then_some(parts)
}

impl super::fields::ErrorFields {
    /// The span's error, if any signal says it failed. Type: `exception.type`, else
    /// `error.type`, else the error event's type, else `Error`. Message: `exception.message`,
    /// else the `error` field, else `otel.status_message`, else the error event's message.
    /// Traceback: `exception.stacktrace`, else the message.
    fn into_info(self) -> Option<ErrorInfo> {
        let failed = self.flag
            || self.message.is_some()
            || self.error_type.is_some()
            || self.exception_type.is_some()
            || self.exception_message.is_some()
            || self.status_error
            || self.event.is_some();
        if !failed {
            return None;
        }
        let (event_type, event_message) = match self.event {
            Some((t, m)) => (t, Some(m)),
            None => (None, None),
        };
        let exception_type = self
            .exception_type
            .or(self.error_type)
            .or(event_type)
            .unwrap_or_else(|| "Error".to_owned());
        let message = self
            .exception_message
            .or(self.message)
            .or(self.status_message)
            .or(event_message)
            .unwrap_or_default();
        let traceback = self.exception_stacktrace.unwrap_or_else(|| message.clone());
        Some(ErrorInfo::with_traceback(
            exception_type,
            message,
            traceback,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::fields::ErrorFields;
    use super::*;

    #[test]
    fn usage_total_is_computed_only_when_absent() {
        let counts = |pairs: &[(&'static str, u64)]| {
            pairs
                .iter()
                .map(|(k, v)| (Cow::Borrowed(*k), *v))
                .collect::<Vec<_>>()
        };
        let u = opik_usage(counts(&[("prompt_tokens", 3), ("completion_tokens", 4)])).unwrap();
        assert_eq!(u.get("total_tokens"), Some(7));
        let u = opik_usage(counts(&[("prompt_tokens", 3), ("total_tokens", 10)])).unwrap();
        assert_eq!(u.get("total_tokens"), Some(10));
        let u = opik_usage(counts(&[("reasoning_tokens", 3)])).unwrap();
        assert_eq!(u.get("total_tokens"), None);
        assert!(opik_usage(counts(&[])).is_none());
    }

    #[test]
    fn error_parts_compose() {
        assert!(ErrorFields::default().into_info().is_none());
        let e = ErrorFields {
            status_error: true,
            error_type: Some("429".into()),
            ..Default::default()
        }
        .into_info()
        .unwrap();
        assert_eq!((e.exception_type(), e.traceback()), ("429", "429"));
        let e = ErrorFields {
            exception_type: Some("Timeout".into()),
            exception_message: Some("slow".into()),
            exception_stacktrace: Some("at x".into()),
            message: Some("ignored".into()),
            ..Default::default()
        }
        .into_info()
        .unwrap();
        assert_eq!(
            (e.exception_type(), e.message(), e.traceback()),
            ("Timeout", Some("slow"), "at x")
        );
        let e = ErrorFields {
            event: Some((None, "boom".into())),
            ..Default::default()
        }
        .into_info()
        .unwrap();
        assert_eq!((e.exception_type(), e.message()), ("Error", Some("boom")));
    }
}
