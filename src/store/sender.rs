//! Delivers one batch, as its own task, and accounts for every record, naming those it gives
//! up (including those of a task the runtime drops half-way):
//!
//! - retries transient failures (429, 5xx, transport, an export call over
//!   [`RetryPolicy::attempt_timeout`]): a wait the server asks for is bounded by the batch's
//!   time budget, other failures by count and time;
//! - splits a batch the backend refuses for its content (400, 422) until the bad records
//!   stand alone, and stops as soon as a split shows the refusal is systemic (both halves,
//!   and both halves of one half, refused alike): the whole batch is then given up at once;
//! - splits a batch refused as too large (413, a proxy's body limit) until each part fits,
//!   and cuts a record too large alone down with truncation markers (`truncate.rs`).
//!
//! The batcher runs up to `export_concurrency` of these at once (as the Python SDK runs
//! four workers), so one slow call does not hold every later batch behind it.
//!
//! With a spool, a transient failure is not retried in memory: the batch is written to
//! the spool at once, and so is every later batch until the spool's replayer gets one
//! through (`spool/replay.rs`). The replayer uses the same sender, counting deliveries as
//! replayed.

use std::sync::Arc;

use tokio::time::Instant;

use super::counters::Counters;
use super::exporter::{ExportBatch, ExportError, Exporter};
use super::retry::RetryPolicy;
use super::spool::{Spool, WriteError};
use super::stats::LossReason;
use crate::warn::RateLimit;

static EXPORT_WARNING: RateLimit = RateLimit::new();

#[derive(Clone, Debug)]
pub(crate) struct Sender {
    pub(crate) exporter: Arc<dyn Exporter>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) retry: RetryPolicy,
    pub(crate) spool: Option<Arc<Spool>>,
    /// Sends batches read back from the spool: deliveries count as replayed, losses as
    /// dropped from the spool (they were counted as spooled when written).
    pub(crate) from_spool: bool,
    /// Set on the sender that retries in memory a batch the spool could not take: why,
    /// for the count if the retries run out too.
    pub(crate) refused_by_spool: Option<LossReason>,
}

/// The records of a batch not yet accounted for: counted as lost to a stopped runtime if
/// the task is dropped before it resolves them (a batch read from the spool is still in
/// its file then).
struct Unresolved {
    counters: Arc<Counters>,
    records: u64,
    from_spool: bool,
}

impl Drop for Unresolved {
    fn drop(&mut self) {
        if self.records == 0 || self.from_spool {
            return;
        }
        // Unwinding: the exporter panicked (the task is dropped by the runtime otherwise).
        if std::thread::panicking() {
            static PANIC_WARNING: RateLimit = RateLimit::new();
            self.counters
                .lose(LossReason::ExportPanicked, self.records, || {
                    "the exporter panicked".to_owned()
                });
            if let Some(suppressed) = PANIC_WARNING.check() {
                tracing::error!(
                    target: "tower_opik",
                    suppressed,
                    lost = self.records,
                    "the Opik exporter panicked: its batch is lost, the store goes on"
                );
            }
        } else {
            self.counters
                .lose(LossReason::RuntimeStopped, self.records, String::new);
        }
    }
}

type Outcome = Result<(), ExportError>;

/// A part of the batch and how its last delivery went.
struct Step {
    batch: ExportBatch,
    outcome: Outcome,
    /// Cut down after a 413.
    truncated: bool,
}

/// Refusals of a batch's content or size: worth splitting the batch.
fn splits(status: u16) -> bool {
    matches!(status, 400 | 413 | 422)
}

impl Sender {
    /// Delivers `batch`, or spools it, or accounts for why not.
    pub(crate) async fn send(self, mut batch: ExportBatch) {
        batch.seal();
        if batch.is_empty() {
            return;
        }
        let mut unresolved = self.unresolved(&batch);
        if self.spool.as_ref().is_some_and(|s| s.offline()) {
            return self.to_spool(batch, &mut unresolved).await;
        }
        let outcome = self.attempt(&batch).await;
        self.settle(batch, outcome, unresolved).await;
    }

    /// Writes `batch` to the spool without trying Opik (or counts it lost).
    pub(crate) async fn spool(self, mut batch: ExportBatch) {
        batch.seal();
        let mut unresolved = self.unresolved(&batch);
        self.to_spool(batch, &mut unresolved).await;
    }

