//! The store's background task: takes records off the queue, batches them by kind, count and
//! bytes, and exports each batch with retries, splitting batches the backend refuses for a
//! bad record so that one bad record cannot sink the others.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};

use super::exporter::{Encoded, ExportBatch, ExportError, Exporter, RecordKind};
use super::queue::RecordQueue;
use super::retry::RetryPolicy;
use super::stats::{Counters, LossReason};
use crate::record::Record;
use crate::warn::RateLimit;

/// Opik's limit of items in one batch call.
pub(crate) const OPIK_MAX_BATCH_ITEMS: usize = 1000;

/// A request to the task, answered when done.
#[derive(Debug)]
pub(crate) enum Command {
    /// Deliver everything queued so far.
    Flush(oneshot::Sender<()>),
    /// Deliver everything queued so far, then stop.
    Shutdown(oneshot::Sender<()>),
}

/// How the task batches.
#[derive(Clone, Debug)]
pub(crate) struct BatchLimits {
    pub(crate) max_items: usize,
    pub(crate) max_bytes: usize,
    pub(crate) interval: Duration,
    pub(crate) retry: RetryPolicy,
}

pub(crate) struct Batcher {
    records: Arc<RecordQueue>,
    commands: mpsc::UnboundedReceiver<Command>,
    exporter: Arc<dyn Exporter>,
    counters: Arc<Counters>,
    limits: BatchLimits,
    spans: ExportBatch,
    traces: ExportBatch,
    /// Reused by `encode`.
    scratch: Vec<u8>,
    /// Set when the task ends by a shutdown or because every handle is gone (not when
    /// the runtime drops it).
    finished: bool,
}

static EXPORT_WARNING: RateLimit = RateLimit::new();

