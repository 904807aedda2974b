//! Trace-level updates from any span of the trace: the Python SDK's
//! `opik_context.update_current_trace(name, input, output, metadata, tags, thread_id)`.

use std::borrow::Cow;

use serde::Serialize;

use super::Span;
use crate::record::{ErrorInfo, FeedbackScore, Metadata, TraceFields};

/// Changes to the trace a span belongs to, applied by [`Span::update_trace`] or
/// [`update_current_trace`](crate::update_current_trace), with the Python SDK's semantics
/// (`ObservationData.update`): the name, thread id and error are replaced (last write wins);
/// `input`, `output` and `metadata` are merged key by key over what the trace has (a later
/// value for a key wins); tags are added. The trace record still goes out once, complete,
/// when the trace's root span ends, written from the root's record with these changes.
///
/// Only the service that started the trace writes its record: on a service that joined a
/// remote trace (`opik_trace_id` from a caller), an update changes nothing here and returns
/// `false` (where the Python SDK raises "There is no trace in the context").
///
/// ```
/// use tower_opik::TraceUpdate;
/// let update = TraceUpdate::new()
///     .name("support chat")
///     .input(serde_json::json!({"question": "why?"}))
///     .metadata("customer_tier", "gold")
///     .tag("escalated")
///     .thread_id("conversation-42");
/// let store = tower_opik::SpanStore::disabled();
/// assert!(!store.root_span("x").update_trace(update)); // a disabled store records nothing
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
#[must_use = "an update does nothing until applied with Span::update_trace"]
pub struct TraceUpdate {
    name: Option<Cow<'static, str>>,
    input: Metadata,
    output: Metadata,
    metadata: Metadata,
    tags: Vec<String>,
    thread_id: Option<String>,
    error_info: Option<ErrorInfo>,
    scores: Vec<FeedbackScore>,
}

impl TraceUpdate {
    /// An update that changes nothing (the same as `TraceUpdate::default()`); chain the
    /// changes onto it and apply it with [`Span::update_trace`] or
    /// [`update_current_trace`](crate::update_current_trace).
    ///
    /// ```
    /// # let span = tower_opik::Span::none();
    /// # let user_tier = "gold";
    /// use tower_opik::TraceUpdate;
    /// // Deep in a handler: what this request turned out to be, written on the whole trace.
    /// span.update_trace(TraceUpdate::new().name("refund request").metadata("customer_tier", user_tier));
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Renames the trace (Opik's trace `name`; by default its root span's name, such as
    /// `"POST /chat"`). Last write wins.
    ///
    /// ```
    /// # let intent = "refund";
    /// let u = tower_opik::TraceUpdate::new().name(format!("support: {intent}")); // "name": "support: refund"
    /// ```
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Merges into the trace's input: an object's keys (each replacing the same key), any
    /// other value under `"input"`. Serialized now. The keys are merged over the root
    /// span's input in the trace record (the root span keeps its own).
    ///
    /// ```
    /// use serde_json::json;
    /// let u = tower_opik::TraceUpdate::new().input(json!({"question": "Where is my order?"}));
    /// // trace "input": {...the root span's keys..., "question": "Where is my order?"}
    /// ```
    pub fn input(mut self, input: impl Serialize) -> Self {
        self.input.extend(input, "input");
        self
    }

    /// Merges into the trace's output (as [`input`](Self::input), under `"output"`).
    ///
    /// ```
    /// let u = tower_opik::TraceUpdate::new().output("It left the warehouse today.");
    /// // trace "output": {"output": "It left the warehouse today."}
    /// ```
    pub fn output(mut self, output: impl Serialize) -> Self {
        self.output.extend(output, "output");
        self
    }

    /// Sets one metadata entry of the trace (serialized now), over the root span's
    /// metadata key of the same name.
    ///
    /// ```
    /// let u = tower_opik::TraceUpdate::new().metadata("retrieved_docs", 3); // "metadata": {"retrieved_docs": 3, ...}
    /// ```
    pub fn metadata(mut self, key: impl Into<String>, value: impl Serialize) -> Self {
        self.metadata.insert(key, value);
        self
    }

    /// Adds a tag to the trace, after the root span's tags (tags are unique: Opik refuses
    /// duplicates, so one added twice is kept once).
    ///
    /// ```
    /// let u = tower_opik::TraceUpdate::new().tag("escalated"); // "tags": [..., "escalated"]
    /// ```
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        let tag = tag.into();
        if !self.tags.contains(&tag) {
            self.tags.push(tag);
        }
        self
    }

