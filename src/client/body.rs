//! The response body of a traced gRPC call: ends the client span at the trailers.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::options::{ClientSpan, on_grpc_status};
use crate::record::ErrorInfo;

pin_project! {
    /// The response body of an [`OpikClientService`](super::OpikClientService): the inner
    /// body, unchanged. For a gRPC call with a client span it reads the status from the
    /// trailers (`rpc.grpc.status_code`; a non-OK status is the span's error) and ends the
    /// span there, at the end of the body, or on a body error. Dropped before that (the
    /// caller stopped reading a stream), the span ends with `"tower_opik.cancelled": true`.
    /// Other calls' client spans end with the answer's head.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use http_body_util::BodyExt;
    /// use tower::{ServiceBuilder, ServiceExt};
    /// let client = ServiceBuilder::new()
    ///     .layer(tower_opik::client::OpikClientLayer::new())
    ///     .service_fn(|_req: http::Request<()>| async {
    ///         Ok::<_, std::convert::Infallible>(http::Response::new(String::from("hi")))
    ///     });
    /// let response = client.oneshot(http::Request::new(())).await.unwrap();
    /// let body: tower_opik::client::ClientResponseBody<String> = response.into_body();
    /// assert_eq!(body.collect().await.unwrap().to_bytes(), "hi");
    /// # }
    /// ```
    #[derive(Debug)]
    pub struct ClientResponseBody<B> {
        #[pin]
        inner: B,
        span: Option<ClientSpan>,
    }

    impl<B> PinnedDrop for ClientResponseBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(client) = this.project().span.take() {
                client.span.set_metadata(crate::stream::CANCELLED_KEY, true);
                client.span.end();
            }
        }
    }
}

impl<B> ClientResponseBody<B> {
    pub(crate) fn new(inner: B, span: Option<ClientSpan>) -> Self {
        Self { inner, span }
    }

    /// The inner body.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use tower::{ServiceBuilder, ServiceExt};
    /// let client = ServiceBuilder::new()
    ///     .layer(tower_opik::client::OpikClientLayer::new())
    ///     .service_fn(|_req: http::Request<()>| async {
    ///         Ok::<_, std::convert::Infallible>(http::Response::new(7))
    ///     });
    /// let response = client.oneshot(http::Request::new(())).await.unwrap();
    /// assert_eq!(*response.body().get_ref(), 7);
    /// # }
    /// ```
    pub fn get_ref(&self) -> &B {
        &self.inner
    }
}

impl<B> Body for ClientResponseBody<B>
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
        let this = self.project();
        let result = ready!(this.inner.poll_frame(cx));
        if let Some(client) = this.span.as_ref() {
            let done = match &result {
                None => true,
                Some(Ok(frame)) => match frame.trailers_ref() {
                    Some(trailers) => {
                        on_grpc_status(client, trailers);
                        true
                    }
                    None => false,
                },
                Some(Err(e)) => {
                    client
                        .span
                        .set_error(ErrorInfo::new("ResponseBodyError", e.to_string()));
                    true
                }
            };
            if done && let Some(client) = this.span.take() {
                client.span.end();
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
