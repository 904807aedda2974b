//! The current span: a task-local context that code deep inside a handler reads without
//! passing the span around, and the future wrapper that re-enters it on every poll.
//!
//! The context lives in a thread-local slot that a wrapped future fills for exactly the
//! duration of each of its polls and restores afterwards (also on panic), so one request's
//! span never leaks into another task that runs on the same thread. It does not cross
//! `tokio::spawn` by itself: use [`spawn`] or [`OpikFutureExt::in_current_span`].

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::span::Span;

thread_local! {
    static CURRENT: RefCell<Option<Span>> = const { RefCell::new(None) };
}

/// The current span, or [`Span::none`] outside of any.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tower_opik::{current_span, OpikFutureExt, SpanStore};
/// let store = SpanStore::disabled();
/// assert!(current_span().is_none());
/// let span = tower_opik::Span::none();
/// async { current_span().set_output("seen") }.in_span(span).await;
/// # }
/// ```
pub fn current_span() -> Span {
    CURRENT
        .try_with(|c| c.borrow().clone())
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Moves the span out of `slot` into the current-span slot, and back when dropped (on
/// panic too), restoring whatever was current before.
struct Entered<'a> {
    slot: &'a mut Option<Span>,
    previous: Option<Span>,
    active: bool,
}

impl<'a> Entered<'a> {
    fn enter(slot: &'a mut Option<Span>) -> Self {
        let mut span = slot.take();
        // If thread-local storage is being torn down the closure does not run and the span
        // stays ours: run without a context rather than lose it.
        match CURRENT.try_with(|c| c.replace(span.take())) {
            Ok(previous) => Self {
                slot,
                previous,
                active: true,
            },
            Err(_) => {
                *slot = span;
                Self {
                    slot,
                    previous: None,
                    active: false,
                }
            }
        }
    }
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        if self.active {
            let mut previous = self.previous.take();
            if let Ok(mine) = CURRENT.try_with(|c| c.replace(previous.take())) {
                *self.slot = mine;
            }
        }
    }
}

impl Span {
    /// Runs `f` with this span as the current span (for synchronous code).
    ///
    /// ```
    /// let span = tower_opik::Span::none();
    /// let n = span.in_scope(|| 40 + 2);
    /// assert_eq!(n, 42);
    /// ```
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        let mut slot = Some(self.clone());
        let _entered = Entered::enter(&mut slot);
        f()
    }
}

pin_project_lite::pin_project! {
    /// A future that runs inside a span: the span is the current span during every poll.
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
        #[pin]
        inner: F,
        span: Option<Span>,
    }
}

impl<F> Instrumented<F> {
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

    /// The inner future.
    ///
    /// ```
    /// use tower_opik::OpikFutureExt;
    /// let fut = std::future::ready(1).in_span(tower_opik::Span::none());
    /// let _inner: std::future::Ready<i32> = fut.into_inner();
    /// ```
    pub fn into_inner(self) -> F {
        self.inner
    }
}

impl<F: Future> Future for Instrumented<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _entered = Entered::enter(this.span);
        this.inner.poll(cx)
    }
}

/// Runs futures inside an Opik span, in the manner of `tracing::Instrument`.
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
        Instrumented {
            inner: self,
            span: Some(span),
        }
    }

    /// Runs this future in the span that is current now (to carry it into a spawned task).
    fn in_current_span(self) -> Instrumented<Self> {
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
    tokio::spawn(future.in_current_span())
}