    fn unresolved(&self, batch: &ExportBatch) -> Unresolved {
        Unresolved {
            counters: self.counters.clone(),
            records: batch.len() as u64,
            from_spool: self.from_spool,
        }
    }

    /// Accounts for `batch` after its first attempt: delivered, split and sent again,
    /// spooled, or given up.
    pub(crate) async fn resolve(self, batch: ExportBatch, outcome: Outcome) {
        let unresolved = self.unresolved(&batch);
        self.settle(batch, outcome, unresolved).await;
    }

    async fn settle(self, batch: ExportBatch, outcome: Outcome, mut unresolved: Unresolved) {
        let mut stack = vec![Step {
            batch,
            outcome,
            truncated: false,
        }];
        while let Some(Step {
            batch,
            outcome,
            truncated,
        }) = stack.pop()
        {
            if batch.is_empty() {
                continue;
            }
            let n = batch.len() as u64;
            match outcome {
                Ok(()) => {
                    self.counters.delivered(n, self.from_spool);
                    if truncated {
                        self.counters.truncated(n);
                    }
                    unresolved.records -= n;
                }
                Err(ExportError::Rejected { status, message })
                    if splits(status) && batch.len() > 1 =>
                {
                    match self.bisect(batch, status, &message).await {
                        Ok(parts) => stack.extend(parts),
                        Err(parts) => {
                            let total: usize = parts.iter().map(ExportBatch::len).sum();
                            let why = format!(
                                "systemic: every part of a batch of {total} tried was refused \
                                 alike, not split further: {message}"
                            );
                            let ids: Vec<_> = parts.iter().flat_map(ExportBatch::ids).collect();
                            warn_export(&format!("{total} records rejected with {status}: {why}"));
                            self.lose(LossReason::Rejected { status }, ids.into_iter(), why);
                            unresolved.records -= total as u64;
                        }
                    }
                }
                Err(ExportError::Rejected {
                    status: 413,
                    message,
                }) => match shrink(batch) {
                    Ok(batch) => {
                        let outcome = self.attempt(&batch).await;
                        stack.push(Step {
                            batch,
                            outcome,
                            truncated: true,
                        });
                    }
                    Err(batch) => {
                        let why = format!(
                            "refused as too large (413) even with its payloads truncated: \
                             {message}"
                        );
                        self.give_up(LossReason::TooLarge, &batch, why, &mut unresolved);
                    }
                },
                Err(ExportError::Rejected { status, message }) => {
                    let reason = LossReason::Rejected { status };
                    self.give_up(reason, &batch, message, &mut unresolved);
                }
                Err(ExportError::Retryable { .. })
                    if self.spool.is_some() && self.refused_by_spool.is_none() =>
                {
                    self.to_spool(batch, &mut unresolved).await;
                }
                Err(ExportError::Retryable { reason, .. }) => {
                    let why = format!("given up after retries: {reason}");
                    match self.refused_by_spool {
                        Some(refused) => {
                            let why = format!("{why} (the spool could not take it: {refused})");
                            if !self.from_spool {
                                self.counters.spool_refused(refused, batch.ids(), || why);
                            } else {
                                self.lose(refused, batch.ids(), why);
                            }
                            unresolved.records -= n;
                        }
                        None => {
                            self.give_up(LossReason::RetriesExhausted, &batch, why, &mut unresolved)
                        }
                    }
                }
            }
        }
    }

    /// Splits a batch refused with `status`, tries both halves, and returns the parts to
    /// resolve; or, when the refusal is systemic, `Err` with every part, to give up. A
    /// refusal is systemic when both halves, and both halves of the first half, are refused
    /// alike (a 413 never is: halves of a batch too large can both be too large).
    async fn bisect(
        &self,
        batch: ExportBatch,
        status: u16,
        message: &str,
    ) -> Result<Vec<Step>, Vec<ExportBatch>> {
        let step = |batch, outcome| Step {
            batch,
            outcome,
            truncated: false,
        };
        let (first, second) = batch.split();
        let first_outcome = self.attempt(&first).await;
        let second_outcome = self.attempt(&second).await;
        let alike = |a: &Outcome, b: &Outcome| {
            status != 413 && refused_like(a, status, message) && refused_like(b, status, message)
        };
        if !alike(&first_outcome, &second_outcome) || first.len() < 2 {
            // Popped first to last: the first half first.
            return Ok(vec![
                step(second, second_outcome),
                step(first, first_outcome),
            ]);
        }
        let (q1, q2) = first.split();
        let q1_outcome = self.attempt(&q1).await;
        let q2_outcome = self.attempt(&q2).await;
        if alike(&q1_outcome, &q2_outcome) {
            return Err(vec![q1, q2, second]);
        }
        Ok(vec![
            step(second, second_outcome),
            step(q2, q2_outcome),
            step(q1, q1_outcome),
        ])
    }

