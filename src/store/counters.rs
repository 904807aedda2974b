//! The live counters behind [`StoreStats`]: atomics bumped by the store's parts through
//! [`Counters`]' methods only, the losses by reason, the export health that decides what
//! is logged, and the process-wide count of spans asked of no current span.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use uuid::Uuid;

use super::stats::{Loss, LossReason, StoreStats};
use crate::warn::RateLimit;

/// Records named per loss reason; beyond that, [`Loss::unnamed`] counts them.
pub(crate) const MAX_NAMED_LOSSES: usize = 100;

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
