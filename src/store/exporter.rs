//! The exporter seam: what the store hands over, and what an exporter answers.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::record::Record;

/// The future an [`Exporter`] returns.
///
/// ```
/// let done: tower_opik::store::ExportFuture<'static> = Box::pin(async { Ok(()) });
/// # let _ = done;
/// ```
pub type ExportFuture<'a> = Pin<Box<dyn Future<Output = Result<(), ExportError>> + Send + 'a>>;

/// Sends batches of finished records somewhere: Opik's REST API
/// ([`OpikRestExporter`](crate::store::OpikRestExporter), the default), or anything a test
/// or an application wants.
///
/// The store calls `export` for one batch at a time and does the retrying, splitting and
/// counting itself: an exporter makes one attempt and classifies its failure. The store
/// bounds each call by [`RetryPolicy::attempt_timeout`](crate::store::RetryPolicy::attempt_timeout)
/// (30 s by default): a call that never returns is dropped and counts as a transient failure.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use tower_opik::store::{ExportBatch, ExportError, ExportFuture, Exporter};
///
/// #[derive(Debug, Default)]
/// struct Collect(Mutex<Vec<uuid::Uuid>>);
///
/// impl Exporter for Collect {
///     fn export<'a>(&'a self, batch: &'a ExportBatch) -> ExportFuture<'a> {
///         Box::pin(async move {
///             self.0.lock().unwrap().extend(batch.records().map(|r| r.id()));
///             Ok(())
///         })
///     }
/// }
/// # let _ = Arc::new(Collect::default());
/// ```
pub trait Exporter: Send + Sync + std::fmt::Debug + 'static {
    /// Makes one attempt at sending `batch`.
    fn export<'a>(&'a self, batch: &'a ExportBatch) -> ExportFuture<'a>;

    /// Where this exporter sends, for the store's logs (the WARN line when exports start
    /// failing): a URL without credentials. `None` (the default) leaves it out.
    ///
    /// ```
    /// # use tower_opik::store::{ExportBatch, ExportFuture, Exporter};
    /// #[derive(Debug)]
    /// struct Nowhere;
    /// impl Exporter for Nowhere {
    ///     fn export<'a>(&'a self, _: &'a ExportBatch) -> ExportFuture<'a> {
    ///         Box::pin(async { Ok(()) })
    ///     }
    ///     fn destination(&self) -> Option<String> {
    ///         Some("memory://nowhere".into())
    ///     }
    /// }
    /// assert_eq!(Nowhere.destination().as_deref(), Some("memory://nowhere"));
    /// ```
    fn destination(&self) -> Option<String> {
        None
    }
}

/// Why an export attempt failed, and whether it is worth another.
///
/// ```
/// use tower_opik::store::ExportError;
/// assert!(ExportError::retryable("503 Service Unavailable", None).is_retryable());
/// assert!(!ExportError::rejected(400, "bad id").is_retryable());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExportError {
    /// A transient failure (429, 5xx, transport): the store retries it with backoff.
    Retryable {
        /// What happened.
        reason: String,
        /// How long the backend asked us to wait (`Retry-After`, `RateLimit-Reset`).
        retry_after: Option<Duration>,
    },
    /// A final refusal (400, 401, 402, 403, 404, 413, 422, ...): never retried as is. For
    /// 400 and 422 the store splits the batch to isolate the bad records; for 413 (a body
    /// over a proxy's limit) it splits the batch until each part fits, and cuts a record too
    /// large alone down with truncation markers.
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The backend's message, shortened.
        message: String,
    },
}

impl ExportError {
    /// A transient failure.
    ///
    /// ```
    /// let e = tower_opik::store::ExportError::retryable("connection refused", None);
    /// assert!(e.is_retryable());
    /// ```
    pub fn retryable(reason: impl Into<String>, retry_after: Option<Duration>) -> Self {
        Self::Retryable {
            reason: reason.into(),
            retry_after,
        }
    }

    /// A final refusal with an HTTP status.
    ///
    /// ```
    /// let e = tower_opik::store::ExportError::rejected(401, "bad key");
    /// assert!(!e.is_retryable());
    /// ```
    pub fn rejected(status: u16, message: impl Into<String>) -> Self {
        Self::Rejected {
            status,
            message: message.into(),
        }
    }

    /// Whether the store should try again.
    ///
    /// ```
    /// assert!(tower_opik::store::ExportError::retryable("x", None).is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable { .. })
    }
}

impl std::fmt::Display for ExportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Retryable { reason, .. } => write!(f, "transient failure: {reason}"),
            Self::Rejected { status, message } => write!(f, "rejected with {status}: {message}"),
        }
    }
}

impl std::error::Error for ExportError {}

/// Which endpoint a batch goes to.
///
/// ```
/// use tower_opik::store::RecordKind;
/// assert_eq!(RecordKind::Span.path(), "v1/private/spans/batch");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// Spans: `POST v1/private/spans/batch`.
    Span,
    /// Traces: `POST v1/private/traces/batch`.
    Trace,
}

