//! Spans and the current-span context, checked by what reaches LocalOpik.

#![cfg(feature = "testing")]

mod common;

use std::time::Duration;

use serde_json::json;
use tower_opik::testing::LocalOpik;
use tower_opik::{DistributedHeaders, OpikFutureExt, Span, current_span};

use common::{FLUSH, store_for};

#[tokio::test]
async fn a_span_joining_a_remote_trace_writes_spans_only() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let remote = DistributedHeaders::new(tower_opik::id::new_id(), Some(tower_opik::id::new_id()));
    let span = store.span_with_parent("handler", Some(&remote));
    assert!(!span.owns_trace());
    span.set_thread_id("ignored: not our trace");
    let child = span.child("step");
    child.end();
    span.end();
    let report = store.flush(FLUSH).await;
    assert!(report.completed && report.stats.sent == 2, "{report}");
    assert!(
        opik.traces().is_empty(),
        "a joined trace must not be written"
    );
    let stored = opik.span(span.id().unwrap().to_string()).unwrap();
    assert_eq!(stored["trace_id"], remote.trace_id().to_string());
    assert_eq!(
        stored["parent_span_id"],
        remote.parent_span_id().unwrap().to_string()
    );
    let stored_child = opik.span(child.id().unwrap().to_string()).unwrap();
    assert_eq!(
        stored_child["parent_span_id"],
        span.id().unwrap().to_string()
    );
    assert_eq!(stored_child["trace_id"], remote.trace_id().to_string());
}

#[tokio::test]
async fn a_span_is_recorded_exactly_once_and_a_forgotten_one_is_marked() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let root = store.root_span("root");
    let ended = root.child("ended");
    let clone = ended.clone();
    ended.end();
    ended.end();
    clone.set_output("too late: ignored");
    drop(clone);
    drop(ended);
    let forgotten = root.child("forgotten");
    let forgotten_id = forgotten.id().unwrap().to_string();
    let task = tokio::spawn(async move {
        let _held = forgotten;
        std::future::pending::<()>().await;
    });
    task.abort();
    let _ = task.await;
    root.end();
    let report = store.flush(FLUSH).await;
    assert!(report.completed && report.stats.sent == 4, "{report}"); // 3 spans + 1 trace
    for span in opik.spans() {
        assert_eq!(opik.write_count(span["id"].as_str().unwrap()), 1);
    }
    let forgotten = opik.span(&forgotten_id).unwrap();
    assert_eq!(forgotten["metadata"]["tower_opik.unfinished"], json!(true));
    assert!(forgotten.get("end_time").is_some());
    let ended = opik
        .spans()
        .into_iter()
        .find(|s| s["name"] == "ended")
        .unwrap();
    assert!(ended.get("output").is_none());
    assert!(ended.get("metadata").is_none());
}

#[tokio::test]
async fn the_current_span_nests_children_across_awaits() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let root = store.root_span("request");
    let root_id = root.id().unwrap();
    async {
        assert_eq!(current_span().id(), Some(root_id));
        tokio::task::yield_now().await;
        let llm = current_span().child("llm");
        let llm_id = llm.id();
        async {
            tokio::task::yield_now().await;
            assert_eq!(current_span().id(), llm_id);
            current_span().child("tool").end();
        }
        .in_span(llm.clone())
        .await;
        llm.end();
        assert_eq!(
            current_span().id(),
            Some(root_id),
            "restored after the inner future"
        );
    }
    .in_span(root.clone())
    .await;
    assert!(current_span().is_none(), "nothing leaks out");
    root.end();
    assert!(store.flush(FLUSH).await.completed);
    let tree = opik
        .trace_tree(root.trace_id().unwrap().to_string())
        .unwrap();
    let text = tree.to_string();
    let lines: Vec<&str> = text.lines().collect();
    let depth = |name: &str| {
        let line = lines.iter().find(|l| l.contains(name)).unwrap();
        line.len() - line.trim_start().len()
    };
    assert!(
        depth("request") < depth("llm") && depth("llm") < depth("tool"),
        "{text}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn concurrent_requests_never_see_each_others_span() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let span = store.root_span(format!("request {i}"));
        let id = span.id();
        tasks.push(tokio::spawn(
            async move {
                for _ in 0..10 {
                    assert_eq!(current_span().id(), id);
                    tokio::task::yield_now().await;
                }
                current_span().end();
            }
            .in_span(span),
        ));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(current_span().is_none());
    let report = store.flush(FLUSH).await;
    assert_eq!(report.stats.sent, 40, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_carries_the_context_and_plain_spawn_does_not() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let root = store.root_span("parent");
    let root_id = root.id();
    let (carried, plain) = async {
        let carried = tower_opik::spawn(async { current_span().id() });
        let plain = tokio::spawn(async { current_span().id() });
        (carried.await.unwrap(), plain.await.unwrap())
    }
    .in_span(root.clone())
    .await;
    assert_eq!(carried, root_id);
    assert_eq!(plain, None);
}

#[tokio::test]
async fn a_panic_inside_a_scope_restores_the_context() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let outer = store.root_span("outer");
    let inner = outer.child("inner");
    outer.in_scope(|| {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            inner.in_scope(|| {
                assert_eq!(current_span().id(), inner.id());
                panic!("boom");
            })
        }));
        assert!(result.is_err());
        assert_eq!(current_span().id(), outer.id(), "restored after the panic");
    });
    assert!(current_span().is_none());
    let _ = Duration::ZERO;
}

#[tokio::test]
async fn a_handle_with_another_project_sends_there_through_the_same_queue() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).project_name("main").build().unwrap();
    let billing = store.with_project_name("billing");
    let blank = store.with_project_name("  ");
    let a = store.root_span("a");
    let b = billing.root_span("b");
    let c = b.child("c");
    let d = blank.root_span("d");
    for s in [&c, &b, &a, &d] {
        s.end();
    }
    let report = store.flush(FLUSH).await;
    assert_eq!(report.stats.sent, 7, "{report}");
    let project =
        |s: &Span| opik.span(s.id().unwrap().to_string()).unwrap()["project_name"].clone();
    assert_eq!(project(&a), "main");
    assert_eq!(project(&b), "billing");
    assert_eq!(project(&c), "billing");
    assert_eq!(project(&d), "main");
    assert_eq!(
        opik.trace(b.trace_id().unwrap().to_string()).unwrap()["project_name"],
        "billing"
    );
}

/// `tracing::Instrument` and our extension traits in scope together: every method resolves
/// without naming its trait (the E0034 a user met with `in_current_span`).
#[tokio::test]
async fn our_extension_traits_and_tracing_instrument_do_not_clash() {
    use futures_util::StreamExt;
    use tower_opik::OpikStreamExt;
    use tracing::Instrument;

    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let request = store.root_span("request");
    let seen = async {
        let carried = async { current_span().id() }
            .in_current_opik_span()
            .in_current_span() // tracing's
            .instrument(tracing::info_span!("tracing span"));
        let streamed: Vec<_> = futures_util::stream::iter([1])
            .map(|_| current_span().id())
            .in_current_opik_span()
            .collect()
            .await;
        (tokio::spawn(carried).await.unwrap(), streamed)
    }
    .in_span(request.clone())
    .await;
    assert_eq!(seen.0, request.id());
    assert_eq!(seen.1, [request.id()]);
}
