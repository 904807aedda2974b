//! The client service: starts the trace and calls the server through the middleware.

use futures_util::StreamExt;
use reqwest_middleware::ClientBuilder;
use serde_json::{Value, json};
use tower_opik::client::OpikMiddleware;
use tower_opik::{OpikFutureExt, SpanStore};
use uuid::Uuid;

use crate::{FLUSH_TIMEOUT, Result};

/// One call inside a new trace; returns the trace id.
pub(crate) async fn call(store: &SpanStore, server_url: &str, prompt: &str) -> Result<Uuid> {
    let http = ClientBuilder::new(reqwest::Client::new())
        .with(OpikMiddleware::new())
        .build();
    let span = store.root_span("client: ask");
    span.set_input(json!({"prompt": prompt}));
    let url = format!("{}/generate_response", server_url.trim_end_matches('/'));
    let answer: Value = async {
        let response = http
            .post(&url)
            .json(&json!({"prompt": prompt}))
            .send()
            .await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        if !status.is_success() {
            return Err(format!("the server answered {status}").into());
        }
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(serde_json::from_slice(&bytes)?)
    }
    .in_span(span.clone())
    .await
    .inspect_err(|e| span.set_error(tower_opik::ErrorInfo::new("ClientError", e.to_string())))?;
    span.set_output(answer.clone());
    span.end();
    tracing::debug!("server answered: {}", answer["response"]);
    span.trace_id()
        .ok_or_else(|| "tracing is disabled (OPIK_TRACK_DISABLE)".into())
}

/// One streamed call inside a new trace: reads the server-sent events as they come and
/// joins their data; returns the trace id.
pub(crate) async fn call_stream(store: &SpanStore, server_url: &str, prompt: &str) -> Result<Uuid> {
    let http = ClientBuilder::new(reqwest::Client::new())
        .with(OpikMiddleware::new())
        .build();
    let span = store.root_span("client: ask (streamed)");
    span.set_input(json!({"prompt": prompt}));
    let url = format!(
        "{}/generate_response/stream",
        server_url.trim_end_matches('/')
    );
    let answer = async {
        let response = http
            .post(&url)
            .json(&json!({"prompt": prompt}))
            .send()
            .await?
            .error_for_status()?;
        let mut events = response.bytes_stream();
        let mut text = String::new();
        let mut answer = String::new();
        while let Some(bytes) = events.next().await {
            text.push_str(&String::from_utf8_lossy(&bytes?));
            // Whole events only: `data: <token>` lines, an empty line between events.
            while let Some(end) = text.find("\n\n") {
                for line in text[..end].lines() {
                    if let Some(data) = line.strip_prefix("data: ") {
                        answer.push_str(data);
                    }
                }
                text.drain(..end + 2);
            }
        }
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(answer)
    }
    .in_span(span.clone())
    .await
    .inspect_err(|e| span.set_error(tower_opik::ErrorInfo::new("ClientError", e.to_string())))?;
    span.set_output(json!({"response": answer}));
    span.end();
    tracing::debug!("server streamed: {answer}");
    span.trace_id()
        .ok_or_else(|| "tracing is disabled (OPIK_TRACK_DISABLE)".into())
}

/// The `client` mode: one call, flush, exit.
pub(crate) async fn run(server_url: &str, prompt: &str) -> Result {
    let store = SpanStore::from_env()?;
    let trace_id = call(&store, server_url, prompt).await;
    let report = store.shutdown(FLUSH_TIMEOUT).await;
    println!("client store: {report}");
    println!("trace id: {}", trace_id?);
    if !report.completed || report.stats.failed + report.stats.dropped > 0 {
        return Err("spans were not delivered".into());
    }
    Ok(())
}
