//! A streamed LLM answer as one span: [`Span::track_stream`].
//!
//! The Rust form of the Opik Python SDK's `@track` on a generator (its
//! `generations_aggregator` option, `opik/decorator/base_track_decorator.py`): the span
//! stays open while the stream is consumed, the time to first token is set at the first
//! item, the items are aggregated into the output, and the span ends when the stream ends
//! or is dropped.

use std::borrow::Cow;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use serde_json::{Value, json};

use super::Entered;
use crate::record::{ErrorInfo, Usage};
use crate::span::Span;

/// What [`TextAggregator`] reads from one item of a streamed answer: its text, the usage
/// the provider sends (OpenAI and Anthropic put it on the last chunk), an error.
///
/// Implemented for `String`, `&str`, `Cow<str>`, `Bytes` (as UTF-8, lossily) and
/// `Result<T, E>` (an `Err` is the span's error). Implement it for a provider's chunk type
/// (the trait is ours, so this is allowed for foreign types too):
///
/// ```
/// use std::borrow::Cow;
/// use tower_opik::{stream::StreamChunk, Usage};
///
/// struct Delta { content: Option<String>, usage: Option<(u32, u32)> }
///
/// impl StreamChunk for Delta {
///     fn chunk_text(&self) -> Option<Cow<'_, str>> {
///         self.content.as_deref().map(Cow::Borrowed)
///     }
///     fn chunk_usage(&self) -> Option<Usage> {
///         self.usage.map(|(p, c)| Usage::tokens(p, c))
///     }
/// }
/// ```
pub trait StreamChunk {
    /// The text this item adds to the answer, if any.
    fn chunk_text(&self) -> Option<Cow<'_, str>>;

    /// Token usage carried by this item (the last one that has it wins). Default: none.
    fn chunk_usage(&self) -> Option<Usage> {
        None
    }

    /// An error this item stands for (the last one wins). Default: none.
    fn chunk_error(&self) -> Option<ErrorInfo> {
        None
    }
}

impl StreamChunk for String {
    fn chunk_text(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(self))
    }
}

impl StreamChunk for &str {
    fn chunk_text(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(self))
    }
}

impl StreamChunk for Cow<'_, str> {
    fn chunk_text(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(self))
    }
}

impl StreamChunk for Bytes {
    fn chunk_text(&self) -> Option<Cow<'_, str>> {
        Some(String::from_utf8_lossy(self))
    }
}

impl<T: StreamChunk, E: fmt::Display> StreamChunk for Result<T, E> {
    fn chunk_text(&self) -> Option<Cow<'_, str>> {
        self.as_ref().ok().and_then(T::chunk_text)
    }

    fn chunk_usage(&self) -> Option<Usage> {
        self.as_ref().ok().and_then(T::chunk_usage)
    }

    fn chunk_error(&self) -> Option<ErrorInfo> {
        match self {
            Ok(item) => item.chunk_error(),
            Err(e) => Some(ErrorInfo::new(std::any::type_name::<E>(), e.to_string())),
        }
    }
}

/// Turns the items of a streamed answer into the span's output (and usage, errors).
///
/// [`TextAggregator`] is the default; [`TrackedStream::aggregate_with`] takes a closure
/// over all the items, like the Python SDK's `generations_aggregator`. Implement it to
/// aggregate without keeping the items (tool-call deltas, structured chunks).
///
/// ```
/// use tower_opik::{stream::Aggregate, Span};
/// /// Counts items; the output is `{"chunks": n}`.
/// #[derive(Debug, Default)]
/// struct Count(usize);
/// impl<T> Aggregate<T> for Count {
///     fn observe(&mut self, _item: &T, _span: &Span) { self.0 += 1; }
///     fn finish(self, span: &Span) { span.set_output(serde_json::json!({"chunks": self.0})); }
/// }
/// ```
pub trait Aggregate<Item> {
    /// Called for every item, in order, inside the span.
    fn observe(&mut self, item: &Item, span: &Span);

    /// Called once at the end (or when the stream is dropped) to set the output.
    fn finish(self, span: &Span);
}

