//! The span store: one bounded, non-blocking queue per process, shared by handle, with a
//! background task that batches records to Opik.
//!
//! - [`SpanStore::record`] is synchronous and never blocks, waits, locks or allocates: it
//!   claims a slot in a lock-free ring and runs inside `poll_frame` and `Drop`. It wakes the
//!   background task only when a batch's worth is waiting. When the queue is full the newest
//!   record is dropped, counted, and one rate-limited warning is logged.
//! - The background task batches spans and traces (at most 1000 items and a byte cap a
//!   call), sends on a full batch or every flush interval, up to four batches at once,
//!   retries what is worth retrying and isolates records the backend refuses.
//! - [`SpanStore::flush`] and [`SpanStore::shutdown`] are bounded by their timeout and report
//!   what happened; [`SpanStore::stats`] can be read at any time.
//!
//! Defaults, anchored to OpenTelemetry's `BatchSpanProcessor` (queue 2048, drop newest) and
//! the Python SDK (batches of up to 1000, flushed every 2 s, gzip from 256 bytes):
//!
//! | option | default |
//! |---|---|
//! | [`queue_capacity`](SpanStoreBuilder::queue_capacity) | 2048 records |
//! | [`max_queued_bytes`](SpanStoreBuilder::max_queued_bytes) | 64 MiB |
//! | [`max_batch_items`](SpanStoreBuilder::max_batch_items) | 1000 (Opik's limit) |
//! | [`max_batch_bytes`](SpanStoreBuilder::max_batch_bytes) | 8 MiB |
//! | [`flush_interval`](SpanStoreBuilder::flush_interval) | 2 s |
//! | [`export_concurrency`](SpanStoreBuilder::export_concurrency) | 4 batches in flight |
//! | [`gzip_threshold`](SpanStoreBuilder::gzip_threshold) | 256 bytes |
//! | [`gzip_level`](SpanStoreBuilder::gzip_level) | 1 (zlib-rs) |
//! | [`request_timeout`](SpanStoreBuilder::request_timeout) | 10 s |
//! | [`retry`](SpanStoreBuilder::retry) | [`RetryPolicy::default`] |
//! | [`spool_dir`](SpanStoreBuilder::spool_dir) | none (no disk spool) |
//! | [`spool_max_bytes`](SpanStoreBuilder::spool_max_bytes) | 1 GiB |

mod batcher;
mod builder;
mod counters;
mod exporter;
mod queue;
mod rest;
mod retry;
mod sender;
mod spool;
mod stats;
mod truncate;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use self::queue::{RecordQueue, Refused};

pub use builder::SpanStoreBuilder;
pub(crate) use counters::no_current_span;
pub use exporter::{ExportBatch, ExportError, ExportFuture, Exporter, RecordKind};
pub use rest::OpikRestExporter;
pub use retry::RetryPolicy;
pub use stats::{FlushReport, Loss, LossReason, StoreStats};

use self::batcher::Command;
use self::counters::Counters;
use crate::record::Record;
use crate::warn::RateLimit;

/// The handle on the process's span store. `Clone + Send + Sync`: every layer, middleware
/// and span of a process shares one.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_opik::Error> {
/// use std::time::Duration;
/// use tower_opik::{OpikConfig, SpanStore};
///
/// let config = OpikConfig::local("http://127.0.0.1:5173/api/");
/// let store = SpanStore::builder().config(config).flush_interval(Duration::from_secs(1)).build()?;
/// let span = store.root_span("job");
/// span.end();
/// let report = store.shutdown(Duration::from_millis(100)).await; // nothing listens there
/// println!("{report}");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SpanStore {
    inner: Arc<Shared>,
    /// The project of the spans started through this handle.
    project_name: Option<Arc<str>>,
    /// The share of new traces this handle's spans keep (see [`SpanStore::sample_rate`]).
    sample_rate: f64,
}

/// How long a shutdown out of time waits for what is left to be written to the spool.
const SPOOL_AT_SHUTDOWN: Duration = Duration::from_secs(10);

/// The store [`SpanStore::set_global`] installed.
static GLOBAL: std::sync::RwLock<Option<SpanStore>> = std::sync::RwLock::new(None);

struct Shared {
    /// `None` when tracing is disabled.
    queue: Option<Queue>,
    counters: Arc<Counters>,
    /// Traces sampled out are held, and sent when their first span here ends with an
    /// error, within this many bytes at once (0: off).
    keep_errors_max_bytes: usize,
}

struct Queue {
    records: Arc<RecordQueue>,
    commands: mpsc::UnboundedSender<Command>,
    full_warning: RateLimit,
    late_warning: RateLimit,
    /// Told when a shutdown runs out of time (what is left goes to disk).
    spool: Option<Arc<spool::Spool>>,
    _live: counters::LiveStore,
}

