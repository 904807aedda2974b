//! Sampling, over loopback with LocalOpik: decided once per trace from its id, the same in
//! every service with the same rate; a trace kept is whole in both services, a trace
//! sampled out leaves nothing; per-layer and per-route rates; `OPIK_SAMPLE_RATE`.
#![cfg(all(feature = "testing", feature = "axum", feature = "reqwest-middleware"))]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use axum::Router;
use axum::routing::get;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use tower_opik::client::OpikMiddleware;
use tower_opik::testing::LocalOpik;
use tower_opik::{OpikConfig, OpikLayer, SpanStore};

use common::{flushed, gateway_and_worker, http_client, serve, store_for};

/// A gateway (its own store and project) calling a worker (another store) for every
/// request: two services in one test.
async fn two_services(opik: &LocalOpik, rate: f64) -> (SpanStore, SpanStore, String) {
    let gateway_store = store_for(opik).sample_rate(rate).build().unwrap();
    let worker_store = store_for(opik).sample_rate(rate).build().unwrap();
    let url = gateway_and_worker(&gateway_store, &worker_store).await;
    (gateway_store, worker_store, url)
}

async fn send(url: &str, n: usize) {
    let client = http_client();
    for _ in 0..n {
        let answer = client.get(url).send().await.unwrap().text().await.unwrap();
        assert_eq!(answer, "done");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_services_keep_the_same_traces_whole_and_leave_no_fragment() {
    let opik = LocalOpik::start().await.unwrap();
    let (gateway, worker, url) = two_services(&opik, 0.3).await;
    let n = 2_000;
    send(&url, n).await;
    flushed(&gateway).await;
    flushed(&worker).await;

    let traces: BTreeSet<String> = opik
        .traces()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect();
    // Binomial(2000, 0.3): mean 600, standard deviation 20.5; five of them either side.
    assert!(
        (497..=703).contains(&traces.len()),
        "{} traces kept",
        traces.len()
    );
    let stats = gateway.stats();
    assert_eq!(stats.traces_sampled_in as usize, traces.len());
    assert_eq!(
        (stats.traces_sampled_in + stats.traces_sampled_out) as usize,
        n
    );
    assert_eq!(
        worker.stats().traces_sampled_in,
        0,
        "the worker starts no trace"
    );

    // Every span belongs to a kept trace, and every kept trace has its three spans: the
    // gateway's request and client spans, and the worker's request span.
    let mut by_trace: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for span in opik.spans() {
        by_trace
            .entry(span["trace_id"].as_str().unwrap().to_owned())
            .or_default()
            .push(format!(
                "{} {}",
                span["project_name"].as_str().unwrap(),
                span["name"].as_str().unwrap()
            ));
    }
    let fragments: Vec<_> = by_trace.keys().filter(|t| !traces.contains(*t)).collect();
    assert!(
        fragments.is_empty(),
        "spans of traces sampled out: {fragments:?}"
    );
    for trace in &traces {
        let mut names = by_trace.get(trace).cloned().unwrap_or_default();
        names.sort();
        assert_eq!(
            names,
            [
                "gateway GET /ask",
                "gateway GET 127.0.0.1",
                "worker GET /work"
            ],
            "trace {trace}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_of_zero_sends_nothing_and_one_everything() {
    for (rate, expected) in [(0.0, 0), (1.0, 50)] {
        let opik = LocalOpik::start().await.unwrap();
        let (gateway, worker, url) = two_services(&opik, rate).await;
        send(&url, 50).await;
        flushed(&gateway).await;
        flushed(&worker).await;
        assert_eq!(opik.traces().len(), expected, "rate {rate}");
        assert_eq!(opik.spans().len(), 3 * expected, "rate {rate}");
        assert!(opik.requests().iter().all(|r| r.status == 204));
    }
}

#[tokio::test]
async fn per_route_rates_and_sampled_out_requests_still_propagate() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let echo = serve(Router::new().route(
        "/echo",
        get(|h: http::HeaderMap| async move {
            h.get("opik_trace_id")
                .map_or("-".to_owned(), |v| v.to_str().unwrap().to_owned())
        }),
    ))
    .await;
    let client: ClientWithMiddleware = ClientBuilder::new(http_client())
        .with(OpikMiddleware::new())
        .build();
    let call_echo = move || {
        let client = client.clone();
        async move { common::text(client.get(format!("http://{echo}/echo"))).await }
    };
    let app = Router::new()
        .route("/admin", get(call_echo.clone()))
        .route("/chat", get(call_echo))
        .layer(OpikLayer::new(store.clone()).sample_rate_by(|head| {
            if head.uri().path() == "/admin" {
                1.0
            } else {
                0.0
            }
        }));
    let addr = serve(app).await;
    let get_text = |path: &str| common::get_text(format!("http://{addr}{path}"));
    let admin = get_text("/admin").await;
    let chat = get_text("/chat").await;
    flushed(&store).await;
    assert_eq!(opik.traces().len(), 1);
    assert_eq!(opik.traces()[0]["id"], admin.as_str());
    assert_ne!(
        chat, "-",
        "a trace sampled out still sends its ids downstream"
    );
    assert!(opik.spans_of_trace(&chat).is_empty());
    let stats = store.stats();
    assert_eq!((stats.traces_sampled_in, stats.traces_sampled_out), (1, 1));
}

#[test]
fn the_rate_comes_from_opik_sample_rate_and_a_bad_one_is_an_error() {
    let build = |value: &str| {
        OpikConfig::builder()
            .no_config_file()
            .environment([("OPIK_SAMPLE_RATE", value)])
            .build()
    };
    assert_eq!(build("0.25").unwrap().sample_rate(), 0.25);
    assert_eq!(
        build(" 0 ").unwrap().sample_rate(),
        0.0,
        "0 means none, not unset"
    );
    assert_eq!(build("1").unwrap().sample_rate(), 1.0);
    for bad in ["abc", "1.5", "-0.1", "NaN", "0.5.1"] {
        let err = build(bad).unwrap_err().to_string();
        assert!(
            err.contains("sample rate") && err.contains("OPIK_SAMPLE_RATE"),
            "{bad}: {err}"
        );
    }
    let unset = OpikConfig::builder()
        .no_config_file()
        .environment([("OPIK_WORKSPACE", "default")])
        .build()
        .unwrap();
    assert_eq!(unset.sample_rate(), 1.0);
    // The config file's `sample_rate`, in its `[tower_opik]` section (see tests/config.rs).
    let path = std::env::temp_dir().join(format!("opik-sampling-{}.config", std::process::id()));
    std::fs::write(
        &path,
        "[opik]\nworkspace = w\n[tower_opik]\nsample_rate = 0.5\n",
    )
    .unwrap();
    let from_file = OpikConfig::builder()
        .config_file(&path)
        .environment([("OPIK_WORKSPACE", "default")])
        .build();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(from_file.unwrap().sample_rate(), 0.5);
}

#[tokio::test]
async fn keep_errors_sends_the_traces_sampling_left_out_that_end_in_an_error() {
    let opik = LocalOpik::start().await.unwrap();
    // Rate 0: every trace is sampled out; held within 4 KiB at once, for errors.
    let store = store_for(&opik)
        .sample_rate(0.0)
        .keep_errors(4096)
        .build()
        .unwrap();
    let step = |input: usize| {
        let child = tower_opik::current_span().child("step");
        child.set_input("x".repeat(input));
        child.end();
    };
    let app = Router::new()
        .route(
            "/ok",
            get(move || async move {
                step(10);
                "fine"
            }),
        )
        .route(
            "/fail",
            get(move || async move {
                step(10);
                step(8192); // does not fit under the bound: not kept
                (http::StatusCode::BAD_GATEWAY, "the model is down")
            }),
        )
        .layer(OpikLayer::new(store.clone()));
    let addr = serve(app).await;
    common::get_text(format!("http://{addr}/ok")).await;
    common::get_text(format!("http://{addr}/fail")).await;
    flushed(&store).await;
    let traces = opik.traces();
    assert_eq!(traces.len(), 1, "only the erroring trace: {traces:#?}");
    assert_eq!(traces[0]["name"], "GET /fail");
    let spans = opik.spans_of_trace(traces[0]["id"].as_str().unwrap());
    let mut names: Vec<&str> = spans.iter().map(|s| s["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, ["GET /fail", "step"]);
    let root = spans.iter().find(|s| s["name"] == "GET /fail").unwrap();
    assert_eq!(root["error_info"]["exception_type"], "HttpServerError");
    let stats = store.stats();
    assert_eq!(
        (
            stats.traces_sampled_in,
            stats.traces_sampled_out,
            stats.traces_kept_for_errors
        ),
        (0, 2, 1)
    );
    assert_eq!(stats.held_spans_dropped, 1, "{stats}");
}

#[tokio::test]
async fn a_span_ending_after_its_held_trace_was_decided_follows_the_decision() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik)
        .sample_rate(0.0)
        .keep_errors(1 << 20)
        .build()
        .unwrap();
    for fails in [true, false] {
        let root = store.root_span(if fails { "failing job" } else { "fine job" });
        let late = root.child("background step");
        if fails {
            root.set_error(tower_opik::ErrorInfo::new("Boom", "the job failed"));
        }
        root.end();
        late.end(); // after the decision: sent with a kept trace, let go with the other
    }
    flushed(&store).await;
    let traces = opik.traces();
    assert_eq!(traces.len(), 1);
    let spans = opik.spans_of_trace(traces[0]["id"].as_str().unwrap());
    let mut names: Vec<&str> = spans.iter().map(|s| s["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, ["background step", "failing job"]);
    assert_eq!(opik.spans().len(), 2, "nothing of the fine job");
}
