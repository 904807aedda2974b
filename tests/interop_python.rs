//! Interop with the official Python SDK (`opik` from PyPI), both directions, all sending to
//! one LocalOpik. The fixture makes its own virtualenv under the target directory.
#![cfg(all(feature = "testing", feature = "axum", feature = "reqwest-middleware"))]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use reqwest_middleware::ClientBuilder;
use serde_json::{Value, json};
use tower_opik::client::OpikMiddleware;
use tower_opik::server::OpikSpan;
use tower_opik::testing::LocalOpik;
use tower_opik::{OpikFutureExt, OpikLayer, SpanType, current_span};

use common::{FLUSH, http_client, store_for};

/// The official SDK version these tests were written against (SPEC.md).
const PROJECT: &str = "interop";

/// The virtualenv's python, made (once) under the target directory with the official SDK.
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
        common::python::python_sdk(&target)
            .unwrap_or_else(|e| panic!("the interop tests need the official SDK: {e}"))
    })
}

/// A Python command configured for `opik` through the environment, as users configure it.
fn python_command(script: &str, opik: &LocalOpik, home: &Path) -> Command {
    let mut cmd = Command::new(python());
    cmd.arg(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/python")
            .join(script),
    )
    .env("OPIK_URL_OVERRIDE", opik.base_url())
    .env("OPIK_PROJECT_NAME", PROJECT)
    .env("OPIK_WORKSPACE", "default")
    .env_remove("OPIK_API_KEY")
    .env_remove("OPIK_CONFIG_PATH")
    .env("HOME", home)
    .env("PYTHONUNBUFFERED", "1");
    cmd
}

/// Starts `tracked_web_service.py` (a `@track` handler taking the caller's headers), and
/// waits for the port it listens on.
async fn tracked_web_service(opik: &LocalOpik, home: &Path) -> (std::process::Child, u16) {
    let mut service = python_command("tracked_web_service.py", opik, home)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(service.stdout.take().unwrap()).lines();
    let port = tokio::task::spawn_blocking(move || {
        let line = lines.next().unwrap().unwrap();
        line.strip_prefix("PORT ").unwrap().parse::<u16>().unwrap()
    })
    .await
    .unwrap();
    (service, port)
}

