//! Streams that run inside a span: [`OpikStreamExt`].

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use super::{Entered, current_span};
use crate::span::Span;

pin_project_lite::pin_project! {
    /// A stream that runs inside a span: the span is the current span during every
    /// `poll_next` and while the inner stream is dropped. Made by [`OpikStreamExt::in_span`].
    ///
    /// Spans opened inside the stream (an LLM call per chunk, a tool call, an outgoing
    /// request through the client middleware) become children of `span`, however late the
    /// stream is polled: in an SSE body, after the handler has returned.
    ///
    /// ```
    /// use tower_opik::OpikStreamExt;
    /// let s: tower_opik::context::InstrumentedStream<_> =
    ///     futures_util::stream::iter([1, 2]).in_span(tower_opik::Span::none());
    /// # let _ = s;
    /// ```
    #[derive(Debug)]
    #[must_use = "streams do nothing unless polled"]
    pub struct InstrumentedStream<S> {
        #[pin]
        inner: Option<S>,
        span: Option<Span>,
    }

    impl<S> PinnedDrop for InstrumentedStream<S> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            let _entered = Entered::enter(this.span);
            this.inner.set(None);
        }
    }
}

impl<S> InstrumentedStream<S> {
    /// The span this stream runs in.
    ///
    /// ```
    /// use tower_opik::OpikStreamExt;
    /// let s = futures_util::stream::empty::<()>().in_span(tower_opik::Span::none());
    /// assert!(s.span().is_none());
    /// ```
    pub fn span(&self) -> &Span {
        static NONE: Span = Span::none();
        self.span.as_ref().unwrap_or(&NONE)
    }
}

impl<S: Stream> Stream for InstrumentedStream<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.project();
        let _entered = Entered::enter(this.span);
        match this.inner.as_pin_mut() {
            Some(inner) => inner.poll_next(cx),
            None => Poll::Ready(None),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.as_ref().map_or((0, Some(0)), Stream::size_hint)
    }
}

/// Runs streams inside an Opik span: the `futures::Stream` counterpart of
/// [`OpikFutureExt`](super::OpikFutureExt), re-entering the span on every `poll_next`.
///
/// A handler that returns a stream (SSE, `Body::from_stream`) does not need this when it
/// sits behind [`OpikLayer`](crate::OpikLayer): the layer makes the request span current
/// for every poll of the response body. Use it for streams that outlive the request or
/// are polled elsewhere (a spawned task, a channel).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use futures_util::StreamExt;
/// use tower_opik::{current_span, OpikStreamExt, SpanStore};
/// let store = SpanStore::disabled();
/// let request = store.root_span("chat");
/// let tokens: Vec<_> = futures_util::stream::iter(["a", "b"])
///     .map(|t| {
///         current_span().child("token").end(); // a child of "chat"
///         t
///     })
///     .in_span(request)
///     .collect()
///     .await;
/// assert_eq!(tokens, ["a", "b"]);
/// # }
/// ```
pub trait OpikStreamExt: Stream + Sized {
    /// Runs this stream with `span` as the current span on every `poll_next`.
    fn in_span(self, span: Span) -> InstrumentedStream<Self> {
        InstrumentedStream {
            inner: Some(self),
            span: Some(span),
        }
    }

    /// Runs this stream in the Opik span that is current now.
    ///
    /// ```
    /// use tower_opik::OpikStreamExt;
    /// let s = futures_util::stream::iter([1]).in_current_opik_span();
    /// assert!(s.span().is_none());
    /// ```
    fn in_current_opik_span(self) -> InstrumentedStream<Self> {
        self.in_span(current_span())
    }
}

impl<S: Stream> OpikStreamExt for S {}
