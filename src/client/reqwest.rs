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
pub struct OpikMiddleware {
    options: ClientOptions,
}

impl OpikMiddleware {
    /// A middleware that sends the headers to every host, without baggage or client spans.
    ///
    /// ```
    /// let m = tower_opik::client::OpikMiddleware::new();
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends the headers only to these hosts (`api.internal`, `*.svc.cluster.local`,
    /// `127.0.0.1`), so that trace ids never reach a third-party API. With a list set, a
    /// request whose URI carries no host (a tonic `Channel` adds it later) gets no headers.
    ///
    /// ```
    /// let m = tower_opik::client::OpikMiddleware::new().allow_hosts(["*.internal"]);
    /// ```
    pub fn allow_hosts<I, S>(mut self, hosts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.options.allow_hosts(hosts);
        self
    }

    /// Also sends the ids as W3C `baggage`, for proxies that drop underscore header names.
    ///
    /// ```
    /// let m = tower_opik::client::OpikMiddleware::new().send_baggage(true);
    /// ```
    pub fn send_baggage(mut self, on: bool) -> Self {
        self.options.send_baggage(on);
        self
    }

    /// Opens a client span per call (`POST host/path`), the parent sent downstream. It ends
    /// when the response headers arrive (or the call fails): it measures the time to the
    /// answer's head, not the download of its body.
    ///
    /// ```
    /// let m = tower_opik::client::OpikMiddleware::new().client_spans(true);
    /// ```
    pub fn client_spans(mut self, on: bool) -> Self {
        self.options.client_spans(on);
        self
    }
}

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
        match &result {
            Ok(response) => after_response(span, Ok(response.status())),
            Err(e) => after_response(span, Err(e)),
        }
        result
    }
}
