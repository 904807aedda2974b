//! An open span: the handle user code sets fields on, opens children from, and ends.
//!
//! A [`Span`] owns its record until it ends, then hands it to the store exactly once: at
//! [`Span::end`], or when its last handle is dropped (a forgotten or cancelled span is still
//! recorded, with `"tower_opik.unfinished": true` in its metadata). It knows nothing about
//! HTTP.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::headers::DistributedHeaders;
use crate::id::new_id;
use crate::record::{
    ErrorInfo, JsonObject, RequestMetadata, SpanRecord, SpanType, TraceRecord, Usage, into_object,
};
use crate::store::SpanStore;
use crate::time::Timestamp;

/// Metadata key set on a span that was recorded because its last handle was dropped before
/// [`Span::end`] was called.
///
/// ```
/// assert_eq!(tower_opik::span::UNFINISHED_KEY, "tower_opik.unfinished");
/// ```
pub const UNFINISHED_KEY: &str = "tower_opik.unfinished";

/// A handle on an open span. Cheap to clone (an `Arc`); all clones are the same span.
///
/// A span from a disabled store (or [`Span::none`]) records nothing and costs next to
/// nothing: every setter returns at once.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use serde_json::json;
/// use tower_opik::{SpanStore, SpanType, Usage};
///
/// let store = SpanStore::disabled(); // SpanStore::from_env() in a real service
/// let root = store.root_span("chat");
/// root.set_input(json!({"question": "why?"}));
/// let llm = root.child_of_type("gpt call", SpanType::Llm);
/// llm.set_model("gpt-4o");
/// llm.set_usage(Usage::tokens(12, 30));
/// llm.end();
/// root.set_output(json!({"answer": "because"}));
/// root.end();
/// # }
/// ```
#[derive(Clone, Default)]
pub struct Span {
    inner: Option<Arc<Inner>>,
    /// A none span that [`current_span`](crate::current_span) answered outside any span:
    /// asking it for a child is counted (`StoreStats::no_current_span`).
    detached: bool,
}

struct Inner {
    id: Uuid,
    trace_id: Uuid,
    parent_span_id: Option<Uuid>,
    /// Whether this span started its trace here, so that this service writes the trace.
    owns_trace: bool,
    store: SpanStore,
    state: Mutex<State>,
}

struct State {
    /// `None` once recorded. Boxed from the start, so that ending the span moves a pointer
    /// to the store instead of copying the record (about 450 bytes) and allocating again.
    record: Option<Box<SpanRecord>>,
    /// Trace-level field, written only by the trace's owner.
    thread_id: Option<String>,
}

impl std::fmt::Debug for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            None => f.write_str("Span(none)"),
            Some(i) => f
                .debug_struct("Span")
                .field("id", &i.id)
                .field("trace_id", &i.trace_id)
                .field("parent_span_id", &i.parent_span_id)
                .field("owns_trace", &i.owns_trace)
                .finish_non_exhaustive(),
        }
    }
}

impl Span {
    /// A span that records nothing.
    ///
    /// ```
    /// let s = tower_opik::Span::none();
    /// assert!(s.is_none());
    /// s.set_output("ignored");
    /// ```
    pub const fn none() -> Self {
        Self {
            inner: None,
            detached: false,
        }
    }

    /// The none span `current_span()` answers outside any span.
    pub(crate) const fn detached() -> Self {
        Self {
            inner: None,
            detached: true,
        }
    }

    /// Starts a span in `store`: the root of a new trace when `parent` is `None` (this
    /// service then writes the trace record too), else a child of the remote parent (spans
    /// only: the trace belongs to the service that started it).
    pub(crate) fn start(
        store: &SpanStore,
        name: Cow<'static, str>,
        parent: Option<&DistributedHeaders>,
    ) -> Self {
        if !store.is_enabled() {
            return Self::none();
        }
        let (trace_id, parent_span_id, owns_trace) = match parent {
            Some(p) => (p.trace_id(), p.parent_span_id(), false),
            None => (new_id(), None, true),
        };
        Self::open(
            store.clone(),
            trace_id,
            parent_span_id,
            owns_trace,
            name,
            SpanType::General,
        )
    }

