//! `OpikSpanProcessor`: carries Opik ids from attached spans to all their descendants.

use std::time::Duration;

use opentelemetry::Context;
use opentelemetry::baggage::BaggageExt;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};

use super::attach::attach;
use super::registry;
use crate::context::current_span;
use crate::headers::{
    BAGGAGE_PARENT_SPAN_ID, BAGGAGE_SPAN_ID, BAGGAGE_TRACE_ID, DistributedHeaders,
    PARENT_SPAN_ID_HEADER, TRACE_ID_HEADER,
};
use crate::warn::RateLimit;

/// Register it on the tracer provider (beside the OTLP exporter): every span started under an
/// attached span gets the same `opik.trace_id`, a fresh `opik.span_id`, and
/// `opik.parent_span_id` = its parent's `opik.span_id`. It looks for the parent's ids in this
/// order: the parent OTel span (remembered, in bounded memory, since a processor cannot read
/// its parent's attributes); then W3C baggage (`opik.trace_id` + `opik.span_id`); then, only
/// when neither carries any Opik signal, tower-opik's current span, so OTel spans opened
/// in an `OpikLayer` handler nest under the request span. Spans with no Opik parent are
/// left untouched; a partial or invalid signal leaves the span standalone, with a warning.
///
/// ```
/// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
///     .with_span_processor(tower_opik::otel::OpikSpanProcessor::new())
///     .build();
/// ```
#[derive(Debug, Default)]
pub struct OpikSpanProcessor {
    _private: (),
}

static PARTIAL_WARNING: RateLimit = RateLimit::new();

impl OpikSpanProcessor {
    /// A processor.
    ///
    /// ```
    /// let p = tower_opik::otel::OpikSpanProcessor::new();
    /// ```
    pub fn new() -> Self {
        Self::default()
    }
}

impl SpanProcessor for OpikSpanProcessor {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        // 1. The parent OTel span, if it is attached.
        let parent = cx.span().span_context().clone();
        if parent.is_valid()
            && let Some(ids) = registry::get(parent.span_id())
        {
            attach(span, ids.trace_id, Some(ids.span_id));
            return;
        }
        // 2. Baggage.
        let baggage = cx.baggage();
        let trace = baggage.get(BAGGAGE_TRACE_ID).map(|v| v.as_str().to_owned());
        let parent_id = baggage
            .get(BAGGAGE_SPAN_ID)
            .or_else(|| baggage.get(BAGGAGE_PARENT_SPAN_ID))
            .map(|v| v.as_str().to_owned());
        if trace.is_some() || parent_id.is_some() {
            let found = DistributedHeaders::extract_with(|key| match key {
                TRACE_ID_HEADER => trace.as_deref(),
                PARENT_SPAN_ID_HEADER => parent_id.as_deref(),
                _ => None,
            });
            match found.headers {
                Some(ids) if ids.parent_span_id().is_some() => {
                    attach(span, ids.trace_id(), ids.parent_span_id());
                }
                _ => {
                    if let Some(suppressed) = PARTIAL_WARNING.check() {
                        tracing::warn!(
                            target: "tower_opik",
                            suppressed,
                            "partial or invalid Opik ids in baggage: the OTel span stays standalone"
                        );
                    }
                }
            }
            return;
        }
        // 3. tower-opik's own current span.
        if let Some(ids) = current_span().distributed_headers() {
            attach(span, ids.trace_id(), ids.parent_span_id());
        }
    }

    fn on_end(&self, span: SpanData) {
        registry::remove(span.span_context.span_id());
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}
