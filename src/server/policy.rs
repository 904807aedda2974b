//! Whether to trust the distributed headers of an incoming request.

use std::sync::Arc;

use super::request::RequestHead;

type Decide = dyn Fn(&RequestHead<'_>) -> bool + Send + Sync;

/// What the layer does with incoming `opik_*` / `baggage` headers.
///
/// Trusting them lets a caller attach your service's spans to any trace id it likes (it can
/// never read anything back, nor change a trace it did not write, but it can add spans to
/// it). Trust is the default because the official SDKs send these headers between your own
/// services; restrict it when the service is reachable from outside.
///
/// ```
/// use tower_opik::server::HeaderPolicy;
/// // Only callers that present the shared secret header may join their trace.
/// let policy = HeaderPolicy::require_header("x-internal-token", "s3cret");
/// // Or any rule on the request head.
/// let policy = HeaderPolicy::decide(|head| head.uri().path().starts_with("/internal/"));
/// ```
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum HeaderPolicy {
    /// Use valid incoming headers (the default, for interop with the official SDKs).
    #[default]
    Trust,
    /// Ignore them: every request starts a new trace.
    Ignore,
    /// Decide per request: `true` trusts the headers.
    Decide(Arc<Decide>),
}

impl std::fmt::Debug for HeaderPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Trust => f.write_str("Trust"),
            Self::Ignore => f.write_str("Ignore"),
            Self::Decide(_) => f.write_str("Decide(..)"),
        }
    }
}

impl HeaderPolicy {
    /// Trusts the headers of the requests for which `rule` answers `true`.
    ///
    /// ```
    /// let p = tower_opik::server::HeaderPolicy::decide(|head| head.headers().contains_key("x-mesh"));
    /// ```
    pub fn decide(rule: impl Fn(&RequestHead<'_>) -> bool + Send + Sync + 'static) -> Self {
        Self::Decide(Arc::new(rule))
    }

    /// Trusts the headers of requests that carry header `name` with exactly `secret` (compared
    /// in constant time). The secret never appears in `Debug` output or spans.
    ///
    /// ```
    /// let p = tower_opik::server::HeaderPolicy::require_header("x-internal-token", "s3cret");
    /// assert_eq!(format!("{p:?}"), "Decide(..)");
    /// ```
    pub fn require_header(name: &'static str, secret: impl Into<String>) -> Self {
        let secret = secret.into().into_bytes();
        Self::decide(move |head| {
            head.headers()
                .get(name)
                .is_some_and(|v| constant_time_eq(v.as_bytes(), &secret))
        })
    }

    /// Whether the headers of this request are to be used.
    pub(crate) fn trusts(&self, head: &RequestHead<'_>) -> bool {
        match self {
            Self::Trust => true,
            Self::Ignore => false,
            Self::Decide(rule) => rule(head),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
