//! What the official SDKs let a user do, over loopback with LocalOpik: go-opik's headers
//! accepted (the official ones winning), the trace id answered to the caller when asked, and
//! the ids on every log line of a request.
#![cfg(all(feature = "testing", feature = "axum", feature = "tracing"))]

mod common;

use axum::Router;
use axum::routing::get;
use http::HeaderName;
use tower_opik::headers::HeaderSource;
use tower_opik::testing::LocalOpik;
use tower_opik::{DistributedHeaders, OpikFutureExt, OpikLayer};

use common::{Logs, flushed, http_client, serve, store_for};

#[tokio::test]
async fn go_opik_headers_join_their_trace_and_the_official_ones_win() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let addr = serve(
        Router::new()
            .route("/x", get(|| async { "x" }))
            .layer(OpikLayer::new(store.clone())),
    )
    .await;
    let ids = || (tower_opik::id::new_id(), tower_opik::id::new_id());
    let (go_trace, go_parent) = ids();
    let (trace, parent) = ids();
    let send = |headers: Vec<(&'static str, String)>| {
        let url = format!("http://{addr}/x");
        async move {
            let mut request = http_client().get(url);
            for (name, value) in headers {
                request = request.header(name, value);
            }
            request.send().await.unwrap().error_for_status().unwrap();
        }
    };
    // go-opik's names, in its own case.
    send(vec![
        ("X-Opik-Trace-ID", go_trace.to_string()),
        ("X-Opik-Parent-Span-ID", go_parent.to_string()),
    ])
    .await;
    // Both kinds: the official names win.
    send(vec![
        ("X-Opik-Trace-ID", go_trace.to_string()),
        ("X-Opik-Parent-Span-ID", go_parent.to_string()),
        ("opik_trace_id", trace.to_string()),
        ("opik_parent_span_id", parent.to_string()),
    ])
    .await;
    // A bad go-opik id: validated as the official ones are (a new trace).
    send(vec![("X-Opik-Trace-ID", "not-a-uuid".into())]).await;
    flushed(&store).await;
    let spans = opik.spans();
    assert_eq!(spans.len(), 3);
    assert_eq!(spans[0]["trace_id"], go_trace.to_string().as_str());
    assert_eq!(spans[0]["parent_span_id"], go_parent.to_string().as_str());
    assert_eq!(spans[1]["trace_id"], trace.to_string().as_str());
    assert_eq!(spans[1]["parent_span_id"], parent.to_string().as_str());
    assert!(spans[2].get("parent_span_id").is_none());
    assert_eq!(
        opik.traces().len(),
        1,
        "only the third request started a trace"
    );

    let mut h = http::HeaderMap::new();
    h.insert("x-opik-trace-id", go_trace.to_string().parse().unwrap());
    let got = DistributedHeaders::extract(&h);
    assert_eq!(got.source, Some(HeaderSource::GoOpikHeaders));
    assert_eq!(got.headers.unwrap().trace_id(), go_trace);
}

#[tokio::test]
async fn the_trace_id_is_answered_only_when_asked() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let name = HeaderName::from_static("x-opik-trace-id");
    let routes = || {
        Router::new()
            .route("/x", get(|| async { "x" }))
            .route("/health", get(|| async { "ok" }))
    };
    let asked = serve(
        routes().layer(
            OpikLayer::new(store.clone())
                .skip(|head| head.uri().path() == "/health")
                .trace_id_response_header(name.clone()),
        ),
    )
    .await;
    let default = serve(routes().layer(OpikLayer::new(store.clone()))).await;
    let get = |url: String| async move { http_client().get(url).send().await.unwrap() };
    let answered = get(format!("http://{asked}/x")).await;
    let trace_id = answered.headers()[&name].to_str().unwrap().to_owned();
    let plain = get(format!("http://{default}/x")).await;
    assert!(plain.headers().get(&name).is_none(), "off by default");
    let skipped = get(format!("http://{asked}/health")).await;
    assert!(
        skipped.headers().get(&name).is_none(),
        "an untraced request has no trace"
    );
    flushed(&store).await;
    assert!(
        opik.trace(&trace_id).is_some(),
        "the id answered is the trace LocalOpik received: {trace_id}"
    );
    assert_eq!(opik.spans_of_trace(&trace_id).len(), 1);
}

