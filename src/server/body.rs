//! The response body that ends the request span when the response ends.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::guard::SpanGuard;

pin_project! {
    /// The response body of an [`OpikService`](super::OpikService): the inner body,
    /// unchanged, ending the request span exactly once: at the end of the stream, on a
    /// trailers frame (reading a gRPC status from it), after a data frame that completes
    /// a body of known length, at once for a body that is already empty (HEAD, 204), on a
    /// body error, or when dropped early (recorded as an incomplete response).
    ///
    /// ```
    /// use http_body_util::BodyExt;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use tower::{ServiceBuilder, ServiceExt};
    /// let svc = ServiceBuilder::new()
    ///     .layer(tower_opik::OpikLayer::new(tower_opik::SpanStore::disabled()))
    ///     .service_fn(|_req: http::Request<String>| async {
    ///         Ok::<_, std::convert::Infallible>(http::Response::new(String::from("hi")))
    ///     });
    /// let response = svc.oneshot(http::Request::new(String::new())).await.unwrap();
    /// let body: tower_opik::server::ResponseBody<String> = response.into_body();
    /// assert_eq!(body.collect().await.unwrap().to_bytes(), "hi");
    /// # }
    /// ```
    #[derive(Debug)]
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        guard: Option<SpanGuard>,
    }
}

impl<B: Body> ResponseBody<B> {
    /// `bodyless`: the server will not send this body (HEAD, 204, 304).
    pub(crate) fn new(inner: B, guard: Option<SpanGuard>, bodyless: bool) -> Self {
        let mut body = Self { inner, guard };
        if bodyless || body.inner.is_end_stream() {
            body.finish();
        }
        body
    }
}

impl<B> ResponseBody<B> {
    fn finish(&mut self) {
        if let Some(guard) = self.guard.take() {
            guard.end();
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body,
    B::Error: std::fmt::Display,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let result = ready!(this.inner.as_mut().poll_frame(cx));
        let guard = this.guard;
        match &result {
            None => end(guard),
            Some(Ok(frame)) => {
                if let Some(trailers) = frame.trailers_ref() {
                    if let Some(g) = guard.as_ref() {
                        g.on_grpc_status(trailers);
                    }
                    end(guard);
                } else if this.inner.is_end_stream() {
                    // A body of known length is complete after this frame: hyper will not
                    // poll it again.
                    end(guard);
                }
            }
            Some(Err(e)) => {
                if let Some(g) = guard.as_ref() {
                    g.on_error("ResponseBodyError", e);
                }
                end(guard);
            }
        }
        Poll::Ready(result)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn end(guard: &mut Option<SpanGuard>) {
    if let Some(g) = guard.take() {
        g.end();
    }
}