    fn open(
        store: SpanStore,
        trace_id: Uuid,
        parent_span_id: Option<Uuid>,
        owns_trace: bool,
        name: Cow<'static, str>,
        span_type: SpanType,
    ) -> Self {
        let id = new_id();
        let mut record = Box::new(SpanRecord::new(id, trace_id, name, Timestamp::now()));
        record.parent_span_id = parent_span_id;
        record.project_name = store.project_name().cloned();
        record.span_type = span_type;
        let inner = Inner {
            id,
            trace_id,
            parent_span_id,
            owns_trace,
            store,
            state: Mutex::new(State {
                record: Some(record),
                thread_id: None,
            }),
        };
        Self {
            inner: Some(Arc::new(inner)),
            detached: false,
        }
    }

    /// Opens a child span (type `general`) in the same trace and project.
    ///
    /// ```
    /// let store = tower_opik::SpanStore::disabled();
    /// let child = store.root_span("request").child("db query");
    /// child.end();
    /// ```
    pub fn child(&self, name: impl Into<Cow<'static, str>>) -> Span {
        self.child_of_type(name, SpanType::General)
    }

    /// Opens a child span of the given type.
    ///
    /// ```
    /// use tower_opik::SpanType;
    /// let tool = tower_opik::Span::none().child_of_type("search", SpanType::Tool);
    /// assert!(tool.is_none());
    /// ```
    pub fn child_of_type(&self, name: impl Into<Cow<'static, str>>, span_type: SpanType) -> Span {
        match &self.inner {
            None => {
                if self.detached {
                    crate::store::no_current_span();
                }
                Span::none()
            }
            Some(p) => Self::open(
                p.store.clone(),
                p.trace_id,
                Some(p.id),
                false,
                name.into(),
                span_type,
            ),
        }
    }

    /// Whether this span records nothing (disabled store, or [`Span::none`]).
    ///
    /// ```
    /// assert!(tower_opik::Span::none().is_none());
    /// ```
    pub fn is_none(&self) -> bool {
        self.inner.is_none()
    }

