//! What a span says of itself: whether it records, its ids, whether it owns its trace, and
//! the headers that carry it to another service.

use uuid::Uuid;

use super::Span;
use crate::headers::DistributedHeaders;

impl Span {
    /// Whether this span records nothing and has no ids (disabled store, or [`Span::none`]).
    /// A span of a trace that sampling left out is *not* none: it has ids, to propagate,
    /// and records nothing. Check it to skip work done only for the span (serializing a
    /// large prompt, say); the setters already return at once.
    ///
    /// ```
    /// # let messages = vec!["Where is my order?"];
    /// let span = tower_opik::current_span();
    /// if !span.is_none() {
    ///     span.set_input(serde_json::json!({"messages": messages}));
    /// }
    /// ```
    pub fn is_none(&self) -> bool {
        self.inner.is_none()
    }

    /// Whether the span is open: it records and has not ended yet. `false` for a none span,
    /// a sampled-out one, and once [`end`](Self::end) ran (after which setters do nothing).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # #[derive(Debug)] struct Discard;
    /// # impl tower_opik::store::Exporter for Discard {
    /// #     fn export<'a>(&'a self, _: &'a tower_opik::store::ExportBatch) -> tower_opik::store::ExportFuture<'a> { Box::pin(async { Ok(()) }) }
    /// # }
    /// # let store = tower_opik::SpanStore::builder()
    /// #     .config(tower_opik::OpikConfig::local("http://127.0.0.1:1/")).exporter(Discard).build()?;
    /// let span = store.root_span("chat");
    /// assert!(span.is_recording());
    /// span.end();
    /// assert!(!span.is_recording()); // recorded: later setters change nothing
    /// # Ok(()) }
    /// ```
    pub fn is_recording(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|i| i.lock().record.is_some())
    }

    /// Whether this span belongs to a trace sampling left out (it has ids, and records
    /// nothing).
    pub(crate) fn is_sampled_out(&self) -> bool {
        self.inner.as_ref().is_some_and(|i| !i.sampled)
    }

    /// The span's id (Opik's `id`): a UUIDv7 minted when the span started, `None` for a
    /// none span. Give it to [`SpanStore::score_span`](crate::SpanStore::score_span) to score the span later (a user's
    /// thumbs-up), or log it to find the span in Opik.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # #[derive(Debug)] struct Discard;
    /// # impl tower_opik::store::Exporter for Discard {
    /// #     fn export<'a>(&'a self, _: &'a tower_opik::store::ExportBatch) -> tower_opik::store::ExportFuture<'a> { Box::pin(async { Ok(()) }) }
    /// # }
    /// # let store = tower_opik::SpanStore::builder()
    /// #     .config(tower_opik::OpikConfig::local("http://127.0.0.1:1/")).exporter(Discard).build()?;
    /// use tower_opik::record::FeedbackScore;
    /// let answer = store.root_span("answer");
    /// let span_id = answer.id().expect("an enabled store's span has an id");
    /// assert_eq!(span_id.get_version_num(), 7);
    /// answer.end();
    /// // Minutes later, when the user clicks thumbs-up:
    /// store.score_span(span_id, FeedbackScore::new("thumbs_up", 1.0));
    /// # Ok(()) }
    /// ```
    pub fn id(&self) -> Option<Uuid> {
        self.inner.as_ref().map(|i| i.id)
    }

    /// The id of the span's trace (the span's `trace_id` in Opik, a UUIDv7): minted by the
    /// root span, or received from the caller's `opik_trace_id` header. `None` for a none
    /// span. Every span of a request shares it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # #[derive(Debug)] struct Discard;
    /// # impl tower_opik::store::Exporter for Discard {
    /// #     fn export<'a>(&'a self, _: &'a tower_opik::store::ExportBatch) -> tower_opik::store::ExportFuture<'a> { Box::pin(async { Ok(()) }) }
    /// # }
    /// # let store = tower_opik::SpanStore::builder()
    /// #     .config(tower_opik::OpikConfig::local("http://127.0.0.1:1/")).exporter(Discard).build()?;
    /// let request = store.root_span("POST /chat");
    /// let llm = request.child("llm call");
    /// assert_eq!(llm.trace_id(), request.trace_id());
    /// # llm.end(); request.end();
    /// # Ok(()) }
    /// ```
    pub fn trace_id(&self) -> Option<Uuid> {
        self.inner.as_ref().map(|i| i.trace_id)
    }

    /// The id of the span's parent (Opik's `parent_span_id`): a local span, or the caller's
    /// span from `opik_parent_span_id`. `None` for a root span, a span joining a remote
    /// trace without a parent span id, and a none span.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # #[derive(Debug)] struct Discard;
    /// # impl tower_opik::store::Exporter for Discard {
    /// #     fn export<'a>(&'a self, _: &'a tower_opik::store::ExportBatch) -> tower_opik::store::ExportFuture<'a> { Box::pin(async { Ok(()) }) }
    /// # }
    /// # let store = tower_opik::SpanStore::builder()
    /// #     .config(tower_opik::OpikConfig::local("http://127.0.0.1:1/")).exporter(Discard).build()?;
    /// let request = store.root_span("POST /chat");
    /// let llm = request.child("llm call");
    /// assert_eq!(request.parent_span_id(), None);
    /// assert_eq!(llm.parent_span_id(), request.id());
    /// # llm.end(); request.end();
    /// # Ok(()) }
    /// ```
    pub fn parent_span_id(&self) -> Option<Uuid> {
        self.inner.as_ref().and_then(|i| i.parent_span_id)
    }

    /// Whether this span started its trace in this service, and so writes the trace record
    /// when it ends: `true` for a root span, `false` for its children, for a span joining a
    /// trace from another service's headers, and for a none span. Only there does
    /// [`update_trace`](Self::update_trace) take effect.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # #[derive(Debug)] struct Discard;
    /// # impl tower_opik::store::Exporter for Discard {
    /// #     fn export<'a>(&'a self, _: &'a tower_opik::store::ExportBatch) -> tower_opik::store::ExportFuture<'a> { Box::pin(async { Ok(()) }) }
    /// # }
    /// # let store = tower_opik::SpanStore::builder()
    /// #     .config(tower_opik::OpikConfig::local("http://127.0.0.1:1/")).exporter(Discard).build()?;
    /// use tower_opik::DistributedHeaders;
    /// let root = store.root_span("POST /chat");
    /// assert!(root.owns_trace());
    /// // A downstream service joining this trace does not write it.
    /// let joined = store.span_with_parent("rerank", root.distributed_headers().as_ref());
    /// assert!(!joined.owns_trace());
    /// # joined.end(); root.end();
    /// # Ok(()) }
    /// ```
    pub fn owns_trace(&self) -> bool {
        self.inner.as_ref().is_some_and(|i| i.owns_trace)
    }

    /// The headers to send to a downstream service so that its spans become children of this
    /// one: this span's trace id and its own id as the parent (`opik_trace_id`,
    /// `opik_parent_span_id`, the Python SDK's `get_distributed_trace_headers`). `None` for a
    /// none span: send nothing, and the callee starts its own trace. A sampled-out span has
    /// them, so a callee sampling at the same rate makes the same decision.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # #[derive(Debug)] struct Discard;
    /// # impl tower_opik::store::Exporter for Discard {
    /// #     fn export<'a>(&'a self, _: &'a tower_opik::store::ExportBatch) -> tower_opik::store::ExportFuture<'a> { Box::pin(async { Ok(()) }) }
    /// # }
    /// # let store = tower_opik::SpanStore::builder()
    /// #     .config(tower_opik::OpikConfig::local("http://127.0.0.1:1/")).exporter(Discard).build()?;
    /// let span = store.root_span("POST /chat");
    /// let mut outgoing = http::HeaderMap::new();
    /// if let Some(headers) = span.distributed_headers() {
    ///     headers.inject(&mut outgoing);
    /// }
    /// assert_eq!(outgoing["opik_trace_id"], span.trace_id().unwrap().to_string().as_str());
    /// assert_eq!(outgoing["opik_parent_span_id"], span.id().unwrap().to_string().as_str());
    /// # span.end();
    /// # Ok(()) }
    /// ```
    pub fn distributed_headers(&self) -> Option<DistributedHeaders> {
        self.inner
            .as_ref()
            .map(|i| DistributedHeaders::new(i.trace_id, Some(i.id)))
    }
}
