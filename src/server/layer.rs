//! `OpikLayer`: the tower layer and its options.

use std::borrow::Cow;
use std::sync::Arc;

use tower::Layer;

use super::config::{Hooks, ServiceConfig};
use super::policy::HeaderPolicy;
use super::request::RequestHead;
use super::service::OpikService;
use crate::classify::FailureClassifier;
use crate::span::Span;
use crate::store::SpanStore;

/// Traces every request of an axum router or tonic server in Opik: reads the caller's
/// distributed headers, opens the request span (a child of the remote caller, or a new
/// trace), makes it the current span for every poll of the handler's future and of the
/// response body, and ends it when the response body ends (see
/// [`ResponseBody`](super::ResponseBody) for exactly when).
///
/// Applied twice to one request (an outer router's layer and an inner one's, or
/// `Router::layer` beside `route_layer`), the inner layer steps aside: the request is one
/// span, the outer layer's, and the handler sees it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tower::{ServiceBuilder, ServiceExt};
/// use tower_opik::{OpikLayer, SpanStore, server::HeaderPolicy};
///
/// let store = SpanStore::disabled(); // SpanStore::from_env()? in a real service
/// let layer = OpikLayer::new(store)
///     .project_name("checkout")
///     .header_policy(HeaderPolicy::Trust)
///     .skip(|head| head.uri().path() == "/health");
/// let svc = ServiceBuilder::new().layer(layer).service_fn(|_req: http::Request<String>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
/// });
/// let response = svc.oneshot(http::Request::new(String::new())).await.unwrap();
/// # let _ = response;
/// # }
/// ```
#[derive(Clone)]
#[must_use = "a layer does nothing until applied to a service"]
pub struct OpikLayer {
    shared: Arc<ServiceConfig>,
}

impl std::fmt::Debug for OpikLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpikLayer")
            .field("store", &self.shared.store)
            .field("policy", &self.shared.policy)
            .field("skip", &self.shared.skip.is_some())
            .field("custom_name", &self.shared.name.is_some())
            .field("failures", &self.shared.failures)
            .field("trace_id_header", &self.shared.trace_id_header)
            .field("tracing_span", &self.shared.tracing_span)
            .field("sample_rate", &self.shared.store.sample_rate())
            .field("sample_rate_by", &self.shared.sample_rate.is_some())
            .field("hooks", &self.shared.hooks)
            .finish()
    }
}

impl OpikLayer {
    /// A layer recording into `store`, trusting incoming headers, naming spans with
    /// [`RequestHead::default_span_name`].
    ///
    /// A panic in the request is recorded as `Panic` with its message, wherever a
    /// `CatchPanicLayer` sits: through the panic hook installed when a recording span first
    /// becomes current (see [`SpanStoreBuilder::build`](crate::store::SpanStoreBuilder::build)),
    /// and from the
    /// payload of a panic that unwinds through this layer's future or body.
    ///
    /// ```
    /// let layer = tower_opik::OpikLayer::new(tower_opik::SpanStore::disabled());
    /// ```
    pub fn new(store: SpanStore) -> Self {
        Self {
            shared: Arc::new(ServiceConfig {
                store,
                policy: HeaderPolicy::Trust,
                skip: None,
                name: None,
                failures: FailureClassifier::new(),
                trace_id_header: None,
                tracing_span: false,
                sample_rate: None,
                hooks: None,
            }),
        }
    }

    fn with(mut self, f: impl FnOnce(&mut ServiceConfig)) -> Self {
        f(Arc::make_mut(&mut self.shared));
        self
    }

    /// Sends this layer's spans to another project than the store's.
    ///
    /// ```
    /// let layer = tower_opik::OpikLayer::new(tower_opik::SpanStore::disabled()).project_name("search");
    /// ```
    pub fn project_name(self, name: impl AsRef<str>) -> Self {
        self.with(|c| c.store = c.store.with_project_name(name))
    }

    /// What to do with incoming distributed headers.
    ///
    /// ```
    /// use tower_opik::server::HeaderPolicy;
    /// let layer = tower_opik::OpikLayer::new(tower_opik::SpanStore::disabled()).header_policy(HeaderPolicy::Ignore);
    /// ```
    pub fn header_policy(self, policy: HeaderPolicy) -> Self {
        self.with(|c| c.policy = policy)
    }

