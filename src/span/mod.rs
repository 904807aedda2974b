//! An open span: the handle user code sets fields on, opens children from, and ends.
//!
//! A [`Span`] owns its record until it ends, then hands it to the store exactly once: at
//! [`Span::end`], or when its last handle is dropped (a forgotten or cancelled span is still
//! recorded, with `"tower_opik.unfinished": true` in its metadata). It knows nothing about
//! HTTP.
//!
//! # An LLM call, and what Opik receives
//!
//! A chat endpoint's root span with an LLM child, filled the way a service fills it after
//! its provider answers. Each setter writes one field of Opik's `SpanWrite` (the span
//! schema of Opik's REST API, `apps/opik-backend/.../api/Span.java`): `model`, `provider`,
//! `usage` (counter name to int32 token count), `ttft` (milliseconds), `total_estimated_cost`
//! (USD, `>= 0`), `metadata`, `tags`, `error_info`. In a service the store comes from
//! [`SpanStore::from_env`] and sends to Opik; here an in-memory exporter keeps the span
//! records as the JSON Opik would receive.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::{Arc, Mutex};
//! use std::time::Duration;
//! use serde_json::{json, Value};
//! use tower_opik::store::{ExportBatch, ExportFuture, Exporter, RecordKind};
//! use tower_opik::{ErrorInfo, OpikConfig, SpanStore, SpanType, Usage};
//!
//! /// Keeps the span records it is given, as JSON.
//! #[derive(Clone, Debug, Default)]
//! struct Spans(Arc<Mutex<Vec<Value>>>);
//! impl Exporter for Spans {
//!     fn export<'a>(&'a self, batch: &'a ExportBatch) -> ExportFuture<'a> {
//!         if batch.kind() == RecordKind::Span {
//!             let parsed = batch.records_json().map(|(_, j)| serde_json::from_slice(j).unwrap());
//!             self.0.lock().unwrap().extend(parsed);
//!         }
//!         Box::pin(async { Ok(()) })
//!     }
//! }
//! let spans = Spans::default();
//! let store = SpanStore::builder()
//!     .config(OpikConfig::local("http://127.0.0.1:1/")) // never called: the exporter sends
//!     .exporter(spans.clone())
//!     .build()?;
//!
//! let request = store.root_span("POST /chat");
//! request.set_input(json!({"question": "Where is my order?"}));
//!
//! let llm = request.child_of_type("openai.chat", SpanType::Llm);
//! llm.set_provider("openai");
//! llm.set_model("gpt-4o-2024-08-06");
//! llm.set_input(json!({"messages": [{"role": "user", "content": "Where is my order?"}]}));
//! llm.set_ttft(Duration::from_millis(412)); // the first streamed token came after 412 ms
//! llm.set_usage(Usage::tokens(812, 64)); // prompt and completion tokens
//! llm.set_total_cost(0.002_67); // USD
//! llm.set_metadata("temperature", 0.2);
//! llm.add_tag("rag");
//! llm.set_output(json!({"content": "It left the warehouse today."}));
//! llm.end();
//!
//! // A retry that timed out: the span records the error and still ends.
//! let retry = request.child_of_type("openai.chat", SpanType::Llm);
//! retry.set_error(ErrorInfo::new("Timeout", "no answer in 30 s"));
//! retry.end();
//!
//! request.set_output("It left the warehouse today."); // not an object: {"output": ...}
//! request.end();
//!
//! store.flush(Duration::from_secs(5)).await;
//! let spans = spans.0.lock().unwrap();
//! let llm = spans.iter().find(|s| s["type"] == "llm" && s.get("model").is_some()).unwrap();
//! assert_eq!(llm["model"], "gpt-4o-2024-08-06");
//! assert_eq!(llm["provider"], "openai");
//! assert_eq!(llm["ttft"], 412.0);
//! assert_eq!(llm["usage"], json!({"completion_tokens": 64, "prompt_tokens": 812, "total_tokens": 876}));
//! assert_eq!(llm["total_estimated_cost"], 0.00267);
//! assert_eq!(llm["metadata"]["temperature"], 0.2);
//! assert_eq!(llm["tags"], json!(["rag"]));
//! assert_eq!(llm["parent_span_id"], request.id().unwrap().to_string());
//!
//! let failed = spans.iter().find(|s| s.get("error_info").is_some()).unwrap();
//! assert_eq!(failed["error_info"]["exception_type"], "Timeout");
//!
//! let root = spans.iter().find(|s| s["name"] == "POST /chat").unwrap();
//! assert_eq!(root["output"], json!({"output": "It left the warehouse today."}));
//! assert!(root.get("parent_span_id").is_none()); // a root: absent, never null
//! # Ok(()) }
//! ```

