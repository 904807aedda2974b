//! The server service: `POST /generate_response` behind `OpikLayer`, with a nested `llm` span.

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::routing::post;
use serde_json::{Value, json};
use tower_opik::server::OpikSpan;
use tower_opik::{OpikLayer, SpanStore, SpanType, Usage, current_span};

use crate::{FLUSH_TIMEOUT, Result, shutdown_signal};

/// The router: one route, traced.
pub(crate) fn app(store: SpanStore) -> Router {
    Router::new()
        .route("/generate_response", post(generate_response))
        .layer(OpikLayer::new(store))
}

async fn generate_response(OpikSpan(span): OpikSpan, Json(body): Json<Value>) -> Json<Value> {
    let prompt = body["prompt"].as_str().unwrap_or_default().to_owned();
    span.set_input(json!({"prompt": prompt}));
    let answer = fake_llm(&prompt).await;
    span.set_output(json!({"response": answer}));
    Json(json!({"response": answer}))
}

/// Stands in for a call to a model provider; records it as an `llm` span.
async fn fake_llm(prompt: &str) -> String {
    let llm = current_span().child_of_type("llm call", SpanType::Llm);
    llm.set_model("gpt-4o-mini");
    llm.set_provider("openai");
    llm.set_input(json!({"messages": [{"role": "user", "content": prompt}]}));
    tokio::time::sleep(Duration::from_millis(20)).await; // the "model" thinking
    let answer = format!("A short answer to: {prompt}");
    llm.mark_first_token();
    let words = |s: &str| s.split_whitespace().count() as u32;
    llm.set_usage(Usage::tokens(
        words(prompt) * 4 / 3 + 1,
        words(&answer) * 4 / 3 + 1,
    ));
    llm.set_total_cost(0.000_042);
    llm.set_output(json!({"content": answer}));
    llm.end();
    answer
}

/// The `server` mode: serves until Ctrl-C / SIGTERM, then delivers its spans.
pub(crate) async fn run(addr: &str) -> Result {
    let store = SpanStore::from_env()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!(
        "server service listens on http://{}",
        listener.local_addr()?
    );
    axum::serve(listener, app(store.clone()))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    let report = store.shutdown(FLUSH_TIMEOUT).await;
    println!("server store: {report}");
    Ok(())
}