    /// Whether the span is open: it records and has not ended yet.
    ///
    /// ```
    /// assert!(!tower_opik::Span::none().is_recording());
    /// ```
    pub fn is_recording(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|i| i.lock().record.is_some())
    }

    /// The span's id.
    ///
    /// ```
    /// assert_eq!(tower_opik::Span::none().id(), None);
    /// ```
    pub fn id(&self) -> Option<Uuid> {
        self.inner.as_ref().map(|i| i.id)
    }

    /// The id of the span's trace.
    ///
    /// ```
    /// assert_eq!(tower_opik::Span::none().trace_id(), None);
    /// ```
    pub fn trace_id(&self) -> Option<Uuid> {
        self.inner.as_ref().map(|i| i.trace_id)
    }

    /// The id of the span's parent (local or remote), `None` for a root span.
    ///
    /// ```
    /// assert_eq!(tower_opik::Span::none().parent_span_id(), None);
    /// ```
    pub fn parent_span_id(&self) -> Option<Uuid> {
        self.inner.as_ref().and_then(|i| i.parent_span_id)
    }

    /// Whether this span started its trace in this service (and so writes the trace record).
    ///
    /// ```
    /// assert!(!tower_opik::Span::none().owns_trace());
    /// ```
    pub fn owns_trace(&self) -> bool {
        self.inner.as_ref().is_some_and(|i| i.owns_trace)
    }

    /// The headers to send to a downstream service so that its spans become children of this
    /// one: this span's trace id and its own id as the parent.
    ///
    /// ```
    /// assert!(tower_opik::Span::none().distributed_headers().is_none());
    /// ```
    pub fn distributed_headers(&self) -> Option<DistributedHeaders> {
        self.inner
            .as_ref()
            .map(|i| DistributedHeaders::new(i.trace_id, Some(i.id)))
    }

    /// Runs `f` on the open record; does nothing once the span has ended.
    fn update(&self, f: impl FnOnce(&mut SpanRecord)) {
        if let Some(inner) = &self.inner
            && let Some(record) = inner.lock().record.as_mut()
        {
            f(record);
        }
    }

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

    /// Renames the span.
    ///
    /// ```
    /// tower_opik::Span::none().set_name("POST /generate");
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

    /// Sets the span's type.
    ///
    /// ```
    /// tower_opik::Span::none().set_type(tower_opik::SpanType::Tool);
    /// ```
    pub fn set_type(&self, span_type: SpanType) {
        self.update(|r| r.span_type = span_type);
    }

    /// Sets the input. An object is kept as it is; any other value `v` is sent as
    /// `{"input": v}` (Opik wants an object).
    ///
    /// ```
    /// tower_opik::Span::none().set_input(serde_json::json!({"prompt": "hi"}));
    /// ```
    pub fn set_input(&self, input: impl Serialize) {
        if self.inner.is_some() {
            let value = to_object(input, "input");
            self.update(|r| r.input = value);
        }
    }

    /// Sets the output (wrapped as `{"output": v}` unless it is an object).
    ///
    /// ```
    /// tower_opik::Span::none().set_output("done");
    /// ```
    pub fn set_output(&self, output: impl Serialize) {
        if self.inner.is_some() {
            let value = to_object(output, "output");
            self.update(|r| r.output = value);
        }
    }

    /// Sets one metadata entry.
    ///
    /// ```
    /// tower_opik::Span::none().set_metadata("http.status", 200);
    /// ```
    pub fn set_metadata(&self, key: impl Into<String>, value: impl Serialize) {
        if self.inner.is_some() {
            let value = serde_json::to_value(value)
                .unwrap_or_else(|e| Value::String(format!("<not serializable: {e}>")));
            let key = key.into();
            self.update(|r| {
                r.metadata
                    .get_or_insert_with(JsonObject::new)
                    .insert(key, value);
            });
        }
    }

    /// Merges entries into the metadata (an object's keys; any other value under
    /// `"metadata"`).
    ///
    /// ```
    /// tower_opik::Span::none().extend_metadata(serde_json::json!({"a": 1, "b": 2}));
    /// ```
    pub fn extend_metadata(&self, entries: impl Serialize) {
        if self.inner.is_some()
            && let Some(entries) = to_object(entries, "metadata")
        {
            self.update(|r| {
                r.metadata
                    .get_or_insert_with(JsonObject::new)
                    .extend(entries)
            });
        }
    }

    /// Adds a tag (tags are unique; adding one twice keeps one).
    ///
    /// ```
    /// tower_opik::Span::none().add_tag("beta");
    /// ```
    pub fn add_tag(&self, tag: impl Into<String>) {
        let tag = tag.into();
        self.update(|r| {
            if !r.tags.contains(&tag) {
                r.tags.push(tag);
            }
        });
    }

    /// Sets token usage.
    ///
    /// ```
    /// tower_opik::Span::none().set_usage(tower_opik::Usage::tokens(10, 20));
    /// ```
    pub fn set_usage(&self, usage: Usage) {
        self.update(|r| r.usage = Some(usage));
    }

    /// Sets the model of an LLM span.
    ///
    /// ```
    /// tower_opik::Span::none().set_model("gpt-4o");
    /// ```
    pub fn set_model(&self, model: impl Into<String>) {
        let model = model.into();
        self.update(|r| r.model = Some(model));
    }

    /// Sets the provider of an LLM span (`openai`, `anthropic`, ...).
    ///
    /// ```
    /// tower_opik::Span::none().set_provider("openai");
    /// ```
    pub fn set_provider(&self, provider: impl Into<String>) {
        let provider = provider.into();
        self.update(|r| r.provider = Some(provider));
    }

    /// Sets the estimated cost in USD. A negative or non-finite cost is ignored (Opik
    /// refuses it).
    ///
    /// ```
    /// tower_opik::Span::none().set_total_cost(0.0042);
    /// ```
    pub fn set_total_cost(&self, usd: f64) {
        if usd.is_finite() && usd >= 0.0 {
            self.update(|r| r.total_estimated_cost = Some(usd));
        }
    }

    /// Records an error on the span (and on its trace, when it is the trace's root).
    ///
    /// ```
    /// tower_opik::Span::none().set_error(tower_opik::ErrorInfo::new("Timeout", "no answer"));
    /// ```
    pub fn set_error(&self, error: ErrorInfo) {
        self.update(|r| r.error_info = Some(error));
    }

    /// Sets the time to first token.
    ///
    /// ```
    /// tower_opik::Span::none().set_ttft(std::time::Duration::from_millis(180));
    /// ```
    pub fn set_ttft(&self, ttft: Duration) {
        self.update(|r| r.ttft = Some(ttft.as_secs_f64() * 1000.0));
    }

    /// Sets the time to first token to the time elapsed since the span started (call it
    /// when the first token of a streamed answer arrives).
    ///
    /// ```
    /// tower_opik::Span::none().mark_first_token();
    /// ```
    pub fn mark_first_token(&self) {
        let now = Timestamp::now();
        self.update(|r| {
            r.ttft = Some(now.duration_since(r.start_time).as_secs_f64() * 1000.0);
        });
    }

    /// Sets the deployment environment (`production`, `staging`, ...), at most 150
    /// characters (longer ones are cut).
    ///
    /// ```
    /// tower_opik::Span::none().set_environment("staging");
    /// ```
    pub fn set_environment(&self, environment: impl Into<String>) {
        let mut environment: String = environment.into();
        if let Some((cut, _)) = environment.char_indices().nth(150) {
            environment.truncate(cut);
        }
        self.update(|r| r.environment = Some(environment));
    }

    /// Sets the conversation thread of the span's trace. Only the service that started the
    /// trace writes the trace record, so elsewhere this does nothing.
    ///
    /// ```
    /// tower_opik::Span::none().set_thread_id("conversation-42");
    /// ```
    pub fn set_thread_id(&self, thread_id: impl Into<String>) {
        if let Some(inner) = &self.inner {
            if !inner.owns_trace {
                tracing::debug!(target: "tower_opik", "set_thread_id on a span that does not own its trace: ignored");
                return;
            }
            let mut state = inner.lock();
            if state.record.is_some() {
                state.thread_id = Some(thread_id.into());
            }
        }
    }

    /// Records a function's result and ends the span: `Ok(v)` sets the output to `v`
    /// (unless it serializes to `null`, as `()` does), `Err(e)` sets the error from `e`
    /// and its chain of sources ([`ErrorInfo::from_error`]). For `?`-heavy code: compute
    /// the result in an inner block, then end the span with it, so every early return is
    /// recorded without a `set_error` at each site.
    ///
    /// ```
    /// use tower_opik::{Span, SpanType};
    /// fn parse(span: &Span, text: &str) -> Result<u32, std::num::ParseIntError> {
    ///     let result = (|| {
    ///         let n: u32 = text.trim().parse()?;
    ///         Ok(n * 2)
    ///     })();
    ///     span.end_with_result(&result);
    ///     result
    /// }
    /// let span = tower_opik::SpanStore::disabled().root_span("parse");
    /// assert!(parse(&span, "x").is_err());
    /// ```
    pub fn end_with_result<T, E>(&self, result: &Result<T, E>)
    where
        T: Serialize,
        E: std::error::Error,
    {
        if self.inner.is_none() {
            return;
        }
        match result {
            Ok(value) => {
                let value = serde_json::to_value(value)
                    .unwrap_or_else(|e| Value::String(format!("<not serializable: {e}>")));
                if !value.is_null() {
                    self.set_output(value);
                }
            }
            Err(error) => self.set_error(ErrorInfo::from_error(error)),
        }
        self.end();
    }

    /// Ends the span now and hands its record to the store. Ending twice does nothing.
    ///
    /// ```
    /// let s = tower_opik::Span::none();
    /// s.end();
    /// s.end();
    /// ```
    pub fn end(&self) {
        if let Some(inner) = &self.inner {
            inner.finish(false);
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held cannot leave the record half-written in a way
        // that matters more than losing it: keep going.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records the span (and its trace, when it owns it) exactly once.
    fn finish(&self, dropped: bool) {
        let (mut span, thread_id) = {
            let mut state = self.lock();
            match state.record.take() {
                Some(record) => (record, state.thread_id.take()),
                None => return,
            }
        };
        let now = Timestamp::now();
        span.end_time = Some(now);
        span.last_updated_at = Some(now);
        if dropped {
            span.metadata
                .get_or_insert_with(JsonObject::new)
                .insert(UNFINISHED_KEY.into(), true.into());
        }
        let trace = self.owns_trace.then(|| {
            let mut trace = TraceRecord::new(self.trace_id, span.name.clone(), span.start_time);
            trace.project_name = span.project_name.clone();
            trace.end_time = span.end_time;
            trace.last_updated_at = span.last_updated_at;
            trace.input = span.input.clone();
            trace.output = span.output.clone();
            trace.metadata = span.metadata.clone();
            trace.tags = span.tags.clone();
            trace.error_info = span.error_info.clone();
            trace.ttft = span.ttft;
            trace.environment = span.environment.clone();
            trace.request = span.request.clone();
            trace.thread_id = thread_id;
            trace
        });
        self.store.record(span);
        if let Some(trace) = trace {
            self.store.record(trace);
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.finish(true);
    }
}

/// Serializes `value` into an object for `input`/`output`/`metadata`; a value that cannot
/// be serialized becomes a note saying so (never a panic, never a lost span).
fn to_object(value: impl Serialize, key: &str) -> Option<JsonObject> {
    let value = serde_json::to_value(value)
        .unwrap_or_else(|e| Value::String(format!("<not serializable: {e}>")));
    into_object(value, key)
}
