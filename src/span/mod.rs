//! An open span: the handle user code sets fields on, opens children from, and ends.
//!
//! A [`Span`] owns its record until it ends, then hands it to the store exactly once: at
//! [`Span::end`], or when its last handle is dropped (a forgotten or cancelled span is still
//! recorded, with `"tower_opik.unfinished": true` in its metadata). It knows nothing about
//! HTTP.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use uuid::Uuid;

use crate::headers::DistributedHeaders;
use crate::id::new_id;
use crate::record::{ErrorInfo, SpanRecord, SpanType, TraceFields};
use crate::store::SpanStore;
use crate::time::Timestamp;

mod held;
mod setters;
mod start;
mod trace_update;

pub use trace_update::TraceUpdate;

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
///
/// A span dropped at once is a zero-length span that never ended: the compiler says so
/// (`#[must_use]`).
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// tower_opik::current_span().child("forgotten");
/// ```
#[derive(Clone, Default)]
#[must_use = "a span records when it ends: keep it and call `end()` (or run code in it with `in_span` / `in_scope`)"]
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
    /// Whether its trace is kept by sampling (else it records nothing, ids aside).
    sampled: bool,
    /// A trace sampled out but held for errors: where its spans wait, and whether this span
    /// (its first here) decides.
    held: Option<(Arc<held::Held>, bool)>,
    /// The root span of the trace, when this process started it (for trace-level updates
    /// from any span); weak, so that a child never keeps its root from being recorded.
    root: Option<std::sync::Weak<Inner>>,
    store: SpanStore,
    state: Mutex<State>,
}

/// Where a new span sits: its trace, its parent, whether it starts the trace here, and
/// whether the trace is kept by sampling.
struct Ids {
    trace_id: Uuid,
    parent_span_id: Option<Uuid>,
    owns_trace: bool,
    sampled: bool,
    held: Option<(Arc<held::Held>, bool)>,
}

struct State {
    /// `None` once recorded. Boxed from the start, so that ending the span moves a pointer
    /// to the store instead of copying the record (about 450 bytes) and allocating again.
    record: Option<Box<SpanRecord>>,
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
        Self::start_at_rate(store, name, parent, store.sample_rate())
    }

    /// [`start`](Self::start), sampling the trace at `rate` (a layer's or a route's).
    pub(crate) fn start_at_rate(
        store: &SpanStore,
        name: Cow<'static, str>,
        parent: Option<&DistributedHeaders>,
        rate: f64,
    ) -> Self {
        if !store.is_enabled() {
            return Self::none();
        }
        let (trace_id, parent_span_id, owns_trace) = match parent {
            Some(p) => (p.trace_id(), p.parent_span_id(), false),
            None => (new_id(), None, true),
        };
        let sampled = crate::id::sampled(trace_id, rate);
        if owns_trace {
            store.count_sampling(sampled);
        }
        // Sampled out but held for errors: recorded, to the trace's holder, not the store.
        let held = (!sampled && store.keeps_errors()).then(|| (Arc::new(held::Held::new()), true));
        Self::open(
            store.clone(),
            Ids {
                trace_id,
                parent_span_id,
                owns_trace,
                sampled: sampled || held.is_some(),
                held,
            },
            None,
            name,
            SpanType::General,
        )
    }

    fn open(
        store: SpanStore,
        ids: Ids,
        root: Option<std::sync::Weak<Inner>>,
        name: Cow<'static, str>,
        span_type: SpanType,
    ) -> Self {
        let Ids {
            trace_id,
            parent_span_id,
            owns_trace,
            sampled,
            ..
        } = ids;
        let id = new_id();
        if !sampled {
            // Sampled out: the ids, to propagate, and nothing to record.
            return Self {
                inner: Some(Arc::new(Inner {
                    id,
                    trace_id,
                    parent_span_id,
                    owns_trace,
                    sampled,
                    held: None,
                    root: None,
                    store,
                    state: Mutex::new(State { record: None }),
                })),
                detached: false,
            };
        }
        let mut record = Box::new(SpanRecord::new(id, trace_id, name, Timestamp::now()));
        record.parent_span_id = parent_span_id;
        record.project_name = store.project_name().cloned();
        record.span_type = span_type;
        if owns_trace {
            // The trace record is written from this record at export: no copy here.
            record.trace = Some(Box::new(TraceFields::default()));
        }
        let inner = Inner {
            id,
            trace_id,
            parent_span_id,
            owns_trace,
            sampled,
            held: ids.held,
            root,
            store,
            state: Mutex::new(State {
                record: Some(record),
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
                Ids {
                    trace_id: p.trace_id,
                    parent_span_id: Some(p.id),
                    owns_trace: false,
                    sampled: p.sampled,
                    held: p.held.as_ref().map(|(h, _)| (h.clone(), false)),
                },
                if p.owns_trace {
                    Some(Arc::downgrade(p))
                } else {
                    p.root.clone()
                },
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

    /// Whether this span belongs to a trace sampling left out (it has ids, and records
    /// nothing).
    pub(crate) fn is_sampled_out(&self) -> bool {
        self.inner.as_ref().is_some_and(|i| !i.sampled)
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
    /// The error recorded on the span so far (`None` once ended, or without one).
    pub(crate) fn error_info(&self) -> Option<ErrorInfo> {
        let mut error = None;
        self.update(|r| error = r.error_info.clone());
        error
    }

    fn update(&self, f: impl FnOnce(&mut SpanRecord)) {
        if let Some(inner) = &self.inner
            && let Some(record) = inner.lock().record.as_mut()
        {
            f(record);
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
    ///
    /// For an error type that does not implement `std::error::Error` itself
    /// (`Box<dyn Error + Send + Sync>`, `anyhow::Error`), pass a reference to its
    /// `dyn Error` (`#[track]` does this for you):
    ///
    /// ```
    /// type BoxError = Box<dyn std::error::Error + Send + Sync>;
    /// let result: Result<u32, BoxError> = Err("no model".into());
    /// let span = tower_opik::Span::none();
    /// span.end_with_result(&result.as_ref().map_err(|e| &**e));
    /// // The exception type of a `dyn Error` is `Error`: a trait object has no type name.
    /// let e: &(dyn std::error::Error + Send + Sync) = &**result.as_ref().unwrap_err();
    /// assert_eq!(tower_opik::ErrorInfo::from_error(e).exception_type(), "Error");
    /// // anyhow: `result.as_ref().map_err(|e| &**e)` as well (anyhow::Error derefs to dyn Error).
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
                // `null` (as `()` serializes) sets nothing.
                if let Some(output) = crate::record::Payload::from_serialize(value, "output") {
                    self.update(|r| r.output = Some(output));
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

    /// Records the span exactly once (and with it its trace, when it owns it: the trace
    /// record is written from the span's record at export).
    fn finish(&self, dropped: bool) {
        let Some(mut span) = self.lock().record.take() else {
            return;
        };
        let now = Timestamp::now();
        span.end_time = Some(now);
        span.last_updated_at = Some(now);
        if dropped {
            span.metadata.insert(UNFINISHED_KEY, true);
        }
        match &self.held {
            Some((held, true)) => held.decide(span, &self.store),
            Some((held, false)) => held.push(span, &self.store),
            None => self.store.record(span),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.finish(true);
    }
}
