//! The bounded queue between the request path and the export task.
//!
//! A push is a lock-free slot claim in a ring allocated up front (no allocation, no lock, no
//! syscall), plus one counter increment. The export task is woken once per batch's worth of
//! records; otherwise it drains the queue on its interval, at a flush, or at
//! shutdown. Waking the task on every record, as the tokio channel this replaces did, put
//! a cross-thread wake-up on the request path: `record` took 134–188 ns then, about 14 ns
//! now (BENCHMARKS.md).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crossbeam_queue::ArrayQueue;
use tokio::sync::Notify;

use super::counters::Counters;
use super::stats::LossReason;
use crate::record::Record;

/// Why a push was refused. The record is dropped with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Every slot is taken.
    Full,
    /// The records queued hold the most bytes allowed.
    FullBytes,
    /// The store has shut down.
    Closed,
}

pub(crate) struct RecordQueue {
    slots: ArrayQueue<Record>,
    closed: AtomicBool,
    /// Every this many records, a push wakes the export task.
    wake_at: usize,
    /// And every `1 << wake_bytes_shift` bytes (an eighth of `max_bytes` or a bit less,
    /// a power of two: a shift on the request path, not a division): large prompts fill
    /// the byte bound long before a batch's worth of records (the dead-backend bench with
    /// 1 MB prompts found the task asleep until its interval while the bound filled).
    wake_bytes_shift: u32,
    wake: Notify,
    counters: Arc<Counters>,
    /// The most bytes the queued records may hold (their payloads and a fixed part each).
    max_bytes: usize,
    bytes: AtomicUsize,
    /// Refused records the export task frees, so that a full queue does not make every
    /// request thread free what it drops (a record's strings and payloads: a few frees).
    /// Bounded: [`TRASH_RECORDS`] records of at most [`TRASH_RECORD_BYTES`] each; anything
    /// else is freed where it was refused.
    trash: ArrayQueue<Record>,
}

/// How many refused records wait for the export task to free them, at most.
const TRASH_RECORDS: usize = 256;
/// The largest refused record handed to the export task (a larger one is one large
/// allocation, cheap to free where it is).
const TRASH_RECORD_BYTES: usize = 16 * 1024;

impl RecordQueue {
    /// A queue of `capacity` records that wakes the task every `wake_at` records (capped at
    /// half the capacity, so a burst cannot fill it before the task hears of it). Pushes
    /// count themselves in `counters.recorded`.
    pub(crate) fn new(
        capacity: usize,
        max_bytes: usize,
        wake_at: usize,
        counters: Arc<Counters>,
    ) -> Self {
        let capacity = capacity.max(1);
        Self {
            slots: ArrayQueue::new(capacity),
            closed: AtomicBool::new(false),
            wake_at: wake_at.min(capacity / 2).max(1),
            wake_bytes_shift: (max_bytes / 8).max(1).ilog2(),
            wake: Notify::new(),
            counters,
            max_bytes,
            bytes: AtomicUsize::new(0),
            trash: ArrayQueue::new(TRASH_RECORDS),
        }
    }

    /// Hands a refused record to the export task to free (or frees it here when it is large
    /// or the trash is full).
    pub(crate) fn discard_later(&self, record: Record) {
        if record.approx_bytes() <= TRASH_RECORD_BYTES {
            let _ = self.trash.push(record);
        }
    }

    /// Frees the refused records (the export task calls it).
    pub(crate) fn empty_trash(&self) {
        while self.trash.pop().is_some() {}
    }

