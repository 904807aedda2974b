//! What an [`OpikService`](super::OpikService) does with each request: the options
//! [`OpikLayer`](super::OpikLayer) sets, shared by every service it makes. The service
//! owns it; the layer only builds it (arrows: layer → service → config).

use std::borrow::Cow;
use std::sync::Arc;

use super::policy::HeaderPolicy;
use super::request::RequestHead;
use crate::classify::FailureClassifier;
use crate::store::SpanStore;

pub(crate) type Rule = dyn Fn(&RequestHead<'_>) -> bool + Send + Sync;
pub(crate) type Namer = dyn Fn(&RequestHead<'_>) -> Cow<'static, str> + Send + Sync;
pub(crate) type Rate = dyn Fn(&RequestHead<'_>) -> f64 + Send + Sync;

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
}
