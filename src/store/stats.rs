//! What the store did with the records it was given, as users read it: a snapshot of the
//! counters, the reasons for whatever it could not deliver, a flush's report. The live
//! counters are `counters.rs`.

use uuid::Uuid;

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
