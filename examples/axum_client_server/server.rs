//! The server service, behind `OpikLayer`: `POST /generate_response` answers in one piece
//! from a nested `llm` span; `POST /generate_response/stream` answers as server-sent events,
//! one per token, from an `llm` span that records the time to first token and the whole
//! answer when the stream ends.

use std::borrow::Cow;
use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::response::sse::{Event, Sse};
use axum::routing::post;
use futures_util::{Stream, StreamExt};
use serde_json::{Value, json};
use tower_opik::server::OpikSpan;
use tower_opik::stream::StreamChunk;
use tower_opik::{OpikLayer, SpanStore, SpanType, Usage, current_span};

use crate::{FLUSH_TIMEOUT, Result, shutdown_signal};

/// The router: two routes, traced.
pub(crate) fn app(store: SpanStore) -> Router {
    Router::new()
        .route("/generate_response", post(generate_response))
        .route("/generate_response/stream", post(stream_response))
        .layer(OpikLayer::new(store))
}

/// One streamed chunk of the fake model: a token, and on the last chunk the usage (as
/// OpenAI and Anthropic send it).
struct Chunk {
    token: String,
    usage: Option<Usage>,
}

impl StreamChunk for Chunk {
    fn chunk_text(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(&self.token))
    }
    fn chunk_usage(&self) -> Option<Usage> {
        self.usage.clone()
    }
}

/// Streams the answer: the `llm` span stays open until the last event is sent, and the
/// request span ends after it.
async fn stream_response(
    OpikSpan(span): OpikSpan,
    Json(body): Json<Value>,
) -> Sse<impl Stream<Item = std::result::Result<Event, Infallible>>> {
    let prompt = body["prompt"].as_str().unwrap_or_default().to_owned();
    span.set_input(json!({"prompt": prompt, "stream": true}));
    let llm = current_span().child_of_type("llm call (streamed)", SpanType::Llm);
    llm.set_model("gpt-4o-mini");
    llm.set_provider("openai");
    llm.set_input(json!({"messages": [{"role": "user", "content": prompt}]}));
    let answer = format!("A short streamed answer to: {prompt}");
    let tokens: Vec<String> = answer.split_inclusive(' ').map(str::to_owned).collect();
    let count = tokens.len();
    let prompt_tokens = prompt.split_whitespace().count() as u32 * 4 / 3 + 1;
    let chunks = futures_util::stream::iter(tokens.into_iter().enumerate()).then(
        move |(i, token)| async move {
            tokio::time::sleep(Duration::from_millis(3)).await; // the "model" producing a token
            let usage = (i + 1 == count).then(|| Usage::tokens(prompt_tokens, count as u32));
            Chunk { token, usage }
        },
    );
    let events = llm
        .track_stream(chunks)
        .map(|chunk| Ok(Event::default().data(chunk.token)));
    Sse::new(events)
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
