//! What the client adapters send, and to whom: the outbound allow-list, baggage, client spans.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};

use crate::classify::FailureClassifier;
use crate::context::current_span;
use crate::headers::{
    BAGGAGE_PARENT_SPAN_ID, BAGGAGE_SPAN_ID, BAGGAGE_TRACE_ID, DistributedHeaders,
    PARENT_SPAN_ID_HEADER, TRACE_ID_HEADER,
};
use crate::record::ErrorInfo;
use crate::span::Span;
use crate::warn::RateLimit;

/// A per-request override, put in the request's extensions (reqwest-middleware's
/// `with_extension`, or `http::Request::extensions_mut`).
///
/// ```
/// use tower_opik::client::Propagation;
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(Propagation::Disabled); // no Opik headers on this call
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Propagation {
    /// Send these ids instead of the current span's (and open no client span).
    Parent(DistributedHeaders),
    /// Send nothing on this call.
    Disabled,
}

/// The name of the client span of one request, put in its extensions (reqwest-middleware's
/// `with_extension`, or `http::Request::extensions_mut`), as reqwest-tracing's `OtelName`.
/// Without it an HTTP client span is named `METHOD host` (low-cardinality: never the path,
/// which holds ids) and a gRPC one `package.Service/Method`.
///
/// ```
/// use tower_opik::client::ClientSpanName;
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(ClientSpanName::new("openai chat completion"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientSpanName(pub std::borrow::Cow<'static, str>);

impl ClientSpanName {
    /// A client span name.
    ///
    /// ```
    /// let name = tower_opik::client::ClientSpanName::new("users lookup");
    /// assert_eq!(name.0, "users lookup");
    /// ```
    pub fn new(name: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        Self(name.into())
    }
}

/// A client span in flight, whether its call is gRPC (then its status comes in the
/// answer's trailers), and what counts as its failure.
#[derive(Debug)]
pub(crate) struct ClientSpan {
    pub(crate) span: Span,
    pub(crate) grpc: bool,
    pub(crate) failures: FailureClassifier,
}

/// Options shared by [`OpikMiddleware`](super::OpikMiddleware) and
/// [`OpikClientLayer`](super::OpikClientLayer).
#[derive(Clone, Debug, Default)]
pub(crate) struct ClientOptions {
    /// `None`: every host. Entries are host names (`api.internal`), `*.suffix` patterns, or
    /// IP addresses; matched case-insensitively, ports ignored.
    allowed_hosts: Option<Arc<[String]>>,
    baggage: bool,
    client_spans: bool,
    /// The wrapped service's origin, for requests whose URI has no host (tonic's).
    origin: Option<Uri>,
    /// Set once the "host unknown with an allow-list" warning was given (per layer).
    warned_no_host: Arc<AtomicBool>,
    failures: FailureClassifier,
}

static INSERT_WARNING: RateLimit = RateLimit::new();

/// The builder methods [`OpikMiddleware`](super::OpikMiddleware) and
/// [`OpikClientLayer`](super::OpikClientLayer) share: both wrap a `ClientOptions`.
macro_rules! client_options_builder {
    ($ty:ident) => {
        impl $ty {
            #[doc = concat!("A ", stringify!($ty), " that sends the headers to every host, without baggage or client spans.")]
            ///
            /// ```
            #[doc = concat!("let x = tower_opik::client::", stringify!($ty), "::new();")]
            /// ```
            pub fn new() -> Self {
                Self::default()
            }

            /// Sends the headers only to these hosts (`api.internal`, `*.svc.cluster.local`,
            /// `127.0.0.1`, `::1`), so that trace ids never reach a third-party API. Names are
            /// matched case-insensitively; a port in an entry (`localhost:8080`) is ignored, as
            /// ports are never compared. To a host not on
            /// the list, forwarded `opik_*` headers and `opik.*` baggage members are removed
            /// too (other baggage members are kept).
            ///
            /// A request whose URI carries no host is judged by the origin set with
            /// `OpikClientLayer::origin`; without one it gets no headers, and the first such
            /// request logs a warning. tonic's generated clients send host-less URIs (the
            /// `Channel` adds the origin below this layer): set the origin, or build the
            /// client with `with_origin`.
            ///
            /// ```
            #[doc = concat!("let x = tower_opik::client::", stringify!($ty), "::new().allow_hosts([\"*.internal\"]);")]
            /// ```
            pub fn allow_hosts<I, S>(mut self, hosts: I) -> Self
            where
                I: IntoIterator<Item = S>,
                S: AsRef<str>,
            {
                self.options.allow_hosts(hosts);
                self
            }

            /// Also sends the ids as W3C `baggage` (`opik.trace_id`, `opik.span_id`; other
            /// members are kept), for proxies that drop header names with underscores.
            ///
            /// Off by default; even then, a `baggage` header the request already carries
            /// (forwarded from upstream) has its `opik.*` members replaced by this call's
            /// ids, so a callee behind such a proxy never joins the upstream's span instead.
            ///
            /// ```
            #[doc = concat!("let x = tower_opik::client::", stringify!($ty), "::new().send_baggage(true);")]
            /// ```
            pub fn send_baggage(mut self, on: bool) -> Self {
                self.options.send_baggage(on);
                self
            }

            /// Opens a client span per call, which becomes the parent sent downstream. Its
            /// name: a [`ClientSpanName`](crate::client::ClientSpanName) in the request's
            /// extensions, else `package.Service/Method` for gRPC (with `rpc.system`,
            /// `rpc.service`, `rpc.method`), else `METHOD host` (never the path, which holds
            /// ids). Metadata, under OpenTelemetry's stable names: `http.request.method`,
            /// `url.full` (without the query), `http.response.status_code`; a 5xx or a
            /// failed call is its error. An HTTP client span ends when the response headers arrive (or the call fails): it measures the
            /// time to the answer's head, not the download of its body. A gRPC client span
            /// through `OpikClientLayer` ends at the trailers, with their status
            /// (`rpc.grpc.status_code`; non-OK is its error).
            ///
            /// ```
            #[doc = concat!("let x = tower_opik::client::", stringify!($ty), "::new().client_spans(true);")]
            /// ```
            pub fn client_spans(mut self, on: bool) -> Self {
                self.options.client_spans(on);
                self
            }

            /// What counts as a failed call on a client span (with
            /// [`client_spans`](Self::client_spans)): by default an HTTP status of 500 to
            /// 599 (`HttpServerError`) and every gRPC status but `OK`. Another failing HTTP
            /// status is recorded as `HttpStatusError`.
            ///
            /// ```
            /// use tower_opik::classify::{FailureClassifier, GrpcCode};
            #[doc = concat!("let x = tower_opik::client::", stringify!($ty), "::new()")]
            ///     .client_spans(true)
            ///     .failure_classifier(FailureClassifier::new().grpc_with_success(GrpcCode::NotFound));
            /// ```
            pub fn failure_classifier(mut self, classifier: crate::classify::FailureClassifier) -> Self {
                self.options.failure_classifier(classifier);
                self
            }
        }
    };
}
pub(crate) use client_options_builder;

impl ClientOptions {
    pub(crate) fn allow_hosts<I, S>(&mut self, hosts: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let hosts: Vec<String> = hosts
            .into_iter()
            .map(|h| host_pattern(h.as_ref()))
            .filter(|h| !h.is_empty())
            .collect();
        self.allowed_hosts = Some(hosts.into());
    }

    pub(crate) fn send_baggage(&mut self, on: bool) {
        self.baggage = on;
    }

    pub(crate) fn client_spans(&mut self, on: bool) {
        self.client_spans = on;
    }

    pub(crate) fn failure_classifier(&mut self, classifier: FailureClassifier) {
        self.failures = classifier;
    }

    pub(crate) fn origin(&mut self, origin: Uri) {
        self.origin = Some(origin);
    }

    /// `uri`, or, when it has no host, the origin's scheme and authority with `uri`'s path.
    fn effective<'a>(&self, uri: &'a Uri) -> std::borrow::Cow<'a, Uri> {
        match &self.origin {
            Some(origin) if uri.host().is_none() && origin.host().is_some() => {
                let mut parts = http::uri::Parts::default();
                // `127.0.0.1:50051` parses as a URI without a scheme: take it as http.
                parts.scheme = Some(origin.scheme().cloned().unwrap_or(http::uri::Scheme::HTTP));
                parts.authority = origin.authority().cloned();
                parts.path_and_query = uri
                    .path_and_query()
                    .cloned()
                    .or_else(|| Some(http::uri::PathAndQuery::from_static("/")));
                Uri::from_parts(parts)
                    .map_or(std::borrow::Cow::Borrowed(uri), std::borrow::Cow::Owned)
            }
            _ => std::borrow::Cow::Borrowed(uri),
        }
    }

    /// Whether Opik headers may go to `uri`'s host.
    pub(crate) fn allows(&self, uri: &Uri) -> bool {
        let Some(allowed) = &self.allowed_hosts else {
            return true;
        };
        let Some(host) = uri.host() else {
            if !self.warned_no_host.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    target: "tower_opik",
                    uri = %uri,
                    "an allow-list is set but this request's URI has no host (a tonic Channel \
                     adds it later): no Opik headers sent; set OpikClientLayer::origin"
                );
            }
            return false;
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches('.');
        let host = host.to_ascii_lowercase();
        allowed
            .iter()
            .any(|pattern| match pattern.strip_prefix("*.") {
                Some(suffix) => {
                    host.len() > suffix.len() + 1
                        && host.ends_with(suffix)
                        && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
                }
                None => *pattern == host,
            })
    }

    /// Prepares an outgoing request: opens the client span (if asked) and writes the headers
    /// (if allowed). Returns the client span to end when the answer comes.
    pub(crate) fn before_send(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &mut HeaderMap,
        extensions: &http::Extensions,
    ) -> Option<ClientSpan> {
        let uri = &*self.effective(uri);
        let (ids, client_span) = match extensions.get::<Propagation>() {
            Some(Propagation::Disabled) => {
                strip(headers);
                return None;
            }
            Some(Propagation::Parent(ids)) => (Some(*ids), None),
            None => {
                let current = current_span();
                if current.is_none() {
                    // Nothing of ours to send; what was forwarded still must not reach a
                    // host off the list.
                    if !self.allows(uri) {
                        strip(headers);
                    }
                    return None;
                }
                let span = self.client_spans.then(|| {
                    open_client_span(&current, method, uri, headers, extensions, self.failures)
                });
                let ids = span
                    .as_ref()
                    .map_or(&current, |s| &s.span)
                    .distributed_headers();
                (ids, span)
            }
        };
        if let Some(ids) = ids {
            if self.allows(uri) {
                ids.inject(headers);
                if self.baggage || headers.contains_key(BAGGAGE) {
                    set_baggage(headers, &ids);
                }
            } else {
                strip(headers);
            }
        }
        client_span
    }
}

