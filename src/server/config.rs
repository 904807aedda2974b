//! What an [`OpikService`](super::OpikService) does with each request: the options
//! [`OpikLayer`](super::OpikLayer) sets, shared by every service it makes. The service
//! owns it; the layer only builds it (arrows: layer → service → config).

use std::borrow::Cow;
use std::sync::Arc;

use super::policy::HeaderPolicy;
use super::request::RequestHead;
use crate::classify::FailureClassifier;
use crate::record::ErrorInfo;
use crate::span::Span;
use crate::store::SpanStore;

pub(crate) type Rule = dyn Fn(&RequestHead<'_>) -> bool + Send + Sync;
pub(crate) type Namer = dyn Fn(&RequestHead<'_>) -> Cow<'static, str> + Send + Sync;
pub(crate) type Rate = dyn Fn(&RequestHead<'_>) -> f64 + Send + Sync;
pub(crate) type OnRequest = dyn Fn(&RequestHead<'_>, &Span) + Send + Sync;
pub(crate) type OnResponse = dyn Fn(&http::response::Parts, &Span) + Send + Sync;
pub(crate) type OnFailure = dyn Fn(&ErrorInfo, &Span) + Send + Sync;

/// The user's hooks ([`OpikLayer::on_request`](super::OpikLayer::on_request) and the
/// others): `None` in the config when none is set, so a request without hooks pays
/// nothing for them.
#[derive(Clone, Default)]
pub(crate) struct Hooks {
    pub(crate) on_request: Option<Arc<OnRequest>>,
    pub(crate) on_response: Option<Arc<OnResponse>>,
    pub(crate) on_failure: Option<Arc<OnFailure>>,
}

#[derive(Clone)]
pub(crate) struct ServiceConfig {
    pub(crate) store: SpanStore,
    pub(crate) policy: HeaderPolicy,
    pub(crate) skip: Option<Arc<Rule>>,
    pub(crate) name: Option<Arc<Namer>>,
    pub(crate) failures: FailureClassifier,
    pub(crate) trace_id_header: Option<http::HeaderName>,
    pub(crate) tracing_span: bool,
    pub(crate) sample_rate: Option<Arc<Rate>>,
    pub(crate) hooks: Option<Arc<Hooks>>,
}

/// Runs a user's hook with the request's span current, so that a panic in it never takes
/// the request or the process down: it is caught, recorded on the span as `Panic` (what
/// the span's panic hook does too) and warned about, rate-limited. Not run at all while
/// the thread unwinds from another panic (a second panic there would abort the process).
pub(crate) fn run_hook(span: &Span, hook: &'static str, f: impl FnOnce()) {
    if std::thread::panicking() {
        return;
    }
    let caught = span.in_scope(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    if let Err(payload) = caught {
        crate::context::panic::record_caught(span, &*payload);
        static WARNING: crate::warn::RateLimit = crate::warn::RateLimit::new();
        if let Some(suppressed) = WARNING.check() {
            tracing::warn!(
                target: "tower_opik",
                suppressed,
                "the OpikLayer::{hook} hook panicked: the request goes on, the panic is \
                 recorded on its span"
            );
        }
    }
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("on_request", &self.on_request.is_some())
            .field("on_response", &self.on_response.is_some())
            .field("on_failure", &self.on_failure.is_some())
            .finish()
    }
}