/// The default aggregation: the text of the items, concatenated, as the output
/// `{"output": "<text>"}`; the last usage and the last error an item carries.
///
/// ```
/// let agg = tower_opik::stream::TextAggregator::default();
/// # let _ = agg;
/// ```
#[derive(Clone, Debug, Default)]
pub struct TextAggregator {
    text: String,
    usage: Option<Usage>,
    error: Option<ErrorInfo>,
}

impl<T: StreamChunk> Aggregate<T> for TextAggregator {
    fn observe(&mut self, item: &T, _span: &Span) {
        if let Some(text) = item.chunk_text() {
            self.text.push_str(&text);
        }
        if let Some(usage) = item.chunk_usage() {
            self.usage = Some(usage);
        }
        if let Some(error) = item.chunk_error() {
            self.error = Some(error);
        }
    }

    fn finish(self, span: &Span) {
        // An answer with no text (an empty stream, tool-call chunks) sets no output.
        if !self.text.is_empty() {
            span.set_output(json!({ "output": self.text }));
        }
        if let Some(usage) = self.usage {
            span.set_usage(usage);
        }
        if let Some(error) = self.error {
            span.set_error(error);
        }
    }
}

/// Keeps every item and hands them to a closure at the end, like the Python SDK's
/// `generations_aggregator`. Made by [`TrackedStream::aggregate_with`] or
/// [`CollectWith::new`] (for [`Span::track_stream_with`]).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use futures_util::StreamExt;
/// use tower_opik::stream::CollectWith;
/// // Tool-call deltas, not text: the output is the list of calls.
/// let deltas = futures_util::stream::iter([("search", 1), ("fetch", 2)]);
/// let calls = CollectWith::new(|d: &[(&str, u32)]| {
///     serde_json::json!({"tool_calls": d.iter().map(|(name, _)| *name).collect::<Vec<_>>()})
/// });
/// let n = tower_opik::Span::none().track_stream_with(deltas, calls).count().await;
/// assert_eq!(n, 2);
/// # }
/// ```
pub struct CollectWith<Item, F> {
    items: Vec<Item>,
    f: F,
}

impl<Item, F> fmt::Debug for CollectWith<Item, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CollectWith")
            .field("items", &self.items.len())
            .finish_non_exhaustive()
    }
}

impl<Item, F: FnOnce(&[Item]) -> Value> CollectWith<Item, F> {
    /// An aggregation that hands all the items to `f` at the end, for
    /// [`Span::track_stream_with`] (any item type: no [`StreamChunk`] needed).
    ///
    /// ```
    /// use tower_opik::stream::CollectWith;
    /// let agg = CollectWith::new(|items: &[u32]| serde_json::json!({"sum": items.iter().sum::<u32>()}));
    /// # let _ = agg;
    /// ```
    pub fn new(f: F) -> Self {
        Self {
            items: Vec::new(),
            f,
        }
    }
}

impl<Item: Clone, F: FnOnce(&[Item]) -> Value> Aggregate<Item> for CollectWith<Item, F> {
    fn observe(&mut self, item: &Item, _span: &Span) {
        self.items.push(item.clone());
    }

    fn finish(self, span: &Span) {
        span.set_output((self.f)(&self.items));
    }
}

pin_project_lite::pin_project! {
    /// A stream whose items make up one span's output. Made by [`Span::track_stream`].
    ///
    /// - Every `poll_next` runs with the span as the current span, so spans opened while
    ///   producing an item (a tool call, an outgoing request) nest under it.
    /// - The first item sets the time to first token (`ttft`, milliseconds since the span
    ///   started).
    /// - Each item is handed to the aggregator ([`TextAggregator`] by default).
    /// - At the end of the stream the aggregator sets the output (and usage, error) and
    ///   the span ends. Dropped before its end (a client that went away, a `take(n)`), the
    ///   span ends with what was aggregated so far, `"tower_opik.cancelled": true` in its
    ///   metadata and the error `StreamIncomplete`.
    ///
    /// The items pass through unchanged.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use futures_util::StreamExt;
    /// use tower_opik::{current_span, SpanType};
    ///
    /// let llm = current_span().child_of_type("completion (streamed)", SpanType::Llm);
    /// llm.set_model("gpt-4o");
    /// let tokens = futures_util::stream::iter(["Hel", "lo"]);
    /// let answer: String = llm.track_stream(tokens).collect::<Vec<_>>().await.concat();
    /// assert_eq!(answer, "Hello");
    /// # }
    /// ```
    #[must_use = "streams do nothing unless polled"]
    pub struct TrackedStream<S, A> {
        // Declared first: dropped before the tracker ends the span.
        #[pin]
        inner: S,
        tracker: Tracker<A>,
    }
}

