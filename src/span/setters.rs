//! The setters of an open span: name, type, input, output, metadata, tags, usage, model,
//! provider, cost, errors, time to first token, environment, thread.

use std::borrow::Cow;
use std::time::Duration;

use serde::Serialize;

use super::Span;
use crate::record::{ErrorInfo, Payload, RequestMetadata, SpanType, Usage};
use crate::time::Timestamp;

impl Span {
    /// Sets the error unless one is set already (a generic error, such as a 5xx status,
    /// never replaces the one the user or a panic recorded).
    pub(crate) fn set_error_unless_set(&self, error: ErrorInfo) {
        self.update(|r| {
            r.error_info.get_or_insert(error);
        });
    }

    /// Whether the span carries an error of this type.
    pub(crate) fn has_error_of_type(&self, exception_type: &str) -> bool {
        self.inner.as_ref().is_some_and(|i| {
            i.lock().record.as_ref().is_some_and(|r| {
                r.error_info
                    .as_ref()
                    .is_some_and(|e| e.exception_type() == exception_type)
            })
        })
    }

    /// Sets the error without waiting for the span's lock (from a panic hook: the
    /// panicking thread may hold it). Does nothing when the lock is taken.
    pub(crate) fn try_set_error(&self, error: ErrorInfo) {
        if let Some(inner) = &self.inner {
            let state = match inner.state.try_lock() {
                Ok(state) => Some(state),
                Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => None,
            };
            if let Some(mut state) = state
                && let Some(record) = state.record.as_mut()
            {
                record.error_info = Some(error);
            }
        }
    }

    /// Sets typed request metadata (the server layer's), written as JSON at export.
    pub(crate) fn update_request(&self, f: impl FnOnce(&mut RequestMetadata)) {
        self.update(|r| f(r.request.get_or_insert_with(RequestMetadata::default)));
    }

    /// Renames the span (Opik's `name`; by default the name it was started with, and for a
    /// request span of the server layer `"{method} {route}"`, which this replaces). Keep
    /// names low in cardinality (`"GET /users/{id}"`, not the id itself): Opik groups and
    /// filters by name.
    ///
    /// ```
    /// # let span = tower_opik::Span::none();
    /// # let intent = "refund";
    /// span.set_name(format!("classify:{intent}")); // "name": "classify:refund"
    /// ```
    pub fn set_name(&self, name: impl Into<Cow<'static, str>>) {
        let name = name.into();
        self.update(|r| {
            r.name = name;
            if let Some(request) = &mut r.request {
                request.name_from_route = false;
            }
        });
    }

    /// Sets the span's type (Opik's `type`; `general` by default, see [`SpanType`]), for a
    /// span whose kind is known only once it runs; otherwise open it with
    /// [`child_of_type`](Self::child_of_type).
    ///
    /// ```
    /// # let span = tower_opik::Span::none();
    /// // The router decided to answer with a guardrail refusal.
    /// span.set_type(tower_opik::SpanType::Guardrail); // "type": "guardrail"
    /// ```
    pub fn set_type(&self, span_type: SpanType) {
        self.update(|r| r.span_type = span_type);
    }

    /// Sets the input. An object is kept as it is; any other value `v` is sent as
    /// `{"input": v}` (Opik wants an object). Serialized to JSON text now, once (see
    /// [`Payload::from_serialize`]); a value that cannot be serialized becomes a note
    /// saying so. Replaces an earlier input (no merge); a value serializing to `null`
    /// (`()`, `None`) removes it. No input by default: the field is left out.
    ///
    /// ```
    /// # let llm = tower_opik::Span::none();
    /// use serde_json::json;
    /// llm.set_input(json!({"messages": [{"role": "user", "content": "Summarize this ticket"}]}));
    /// // "input": {"messages": [...]}; a bare string would be {"input": "Summarize this ticket"}
    /// ```
    pub fn set_input(&self, input: impl Serialize) {
        if self.inner.is_some() {
            let value = Payload::from_serialize(input, "input");
            self.update(|r| r.input = value);
        }
    }

    /// Sets the output (Opik's `output`): an object as it is, any other value `v` as
    /// `{"output": v}`, serialized now, as [`set_input`](Self::set_input). Replaces an
    /// earlier output; `null` removes it.
    ///
    /// ```
    /// # let llm = tower_opik::Span::none();
    /// llm.set_output("The customer asks for a refund of order 1042.");
    /// // "output": {"output": "The customer asks for a refund of order 1042."}
    /// ```
    pub fn set_output(&self, output: impl Serialize) {
        if self.inner.is_some() {
            let value = Payload::from_serialize(output, "output");
            self.update(|r| r.output = value);
        }
    }

