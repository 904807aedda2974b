//! Panics recorded on the span they happen in.
//!
//! Two mechanisms, because a panic can be caught where tower-opik cannot see it:
//!
//! - the wrappers that poll user code (the server layer's future and body,
//!   `DistributedScope`) catch a panic that unwinds through them, record it and resume it;
//! - a panic hook, installed once, the first time a recording span becomes current, and
//!   chained to the hook that was there before, records the panic on the current span
//!   of the panicking thread, even when a `CatchPanicLayer` *inside* the layer turns it
//!   into a 500 before the layer sees it. While the panic unwinds through nested
//!   [`Span::in_scope`]s and instrumented futures, each enclosing span gets it too (until
//!   the point that catches it), and the request span takes it from a 5xx response that
//!   follows the panic in the same poll.

use std::any::Any;
use std::cell::RefCell;
use std::sync::Once;

use uuid::Uuid;

use super::CURRENT;
use crate::record::ErrorInfo;
use crate::span::Span;

/// The exception type Opik shows for a panic.
pub(crate) const PANIC: &str = "Panic";

thread_local! {
    /// The last panic the hook saw on this thread, with the trace it happened in.
    static RECENT: RefCell<Option<(Uuid, ErrorInfo)>> = const { RefCell::new(None) };
}

/// A panic's message, from its payload (`&str` or `String`; anything else: `"panic"`).
pub(crate) fn message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_owned())
}

/// Records a panic caught by a wrapper on `span`. A panic the hook already recorded (with
/// its location) is kept.
pub(crate) fn record_caught(span: &Span, payload: &(dyn Any + Send)) {
    if !span.has_error_of_type(PANIC) {
        span.set_error(ErrorInfo::new(PANIC, message(payload)));
    }
}

/// Installs the panic hook once per process, chained to the current one: called each time
/// a recording span becomes current (the hook has nothing to do before), so its cost there
/// is `Once`'s completed check, one load.
pub(crate) fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            on_panic(info);
            previous(info);
        }));
    });
}

fn on_panic(info: &std::panic::PanicHookInfo<'_>) {
    let span = CURRENT
        .try_with(|c| c.try_borrow().ok().and_then(|c| c.clone()))
        .ok()
        .flatten();
    let Some(span) = span.filter(Span::is_recording) else {
        return;
    };
    let message = message(info.payload());
    let traceback = match info.location() {
        Some(at) => format!("{message}\n  at {at}"),
        None => message.clone(),
    };
    let error = ErrorInfo::with_traceback(PANIC, message, traceback);
    // Never block in a panic hook: a span locked by this very thread is left alone.
    span.try_set_error(error.clone());
    if let Some(trace) = span.trace_id() {
        let _ = RECENT.try_with(|r| r.replace(Some((trace, error))));
    }
}

/// While a panic unwinds out of a span's scope, the enclosing span records it too.
pub(crate) fn propagate(to: Option<&Span>) {
    let Some(span) = to.filter(|s| s.is_recording()) else {
        return;
    };
    let recent = RECENT
        .try_with(|r| r.borrow().clone())
        .ok()
        .flatten()
        .filter(|(trace, _)| Some(*trace) == span.trace_id());
    if let Some((_, error)) = recent
        && !span.has_error_of_type(PANIC)
    {
        span.try_set_error(error);
    }
}

/// Takes the panic the hook saw on this thread in `span`'s trace, if any: a 5xx answer
/// that follows it in the same poll was made from it (a `CatchPanicLayer`).
pub(crate) fn take_recent(span: &Span) -> Option<ErrorInfo> {
    let trace = span.trace_id()?;
    RECENT
        .try_with(|r| {
            let mut r = r.borrow_mut();
            match r.as_ref() {
                Some((t, _)) if *t == trace => r.take().map(|(_, e)| e),
                _ => None,
            }
        })
        .ok()
        .flatten()
}