/// An allow-list entry as matched: lowercase, without a trailing dot, brackets or a port
/// (`127.0.0.1:8080` → `127.0.0.1`, `[::1]:8080` → `::1`): ports are never compared.
fn host_pattern(entry: &str) -> String {
    let entry = entry.trim();
    let host = if let Some(rest) = entry.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else if entry.matches(':').count() == 1 {
        entry.split(':').next().unwrap_or_default()
    } else {
        entry // a bare IPv6 address, or a name
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// Opens the client span of a call: named by a [`ClientSpanName`] extension, else
/// `package.Service/Method` with `rpc.*` metadata for gRPC (OpenTelemetry's RPC
/// conventions), else `METHOD host`.
fn open_client_span(
    current: &Span,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    extensions: &http::Extensions,
    failures: FailureClassifier,
) -> ClientSpan {
    let grpc = crate::grpc::is_grpc(headers);
    let rpc = grpc
        .then(|| crate::grpc::service_and_method(uri.path()))
        .flatten();
    let name = match (extensions.get::<ClientSpanName>(), rpc) {
        (Some(name), _) => name.0.clone(),
        (None, Some((service, rpc_method))) => format!("{service}/{rpc_method}").into(),
        (None, None) => format!("{method} {}", uri.host().unwrap_or("-")).into(),
    };
    let span = current.child(name);
    span.set_metadata("http.request.method", method.as_str());
    span.set_metadata("url.full", url_without_query(uri));
    if let Some((service, rpc_method)) = rpc {
        span.set_metadata("rpc.system", "grpc");
        span.set_metadata("rpc.service", service);
        span.set_metadata("rpc.method", rpc_method);
    }
    ClientSpan {
        span,
        grpc,
        failures,
    }
}

/// Records the answer's head (or the failure) on a client span. Ends it and returns
/// `None`, except for a gRPC answer whose status is still to come in the trailers: then
/// the span is returned, for the response body to end.
pub(crate) fn after_response(
    span: Option<ClientSpan>,
    outcome: Result<(http::StatusCode, &HeaderMap), &dyn std::fmt::Display>,
) -> Option<ClientSpan> {
    let client = span?;
    let ClientSpan { span, failures, .. } = &client;
    match outcome {
        Ok((status, headers)) => {
            span.set_metadata("http.response.status_code", status.as_u16());
            if failures.is_http_failure(status) {
                let kind = if status.is_server_error() {
                    "HttpServerError"
                } else {
                    "HttpStatusError"
                };
                span.set_error(ErrorInfo::new(
                    kind,
                    format!("the server answered {status}"),
                ));
            }
            // A trailers-only answer carries the status in its headers; an answer that is
            // not gRPC (a proxy's error page) carries none.
            if client.grpc
                && status.is_success()
                && crate::grpc::is_grpc(headers)
                && !on_grpc_status(&client, headers)
            {
                return Some(client);
            }
        }
        Err(e) => span.set_error(ErrorInfo::new("HttpClientError", e.to_string())),
    }
    client.span.end();
    None
}

/// Records a gRPC status found in `map` on a client span; whether there was one.
pub(crate) fn on_grpc_status(client: &ClientSpan, map: &HeaderMap) -> bool {
    let Some(code) = crate::grpc::status_code(map) else {
        return false;
    };
    client.span.set_metadata("rpc.grpc.status_code", code);
    if client.failures.is_grpc_failure(code) {
        client.span.set_error(crate::grpc::status_error(code, map));
    }
    true
}

fn url_without_query(uri: &Uri) -> String {
    match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(authority)) => format!("{scheme}://{authority}{}", uri.path()),
        _ => uri.path().to_owned(),
    }
}

