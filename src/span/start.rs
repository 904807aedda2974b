//! Where spans start: [`SpanStore::root_span`] and [`SpanStore::span_with_parent`] are
//! defined here, next to [`Span`], so that the store (below) knows nothing of spans.

use std::borrow::Cow;

use super::Span;
use crate::headers::DistributedHeaders;
use crate::store::SpanStore;

impl SpanStore {
    /// Starts the root span of a new trace; this service writes the trace record when the
    /// span ends.
    ///
    /// ```
    /// let span = tower_opik::SpanStore::disabled().root_span("chat");
    /// span.end();
    /// ```
    pub fn root_span(&self, name: impl Into<Cow<'static, str>>) -> Span {
        Span::start(self, name.into(), None)
    }

    /// Starts a span under a remote parent (the distributed headers of an incoming call), or
    /// the root of a new trace when `parent` is `None`.
    ///
    /// ```
    /// use tower_opik::DistributedHeaders;
    /// let store = tower_opik::SpanStore::disabled();
    /// let parent = DistributedHeaders::extract(&http::HeaderMap::new()).headers;
    /// let span = store.span_with_parent("handle", parent.as_ref());
    /// span.end();
    /// ```
    pub fn span_with_parent(
        &self,
        name: impl Into<Cow<'static, str>>,
        parent: Option<&DistributedHeaders>,
    ) -> Span {
        Span::start(self, name.into(), parent)
    }
}
