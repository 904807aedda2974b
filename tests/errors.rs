//! Errors and panics over real TCP: a panic is recorded with its message wherever
//! `CatchPanicLayer` sits, an error the handler recorded wins over the generic 5xx, a
//! `?` path ends its span with the error, a doubly layered router makes one trace, spans
//! that end after `shutdown` are counted, and a span lost to a missing context is counted.

#![cfg(all(feature = "testing", feature = "axum"))]

mod common;

use std::convert::Infallible;

use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::Value;
use tower_http::catch_panic::CatchPanicLayer;
use tower_opik::server::OpikSpan;
use tower_opik::testing::LocalOpik;
use tower_opik::{ErrorInfo, OpikLayer, SpanStore, SpanType, current_span};

use common::{FLUSH, Logs, get_text, http_client, serve, store_for, until};

async fn panics() -> &'static str {
    tokio::task::yield_now().await;
    panic!("the model client panicked");
}

/// The panic happens in a child span's scope, one level down.
async fn panics_deep() -> &'static str {
    let step = current_span().child("step");
    step.in_scope(|| panic!("deep panic"))
}

/// The body panics while it streams.
async fn panics_in_body() -> impl IntoResponse {
    let chunks = futures_util::stream::iter([0, 1]).map(|i| {
        assert!(i == 0, "the stream panicked at chunk {i}");
        Ok::<_, Infallible>(Bytes::from("chunk"))
    });
    Body::from_stream(chunks)
}

fn routes() -> Router {
    Router::new()
        .route("/panic", get(panics))
        .route("/panic-deep", get(panics_deep))
        .route("/panic-body", get(panics_in_body))
}

/// One span per request, each with a `Panic` error carrying the message.
async fn panics_are_recorded(app: Router, store: &SpanStore, opik: &LocalOpik, paths: &[&str]) {
    let addr = serve(app).await;
    let client = http_client();
    for path in paths {
        let before = store.stats().recorded;
        // With no CatchPanicLayer the connection is closed: an error, not a status.
        let _ = client.get(format!("http://{addr}{path}")).send().await;
        until(|| store.stats().recorded >= before + 2).await;
    }
    store.flush(FLUSH).await;
    let spans = opik.spans();
    for path in paths {
        let span = spans
            .iter()
            .find(|s| s["name"] == format!("GET {path}"))
            .unwrap_or_else(|| panic!("no span for {path}: {spans:#?}"));
        assert_eq!(
            span["error_info"]["exception_type"], "Panic",
            "{path}: {span:#}"
        );
        let message = span["error_info"]["message"].as_str().unwrap();
        let expected = match *path {
            "/panic" => "the model client panicked",
            "/panic-deep" => "deep panic",
            _ => "the stream panicked at chunk 1",
        };
        assert_eq!(message, expected, "{path}");
        let trace = opik.trace(span["trace_id"].as_str().unwrap()).unwrap();
        assert_eq!(trace["error_info"]["exception_type"], "Panic", "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_with_catch_panic_outside_the_layer() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let app = routes()
        .layer(OpikLayer::new(store.clone()))
        .layer(CatchPanicLayer::new());
    panics_are_recorded(
        app,
        &store,
        &opik,
        &["/panic", "/panic-deep", "/panic-body"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_with_catch_panic_inside_the_layer() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let app = routes()
        .layer(CatchPanicLayer::new())
        .layer(OpikLayer::new(store.clone()));
    panics_are_recorded(
        app,
        &store,
        &opik,
        &["/panic", "/panic-deep", "/panic-body"],
    )
    .await;
    // The step the panic happened in has it too.
    let spans = opik.spans();
    let step = spans.iter().find(|s| s["name"] == "step").unwrap();
    assert_eq!(step["error_info"]["exception_type"], "Panic");
    assert!(
        step["error_info"]["traceback"]
            .as_str()
            .unwrap()
            .contains("tests/errors.rs"),
        "the hook records the location: {step:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_without_catch_panic() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let app = routes().layer(OpikLayer::new(store.clone()));
    panics_are_recorded(
        app,
        &store,
        &opik,
        &["/panic", "/panic-deep", "/panic-body"],
    )
    .await;
}

macro_rules! f_display {
    ($text:literal) => {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str($text)
        }
    };
}

#[derive(Debug)]
struct Upstream;
impl std::fmt::Display for Upstream {
    f_display!("the upstream model timed out");
}
impl std::error::Error for Upstream {}

#[derive(Debug)]
struct CallFailed(Upstream);
impl std::fmt::Display for CallFailed {
    f_display!("the LLM call failed");
}
impl std::error::Error for CallFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

async fn call_llm() -> Result<String, CallFailed> {
    Err(CallFailed(Upstream))
}

/// The handler: records its error and answers 500; an `llm` child ended by `?`.
async fn user_error(OpikSpan(span): OpikSpan) -> impl IntoResponse {
    let llm = span.child_of_type("llm", SpanType::Llm);
    let result = call_llm().await;
    llm.end_with_result(&result);
    if let Err(e) = result {
        span.set_error(ErrorInfo::from_error(&e));
        return (StatusCode::INTERNAL_SERVER_ERROR, "sorry");
    }
    (StatusCode::OK, "ok")
}

#[tokio::test]
async fn the_error_the_handler_recorded_wins_over_the_generic_500() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let app = Router::new()
        .route("/user-error", get(user_error))
        .route("/plain-500", get(|| async { StatusCode::BAD_GATEWAY }))
        .layer(OpikLayer::new(store.clone()));
    let addr = serve(app).await;
    for path in ["/user-error", "/plain-500"] {
        let status = http_client()
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_server_error());
    }
    store.flush(FLUSH).await;
    let spans = opik.spans();
    let by = |name: &str| spans.iter().find(|s| s["name"] == name).unwrap().clone();
    let request = by("GET /user-error");
    assert_eq!(request["error_info"]["message"], "the LLM call failed");
    assert_eq!(
        request["error_info"]["traceback"],
        "the LLM call failed\ncaused by: the upstream model timed out"
    );
    assert_eq!(request["metadata"]["http.response.status_code"], 500);
    let llm = by("llm");
    assert_eq!(llm["error_info"]["message"], "the LLM call failed");
    assert!(llm["metadata"].get("tower_opik.unfinished").is_none());
    // With nothing recorded, the status says what happened.
    let plain = by("GET /plain-500");
    assert_eq!(plain["error_info"]["exception_type"], "HttpServerError");
}

#[tokio::test]
async fn a_doubly_layered_router_makes_one_trace() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let inner = Router::new()
        .route(
            "/deep",
            get(|| async {
                current_span().child("work").end();
                "ok"
            }),
        )
        .route_layer(OpikLayer::new(store.clone()))
        .layer(OpikLayer::new(store.clone()));
    let app = Router::new()
        .nest("/api", inner)
        .layer(OpikLayer::new(store.clone()));
    let addr = serve(app).await;
    let body = get_text(format!("http://{addr}/api/deep")).await;
    assert_eq!(body, "ok");
    store.flush(FLUSH).await;
    let spans = opik.spans();
    assert_eq!(spans.len(), 2, "one request span and its child: {spans:#?}");
    assert_eq!(opik.traces().len(), 1);
    let work = spans.iter().find(|s| s["name"] == "work").unwrap();
    let request = spans.iter().find(|s| s["name"] != "work").unwrap();
    assert_eq!(work["parent_span_id"], request["id"]);
}

#[tokio::test]
async fn spans_that_end_after_shutdown_are_counted_as_dropped() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let background = store.root_span("background job");
    let report = store.shutdown(FLUSH).await;
    assert_eq!(report.stats.dropped, 0);
    // The late records are warned about (once per interval, however many).
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        background.child("late step").end();
        background.end(); // a span and its trace
    });
    let logs = logs.text();
    assert_eq!(
        logs.matches("ended after the store shut down").count(),
        1,
        "{logs}"
    );
    let stats = store.stats();
    assert_eq!(stats.dropped, 3, "{stats}");
    assert!(
        stats.to_string().contains("3 recorded after shutdown"),
        "{stats}"
    );
    assert!(opik.spans().is_empty());
}