/// The span of a [`TrackedStream`] and its aggregator; ends the span once, at the end of
/// the stream or when dropped.
struct Tracker<A> {
    /// `Some` until the span ends.
    span: Option<Span>,
    aggregator: Option<A>,
    /// `<A as Aggregate<Item>>::finish`, kept as a pointer because `Drop` cannot name the
    /// `Aggregate` bound.
    finish: fn(A, &Span),
    items: u64,
}

impl<A> Tracker<A> {
    /// Lets the aggregator set the output (inside the span), then ends the span.
    fn end(&mut self) {
        let Some(span) = self.span.take() else { return };
        if let Some(aggregator) = self.aggregator.take() {
            let mut slot = Some(span.clone());
            let _entered = Entered::enter(&mut slot);
            (self.finish)(aggregator, &span);
        }
        span.end();
    }
}

impl<A> Drop for Tracker<A> {
    fn drop(&mut self) {
        if let Some(span) = &self.span {
            span.set_metadata(CANCELLED_KEY, true);
            // A panic recorded while the stream was polled says more: it is kept.
            span.set_error_unless_set(ErrorInfo::new(
                "StreamIncomplete",
                format!(
                    "the stream was dropped after {} items, before its end",
                    self.items
                ),
            ));
            self.end();
        }
    }
}

/// Metadata key set on a span whose stream or response body was dropped before its end.
///
/// ```
/// assert_eq!(tower_opik::stream::CANCELLED_KEY, "tower_opik.cancelled");
/// ```
pub const CANCELLED_KEY: &str = "tower_opik.cancelled";

impl Span {
    /// Tracks a streamed answer as this span: see [`TrackedStream`]. The span ends when
    /// the stream ends or is dropped; don't end it yourself. The items must implement
    /// [`StreamChunk`] for the default text output; use
    /// [`TrackedStream::aggregate_with`] or [`TrackedStream::aggregator`] otherwise.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use futures_util::StreamExt;
    /// let store = tower_opik::SpanStore::disabled();
    /// let llm = store.root_span("chat").child_of_type("completion", tower_opik::SpanType::Llm);
    /// let chunks = futures_util::stream::iter([Ok::<_, std::io::Error>("a".to_owned())]);
    /// let n = llm.track_stream(chunks).count().await;
    /// assert_eq!(n, 1);
    /// # }
    /// ```
    pub fn track_stream<S>(self, stream: S) -> TrackedStream<S, TextAggregator>
    where
        S: Stream,
        S::Item: StreamChunk,
    {
        self.track_stream_with(stream, TextAggregator::default())
    }

    /// Tracks a streamed answer as this span, with your aggregation: any item type (no
    /// [`StreamChunk`] needed). [`CollectWith::new`] takes a closure over all the items,
    /// like the Python SDK's `generations_aggregator`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use futures_util::StreamExt;
    /// use tower_opik::stream::CollectWith;
    /// let span = tower_opik::Span::none();
    /// let scores = futures_util::stream::iter([0.2_f64, 0.9]);
    /// let best = CollectWith::new(|s: &[f64]| serde_json::json!({"best": s.iter().cloned().fold(0.0, f64::max)}));
    /// assert_eq!(span.track_stream_with(scores, best).count().await, 2);
    /// # }
    /// ```
    pub fn track_stream_with<S, A>(self, stream: S, aggregator: A) -> TrackedStream<S, A>
    where
        S: Stream,
        A: Aggregate<S::Item>,
    {
        TrackedStream {
            inner: stream,
            tracker: Tracker {
                span: Some(self),
                aggregator: Some(aggregator),
                finish: <A as Aggregate<S::Item>>::finish,
                items: 0,
            },
        }
    }
}