    /// Groups the trace into a conversation thread (Opik's `thread_id`: any text you
    /// choose, unique per project; each trace is one turn). None by default.
    ///
    /// ```
    /// # let session_id = 42;
    /// let u = tower_opik::TraceUpdate::new().thread_id(format!("support-chat-{session_id}"));
    /// ```
    pub fn thread_id(mut self, thread_id: impl Into<String>) -> Self {
        self.thread_id = Some(thread_id.into());
        self
    }

    /// Records an error on the trace (Opik's `error_info`; by default the trace has its root
    /// span's). Last write wins.
    ///
    /// ```
    /// use tower_opik::{ErrorInfo, TraceUpdate};
    /// // The request answered 200, but a guardrail refused the answer: the trace failed.
    /// let u = TraceUpdate::new().error(ErrorInfo::new("GuardrailRefused", "PII in the answer"));
    /// ```
    pub fn error(mut self, error: ErrorInfo) -> Self {
        self.error_info = Some(error);
        self
    }

    /// Gives the trace a feedback score, sent right after the trace record when its root
    /// ends (Python's `update_current_trace(feedback_scores=[...])`), to
    /// `PUT v1/private/traces/feedback-scores`.
    ///
    /// ```
    /// use tower_opik::record::FeedbackScore;
    /// // 1.0: the conversation ended with the customer's issue resolved.
    /// let u = tower_opik::TraceUpdate::new().feedback_score(FeedbackScore::new("resolved", 1.0));
    /// ```
    pub fn feedback_score(mut self, score: FeedbackScore) -> Self {
        self.scores.push(score);
        self
    }

    /// Applies the update to the trace-only fields of a root record.
    pub(crate) fn apply(self, fields: &mut TraceFields) {
        if let Some(name) = self.name {
            fields.name = Some(name);
        }
        fields.input.merge(self.input);
        fields.output.merge(self.output);
        fields.metadata.merge(self.metadata);
        for tag in self.tags {
            if !fields.tags.contains(&tag) {
                fields.tags.push(tag);
            }
        }
        if let Some(thread_id) = self.thread_id {
            fields.thread_id = Some(thread_id);
        }
        if let Some(error) = self.error_info {
            fields.error_info = Some(error);
        }
        fields.scores.extend(self.scores);
    }
}

impl Span {
    /// Applies `update` to this span's trace, from any span of it in the process that
    /// started the trace (see [`TraceUpdate`] for the semantics). Returns whether the trace
    /// took it: `false` for a span of a trace another service started, a span whose
    /// trace's root has already ended, or a [`Span::none`].
    ///
    /// ```
    /// let store = tower_opik::SpanStore::disabled();
    /// let step = store.root_span("request").child("retrieve");
    /// step.update_trace(tower_opik::TraceUpdate::new().tag("cache-miss"));
    /// ```
    pub fn update_trace(&self, update: TraceUpdate) -> bool {
        let Some(inner) = &self.inner else {
            return false;
        };
        let root = if inner.owns_trace {
            None
        } else {
            match inner.root.as_ref().and_then(std::sync::Weak::upgrade) {
                Some(root) => Some(root),
                None => {
                    tracing::debug!(
                        target: "tower_opik",
                        "a trace update on a span whose trace another service owns (or whose \
                         root has ended): ignored"
                    );
                    return false;
                }
            }
        };
        let owner = root.as_deref().unwrap_or(inner);
        let mut state = owner.lock();
        match state.record.as_mut() {
            Some(record) => {
                update.apply(record.trace.get_or_insert_with(Default::default));
                true
            }
            None => false,
        }
    }
}