#[tokio::test]
async fn a_child_of_no_current_span_is_counted() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let before = store.stats().no_current_span;
    // Explicitly none: not a lost context, not counted.
    tower_opik::Span::none().child("explicitly nothing").end();
    assert_eq!(store.stats().no_current_span - before, 0);
    let request = store.root_span("request");
    // A plain tokio::spawn loses the context: its child is not recorded, and counted.
    let lost = tokio::spawn(async { current_span().child("lost").is_none() });
    assert!(lost.await.unwrap());
    assert!(store.stats().no_current_span > before, "{}", store.stats());
    assert!(
        store
            .stats()
            .to_string()
            .contains("opened from no current span")
    );
    // Carried with tower_opik::spawn, it is kept.
    let kept = request.in_scope(|| tower_opik::spawn(async { current_span().child("kept") }));
    let kept = kept.await.unwrap();
    assert_eq!(kept.parent_span_id(), request.id());
    kept.end();
    request.end();
    store.flush(FLUSH).await;
    let names: Vec<Value> = opik.spans().iter().map(|s| s["name"].clone()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&Value::from("kept")));
}

/// A panic inside a tracked stream is the stream span's `Panic`, not a `StreamIncomplete`;
/// the request span has it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_inside_a_tracked_stream_is_recorded_on_its_span() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let handler = || async {
        let llm = current_span().child_of_type("llm", SpanType::Llm);
        let tokens = futures_util::stream::iter(0..3).map(|i| {
            assert!(i < 1, "boom in stream");
            Ok::<_, Infallible>(format!("x{i}"))
        });
        Body::from_stream(llm.track_stream(tokens))
    };
    let app = Router::new()
        .route("/s", get(handler))
        .layer(OpikLayer::new(store.clone()));
    let addr = serve(app).await;
    let _ = http_client().get(format!("http://{addr}/s")).send().await;
    until(|| store.stats().recorded >= 3).await;
    store.flush(FLUSH).await;
    let spans = opik.spans();
    for name in ["llm", "GET /s"] {
        let span = spans.iter().find(|s| s["name"] == name).unwrap();
        assert_eq!(span["error_info"]["exception_type"], "Panic", "{span:#}");
        assert_eq!(span["error_info"]["message"], "boom in stream", "{span:#}");
    }
    let llm = spans.iter().find(|s| s["name"] == "llm").unwrap();
    assert_eq!(llm["output"], serde_json::json!({"output": "x0"}));
}

/// A `#[track]`-like span in a worker with no `OpikLayer` at all: a panic caught by
/// `catch_unwind` is still recorded (the store installed the hook), with its location.
#[tokio::test]
async fn a_panic_caught_outside_any_layer_is_recorded() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let job = store.root_span("job");
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        job.in_scope(|| panic!("worker boom"))
    }));
    assert!(caught.is_err());
    job.end();
    store.flush(FLUSH).await;
    let span = &opik.spans()[0];
    assert_eq!(span["error_info"]["exception_type"], "Panic");
    assert_eq!(span["error_info"]["message"], "worker boom");
    assert!(
        span["error_info"]["traceback"]
            .as_str()
            .unwrap()
            .contains("tests/errors.rs")
    );
}