    /// Requests for which `rule` answers `true` are not traced at all (health checks,
    /// metrics), at next to no cost.
    ///
    /// ```
    /// let layer = tower_opik::OpikLayer::new(tower_opik::SpanStore::disabled())
    ///     .skip(|head| matches!(head.uri().path(), "/health" | "/metrics"));
    /// ```
    pub fn skip(self, rule: impl Fn(&RequestHead<'_>) -> bool + Send + Sync + 'static) -> Self {
        self.with(|c| c.skip = Some(Arc::new(rule)))
    }

    /// Names request spans with `name` instead of the default. Keep names low-cardinality:
    /// a route template, never a raw path with ids.
    ///
    /// ```
    /// let layer = tower_opik::OpikLayer::new(tower_opik::SpanStore::disabled())
    ///     .span_name(|head| format!("api {}", head.method()).into());
    /// ```
    pub fn span_name(
        self,
        name: impl Fn(&RequestHead<'_>) -> Cow<'static, str> + Send + Sync + 'static,
    ) -> Self {
        self.with(|c| c.name = Some(Arc::new(name)))
    }
}

impl OpikLayer {
    /// Every hook runs with the request's span current (so `current_span()` and spans
    /// opened inside are the request's), and a hook that panics neither fails the request
    /// nor takes the process down: the panic is caught, recorded on the span as `Panic`,
    /// and logged at WARN (rate-limited). Hooks of an inner `OpikLayer` whose outer layer
    /// traces the request do not run (one request, one span: the outer layer's hooks do).
    fn with_hooks(self, f: impl FnOnce(&mut Hooks)) -> Self {
        self.with(|c| f(Arc::make_mut(c.hooks.get_or_insert_with(Default::default))))
    }

    /// Runs `hook` when a request's span opens, before your service is called, with the
    /// request head and the span: record what your handlers should not have to (a tenant
    /// header, a client version) as metadata or tags. Not called for requests not traced
    /// ([`skip`](Self::skip), tracing off, an outer layer's request); called for a trace
    /// sampled out (its span records nothing). Replaces an earlier `on_request`. Like
    /// tower-http's `TraceLayer::on_request`. It runs with the span current; a panic in it
    /// is caught and recorded on the span, and the request goes on.
    ///
    /// ```
    /// let layer = tower_opik::OpikLayer::new(tower_opik::SpanStore::disabled())
    ///     .on_request(|head, span| {
    ///         if let Some(tenant) = head.headers().get("x-tenant").and_then(|v| v.to_str().ok()) {
    ///             span.set_metadata("tenant", tenant);
    ///         }
    ///     });
    /// ```
    pub fn on_request(
        self,
        hook: impl Fn(&RequestHead<'_>, &Span) + Send + Sync + 'static,
    ) -> Self {
        self.with_hooks(|h| h.on_request = Some(Arc::new(hook)))
    }

    /// Runs `hook` when the response head comes back from your service, with its parts
    /// (status, headers) and the span, after the [`failure_classifier`](Self::failure_classifier)
    /// has spoken: record a response header, or call [`Span::set_error`] to count as a
    /// failure an answer the classifier lets pass (a 200 whose `x-degraded` header says
    /// otherwise). Not called when your service fails or panics before answering.
    /// Replaces an earlier `on_response`. It runs with the span current; a panic in it is
    /// caught and recorded on the span, and the response goes on.
    ///
    /// ```
    /// use tower_opik::ErrorInfo;
    /// let layer = tower_opik::OpikLayer::new(tower_opik::SpanStore::disabled())
    ///     .on_response(|parts, span| {
    ///         if parts.headers.contains_key("x-degraded") {
    ///             span.set_error(ErrorInfo::new("Degraded", "answered from the fallback model"));
    ///         }
    ///     });
    /// ```
    pub fn on_response(
        self,
        hook: impl Fn(&http::response::Parts, &Span) + Send + Sync + 'static,
    ) -> Self {
        self.with_hooks(|h| h.on_response = Some(Arc::new(hook)))
    }

    /// Runs `hook` once when a request's span ends with an error (a failing status, a gRPC
    /// error, an error from your service or its body, a panic, a cancelled request, or an
    /// error your code set), with the error and the span, just before the span ends:
    /// count it, log it, add metadata. Replaces an earlier `on_failure`.
    ///
    /// It sees the failures of requests this layer records: not those of a request
    /// skipped, of a trace sampled out ([`sample_rate`](Self::sample_rate)), or with tracing
    /// off ([`SpanStore::disabled`]): their span records nothing, so holds no error. Count
    /// all failures with a metrics layer of your own, not here. A panic in the hook is
    /// caught and recorded on the span; it is never run while the thread unwinds from
    /// another panic (that would abort the process).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// static FAILED: AtomicU64 = AtomicU64::new(0);
    /// let layer = tower_opik::OpikLayer::new(tower_opik::SpanStore::disabled())
    ///     .on_failure(|error, _span| {
    ///         FAILED.fetch_add(1, Ordering::Relaxed);
    ///         tracing::warn!(kind = %error.exception_type(), "request failed");
    ///     });
    /// ```
    pub fn on_failure(
        self,
        hook: impl Fn(&crate::ErrorInfo, &Span) + Send + Sync + 'static,
    ) -> Self {
        self.with_hooks(|h| h.on_failure = Some(Arc::new(hook)))
    }

    /// What counts as a failed request, recorded as the request span's error: by default an
    /// HTTP status of 500 to 599 (`HttpServerError`) and, for gRPC, every status but `OK`
    /// (`GrpcStatus<Code>` with the `grpc-message`). Another failing HTTP status is
    /// recorded as `HttpStatusError`. An error the handler recorded, or a panic, wins over
    /// both.
    ///
    /// ```
    /// use tower_opik::classify::{FailureClassifier, GrpcCode};
    /// let layer = tower_opik::OpikLayer::new(tower_opik::SpanStore::disabled())
    ///     .failure_classifier(FailureClassifier::new().grpc_with_success(GrpcCode::NotFound));
    /// ```
    pub fn failure_classifier(self, classifier: FailureClassifier) -> Self {
        self.with(|c| c.failures = classifier)
    }

    /// Answers every traced request with its Opik trace id in the header `name` (for
    /// support tickets and links to the trace in Opik's UI): `x-opik-trace-id: 0193...`.
    /// A header the inner service set itself is kept. Untraced requests (skipped, tracing
    /// off) get none.
    ///
    /// Off by default: the id tells whoever receives the answer which trace the request
    /// is, and with [`HeaderPolicy::Trust`] a caller that knows a trace id can attach its
    /// own spans to it; turn it on where the callers are yours (or behind a gateway that
    /// strips it).
    ///
    /// ```
    /// let layer = tower_opik::OpikLayer::new(tower_opik::SpanStore::disabled())
    ///     .trace_id_response_header(http::HeaderName::from_static("x-opik-trace-id"));
    /// ```
    pub fn trace_id_response_header(self, name: http::HeaderName) -> Self {
        self.with(|c| c.trace_id_header = Some(name))
    }

    /// Opens a `tracing` span around each traced request (named `opik`, target
    /// `tower_opik`, level INFO) with the fields `opik.trace_id` and `opik.span_id`, entered
    /// while the handler's future and the response body are polled: every log line inside
    /// carries the ids (`tracing_subscriber::fmt` prints a span's fields before the message:
    /// `opik{opik.trace_id=0193... opik.span_id=0193...}: answered`). Off by default (a
    /// `tracing` span per request costs about a microsecond with a subscriber listening);
    /// [`OpikTracingLayer`](crate::tracing::OpikTracingLayer) never mirrors it into Opik.
    ///
    /// Without it, code inside a request can read the ids itself:
    /// `current_span().trace_id()` and `current_span().id()`.
    ///
    /// ```
    /// let layer = tower_opik::OpikLayer::new(tower_opik::SpanStore::disabled()).tracing_span(true);
    /// ```
    pub fn tracing_span(self, on: bool) -> Self {
        self.with(|c| c.tracing_span = on)
    }

    /// Samples this layer's traces at `rate` (0.0 to 1.0) instead of the store's (see
    /// [`SpanStore::sample_rate`]): 1.0 on an admin router, 0.01 on a chat one.
    ///
    /// ```
    /// let layer = tower_opik::OpikLayer::new(tower_opik::SpanStore::disabled()).sample_rate(0.01);
    /// ```
    pub fn sample_rate(self, rate: f64) -> Self {
        self.with(|c| c.store = c.store.with_sample_rate(rate))
    }

    /// Samples each request's trace at the rate `rate` answers for it (brought into 0.0
    /// to 1.0), per route or per anything in the request head. The decision is still a
    /// function of the trace id: a request joining a trace decides as its caller did if
    /// their rates agree.
    ///
    /// ```
    /// let layer = tower_opik::OpikLayer::new(tower_opik::SpanStore::disabled())
    ///     .sample_rate_by(|head| if head.uri().path().starts_with("/admin") { 1.0 } else { 0.01 });
    /// ```
    pub fn sample_rate_by(
        self,
        rate: impl Fn(&RequestHead<'_>) -> f64 + Send + Sync + 'static,
    ) -> Self {
        self.with(|c| c.sample_rate = Some(Arc::new(rate)))
    }
}

impl<S> Layer<S> for OpikLayer {
    type Service = OpikService<S>;

    fn layer(&self, inner: S) -> OpikService<S> {
        OpikService::new(inner, self.shared.clone())
    }
}

/// Defined here, not in `service.rs`: the layer builds services, never the reverse.
impl<S> OpikService<S> {
    /// The layer that makes this service, recording into `store`: the same as
    /// [`OpikLayer::new`], as tower-http's `Trace::layer`.
    ///
    /// ```
    /// let layer = tower_opik::server::OpikService::<()>::layer(tower_opik::SpanStore::disabled());
    /// # let _ = layer;
    /// ```
    pub fn layer(store: SpanStore) -> OpikLayer {
        OpikLayer::new(store)
    }
}