impl RecordKind {
    /// The endpoint, relative to Opik's base URL.
    ///
    /// ```
    /// assert_eq!(tower_opik::store::RecordKind::Trace.path(), "v1/private/traces/batch");
    /// ```
    pub fn path(self) -> &'static str {
        match self {
            Self::Span => "v1/private/spans/batch",
            Self::Trace => "v1/private/traces/batch",
        }
    }

    /// The key of the list in the batch body (`spans`, `traces`).
    ///
    /// ```
    /// assert_eq!(tower_opik::store::RecordKind::Span.batch_key(), "spans");
    /// ```
    pub fn batch_key(self) -> &'static str {
        match self {
            Self::Span => "spans",
            Self::Trace => "traces",
        }
    }

    pub(crate) fn of(record: &Record) -> Self {
        match record {
            Record::Span(_) => Self::Span,
            Record::Trace(_) => Self::Trace,
        }
    }
}

/// A batch of records of one kind, each with its JSON already encoded.
///
/// ```
/// use tower_opik::store::{ExportBatch, RecordKind};
/// use tower_opik::record::TraceRecord;
/// let batch = ExportBatch::from_records(RecordKind::Trace,
///     vec![TraceRecord::new(tower_opik::id::new_id(), "t", tower_opik::Timestamp::now()).into()]);
/// assert_eq!(batch.len(), 1);
/// assert!(batch.json_body().starts_with(br#"{"traces":[{"id":"#));
/// ```
#[derive(Debug)]
pub struct ExportBatch {
    kind: RecordKind,
    items: Vec<Encoded>,
    json_len: usize,
}

#[derive(Debug)]
pub(crate) struct Encoded {
    pub(crate) record: Record,
    pub(crate) json: Vec<u8>,
}

impl Encoded {
    pub(crate) fn new(record: Record) -> serde_json::Result<Self> {
        let json = record.to_json()?;
        Ok(Self { record, json })
    }
}

impl ExportBatch {
    pub(crate) fn new(kind: RecordKind) -> Self {
        Self {
            kind,
            items: Vec::new(),
            json_len: 0,
        }
    }

    /// A batch from records (those of another kind than `kind`, and any that cannot be
    /// encoded, are left out).
    ///
    /// ```
    /// let b = tower_opik::store::ExportBatch::from_records(tower_opik::store::RecordKind::Span, vec![]);
    /// assert!(b.is_empty());
    /// ```
    pub fn from_records(kind: RecordKind, records: Vec<Record>) -> Self {
        let mut batch = Self::new(kind);
        for r in records.into_iter().filter(|r| RecordKind::of(r) == kind) {
            if let Ok(e) = Encoded::new(r) {
                batch.push(e);
            }
        }
        batch
    }

    pub(crate) fn push(&mut self, item: Encoded) {
        self.json_len += item.json.len() + 1;
        self.items.push(item);
    }

    pub(crate) fn take(&mut self) -> Self {
        std::mem::replace(self, Self::new(self.kind))
    }

    /// The records and their JSON, taking the batch apart.
    pub(crate) fn into_items(self) -> Vec<Encoded> {
        self.items
    }

    /// Splits the batch in two halves (to isolate a bad record).
    pub(crate) fn split(mut self) -> (Self, Self) {
        let tail = self.items.split_off(self.items.len() / 2);
        let mut second = Self::new(self.kind);
        for item in tail {
            second.push(item);
        }
        let mut first = Self::new(self.kind);
        for item in self.items {
            first.push(item);
        }
        (first, second)
    }

    /// Which endpoint the batch goes to.
    ///
    /// ```
    /// let b = tower_opik::store::ExportBatch::from_records(tower_opik::store::RecordKind::Span, vec![]);
    /// assert_eq!(b.kind(), tower_opik::store::RecordKind::Span);
    /// ```
    pub fn kind(&self) -> RecordKind {
        self.kind
    }

    /// How many records it holds.
    ///
    /// ```
    /// let b = tower_opik::store::ExportBatch::from_records(tower_opik::store::RecordKind::Span, vec![]);
    /// assert_eq!(b.len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether it holds no record.
    ///
    /// ```
    /// let b = tower_opik::store::ExportBatch::from_records(tower_opik::store::RecordKind::Span, vec![]);
    /// assert!(b.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The records.
    ///
    /// ```
    /// let b = tower_opik::store::ExportBatch::from_records(tower_opik::store::RecordKind::Span, vec![]);
    /// assert_eq!(b.records().count(), 0);
    /// ```
    pub fn records(&self) -> impl ExactSizeIterator<Item = &Record> {
        self.items.iter().map(|i| &i.record)
    }

    /// The size of the JSON body, in bytes, before compression.
    ///
    /// ```
    /// let b = tower_opik::store::ExportBatch::from_records(tower_opik::store::RecordKind::Span, vec![]);
    /// assert_eq!(b.json_len(), b.json_body().len());
    /// ```
    pub fn json_len(&self) -> usize {
        // `{"spans":[` + items and their commas + `]}`; `json_len` counts one comma too many.
        self.kind.batch_key().len() + 7 + self.json_len.saturating_sub(1)
    }

    /// The request body: `{"spans": [...]}` or `{"traces": [...]}`.
    ///
    /// ```
    /// let b = tower_opik::store::ExportBatch::from_records(tower_opik::store::RecordKind::Span, vec![]);
    /// assert_eq!(b.json_body(), br#"{"spans":[]}"#);
    /// ```
    pub fn json_body(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.json_len());
        body.extend_from_slice(b"{\"");
        body.extend_from_slice(self.kind.batch_key().as_bytes());
        body.extend_from_slice(b"\":[");
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&item.json);
        }
        body.extend_from_slice(b"]}");
        body
    }
}
