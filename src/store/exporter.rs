//! The exporter seam: what the store hands over, and what an exporter answers.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use uuid::Uuid;

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
///             self.0.lock().unwrap().extend(batch.ids());
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
#[non_exhaustive]
pub enum RecordKind {
    /// Spans: `POST v1/private/spans/batch`.
    Span,
    /// Traces: `POST v1/private/traces/batch`.
    Trace,
    /// Feedback scores of spans: `PUT v1/private/spans/feedback-scores`.
    SpanScore,
    /// Feedback scores of traces: `PUT v1/private/traces/feedback-scores`.
    TraceScore,
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
            Self::SpanScore => "v1/private/spans/feedback-scores",
            Self::TraceScore => "v1/private/traces/feedback-scores",
        }
    }

    /// The HTTP method: `POST` for spans and traces, `PUT` for feedback scores.
    ///
    /// ```
    /// assert_eq!(tower_opik::store::RecordKind::SpanScore.method(), http::Method::PUT);
    /// ```
    pub fn method(self) -> http::Method {
        match self {
            Self::Span | Self::Trace => http::Method::POST,
            Self::SpanScore | Self::TraceScore => http::Method::PUT,
        }
    }

    /// The endpoint a piece of a record goes to.
    pub(crate) fn of_part(part: crate::record::encode::Part, record: &Record) -> Self {
        use crate::record::encode::Part;
        match (part, part.is_score_of_span(record)) {
            (Part::Span, _) => Self::Span,
            (Part::Trace | Part::TraceOfSpan, _) => Self::Trace,
            (_, Some(true)) => Self::SpanScore,
            (_, _) => Self::TraceScore,
        }
    }

    /// Every kind, in the order the store fills its batches.
    pub(crate) const ALL: [Self; 4] = [Self::Span, Self::Trace, Self::SpanScore, Self::TraceScore];

    /// Its place in [`ALL`](Self::ALL).
    pub(crate) fn index(self) -> usize {
        self as usize
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
            Self::SpanScore | Self::TraceScore => "scores",
        }
    }
}

/// A batch of records of one kind, encoded: the request body itself, `{"spans":[...]}` or
/// `{"traces":[...]}`, each record's JSON written straight into it once, plus each record's
/// id and place in the body (what retries and splitting need; no second copy of a record).
///
/// ```
/// use tower_opik::store::{ExportBatch, RecordKind};
/// use tower_opik::record::TraceRecord;
/// let id = tower_opik::id::new_id();
/// let batch = ExportBatch::from_records(RecordKind::Trace,
///     vec![TraceRecord::new(id, "t", tower_opik::Timestamp::now()).into()]);
/// assert_eq!(batch.len(), 1);
/// assert!(batch.json_body().starts_with(br#"{"traces":[{"id":"#));
/// assert_eq!(batch.ids().collect::<Vec<_>>(), [id]);
/// ```
#[derive(Debug)]
pub struct ExportBatch {
    kind: RecordKind,
    /// Always a complete body (`]}` closed).
    body: Body,
    items: Vec<Item>,
}

/// The body while records are added, then shared (a `Bytes` handed to every attempt
/// without a copy).
#[derive(Debug)]
enum Body {
    Open(Vec<u8>),
    Sealed(Bytes),
}

/// One record of a batch: its id and where its JSON is in the body.
#[derive(Clone, Copy, Debug)]
struct Item {
    id: Uuid,
    start: usize,
    end: usize,
}

impl ExportBatch {
    pub(crate) fn new(kind: RecordKind) -> Self {
        let mut body = Vec::new();
        body.extend_from_slice(b"{\"");
        body.extend_from_slice(kind.batch_key().as_bytes());
        body.extend_from_slice(b"\":[]}");
        Self {
            kind,
            body: Body::Open(body),
            items: Vec::new(),
        }
    }

    /// Stops adding: the body becomes shared bytes.
    pub(crate) fn seal(&mut self) {
        if let Body::Open(v) = &mut self.body {
            self.body = Body::Sealed(Bytes::from(std::mem::take(v)));
        }
    }

    fn open_body(&mut self) -> &mut Vec<u8> {
        if let Body::Sealed(b) = &self.body {
            self.body = Body::Open(b.to_vec());
        }
        match &mut self.body {
            Body::Open(v) => v,
            Body::Sealed(_) => unreachable!("opened just above"),
        }
    }

