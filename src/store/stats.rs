//! What the store did with the records it was given: counters readable at any time, and
//! the reasons for whatever it could not deliver.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use uuid::Uuid;

use crate::warn::RateLimit;

/// Records named per loss reason; beyond that, [`Loss::unnamed`] counts them.
pub(crate) const MAX_NAMED_LOSSES: usize = 100;

/// Records named per loss reason in the one-line report ([`StoreStats`]'s `Display`).
const NAMED_IN_DISPLAY: usize = 10;

/// Why records were not delivered.
///
/// ```
/// use tower_opik::store::LossReason;
/// assert!(LossReason::QueueFull.is_drop());
/// assert!(!LossReason::Rejected { status: 400 }.is_drop());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum LossReason {
    /// Dropped when recorded: the queue was full.
    QueueFull,
    /// Dropped when recorded: the store had shut down.
    ShutDown,
    /// Refused by the backend with this status (never retried).
    Rejected {
        /// The HTTP status.
        status: u16,
    },
    /// Still failing after every retry the policy allows.
    RetriesExhausted,
    /// Larger than the batch byte cap on its own, even with its payloads truncated.
    TooLarge,
    /// Could not be encoded as JSON.
    Encoding,
    /// Still queued when the runtime stopped the store's task.
    RuntimeStopped,
    /// In a batch whose export panicked (a custom [`Exporter`](super::Exporter) that
    /// panics); the store goes on with the next batches.
    ExportPanicked,
    /// Not written to the spool because it was full: the newest batch is the one dropped
    /// ([`SpanStoreBuilder::spool_max_bytes`](super::SpanStoreBuilder::spool_max_bytes)).
    SpoolFull,
    /// Not written to the spool because the file system refused (disk full, permissions).
    SpoolUnwritable,
    /// In a spool file that could not be read back (torn, truncated or damaged): the file
    /// is set aside as `*.json.corrupt`.
    SpoolUnreadable,
}

impl LossReason {
    /// Whether the record was dropped before it was queued (as opposed to failed later).
    ///
    /// ```
    /// assert!(tower_opik::store::LossReason::ShutDown.is_drop());
    /// ```
    pub fn is_drop(self) -> bool {
        matches!(self, Self::QueueFull | Self::ShutDown)
    }
}

impl std::fmt::Display for LossReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::QueueFull => f.write_str("queue full"),
            Self::ShutDown => f.write_str("recorded after shutdown"),
            Self::Rejected { status } => write!(f, "rejected by the backend ({status})"),
            Self::RetriesExhausted => f.write_str("retries exhausted"),
            Self::TooLarge => f.write_str("larger than the batch byte cap"),
            Self::Encoding => f.write_str("not encodable as JSON"),
            Self::RuntimeStopped => f.write_str("runtime stopped before delivery"),
            Self::ExportPanicked => f.write_str("the export panicked"),
            Self::SpoolFull => f.write_str("spool full"),
            Self::SpoolUnwritable => f.write_str("spool not writable"),
            Self::SpoolUnreadable => f.write_str("spool file unreadable"),
        }
    }
}

/// Records lost for one reason, with the last message that came with them and the ids of
/// the records given up after they were queued (the first 100 per reason; drops at
/// `record` and records lost to a stopped runtime are counted, not named).
///
/// ```
/// # let stats = tower_opik::SpanStore::disabled().stats();
/// for loss in &stats.losses {
///     println!("{} records: {} ({})", loss.count, loss.reason, loss.last_message);
///     for id in &loss.records {
///         println!("  given up: {id}");
///     }
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Loss {
    /// Why.
    pub reason: LossReason,
    /// How many records.
    pub count: u64,
    /// The last detail seen (a status line, a backend message), without secrets.
    pub last_message: String,
    /// The ids of the records given up, in the order they were, at most 100 (the
    /// one-line report, `Display`, shows the first 10 and how many more).
    pub records: Vec<Uuid>,
    /// Records of `count` given up but not in `records` (over the bound, or never named).
    pub unnamed: u64,
}

