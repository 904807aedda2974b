//! `OpikService`: opens the request span and hands the request to the inner service.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::Service;

use super::config::{ServiceConfig, run_hook};
use super::future::ResponseFuture;
use super::guard::SpanGuard;
use super::request::{RequestHead, method_name};
use crate::context::{Entered, Instrumented};
use crate::headers::{DistributedHeaders, Extracted};
use crate::span::Span;

/// The service [`OpikLayer`](super::OpikLayer) wraps around yours.
///
/// Before calling the inner service it puts the request's [`Span`] and, when valid ones came,
/// the caller's [`DistributedHeaders`] in the request extensions.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tower::{Layer, ServiceExt};
/// let inner = tower::service_fn(|req: http::Request<String>| async move {
///     let span = req.extensions().get::<tower_opik::Span>().cloned().unwrap_or_default();
///     span.set_output("seen");
///     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
/// });
/// let svc = tower_opik::OpikLayer::new(tower_opik::SpanStore::disabled()).layer(inner);
/// svc.oneshot(http::Request::new(String::new())).await.unwrap();
/// # }
/// ```
#[derive(Clone)]
pub struct OpikService<S> {
    inner: S,
    config: Arc<ServiceConfig>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for OpikService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpikService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> OpikService<S> {
    pub(crate) fn new(inner: S, config: Arc<ServiceConfig>) -> Self {
        Self { inner, config }
    }

    /// The wrapped service.
    ///
    /// ```
    /// use tower::Layer;
    /// let svc = tower_opik::OpikLayer::new(tower_opik::SpanStore::disabled()).layer(42);
    /// assert_eq!(*svc.get_ref(), 42);
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    ///
    /// ```
    /// use tower::Layer;
    /// let mut svc = tower_opik::OpikLayer::new(tower_opik::SpanStore::disabled()).layer(41);
    /// *svc.get_mut() += 1;
    /// assert_eq!(*svc.get_ref(), 42);
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service, unwrapped.
    ///
    /// ```
    /// use tower::Layer;
    /// let svc = tower_opik::OpikLayer::new(tower_opik::SpanStore::disabled()).layer("inner");
    /// assert_eq!(svc.into_inner(), "inner");
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// Opens the span of `request` (or none, when tracing is off or the request skipped).
    fn open_span<B>(&self, request: &mut Request<B>) -> Option<SpanGuard> {
        let config = &*self.config;
        if !config.store.is_enabled() {
            return None;
        }
        // An outer `OpikLayer` (an outer router's, or `layer` beside `route_layer`) traces
        // this request already: step aside, so that one request is one span.
        if request
            .extensions()
            .get::<Span>()
            .is_some_and(|s| s.is_recording() || s.is_sampled_out())
        {
            return None;
        }
        let head = RequestHead::of(request);
        if config.skip.as_ref().is_some_and(|skip| skip(&head)) {
            return None;
        }
        let extracted = if config.policy.trusts(&head) {
            DistributedHeaders::extract(head.headers())
        } else {
            Extracted::default()
        };
        extracted.warn();
        let grpc = head.is_grpc();
        let is_head = head.method() == http::Method::HEAD;
        let route: Option<Arc<str>> = head.route().map(Arc::from);
        // The default name, "{method} {route}", is written at export from the typed
        // metadata: the request path only clones the route.
        let (name, name_from_route) = match &config.name {
            Some(name) => (name(&head), false),
            None if grpc => (head.uri().path().to_owned().into(), false),
            None => (method_name(head.method()), route.is_some()),
        };
        let rate = config
            .sample_rate
            .as_ref()
            .map_or_else(|| config.store.sample_rate(), |rate| rate(&head));
        let span = Span::start_at_rate(&config.store, name, extracted.headers.as_ref(), rate);
        span.update_request(|r| {
            r.method = Some(head.method().clone());
            r.route = route;
            r.grpc = grpc;
            r.name_from_route = name_from_route;
        });
        if let Some(on_request) = config.hooks.as_ref().and_then(|h| h.on_request.as_ref()) {
            run_hook(&span, "on_request", || on_request(&head, &span));
        }
        if let Some(remote) = extracted.headers {
            request.extensions_mut().insert(remote);
        }
        request.extensions_mut().insert(span.clone());
        let mut guard = SpanGuard::new(span, grpc, is_head, config.failures);
        guard.trace_id_header = config.trace_id_header.clone();
        guard.hooks = config.hooks.clone();
        if config.tracing_span
            && let (Some(trace), Some(id)) = (guard.span().trace_id(), guard.span().id())
        {
            guard.log_span = Some(tracing::info_span!(
                target: "tower_opik",
                "opik",
                opik.trace_id = %trace,
                opik.span_id = %id,
            ));
        }
        Some(guard)
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for OpikService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: std::fmt::Display,
    ResB: http_body::Body,
{
    type Response = Response<super::body::ResponseBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqB>) -> Self::Future {
        let guard = self.open_span(&mut request);
        // Untraced (skipped, tracing off, an outer layer traces it): the context stays as
        // it is.
        let mut span = guard.as_ref().map(SpanGuard::span).cloned();
        // The inner `call` runs in the span too: services that do work there see it.
        let future = {
            let _log = guard
                .as_ref()
                .and_then(|g| g.log_span.as_ref())
                .map(|s| s.enter());
            let _entered = Entered::enter(&mut span);
            self.inner.call(request)
        };
        ResponseFuture::new(Instrumented::new_optional(future, span), guard)
    }
}