impl<S: Stream, A> TrackedStream<S, A> {
    /// Replaces the aggregation with a closure over all the items, called once at the end
    /// (or at the drop) with the items so far; its value is the output (an object is kept
    /// as it is, anything else is sent as `{"output": v}`). The Python SDK's
    /// `generations_aggregator`. Items are cloned and kept until the end.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use futures_util::StreamExt;
    /// let llm = tower_opik::Span::none();
    /// let tracked = llm
    ///     .track_stream(futures_util::stream::iter(["a", "b"]))
    ///     .aggregate_with(|items: &[&str]| serde_json::json!({"chunks": items.len()}));
    /// assert_eq!(tracked.count().await, 2);
    /// # }
    /// ```
    pub fn aggregate_with<F>(self, f: F) -> TrackedStream<S, CollectWith<S::Item, F>>
    where
        S::Item: Clone,
        F: FnOnce(&[S::Item]) -> Value,
    {
        self.aggregator(CollectWith::new(f))
    }

    /// Replaces the aggregation with your own [`Aggregate`] (call it before the first
    /// poll: what the previous aggregator saw is discarded).
    ///
    /// ```
    /// use tower_opik::stream::TextAggregator;
    /// let s = tower_opik::Span::none()
    ///     .track_stream(futures_util::stream::iter(["a"]))
    ///     .aggregator(TextAggregator::default());
    /// # let _ = s;
    /// ```
    pub fn aggregator<B: Aggregate<S::Item>>(self, aggregator: B) -> TrackedStream<S, B> {
        let TrackedStream { inner, mut tracker } = self;
        TrackedStream {
            inner,
            tracker: Tracker {
                // Taken: the old tracker's drop then records nothing.
                span: tracker.span.take(),
                aggregator: Some(aggregator),
                finish: <B as Aggregate<S::Item>>::finish,
                items: tracker.items,
            },
        }
    }

    /// The span the stream's items make up.
    ///
    /// ```
    /// let s = tower_opik::Span::none().track_stream(futures_util::stream::iter(["a"]));
    /// assert!(s.span().is_none());
    /// ```
    pub fn span(&self) -> &Span {
        static NONE: Span = Span::none();
        self.tracker.span.as_ref().unwrap_or(&NONE)
    }
}

impl<S, A> Stream for TrackedStream<S, A>
where
    S: Stream,
    A: Aggregate<S::Item>,
{
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.project();
        let tracker = this.tracker;
        let Some(span) = tracker.span.clone() else {
            // Ended: pass the rest through untouched.
            return this.inner.poll_next(cx);
        };
        let mut slot = Some(span);
        let entered = Entered::enter(&mut slot);
        let inner = this.inner;
        let polled = catch_unwind(AssertUnwindSafe(|| inner.poll_next(cx)));
        drop(entered);
        let span = slot.unwrap_or_default();
        let item = match polled {
            Ok(item) => item,
            Err(payload) => {
                // Recorded here too, so that a panic is a `Panic` even without the hook;
                // the tracker ends the span with what it had.
                crate::context::panic::record_caught(&span, &*payload);
                tracker.end();
                resume_unwind(payload)
            }
        };
        match &item {
            Poll::Pending => {}
            Poll::Ready(Some(item)) => {
                if tracker.items == 0 {
                    span.mark_first_token();
                }
                tracker.items += 1;
                if let Some(aggregator) = tracker.aggregator.as_mut() {
                    aggregator.observe(item, &span);
                }
            }
            Poll::Ready(None) => tracker.end(),
        }
        item
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<S, A> fmt::Debug for TrackedStream<S, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrackedStream")
            .field("span", &self.tracker.span)
            .field("items", &self.tracker.items)
            .finish_non_exhaustive()
    }
}