use std::borrow::Cow;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use uuid::Uuid;

use crate::headers::DistributedHeaders;
use crate::id::new_id;
use crate::record::{ErrorInfo, SpanRecord, SpanType, TraceFields};
use crate::store::SpanStore;
use crate::time::Timestamp;

mod accessors;
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
#[must_use = "a span does nothing unless you record on it, run code in it (`in_span`, `in_scope`) or, for one you started, `end()` it"]
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
    /// A span that records nothing: every setter returns at once, [`child`](Self::child)
    /// gives another none span, the ids are `None`. The same as `Span::default()`, and what
    /// a disabled store's spans are. Use it where a function takes a `&Span` and the caller
    /// has nothing to record (a test, a batch job without tracing).
    ///
    /// ```
    /// use tower_opik::{Span, Usage};
    /// fn summarize(text: &str, span: &Span) -> String {
    ///     span.set_usage(Usage::tokens(text.len() as u32 / 4, 12));
    ///     text.chars().take(20).collect()
    /// }
    /// // Called without tracing: nothing is recorded, nothing is sent.
    /// assert_eq!(summarize("Opik traces LLM calls", &Span::none()), "Opik traces LLM call");
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

    /// Opens a child span (type `general`) in the same trace and project, started now; its
    /// `parent_span_id` is this span's id. A child of a none span is a none span. A child
    /// may outlive its parent (a task spawned from a request): each ends on its own.
    ///
    /// ```
    /// # fn load_orders() -> Vec<u32> { vec![42] }
    /// let store = tower_opik::SpanStore::disabled(); // SpanStore::from_env() in a service
    /// let request = store.root_span("GET /orders");
    /// let query = request.child("SELECT orders");
    /// query.set_metadata("db.system", "postgresql");
    /// let orders = load_orders();
    /// query.set_output(serde_json::json!({"rows": orders.len()}));
    /// query.end();
    /// request.end();
    /// ```
    pub fn child(&self, name: impl Into<Cow<'static, str>>) -> Span {
        self.child_of_type(name, SpanType::General)
    }

    /// Opens a child span of the given type (Opik's `type` field: `general`, `llm`, `tool`,
    /// `guardrail`), as [`child`](Self::child) does. Opik shows `llm` spans with their model,
    /// usage and cost; an agent's tool calls as `tool`.
    ///
    /// ```
    /// use tower_opik::SpanType;
    /// let agent = tower_opik::SpanStore::disabled().root_span("agent step");
    /// let tool = agent.child_of_type("web_search", SpanType::Tool); // "type": "tool"
    /// tool.set_input(serde_json::json!({"query": "opik rust sdk"}));
    /// tool.end();
    /// agent.end();
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

    /// The error recorded on the span so far (`None` once ended, or without one).
    pub(crate) fn error_info(&self) -> Option<ErrorInfo> {
        let mut error = None;
        self.update(|r| error = r.error_info.clone());
        error
    }

    /// Runs `f` on the open record; does nothing once the span has ended.
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

    /// Ends the span now (its `end_time`, and `last_updated_at`) and hands its record to the
    /// store, which sends it in the background: this never waits on the network. Ending
    /// twice does nothing; setters after the end change nothing. A root span that owns its
    /// trace also writes the trace record now. Not calling it is not a leak: the span is
    /// recorded when its last handle drops, marked [`UNFINISHED_KEY`].
    ///
    /// ```
    /// # fn call_model() -> Result<String, std::io::Error> { Ok("hi".into()) }
    /// let llm = tower_opik::SpanStore::disabled().root_span("llm call");
    /// match call_model() {
    ///     Ok(answer) => llm.set_output(answer),
    ///     Err(e) => llm.set_error(tower_opik::ErrorInfo::from_error(&e)),
    /// }
    /// llm.end(); // the duration Opik shows is end_time - start_time
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