#[tokio::test]
async fn every_log_line_of_a_request_carries_its_ids() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // The mirror of `tracing` into Opik, mirroring every span, beside the log output: the
    // layer's `opik` span must not come back into Opik as a span of its own.
    use tracing_subscriber::layer::SubscriberExt as _;
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let subscriber = subscriber.with(
        tower_opik::tracing::OpikTracingLayer::builder()
            .mirror(tower_opik::tracing::Mirror::All)
            .start_traces_in(store.clone())
            .build(),
    );
    let _guard = tracing::subscriber::set_default(subscriber);
    let app = Router::new()
        .route(
            "/x",
            get(|| async {
                tracing::info!("answering");
                "x"
            }),
        )
        .layer(OpikLayer::new(store.clone()).tracing_span(true));
    let addr = serve(app).await;
    http_client()
        .get(format!("http://{addr}/x"))
        .send()
        .await
        .unwrap();
    flushed(&store).await;
    let span = common::span_named(&opik, "GET /x");
    assert_eq!(opik.spans().len(), 1, "{:#?}", opik.spans());
    let text = logs.text();
    let line = text
        .lines()
        .find(|l| l.contains("answering"))
        .unwrap_or_else(|| panic!("no log line:\n{text}"));
    assert!(
        line.contains(&format!(
            "opik.trace_id={}",
            span["trace_id"].as_str().unwrap()
        )) && line.contains(&format!("opik.span_id={}", span["id"].as_str().unwrap())),
        "{line}"
    );
}

/// Three calls deep, in a child of a child of the request span: Python's
/// `update_current_trace`.
async fn deep_in_the_handler() -> bool {
    let retrieve = tower_opik::current_span().child("retrieve");
    let took = async {
        let rank = tower_opik::current_span().child("rank");
        let took = async {
            use tower_opik::TraceUpdate;
            let first = TraceUpdate::new()
                .name("first name")
                .metadata("customer_tier", "silver")
                .tag("deep");
            let took_first = tower_opik::update_current_trace(first);
            let second = TraceUpdate::new()
                .name("support chat")
                .input(serde_json::json!({"question": "why?"}))
                .output("because")
                .metadata("customer_tier", "gold")
                .metadata("http.route", "mine")
                .tag("escalated")
                .thread_id("conversation-42");
            took_first & tower_opik::update_current_trace(second)
        }
        .in_span(rank.clone())
        .await;
        rank.end();
        took
    }
    .in_span(retrieve.clone())
    .await;
    retrieve.end();
    took
}

#[tokio::test]
async fn a_trace_update_three_calls_deep_reaches_the_trace_record_once() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let app = Router::new()
        .route(
            "/chat",
            axum::routing::post(|| async {
                tower_opik::current_span().set_input(serde_json::json!({"body": "hi"}));
                tower_opik::current_span().add_tag("http");
                format!("took: {}", deep_in_the_handler().await)
            }),
        )
        .layer(OpikLayer::new(store.clone()));
    let addr = serve(app).await;
    let url = format!("http://{addr}/chat");
    let answer = |r: reqwest::Response| async move { r.text().await.unwrap() };
    assert_eq!(
        answer(http_client().post(&url).send().await.unwrap()).await,
        "took: true"
    );
    // A joined request: the trace is the caller's, the update is refused and nothing is
    // written for it here.
    let caller = tower_opik::id::new_id();
    let joined = http_client()
        .post(&url)
        .header("opik_trace_id", caller.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(answer(joined).await, "took: false");
    flushed(&store).await;
    let traces = opik.traces();
    assert_eq!(traces.len(), 1, "{traces:#?}");
    let trace = &traces[0];
    let id = trace["id"].as_str().unwrap();
    assert_eq!(opik.write_count(id), 1, "written once, complete");
    assert_eq!(trace["name"], "support chat", "the last write wins");
    assert_eq!(
        trace["input"],
        serde_json::json!({"body": "hi", "question": "why?"})
    );
    assert_eq!(trace["output"]["output"], "because");
    assert_eq!(trace["metadata"]["customer_tier"], "gold");
    assert_eq!(
        trace["metadata"]["http.route"], "mine",
        "an update wins over the request's"
    );
    assert_eq!(trace["metadata"]["http.request.method"], "POST");
    assert_eq!(
        trace["tags"],
        serde_json::json!(["http", "deep", "escalated"])
    );
    assert_eq!(trace["thread_id"], "conversation-42");
    // The request span keeps its own fields.
    let root = opik
        .spans_of_trace(id)
        .into_iter()
        .find(|s| s.get("parent_span_id").is_none())
        .unwrap();
    assert_eq!(root["name"], "POST /chat");
    assert_eq!(root["input"], serde_json::json!({"body": "hi"}));
    assert_eq!(root["metadata"]["http.route"], "/chat");
    assert_eq!(opik.spans_of_trace(caller.to_string()).len(), 3);
}

#[test]
fn a_span_of_a_remote_trace_or_none_takes_no_trace_update() {
    use tower_opik::TraceUpdate;
    assert!(!tower_opik::Span::none().update_trace(TraceUpdate::new().tag("x")));
    assert!(!tower_opik::update_current_trace(
        TraceUpdate::new().tag("x")
    ));
}