    /// Sets one metadata entry (a key of Opik's `metadata` object), serialized to JSON now.
    /// Setting a key again replaces its value; a key you set wins over the same key written
    /// by the server layer (`http.request.method`, `http.response.status_code`, ...).
    ///
    /// ```
    /// # let llm = tower_opik::Span::none();
    /// llm.set_metadata("temperature", 0.2); // "metadata": {"temperature": 0.2, ...}
    /// llm.set_metadata("retrieved_docs", ["faq.md", "refunds.md"]);
    /// ```
    pub fn set_metadata(&self, key: impl Into<String>, value: impl Serialize) {
        if self.inner.is_some() {
            let mut one = crate::record::Metadata::default();
            one.insert(key, value);
            self.update(|r| r.metadata.merge(one));
        }
    }

    /// Merges entries into the metadata: each key of an object (or of a struct that
    /// serializes to one) replaces the same key; any other value goes under `"metadata"`.
    ///
    /// ```
    /// # let llm = tower_opik::Span::none();
    /// #[derive(serde::Serialize)]
    /// struct Sampling { temperature: f32, top_p: f32, max_tokens: u32 }
    /// llm.extend_metadata(Sampling { temperature: 0.2, top_p: 0.9, max_tokens: 512 });
    /// // "metadata": {"temperature": 0.2, "top_p": 0.9, "max_tokens": 512}
    /// ```
    pub fn extend_metadata(&self, entries: impl Serialize) {
        if self.inner.is_some() {
            let mut more = crate::record::Metadata::default();
            more.extend(entries, "metadata");
            self.update(|r| r.metadata.merge(more));
        }
    }

    /// Adds a tag to Opik's `tags` list, in the order added. Tags are unique, as Opik wants
    /// them (a `Set<String>` in its `Span.java`): adding one twice keeps one.
    ///
    /// ```
    /// # let span = tower_opik::Span::none();
    /// span.add_tag("rag");
    /// span.add_tag("cache-miss"); // "tags": ["rag", "cache-miss"]
    /// ```
    pub fn add_tag(&self, tag: impl Into<String>) {
        let tag = tag.into();
        self.update(|r| {
            if !r.tags.contains(&tag) {
                r.tags.push(tag);
            }
        });
    }

    /// Gives the span a feedback score, sent right after the span when it ends (Python's
    /// `update_current_span(feedback_scores=[...])`), to `PUT v1/private/spans/feedback-scores`.
    /// Several scores may have one name. To score a span after it ended, use
    /// [`SpanStore::score_span`](crate::SpanStore::score_span) with its id.
    ///
    /// ```
    /// # let answer = tower_opik::Span::none();
    /// use tower_opik::record::FeedbackScore;
    /// // An online check of the answer against the retrieved documents, from 0 to 1.
    /// answer.add_feedback_score(FeedbackScore::new("groundedness", 0.9).reason("2 of 2 claims cited"));
    /// ```
    pub fn add_feedback_score(&self, score: crate::record::FeedbackScore) {
        self.update(|r| r.scores.push(score));
    }

    /// Sets the token usage (Opik's `usage`: counter name to an int32 count of tokens,
    /// `Map<String, Integer>` in its `Span.java`), replacing an earlier one. None by default.
    /// Build it from the provider's usage object ([`Usage::from_openai`],
    /// [`Usage::from_anthropic`]) to keep the counters Opik's cost estimate reads.
    ///
    /// ```
    /// # let llm = tower_opik::Span::none();
    /// use tower_opik::Usage;
    /// llm.set_usage(Usage::tokens(812, 64));
    /// // "usage": {"completion_tokens": 64, "prompt_tokens": 812, "total_tokens": 876}
    /// ```
    pub fn set_usage(&self, usage: Usage) {
        self.update(|r| r.usage = Some(usage));
    }

    /// Sets the model of an LLM span (Opik's `model`), as the provider names it; with the
    /// [`provider`](Self::set_provider) and the [`usage`](Self::set_usage), it is what Opik
    /// estimates the cost from when [`set_total_cost`](Self::set_total_cost) is not called.
    /// None by default.
    ///
    /// ```
    /// # let llm = tower_opik::Span::none();
    /// llm.set_model("gpt-4o-2024-08-06"); // "model": "gpt-4o-2024-08-06"
    /// ```
    pub fn set_model(&self, model: impl Into<String>) {
        let model = model.into();
        self.update(|r| r.model = Some(model));
    }

    /// Sets the provider of an LLM span (Opik's `provider`: `openai`, `anthropic`, ...).
    /// None by default.
    ///
    /// ```
    /// # let llm = tower_opik::Span::none();
    /// llm.set_provider("anthropic"); // "provider": "anthropic"
    /// ```
    pub fn set_provider(&self, provider: impl Into<String>) {
        let provider = provider.into();
        self.update(|r| r.provider = Some(provider));
    }

