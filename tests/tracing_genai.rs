//! A real LLM client that emits OpenTelemetry GenAI `tracing` spans, `genai` with its
//! `otel` feature, called from an axum handler behind `OpikLayer` and pointed at a local
//! OpenAI-compatible stand-in (`/v1/chat/completions` on 127.0.0.1, a canned completion
//! with usage): its `chat` span reaches LocalOpik as an `llm` span under the request span,
//! with model, provider, usage, input and output as Opik wants them; a failed call as an
//! error.
//!
//! genai records prompt and answer only when `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`
//! is set, read once per process. The crate forbids `unsafe` (so no `std::env::set_var`),
//! so the test runs itself again as a child process with the variable set.

#![cfg(all(feature = "testing", feature = "tracing", feature = "axum"))]

mod common;

use std::process::Command;

use axum::Json;
use axum::http::StatusCode;
use axum::routing::post;
use genai::adapter::AdapterKind;
use genai::chat::{ChatMessage, ChatRequest};
use genai::resolver::{AuthData, Endpoint, ServiceTargetResolver};
use genai::{Client, ModelIden, ServiceTarget};
use serde_json::{Value, json};
use tower_opik::OpikLayer;
use tower_opik::testing::LocalOpik;
use tower_opik::tracing::OpikTracingLayer;
use tracing_subscriber::prelude::*;

use common::{FLUSH, http_client, serve, store_for};

const CHILD: &str = "TOWER_OPIK_GENAI_CHILD";
const CAPTURE: &str = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT";

#[test]
fn genai_chat_spans_become_llm_spans_under_the_request_span() {
    if std::env::var_os(CHILD).is_none() {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "genai_chat_spans_become_llm_spans_under_the_request_span",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .env(CAPTURE, "true")
            .output()
            .unwrap();
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "the child run failed:\n{text}");
        assert!(text.contains("1 passed"), "the child ran no test:\n{text}");
        return;
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run());
}

/// The OpenAI-compatible stand-in: a canned completion with usage, or a 429 for the model
/// `overloaded`.
async fn completions(Json(request): Json<Value>) -> (StatusCode, Json<Value>) {
    if request["model"] == "overloaded" {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({"error": {"message": "slow down", "type": "rate_limit"}})),
        );
    }
    let answer = json!({
        "id": "chatcmpl-42",
        "object": "chat.completion",
        "created": 1_790_000_000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": "Paris."},
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 21, "completion_tokens": 2, "total_tokens": 23}
    });
    (StatusCode::OK, Json(answer))
}

fn client(llm: std::net::SocketAddr) -> Client {
    let endpoint = Endpoint::from_owned(format!("http://{llm}/v1/"));
    let resolver = ServiceTargetResolver::from_resolver_fn(
        move |target: ServiceTarget| -> Result<ServiceTarget, genai::resolver::Error> {
            Ok(ServiceTarget {
                endpoint: endpoint.clone(),
                auth: AuthData::from_single("test-key"),
                model: ModelIden::new(AdapterKind::OpenAI, target.model.model_name),
            })
        },
    );
    Client::builder()
        .with_service_target_resolver(resolver)
        .build()
        .unwrap()
}

async fn run() {
    let http = http_client();
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let _guard = tracing_subscriber::registry()
        .with(OpikTracingLayer::new())
        .set_default();
    let llm = serve(axum::Router::new().route("/v1/chat/completions", post(completions))).await;
    let genai = client(llm);
    let app = axum::Router::new()
        .route(
            "/ask",
            post(move |model: String| {
                let genai = genai.clone();
                async move {
                    let request = ChatRequest::new(vec![
                        ChatMessage::system("Answer in one word."),
                        ChatMessage::user("Capital of France?"),
                    ]);
                    match genai.exec_chat(model.as_str(), request, None).await {
                        Ok(answer) => answer.first_text().unwrap_or_default().to_owned(),
                        Err(e) => format!("failed: {e}"),
                    }
                }
            }),
        )
        .layer(OpikLayer::new(store.clone()));
    let app = serve(app).await;
    let ask = |model: &'static str| {
        let http = http.clone();
        async move {
            http.post(format!("http://{app}/ask"))
                .body(model)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    assert_eq!(ask("gpt-4o-mini").await, "Paris.");
    assert!(ask("overloaded").await.starts_with("failed"));
    let report = store.flush(FLUSH).await;
    assert!(report.completed && report.stats.failed == 0, "{report}");

    let spans = opik.spans();
    let named = |name: &str| {
        spans
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no span {name}: {spans:#?}"))
    };
    assert_eq!(spans.len(), 4, "two requests, two chat spans: {spans:#?}");
    let chat = named("chat gpt-4o-mini");
    let request = spans
        .iter()
        .find(|s| s["name"] == "POST /ask" && s["id"] == chat["parent_span_id"])
        .expect("the chat span is a child of its request span");
    assert_eq!(chat["trace_id"], request["trace_id"]);
    assert_eq!(chat["type"], "llm");
    assert_eq!(
        chat["model"], "gpt-4o-mini-2024-07-18",
        "the response's model"
    );
    assert_eq!(chat["provider"], "openai");
    assert_eq!(
        chat["usage"],
        json!({"prompt_tokens": 21, "completion_tokens": 2, "total_tokens": 23})
    );
    let input = &chat["input"];
    assert_eq!(
        input["messages"][0]["parts"][0]["content"], "Capital of France?",
        "{input:#}"
    );
    assert_eq!(
        input["system_instructions"][0]["content"], "Answer in one word.",
        "{input:#}"
    );
    let output = &chat["output"];
    assert_eq!(output["messages"][0]["role"], "assistant", "{output:#}");
    assert_eq!(
        output["messages"][0]["parts"][0]["content"], "Paris.",
        "{output:#}"
    );
    let metadata = &chat["metadata"];
    assert_eq!(metadata["gen_ai.operation.name"], "chat");
    assert_eq!(metadata["gen_ai.request.stream"], false);
    assert_eq!(metadata["gen_ai.response.finish_reasons"], json!(["stop"]));
    assert_eq!(metadata["server.address"], "127.0.0.1");
    assert_eq!(metadata["server.port"], llm.port());
    assert!(chat.get("error_info").is_none());
    assert!(
        metadata.get("otel.kind").is_none() && metadata.get("otel.name").is_none(),
        "{metadata:#}"
    );

    let failed = named("chat overloaded");
    assert_eq!(failed["type"], "llm");
    assert_eq!(failed["error_info"]["exception_type"], "429", "{failed:#}");
    assert!(failed.get("usage").is_none());
}
