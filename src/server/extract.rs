//! The axum extractor for the request span.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use http::request::Parts;

use crate::span::Span;

/// The request span, for an axum handler: set its input, output, metadata, tags or the
/// trace's thread id, or open child spans. Outside an [`OpikLayer`](super::OpikLayer) (or
/// with tracing off) it holds [`Span::none`], so handlers never fail on it.
///
/// ```
/// use axum::{Router, routing::post};
/// use tower_opik::{OpikLayer, SpanStore, SpanType, server::OpikSpan};
///
/// async fn generate(OpikSpan(span): OpikSpan, body: String) -> String {
///     span.set_input(serde_json::json!({"prompt": body}));
///     let llm = span.child_of_type("completion", SpanType::Llm);
///     llm.end();
///     span.set_output("ok");
///     "ok".to_owned()
/// }
///
/// let app: Router = Router::new()
///     .route("/generate", post(generate))
///     .layer(OpikLayer::new(SpanStore::disabled()));
/// ```
#[derive(Clone, Debug, Default)]
pub struct OpikSpan(pub Span);

impl<S: Send + Sync> FromRequestParts<S> for OpikSpan {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(Self(
            parts.extensions.get::<Span>().cloned().unwrap_or_default(),
        ))
    }
}
