//! [`SpanStoreBuilder`]: configuration, exporter, queue and batching options, and the
//! start of the export task.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::batcher::{BatchLimits, Batcher, OPIK_MAX_BATCH_ITEMS};
use super::counters::{self, Counters};
use super::queue::RecordQueue;
use super::sender::Sender;
use super::spool;
use super::{Exporter, OpikRestExporter, Queue, RetryPolicy, Shared, SpanStore};
use crate::config::OpikConfig;
use crate::warn::RateLimit;

/// Builds a [`SpanStore`]: configuration, exporter, queue and batching options.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_opik::Error> {
/// use std::time::Duration;
/// use tower_opik::{store::RetryPolicy, OpikConfig, SpanStore};
/// let store = SpanStore::builder()
///     .config(OpikConfig::local("http://127.0.0.1:5173/api/"))
///     .queue_capacity(8192)
///     .flush_interval(Duration::from_millis(500))
///     .retry(RetryPolicy::default().max_attempts(5))
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use]
pub struct SpanStoreBuilder {
    config: Option<OpikConfig>,
    exporter: Option<Arc<dyn Exporter>>,
    project_name: Option<String>,
    disabled: Option<bool>,
    queue_capacity: usize,
    max_queued_bytes: usize,
    sample_rate: Option<f64>,
    keep_errors_max_bytes: usize,
    spool_dir: Option<std::path::PathBuf>,
    spool_max_bytes: Option<u64>,
    limits: BatchLimits,
    gzip_threshold: usize,
    gzip_level: u32,
    request_timeout: Duration,
}

/// The default of [`SpanStoreBuilder::max_queued_bytes`]: 64 MiB.
const DEFAULT_MAX_QUEUED_BYTES: usize = 64 << 20;

impl Default for SpanStoreBuilder {
    fn default() -> Self {
        Self {
            config: None,
            exporter: None,
            project_name: None,
            disabled: None,
            queue_capacity: 2048,
            max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
            sample_rate: None,
            keep_errors_max_bytes: 0,
            spool_dir: None,
            spool_max_bytes: None,
            limits: BatchLimits {
                max_items: OPIK_MAX_BATCH_ITEMS,
                max_bytes: 8 * 1024 * 1024,
                interval: Duration::from_secs(2),
                retry: RetryPolicy::default(),
                concurrency: 4,
            },
            gzip_threshold: 256,
            gzip_level: 1,
            request_timeout: Duration::from_secs(10),
        }
    }
}

impl SpanStoreBuilder {
    /// The Opik configuration (URL, key, workspace, project, kill switch). Without one,
    /// [`build`](Self::build) reads it from the environment and `~/.opik.config`.
    ///
    /// ```
    /// let b = tower_opik::SpanStore::builder().config(tower_opik::OpikConfig::local("http://127.0.0.1:1/"));
    /// ```
    pub fn config(mut self, config: OpikConfig) -> Self {
        self.config = Some(config);
        self
    }

    /// Sends batches through this exporter instead of Opik's REST API.
    ///
    /// ```
    /// # #[derive(Debug)] struct Discard;
    /// # impl tower_opik::store::Exporter for Discard {
    /// #     fn export<'a>(&'a self, _: &'a tower_opik::store::ExportBatch) -> tower_opik::store::ExportFuture<'a> { Box::pin(async { Ok(()) }) }
    /// # }
    /// let b = tower_opik::SpanStore::builder().exporter(Discard);
    /// ```
    pub fn exporter(mut self, exporter: impl Exporter) -> Self {
        self.exporter = Some(Arc::new(exporter));
        self
    }

    /// The project records go to, over the configuration's.
    ///
    /// ```
    /// let b = tower_opik::SpanStore::builder().project_name("checkout");
    /// ```
    pub fn project_name(mut self, name: impl Into<String>) -> Self {
        self.project_name = Some(name.into());
        self
    }