impl std::fmt::Debug for SpanStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanStore")
            .field("enabled", &self.is_enabled())
            .field("project_name", &self.project_name)
            .field("stats", &self.stats())
            .finish()
    }
}

impl SpanStore {
    /// A builder; see the [module docs](crate::store) for the defaults.
    ///
    /// ```
    /// let builder = tower_opik::SpanStore::builder().queue_capacity(10_000);
    /// ```
    pub fn builder() -> SpanStoreBuilder {
        SpanStoreBuilder::default()
    }

    /// A store configured from the environment and `~/.opik.config`, as the official SDKs
    /// read them. Must be called inside a tokio runtime (with time enabled).
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), tower_opik::Error> {
    /// let store = tower_opik::SpanStore::from_env()?;
    /// # Ok(()) }
    /// ```
    pub fn from_env() -> Result<Self, crate::Error> {
        Self::builder().build()
    }

    /// A store that records nothing: spans from it are [`Span::none`](crate::Span::none), and every call costs
    /// next to nothing. The kill switch (`OPIK_TRACK_DISABLE=true`) builds one of these.
    ///
    /// ```
    /// let store = tower_opik::SpanStore::disabled();
    /// assert!(!store.is_enabled());
    /// assert!(store.root_span("x").is_none());
    /// ```
    pub fn disabled() -> Self {
        Self {
            inner: Arc::new(Shared {
                queue: None,
                counters: Arc::default(),
                keep_errors_max_bytes: 0,
            }),
            project_name: None,
            sample_rate: 1.0,
        }
    }

    /// Whether this store records anything.
    ///
    /// ```
    /// assert!(!tower_opik::SpanStore::disabled().is_enabled());
    /// ```
    pub fn is_enabled(&self) -> bool {
        self.inner.queue.is_some()
    }

    /// The project records go to (`None`: Opik's default project).
    ///
    /// ```
    /// assert_eq!(tower_opik::SpanStore::disabled().project_name(), None);
    /// ```
    pub fn project_name(&self) -> Option<&Arc<str>> {
        self.project_name.as_ref()
    }

    /// A handle on the same store whose spans go to another project (for a layer or a
    /// component that reports to its own project). Records still share one queue.
    ///
    /// A blank name keeps the current project (Opik refuses blank ones).
    ///
    /// ```
    /// let store = tower_opik::SpanStore::disabled();
    /// let billing = store.with_project_name("billing");
    /// # let _ = billing;
    /// ```
    pub fn with_project_name(&self, name: impl AsRef<str>) -> SpanStore {
        let name = name.as_ref();
        let mut store = self.clone();
        if self.is_enabled() && !name.trim().is_empty() {
            store.project_name = Some(Arc::from(name));
        }
        store
    }

    /// The share of traces recorded, 0.0 to 1.0 (the configuration's
    /// [`sample_rate`](crate::OpikConfig::sample_rate), 1.0 by default).
    ///
    /// **Sampling** is decided once per trace, as a function of its id
    /// ([`id::sampled`](crate::id::sampled)): every service with the same rate keeps the same
    /// traces, whole, with no header of its own. A span of a trace sampled out keeps its ids
    /// and still propagates them (so the services downstream decide the same, and the parent
    /// links stay valid), but records nothing. The official SDKs do not sample: a Python
    /// service called in a trace sampled out here records its part, which then stands alone
    /// in Opik; give such services the whole trace (rate 1.0 for those routes) or accept
    /// the fragments. [`StoreStats`] counts the traces started here that were kept and
    /// sampled out.
    ///
    /// ```
    /// let store = tower_opik::SpanStore::disabled();
    /// assert_eq!(store.sample_rate(), 1.0);
    /// ```
    pub fn sample_rate(&self) -> f64 {
        self.sample_rate
    }

    /// A handle on the same store whose spans sample at `rate` (brought into 0.0 to 1.0; a
    /// `NaN` keeps the current rate), for one layer or component: the
    /// [`OpikLayer::sample_rate`](crate::OpikLayer::sample_rate) of a route, say.
    ///
    /// ```
    /// let store = tower_opik::SpanStore::disabled();
    /// assert_eq!(store.with_sample_rate(0.1).sample_rate(), 0.1);
    /// ```
    pub fn with_sample_rate(&self, rate: f64) -> SpanStore {
        let mut store = self.clone();
        if !rate.is_nan() {
            store.sample_rate = rate.clamp(0.0, 1.0);
        }
        store
    }

    /// Whether traces sampled out are held for errors.
    pub(crate) fn keeps_errors(&self) -> bool {
        self.inner.keep_errors_max_bytes > 0 && self.is_enabled()
    }

    /// Reserves `bytes` for a held span; `false` when the bound would be passed.
    pub(crate) fn hold_bytes(&self, bytes: usize) -> bool {
        self.inner
            .counters
            .hold_bytes(bytes, self.inner.keep_errors_max_bytes)
    }

    /// Gives back what held spans reserved.
    pub(crate) fn release_bytes(&self, bytes: usize) {
        self.inner.counters.release_held_bytes(bytes);
    }

    /// Counts spans of held traces not kept for lack of room.
    pub(crate) fn count_held_dropped(&self, n: u64) {
        self.inner.counters.held_dropped(n);
    }

    /// Counts a trace sampled out but sent for its error.
    pub(crate) fn count_kept_for_errors(&self) {
        self.inner.counters.kept_for_errors();
    }

    /// Counts a new trace's sampling decision.
    pub(crate) fn count_sampling(&self, kept: bool) {
        if self.is_enabled() {
            self.inner.counters.sampled(kept);
        }
    }

    /// Makes this store the process's global store: the one that code with no store at
    /// hand starts new traces in (`#[track]` on a function called outside any span, the
    /// `tracing` layer configured to start traces). Replaces the previous global store.
    /// Without one, such code records nothing.
    ///
    /// ```
    /// let store = tower_opik::SpanStore::disabled();
    /// store.set_global();
    /// assert!(tower_opik::SpanStore::global().is_some());
    /// ```
    pub fn set_global(&self) {
        *GLOBAL.write().unwrap_or_else(|p| p.into_inner()) = Some(self.clone());
    }

    /// The global store, if [`set_global`](Self::set_global) was called.
    ///
    /// ```
    /// let _maybe: Option<tower_opik::SpanStore> = tower_opik::SpanStore::global();
    /// ```
    pub fn global() -> Option<SpanStore> {
        GLOBAL.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Gives the span `span_id` a feedback score, at any time after it (a reviewer's
    /// verdict, an online check): queued and sent as any record, with the same retries and
    /// accounting, to `PUT v1/private/spans/feedback-scores`, in this store's project.
    /// Python: `Opik.log_spans_feedback_scores`.
    ///
    /// ```
    /// use tower_opik::record::FeedbackScore;
    /// let store = tower_opik::SpanStore::disabled();
    /// store.score_span(tower_opik::id::new_id(), FeedbackScore::new("correct", 1.0));
    /// ```
    pub fn score_span(&self, span_id: uuid::Uuid, score: crate::record::FeedbackScore) {
        self.score(crate::record::ScoreTarget::Span, span_id, score);
    }

    /// Gives the trace `trace_id` a feedback score, at any time after it (a user's
    /// thumbs-up arriving later, by the trace id the response carried): sent to
    /// `PUT v1/private/traces/feedback-scores`, in this store's project. Python:
    /// `Opik.log_traces_feedback_scores`.
    ///
    /// ```
    /// use tower_opik::record::FeedbackScore;
    /// let store = tower_opik::SpanStore::disabled();
    /// store.score_trace(tower_opik::id::new_id(), FeedbackScore::new("thumbs_up", 1.0).reason("helpful"));
    /// ```
    pub fn score_trace(&self, trace_id: uuid::Uuid, score: crate::record::FeedbackScore) {
        self.score(crate::record::ScoreTarget::Trace, trace_id, score);
    }

    fn score(
        &self,
        target: crate::record::ScoreTarget,
        id: uuid::Uuid,
        score: crate::record::FeedbackScore,
    ) {
        if self.inner.queue.is_none() {
            return;
        }
        let mut record = crate::record::ScoreRecord::new(target, id, score);
        record.project_name = self.project_name().cloned();
        self.record(record);
    }

    /// Hands a finished record to the store. Synchronous, never blocks: when the queue is
    /// full the record is dropped and counted. Spans call this when they end; call it
    /// directly only for records you built yourself.
    ///
    /// ```
    /// use tower_opik::record::TraceRecord;
    /// let store = tower_opik::SpanStore::disabled();
    /// store.record(TraceRecord::new(tower_opik::id::new_id(), "t", tower_opik::Timestamp::now()));
    /// ```
    pub fn record(&self, record: impl Into<Record>) {
        let Some(queue) = &self.inner.queue else {
            return;
        };
        let counters = &self.inner.counters;
        let (refused, record) = match queue.records.push(record.into()) {
            Ok(()) => return,
            Err(refused) => refused,
        };
        let count = record.count();
        match refused {
            Refused::FullBytes if record.approx_bytes() > queue.records.max_bytes() => {
                counters.lose(LossReason::QueueFull, count, String::new);
                if let Some(suppressed) = queue.full_warning.check() {
                    tracing::warn!(
                        target: "tower_opik",
                        suppressed,
                        bytes = record.approx_bytes(),
                        max_queued_bytes = queue.records.max_bytes(),
                        "an Opik record larger than max_queued_bytes on its own is dropped \
                         (raise max_queued_bytes, or send less in its input, output or metadata)"
                    );
                }
            }
            Refused::Full | Refused::FullBytes => {
                counters.lose(LossReason::QueueFull, count, String::new);
                // Freed by the export task, not by this request's thread.
                queue.records.discard_later(record);
                if let Some(suppressed) = queue.full_warning.check() {
                    let (what, bound) = if refused == Refused::Full {
                        ("records", queue.records.capacity())
                    } else {
                        ("bytes", queue.records.bytes())
                    };
                    tracing::warn!(
                        target: "tower_opik",
                        suppressed,
                        queued = bound,
                        "Opik span queue full ({what}): dropping records (raise queue_capacity \
                         or max_queued_bytes, or check the backend)"
                    );
                }
            }
            Refused::Closed => {
                counters.lose(LossReason::ShutDown, count, String::new);
                if let Some(suppressed) = queue.late_warning.check() {
                    tracing::warn!(
                        target: "tower_opik",
                        suppressed,
                        "a span ended after the store shut down (SpanStore::shutdown, or its \
                         runtime stopped) and is dropped: await your background tasks \
                         before calling shutdown"
                    );
                }
            }
        }
    }

    /// The counters, now.
    ///
    /// ```
    /// assert_eq!(tower_opik::SpanStore::disabled().stats().sent, 0);
    /// ```
    pub fn stats(&self) -> StoreStats {
        self.inner.counters.snapshot()
    }

    /// Delivers everything recorded before the call, waiting at most `timeout`. Never hangs:
    /// when the backend is down or slow the report says `completed: false` and how much is
    /// still pending (the store keeps trying in the background).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let report = tower_opik::SpanStore::disabled().flush(std::time::Duration::from_secs(5)).await;
    /// assert!(report.completed);
    /// # }
    /// ```
    pub async fn flush(&self, timeout: Duration) -> FlushReport {
        self.command(Command::Flush, false, timeout).await
    }

    /// Delivers everything recorded so far, then stops the background task. Bounded by
    /// `timeout` like [`flush`](Self::flush).
    ///
    /// Records made after it are dropped: counted in `dropped` (reason `shut down`) and
    /// warned about (rate-limited, target `tower_opik`). So that background spans make it,
    /// end them first: await the `JoinHandle`s of the tasks you spawned (or a
    /// `tokio_util::task::TaskTracker`) and drain your server
    /// (`axum::serve(..).with_graceful_shutdown(..)` returns once in-flight requests, and
    /// so their spans, are done), then call `shutdown`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let store = tower_opik::SpanStore::disabled();
    /// let report = store.shutdown(std::time::Duration::from_secs(5)).await;
    /// println!("{report}");
    /// # }
    /// ```
    pub async fn shutdown(&self, timeout: Duration) -> FlushReport {
        // Closed at once: what ends from now on is refused and counted, whoever answers.
        if let Some(queue) = &self.inner.queue {
            queue.records.close();
        }
        self.command(Command::Shutdown, true, timeout).await
    }

    async fn command(
        &self,
        make: fn(oneshot::Sender<()>) -> Command,
        shutdown: bool,
        timeout: Duration,
    ) -> FlushReport {
        let completed = match &self.inner.queue {
            None => true,
            Some(queue) => {
                let (done, mut answer) = oneshot::channel();
                if queue.commands.send(make(done)).is_err() {
                    // The task has stopped (after a shutdown): done if nothing is left.
                    self.stats().pending() == 0
                } else {
                    match tokio::time::timeout(timeout, &mut answer).await {
                        Ok(Ok(())) => true,
                        // The task stopped without answering (a concurrent shutdown
                        // finished first, or the runtime dropped it): done if nothing is
                        // left.
                        Ok(Err(_)) => self.stats().pending() == 0,
                        Err(_) => match &queue.spool {
                            // Out of time at shutdown: what is left goes to the spool.
                            Some(spool) if shutdown => {
                                spool.abandon();
                                let spooled = tokio::time::timeout(SPOOL_AT_SHUTDOWN, answer).await;
                                spooled.is_ok() && self.stats().pending() == 0
                            }
                            _ => false,
                        },
                    }
                }
            }
        };
        FlushReport {
            completed,
            stats: self.stats(),
        }
    }
}