/// A snapshot of the store's counters. All counts are of records (spans, traces and
/// feedback scores).
///
/// `recorded = sent + failed + spooled + pending`; `dropped` records never entered the
/// queue. The spool's counts (`replayed`, `spool_dropped`, `spool_records`) include records
/// an earlier run spooled.
///
/// ```
/// let stats = tower_opik::SpanStore::disabled().stats();
/// assert_eq!(stats.recorded, 0);
/// assert_eq!(stats.pending(), 0);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Accepted into the queue.
    pub recorded: u64,
    /// Delivered (the backend answered 2xx).
    pub sent: u64,
    /// Dropped at `record` (queue full, or after shutdown).
    pub dropped: u64,
    /// Given up after they were queued (refused, retries exhausted, too large, or not
    /// written to a full or unwritable spool).
    pub failed: u64,
    /// Export attempts that were retried.
    pub retries: u64,
    /// Export calls made (each attempt counts).
    pub export_calls: u64,
    /// Records sent with oversized payloads replaced by a truncation marker.
    pub truncated: u64,
    /// Losses by reason.
    pub losses: Vec<Loss>,
    /// Children asked of *no* current span while an enabled store existed, in this whole
    /// process (a span has no store to count in): code that ran outside its request's
    /// context, such as a `tokio::spawn`ed task (use [`crate::spawn`]) or a stream polled
    /// outside the layer. Those children were not recorded.
    pub no_current_span: u64,
    /// New traces started here and kept by sampling ([`SpanStore::sample_rate`](crate::SpanStore::sample_rate)).
    pub traces_sampled_in: u64,
    /// New traces started here and sampled out: nothing of them recorded here (unless
    /// kept for an error).
    pub traces_sampled_out: u64,
    /// Traces sampled out but sent because their first span here ended with an error
    /// ([`SpanStoreBuilder::keep_errors`](crate::store::SpanStoreBuilder::keep_errors)).
    pub traces_kept_for_errors: u64,
    /// Spans of such held traces not kept, for lack of room under the bound.
    pub held_spans_dropped: u64,
    /// Written to the spool by this store, Opik being unreachable or failing transiently
    /// ([`SpanStoreBuilder::spool_dir`](crate::store::SpanStoreBuilder::spool_dir)).
    pub spooled: u64,
    /// Delivered from the spool (spooled by this store or by an earlier run).
    pub replayed: u64,
    /// Records the spool lost: refused when it was full (the newest: also counted in
    /// `failed`, reason `spool full`) or could not be written, in files that could not be
    /// read back, or refused by Opik when replayed. Each reason is in `losses`.
    pub spool_dropped: u64,
    /// Records in the spool now.
    pub spool_records: u64,
    /// Bytes of the spool's files now.
    pub spool_bytes: u64,
}

impl StoreStats {
    /// Records accepted but neither delivered nor given up yet.
    ///
    /// ```
    /// assert_eq!(tower_opik::store::StoreStats::default().pending(), 0);
    /// ```
    pub fn pending(&self) -> u64 {
        self.recorded
            .saturating_sub(self.sent + self.failed + self.spooled)
    }
}

impl std::fmt::Display for StoreStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} recorded, {} sent, {} pending, {} dropped, {} failed, {} retries",
            self.recorded,
            self.sent,
            self.pending(),
            self.dropped,
            self.failed,
            self.retries
        )?;
        if self.no_current_span > 0 {
            write!(f, ", {} opened from no current span", self.no_current_span)?;
        }
        if self.spooled + self.replayed + self.spool_dropped + self.spool_records > 0 {
            write!(
                f,
                ", spool: {} spooled, {} replayed, {} dropped, {} records in {} bytes now",
                self.spooled,
                self.replayed,
                self.spool_dropped,
                self.spool_records,
                self.spool_bytes
            )?;
        }
        if self.traces_sampled_out > 0 {
            write!(
                f,
                ", traces sampled {} in and {} out",
                self.traces_sampled_in, self.traces_sampled_out
            )?;
        }
        for loss in &self.losses {
            write!(f, "; {} {}", loss.count, loss.reason)?;
            if !loss.last_message.is_empty() {
                write!(f, " ({})", loss.last_message)?;
            }
            if !loss.records.is_empty() {
                f.write_str(" [")?;
                for (i, id) in loss.records.iter().take(NAMED_IN_DISPLAY).enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{id}")?;
                }
                let shown = loss.records.len().min(NAMED_IN_DISPLAY) as u64;
                if loss.count > shown {
                    write!(f, " and {} more", loss.count - shown)?;
                }
                f.write_str("]")?;
            }
        }
        Ok(())
    }
}

