//! Delivers one batch, as its own task: retries what is worth retrying, splits a batch the
//! backend refuses for bad content (400, 422) until the bad records stand alone, and
//! accounts for every record, including those of a task the runtime drops half-way.
//!
//! The batcher runs up to `export_concurrency` of these at once (as the Python SDK runs
//! four workers), so one slow call does not hold every later batch behind it.

use std::sync::Arc;

use tokio::time::Instant;

use super::exporter::{ExportBatch, ExportError, Exporter};
use super::retry::RetryPolicy;
use super::stats::{Counters, LossReason};
use crate::warn::RateLimit;

static EXPORT_WARNING: RateLimit = RateLimit::new();

#[derive(Clone)]
pub(crate) struct Sender {
    pub(crate) exporter: Arc<dyn Exporter>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) retry: RetryPolicy,
}

/// The records of a batch not yet accounted for: counted as lost to a stopped runtime if
/// the task is dropped before it resolves them.
struct Unresolved {
    counters: Arc<Counters>,
    records: u64,
}

impl Drop for Unresolved {
    fn drop(&mut self) {
        if self.records > 0 {
            self.counters
                .lose(LossReason::RuntimeStopped, self.records, String::new);
        }
    }
}

impl Sender {
    /// Delivers `batch`, or accounts for why not.
    pub(crate) async fn send(self, batch: ExportBatch) {
        let mut unresolved = Unresolved {
            counters: self.counters.clone(),
            records: batch.len() as u64,
        };
        let mut stack = vec![batch];
        while let Some(batch) = stack.pop() {
            if batch.is_empty() {
                continue;
            }
            let n = batch.len() as u64;
            match self.send_with_retry(&batch).await {
                Ok(()) => {
                    Counters::add(&self.counters.sent, n);
                    unresolved.records -= n;
                }
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
                    unresolved.records -= n;
                }
                Err(ExportError::Retryable { reason, .. }) => {
                    warn_export(&format!("{n} records given up after retries: {reason}"));
                    self.counters
                        .lose(LossReason::RetriesExhausted, n, || reason);
                    unresolved.records -= n;
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
            let wait = self.retry.delay(attempts - 1, *retry_after);
            if !self.retry.allows(attempts, started.elapsed(), wait) {
                return Err(err);
            }
            tracing::debug!(target: "tower_opik", error = %err, ?wait, "export failed, retrying");
            Counters::add(&self.counters.retries, 1);
            tokio::time::sleep(wait).await;
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
