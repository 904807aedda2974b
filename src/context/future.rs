//! Futures that run inside a span: [`OpikFutureExt`] and [`spawn`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::{Entered, current_span};
use crate::span::Span;

pin_project_lite::pin_project! {
    /// A future that runs inside a span: the span is the current span during every poll
    /// and while the inner future is dropped (so spans its destructors end nest too).
    /// Made by [`OpikFutureExt::in_span`].
    ///
    /// ```
    /// use tower_opik::OpikFutureExt;
    /// let fut: tower_opik::context::Instrumented<_> = async { 1 }.in_span(tower_opik::Span::none());
    /// # let _ = fut;
    /// ```
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct Instrumented<F> {
        // `None` only once dropped: `PinnedDrop` drops it in place, inside the span.
        #[pin]
        inner: Option<F>,
        span: Option<Span>,
    }

    impl<F> PinnedDrop for Instrumented<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            let _entered = Entered::enter(this.span);
            this.inner.set(None);
        }
    }
}

impl<F> Instrumented<F> {
    pub(crate) fn new(inner: F, span: Span) -> Self {
        Self::new_optional(inner, Some(span))
    }

    /// With `None`, polls `inner` in whatever context is current.
    pub(crate) fn new_optional(inner: F, span: Option<Span>) -> Self {
        Self {
            inner: Some(inner),
            span,
        }
    }

    /// The span this future runs in.
    ///
    /// ```
    /// use tower_opik::OpikFutureExt;
    /// let fut = async {}.in_span(tower_opik::Span::none());
    /// assert!(fut.span().is_none());
    /// ```
    pub fn span(&self) -> &Span {
        static NONE: Span = Span::none();
        self.span.as_ref().unwrap_or(&NONE)
    }
}

impl<F: Future> Future for Instrumented<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _entered = Entered::enter(this.span);
        match this.inner.as_pin_mut() {
            Some(inner) => inner.poll(cx),
            None => unreachable!("the inner future is only taken when dropped"),
        }
    }
}

/// Runs futures inside an Opik span, in the manner of `tracing::Instrument`. Its method
/// names do not clash with `tracing::Instrument`'s when both traits are imported.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tower_opik::{current_span, OpikFutureExt, SpanStore};
/// let store = SpanStore::disabled();
/// let span = store.root_span("job");
/// async {
///     let step = current_span().child("step"); // a child of "job"
///     step.end();
/// }
/// .in_span(span)
/// .await;
/// # }
/// ```
pub trait OpikFutureExt: Future + Sized {
    /// Runs this future with `span` as the current span on every poll.
    fn in_span(self, span: Span) -> Instrumented<Self> {
        Instrumented::new(self, span)
    }

    /// Runs this future in the Opik span that is current now (to carry it into a spawned
    /// task). The tracing crate's `in_current_span` carries the `tracing` span; this one
    /// carries the Opik span.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use tower_opik::OpikFutureExt;
    /// let task = tokio::spawn(async { tower_opik::current_span().is_none() }.in_current_opik_span());
    /// assert!(task.await.unwrap());
    /// # }
    /// ```
    fn in_current_opik_span(self) -> Instrumented<Self> {
        self.in_span(current_span())
    }
}

impl<F: Future> OpikFutureExt for F {}

/// `tokio::spawn` that carries the current span into the new task.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let handle = tower_opik::spawn(async { tower_opik::current_span().is_none() });
/// assert!(handle.await.unwrap());
/// # }
/// ```
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(future.in_current_opik_span())
}
