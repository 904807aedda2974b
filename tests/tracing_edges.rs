//! Edges of the `tracing` layer found by a new user's trial: a GenAI span with nowhere to
//! go is counted, and an ERROR event of an unmirrored descendant (a failed attempt that a
//! retry then recovered) is not the mirrored ancestor's error; explicit parents, roots and
//! `follows_from`; spans exited out of order, entered on two threads, or by two tasks on one.

#![cfg(all(feature = "testing", feature = "tracing"))]

mod common;

use std::sync::{Arc, Barrier};

use serde_json::json;
use tower_opik::testing::LocalOpik;
use tower_opik::tracing::OpikTracingLayer;
use tower_opik::{OpikFutureExt, current_span};
use tracing::Instrument;
use tracing_subscriber::prelude::*;

use common::tracing_env::env;
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

#[tokio::test]
async fn explicit_parents_roots_and_follows_from() {
    let env = env(OpikTracingLayer::new()).await;
    let root = env.store.root_span("root");
    root.in_scope(|| {
        let a = tracing::info_span!("a", "opik.type" = "general");
        let b = tracing::info_span!("b", "opik.type" = "general");
        b.in_scope(|| {
            // Explicit parent: under `a`, although `b` is entered.
            tracing::info_span!(parent: &a, "child of a", "opik.type" = "general").in_scope(|| {});
            // Explicit root: no Opik parent, and this layer starts no traces.
            tracing::info_span!(parent: None, "explicit root", "opik.type" = "general")
                .in_scope(|| {});
        });
        let c = tracing::info_span!("c", "opik.type" = "general");
        c.follows_from(&a);
    });
    root.end();
    env.flush().await;
    let a = env.span("a");
    assert_eq!(env.span("child of a")["parent_span_id"], a["id"]);
    assert!(!env.has_span("explicit root"));
    assert_eq!(
        env.span("c")["metadata"]["tracing.follows_from"],
        json!([{"span_id": a["id"], "trace_id": a["trace_id"]}])
    );
}

#[tokio::test]
async fn exits_out_of_order_and_other_threads_never_leak_a_span() {
    let env = env(OpikTracingLayer::new()).await;
    let root = env.store.root_span("root");
    let (a, b) = root.in_scope(|| {
        (
            tracing::info_span!("a", "opik.type" = "general"),
            tracing::info_span!("b", "opik.type" = "general"),
        )
    });
    root.in_scope(|| {
        let ea = a.clone().entered();
        let a_id = current_span().id();
        let eb = b.clone().entered();
        let b_id = current_span().id();
        assert_ne!(a_id, b_id);
        drop(ea); // not LIFO: `b` is still the innermost
        assert_eq!(current_span().id(), b_id);
        drop(eb);
        assert_eq!(current_span().id(), root.id(), "back to the root");
        // The same span entered on two threads at once: each thread sees it, and nothing
        // stays behind on either.
        let dispatch = tracing::dispatcher::get_default(|d| d.clone());
        let barrier = Arc::new(Barrier::new(2));
        std::thread::scope(|s| {
            for _ in 0..2 {
                let (dispatch, barrier, a) = (dispatch.clone(), barrier.clone(), a.clone());
                s.spawn(move || {
                    tracing::dispatcher::with_default(&dispatch, || {
                        a.in_scope(|| {
                            barrier.wait();
                            assert_eq!(current_span().id(), a_id);
                            barrier.wait();
                        });
                        assert!(current_span().is_none());
                    })
                });
            }
        });
    });
    assert!(current_span().is_none());

    // Two tasks on one thread, each in its own mirrored span (tracing's `Instrument`):
    // neither sees the other's.
    let tasks: Vec<_> = (0..2)
        .map(|i| {
            let span = root.in_scope(|| tracing::info_span!("task", "opik.type" = "general", i));
            let mirrored = span.in_scope(current_span);
            tokio::spawn(
                async move {
                    for _ in 0..5 {
                        assert_eq!(current_span().id(), mirrored.id());
                        tokio::task::yield_now().await;
                    }
                }
                .instrument(span),
            )
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert!(current_span().is_none());
    drop((a, b));
    root.end();
    env.flush().await;
    assert_eq!(env.opik.spans().len(), 5);
}
