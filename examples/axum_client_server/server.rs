//! The server service, behind `OpikLayer`: `POST /generate_response` answers in one piece,
//! after a retrieval step (`#[tracing::instrument]`), a prompt step (`#[track]`) and an LLM
//! call (a GenAI `tracing` span); `POST /generate_response/stream` answers as server-sent events,
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
use tracing::Instrument;

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
    // Three ways to make a span, side by side; all three nest under the request span.
    let documents = retrieve(&prompt).await; // `#[tracing::instrument]`
    let messages = build_messages(&prompt, &documents); // `#[track]`
    let answer = fake_llm(&messages).await; // a GenAI `tracing` span, as LLM libraries emit
    span.set_output(json!({"response": answer}));
    Json(json!({"response": answer}))
}

/// The retrieval step, instrumented with `tracing` as most Rust code is: the
/// `OpikTracingLayer` installed in `main` mirrors it into Opik.
#[tracing::instrument(skip_all, fields(query = %query))]
async fn retrieve(query: &str) -> Vec<String> {
    tokio::time::sleep(Duration::from_millis(5)).await; // the "vector store"
    tracing::info!(hits = 2, "retrieved");
    vec![
        "Distributed tracing follows one request across services.".to_owned(),
        "Opik stores LLM traces.".to_owned(),
    ]
}

/// The prompt, with `#[track]` (the Python SDK's `@track`): the arguments are the span's
/// input, the returned messages its output.
#[tower_opik::track(name = "build prompt")]
fn build_messages(question: &str, documents: &[String]) -> Vec<Value> {
    vec![
        json!({"role": "system", "content": format!("Context: {}", documents.join(" "))}),
        json!({"role": "user", "content": question}),
    ]
}

/// Stands in for a call to a model provider through an LLM library that emits the
/// OpenTelemetry GenAI `tracing` span (genai, rig, ...): the layer makes it an `llm` span
/// with its model, provider, usage, input and output.
async fn fake_llm(messages: &[Value]) -> String {
    // The conventions carry messages as a JSON string; the layer parses it.
    let input = serde_json::to_string(messages).unwrap_or_default();
    let llm = tracing::info_span!(
        "chat gpt-4o-mini",
        "gen_ai.operation.name" = "chat",
        "gen_ai.provider.name" = "openai",
        "gen_ai.request.model" = "gpt-4o-mini",
        "gen_ai.input.messages" = input.as_str(),
        "gen_ai.response.model" = tracing::field::Empty,
        "gen_ai.output.messages" = tracing::field::Empty,
        "gen_ai.usage.input_tokens" = tracing::field::Empty,
        "gen_ai.usage.output_tokens" = tracing::field::Empty,
    );
    async {
        tokio::time::sleep(Duration::from_millis(20)).await; // the "model" thinking
        let question = messages
            .last()
            .and_then(|m| m["content"].as_str())
            .unwrap_or_default();
        let answer = format!("A short answer to: {question}");
        let words = |s: &str| s.split_whitespace().count() as u64;
        let span = tracing::Span::current();
        span.record("gen_ai.response.model", "gpt-4o-mini-2024-07-18");
        span.record(
            "gen_ai.output.messages",
            tracing::field::display(json!([{"role": "assistant", "content": answer}])),
        );
        span.record("gen_ai.usage.input_tokens", words(question) * 4 / 3 + 1);
        span.record("gen_ai.usage.output_tokens", words(&answer) * 4 / 3 + 1);
        answer
    }
    .instrument(llm)
    .await
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
