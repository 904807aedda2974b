//! A borrowed view of a request's head, for the layer's user-supplied rules.

use std::borrow::Cow;

use http::{Extensions, HeaderMap, Method, Request, Uri, Version};

/// The head of an incoming request (method, URI, headers, extensions), as the layer's
/// rules see it: [`OpikLayer::skip`](super::OpikLayer::skip),
/// [`OpikLayer::span_name`](super::OpikLayer::span_name) and
/// [`HeaderPolicy::decide`](super::HeaderPolicy::decide).
///
/// ```
/// let req = http::Request::get("/health").body(()).unwrap();
/// let head = tower_opik::server::RequestHead::of(&req);
/// assert_eq!(head.uri().path(), "/health");
/// ```
#[derive(Clone, Copy, Debug)]
pub struct RequestHead<'a> {
    method: &'a Method,
    uri: &'a Uri,
    version: Version,
    headers: &'a HeaderMap,
    extensions: &'a Extensions,
}

impl<'a> RequestHead<'a> {
    /// The head of `request`.
    ///
    /// ```
    /// let req = http::Request::new(());
    /// assert_eq!(tower_opik::server::RequestHead::of(&req).method(), http::Method::GET);
    /// ```
    pub fn of<B>(request: &'a Request<B>) -> Self {
        Self {
            method: request.method(),
            uri: request.uri(),
            version: request.version(),
            headers: request.headers(),
            extensions: request.extensions(),
        }
    }

    /// The method.
    ///
    /// ```
    /// let req = http::Request::post("/").body(()).unwrap();
    /// assert_eq!(tower_opik::server::RequestHead::of(&req).method(), http::Method::POST);
    /// ```
    pub fn method(&self) -> &'a Method {
        self.method
    }

    /// The URI (raw: may hold ids and query strings; never use it as a span name).
    ///
    /// ```
    /// let req = http::Request::get("/a?b=c").body(()).unwrap();
    /// assert_eq!(tower_opik::server::RequestHead::of(&req).uri().query(), Some("b=c"));
    /// ```
    pub fn uri(&self) -> &'a Uri {
        self.uri
    }

    /// The HTTP version.
    ///
    /// ```
    /// let req = http::Request::new(());
    /// assert_eq!(tower_opik::server::RequestHead::of(&req).version(), http::Version::HTTP_11);
    /// ```
    pub fn version(&self) -> Version {
        self.version
    }

    /// The headers.
    ///
    /// ```
    /// let req = http::Request::get("/").header("x-a", "1").body(()).unwrap();
    /// assert_eq!(tower_opik::server::RequestHead::of(&req).headers()["x-a"], "1");
    /// ```
    pub fn headers(&self) -> &'a HeaderMap {
        self.headers
    }

    /// The extensions (axum's `MatchedPath`, a `ConnectInfo`, ...).
    ///
    /// ```
    /// let req = http::Request::new(());
    /// assert!(tower_opik::server::RequestHead::of(&req).extensions().is_empty());
    /// ```
    pub fn extensions(&self) -> &'a Extensions {
        self.extensions
    }

    /// Whether this is a gRPC call (`content-type: application/grpc...`).
    ///
    /// ```
    /// let req = http::Request::post("/pkg.Svc/Call").header("content-type", "application/grpc").body(()).unwrap();
    /// assert!(tower_opik::server::RequestHead::of(&req).is_grpc());
    /// ```
    pub fn is_grpc(&self) -> bool {
        crate::grpc::is_grpc(self.headers)
    }

    /// The route template when the router recorded one (axum's `MatchedPath`, with the
    /// `axum` feature), e.g. `/users/{id}`.
    ///
    /// ```
    /// let req = http::Request::new(());
    /// assert_eq!(tower_opik::server::RequestHead::of(&req).route(), None);
    /// ```
    pub fn route(&self) -> Option<&'a str> {
        #[cfg(feature = "axum")]
        if let Some(path) = self.extensions.get::<axum::extract::MatchedPath>() {
            return Some(path.as_str());
        }
        None
    }

    /// The default span name: `/package.Service/Method` for gRPC, `METHOD route` when the
    /// route is known, else the method alone. Never the raw path.
    ///
    /// ```
    /// let req = http::Request::get("/users/42?x=1").body(()).unwrap();
    /// assert_eq!(tower_opik::server::RequestHead::of(&req).default_span_name(), "GET");
    /// ```
    pub fn default_span_name(&self) -> String {
        if self.is_grpc() {
            return self.uri.path().to_owned();
        }
        let method = self.method.as_str();
        match self.route() {
            Some(route) => crate::record::route_name(method, route),
            None => method.to_owned(),
        }
    }
}

/// A method's name without allocating, for the standard methods.
pub(crate) fn method_name(method: &Method) -> Cow<'static, str> {
    let name = match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => return Cow::Owned(method.as_str().to_owned()),
    };
    Cow::Borrowed(name)
}