    /// Turns tracing off (or on) over the configuration's `track_disable`.
    ///
    /// ```
    /// let b = tower_opik::SpanStore::builder().disabled(true);
    /// ```
    pub fn disabled(mut self, disabled: bool) -> Self {
        self.disabled = Some(disabled);
        self
    }

    /// How many finished records may wait for export (at least 1). The ring's slots are
    /// allocated when the store is built, 24 bytes each (the records themselves live on the
    /// heap until they are sent). However long the backend is down, the store holds at most
    /// `queue_capacity + (export_concurrency + 2) × max_batch_items` records: the queue, the
    /// batches in flight, and the span and trace batches being filled (with a
    /// [spool](Self::spool_dir), up to 4 more batches while they are written to disk).
    ///
    /// ```
    /// let b = tower_opik::SpanStore::builder().queue_capacity(4096);
    /// ```
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity.max(1);
        self
    }

    /// The most bytes the queued records may hold (at least 64 KiB; 64 MiB by default): a
    /// record is counted as its payloads' JSON (input, output, metadata), its name, and 512
    /// bytes for the rest. A record that would pass the bound is dropped and counted, as when
    /// the queue is full. With [`queue_capacity`](Self::queue_capacity) it bounds the memory
    /// the store holds however long Opik is down: at most `max_queued_bytes` in the queue,
    /// plus `(export_concurrency + 2) × max_batch_bytes` of encoded batches (4 in flight and
    /// the span and trace batches being filled): about 112 MiB with the defaults, whatever
    /// the prompts' size.
    ///
    /// ```
    /// let b = tower_opik::SpanStore::builder().max_queued_bytes(256 << 20);
    /// ```
    pub fn max_queued_bytes(mut self, bytes: usize) -> Self {
        self.max_queued_bytes = bytes.max(64 * 1024);
        self
    }

    /// The share of traces recorded, 0.0 to 1.0, over the configuration's
    /// [`sample_rate`](crate::OpikConfig::sample_rate) (see [`SpanStore::sample_rate`]);
    /// brought into range, a `NaN` ignored.
    ///
    /// ```
    /// let b = tower_opik::SpanStore::builder().sample_rate(0.25);
    /// ```
    pub fn sample_rate(mut self, rate: f64) -> Self {
        if !rate.is_nan() {
            self.sample_rate = Some(rate.clamp(0.0, 1.0));
        }
        self
    }

    /// Keeps the traces sampling left out in memory until their first span in this service
    /// ends, and sends them after all, with this service's spans, when that span ends with
    /// an error; `max_bytes` bounds what all such traces hold at once (counted as the queue
    /// counts records; 0, the default, turns it off). A span that does not fit is not kept
    /// (`StoreStats::held_spans_dropped`); `StoreStats::traces_kept_for_errors` counts the
    /// traces sent. The services downstream decide on their own (their parts of an erroring
    /// trace sampled out there are not sent).
    ///
    /// ```
    /// let b = tower_opik::SpanStore::builder().sample_rate(0.01).keep_errors(16 << 20);
    /// ```
    pub fn keep_errors(mut self, max_bytes: usize) -> Self {
        self.keep_errors_max_bytes = max_bytes;
        self
    }

    /// Spools to `dir` (created if missing) what cannot be delivered now, over the
    /// configuration's [`spool_dir`](crate::OpikConfig::spool_dir) (`OPIK_SPOOL_DIR`); off
    /// by default.
    ///
    /// With a spool, a batch that fails transiently (Opik unreachable, 429, 5xx, an export
    /// call over its time) is written to the spool at once instead of being retried in
    /// memory, and so is every later batch while the outage lasts, so the queue keeps
    /// draining and nothing is dropped for lack of room in memory. A second task replays
    /// the spool, oldest first, probing Opik with the oldest file at the
    /// [`retry`](Self::retry) policy's backoff (`Retry-After` when Opik gives one); the
    /// first delivery ends the outage. At [`shutdown`](SpanStore::shutdown), what is still
    /// undelivered when its timeout runs out is spooled; the next store to open the
    /// directory replays it.
    ///
    /// - **On disk**: one file per batch, the request body itself
    ///   (`{uuid}-{kind}-{records}-{crc32}.json`), written as `*.tmp`, fsynced and renamed,
    ///   so a batch is wholly in the spool or not at all, even through a crash or SIGKILL.
    ///   A file that cannot be read back (truncated, damaged) is skipped with a warning,
    ///   renamed `*.json.corrupt`, and its records counted in
    ///   [`StoreStats::spool_dropped`](super::StoreStats::spool_dropped).
    /// - **Bound**: [`spool_max_bytes`](Self::spool_max_bytes) (1 GiB by default; 0 is no
    ///   spool). When full, the newest batch is the one refused (the oldest are already
    ///   safe on disk), as is one the file system refuses: it is then retried in memory as
    ///   without a spool, and counted (reason [`SpoolFull`](super::LossReason::SpoolFull)
    ///   or [`SpoolUnwritable`](super::LossReason::SpoolUnwritable)) only if that fails
    ///   too. A directory removed while in use is made and locked again.
    /// - **Replay is safe**: Opik's batch endpoints are upserts by id (a batch delivered
    ///   twice, after a crash between delivery and deletion, is stored once).
    /// - **One store per directory**: the directory is locked while the store lives
    ///   (`.lock`); a second store on it fails to build with
    ///   [`Error::Spool`](crate::Error::Spool).
    /// - [`flush`](SpanStore::flush) also replays what the spool holds when Opik answers
    ///   (a large spool can outlast its timeout: `completed: false`, and the replay goes
    ///   on).
    /// - **Where replays go**: to the Opik (URL, workspace) of the store that opens the
    ///   directory; each record keeps the project it was written with. With its ingestion
    ///   window on (12 h to 45 days, 24 h by default; off by default in self-hosted Opik:
    ///   its `UuidV7TimestampValidator`), Opik refuses new records whose ids are older: a
    ///   batch replayed after longer is refused, and counted in `spool_dropped` as
    ///   rejected.
    ///
    /// Errors at [`build`](Self::build): [`Error::Spool`](crate::Error::Spool) when the
    /// directory cannot be created, read or locked.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_opik::Error> {
    /// let dir = std::env::temp_dir().join(format!("opik-spool-doc-{}", std::process::id()));
    /// let store = tower_opik::SpanStore::builder()
    ///     .config(tower_opik::OpikConfig::local("http://127.0.0.1:9/")) // nothing listens
    ///     .spool_dir(&dir)
    ///     .spool_max_bytes(256 << 20)
    ///     .build()?;
    /// store.root_span("job").end();
    /// let report = store.shutdown(std::time::Duration::from_secs(5)).await;
    /// assert_eq!(report.stats.spooled, 2); // the span and its trace, on disk
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// # Ok(()) }
    /// ```
    pub fn spool_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.spool_dir = Some(dir.into());
        self
    }

    /// The spool's bound in bytes (its files' sizes), over the configuration's
    /// [`spool_max_bytes`](crate::OpikConfig::spool_max_bytes); 1 GiB by default. Only with
    /// [`spool_dir`](Self::spool_dir).
    ///
    /// ```
    /// let b = tower_opik::SpanStore::builder().spool_max_bytes(512 << 20);
    /// ```
    pub fn spool_max_bytes(mut self, bytes: u64) -> Self {
        self.spool_max_bytes = Some(bytes);
        self
    }

    /// Records per batch call, 1 to 1000 (Opik's limit).
    ///
    /// ```
    /// let b = tower_opik::SpanStore::builder().max_batch_items(500);
    /// ```
    pub fn max_batch_items(mut self, items: usize) -> Self {
        self.limits.max_items = items.clamp(1, OPIK_MAX_BATCH_ITEMS);
        self
    }

    /// Uncompressed bytes per batch call; a single record over it is given up (counted as
    /// [`LossReason::TooLarge`](super::LossReason::TooLarge)).
    ///
    /// ```
    /// let b = tower_opik::SpanStore::builder().max_batch_bytes(4 << 20);
    /// ```
    pub fn max_batch_bytes(mut self, bytes: usize) -> Self {
        self.limits.max_bytes = bytes.max(1024);
        self
    }

    /// How often a partly filled batch is sent: 1 ms to 1 day (a value outside is brought
    /// to the nearest bound, so `Duration::MAX` means "once a day", never an overflow).
    ///
    /// ```
    /// let b = tower_opik::SpanStore::builder().flush_interval(std::time::Duration::from_millis(250));
    /// ```
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.limits.interval =
            interval.clamp(Duration::from_millis(1), Duration::from_secs(24 * 3600));
        self
    }

    /// Bodies of at least this many bytes are gzipped (REST exporter only).
    ///
    /// ```
    /// let b = tower_opik::SpanStore::builder().gzip_threshold(usize::MAX); // never
    /// ```
    pub fn gzip_threshold(mut self, bytes: usize) -> Self {
        self.gzip_threshold = bytes;
        self
    }

    /// The gzip level, 1 (fastest, the default) to 9 (REST exporter only; see
    /// [`OpikRestExporter::gzip_level`]).
    ///
    /// ```
    /// let b = tower_opik::SpanStore::builder().gzip_level(2);
    /// ```
    pub fn gzip_level(mut self, level: u32) -> Self {
        self.gzip_level = level.clamp(1, 9);
        self
    }

    /// The time limit of one export request (REST exporter only). With the REST exporter,
    /// the store's own bound on an export call ([`RetryPolicy::attempt_timeout`], 30 s by
    /// default) is raised to at least this plus 5 s.
    ///
    /// ```
    /// let b = tower_opik::SpanStore::builder().request_timeout(std::time::Duration::from_secs(5));
    /// ```
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How many batches may be in flight at once (1 to 64; default 4, as the Python SDK's
    /// four workers). More hides the backend's latency: one slow call no longer holds every
    /// later batch behind it. Each batch in flight holds up to `max_batch_items` records.
    ///
    /// ```
    /// let b = tower_opik::SpanStore::builder().export_concurrency(8);
    /// ```
    pub fn export_concurrency(mut self, batches: usize) -> Self {
        self.limits.concurrency = batches.clamp(1, 64);
        self
    }

    /// The retry policy for transient failures.
    ///
    /// ```
    /// let b = tower_opik::SpanStore::builder().retry(tower_opik::store::RetryPolicy::none());
    /// ```
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.limits.retry = policy;
        self
    }

    /// Builds the store and spawns its background task on the current tokio runtime.
    ///
    /// Errors: a bad configuration, no tokio runtime (unless tracing is disabled, which
    /// needs none), or an HTTP client that cannot be built.
    ///
    /// The first time a span of an enabled store becomes current (a request the layer
    /// traces, a `#[track]` function, [`Span::in_scope`](crate::Span::in_scope)), a panic
    /// hook is installed, chained to the one already there (which still runs, and prints
    /// as before): a panic is recorded as
    /// `Panic`, with its message and location, on the span that is current on the
    /// panicking thread and on the enclosing spans it unwinds through, even when something
    /// catches it before tower-opik's wrappers see it (a `CatchPanicLayer` inside
    /// [`OpikLayer`](crate::OpikLayer), `std::panic::catch_unwind` around a `#[track]`
    /// function). With no current span the hook does nothing. A hook set later with
    /// `std::panic::set_hook` replaces it; the layer's future and body, `track_stream` and
    /// `DistributedScope` still record the panics that unwind through them.
    ///
    /// ```
    /// // Outside a runtime, a disabled store still builds:
    /// let store = tower_opik::SpanStore::builder().disabled(true).build().unwrap();
    /// assert!(!store.is_enabled());
    /// // ... and an enabled one says why it cannot:
    /// let err = tower_opik::SpanStore::builder()
    ///     .config(tower_opik::OpikConfig::local("http://127.0.0.1:1/"))
    ///     .build()
    ///     .unwrap_err();
    /// assert!(matches!(err, tower_opik::Error::NoRuntime));
    /// ```
    pub fn build(self) -> Result<SpanStore, crate::Error> {
        let config = match (self.config, self.disabled) {
            (Some(c), _) => Some(c),
            (None, Some(true)) => None,
            (None, _) => Some(OpikConfig::from_env()?),
        };
        let disabled = self
            .disabled
            .unwrap_or_else(|| config.as_ref().is_some_and(OpikConfig::track_disable));
        let Some(config) = config.filter(|_| !disabled) else {
            return Ok(SpanStore::disabled());
        };
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| crate::Error::NoRuntime)?;
        let rest = self.exporter.is_none();
        let exporter: Arc<dyn Exporter> = match self.exporter {
            Some(e) => e,
            None => Arc::new(
                OpikRestExporter::new(&config)?
                    .timeout(self.request_timeout)
                    .gzip_threshold(self.gzip_threshold)
                    .gzip_level(self.gzip_level),
            ),
        };
        let project_name = match self.project_name {
            Some(p) if p.trim().is_empty() => return Err(crate::Error::BlankProjectName),
            Some(p) => p,
            None => config.project_name().to_owned(),
        };
        // The store's bound on one export call never cuts the REST client's own timeout
        // short: it is at least `request_timeout` and a margin.
        let mut limits = self.limits;
        let floor = self.request_timeout.saturating_add(Duration::from_secs(5));
        if rest && limits.retry.export_timeout() < floor {
            limits.retry = limits.retry.attempt_timeout(floor);
        }
        let counters = Arc::new(Counters::default());
        let records = Arc::new(RecordQueue::new(
            self.queue_capacity,
            self.max_queued_bytes,
            limits.max_items,
            counters.clone(),
        ));
        let spool = match self
            .spool_dir
            .or_else(|| config.spool_dir().map(Into::into))
        {
            None => None,
            Some(dir) => {
                let max_bytes = self
                    .spool_max_bytes
                    .or(config.spool_max_bytes())
                    .unwrap_or(spool::DEFAULT_MAX_BYTES);
                Some(Arc::new(spool::Spool::open(
                    &dir,
                    max_bytes,
                    counters.clone(),
                )?))
            }
        };
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        let sender = Sender {
            exporter,
            counters: counters.clone(),
            retry: limits.retry.clone(),
            spool: spool.clone(),
            from_spool: false,
            refused_by_spool: None,
        };
        let replay = spool.as_ref().map(|spool| {
            let (drains_tx, drains_rx) = mpsc::unbounded_channel();
            let replayer = spool::Replayer {
                spool: spool.clone(),
                sender: Sender {
                    from_spool: true,
                    ..sender.clone()
                },
                drains: drains_rx,
            };
            (drains_tx, runtime.spawn(replayer.run()))
        });
        let batcher = Batcher::new(
            records.clone(),
            commands_rx,
            sender,
            replay,
            counters.clone(),
            limits,
        );
        runtime.spawn(batcher.run());
        Ok(SpanStore {
            inner: Arc::new(Shared {
                queue: Some(Queue {
                    records,
                    commands: commands_tx,
                    full_warning: RateLimit::new(),
                    late_warning: RateLimit::new(),
                    spool,
                    _live: counters::LiveStore::new(),
                }),
                counters,
                keep_errors_max_bytes: self.keep_errors_max_bytes,
            }),
            project_name: Some(Arc::from(project_name)),
            sample_rate: self.sample_rate.unwrap_or(config.sample_rate()),
        })
    }
}