fn temp_home() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tower-opik-py-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Everything the SDK sent to the ingest endpoints was accepted; nothing else failed.
fn assert_sdk_writes_accepted(opik: &LocalOpik) {
    let ingest: Vec<_> = opik
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/batch"))
        .collect();
    assert!(!ingest.is_empty());
    for r in &ingest {
        assert_eq!(
            r.status, 204,
            "LocalOpik refused what the official SDK sent: {r:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_caller_and_our_axum_server_make_one_trace() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).project_name(PROJECT).build().unwrap();
    let app = Router::new()
        .route(
            "/generate_response",
            post(|OpikSpan(span): OpikSpan, body: String| async move {
                span.set_input(json!({"body": body}));
                let llm = current_span().child_of_type("llm call", SpanType::Llm);
                llm.end();
                "rust answer"
            }),
        )
        .layer(OpikLayer::new(store.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let home = temp_home();
    let url = format!("http://{addr}/generate_response");
    let output = tokio::task::spawn_blocking({
        let mut cmd = python_command("call_rust_service.py", &opik, &home);
        cmd.arg(url);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let ids: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let report = store.flush(FLUSH).await;
    assert_eq!(
        report.stats.sent, 2,
        "server span + llm span, no trace record: {report}"
    );

    let trace_id = ids["trace_id"].as_str().unwrap();
    assert!(
        opik.wait_for_traces(1, Duration::from_secs(30)).await,
        "the Python trace never arrived"
    );
    let trace = opik
        .trace(trace_id)
        .expect("the Python SDK wrote its trace");
    assert_eq!(trace["name"], "python caller");
    let spans = opik.spans_of_trace(trace_id);
    let server = spans
        .iter()
        .find(|s| s["name"] == "POST /generate_response")
        .expect("our server span");
    assert_eq!(
        server["parent_span_id"], ids["span_id"],
        "our span is a child of the Python span"
    );
    assert_eq!(server["project_name"], PROJECT);
    let python_span = spans
        .iter()
        .find(|s| s["name"] == "python caller")
        .expect("the Python span");
    assert_eq!(python_span["id"], ids["span_id"]);
    // The SDK writes each record twice (start, then end) and gzips: both land as one record.
    assert_eq!(opik.write_count(ids["span_id"].as_str().unwrap()), 2);
    assert!(opik.requests().iter().any(|r| r.gzip && r.status == 204));
    let tree = opik.trace_tree(trace_id).unwrap();
    let names: Vec<_> = tree.spans().iter().map(|n| n.name().to_owned()).collect();
    assert_eq!(
        names,
        ["python caller", "POST /generate_response", "llm call"],
        "{tree}"
    );
    assert_sdk_writes_accepted(&opik);
    let _ = std::fs::remove_dir_all(home);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_calls_a_tracked_python_service_and_it_joins_our_trace() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).project_name(PROJECT).build().unwrap();
    let home = temp_home();
    let (service, port) = tracked_web_service(&opik, &home).await;

    let http = ClientBuilder::new(http_client())
        .with(OpikMiddleware::new())
        .build();
    let root = store.root_span("rust caller");
    let answer: Value = async {
        let resp = http
            .post(format!("http://127.0.0.1:{port}/"))
            .body("hello python")
            .send()
            .await
            .unwrap();
        serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap()
    }
    .in_span(root.clone())
    .await;
    root.end();
    assert!(
        tokio::task::spawn_blocking(move || {
            let mut service = service;
            service.wait().unwrap()
        })
        .await
        .unwrap()
        .success()
    );
    store.flush(FLUSH).await;

    let trace_id = root.trace_id().unwrap().to_string();
    assert_eq!(
        answer["trace_id"], trace_id,
        "the Python span is in our trace"
    );
    assert!(opik.wait_for_spans(2, Duration::from_secs(30)).await);
    let python_span = opik
        .span(answer["span_id"].as_str().unwrap())
        .expect("the Python span arrived");
    assert_eq!(python_span["name"], "python handler");
    assert_eq!(
        python_span["parent_span_id"],
        root.id().unwrap().to_string()
    );
    assert_eq!(python_span["trace_id"], trace_id);
    assert_eq!(
        opik.traces().len(),
        1,
        "only we, who started the trace, wrote it"
    );
    assert_eq!(opik.trace(&trace_id).unwrap()["name"], "rust caller");
    assert_sdk_writes_accepted(&opik);
    let _ = std::fs::remove_dir_all(home);
}

/// The streamed case, with the official SDK on the other side: a call made while
/// our response body streams (after the handler returned) carries both ids, so the Python
/// `@track` span joins the request's trace instead of losing itself to a `KeyError`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_made_while_a_body_streams_reaches_python_in_the_request_trace() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).project_name(PROJECT).build().unwrap();
    let home = temp_home();
    let (service, port) = tracked_web_service(&opik, &home).await;

    let http = ClientBuilder::new(http_client())
        .with(OpikMiddleware::new())
        .build();
    let streamed = move || {
        let http = http.clone();
        async move {
            let chunk = futures_util::stream::once(async move {
                let resp = http
                    .post(format!("http://127.0.0.1:{port}/"))
                    .body("from a stream")
                    .send()
                    .await
                    .unwrap();
                Ok::<_, std::convert::Infallible>(resp.bytes().await.unwrap())
            });
            axum::body::Body::from_stream(chunk)
        }
    };
    let app = Router::new()
        .route("/stream", axum::routing::get(streamed))
        .layer(OpikLayer::new(store.clone()));
    let addr = common::serve(app).await;
    let body = common::get_text(format!("http://{addr}/stream")).await;
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert!(
        tokio::task::spawn_blocking(move || {
            let mut service = service;
            service.wait().unwrap()
        })
        .await
        .unwrap()
        .success()
    );
    store.flush(FLUSH).await;

    let request = opik
        .spans()
        .into_iter()
        .find(|s| s["name"] == "GET /stream")
        .unwrap();
    assert_eq!(answer["trace_id"], request["trace_id"]);
    assert!(opik.wait_for_spans(2, Duration::from_secs(30)).await);
    let python_span = opik
        .span(answer["span_id"].as_str().unwrap())
        .expect("the Python span arrived");
    assert_eq!(python_span["parent_span_id"], request["id"]);
    assert_sdk_writes_accepted(&opik);
    let _ = std::fs::remove_dir_all(home);
}
