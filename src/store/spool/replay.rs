//! The replayer: the store's second task when it has a spool. It delivers the spooled
//! batches, oldest first, one at a time, and deletes each file once its records are
//! accounted for (delivered, or refused by Opik for good: split and counted as any batch).
//!
//! While Opik is unreachable (an outage: a transient failure of any batch) it probes with
//! the oldest file, waiting the retry policy's backoff between probes (`Retry-After` when
//! Opik gives one); the first delivery ends the outage and the rest follows at once. A
//! flush asks it to deliver what it can now: it probes at once, and answers when the spool
//! is empty or Opik is still unreachable.
//!
//! Replaying a batch twice (a crash between delivery and deletion) is safe: Opik's batch
//! endpoints are upserts by id.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::{Listed, Spool};
use crate::store::exporter::ExportError;
use crate::store::sender::Sender;
use crate::warn::RateLimit;

/// A request to deliver what the spool holds, answered when it is empty or Opik is
/// unreachable.
pub(crate) type Drain = oneshot::Sender<()>;

#[derive(Debug)]
pub(crate) struct Replayer {
    pub(crate) spool: Arc<Spool>,
    /// Counts deliveries as replayed, and losses as dropped from the spool.
    pub(crate) sender: Sender,
    /// Closed when the batcher stops.
    pub(crate) drains: mpsc::UnboundedReceiver<Drain>,
}

fn answer(waiting: &mut Vec<Drain>) {
    for drain in waiting.drain(..) {
        let _ = drain.send(());
    }
}

impl Replayer {
    pub(crate) async fn run(mut self) {
        let spool = self.spool.clone();
        let abandoned = spool.abandoned();
        tokio::pin!(abandoned);
        let mut files: VecDeque<Listed> = VecDeque::new();
        let mut waiting: Vec<Drain> = Vec::new();
        let mut failures = 0u32;
        // In an outage: when to probe next.
        let mut probe_at: Option<Instant> = None;
        loop {
            match self.drains.try_recv() {
                Ok(drain) => waiting.push(drain),
                // The store has shut down.
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            if spool.is_abandoned() {
                break;
            }
            if files.is_empty() {
                let listing = spool.clone();
                files = super::blocking(move || listing.list())
                    .await
                    .unwrap_or_default()
                    .into();
            }
            if files.is_empty() {
                answer(&mut waiting);
                tokio::select! {
                    () = spool.written() => {}
                    drain = self.drains.recv() => match drain {
                        Some(drain) => waiting.push(drain),
                        None => break,
                    },
                    () = &mut abandoned => break,
                }
                continue;
            }
            if let Some(at) = probe_at {
                if !waiting.is_empty() {
                    // Asked since the last probe failed: probe now.
                } else {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        drain = self.drains.recv() => match drain {
                            Some(drain) => waiting.push(drain),
                            None => break,
                        },
                        () = &mut abandoned => break,
                    }
                }
                probe_at = None;
            }
            let Some(file) = files.pop_front() else {
                continue;
            };
            let reading = spool.clone();
            let read = super::blocking(move || {
                let batch = reading.read(&file);
                (file, batch)
            })
            .await;
            let (file, batch) = match read {
                Ok((file, Ok(Some(batch)))) => (file, batch),
                Ok((_, Ok(None))) => continue, // gone, or set aside
                Err(panicked) => {
                    // The file stays on disk and is tried again at the next listing.
                    static PANIC_WARNING: RateLimit = RateLimit::new();
                    if let Some(suppressed) = PANIC_WARNING.check() {
                        tracing::warn!(
                            target: "tower_opik",
                            suppressed,
                            error = %panicked,
                            "reading an Opik spool file panicked: it stays in the spool"
                        );
                    }
                    continue;
                }
                Ok((file, Err(e))) => {
                    static READ_WARNING: RateLimit = RateLimit::new();
                    if let Some(suppressed) = READ_WARNING.check() {
                        tracing::warn!(
                            target: "tower_opik",
                            suppressed,
                            error = %e,
                            "cannot read an Opik spool file: trying again later"
                        );
                    }
                    files.push_front(file);
                    failures = failures.saturating_add(1);
                    probe_at =
                        Some(Instant::now() + self.sender.retry.wait(failures, None).duration);
                    answer(&mut waiting);
                    continue;
                }
            };
            let outcome = self.sender.attempt(&batch).await;
            match outcome {
                Err(ExportError::Retryable { retry_after, .. }) => {
                    files.push_front(file);
                    failures = failures.saturating_add(1);
                    let wait = self.sender.retry.wait(failures, retry_after);
                    probe_at = Some(Instant::now() + wait.duration);
                    answer(&mut waiting);
                }
                outcome => {
                    failures = 0;
                    self.sender.clone().resolve(batch, outcome).await;
                    let removing = spool.clone();
                    let _ = super::blocking(move || removing.remove(&file)).await;
                }
            }
        }
        answer(&mut waiting);
    }
}