/// What [`SpanStore::flush`](crate::SpanStore::flush) and
/// [`SpanStore::shutdown`](crate::SpanStore::shutdown) report.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let report = tower_opik::SpanStore::disabled().flush(std::time::Duration::from_secs(1)).await;
/// assert!(report.completed);
/// println!("{report}");
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlushReport {
    /// Whether everything recorded before the call was delivered, given up or written to
    /// the spool within the time allowed (`false`: the timeout came first,
    /// `stats.pending()` says how much is left). With a spool, a flush also replays what
    /// the spool holds while Opik answers, within the same time.
    pub completed: bool,
    /// The counters when the call returned.
    pub stats: StoreStats,
}

impl std::fmt::Display for FlushReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let head = if self.completed {
            "flushed"
        } else {
            "timed out"
        };
        write!(f, "{head}: {}", self.stats)
    }
}

/// The live counters behind [`StoreStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    recorded: AtomicU64,
    sent: AtomicU64,
    /// Drops are counted here, not in `losses`: they happen on the request path, which
    /// takes no lock.
    queue_full: AtomicU64,
    shut_down: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
    export_calls: AtomicU64,
    truncated: AtomicU64,
    sampled_in: AtomicU64,
    sampled_out: AtomicU64,
    kept_for_errors: AtomicU64,
    held_dropped: AtomicU64,
    held_bytes: std::sync::atomic::AtomicUsize,
    spooled: AtomicU64,
    replayed: AtomicU64,
    spool_dropped: AtomicU64,
    /// Gauges: what the spool's files hold now.
    spool_records: AtomicU64,
    spool_bytes: AtomicU64,
    losses: Mutex<BTreeMap<LossReason, LossEntry>>,
    /// Whether exports are failing now, and the logs of its changes.
    pub(crate) health: Health,
}

#[derive(Debug, Default)]
struct LossEntry {
    count: u64,
    message: String,
    ids: Vec<Uuid>,
}

/// Whether this store's exports are failing, to log the change (not every failure): the
/// first failure at WARN, the first success after failures at INFO, each rate-limited.
#[derive(Debug)]
pub(crate) struct Health {
    failing: AtomicBool,
    warn: RateLimit,
    info: RateLimit,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            failing: AtomicBool::new(false),
            warn: RateLimit::new(),
            info: RateLimit::new(),
        }
    }
}

impl Health {
    /// An export attempt failed: `Some(suppressed)` when this is the change to log.
    pub(crate) fn failed(&self) -> Option<u64> {
        if self.failing.swap(true, Ordering::Relaxed) {
            return None;
        }
        self.warn.check()
    }

    /// An export attempt succeeded: `Some(suppressed)` when it ends failures to log.
    pub(crate) fn succeeded(&self) -> Option<u64> {
        if !self.failing.load(Ordering::Relaxed) || !self.failing.swap(false, Ordering::Relaxed) {
            return None;
        }
        self.info.check()
    }
}

/// Children asked of no current span while an enabled store was alive (process-wide).
static NO_CURRENT_SPAN: AtomicU64 = AtomicU64::new(0);
/// Enabled stores alive in the process (each store's shared state counts once).
static LIVE_STORES: AtomicU64 = AtomicU64::new(0);

