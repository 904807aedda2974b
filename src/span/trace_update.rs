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
    /// An update that changes nothing.
    ///
    /// ```
    /// let u = tower_opik::TraceUpdate::new();
    /// assert_eq!(u, tower_opik::TraceUpdate::default());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Renames the trace (by default it has its root span's name).
    ///
    /// ```
    /// let u = tower_opik::TraceUpdate::new().name("checkout");
    /// ```
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Merges into the trace's input: an object's keys (each replacing the same key), any
    /// other value under `"input"`. Serialized now.
    ///
    /// ```
    /// let u = tower_opik::TraceUpdate::new().input(serde_json::json!({"question": "why?"}));
    /// ```
    pub fn input(mut self, input: impl Serialize) -> Self {
        self.input.extend(input, "input");
        self
    }

    /// Merges into the trace's output (as [`input`](Self::input), under `"output"`).
    ///
    /// ```
    /// let u = tower_opik::TraceUpdate::new().output("because");
    /// ```
    pub fn output(mut self, output: impl Serialize) -> Self {
        self.output.extend(output, "output");
        self
    }

    /// Sets one metadata entry of the trace.
    ///
    /// ```
    /// let u = tower_opik::TraceUpdate::new().metadata("customer_tier", "gold");
    /// ```
    pub fn metadata(mut self, key: impl Into<String>, value: impl Serialize) -> Self {
        self.metadata.insert(key, value);
        self
    }

    /// Adds a tag to the trace (tags are unique).
    ///
    /// ```
    /// let u = tower_opik::TraceUpdate::new().tag("beta").tag("beta");
    /// ```
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        let tag = tag.into();
        if !self.tags.contains(&tag) {
            self.tags.push(tag);
        }
        self
    }

    /// Groups the trace into a conversation thread (unique per project, user-defined).
    ///
    /// ```
    /// let u = tower_opik::TraceUpdate::new().thread_id("conversation-42");
    /// ```
    pub fn thread_id(mut self, thread_id: impl Into<String>) -> Self {
        self.thread_id = Some(thread_id.into());
        self
    }

    /// Records an error on the trace (by default it has its root span's).
    ///
    /// ```
    /// let u = tower_opik::TraceUpdate::new().error(tower_opik::ErrorInfo::new("Refused", "guardrail"));
    /// ```
    pub fn error(mut self, error: ErrorInfo) -> Self {
        self.error_info = Some(error);
        self
    }

    /// Gives the trace a feedback score, sent right after the trace record when its root
    /// ends (Python's `update_current_trace(feedback_scores=[...])`).
    ///
    /// ```
    /// use tower_opik::record::FeedbackScore;
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
