//! Ends the request span exactly once, whoever gets there first: the response future (on an
//! inner error or when dropped before the response), the response body (at its end, on an
//! error, or when dropped early).

use std::sync::Arc;

use http::HeaderMap;

use super::config::{Hooks, run_hook};

use crate::classify::FailureClassifier;
use crate::record::ErrorInfo;
use crate::span::Span;

/// Owns the request span until it is ended. Dropping it unended records a cancellation.
#[derive(Debug)]
pub(crate) struct SpanGuard {
    span: Span,
    grpc: bool,
    /// A HEAD request: hyper sends no body, whatever the service returns.
    head: bool,
    /// What a drop before the end means at this point.
    phase: Cancelled,
    failures: FailureClassifier,
    /// Where to answer the trace id, when asked.
    pub(crate) trace_id_header: Option<http::HeaderName>,
    /// The `tracing` span carrying the ids for logs, when asked.
    pub(crate) log_span: Option<tracing::Span>,
    /// The user's hooks, when any is set.
    pub(crate) hooks: Option<Arc<Hooks>>,
}

/// Why a request ended without a normal end of response.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Cancelled {
    /// The response future was dropped before the inner service answered.
    BeforeResponse,
    /// The response body was dropped before its end.
    BodyDropped,
}

impl SpanGuard {
    pub(crate) fn new(span: Span, grpc: bool, head: bool, failures: FailureClassifier) -> Self {
        Self {
            span,
            grpc,
            head,
            phase: Cancelled::BeforeResponse,
            failures,
            trace_id_header: None,
            log_span: None,
            hooks: None,
        }
    }

    /// Whether the response has no body on the wire (HEAD, 1xx, 204, 304): the server will
    /// drop the body without polling it, so the response is complete at its head.
    pub(crate) fn bodyless(&self, status: http::StatusCode) -> bool {
        self.head
            || status.is_informational()
            || status == http::StatusCode::NO_CONTENT
            || status == http::StatusCode::NOT_MODIFIED
    }

    pub(crate) fn span(&self) -> &Span {
        &self.span
    }

    /// Records the status line (and, for gRPC, a trailers-only `grpc-status`).
    pub(crate) fn on_response(&mut self, status: http::StatusCode, headers: &HeaderMap) {
        self.phase = Cancelled::BodyDropped;
        self.span
            .update_request(|r| r.status = Some(status.as_u16()));
        // A panic turned into this answer by a `CatchPanicLayer` inside the layer, or an
        // error the handler recorded, says more than the status: it wins.
        let panic = if status.is_server_error() {
            crate::context::panic::take_recent(&self.span)
        } else {
            None
        };
        if let Some(panic) = panic {
            self.span.set_error_unless_set(panic);
        } else if self.failures.is_http_failure(status) {
            let kind = if status.is_server_error() {
                "HttpServerError"
            } else {
                "HttpStatusError"
            };
            self.span.set_error_unless_set(ErrorInfo::new(
                kind,
                format!("the service answered {status}"),
            ));
        }
        // A gRPC request answered with something else (a proxy's or a fallback's page) has
        // no gRPC status to read, whatever its headers or trailers say.
        self.grpc = self.grpc && crate::grpc::is_grpc(headers);
        if self.grpc {
            self.on_grpc_status(headers);
        }
    }

    /// Reads `grpc-status` / `grpc-message` from headers or trailers (only on a gRPC
    /// exchange).
    pub(crate) fn on_grpc_status(&self, map: &HeaderMap) {
        if !self.grpc {
            return;
        }
        let Some(code) = crate::grpc::status_code(map) else {
            return;
        };
        self.span.update_request(|r| r.grpc_status = Some(code));
        if self.failures.is_grpc_failure(code) {
            self.span
                .set_error_unless_set(crate::grpc::status_error(code, map));
        }
    }

    /// Records an error from the inner service or the body.
    pub(crate) fn on_error(&self, kind: &str, error: &dyn std::fmt::Display) {
        self.span.set_error(ErrorInfo::new(kind, error.to_string()));
    }

    /// Runs the user's `on_response` hook with the response head.
    pub(crate) fn response_hook(&self, parts: &http::response::Parts) {
        if let Some(hook) = self.hooks.as_ref().and_then(|h| h.on_response.as_ref()) {
            run_hook(&self.span, "on_response", || hook(parts, &self.span));
        }
    }

    /// Records a panic caught while polling the inner future or body, and ends the span.
    pub(crate) fn on_panic(self, payload: &(dyn std::any::Any + Send)) {
        crate::context::panic::record_caught(&self.span, payload);
        self.end();
    }

    /// Ends the span now (the user's `on_failure` hook first, when it ends with an error).
    pub(crate) fn end(&self) {
        if let Some(hook) = self.hooks.as_ref().and_then(|h| h.on_failure.as_ref())
            && let Some(error) = self.span.error_info()
        {
            run_hook(&self.span, "on_failure", || hook(&error, &self.span));
        }
        self.span.end();
    }

    fn cancel(&self) {
        if !self.span.is_recording() {
            return;
        }
        let (kind, message) = match self.phase {
            Cancelled::BeforeResponse => (
                "Cancelled",
                "the request was cancelled before the service answered",
            ),
            Cancelled::BodyDropped => (
                "ResponseIncomplete",
                "the response body was dropped before its end",
            ),
        };
        self.span.set_metadata(crate::stream::CANCELLED_KEY, true);
        self.span.set_error(ErrorInfo::new(kind, message));
        self.end();
    }
}

impl Drop for SpanGuard {
    fn drop(&mut self) {
        self.cancel();
    }
}
