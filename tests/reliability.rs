//! Reliability and security: the service never suffers for Opik, shutdown drains, giant
//! payloads are truncated rather than sinking a batch, secrets never leak.
#![cfg(all(
    feature = "testing",
    feature = "axum",
    feature = "reqwest-middleware",
    feature = "otel"
))]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use http::{HeaderMap, StatusCode};
use serde_json::json;
use tower_opik::testing::LocalOpik;
use tower_opik::{OpikConfig, OpikLayer, SpanStore};

use common::{FLUSH, Logs, http_client, serve, store_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_never_fail_or_wait_on_a_dead_or_hung_backend() {
    for fault in ["hang", "500", "drop"] {
        let opik = LocalOpik::start().await.unwrap();
        match fault {
            "hang" => opik.faults().set_delay(Some(Duration::from_secs(3600))),
            "500" => opik.faults().fail_next(
                100_000,
                StatusCode::INTERNAL_SERVER_ERROR,
                HeaderMap::new(),
            ),
            _ => opik.faults().drop_next(100_000),
        }
        let store = store_for(&opik)
            .flush_interval(Duration::from_millis(5))
            .max_batch_items(5)
            .queue_capacity(50)
            .build()
            .unwrap();
        let addr = serve(
            Router::new()
                .route("/", get(|| async { "ok" }))
                .layer(OpikLayer::new(store.clone())),
        )
        .await;
        let client = http_client();
        let started = Instant::now();
        for _ in 0..200 {
            let resp = client.get(format!("http://{addr}/")).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{fault}");
        }
        // A generous bound: 200 loopback requests take milliseconds; waiting on the backend
        // (an hour-long answer, or retries) would take far longer.
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{fault}: requests waited on Opik"
        );
        let report = store.shutdown(Duration::from_millis(200)).await;
        let stats = &report.stats;
        assert_eq!(
            stats.recorded + stats.dropped,
            400,
            "{fault}: every span is accounted for: {report}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_drains_the_spans_of_in_flight_requests() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let (release, released) = tokio::sync::watch::channel(false);
    let started = Arc::new(tokio::sync::Notify::new());
    let handler_started = started.clone();
    let app = Router::new()
        .route(
            "/slow",
            get(move || {
                let mut released = released.clone();
                let started = handler_started.clone();
                async move {
                    started.notify_one();
                    let _ = released.wait_for(|r| *r).await;
                    "finished"
                }
            }),
        )
        .layer(OpikLayer::new(store.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    let in_flight = tokio::spawn(async move {
        http_client()
            .get(format!("http://{addr}/slow"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    started.notified().await;
    assert_eq!(store.stats().recorded, 0, "the request is still in flight");
    // SIGTERM's path: stop accepting, let the in-flight request finish, then flush.
    stop.send(()).unwrap();
    release.send(true).unwrap();
    assert_eq!(in_flight.await.unwrap(), "finished");
    server.await.unwrap().unwrap();
    let report = store.shutdown(FLUSH).await;
    assert!(report.completed && report.stats.sent == 2, "{report}");
    assert_eq!(opik.spans()[0]["name"], "GET /slow");
}

#[tokio::test]
async fn a_giant_payload_is_truncated_not_lost() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik)
        .max_batch_bytes(256 * 1024)
        .build()
        .unwrap();
    let root = store.root_span("batch");
    let giant = root.child("giant");
    giant.set_input(json!({"document": "x".repeat(1024 * 1024)}));
    giant.set_output("short answer");
    giant.end();
    for i in 0..10 {
        root.child(format!("normal {i}")).end();
    }
    root.end();
    let report = store.flush(FLUSH).await;
    assert!(report.completed, "{report}");
    assert_eq!(
        (
            report.stats.sent,
            report.stats.failed,
            report.stats.truncated
        ),
        (13, 0, 1),
        "{report}"
    );
    let stored = opik.span(giant.id().unwrap().to_string()).unwrap();
    assert_eq!(stored["input"]["opik_truncated"], true);
    assert!(stored["input"]["original_bytes"].as_u64().unwrap() > 1024 * 1024);
    assert_eq!(stored["output"], json!({"output": "short answer"}));
}

#[test]
fn secrets_never_reach_logs_spans_or_errors() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let key = "sk-SECRET-CANARY-7c1d";
    let stored = tracing::subscriber::with_default(subscriber, || {
        runtime.block_on(async {
            // The backend refuses the key: errors, warnings and reports all pass through logs.
            let opik = LocalOpik::builder()
                .api_key("the-right-key")
                .start()
                .await
                .unwrap();
            let config = OpikConfig::builder()
                .url(opik.base_url())
                .api_key(key)
                .ignore_environment()
                .no_config_file()
                .build()
                .unwrap();
            let store = SpanStore::builder()
                .config(config.clone())
                .retry(common::fast_retry())
                .build()
                .unwrap();
            debug_never_shows_the_key(&config, &store);
            let open = LocalOpik::start().await.unwrap();
            let open_store = store_for(&open).build().unwrap();
            let addr = serve(
                Router::new()
                    .route("/", get(|| async { "ok" }))
                    .layer(OpikLayer::new(open_store.clone())),
            )
            .await;
            http_client()
                .get(format!("http://{addr}/?token={key}"))
                .header("authorization", format!("Bearer {key}"))
                .header("cookie", format!("session={key}"))
                .header("opik_trace_id", key)
                .send()
                .await
                .unwrap();
            store.root_span("refused").end();
            let report = store.flush(FLUSH).await;
            tracing::info!("{report} {report:?} {config:?} {store:?}");
            assert_eq!(report.stats.failed, 2, "{report}");
            open_store.flush(FLUSH).await;
            let err = OpikConfig::builder()
                .api_key(key)
                .url("ftp://x")
                .ignore_environment()
                .no_config_file()
                .build()
                .unwrap_err();
            tracing::info!("{err} {err:?}");
            serde_json::to_string(&open.spans()).unwrap()
        })
    });
    let logs = logs.text();
    assert!(logs.contains("rejected"), "the refusal was logged: {logs}");
    assert!(
        !logs.contains("CANARY"),
        "the key leaked into the logs:\n{logs}"
    );
    assert!(stored.contains("\"GET\""), "{stored}");
    assert!(
        !stored.contains("CANARY"),
        "a header or the query leaked into a span: {stored}"
    );
}

/// `Debug` (plain and `{:#?}`) of everything public that holds the key: the config, the
/// key, both REST exporters (ours, and one on the application's client), both OTLP
/// exporters (opentelemetry-otlp derives `Debug` over its headers), the store and the
/// layer. Each must be there and say something, and never the key.
fn debug_never_shows_the_key(config: &OpikConfig, store: &SpanStore) {
    use tower_opik::store::OpikRestExporter;
    let key = config.api_key().expect("the test sets a key");
    assert!(key.expose_secret().contains("CANARY"));
    let rest = OpikRestExporter::new(config).unwrap();
    let rest_on_app_client = OpikRestExporter::with_client(config, http_client()).unwrap();
    let layer = OpikLayer::new(store.clone());
    let otlp = tower_opik::otel::opik_otlp_exporter(config).unwrap();
    let otlp_on_app_client =
        tower_opik::otel::opik_otlp_exporter_with_client(config, http_client()).unwrap();
    let shown = [
        ("config", format!("{config:?}"), format!("{config:#?}")),
        ("key", format!("{key:?}"), format!("{key:#?}")),
        ("REST exporter", format!("{rest:?}"), format!("{rest:#?}")),
        (
            "REST exporter on the app's client",
            format!("{rest_on_app_client:?}"),
            format!("{rest_on_app_client:#?}"),
        ),
        ("OTLP exporter", format!("{otlp:?}"), format!("{otlp:#?}")),
        (
            "OTLP exporter on the app's client",
            format!("{otlp_on_app_client:?}"),
            format!("{otlp_on_app_client:#?}"),
        ),
        ("store", format!("{store:?}"), format!("{store:#?}")),
        ("layer", format!("{layer:?}"), format!("{layer:#?}")),
    ];
    for (what, plain, pretty) in &shown {
        assert!(plain.len() > 8, "the {what}'s Debug says nothing: {plain}");
        assert!(
            !plain.contains("CANARY"),
            "the key leaked in the {what}'s Debug: {plain}"
        );
        assert!(
            !pretty.contains("CANARY"),
            "the key leaked in the {what}'s Debug: {pretty}"
        );
    }
    // The OTLP exporter's Debug does print its headers: the workspace is there, and the
    // key only as our client's sensitive header.
    assert!(shown[4].1.contains("comet-workspace"), "{}", shown[4].1);
    assert!(
        shown[4].1.contains("authorization: Some(Sensitive)"),
        "{}",
        shown[4].1
    );
}

#[test]
fn a_process_that_never_shuts_down_is_told_what_it_lost() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || drop(common::orphaned_store()));
    let logs = logs.text();
    assert_eq!(logs.matches("undelivered").count(), 1, "{logs}");
    assert!(logs.contains("lost=2"), "{logs}");
}