    /// The most bytes the queued records may hold.
    pub(crate) fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The bytes the queued records hold now (their payloads and a fixed part each).
    pub(crate) fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn capacity(&self) -> usize {
        self.slots.capacity()
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Queues a record, or says why not. Never blocks.
    ///
    /// Counts it in `recorded` first (so a record the task takes at once is never seen
    /// sent before it is seen recorded), and takes the count back if refused. Every
    /// `wake_at`-th record wakes the task. The count is the only shared write besides the
    /// slot: reading the ring's length here would read the line the task writes on every
    /// pop.
    /// A root span carrying its trace counts as two records. A refused record is handed
    /// back with the reason.
    pub(crate) fn push(&self, record: Record) -> Result<(), (Refused, Record)> {
        if self.closed.load(Ordering::Acquire) {
            return Err((Refused::Closed, record));
        }
        let size = record.approx_bytes();
        let bytes_before = self.bytes.fetch_add(size, Ordering::Relaxed);
        if bytes_before + size > self.max_bytes {
            self.bytes.fetch_sub(size, Ordering::Relaxed);
            return Err((Refused::FullBytes, record));
        }
        let count = record.count();
        let before = self.counters.record(count);
        if let Err(record) = self.slots.push(record) {
            self.counters.unrecord(count);
            self.bytes.fetch_sub(size, Ordering::Relaxed);
            return Err((Refused::Full, record));
        }
        let wake_at = self.wake_at as u64;
        if (before + count) / wake_at != before / wake_at
            || (bytes_before + size) >> self.wake_bytes_shift
                != bytes_before >> self.wake_bytes_shift
        {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Takes the oldest record.
    pub(crate) fn pop(&self) -> Option<Record> {
        let record = self.slots.pop()?;
        self.bytes
            .fetch_sub(record.approx_bytes(), Ordering::Relaxed);
        Some(record)
    }

    /// Waits until a batch's worth has been queued since the last wake-up. A wake-up that
    /// comes while the task is busy is kept (one permit), so it drains as soon as it is back.
    pub(crate) async fn batch_ready(&self) {
        self.wake.notified().await;
    }

    /// Refuses every later push.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Removes what is still queued and accounts for it as lost for `reason`. Records that
    /// raced a shutdown (pushed after its last drain) count as recorded after shutdown:
    /// taken back from `recorded`, added to the drops.
    pub(crate) fn discard(&self, reason: LossReason) -> u64 {
        let mut n = 0;
        while let Some(record) = self.pop() {
            n += record.count();
        }
        if n > 0 {
            if reason == LossReason::ShutDown {
                self.counters.unrecord(n);
            }
            self.counters.lose(reason, n, String::new);
        }
        n
    }
}

impl Drop for RecordQueue {
    fn drop(&mut self) {
        self.discard(LossReason::ShutDown);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{SpanRecord, TraceRecord};
    use crate::time::Timestamp;

    fn record() -> Record {
        SpanRecord::new(
            crate::id::new_id(),
            crate::id::new_id(),
            "x",
            Timestamp::now(),
        )
        .into()
    }

    #[test]
    fn refuses_when_full_and_after_close() {
        let counters = Arc::new(Counters::default());
        let queue = RecordQueue::new(2, usize::MAX, 10, counters.clone());
        assert!(queue.push(record()).is_ok());
        assert!(queue.push(record()).is_ok());
        assert!(matches!(queue.push(record()), Err((Refused::Full, _))));
        assert!(queue.pop().is_some());
        queue.close();
        assert!(matches!(queue.push(record()), Err((Refused::Closed, _))));
        assert_eq!(queue.len(), 1);
        assert_eq!(
            counters.snapshot().recorded,
            2,
            "refused pushes are not counted"
        );
    }

    /// A span whose input is `n` bytes of text.
    fn sized(n: usize) -> Record {
        let mut r = SpanRecord::new(
            crate::id::new_id(),
            crate::id::new_id(),
            "x",
            Timestamp::now(),
        );
        r.input = crate::record::Payload::from_serialize("y".repeat(n), "input");
        r.into()
    }

    /// Whether a wake-up is waiting (polled once: no timing involved).
    fn woken(queue: &RecordQueue) -> bool {
        use futures_util::FutureExt as _;
        queue.batch_ready().now_or_never().is_some()
    }

    #[test]
    fn wakes_once_per_batch_s_worth() {
        let counters = Arc::new(Counters::default());
        let queue = RecordQueue::new(100, usize::MAX, 3, counters.clone());
        for _ in 0..2 {
            queue.push(record()).unwrap();
        }
        assert!(!woken(&queue), "below the mark");
        queue.push(record()).unwrap();
        queue.push(record()).unwrap();
        assert!(woken(&queue), "the third record wakes the task");
        assert!(!woken(&queue), "wake-ups do not pile up");
        while queue.pop().is_some() {}
        for _ in 0..2 {
            queue
                .push(TraceRecord::new(crate::id::new_id(), "t", Timestamp::now()).into())
                .unwrap();
        }
        assert!(woken(&queue), "the sixth record wakes it again");
        assert_eq!(counters.snapshot().recorded, 6);
    }

    #[test]
    fn large_records_wake_the_task_every_eighth_of_the_byte_bound() {
        let queue = RecordQueue::new(100, 64 * 1024, 1000, Arc::default());
        queue.push(sized(4000)).unwrap();
        assert!(!woken(&queue), "4 KB of 64: below an eighth");
        queue.push(sized(4000)).unwrap();
        assert!(woken(&queue), "past 8 KB: woken, long before 1000 records");
        queue.push(sized(1000)).unwrap();
        assert!(!woken(&queue));
    }

    #[test]
    fn refused_records_are_freed_by_the_export_task_within_a_bound() {
        let queue = RecordQueue::new(1, usize::MAX, 10, Arc::default());
        queue.push(record()).unwrap();
        for _ in 0..TRASH_RECORDS + 10 {
            let Err((Refused::Full, refused)) = queue.push(record()) else {
                panic!("the queue is full");
            };
            queue.discard_later(refused);
        }
        assert_eq!(
            queue.trash.len(),
            TRASH_RECORDS,
            "bounded: the rest freed at once"
        );
        let mut big = SpanRecord::new(
            crate::id::new_id(),
            crate::id::new_id(),
            "x",
            Timestamp::now(),
        );
        big.input = crate::record::Payload::from_serialize("x".repeat(TRASH_RECORD_BYTES), "input");
        queue.empty_trash();
        queue.discard_later(big.into());
        assert_eq!(
            queue.trash.len(),
            0,
            "a large record is freed where it was refused"
        );
        queue.discard_later(record());
        queue.empty_trash();
        assert_eq!(queue.trash.len(), 0);
    }

    #[test]
    fn the_byte_bound_refuses_what_would_pass_it() {
        let counters = Arc::new(Counters::default());
        let queue = RecordQueue::new(100, 4096, 10, counters.clone());
        assert!(queue.push(sized(1000)).is_ok());
        assert!(queue.push(sized(1000)).is_ok());
        assert!(matches!(
            queue.push(sized(1000)),
            Err((Refused::FullBytes, _))
        ));
        assert!(queue.bytes() <= 4096);
        assert!(queue.pop().is_some());
        assert!(queue.push(sized(1000)).is_ok(), "room again once popped");
        // Not only the payloads: an error that echoes a prompt counts too.
        let mut erroring = SpanRecord::new(
            crate::id::new_id(),
            crate::id::new_id(),
            "x",
            Timestamp::now(),
        );
        erroring.error_info = Some(crate::ErrorInfo::new("E", "e".repeat(4096)));
        assert!(matches!(
            queue.push(erroring.into()),
            Err((Refused::FullBytes, _))
        ));
        while queue.pop().is_some() {}
        assert_eq!(queue.bytes(), 0);
        assert_eq!(counters.snapshot().recorded, 3);
    }

    #[test]
    fn the_wake_mark_is_at_most_half_the_capacity() {
        assert_eq!(
            RecordQueue::new(10, usize::MAX, 1000, Arc::default()).wake_at,
            5
        );
        assert_eq!(
            RecordQueue::new(1, usize::MAX, 1000, Arc::default()).wake_at,
            1
        );
        assert_eq!(
            RecordQueue::new(4096, usize::MAX, 1000, Arc::default()).wake_at,
            1000
        );
    }

    #[test]
    fn leftovers_after_shutdown_are_taken_back_as_drops() {
        let counters = Arc::new(Counters::default());
        {
            let queue = RecordQueue::new(8, usize::MAX, 4, counters.clone());
            for _ in 0..3 {
                queue.push(record()).unwrap();
            }
            assert_eq!(counters.snapshot().recorded, 3);
        }
        let stats = counters.snapshot();
        assert_eq!((stats.recorded, stats.dropped, stats.pending()), (0, 3, 0));
    }
}
