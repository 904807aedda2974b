//! The current span: a task-local context that code deep inside a handler reads without
//! passing the span around, and the wrappers that re-enter it: [`Instrumented`] for futures
//! (every poll, and the drop of the inner future), [`InstrumentedStream`] for streams
//! (every `poll_next`, and the drop). The server layer's response body does the same for
//! every `poll_frame`.
//!
//! The context lives in a thread-local slot that a wrapper fills for exactly the duration
//! of each of its polls and restores afterwards (also on panic), so one request's span
//! never leaks into another task that runs on the same thread. It does not cross
//! `tokio::spawn` by itself: use [`spawn`] or [`OpikFutureExt::in_current_opik_span`].
//!
//! The method names are chosen not to clash with `tracing::Instrument` (`instrument`,
//! `in_current_span`) or `tracing::instrument::WithSubscriber` when both traits are in scope.

use std::cell::RefCell;

use crate::span::Span;

mod future;
pub(crate) mod panic;
mod stream;
pub(crate) mod tracked;

pub use future::{Instrumented, OpikFutureExt, spawn};
pub use stream::{InstrumentedStream, OpikStreamExt};

thread_local! {
    static CURRENT: RefCell<Option<Span>> = const { RefCell::new(None) };
}

/// The current span, or a span that records nothing outside of any (check with
/// [`Span::is_none`]).
///
/// Asking such a span for a child while an enabled store exists counts the loss in
/// [`StoreStats::no_current_span`](crate::store::StoreStats::no_current_span) and logs a
/// rate-limited `debug` event (target `tower_opik`): code ran outside the request's
/// context, typically in a `tokio::spawn`ed task (use [`spawn`]).
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
        .unwrap_or_else(Span::detached)
}

/// Applies `update` to the trace of the current span ([`crate::current_span`]): Python's
/// `opik_context.update_current_trace`. Returns `false` outside a span or when the trace is
/// another service's (see [`Span::update_trace`]).
///
/// ```
/// assert!(!tower_opik::update_current_trace(tower_opik::TraceUpdate::new().tag("x")));
/// ```
pub fn update_current_trace(update: crate::span::TraceUpdate) -> bool {
    current_span().update_trace(update)
}

/// The span in the current-span slot, `None` when it is empty (which [`current_span`]
/// cannot tell apart from a current [`Span::none`]: an untraced request).
#[cfg_attr(not(feature = "macros"), allow(dead_code))]
pub(crate) fn try_current_span() -> Option<Span> {
    CURRENT.try_with(|c| c.borrow().clone()).ok().flatten()
}

/// Puts `span` in the current-span slot and returns what was there (for adapters whose
/// enter and exit are separate calls, such as a `tracing` layer's `on_enter`/`on_exit`).
/// `None` when thread-local storage is being torn down (then nothing changed).
pub(crate) fn swap_current(span: Option<Span>) -> Result<Option<Span>, Option<Span>> {
    if span.as_ref().is_some_and(Span::is_recording) {
        panic::install_hook();
    }
    let mut span = span;
    CURRENT
        .try_with(|c| c.replace(span.take()))
        .map_err(|_| span)
}

/// Moves the span out of `slot` into the current-span slot, and back when dropped (on
/// panic too), restoring whatever was current before.
///
/// Entering `None` does nothing: an adapter with no span (a request it does not trace)
/// leaves the enclosing context as it is.
pub(crate) struct Entered<'a> {
    slot: &'a mut Option<Span>,
    previous: Option<Span>,
    active: bool,
}

impl<'a> Entered<'a> {
    pub(crate) fn enter(slot: &'a mut Option<Span>) -> Self {
        if slot.is_none() {
            return Self {
                slot,
                previous: None,
                active: false,
            };
        }
        // If thread-local storage is being torn down the closure does not run and the span
        // stays ours: run without a context rather than lose it.
        match swap_current(slot.take()) {
            Ok(previous) => Self {
                slot,
                previous,
                active: true,
            },
            Err(span) => {
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
        if !self.active {
            return;
        }
        if std::thread::panicking() {
            panic::propagate(self.previous.as_ref());
        }
        if let Ok(mine) = swap_current(self.previous.take()) {
            *self.slot = mine;
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
