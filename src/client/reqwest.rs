//! The reqwest-middleware middleware.

use http::Extensions;
use reqwest_middleware::{Middleware, Next};

use super::options::{ClientOptions, after_response};

/// A `reqwest-middleware` middleware that injects the current span's `opik_trace_id` /
/// `opik_parent_span_id` into every outgoing request (nothing when there is no current
/// span), and optionally opens a client span per call.
///
/// Per-request overrides go in the request's extensions:
/// `.with_extension(Propagation::Disabled)` or `.with_extension(Propagation::Parent(ids))`.
///
/// ```
/// use reqwest_middleware::ClientBuilder;
/// use tower_opik::client::OpikMiddleware;
///
/// # fn build(client: reqwest::Client) {
/// let client = ClientBuilder::new(client)
///     .with(OpikMiddleware::new().allow_hosts(["*.internal", "127.0.0.1"]).client_spans(true))
///     .build();
/// # }
/// ```
#[derive(Clone, Debug, Default)]
#[must_use = "a middleware does nothing until added to a client"]
pub struct OpikMiddleware {
    options: ClientOptions,
}

super::options::client_options_builder!(OpikMiddleware);

#[async_trait::async_trait]
impl Middleware for OpikMiddleware {
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let method = request.method().clone();
        let uri: http::Uri = request.url().as_str().parse().unwrap_or_default();
        let span = self
            .options
            .before_send(&method, &uri, request.headers_mut(), extensions);
        let result = next.run(request, extensions).await;
        // reqwest answers with the head: the client span ends there (its body, and for
        // gRPC over reqwest its trailers, are the caller's to read).
        let unfinished = match &result {
            Ok(response) => after_response(span, Ok((response.status(), response.headers()))),
            Err(e) => after_response(span, Err(e)),
        };
        if let Some(client) = unfinished {
            client.span.end();
        }
        result
    }
}