impl Batcher {
    pub(crate) fn new(
        records: Arc<RecordQueue>,
        commands: mpsc::UnboundedReceiver<Command>,
        exporter: Arc<dyn Exporter>,
        counters: Arc<Counters>,
        limits: BatchLimits,
    ) -> Self {
        Self {
            records,
            commands,
            exporter,
            counters,
            limits,
            spans: ExportBatch::new(RecordKind::Span),
            traces: ExportBatch::new(RecordKind::Trace),
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
                    Some(Command::Flush(done)) => {
                        self.export_all().await;
                        let _ = done.send(());
                    }
                    Some(Command::Shutdown(done)) => {
                        self.records.close();
                        self.export_all().await;
                        self.finished = true;
                        let _ = done.send(());
                        return;
                    }
                    None => {
                        // Every handle is gone: deliver what is left and stop.
                        self.export_all().await;
                        self.finished = true;
                        return;
                    }
                },
                // Before the queue, so a steady stream cannot starve the interval.
                _ = ticker.tick() => self.export_all().await,
                () = self.records.batch_ready() => self.export_full().await,
            }
        }
    }

    /// Takes everything waiting in the queue, encoded.
    fn drain_queue(&mut self) -> Vec<Encoded> {
        let mut drained = Vec::with_capacity(self.records.len());
        while let Some(record) = self.records.pop() {
            if let Some(item) = self.encode(record) {
                drained.push(item);
            }
        }
        drained
    }

    /// Woken with a batch's worth queued: batches it, exporting the batches that fill and
    /// keeping the rest for the interval.
    async fn export_full(&mut self) {
        for item in self.drain_queue() {
            self.push(item).await;
        }
    }

    fn encode(&mut self, mut record: Record) -> Option<Encoded> {
        record.materialize();
        // Serialized into a buffer kept across records, then copied once at its exact size:
        // `to_vec` grew a fresh vector four or five times for a 1 KB span.
        self.scratch.clear();
        let json = match record.write_json(&mut self.scratch) {
            Ok(()) => self.scratch.as_slice().to_vec(),
            Err(e) => {
                self.counters
                    .lose(LossReason::Encoding, 1, || e.to_string());
                return None;
            }
        };
        // A record must fit in a batch on its own: cut oversized payloads, with a marker.
        let limit = self.limits.max_bytes.saturating_sub(32);
        let size = json.len();
        match super::truncate::fit(&mut record, json, limit) {
            Some(json) => {
                if json.len() < size {
                    Counters::add(&self.counters.truncated, 1);
                }
                Some(Encoded { record, json })
            }
            None => {
                self.counters.lose(LossReason::TooLarge, 1, || {
                    format!("record {} is {size} bytes", record.id())
                });
                None
            }
        }
    }

    async fn push(&mut self, item: Encoded) {
        let kind = RecordKind::of(&item.record);
        let (max_bytes, max_items) = (self.limits.max_bytes, self.limits.max_items);
        let batch = self.batch_mut(kind);
        if !batch.is_empty() && batch.json_len() + item.json.len() + 1 > max_bytes {
            let full = batch.take();
            self.export(full).await;
        }
        let batch = self.batch_mut(kind);
        batch.push(item);
        if batch.len() >= max_items {
            let full = batch.take();
            self.export(full).await;
        }
    }

    fn batch_mut(&mut self, kind: RecordKind) -> &mut ExportBatch {
        match kind {
            RecordKind::Span => &mut self.spans,
            RecordKind::Trace => &mut self.traces,
        }
    }

    /// Exports both pending batches (after pushing anything drained from the queue).
    async fn export_all(&mut self) {
        // Records drained by `drain_queue` may exceed one batch: push them through `push`.
        let drained = self.drain_queue();
        for item in drained {
            self.push(item).await;
        }
        let spans = self.spans.take();
        self.export(spans).await;
        let traces = self.traces.take();
        self.export(traces).await;
    }

    /// Exports one batch, retrying transient failures and splitting batches refused for
    /// bad content (400, 422) until the bad records stand alone.
    async fn export(&self, batch: ExportBatch) {
        let mut stack = vec![batch];
        while let Some(batch) = stack.pop() {
            if batch.is_empty() {
                continue;
            }
            let n = batch.len() as u64;
            match self.send_with_retry(&batch).await {
                Ok(()) => Counters::add(&self.counters.sent, n),
                Err(ExportError::Rejected {
                    status: 400 | 422, ..
                }) if batch.len() > 1 => {
                    let (first, second) = batch.split();
                    stack.push(second);
                    stack.push(first);
                }
                Err(ExportError::Rejected { status, message }) => {
                    warn_export(&format!("{n} records rejected with {status}: {message}"));
                    let ids = id_list(&batch);
                    self.counters.lose(LossReason::Rejected { status }, n, || {
                        format!("{message} [{ids}]")
                    });
                }
                Err(ExportError::Retryable { reason, .. }) => {
                    warn_export(&format!("{n} records given up after retries: {reason}"));
                    self.counters
                        .lose(LossReason::RetriesExhausted, n, || reason);
                }
            }
        }
    }

    async fn send_with_retry(&self, batch: &ExportBatch) -> Result<(), ExportError> {
        let started = Instant::now();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            Counters::add(&self.counters.export_calls, 1);
            let err = match self.exporter.export(batch).await {
                Ok(()) => return Ok(()),
                Err(e @ ExportError::Rejected { .. }) => return Err(e),
                Err(e) => e,
            };
            let ExportError::Retryable { retry_after, .. } = &err else {
                return Err(err);
            };
            let wait = self.limits.retry.delay(attempts - 1, *retry_after);
            if !self.limits.retry.allows(attempts, started.elapsed(), wait) {
                return Err(err);
            }
            tracing::debug!(target: "tower_opik", error = %err, ?wait, "export failed, retrying");
            Counters::add(&self.counters.retries, 1);
            tokio::time::sleep(wait).await;
        }
    }

    /// Records still held in batches when the task is dropped.
    fn held(&self) -> u64 {
        (self.spans.len() + self.traces.len()) as u64
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        if self.finished {
            // Only pushes that raced the shutdown's last drain can be left.
            self.records.discard(LossReason::ShutDown);
            return;
        }
        let lost = self.held() + self.records.discard(LossReason::RuntimeStopped);
        if lost > 0 {
            self.counters
                .lose(LossReason::RuntimeStopped, self.held(), String::new);
            tracing::warn!(
                target: "tower_opik",
                lost,
                "the runtime stopped the Opik span store with records undelivered: \
                 call SpanStore::shutdown before the runtime ends"
            );
        }
    }
}

fn warn_export(message: &str) {
    if let Some(suppressed) = EXPORT_WARNING.check() {
        tracing::warn!(target: "tower_opik", suppressed, "Opik export: {message}");
    }
}

/// The ids of a (small) batch, for the loss message: at most 5.
fn id_list(batch: &ExportBatch) -> String {
    let mut ids: Vec<String> = batch
        .records()
        .take(5)
        .map(|r| r.id().to_string())
        .collect();
    if batch.len() > 5 {
        ids.push(format!("and {} more", batch.len() - 5));
    }
    ids.join(", ")
}
