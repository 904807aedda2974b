//! The distributed-header helpers of the Python SDK, in Rust: the current ids as a value for
//! any transport, and a scope that runs a future under incoming headers (Python's
//! `distributed_headers()` context manager).

use std::borrow::Cow;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::HeaderMap;

use crate::context::{OpikFutureExt, current_span};
use crate::headers::DistributedHeaders;
use crate::record::ErrorInfo;
use crate::span::Span;
use crate::store::SpanStore;

/// The current span's ids, to send to another service over any transport (a queue message,
/// a websocket): `opik_trace_id` = its trace, `opik_parent_span_id` = the span itself.
/// `None` outside a span (Python's `get_distributed_trace_headers()` raises there).
///
/// ```
/// assert!(tower_opik::current_distributed_headers().is_none());
/// ```
pub fn current_distributed_headers() -> Option<DistributedHeaders> {
    current_span().distributed_headers()
}

/// Writes the current span's ids into `headers`; returns whether there was a span.
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// assert!(!tower_opik::inject_current(&mut headers));
/// assert!(headers.is_empty());
/// ```
pub fn inject_current(headers: &mut HeaderMap) -> bool {
    match current_distributed_headers() {
        Some(ids) => {
            ids.inject(headers);
            true
        }
        None => false,
    }
}

/// Runs work under a remote parent: opens a root span for it (a child of the caller's span,
/// or a new trace when the headers are missing or invalid), makes it the current span,
/// records an error when the work fails or panics, ends the span, and flushes when asked.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tower_opik::{DistributedScope, SpanStore};
/// let store = SpanStore::disabled();
/// let incoming = http::HeaderMap::new(); // e.g. a message's headers
/// let result: Result<u32, std::io::Error> = DistributedScope::from_headers(&store, &incoming, "consume")
///     .flush_when_done(std::time::Duration::from_secs(5))
///     .run_result(async { Ok(42) })
///     .await;
/// assert_eq!(result.unwrap(), 42);
/// # }
/// ```
#[derive(Debug)]
#[must_use = "a scope does nothing until run"]
pub struct DistributedScope {
    span: Span,
    store: SpanStore,
    flush: Option<Duration>,
}

impl DistributedScope {
    /// A scope under `parent` (or a new trace when `None`).
    ///
    /// ```
    /// let scope = tower_opik::DistributedScope::new(&tower_opik::SpanStore::disabled(), None, "job");
    /// ```
    pub fn new(
        store: &SpanStore,
        parent: Option<&DistributedHeaders>,
        name: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            span: store.span_with_parent(name, parent),
            store: store.clone(),
            flush: None,
        }
    }

    /// A scope under the parent found in `headers` ([`DistributedHeaders::extract`]'s rules,
    /// baggage included; bad
    /// values are dropped with a warning).
    ///
    /// ```
    /// let scope = tower_opik::DistributedScope::from_headers(
    ///     &tower_opik::SpanStore::disabled(), &http::HeaderMap::new(), "job");
    /// ```
    pub fn from_headers(
        store: &SpanStore,
        headers: &HeaderMap,
        name: impl Into<Cow<'static, str>>,
    ) -> Self {
        let extracted = DistributedHeaders::extract(headers);
        extracted.warn();
        Self::new(store, extracted.headers.as_ref(), name)
    }

    /// Flushes the store when the work is done (not after a panic), waiting at most
    /// `timeout`: for short-lived processes and serverless handlers.
    ///
    /// ```
    /// let scope = tower_opik::DistributedScope::new(&tower_opik::SpanStore::disabled(), None, "job")
    ///     .flush_when_done(std::time::Duration::from_secs(2));
    /// ```
    pub fn flush_when_done(mut self, timeout: Duration) -> Self {
        self.flush = Some(timeout);
        self
    }

    /// The scope's span, to set its input, tags or metadata before running.
    ///
    /// ```
    /// let scope = tower_opik::DistributedScope::new(&tower_opik::SpanStore::disabled(), None, "job");
    /// scope.span().set_input("payload");
    /// ```
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// Runs `work` in the scope. A panic is recorded as the span's error and then resumed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let n = tower_opik::DistributedScope::new(&tower_opik::SpanStore::disabled(), None, "job")
    ///     .run(async { 1 + 1 })
    ///     .await;
    /// assert_eq!(n, 2);
    /// # }
    /// ```
    pub async fn run<F: Future>(self, work: F) -> F::Output {
        let output = CatchPanic {
            inner: work,
            span: &self.span,
        }
        .in_span(self.span.clone())
        .await;
        self.finish().await;
        output
    }

    /// Runs `work` in the scope and records an `Err` as the span's error (a panic too).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let r: Result<(), String> = tower_opik::DistributedScope::new(&tower_opik::SpanStore::disabled(), None, "job")
    ///     .run_result(async { Err("failed".to_owned()) })
    ///     .await;
    /// assert!(r.is_err());
    /// # }
    /// ```
    pub async fn run_result<F, T, E>(self, work: F) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        let output = CatchPanic {
            inner: work,
            span: &self.span,
        }
        .in_span(self.span.clone())
        .await;
        if let Err(e) = &output {
            self.span.set_error(ErrorInfo::with_traceback(
                std::any::type_name::<E>(),
                e.to_string(),
                e.to_string(),
            ));
        }
        self.finish().await;
        output
    }

    async fn finish(self) {
        self.span.end();
        if let Some(timeout) = self.flush {
            self.store.flush(timeout).await;
        }
    }
}

pin_project_lite::pin_project! {
    /// Records a panic of the inner future on the span, ends the span, then resumes it.
    struct CatchPanic<'a, F> {
        #[pin]
        inner: F,
        span: &'a Span,
    }
}

impl<F: Future> Future for CatchPanic<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let inner = this.inner;
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(poll) => poll,
            Err(payload) => {
                crate::context::panic::record_caught(this.span, &*payload);
                this.span.end();
                resume_unwind(payload)
            }
        }
    }
}