const BAGGAGE: HeaderName = HeaderName::from_static("baggage");

/// Removes the Opik headers and the Opik members of `baggage` (keeping the others): for a
/// call that must carry no Opik ids, whatever was forwarded from upstream.
fn strip(headers: &mut HeaderMap) {
    headers.remove(TRACE_ID_HEADER);
    headers.remove(PARENT_SPAN_ID_HEADER);
    if headers.contains_key(BAGGAGE) {
        write_baggage(headers, None);
    }
}

/// Adds the Opik members to the `baggage` header, replacing earlier Opik members and keeping
/// the others. A value that cannot be a header is skipped with a warning, never a panic.
fn set_baggage(headers: &mut HeaderMap, ids: &DistributedHeaders) {
    write_baggage(headers, Some(ids));
}

/// The `baggage` header without its Opik members, plus `ids`' when given; removed when
/// nothing is left.
fn write_baggage(headers: &mut HeaderMap, ids: Option<&DistributedHeaders>) {
    let name = BAGGAGE;
    // Member by member: a member that is not UTF-8 is dropped alone, not its whole line.
    let mut members: Vec<String> = headers
        .get_all(&name)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .filter_map(|m| std::str::from_utf8(m).ok())
        .map(str::trim)
        .filter(|m| {
            let key = m.split(['=', ';']).next().unwrap_or_default().trim();
            !m.is_empty()
                && ![BAGGAGE_TRACE_ID, BAGGAGE_SPAN_ID, BAGGAGE_PARENT_SPAN_ID].contains(&key)
        })
        .map(str::to_owned)
        .collect();
    let ours = ids.map(DistributedHeaders::to_baggage);
    // W3C's limit (and the receiver's: `MAX_BAGGAGE_LEN`): forwarded members go first,
    // oldest first, so that ours always fit.
    let len = |members: &[String]| {
        members.iter().map(|m| m.len() + 1).sum::<usize>() + ours.as_ref().map_or(0, String::len)
    };
    let mut dropped = 0;
    while !members.is_empty() && len(&members) > crate::headers::MAX_BAGGAGE_LEN {
        members.remove(0);
        dropped += 1;
    }
    if dropped > 0
        && let Some(suppressed) = INSERT_WARNING.check()
    {
        tracing::warn!(
            target: "tower_opik",
            suppressed,
            dropped,
            "forwarded baggage over 8 KiB with the Opik ids: its oldest members were dropped"
        );
    }
    members.extend(ours);
    if members.is_empty() {
        headers.remove(&name);
        return;
    }
    match HeaderValue::from_str(&members.join(",")) {
        Ok(value) => {
            headers.insert(name, value);
        }
        Err(_) => {
            if let Some(suppressed) = INSERT_WARNING.check() {
                tracing::warn!(target: "tower_opik", suppressed, "baggage header not sendable: skipped");
            }
        }
    }
}

#[cfg(test)]
#[path = "options_tests.rs"]
mod tests;
