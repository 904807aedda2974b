//! The per-thread stack of entered mirrored spans: entering one makes its Opik span the
//! current span (`crate::current_span()`), exiting it restores what was current before.
//!
//! Entries are keyed by layer and `tracing` span id, so a span entered on several threads
//! has one entry on each, and an exit that is not the innermost one (exits need not be LIFO)
//! unlinks its entry without touching the current span: the entry above it inherits what to
//! restore. An exit with no entry on this thread does nothing. Nothing here panics: the
//! thread-local is reached with `try_with` and borrowed with `try_borrow_mut`, and spans are
//! dropped only after the borrow ends (dropping the last handle records the span, which may
//! log, which re-enters the subscriber).

use std::cell::RefCell;

use ::tracing::span::Id;

use crate::context::swap_current;
use crate::span::Span;

struct Entry {
    layer: u64,
    id: Id,
    /// The current span before this entry was entered, restored when it exits.
    previous: Option<Span>,
}

thread_local! {
    static STACK: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

/// Makes `span` current for the `tracing` span `id` of `layer` on this thread.
pub(super) fn enter(layer: u64, id: &Id, span: Span) {
    // Reserve the slot first, so that a failed push never leaves the span current.
    let reserved = STACK
        .try_with(|s| s.try_borrow_mut().map(|mut s| s.reserve(1)).is_ok())
        .unwrap_or(false);
    if !reserved {
        return;
    }
    let Ok(previous) = swap_current(Some(span)) else {
        return;
    };
    let leftover = STACK.try_with(|s| match s.try_borrow_mut() {
        Ok(mut s) => {
            s.push(Entry {
                layer,
                id: id.clone(),
                previous,
            });
            None
        }
        Err(_) => Some(previous),
    });
    // Could not record the entry (re-entered): undo, so nothing leaks.
    if let Ok(Some(previous)) = leftover {
        let _ = swap_current(previous);
    }
}

/// Undoes the innermost [`enter`] of `id` by `layer` on this thread, if any.
pub(super) fn exit(layer: u64, id: &Id) {
    let restore = STACK.try_with(|s| {
        let mut s = s.try_borrow_mut().ok()?;
        let at = s.iter().rposition(|e| e.layer == layer && e.id == *id)?;
        let entry = s.remove(at);
        if at < s.len() {
            // Not the innermost: the current span belongs to the entry above, which now
            // restores what this one would have.
            s[at].previous = entry.previous;
            None
        } else {
            Some(entry.previous)
        }
    });
    if let Ok(Some(previous)) = restore {
        // Dropped here, after the borrow: the replaced span may be the last handle.
        let _mine = swap_current(previous);
    }
}

/// Whether the innermost entry on this thread is `id` of `layer`.
pub(super) fn is_innermost(layer: u64, id: &Id) -> bool {
    STACK
        .try_with(|s| {
            s.try_borrow()
                .ok()
                .and_then(|s| s.last().map(|e| e.layer == layer && e.id == *id))
                .unwrap_or(false)
        })
        .unwrap_or(false)
}

/// Whether this thread has any entered mirrored span (of any layer).
pub(super) fn is_empty() -> bool {
    STACK
        .try_with(|s| s.try_borrow().map(|s| s.is_empty()).unwrap_or(false))
        .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::current_span;

    #[test]
    fn exits_out_of_order_restore_the_outer_context() {
        let (a, b) = (Id::from_u64(1), Id::from_u64(2));
        enter(7, &a, Span::none());
        enter(7, &b, Span::none());
        assert!(is_innermost(7, &b));
        exit(7, &a); // not LIFO: b stays innermost
        assert!(is_innermost(7, &b));
        exit(7, &b);
        assert!(is_empty());
        assert!(current_span().is_none());
        exit(7, &b); // unknown: nothing happens
        assert!(is_empty());
    }
}