    /// A batch from records: each record's JSON of this kind (a span's for spans; for
    /// traces, a trace's or the trace a root span carries; for scores, those a record
    /// carries or is); records with nothing of this kind, and any that cannot be encoded,
    /// are left out.
    ///
    /// ```
    /// let b = tower_opik::store::ExportBatch::from_records(tower_opik::store::RecordKind::Span, vec![]);
    /// assert!(b.is_empty());
    /// ```
    pub fn from_records(kind: RecordKind, records: Vec<Record>) -> Self {
        let mut batch = Self::new(kind);
        let mut json = Vec::new();
        for record in &records {
            for (part, id) in crate::record::encode::parts(record) {
                if RecordKind::of_part(part, record) != kind {
                    continue;
                }
                json.clear();
                if crate::record::encode::write_part(record, part, &mut json).is_ok() {
                    batch.push_json(id, &json);
                }
            }
        }
        batch
    }

    /// Appends one record's JSON.
    pub(crate) fn push_json(&mut self, id: Uuid, json: &[u8]) {
        let first = self.items.is_empty();
        let body = self.open_body();
        body.truncate(body.len() - 2); // `]}`
        if !first {
            body.push(b',');
        }
        let start = body.len();
        body.extend_from_slice(json);
        let end = body.len();
        body.extend_from_slice(b"]}");
        self.items.push(Item { id, start, end });
    }

    /// The body's size with one more record of `json_len` bytes.
    pub(crate) fn len_with(&self, json_len: usize) -> usize {
        self.json_len() + json_len + usize::from(!self.items.is_empty())
    }

    pub(crate) fn take(&mut self) -> Self {
        std::mem::replace(self, Self::new(self.kind))
    }

    /// Splits the batch in two halves (to isolate a bad record): the only place a record's
    /// JSON is copied again, on a refusal.
    pub(crate) fn split(self) -> (Self, Self) {
        let mid = self.items.len() / 2;
        let body = self.json_body();
        let part = |items: &[Item]| {
            let mut b = Self::new(self.kind);
            for item in items {
                b.push_json(item.id, &body[item.start..item.end]);
            }
            b.seal();
            b
        };
        (part(&self.items[..mid]), part(&self.items[mid..]))
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

    /// The ids of its records, in order.
    ///
    /// ```
    /// let b = tower_opik::store::ExportBatch::from_records(tower_opik::store::RecordKind::Span, vec![]);
    /// assert_eq!(b.ids().count(), 0);
    /// ```
    pub fn ids(&self) -> impl ExactSizeIterator<Item = Uuid> + '_ {
        self.items.iter().map(|i| i.id)
    }

    /// Each record's id and JSON, in order.
    ///
    /// ```
    /// use tower_opik::record::TraceRecord;
    /// let b = tower_opik::store::ExportBatch::from_records(tower_opik::store::RecordKind::Trace,
    ///     vec![TraceRecord::new(tower_opik::id::new_id(), "t", tower_opik::Timestamp::now()).into()]);
    /// let (_, json) = b.records_json().next().unwrap();
    /// assert!(json.starts_with(br#"{"id":"#));
    /// ```
    pub fn records_json(&self) -> impl ExactSizeIterator<Item = (Uuid, &[u8])> + '_ {
        let body = self.json_body();
        self.items
            .iter()
            .map(move |i| (i.id, &body[i.start..i.end]))
    }

    /// The size of the JSON body, in bytes, before compression.
    ///
    /// ```
    /// let b = tower_opik::store::ExportBatch::from_records(tower_opik::store::RecordKind::Span, vec![]);
    /// assert_eq!(b.json_len(), b.json_body().len());
    /// ```
    pub fn json_len(&self) -> usize {
        self.json_body().len()
    }

    /// The request body: `{"spans":[...]}` or `{"traces":[...]}`.
    ///
    /// ```
    /// let b = tower_opik::store::ExportBatch::from_records(tower_opik::store::RecordKind::Span, vec![]);
    /// assert_eq!(b.json_body(), br#"{"spans":[]}"#);
    /// ```
    pub fn json_body(&self) -> &[u8] {
        match &self.body {
            Body::Open(v) => v,
            Body::Sealed(b) => b,
        }
    }

    /// The request body as shared bytes: no copy once the store has handed the batch to
    /// the exporter (a copy for a batch built with [`from_records`](Self::from_records)).
    ///
    /// ```
    /// let b = tower_opik::store::ExportBatch::from_records(tower_opik::store::RecordKind::Span, vec![]);
    /// assert_eq!(&b.body()[..], br#"{"spans":[]}"#);
    /// ```
    pub fn body(&self) -> Bytes {
        match &self.body {
            Body::Open(v) => Bytes::copy_from_slice(v),
            Body::Sealed(b) => b.clone(),
        }
    }
}
