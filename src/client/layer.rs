//! A tower client layer: Opik headers on every request of any `Service<http::Request<B>>`
//! (hyper-util clients, tonic `Channel`s).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::body::ClientResponseBody;
use super::options::{ClientOptions, ClientSpan, after_response};

/// Injects the current span's `opik_trace_id` / `opik_parent_span_id` into every request
/// (nothing when there is no current span), optionally opening a client span per call.
/// gRPC metadata keys are lowercase: the headers are too.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tower::{ServiceBuilder, ServiceExt};
/// use tower_opik::client::OpikClientLayer;
///
/// let client = ServiceBuilder::new()
///     .layer(OpikClientLayer::new().allow_hosts(["127.0.0.1", "*.internal"]))
///     .service_fn(|req: http::Request<()>| async move {
///         Ok::<_, std::convert::Infallible>(http::Response::new(req.headers().len()))
///     });
/// let response = client.oneshot(http::Request::new(())).await.unwrap();
/// assert_eq!(*response.body().get_ref(), 0); // no current span: nothing sent
/// # }
/// ```
#[derive(Clone, Debug, Default)]
#[must_use = "a layer does nothing until applied to a service"]
pub struct OpikClientLayer {
    options: ClientOptions,
}

super::options::client_options_builder!(OpikClientLayer);

impl OpikClientLayer {
    /// The origin of the service this layer wraps (`http://10.0.0.7:50051`), used for the
    /// allow-list, client span names and `url.full` when a request's URI carries no host.
    ///
    /// tonic's generated clients send URIs that are only a path (`/pkg.Service/Method`):
    /// the `Channel` adds its endpoint's origin below this layer. Without an origin and with
    /// an allow-list set, such calls get no Opik headers (and the first logs a warning).
    /// A request URI that has a host keeps it; no origin by default.
    ///
    /// ```
    /// use tower_opik::client::OpikClientLayer;
    /// let endpoint = tonic::transport::Endpoint::from_static("http://127.0.0.1:50051");
    /// let layer = OpikClientLayer::new()
    ///     .allow_hosts(["127.0.0.1"])
    ///     .origin(endpoint.uri().clone());
    /// # let _ = layer;
    /// ```
    pub fn origin(mut self, origin: http::Uri) -> Self {
        self.options.origin(origin);
        self
    }
}

impl<S> Layer<S> for OpikClientLayer {
    type Service = OpikClientService<S>;

    fn layer(&self, inner: S) -> OpikClientService<S> {
        OpikClientService {
            inner,
            options: self.options.clone(),
        }
    }
}

/// The service [`OpikClientLayer`] wraps around a client.
///
/// ```
/// use tower::Layer;
/// let svc = tower_opik::client::OpikClientLayer::new().layer(tower::service_fn(|_req: http::Request<()>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(()))
/// }));
/// # let _ = svc;
/// ```
#[derive(Clone, Debug)]
pub struct OpikClientService<S> {
    inner: S,
    options: ClientOptions,
}

impl<S, B, ResB> Service<Request<B>> for OpikClientService<S>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    S::Error: std::fmt::Display,
{
    type Response = Response<ClientResponseBody<ResB>>;
    type Error = S::Error;
    type Future = ClientFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (mut parts, body) = request.into_parts();
        let span = self.options.before_send(
            &parts.method,
            &parts.uri,
            &mut parts.headers,
            &parts.extensions,
        );
        ClientFuture {
            inner: self.inner.call(Request::from_parts(parts, body)),
            span,
        }
    }
}

pin_project! {
    /// The future of an [`OpikClientService`]: ends the client span when the answer's head
    /// arrives or the call fails (and marks it cancelled if dropped first); for a gRPC call
    /// answered with a stream, hands it to the [`ClientResponseBody`], which ends it at the
    /// trailers.
    ///
    /// ```
    /// fn assert_future<F: std::future::Future>(_: &F) {}
    /// # let _ = assert_future::<tower_opik::client::ClientFuture<std::future::Ready<Result<http::Response<()>, std::convert::Infallible>>>>;
    /// ```
    #[derive(Debug)]
    pub struct ClientFuture<F> {
        #[pin]
        inner: F,
        span: Option<ClientSpan>,
    }

    impl<F> PinnedDrop for ClientFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(ClientSpan { span, .. }) = this.project().span.take() {
                span.set_error(crate::ErrorInfo::new("Cancelled", "the call was dropped before the answer"));
                span.end();
            }
        }
    }
}

impl<F, ResB, E> Future for ClientFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    E: std::fmt::Display,
{
    type Output = Result<Response<ClientResponseBody<ResB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        Poll::Ready(match result {
            Ok(response) => {
                let unfinished = after_response(
                    this.span.take(),
                    Ok((response.status(), response.headers())),
                );
                Ok(response.map(|body| ClientResponseBody::new(body, unfinished)))
            }
            Err(e) => {
                after_response(this.span.take(), Err(&e));
                Err(e)
            }
        })
    }
}
