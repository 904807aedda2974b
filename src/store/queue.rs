//! The bounded queue between the request path and the export task.
//!
//! A push is a lock-free slot claim in a ring allocated up front (no allocation, no lock, no
//! syscall), plus a length check. The export task is woken only when a batch's worth of
//! records is waiting; otherwise it drains the queue on its interval, at a flush, or at
//! shutdown. Waking the task on every record (as a channel does) cost a cross-thread wake-up
//! per span and made `record` four times slower.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_queue::ArrayQueue;
use tokio::sync::Notify;

use super::stats::{Counters, LossReason};
use crate::record::Record;

/// Why a push was refused. The record is dropped with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Every slot is taken.
    Full,
    /// The store has shut down.
    Closed,
}

pub(crate) struct RecordQueue {
    slots: ArrayQueue<Record>,
    closed: AtomicBool,
    /// The length at which a push wakes the export task.
    wake_at: usize,
    /// A wake-up is on its way and not yet consumed: later pushes need not send another.
    wake_pending: AtomicBool,
    wake: Notify,
    counters: Arc<Counters>,
}

impl RecordQueue {
    /// A queue of `capacity` records that wakes the task when `wake_at` are waiting (capped
    /// at half the capacity, so a burst cannot fill it before the task hears of it).
    pub(crate) fn new(capacity: usize, wake_at: usize, counters: Arc<Counters>) -> Self {
        let capacity = capacity.max(1);
        Self {
            slots: ArrayQueue::new(capacity),
            closed: AtomicBool::new(false),
            wake_at: wake_at.min(capacity / 2).max(1),
            wake_pending: AtomicBool::new(false),
            wake: Notify::new(),
            counters,
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.slots.capacity()
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Queues a record, or says why not. Never blocks.
    pub(crate) fn push(&self, record: Record) -> Result<(), Refused> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Refused::Closed);
        }
        if self.slots.push(record).is_err() {
            return Err(Refused::Full);
        }
        if self.slots.len() >= self.wake_at
            && !self.wake_pending.load(Ordering::Relaxed)
            && !self.wake_pending.swap(true, Ordering::AcqRel)
        {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Takes the oldest record.
    pub(crate) fn pop(&self) -> Option<Record> {
        self.slots.pop()
    }

    /// Waits until a batch's worth is queued.
    pub(crate) async fn batch_ready(&self) {
        self.wake.notified().await;
    }

    /// Called before each drain: the next push past the mark wakes the task again. Also
    /// called by drains that were not woken (interval, flush), so a wake-up lost to a
    /// cancelled wait cannot silence the queue.
    pub(crate) fn rearm(&self) {
        self.wake_pending.store(false, Ordering::Release);
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
        while self.slots.pop().is_some() {
            n += 1;
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
        let queue = RecordQueue::new(2, 10, Arc::default());
        assert_eq!(queue.push(record()), Ok(()));
        assert_eq!(queue.push(record()), Ok(()));
        assert_eq!(queue.push(record()), Err(Refused::Full));
        assert!(queue.pop().is_some());
        queue.close();
        assert_eq!(queue.push(record()), Err(Refused::Closed));
        assert_eq!(queue.len(), 1);
    }

    #[tokio::test]
    async fn wakes_once_per_batch_and_again_after_rearm() {
        let queue = RecordQueue::new(100, 3, Arc::default());
        for _ in 0..2 {
            queue.push(record()).unwrap();
        }
        assert!(
            !queue.wake_pending.load(Ordering::Relaxed),
            "below the mark"
        );
        queue.push(record()).unwrap();
        assert!(queue.wake_pending.load(Ordering::Relaxed));
        queue.push(record()).unwrap(); // no second notification
        queue.batch_ready().await; // the stored permit
        let waiting =
            tokio::time::timeout(std::time::Duration::from_millis(20), queue.batch_ready());
        assert!(waiting.await.is_err(), "one wake-up for one batch");
        queue.rearm();
        while queue.pop().is_some() {}
        for _ in 0..3 {
            queue
                .push(TraceRecord::new(crate::id::new_id(), "t", Timestamp::now()).into())
                .unwrap();
        }
        queue.batch_ready().await;
    }

    #[test]
    fn the_wake_mark_is_at_most_half_the_capacity() {
        assert_eq!(RecordQueue::new(10, 1000, Arc::default()).wake_at, 5);
        assert_eq!(RecordQueue::new(1, 1000, Arc::default()).wake_at, 1);
        assert_eq!(RecordQueue::new(4096, 1000, Arc::default()).wake_at, 1000);
    }

    #[test]
    fn leftovers_after_shutdown_are_taken_back_as_drops() {
        let counters = Arc::new(Counters::default());
        {
            let queue = RecordQueue::new(8, 4, counters.clone());
            for _ in 0..3 {
                queue.push(record()).unwrap();
                Counters::add(&counters.recorded, 1);
            }
        }
        let stats = counters.snapshot();
        assert_eq!((stats.recorded, stats.dropped, stats.pending()), (0, 3, 0));
    }
}