    fn give_up(
        &self,
        reason: LossReason,
        batch: &ExportBatch,
        message: String,
        unresolved: &mut Unresolved,
    ) {
        let n = batch.len() as u64;
        warn_export(&format!("{n} records {reason}: {message}"));
        self.lose(reason, batch.ids(), message);
        unresolved.records -= n;
    }

    /// Counts records given up: failed, or, read back from the spool, dropped from it.
    fn lose(
        &self,
        reason: LossReason,
        ids: impl ExactSizeIterator<Item = uuid::Uuid>,
        why: String,
    ) {
        if self.from_spool {
            self.counters
                .lose_spooled(reason, ids.len() as u64, ids, || why);
        } else {
            self.counters.lose_records(reason, ids, || why);
        }
    }

    /// Writes `batch` to the spool (off the runtime's workers), or counts it lost when the
    /// spool is full or cannot be written.
    async fn to_spool(&self, batch: ExportBatch, unresolved: &mut Unresolved) {
        let Some(spool) = self.spool.clone() else {
            return;
        };
        let n = batch.len() as u64;
        let written = super::spool::blocking(move || {
            let written = spool.write(&batch);
            (batch, written)
        })
        .await;
        let (batch, written) = match written {
            Ok(done) => done,
            // The write panicked (never expected): `unresolved` counts the batch as lost.
            Err(_) => return,
        };
        let refused = match &written {
            Err(WriteError::Full) => LossReason::SpoolFull,
            Err(WriteError::Io(_)) => LossReason::SpoolUnwritable,
            Ok(()) => {
                self.count_spooled(&batch, written);
                unresolved.records -= n;
                return;
            }
        };
        if self.spool.as_ref().is_some_and(|s| s.is_abandoned()) {
            // A shutdown out of time: no time left to retry.
            self.count_spooled(&batch, written);
            unresolved.records -= n;
            return;
        }
        // The spool cannot take it (full, a disk error): never worse than no spool, the
        // batch is retried in memory as the policy allows.
        // (It keeps the spool to hear of a shutdown out of time, never to write to it.)
        let fallback = Sender {
            refused_by_spool: Some(refused),
            ..self.clone()
        };
        let outcome = fallback.attempt(&batch).await;
        unresolved.records -= n;
        Box::pin(fallback.resolve(batch, outcome)).await;
    }

    /// Counts `batch` as spooled, or, when the write failed, as lost.
    pub(crate) fn count_spooled(&self, batch: &ExportBatch, written: Result<(), WriteError>) {
        let n = batch.len() as u64;
        let (reason, why) = match written {
            Ok(()) if self.from_spool => return,
            Ok(()) => return self.counters.spooled(n),
            Err(WriteError::Full) => (
                LossReason::SpoolFull,
                "the spool is full: the newest batch is dropped".to_owned(),
            ),
            Err(WriteError::Io(e)) => (LossReason::SpoolUnwritable, e.to_string()),
        };
        if self.from_spool {
            self.lose(reason, batch.ids(), why);
        } else {
            self.counters.spool_refused(reason, batch.ids(), || why);
        }
    }

