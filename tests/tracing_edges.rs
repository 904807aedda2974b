//! Edges of the `tracing` layer found by a new user's trial: a GenAI span with nowhere to
//! go is counted, and an ERROR event of an unmirrored descendant (a failed attempt that a
//! retry then recovered) is not the mirrored ancestor's error.

#![cfg(all(feature = "testing", feature = "tracing"))]

mod common;

use tower_opik::OpikFutureExt;
use tower_opik::testing::LocalOpik;
use tower_opik::tracing::OpikTracingLayer;
use tracing::Instrument;
use tracing_subscriber::prelude::*;

use common::{FLUSH, store_for};

#[tokio::test]
async fn a_genai_span_with_no_opik_parent_is_counted_as_lost() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let _guard = tracing_subscriber::registry()
        .with(OpikTracingLayer::new())
        .set_default();
    let before = store.stats().no_current_span;
    // A plain span with no parent is not ours: not counted.
    tracing::info_span!("plain").in_scope(|| {});
    assert_eq!(store.stats().no_current_span, before);
    // An LLM call outside any request (no Opik parent, no new traces configured).
    tracing::info_span!("chat", "gen_ai.operation.name" = "chat").in_scope(|| {});
    assert!(store.stats().no_current_span > before, "{}", store.stats());
    store.flush(FLUSH).await;
    assert!(opik.spans().is_empty());
}

#[tokio::test]
async fn an_error_event_of_an_unmirrored_retry_attempt_is_not_the_llm_spans_error() {
    #[tracing::instrument(err)]
    async fn attempt(n: u32) -> Result<&'static str, String> {
        if n == 0 {
            Err("429 rate limited".to_owned())
        } else {
            Ok("answer")
        }
    }

    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let _guard = tracing_subscriber::registry()
        .with(OpikTracingLayer::new())
        .set_default();
    let request = store.root_span("request");
    let answer = async {
        let llm = tracing::info_span!("chat", "gen_ai.operation.name" = "chat");
        async {
            for n in 0.. {
                if let Ok(answer) = attempt(n).await {
                    return answer;
                }
            }
            unreachable!()
        }
        .instrument(llm)
        .await
    }
    .in_span(request.clone())
    .await;
    assert_eq!(answer, "answer");
    // An ERROR event in the LLM span itself is its error.
    async {
        let failed = tracing::info_span!("failed chat", "gen_ai.operation.name" = "chat");
        failed.in_scope(|| tracing::error!(error = "model overloaded", "the call failed"));
    }
    .in_span(request.clone())
    .await;
    request.end();
    store.flush(FLUSH).await;
    let spans = opik.spans();
    let chat = spans.iter().find(|s| s["name"] == "chat").unwrap();
    assert!(chat.get("error_info").is_none(), "{chat:#}");
    // The failed attempt is still there, among the events.
    let events = chat["metadata"]["tracing.events"].to_string();
    assert!(events.contains("429 rate limited"), "{chat:#}");
    let failed = spans.iter().find(|s| s["name"] == "failed chat").unwrap();
    assert_eq!(
        failed["error_info"]["message"], "model overloaded",
        "{failed:#}"
    );
}
