//! The store's background task: takes records off the queue, encodes them, batches them by
//! kind, count and bytes, and hands each full batch to a [`Sender`] task, keeping at most
//! `export_concurrency` of those in flight.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use super::counters::Counters;
use super::exporter::{ExportBatch, RecordKind};
use super::queue::RecordQueue;
use super::retry::RetryPolicy;
use super::sender::Sender;
use super::spool::Drain;
use super::stats::LossReason;
use crate::record::Record;

/// Opik's limit of items in one batch call.
pub(crate) const OPIK_MAX_BATCH_ITEMS: usize = 1000;

/// Spool writes at once when the senders are all held: the writes' `fsync`s overlap, so
/// a burst of small batches is not written one `fsync` at a time.
const SPOOL_WRITES: usize = 4;

/// A request to the task, answered when done.
#[derive(Debug)]
pub(crate) enum Command {
    /// Deliver everything queued so far.
    Flush(oneshot::Sender<()>),
    /// Deliver everything queued so far, then stop.
    Shutdown(oneshot::Sender<()>),
}

impl Command {
    /// Whether the caller stopped waiting for the answer.
    fn abandoned(&self) -> bool {
        match self {
            Self::Flush(done) | Self::Shutdown(done) => done.is_closed(),
        }
    }

    fn answer(self) {
        match self {
            Self::Flush(done) | Self::Shutdown(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// How the task batches.
#[derive(Clone, Debug)]
pub(crate) struct BatchLimits {
    pub(crate) max_items: usize,
    pub(crate) max_bytes: usize,
    pub(crate) interval: Duration,
    pub(crate) retry: RetryPolicy,
    /// Batches in flight at once (at least 1).
    pub(crate) concurrency: usize,
}

pub(crate) struct Batcher {
    records: Arc<RecordQueue>,
    commands: mpsc::UnboundedReceiver<Command>,
    sender: Sender,
    /// With a spool: asks its replayer to deliver what it holds (at a flush), and the
    /// replayer's task, awaited at shutdown.
    drains: Option<mpsc::UnboundedSender<Drain>>,
    replayer: Option<tokio::task::JoinHandle<()>>,
    in_flight: JoinSet<()>,
    /// Batches being written to the spool while every sender is held (at most
    /// [`SPOOL_WRITES`]).
    spooling: JoinSet<()>,
    counters: Arc<Counters>,
    limits: BatchLimits,
    /// The batches being filled, one per kind (`RecordKind::ALL`'s order).
    batches: [ExportBatch; 4],
    /// Reused by `encode`.
    scratch: Vec<u8>,
    /// Set when the task ends by a shutdown or because every handle is gone (not when
    /// the runtime drops it).
    finished: bool,
}

impl Batcher {
    pub(crate) fn new(
        records: Arc<RecordQueue>,
        commands: mpsc::UnboundedReceiver<Command>,
        sender: Sender,
        replay: Option<(mpsc::UnboundedSender<Drain>, tokio::task::JoinHandle<()>)>,
        counters: Arc<Counters>,
        limits: BatchLimits,
    ) -> Self {
        let (drains, replayer) = replay.unzip();
        Self {
            records,
            commands,
            sender,
            drains,
            replayer,
            in_flight: JoinSet::new(),
            spooling: JoinSet::new(),
            counters,
            limits,
            batches: RecordKind::ALL.map(ExportBatch::new),
            scratch: Vec::with_capacity(4096),
            finished: false,
        }
    }

    pub(crate) async fn run(mut self) {
        let mut ticker =
            tokio::time::interval_at(Instant::now() + self.limits.interval, self.limits.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                command = self.commands.recv() => match command {
                    Some(first) => {
                        // Every command waiting now is answered by one round of work:
                        // flushes coalesce, and a shutdown among them serves them all.
                        let mut waiting = vec![first];
                        while let Ok(next) = self.commands.try_recv() {
                            waiting.push(next);
                        }
                        let shutdown = waiting.iter().any(|c| matches!(c, Command::Shutdown(_)));
                        if shutdown {
                            self.records.close();
                        }
                        // A flush whose caller has given up (its timeout passed) is not
                        // worth a round: the interval delivers those records.
                        if shutdown || waiting.iter().any(|c| !c.abandoned()) {
                            self.export_all().await;
                            self.settle().await;
                            self.drain_spool().await;
                        }
                        if shutdown {
                            self.stop_replayer().await;
                            self.finished = true;
                        }
                        for command in waiting {
                            command.answer();
                        }
                        if shutdown {
                            return;
                        }
                    }
                    None => {
                        // Every handle is gone: deliver what is left and stop.
                        self.export_all().await;
                        self.settle().await;
                        self.stop_replayer().await;
                        self.finished = true;
                        return;
                    }
                },
                // Reap finished senders (a panicked one has accounted for its records).
                Some(_) = self.in_flight.join_next(), if !self.in_flight.is_empty() => {}
                Some(_) = self.spooling.join_next(), if !self.spooling.is_empty() => {}
                // Before the queue, so a steady stream cannot starve the interval.
                _ = ticker.tick() => self.export_all().await,
                // A batch's worth is queued: batch it, exporting the batches that fill.
                () = self.records.batch_ready() => self.batch_queued().await,
            }
        }
    }

    /// Moves the records queued now (not those that arrive meanwhile, so a flush ends
    /// under a steady stream) into their batches, one at a time: while a full batch waits
    /// for a free sender, the rest stay in the bounded queue. (Draining the queue into a
    /// list first held up to a second queue's worth outside the bound: the dead-backend
    /// bench caught it.)
    async fn batch_queued(&mut self) {
        self.records.empty_trash();
        for _ in 0..self.records.len() {
            let Some(record) = self.records.pop() else {
                break;
            };
            self.encode(record).await;
        }
    }

    /// Encodes a record into its batches: a span's JSON into the spans batch, the trace a
    /// root span carries (or a trace record) into the traces batch, and feedback scores
    /// into the scores batches, each written
    /// once into a reused buffer and copied into the batch body.
    async fn encode(&mut self, record: Record) {
        for (part, id) in crate::record::encode::parts(&record) {
            self.scratch.clear();
            let written = crate::record::encode::write_part(&record, part, &mut self.scratch);
            self.place(RecordKind::of_part(part, &record), id, written)
                .await;
        }
    }

    /// Puts the JSON in `scratch` into the `kind` batch (cut down first when it is over
    /// the batch limit alone), exporting the batch first when it would overflow.
    async fn place(&mut self, kind: RecordKind, id: uuid::Uuid, written: serde_json::Result<()>) {
        if let Err(e) = written {
            self.counters
                .lose(LossReason::Encoding, 1, || e.to_string());
            return;
        }
        // A record must fit in a batch on its own: cut oversized payloads, with a marker.
        let limit = self.limits.max_bytes.saturating_sub(32);
        let size = self.scratch.len();
        let cut;
        let json: &[u8] = if size <= limit {
            &self.scratch
        } else {
            match super::truncate::fit(&self.scratch, limit) {
                Some(json) => {
                    self.counters.truncated(1);
                    cut = json;
                    &cut
                }
                None => {
                    self.counters
                        .lose_records(LossReason::TooLarge, std::iter::once(id), || {
                            format!("record {id} is {size} bytes")
                        });
                    return;
                }
            }
        };
        let (max_bytes, max_items) = (self.limits.max_bytes, self.limits.max_items);
        let batch = &mut self.batches[kind.index()];
        let overflow = !batch.is_empty() && batch.len_with(json.len()) > max_bytes;
        let full = overflow.then(|| batch.take());
        batch.push_json(id, json);
        let full_after = (batch.len() >= max_items).then(|| batch.take());
        if let Some(full) = full {
            self.export(full).await;
        }
        if let Some(full) = full_after {
            self.export(full).await;
        }
    }

    /// Exports both pending batches (after pushing anything drained from the queue).
    async fn export_all(&mut self) {
        self.batch_queued().await;
        for kind in RecordKind::ALL {
            let batch = self.batches[kind.index()].take();
            self.export(batch).await;
        }
    }

    /// Hands a batch to a sender task, first waiting for one to finish when
    /// `concurrency` are in flight (the queue takes the backpressure, and drops when full).
    /// With a spool, a batch that would wait while the queue is half full (in records or
    /// bytes) is spooled instead: every sender is held (Opik hangs, or is slower than the traffic), and
    /// waiting would mean drops at the queue bound.
    async fn export(&mut self, batch: ExportBatch) {
        if batch.is_empty() {
            return;
        }
        while self.in_flight.len() >= self.limits.concurrency {
            if self.sender.spool.is_none() {
                self.in_flight.join_next().await;
                continue;
            }
            if self.records.len() * 2 >= self.records.capacity()
                || self.records.bytes() * 2 >= self.records.max_bytes()
            {
                while self.spooling.len() >= SPOOL_WRITES {
                    self.spooling.join_next().await;
                }
                self.spooling.spawn(self.sender.clone().spool(batch));
                return;
            }
            // Woken by a sender that finishes, or by the queue growing.
            tokio::select! {
                _ = self.in_flight.join_next() => {}
                () = self.records.batch_ready() => {}
            }
        }
        self.in_flight.spawn(self.sender.clone().send(batch));
    }

    /// Waits until every batch in flight is delivered, spooled or given up.
    async fn settle(&mut self) {
        while self.in_flight.join_next().await.is_some() {}
        while self.spooling.join_next().await.is_some() {}
    }

    /// With a spool: stops its replayer (after the attempt it is making) and unlocks the
    /// directory for another store.
    async fn stop_replayer(&mut self) {
        self.drains = None;
        if let Some(replayer) = self.replayer.take() {
            let _ = replayer.await;
        }
        if let Some(spool) = &self.sender.spool {
            spool.unlock();
        }
    }

    /// With a spool: waits until its replayer has delivered what it holds, or found Opik
    /// still unreachable.
    async fn drain_spool(&mut self) {
        let Some(drains) = &self.drains else { return };
        let (done, answer) = oneshot::channel();
        if drains.send(done).is_ok() {
            let _ = answer.await;
        }
    }
}

impl Batcher {
    /// The runtime stopped the task without a shutdown: writes what is queued and batched
    /// here to the spool, at once, on this thread (batches in flight are the senders'; the
    /// runtime drops those with them).
    fn spool_what_is_left(&mut self) {
        let Some(spool) = self.sender.spool.clone() else {
            return;
        };
        let spool_full = |batcher: &mut Self, kind: RecordKind| {
            let batch = batcher.batches[kind.index()].take();
            if !batch.is_empty() {
                let written = spool.write(&batch);
                batcher.sender.count_spooled(&batch, written);
            }
        };
        while let Some(record) = self.records.pop() {
            for (part, id) in crate::record::encode::parts(&record) {
                self.scratch.clear();
                if let Err(e) = crate::record::encode::write_part(&record, part, &mut self.scratch)
                {
                    self.counters
                        .lose(LossReason::Encoding, 1, || e.to_string());
                    continue;
                }
                let kind = RecordKind::of_part(part, &record);
                let batch = &self.batches[kind.index()];
                if batch.len() >= self.limits.max_items
                    || (!batch.is_empty()
                        && batch.len_with(self.scratch.len()) > self.limits.max_bytes)
                {
                    spool_full(self, kind);
                }
                self.batches[kind.index()].push_json(id, &self.scratch);
            }
        }
        for kind in RecordKind::ALL {
            spool_full(self, kind);
        }
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        // Nobody drains the queue any more: later records are refused and counted, not
        // queued for nothing.
        self.records.close();
        if self.finished {
            // Only pushes that raced the shutdown's last drain can be left.
            self.records.discard(LossReason::ShutDown);
            return;
        }
        self.spool_what_is_left();
        // In batches here, and still queued; batches in flight count themselves.
        let batched = self.batches.iter().map(ExportBatch::len).sum::<usize>() as u64;
        self.counters
            .lose(LossReason::RuntimeStopped, batched, String::new);
        let lost = batched + self.records.discard(LossReason::RuntimeStopped);
        if lost > 0 {
            tracing::warn!(
                target: "tower_opik",
                lost,
                "the runtime stopped the Opik span store with records undelivered: \
                 call SpanStore::shutdown before the runtime ends"
            );
        }
    }
}
