//! `OpikTracingLayer`: `tracing` spans mirrored as Opik spans, checked by what reaches
//! LocalOpik over 127.0.0.1. The mapping table of `tower_opik::tracing`, row by row; the
//! span tree across both APIs (and through a real axum server behind `OpikLayer`);
//! filters; fields recorded later; errors; the enter/exit context.

#![cfg(all(feature = "testing", feature = "tracing", feature = "axum"))]

mod common;

use std::time::Duration;

use serde_json::{Value, json};
use tower_opik::testing::LocalOpik;
use tower_opik::tracing::{GenAiSpans, Mirror, OpikTracingLayer};
use tower_opik::{OpikFutureExt, OpikLayer, Span, Timestamp, current_span};
use tracing::field::Empty;
use tracing_subscriber::filter::{FilterExt, Targets};
use tracing_subscriber::layer::Layer;
use tracing_subscriber::prelude::*;

use common::tracing_env::env;
use common::{FLUSH, http_client, serve, store_for};

/// This test crate's own target (the module path of its spans).
const TARGET: &str = "tracing_layer";

fn id(s: &Span) -> Value {
    json!(s.id().unwrap().to_string())
}

#[tokio::test]
async fn every_row_of_the_mapping_table() {
    let env = env(OpikTracingLayer::new()).await;
    let root = env.store.root_span("root");
    root.in_scope(|| {
        // model: the response's wins over the request's.
        tracing::info_span!(
            "model",
            "gen_ai.request.model" = "gpt-4o",
            "gen_ai.response.model" = "gpt-4o-2024-08-06"
        )
        .in_scope(|| {});
        tracing::info_span!("request model", "gen_ai.request.model" = "gpt-4o").in_scope(|| {});
        // provider, normalised; gen_ai.provider.name wins over gen_ai.system.
        tracing::info_span!("bedrock", "gen_ai.provider.name" = "aws.bedrock").in_scope(|| {});
        tracing::info_span!("vertex", "gen_ai.system" = "gcp.vertex_ai").in_scope(|| {});
        tracing::info_span!(
            "both",
            "gen_ai.provider.name" = "az.ai.openai",
            "gen_ai.system" = "openai"
        )
        .in_scope(|| {});
        // usage under OpenAI's names; total computed when absent; others kept.
        tracing::info_span!(
            "usage",
            "gen_ai.usage.input_tokens" = 12,
            "gen_ai.usage.output_tokens" = 30u64,
            "gen_ai.usage.cache_read.input_tokens" = 5
        )
        .in_scope(|| {});
        tracing::info_span!(
            "usage with total",
            "gen_ai.usage.input_tokens" = 1,
            "gen_ai.usage.total_tokens" = 50
        )
        .in_scope(|| {});
        // input and output (JSON strings parsed).
        tracing::info_span!(
            "io",
            "gen_ai.input.messages" =
                r#"[{"role":"user","parts":[{"type":"text","content":"hi"}]}]"#,
            "gen_ai.system_instructions" = r#"[{"type":"text","content":"be brief"}]"#,
            "gen_ai.output.messages" =
                r#"[{"role":"assistant","parts":[{"type":"text","content":"hello"}]}]"#
        )
        .in_scope(|| {});
        tracing::info_span!(
            "old io",
            "gen_ai.prompt" = "say hi",
            "gen_ai.completion" = "hi"
        )
        .in_scope(|| {});
        // operation → type (and metadata).
        tracing::info_span!("chat", "gen_ai.operation.name" = "chat").in_scope(|| {});
        tracing::info_span!("embed", "gen_ai.operation.name" = "embeddings").in_scope(|| {});
        tracing::info_span!("tool", "gen_ai.operation.name" = "execute_tool").in_scope(|| {});
        tracing::info_span!("agent", "gen_ai.operation.name" = "invoke_agent").in_scope(|| {});
        // conversation id on a span that does not own its trace: metadata.
        tracing::info_span!("conversation", "gen_ai.conversation.id" = "conv-1").in_scope(|| {});
        // opik.* fields.
        tracing::info_span!(
            "opik fields",
            "opik.type" = "guardrail",
            "opik.tags" = "a, b",
            "opik.metadata.team" = "search",
            "opik.input" = r#"{"question":"why?"}"#,
            "opik.output" = "because"
        )
        .in_scope(|| {});
        tracing::info_span!("tags json", "opik.tags" = r#"["x","y"]"#).in_scope(|| {});
        // names.
        tracing::info_span!(
            "renamed by otel",
            "otel.name" = "chat gpt-4o",
            "gen_ai.system" = "openai"
        )
        .in_scope(|| {});
        tracing::info_span!("renamed", "opik.name" = "by opik", "otel.name" = "not this")
            .in_scope(|| {});
        // other fields: metadata (never input), internal fields never sent, events.
        tracing::info_span!(
            "other",
            "opik.type" = "general",
            "gen_ai.request.temperature" = 0.5,
            "gen_ai.response.finish_reasons" = r#"["stop"]"#,
            user = "ann",
            code.filepath = "src/x.rs",
            thread.id = 3,
            busy_ns = 1,
            idle_ns = 2,
            otel.kind = "client"
        )
        .in_scope(|| {
            tracing::info!(step = 1, "first step");
            tracing::warn!("second step");
        });
    });
    root.end();
    env.flush().await;
    let root_id = id(&root);

    let s = env.span("model");
    assert_eq!(
        (&s["model"], &s["type"]),
        (&json!("gpt-4o-2024-08-06"), &json!("llm"))
    );
    assert_eq!(s["parent_span_id"], root_id, "under the current Opik span");
    assert_eq!(env.span("request model")["model"], "gpt-4o");
    assert_eq!(env.span("bedrock")["provider"], "bedrock");
    assert_eq!(
        env.span("bedrock")["type"],
        "llm",
        "a provider makes an llm span"
    );
    assert_eq!(env.span("vertex")["provider"], "google_vertexai");
    assert_eq!(env.span("both")["provider"], "azure");
    assert_eq!(
        env.span("usage")["usage"],
        json!({"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42, "cache_read.input_tokens": 5})
    );
    assert_eq!(
        env.span("usage with total")["usage"],
        json!({"prompt_tokens": 1, "total_tokens": 50})
    );
    let io = env.span("io");
    assert_eq!(
        io["input"],
        json!({
            "messages": [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}],
            "system_instructions": [{"type": "text", "content": "be brief"}],
        })
    );
    assert_eq!(
        io["output"],
        json!({"messages": [{"role": "assistant", "parts": [{"type": "text", "content": "hello"}]}]})
    );
    let old = env.span("old io");
    assert_eq!(old["input"], json!({"prompt": "say hi"}));
    assert_eq!(old["output"], json!({"completion": "hi"}));
    assert_eq!(env.span("chat")["type"], "llm");
    assert_eq!(
        env.span("chat")["metadata"]["gen_ai.operation.name"],
        "chat"
    );
    assert_eq!(env.span("embed")["type"], "llm");
    assert_eq!(env.span("tool")["type"], "tool");
    assert_eq!(env.span("agent")["type"], "general");
    assert_eq!(
        env.span("conversation")["metadata"]["gen_ai.conversation.id"],
        "conv-1"
    );
    let o = env.span("opik fields");
    assert_eq!(o["type"], "guardrail");
    assert_eq!(o["tags"], json!(["a", "b"]));
    assert_eq!(o["metadata"], json!({"team": "search"}));
    assert_eq!(o["input"], json!({"question": "why?"}));
    assert_eq!(o["output"], json!({"output": "because"}));
    assert_eq!(env.span("tags json")["tags"], json!(["x", "y"]));
    assert_eq!(env.span("chat gpt-4o")["provider"], "openai");
    assert!(env.has_span("by opik") && !env.has_span("renamed") && !env.has_span("not this"));
    let other = env.span("other");
    assert!(other.get("input").is_none(), "never input: {other:#}");
    let metadata = other["metadata"].as_object().unwrap();
    assert_eq!(metadata["gen_ai.request.temperature"], 0.5);
    assert_eq!(metadata["gen_ai.response.finish_reasons"], json!(["stop"]));
    assert_eq!(metadata["user"], "ann");
    for internal in [
        "code.filepath",
        "thread.id",
        "busy_ns",
        "idle_ns",
        "otel.kind",
    ] {
        assert!(
            !metadata.contains_key(internal),
            "{internal} sent: {other:#}"
        );
    }
    let events = metadata["tracing.events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{other:#}");
    assert_eq!(events[0]["message"], "first step");
    assert_eq!(events[0]["level"], "INFO");
    assert_eq!(events[0]["fields"], json!({"step": 1}));
    assert_eq!(events[1]["level"], "WARN");
    assert!(common::is_opik_timestamp(
        events[1]["time"].as_str().unwrap()
    ));
    assert!(other.get("error_info").is_none());
}

#[tokio::test]
async fn a_span_that_starts_its_trace_writes_the_conversation_as_the_thread() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let _guard = tracing_subscriber::registry()
        .with(
            OpikTracingLayer::builder()
                .start_traces_in(store.clone())
                .build(),
        )
        .set_default();
    tracing::info_span!("conversation turn", "gen_ai.conversation.id" = "conv-7").in_scope(|| {
        tracing::info_span!("step", "opik.type" = "tool").in_scope(|| {});
    });
    // A span of no Opik context and no mirrored ancestor, in a layer without new traces:
    // not sent.
    let report = store.flush(FLUSH).await;
    assert_eq!(report.stats.sent, 3, "{report}"); // two spans and the trace
    let spans = opik.spans();
    let turn = spans
        .iter()
        .find(|s| s["name"] == "conversation turn")
        .unwrap();
    let step = spans.iter().find(|s| s["name"] == "step").unwrap();
    assert_eq!(step["parent_span_id"], turn["id"]);
    let trace = opik.trace(turn["trace_id"].as_str().unwrap()).unwrap();
    assert_eq!(trace["thread_id"], "conv-7");
    assert!(turn["metadata"].get("gen_ai.conversation.id").is_none());
}

#[tokio::test]
async fn without_an_opik_parent_or_new_traces_nothing_is_sent() {
    let env = env(OpikTracingLayer::new()).await;
    tracing::info_span!("orphan", "gen_ai.operation.name" = "chat").in_scope(|| {
        assert!(current_span().is_none());
    });
    let report = env.store.flush(FLUSH).await;
    assert_eq!(report.stats.recorded, 0, "{report}");
}

#[tokio::test]
async fn fields_recorded_later_count_and_times_come_from_creation_and_close() {
    let env = env(OpikTracingLayer::new()).await;
    let root = env.store.root_span("root");
    let before = Timestamp::now().to_string();
    let span = root.in_scope(|| {
        tracing::info_span!(
            "late",
            "gen_ai.operation.name" = "chat",
            "gen_ai.response.model" = Empty,
            "gen_ai.usage.input_tokens" = Empty,
            "gen_ai.usage.output_tokens" = Empty,
            "gen_ai.output.messages" = Empty,
            "opik.name" = Empty,
        )
    });
    std::thread::sleep(Duration::from_millis(15));
    let first_enter = Timestamp::now().to_string();
    span.in_scope(|| {});
    span.record("gen_ai.response.model", "gpt-4o-mini");
    span.record("gen_ai.usage.input_tokens", 7);
    span.in_scope(|| {});
    span.record("gen_ai.usage.output_tokens", 3);
    span.record("gen_ai.output.messages", r#"[{"role":"assistant"}]"#);
    span.record("opik.name", "late chat");
    let last_exit = Timestamp::now().to_string();
    std::thread::sleep(Duration::from_millis(15));
    let before_close = Timestamp::now().to_string();
    drop(span);
    let after = Timestamp::now().to_string();
    root.end();
    env.flush().await;
    let s = env.span("late chat");
    assert_eq!(s["model"], "gpt-4o-mini");
    assert_eq!(
        s["usage"],
        json!({"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10})
    );
    assert_eq!(s["output"], json!({"messages": [{"role": "assistant"}]}));
    let (start, end) = (
        s["start_time"].as_str().unwrap(),
        s["end_time"].as_str().unwrap(),
    );
    assert!(
        before.as_str() <= start && start < first_enter.as_str(),
        "{before} {start} {first_enter}"
    );
    assert!(
        last_exit.as_str() < before_close.as_str()
            && before_close.as_str() <= end
            && end <= after.as_str(),
        "{last_exit} {before_close} {end} {after}"
    );
}

#[tokio::test]
async fn errors_from_fields_events_and_instrument_err() {
    #[tracing::instrument(err, fields(opik.type = "tool"))]
    fn lookup(key: &str) -> Result<u32, std::io::Error> {
        Err(std::io::Error::other(format!("no {key}")))
    }

    let env = env(OpikTracingLayer::new()).await;
    let root = env.store.root_span("root");
    root.in_scope(|| {
        let _ = lookup("answer");
        tracing::info_span!("flag", "opik.type" = "general", error = true).in_scope(|| {});
        tracing::info_span!(
            "exception",
            "opik.type" = "general",
            "exception.type" = "TimeoutError",
            "exception.message" = "model did not answer",
            "exception.stacktrace" = "at call_model"
        )
        .in_scope(|| {});
        let genai_style = tracing::info_span!(
            "status",
            "gen_ai.operation.name" = "chat",
            "otel.status_code" = Empty,
            "error.type" = Empty
        );
        genai_style.record("otel.status_code", "error");
        genai_style.record("error.type", "429");
        drop(genai_style);
        tracing::info_span!("event", "opik.type" = "general").in_scope(|| {
            tracing::error!(error.type = "ParseError", "could not parse the answer");
        });
        tracing::info_span!("fine", "opik.type" = "general", error = false).in_scope(|| {
            tracing::warn!(error = "retried", "a warning is no failure");
        });
    });
    root.end();
    env.flush().await;
    let info = |name: &str| env.span(name)["error_info"].clone();
    let lookup = env.span("lookup");
    assert_eq!(lookup["type"], "tool");
    assert_eq!(lookup["error_info"]["exception_type"], "Error");
    assert_eq!(lookup["error_info"]["message"], "no answer");
    assert_eq!(
        lookup["metadata"]["key"], "answer",
        "arguments are metadata"
    );
    assert_eq!(info("flag")["exception_type"], "Error");
    assert_eq!(
        info("exception"),
        json!({"exception_type": "TimeoutError", "message": "model did not answer", "traceback": "at call_model"})
    );
    assert_eq!(info("status")["exception_type"], "429");
    assert_eq!(info("event")["exception_type"], "ParseError");
    assert_eq!(info("event")["message"], "could not parse the answer");
    assert!(env.span("fine").get("error_info").is_none());
}

#[tokio::test]
async fn tracing_then_opik_api_then_tracing_is_one_tree() {
    let env = env(OpikTracingLayer::new()).await;
    let root = env.store.root_span("root");
    root.in_scope(|| {
        let outer = tracing::info_span!("outer", "opik.type" = "general");
        outer.in_scope(|| {
            let middle = current_span().child("middle (Opik API)");
            middle.in_scope(|| {
                tracing::info_span!("inner", "opik.type" = "tool").in_scope(|| {
                    current_span().child("leaf (Opik API)").end();
                });
            });
            middle.end();
            // Back in `outer`: a new span nests under it again, not under `middle`.
            tracing::info_span!("sibling", "opik.type" = "general").in_scope(|| {});
        });
    });
    root.end();
    env.flush().await;
    let [outer, middle, inner, leaf, sibling] = [
        "outer",
        "middle (Opik API)",
        "inner",
        "leaf (Opik API)",
        "sibling",
    ]
    .map(|n| env.span(n));
    assert_eq!(outer["parent_span_id"], id(&root));
    assert_eq!(middle["parent_span_id"], outer["id"]);
    assert_eq!(inner["parent_span_id"], middle["id"]);
    assert_eq!(leaf["parent_span_id"], inner["id"]);
    assert_eq!(sibling["parent_span_id"], outer["id"]);
    let trace = root.trace_id().unwrap().to_string();
    assert!(
        env.opik.spans_of_trace(&trace).len() == 6,
        "{:#?}",
        env.opik.spans()
    );
}

#[tokio::test]
async fn an_unmirrored_span_between_two_mirrored_ones_is_skipped() {
    let env = env(OpikTracingLayer::new()).await;
    let root = env.store.root_span("root");
    root.in_scope(|| {
        tracing::info_span!("genai outer", "gen_ai.operation.name" = "invoke_agent").in_scope(
            || {
                tracing::info_span!("plain").in_scope(|| {
                    tracing::info_span!("genai inner", "gen_ai.operation.name" = "chat")
                        .in_scope(|| {});
                    tracing::info!("an event in an unmirrored span goes to the mirrored ancestor");
                });
            },
        );
    });
    root.end();
    env.flush().await;
    assert!(
        !env.has_span("plain"),
        "GenAi mode mirrors GenAI spans only"
    );
    let outer = env.span("genai outer");
    assert_eq!(env.span("genai inner")["parent_span_id"], outer["id"]);
    assert_eq!(
        outer["metadata"]["tracing.events"][0]["message"],
        "an event in an unmirrored span goes to the mirrored ancestor"
    );
}

#[tokio::test]
async fn filters_select_spans_in_mirror_all() {
    let targets = Targets::new().with_target(TARGET, tracing::Level::INFO);
    let layer = OpikTracingLayer::builder()
        .mirror(Mirror::All)
        .build()
        .with_filter(GenAiSpans.or(targets));
    let env = env(layer).await;
    let root = env.store.root_span("root");
    root.in_scope(|| {
        tracing::info_span!("selected").in_scope(|| {
            tracing::info_span!(target: "noisy_dependency", "filtered out").in_scope(|| {
                tracing::info_span!("grandchild").in_scope(|| {});
                tracing::info_span!(target: "noisy_dependency", "genai in noisy", "gen_ai.system" = "openai")
                    .in_scope(|| {});
            });
            tracing::debug_span!("too verbose").in_scope(|| {});
        });
    });
    root.end();
    env.flush().await;
    assert!(!env.has_span("filtered out") && !env.has_span("too verbose"));
    let selected = env.span("selected");
    assert_eq!(selected["parent_span_id"], id(&root));
    assert_eq!(env.span("grandchild")["parent_span_id"], selected["id"]);
    assert_eq!(
        env.span("genai in noisy")["parent_span_id"],
        selected["id"],
        "GenAiSpans.or(..) keeps GenAI spans of any target"
    );
}

// -- Through a real axum server behind OpikLayer --------------------------------------

/// `OpikLayer` request span → this `#[instrument]` function → `current_span().child(..)`
/// → `info_span!`.
#[tracing::instrument]
async fn answer(question: String) -> String {
    tokio::task::yield_now().await;
    let lookup = current_span().child("lookup (Opik API)");
    async {
        tokio::task::yield_now().await;
        let inner = tracing::info_span!("inner tracing");
        inner.in_scope(|| tracing::info!("looked it up"));
    }
    .in_span(lookup.clone())
    .await;
    lookup.end();
    format!("{question}: 42")
}

#[tokio::test(flavor = "current_thread")]
async fn an_axum_request_nests_instrumented_functions_and_the_opik_api() {
    let targets = Targets::new().with_target(TARGET, tracing::Level::INFO);
    let layer = OpikTracingLayer::builder()
        .mirror(Mirror::All)
        .build()
        .with_filter(targets);
    let env = env(layer).await;
    let app = axum::Router::new()
        .route(
            "/ask",
            axum::routing::post(|body: String| async move { answer(body).await }),
        )
        .layer(OpikLayer::new(env.store.clone()));
    let addr = serve(app).await;
    let resp = http_client()
        .post(format!("http://{addr}/ask"))
        .body("why")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), "why: 42");
    env.flush().await;
    let request = env.span("POST /ask");
    let answer = env.span("answer");
    let lookup = env.span("lookup (Opik API)");
    let inner = env.span("inner tracing");
    assert_eq!(answer["parent_span_id"], request["id"]);
    assert_eq!(lookup["parent_span_id"], answer["id"]);
    assert_eq!(inner["parent_span_id"], lookup["id"]);
    assert_eq!(answer["metadata"]["question"], "why");
    assert_eq!(
        inner["metadata"]["tracing.events"][0]["message"],
        "looked it up"
    );
    let trace = request["trace_id"].as_str().unwrap();
    assert_eq!(env.opik.spans_of_trace(trace).len(), 4);
    let tree = env.opik.trace_tree(trace).unwrap().to_string();
    assert!(tree.contains("inner tracing"), "{tree}");
}