    /// Sets the estimated cost of the call, in US dollars (Opik's `total_estimated_cost`),
    /// over the estimate Opik would compute from model, provider and usage. A negative or
    /// non-finite cost is ignored, and any earlier one kept: Opik refuses a negative one
    /// (`@DecimalMin("0.0")` in its `Span.java`) and JSON has no NaN.
    ///
    /// ```
    /// # let llm = tower_opik::Span::none();
    /// // 812 prompt tokens at $2.50 per million, 64 completion tokens at $10.00 per million.
    /// let usd = 812.0 * 2.50 / 1e6 + 64.0 * 10.00 / 1e6;
    /// llm.set_total_cost(usd); // "total_estimated_cost": 0.00267
    /// ```
    pub fn set_total_cost(&self, usd: f64) {
        if usd.is_finite() && usd >= 0.0 {
            self.update(|r| r.total_estimated_cost = Some(usd));
        }
    }

    /// Records an error on the span (Opik's `error_info`: `exception_type`, `message`,
    /// `traceback`), and on its trace when it is the trace's root. Replaces an earlier
    /// error; the server layer's generic one for a 5xx status never replaces yours. Opik
    /// shows the span as failed. To record a `Result` and end the span at once, see
    /// [`end_with_result`](Self::end_with_result).
    ///
    /// ```
    /// # let llm = tower_opik::Span::none();
    /// use tower_opik::ErrorInfo;
    /// llm.set_error(ErrorInfo::new("RateLimited", "429 from the provider after 3 retries"));
    /// // "error_info": {"exception_type": "RateLimited", "message": "429 ...", "traceback": "429 ..."}
    /// ```
    pub fn set_error(&self, error: ErrorInfo) {
        self.update(|r| r.error_info = Some(error));
    }

    /// Sets the time to first token of a streamed answer, measured by the caller: sent as
    /// Opik's `ttft`, in milliseconds with microsecond precision. Replaces an earlier
    /// value; none by default. To measure it from the span's start, see
    /// [`mark_first_token`](Self::mark_first_token).
    ///
    /// ```
    /// # let llm = tower_opik::Span::none();
    /// use std::time::Duration;
    /// llm.set_ttft(Duration::from_micros(412_250)); // "ttft": 412.25
    /// ```
    pub fn set_ttft(&self, ttft: Duration) {
        self.update(|r| r.ttft = Some(millis(ttft)));
    }

    /// Sets the time to first token (Opik's `ttft`, milliseconds) to the wall-clock time
    /// elapsed since the span started: call it when the first chunk of a streamed answer
    /// arrives. A later call replaces the value, so call it once. Streams wrapped with
    /// [`Span::track_stream`] get it set for them.
    ///
    /// ```
    /// # let llm = tower_opik::Span::none();
    /// # let chunks = ["It ", "left ", "today."];
    /// let mut answer = String::new();
    /// for (i, chunk) in chunks.iter().enumerate() {
    ///     if i == 0 {
    ///         llm.mark_first_token(); // e.g. "ttft": 412.25 when it came 412.25 ms in
    ///     }
    ///     answer.push_str(chunk);
    /// }
    /// llm.set_output(answer);
    /// ```
    pub fn mark_first_token(&self) {
        let now = Timestamp::now();
        self.update(|r| {
            r.ttft = Some(millis(now.duration_since(r.start_time)));
        });
    }

    /// Sets the deployment environment (Opik's `environment`: `production`, `staging`,
    /// ...), at most 150 characters: a longer one is cut to its first 150 characters
    /// (not bytes), since Opik refuses it. None by default.
    ///
    /// ```
    /// # let span = tower_opik::Span::none();
    /// span.set_environment("staging"); // "environment": "staging"
    /// ```
    pub fn set_environment(&self, environment: impl Into<String>) {
        let mut environment: String = environment.into();
        if let Some((cut, _)) = environment.char_indices().nth(150) {
            environment.truncate(cut);
        }
        self.update(|r| r.environment = Some(environment));
    }

    /// Sets the conversation thread of the span's trace, from any span of it: the same as
    /// `update_trace(TraceUpdate::new().thread_id(..))`. Only the service that started the
    /// trace writes the trace record, so elsewhere this does nothing. Opik's `thread_id`
    /// groups the traces of one conversation (one per user turn) in its Threads view.
    ///
    /// ```
    /// # let span = tower_opik::Span::none();
    /// # let session_id = 42;
    /// span.set_thread_id(format!("support-chat-{session_id}")); // trace "thread_id"
    /// ```
    pub fn set_thread_id(&self, thread_id: impl Into<String>) {
        self.update_trace(super::TraceUpdate::new().thread_id(thread_id));
    }
}

/// Milliseconds with microsecond precision (no float noise such as `31.779000000000003`).
fn millis(duration: Duration) -> f64 {
    duration.as_micros() as f64 / 1000.0
}