    /// Sends one batch as is, retrying transient failures as the policy allows.
    pub(crate) async fn attempt(&self, batch: &ExportBatch) -> Outcome {
        let started = Instant::now();
        let limit = self.retry.export_timeout();
        let mut failures = 0u32;
        loop {
            self.counters.export_call();
            let call = tokio::time::timeout(limit, self.exporter.export(batch));
            let outcome = match &self.spool {
                None => call.await,
                // A shutdown out of time stops the call: the batch goes to the spool.
                Some(spool) => tokio::select! {
                    outcome = call => outcome,
                    () = spool.abandoned() => Ok(Err(ExportError::retryable(
                        "the shutdown's time ran out", None,
                    ))),
                },
            };
            let outcome = match outcome {
                Ok(outcome) => outcome,
                Err(_) => Err(ExportError::retryable(
                    format!("the export call took over {limit:?} and was abandoned"),
                    None,
                )),
            };
            let err = match outcome {
                Ok(()) => {
                    if let Some(spool) = &self.spool {
                        spool.set_outage(false);
                    }
                    self.recovered();
                    return Ok(());
                }
                Err(e) => e,
            };
            let retry_after = match &err {
                ExportError::Retryable { retry_after, .. } => *retry_after,
                ExportError::Rejected { status, .. } => {
                    if !splits(*status) {
                        self.failing(&err);
                    }
                    return Err(err);
                }
            };
            if let Some(spool) = &self.spool {
                // A shutdown out of time is no failure of Opik's: not logged as one.
                if spool.is_abandoned() {
                    return Err(err);
                }
                if self.refused_by_spool.is_none() {
                    // Not retried in memory: the spool's replayer retries it.
                    self.failing(&err);
                    spool.set_outage(true);
                    return Err(err);
                }
                // The spool refused this batch: retried in memory, below.
            }
            self.failing(&err);
            let wait = self.retry.wait(failures, retry_after);
            if !wait.server_paced {
                failures = failures.saturating_add(1);
            }
            if !self
                .retry
                .allows(failures, started.elapsed(), wait.duration)
            {
                return Err(err);
            }
            let wait = wait.duration;
            tracing::debug!(target: "tower_opik", error = %err, ?wait, "export failed, retrying");
            self.counters.retry();
            match &self.spool {
                None => tokio::time::sleep(wait).await,
                // A shutdown out of time ends the wait of a batch the spool refused.
                Some(spool) => tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = spool.abandoned() => {}
                },
            }
        }
    }

    /// An attempt failed: the first failure after successes is logged at WARN (rate-limited),
    /// with where the exporter sends (never a credential).
    fn failing(&self, err: &ExportError) {
        if let Some(suppressed) = self.counters.health.failed() {
            let destination = self
                .exporter
                .destination()
                .unwrap_or_else(|| "a custom exporter".into());
            let fate = match (err.is_retryable(), self.spool.is_some()) {
                (true, false) => "records are kept and retried",
                (true, true) => {
                    "records are written to the spool and replayed when Opik answers again"
                }
                (false, _) => {
                    "the backend refused the batch: its records are given up (logged with \
                     their ids)"
                }
            };
            tracing::warn!(
                target: "tower_opik",
                suppressed,
                %destination,
                "Opik export failing ({err}) sending to {destination}: {fate}; the store's \
                 stats() count what is given up; logged again when it recovers"
            );
        }
    }

    /// An attempt succeeded: the first success after failures is logged at INFO.
    fn recovered(&self) {
        if let Some(suppressed) = self.counters.health.succeeded() {
            let destination = self
                .exporter
                .destination()
                .unwrap_or_else(|| "a custom exporter".into());
            tracing::info!(
                target: "tower_opik",
                suppressed,
                %destination,
                "Opik export recovered: batches are delivered again"
            );
        }
    }
}

/// Whether `outcome` is a refusal with `status` and a message like `message` (ids, indices
/// and other hex digits aside: "spans[0] (id 0193...)" is like "spans[0] (id 0194...)").
fn refused_like(outcome: &Outcome, status: u16, message: &str) -> bool {
    let shape = |m: &str| {
        m.chars()
            .map(|c| if c.is_ascii_hexdigit() { '#' } else { c })
            .collect::<String>()
    };
    matches!(outcome, Err(ExportError::Rejected { status: s, message: m })
        if *s == status && shape(m) == shape(message))
}

/// A batch of one record refused as too large, cut down to half its size with truncation
/// markers; `Err` with the batch when its payloads are not what makes it large.
fn shrink(batch: ExportBatch) -> Result<ExportBatch, ExportBatch> {
    let kind = batch.kind();
    if batch.len() != 1 {
        return Err(batch); // not a single record (never the case): left as it was
    }
    let Some((id, json)) = batch.records_json().next() else {
        return Err(batch);
    };
    match super::truncate::fit(json, json.len() / 2) {
        Some(cut) => {
            let mut smaller = ExportBatch::new(kind);
            smaller.push_json(id, &cut);
            smaller.seal();
            Ok(smaller)
        }
        None => Err(batch),
    }
}

fn warn_export(message: &str) {
    if let Some(suppressed) = EXPORT_WARNING.check() {
        tracing::warn!(target: "tower_opik", suppressed, "Opik export: {message}");
    }
}