/// Counts a child asked of no current span, when it matters: only while an enabled store
/// exists (a service with tracing off asks this all the time, at no cost).
pub(crate) fn no_current_span() {
    if LIVE_STORES.load(Ordering::Relaxed) == 0 {
        return;
    }
    NO_CURRENT_SPAN.fetch_add(1, Ordering::Relaxed);
    static LIMIT: crate::warn::RateLimit = crate::warn::RateLimit::new();
    if let Some(suppressed) = LIMIT.check() {
        tracing::debug!(
            target: "tower_opik",
            suppressed,
            "a span was opened from no current span and is not recorded: the code runs \
             outside its request's context (carry it with tower_opik::spawn, \
             in_current_opik_span or OpikStreamExt::in_span)"
        );
    }
}

/// Marks one enabled store alive for as long as it lives.
#[derive(Debug)]
pub(crate) struct LiveStore(());

impl LiveStore {
    pub(crate) fn new() -> Self {
        LIVE_STORES.fetch_add(1, Ordering::Relaxed);
        Self(())
    }
}

impl Drop for LiveStore {
    fn drop(&mut self) {
        LIVE_STORES.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Every count the store keeps moves through these methods, so the identity the stats
/// promise, `recorded = sent + failed + spooled + pending`, has one home: a record enters
/// with [`record`](Self::record) (or is taken back with [`unrecord`](Self::unrecord)) and
/// leaves with exactly one of [`delivered`](Self::delivered), [`spooled`](Self::spooled),
/// [`lose`](Self::lose) or [`lose_records`](Self::lose_records). What the spool delivers or
/// loses later ([`replayed`](Self::delivered), [`lose_spooled`](Self::lose_spooled)) is
/// counted apart, since an earlier run may have spooled it.
impl Counters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// `count` records enter the queue; returns how many had before (the queue wakes its
    /// task on a multiple).
    pub(crate) fn record(&self, count: u64) -> u64 {
        self.recorded.fetch_add(count, Ordering::Relaxed)
    }

    /// `n` records were delivered: sent, or `replayed` from the spool.
    pub(crate) fn delivered(&self, n: u64, from_spool: bool) {
        Self::add(
            if from_spool {
                &self.replayed
            } else {
                &self.sent
            },
            n,
        );
    }

    /// `n` records went to the spool.
    pub(crate) fn spooled(&self, n: u64) {
        Self::add(&self.spooled, n);
    }

    /// `n` records were sent with payloads cut down.
    pub(crate) fn truncated(&self, n: u64) {
        Self::add(&self.truncated, n);
    }

    /// An export call was made.
    pub(crate) fn export_call(&self) {
        Self::add(&self.export_calls, 1);
    }

    /// An export attempt is retried.
    pub(crate) fn retry(&self) {
        Self::add(&self.retries, 1);
    }

    /// A new trace's sampling decision.
    pub(crate) fn sampled(&self, kept: bool) {
        Self::add(
            if kept {
                &self.sampled_in
            } else {
                &self.sampled_out
            },
            1,
        );
    }

    /// A trace sampled out was sent for its error.
    pub(crate) fn kept_for_errors(&self) {
        Self::add(&self.kept_for_errors, 1);
    }

    /// `n` spans of held traces were not kept for lack of room.
    pub(crate) fn held_dropped(&self, n: u64) {
        Self::add(&self.held_dropped, n);
    }

    /// Reserves `bytes` for held spans within `max`; `false` when it would pass it.
    pub(crate) fn hold_bytes(&self, bytes: usize, max: usize) -> bool {
        let before = self.held_bytes.fetch_add(bytes, Ordering::Relaxed);
        if before + bytes > max {
            self.held_bytes.fetch_sub(bytes, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Gives back what held spans reserved.
    pub(crate) fn release_held_bytes(&self, bytes: usize) {
        self.held_bytes.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Reserves `bytes` of the spool's room within `max`; `false` when it would pass it.
    pub(crate) fn reserve_spool_bytes(&self, bytes: u64, max: u64) -> bool {
        self.spool_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |now| {
                (now.saturating_add(bytes) <= max).then_some(now + bytes)
            })
            .is_ok()
    }

    /// Files of `records` records and `bytes` bytes are in the spool (written, or found
    /// at start: then their bytes were not reserved, `reserved` is false).
    pub(crate) fn spool_holds(&self, records: u64, bytes: u64, reserved: bool) {
        Self::add(&self.spool_records, records);
        if !reserved {
            Self::add(&self.spool_bytes, bytes);
        }
    }

    /// Files of `records` records and `bytes` bytes left the spool (or a reservation of
    /// `bytes` was not used, with `records` 0).
    pub(crate) fn spool_released(&self, records: u64, bytes: u64) {
        let sub = |gauge: &AtomicU64, n: u64| {
            let _ = gauge.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
        };
        sub(&self.spool_bytes, bytes);
        sub(&self.spool_records, records);
    }

    /// The spool's directory is gone: nothing is on disk (reservations in flight are
    /// given back with saturation).
    pub(crate) fn spool_reset(&self) {
        self.spool_bytes.store(0, Ordering::Relaxed);
        self.spool_records.store(0, Ordering::Relaxed);
    }

    /// `ids` never reached the spool (full, or not writable): failed, and counted as
    /// dropped by the spool.
    pub(crate) fn spool_refused(
        &self,
        reason: LossReason,
        ids: impl ExactSizeIterator<Item = Uuid>,
        message: impl FnOnce() -> String,
    ) {
        Self::add(&self.spool_dropped, ids.len() as u64);
        self.lose_records(reason, ids, message);
    }

    /// Takes back records counted as recorded that were then refused (they raced a
    /// shutdown): they are counted as drops instead.
    pub(crate) fn unrecord(&self, n: u64) {
        self.recorded.fetch_sub(n, Ordering::Relaxed);
    }

    /// Counts `n` records lost for `reason`. A drop (queue full, shut down) is one atomic
    /// add and keeps no message; other losses keep the last message, under a lock, off the
    /// request path.
    pub(crate) fn lose(&self, reason: LossReason, n: u64, message: impl FnOnce() -> String) {
        if n == 0 {
            return;
        }
        match reason {
            LossReason::QueueFull => return Self::add(&self.queue_full, n),
            LossReason::ShutDown => return Self::add(&self.shut_down, n),
            _ => Self::add(&self.failed, n),
        }
        let mut losses = self.losses.lock().unwrap_or_else(|p| p.into_inner());
        let entry = losses.entry(reason).or_default();
        entry.count += n;
        entry.message = message();
    }

    /// Counts the records `ids` as given up after they were queued (never a drop), naming
    /// them in the report (up to `MAX_NAMED_LOSSES` per reason).
    pub(crate) fn lose_records(
        &self,
        reason: LossReason,
        ids: impl ExactSizeIterator<Item = Uuid>,
        message: impl FnOnce() -> String,
    ) {
        let n = ids.len() as u64;
        if n == 0 || reason.is_drop() {
            return self.lose(reason, n, message);
        }
        Self::add(&self.failed, n);
        self.name_loss(reason, n, ids, message);
    }

    /// Adds `n` records to `reason`'s entry, with the last message and the first ids.
    fn name_loss(
        &self,
        reason: LossReason,
        n: u64,
        ids: impl Iterator<Item = Uuid>,
        message: impl FnOnce() -> String,
    ) {
        let mut losses = self.losses.lock().unwrap_or_else(|p| p.into_inner());
        let entry = losses.entry(reason).or_default();
        entry.count += n;
        entry.message = message();
        let room = MAX_NAMED_LOSSES.saturating_sub(entry.ids.len());
        entry.ids.extend(ids.take(room));
    }

    /// Counts `n` records the spool lost after they were spooled (not `failed`: they
    /// were counted as spooled, or spooled by an earlier run), naming `ids`.
    pub(crate) fn lose_spooled(
        &self,
        reason: LossReason,
        n: u64,
        ids: impl Iterator<Item = Uuid>,
        message: impl FnOnce() -> String,
    ) {
        if n == 0 {
            return;
        }
        Self::add(&self.spool_dropped, n);
        self.name_loss(reason, n, ids, message);
    }

    pub(crate) fn snapshot(&self) -> StoreStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let drops = [
            (LossReason::QueueFull, get(&self.queue_full)),
            (LossReason::ShutDown, get(&self.shut_down)),
        ];
        let losses = self.losses.lock().unwrap_or_else(|p| p.into_inner());
        let kept = losses
            .iter()
            .map(|(reason, e)| (*reason, e.count, e.message.clone(), e.ids.clone()));
        StoreStats {
            recorded: get(&self.recorded),
            sent: get(&self.sent),
            dropped: drops.iter().map(|(_, n)| n).sum(),
            failed: get(&self.failed),
            retries: get(&self.retries),
            export_calls: get(&self.export_calls),
            truncated: get(&self.truncated),
            no_current_span: NO_CURRENT_SPAN.load(Ordering::Relaxed),
            traces_sampled_in: get(&self.sampled_in),
            traces_sampled_out: get(&self.sampled_out),
            traces_kept_for_errors: get(&self.kept_for_errors),
            held_spans_dropped: get(&self.held_dropped),
            spooled: get(&self.spooled),
            replayed: get(&self.replayed),
            spool_dropped: get(&self.spool_dropped),
            spool_records: get(&self.spool_records),
            spool_bytes: get(&self.spool_bytes),
            // Drops first: they sort first among the reasons.
            losses: drops
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .map(|(reason, n)| (reason, n, String::new(), Vec::new()))
                .chain(kept)
                .map(|(reason, count, last_message, records)| Loss {
                    reason,
                    count,
                    last_message,
                    unnamed: count.saturating_sub(records.len() as u64),
                    records,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_and_failures_are_reported_together_in_reason_order() {
        let counters = Counters::default();
        counters.lose(LossReason::RetriesExhausted, 2, || "timeout".into());
        counters.lose(LossReason::ShutDown, 1, String::new);
        counters.lose(LossReason::QueueFull, 3, String::new);
        counters.lose(LossReason::QueueFull, 4, String::new);
        counters.lose(LossReason::Rejected { status: 400 }, 0, || "none".into());
        let stats = counters.snapshot();
        assert_eq!((stats.dropped, stats.failed), (8, 2));
        let losses: Vec<_> = stats
            .losses
            .iter()
            .map(|l| (l.reason, l.count, l.last_message.as_str()))
            .collect();
        assert_eq!(
            losses,
            [
                (LossReason::QueueFull, 7, ""),
                (LossReason::ShutDown, 1, ""),
                (LossReason::RetriesExhausted, 2, "timeout"),
            ]
        );
    }

    #[test]
    fn given_up_records_are_named_up_to_a_bound() {
        let counters = Counters::default();
        let ids: Vec<Uuid> = (0..MAX_NAMED_LOSSES + 5).map(|_| Uuid::now_v7()).collect();
        let rejected = LossReason::Rejected { status: 400 };
        counters.lose_records(rejected, ids[..1].iter().copied(), || "first".into());
        counters.lose_records(rejected, ids[1..].iter().copied(), || "second".into());
        counters.lose(LossReason::RuntimeStopped, 3, String::new);
        let stats = counters.snapshot();
        assert_eq!(stats.failed, ids.len() as u64 + 3);
        let loss = &stats.losses[0];
        assert_eq!(loss.count, ids.len() as u64);
        assert_eq!(loss.records, ids[..MAX_NAMED_LOSSES]);
        assert_eq!(loss.unnamed, 5);
        assert_eq!(stats.losses[1].unnamed, 3);
        let text = stats.to_string();
        assert!(text.contains(&ids[0].to_string()), "{text}");
        assert!(text.contains(&ids[9].to_string()), "{text}");
        assert!(!text.contains(&ids[10].to_string()), "{text}");
        assert!(text.contains("and 95 more]"), "{text}");
    }

    #[test]
    fn health_changes_are_reported_once_each() {
        let health = Health::default();
        assert_eq!(health.succeeded(), None);
        assert_eq!(health.failed(), Some(0));
        assert_eq!(health.failed(), None);
        assert_eq!(health.succeeded(), Some(0));
        assert_eq!(health.succeeded(), None);
    }
}
