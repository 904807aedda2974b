//! The response future: runs the inner service's future inside the request span.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;
use pin_project_lite::pin_project;

use super::body::ResponseBody;
use super::guard::SpanGuard;
use crate::context::Instrumented;

pin_project! {
    /// The future of an [`OpikService`](super::OpikService). The request span is the current
    /// span on every poll and while the inner future is dropped. Dropped before the
    /// response, it records the request as cancelled; a panic that unwinds through it is
    /// recorded as `Panic` with its message, and then continues (to a `CatchPanicLayer`
    /// outside, or to the server).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use tower::{Service, ServiceBuilder, ServiceExt};
    /// let mut svc = ServiceBuilder::new()
    ///     .layer(tower_opik::OpikLayer::new(tower_opik::SpanStore::disabled()))
    ///     .service_fn(|_req: http::Request<String>| async {
    ///         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    ///     });
    /// let future: tower_opik::server::ResponseFuture<_> =
    ///     svc.ready().await.unwrap().call(http::Request::new(String::new()));
    /// let _response = future.await.unwrap();
    /// # }
    /// ```
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Instrumented<F>,
        guard: Option<SpanGuard>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: Instrumented<F>, guard: Option<SpanGuard>) -> Self {
        Self { inner, guard }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body,
    E: std::fmt::Display,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let inner = this.inner;
        let polled = {
            // The ids' `tracing` span, when asked (`OpikLayer::tracing_span`), borrowed from
            // the guard for the poll only: no clone per poll.
            let _log = this
                .guard
                .as_ref()
                .and_then(|g| g.log_span.as_ref())
                .map(tracing::Span::enter);
            catch_unwind(AssertUnwindSafe(|| inner.poll(cx)))
        };
        let result = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(result)) => result,
            Err(payload) => {
                if let Some(g) = this.guard.take() {
                    g.on_panic(&*payload);
                }
                resume_unwind(payload)
            }
        };
        let mut guard = this.guard.take();
        Poll::Ready(match result {
            Ok(response) => {
                let mut bodyless = false;
                if let Some(g) = guard.as_mut() {
                    g.on_response(response.status(), response.headers());
                    bodyless = g.bodyless(response.status());
                }
                let (mut parts, body) = response.into_parts();
                if let Some(g) = guard.as_ref() {
                    g.response_hook(&parts);
                }
                if let Some(g) = guard.as_ref()
                    && let (Some(name), Some(trace)) = (&g.trace_id_header, g.span().trace_id())
                    && !parts.headers.contains_key(name)
                {
                    parts
                        .headers
                        .insert(name.clone(), crate::headers::uuid_value(trace));
                }
                let body = ResponseBody::new(body, guard, &parts.headers, bodyless);
                Ok(Response::from_parts(parts, body))
            }
            Err(error) => {
                if let Some(g) = guard {
                    g.on_error("ServiceError", &error);
                    g.end();
                }
                Err(error)
            }
        })
    }
}
