//! The span store against LocalOpik over loopback: delivery, batching, retries, isolation of
//! bad records, drops (flush and shutdown bounds: `store_lifecycle.rs`).

#![cfg(feature = "testing")]

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{Value, json};
use tower_opik::record::SpanRecord;
use tower_opik::store::{LossReason, RetryPolicy};
use tower_opik::testing::LocalOpik;
use tower_opik::{OpikConfig, SpanStore, SpanType, Timestamp, Usage};

use common::{FLUSH, is_opik_timestamp, store_for, until};

fn ids(values: &[Value]) -> HashSet<String> {
    values
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn spans_from_many_tasks() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik)
        .queue_capacity(10_000)
        .max_batch_items(100)
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..250 {
                let span = store.root_span(format!("task {t} span {i}"));
                ids.push(span.id().unwrap().to_string());
                span.end();
                if i % 50 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            ids
        }));
    }
    let mut expected = HashSet::new();
    for t in tasks {
        expected.extend(t.await.unwrap());
    }
    let report = store.flush(FLUSH).await;
    assert!(report.completed, "{report}");
    assert_eq!(report.stats.sent, 4000, "{report}"); // 2000 spans + their 2000 traces
    assert_eq!(report.stats.dropped + report.stats.failed, 0, "{report}");
    let got = ids(&opik.spans());
    assert_eq!(got, expected);
    for id in &expected {
        assert_eq!(opik.write_count(id), 1, "span {id} written more than once");
    }
    assert_eq!(opik.traces().len(), 2000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_recorded_from_several_tasks_all_arrive_multi_thread() {
    spans_from_many_tasks().await;
}

#[tokio::test(flavor = "current_thread")]
async fn spans_recorded_from_several_tasks_all_arrive_current_thread() {
    spans_from_many_tasks().await;
}

#[tokio::test]
async fn records_have_the_exact_json_shape() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).project_name("shape-test").build().unwrap();
    let root = store.root_span("chat");
    root.set_input(json!({"question": "why?"}));
    root.add_tag("beta");
    root.add_tag("beta");
    root.set_thread_id("conversation-1");
    let llm = root.child_of_type("completion", SpanType::Llm);
    llm.set_input("plain text prompt");
    llm.set_output(json!({"answer": "because"}));
    llm.set_model("gpt-4o");
    llm.set_provider("openai");
    llm.set_usage(Usage::tokens(12, 30));
    llm.set_total_cost(0.0012);
    llm.set_ttft(Duration::from_millis(180));
    llm.set_metadata("temperature", 0.2);
    llm.set_error(tower_opik::ErrorInfo::new("RateLimited", "slow down"));
    llm.end();
    root.set_output(json!({"answer": "because"}));
    root.end();
    let report = store.flush(FLUSH).await;
    assert!(report.completed && report.stats.sent == 3, "{report}");

    let (root_id, llm_id, trace_id) = (
        root.id().unwrap(),
        llm.id().unwrap(),
        root.trace_id().unwrap(),
    );
    let span = opik.span(llm_id.to_string()).expect("llm span stored");
    let keys: HashSet<&str> = span
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let expected: HashSet<&str> = [
        "id",
        "project_name",
        "trace_id",
        "parent_span_id",
        "name",
        "type",
        "start_time",
        "end_time",
        "input",
        "output",
        "metadata",
        "model",
        "provider",
        "usage",
        "error_info",
        "last_updated_at",
        "total_estimated_cost",
        "ttft",
        "source",
    ]
    .into();
    assert_eq!(keys, expected);
    assert_eq!(span["id"], llm_id.to_string());
    assert_eq!(span["trace_id"], trace_id.to_string());
    assert_eq!(span["parent_span_id"], root_id.to_string());
    assert_eq!(span["project_name"], "shape-test");
    assert_eq!(span["type"], "llm");
    assert_eq!(span["input"], json!({"input": "plain text prompt"}));
    assert_eq!(
        span["usage"],
        json!({"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42})
    );
    assert_eq!(span["total_estimated_cost"], json!(0.0012));
    assert_eq!(span["ttft"], json!(180.0));
    assert_eq!(span["metadata"], json!({"temperature": 0.2}));
    assert_eq!(
        span["error_info"],
        json!({"exception_type": "RateLimited", "message": "slow down", "traceback": "slow down"})
    );
    assert_eq!(span["source"], "sdk");
    for field in ["start_time", "end_time", "last_updated_at"] {
        assert!(
            is_opik_timestamp(span[field].as_str().unwrap()),
            "{field}: {}",
            span[field]
        );
    }

    let root_span = opik.span(root_id.to_string()).unwrap();
    assert!(root_span.get("parent_span_id").is_none());
    assert_eq!(root_span["tags"], json!(["beta"]));

    let trace = opik.trace(trace_id.to_string()).expect("trace stored");
    let keys: HashSet<&str> = trace
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let expected: HashSet<&str> = [
        "id",
        "project_name",
        "name",
        "start_time",
        "end_time",
        "input",
        "output",
        "tags",
        "last_updated_at",
        "thread_id",
        "source",
    ]
    .into();
    assert_eq!(keys, expected);
    assert_eq!(trace["name"], "chat");
    assert_eq!(trace["thread_id"], "conversation-1");
    assert_eq!(trace["input"], root_span["input"]);
    assert_eq!(trace["output"], root_span["output"]);
    assert_eq!(trace["start_time"], root_span["start_time"]);
    assert_eq!(trace["end_time"], root_span["end_time"]);
}

#[tokio::test]
async fn server_errors_are_retried_until_delivered() {
    let opik = LocalOpik::start().await.unwrap();
    opik.faults()
        .fail_next(2, StatusCode::SERVICE_UNAVAILABLE, HeaderMap::new());
    let store = store_for(&opik).build().unwrap();
    let span = store.root_span("retried");
    span.end();
    let report = store.flush(FLUSH).await;
    assert!(report.completed, "{report}");
    assert_eq!((report.stats.sent, report.stats.failed), (2, 0), "{report}");
    assert_eq!(report.stats.retries, 2, "{report}");
    assert_eq!(opik.write_count(span.id().unwrap().to_string()), 1);
}

#[tokio::test]
async fn rate_limits_are_honoured() {
    for (header, value) in [("retry-after", "1"), ("ratelimit-reset", "1")] {
        let opik = LocalOpik::start().await.unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header, HeaderValue::from_static(value));
        opik.faults()
            .fail_next(1, StatusCode::TOO_MANY_REQUESTS, headers);
        let store = store_for(&opik).build().unwrap();
        store.root_span("limited").end();
        let started = Instant::now();
        let report = store.flush(FLUSH).await;
        assert!(
            report.completed && report.stats.sent == 2,
            "{header}: {report}"
        );
        assert!(
            started.elapsed() >= Duration::from_millis(950),
            "{header} not honoured"
        );
        assert_eq!(report.stats.retries, 1);
    }
}

#[tokio::test]
async fn connection_refused_then_backend_comes_up() {
    // Reserve a port, close it: connections are refused until LocalOpik binds it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/api/");
    let store = SpanStore::builder()
        .config(OpikConfig::local(&url))
        .flush_interval(Duration::from_secs(3600))
        .retry(
            RetryPolicy::default()
                .initial_backoff(Duration::from_millis(50))
                .max_backoff(Duration::from_millis(100))
                .max_attempts(100),
        )
        .build()
        .unwrap();
    let span = store.root_span("early");
    span.end();
    let flush = tokio::spawn({
        let store = store.clone();
        async move { store.flush(FLUSH).await }
    });
    until(|| store.stats().retries >= 2).await;
    let opik = LocalOpik::builder()
        .addr(([127, 0, 0, 1], port).into())
        .start()
        .await
        .unwrap();
    let report = flush.await.unwrap();
    assert!(report.completed && report.stats.sent == 2, "{report}");
    assert_eq!(opik.write_count(span.id().unwrap().to_string()), 1);
}

#[tokio::test]
async fn a_slow_backend_never_hangs_flush_and_data_arrives_when_it_recovers() {
    let opik = LocalOpik::start().await.unwrap();
    opik.faults().set_delay(Some(Duration::from_secs(30)));
    let store = store_for(&opik)
        .request_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let span = store.root_span("patient");
    span.end();
    let started = Instant::now();
    let report = store.flush(Duration::from_millis(500)).await;
    assert!(!report.completed, "{report}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(report.stats.pending(), 2, "{report}");
    opik.faults().set_delay(None);
    let report = store.flush(FLUSH).await;
    assert!(report.completed && report.stats.sent == 2, "{report}");
    assert!(report.stats.retries >= 1);
    assert!(opik.span(span.id().unwrap().to_string()).is_some());
}

#[tokio::test]
async fn terminal_statuses_are_not_retried() {
    for status in [400u16, 401, 402, 403, 404, 422] {
        let opik = LocalOpik::start().await.unwrap();
        let status = StatusCode::from_u16(status).unwrap();
        opik.faults().fail_next(1, status, HeaderMap::new());
        let store = store_for(&opik).build().unwrap();
        let rec = SpanRecord::new(
            tower_opik::id::new_id(),
            tower_opik::id::new_id(),
            "alone",
            Timestamp::now(),
        );
        store.record(rec);
        let report = store.flush(FLUSH).await;
        assert!(report.completed, "{status}: {report}");
        assert_eq!(report.stats.export_calls, 1, "{status} retried: {report}");
        assert_eq!(
            (report.stats.sent, report.stats.failed),
            (0, 1),
            "{status}: {report}"
        );
        let loss = &report.stats.losses[0];
        assert_eq!(
            loss.reason,
            LossReason::Rejected {
                status: status.as_u16()
            }
        );
        assert!(
            loss.last_message.contains(&status.as_u16().to_string()),
            "{loss:?}"
        );
    }
}

#[tokio::test]
async fn one_bad_record_does_not_sink_its_batch() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let trace_id = tower_opik::id::new_id();
    let mut good = Vec::new();
    for i in 0..9 {
        let id = tower_opik::id::new_id();
        good.push(id.to_string());
        store.record(SpanRecord::new(
            id,
            trace_id,
            format!("good {i}"),
            Timestamp::now(),
        ));
        if i == 4 {
            // A v4 id: the backend refuses the whole batch with a 400.
            store.record(SpanRecord::new(
                uuid::Uuid::new_v4(),
                trace_id,
                "bad",
                Timestamp::now(),
            ));
        }
    }
    let report = store.flush(FLUSH).await;
    assert!(report.completed, "{report}");
    assert_eq!((report.stats.sent, report.stats.failed), (9, 1), "{report}");
    assert_eq!(ids(&opik.spans()), good.into_iter().collect());
    assert_eq!(
        report.stats.losses[0].reason,
        LossReason::Rejected { status: 400 }
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_full_queue_drops_the_newest_and_counts() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).queue_capacity(10).build().unwrap();
    // On a current-thread runtime the export task cannot run between these calls.
    let mut recorded = Vec::new();
    for i in 0..50 {
        let id = tower_opik::id::new_id();
        recorded.push(id.to_string());
        store.record(SpanRecord::new(
            id,
            tower_opik::id::new_id(),
            format!("s{i}"),
            Timestamp::now(),
        ));
    }
    let stats = store.stats();
    assert_eq!((stats.recorded, stats.dropped), (10, 40));
    assert_eq!(stats.losses[0].reason, LossReason::QueueFull);
    assert_eq!(stats.losses[0].count, 40);
    let report = store.flush(FLUSH).await;
    assert_eq!(report.stats.sent, 10, "{report}");
    // The oldest ten were kept.
    assert_eq!(ids(&opik.spans()), recorded[..10].iter().cloned().collect());
}

#[tokio::test]
async fn retries_are_bounded_and_the_loss_reported() {
    let opik = LocalOpik::start().await.unwrap();
    opik.faults()
        .fail_next(100, StatusCode::INTERNAL_SERVER_ERROR, HeaderMap::new());
    let store = store_for(&opik)
        .retry(common::fast_retry().max_attempts(3))
        .build()
        .unwrap();
    store.root_span("doomed").end();
    let report = store.flush(FLUSH).await;
    assert!(report.completed, "{report}");
    assert_eq!(report.stats.failed, 2, "{report}");
    assert_eq!(report.stats.export_calls, 6, "{report}"); // 3 for the span, 3 for the trace
    assert_eq!(report.stats.losses[0].reason, LossReason::RetriesExhausted);
}

#[tokio::test]
async fn batches_are_cut_by_count_and_bytes_and_gzipped_from_the_threshold() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik)
        .queue_capacity(1000)
        .max_batch_items(50)
        .max_batch_bytes(16 * 1024)
        .gzip_threshold(4096)
        .build()
        .unwrap();
    for i in 0..120 {
        let span = store.root_span(format!("s{i}"));
        span.set_input(json!({"text": "x".repeat(400)}));
        span.end();
    }
    let report = store.flush(FLUSH).await;
    assert!(report.completed && report.stats.sent == 240, "{report}");
    let requests = opik.requests();
    assert!(requests.iter().all(|r| r.status == 204), "{requests:?}");
    assert!(requests.iter().all(|r| r.items <= 50));
    assert!(requests.iter().all(|r| r.decoded_size <= 16 * 1024));
    assert!(
        requests
            .iter()
            .filter(|r| r.decoded_size >= 4096)
            .all(|r| r.gzip)
    );
    assert!(
        requests
            .iter()
            .filter(|r| r.decoded_size < 4096)
            .all(|r| !r.gzip)
    );
    assert!(requests.iter().any(|r| r.gzip));
    for r in &requests {
        // Repetitive payloads: gzip must actually shrink them; plain bodies arrive as sent.
        match r.gzip {
            true => assert!(r.wire_size * 4 < r.decoded_size, "{r:?}"),
            false => assert_eq!(r.wire_size, r.decoded_size, "{r:?}"),
        }
    }
}

#[tokio::test]
async fn the_api_key_and_workspace_are_sent_as_opik_expects() {
    let opik = LocalOpik::builder()
        .api_key("secret-key-123")
        .workspace("team")
        .start()
        .await
        .unwrap();
    let config = OpikConfig::builder()
        .url(opik.base_url())
        .api_key("secret-key-123")
        .workspace("team")
        .ignore_environment()
        .no_config_file()
        .build()
        .unwrap();
    let store = SpanStore::builder().config(config).build().unwrap();
    store.root_span("authorized").end();
    let report = store.flush(FLUSH).await;
    assert!(report.completed && report.stats.sent == 2, "{report}");

    // A wrong key is a 401: reported, not retried.
    let config = OpikConfig::builder()
        .url(opik.base_url())
        .api_key("sk-LEAK-CANARY-42")
        .workspace("team")
        .ignore_environment()
        .no_config_file()
        .build()
        .unwrap();
    let store = SpanStore::builder().config(config).build().unwrap();
    store.root_span("refused").end();
    let report = store.flush(FLUSH).await;
    assert_eq!(report.stats.failed, 2, "{report}");
    assert_eq!(report.stats.export_calls, 2, "{report}");
    let shown = format!("{report:?}{report}{store:?}{:?}", store.stats());
    assert!(!shown.contains("LEAK-CANARY"), "{shown}");
}

#[tokio::test]
async fn the_kill_switch_sends_nothing() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).disabled(true).build().unwrap();
    let span = store.root_span("invisible");
    assert!(span.is_none());
    span.child("child").end();
    span.end();
    let report = store.flush(FLUSH).await;
    assert!(report.completed);
    assert_eq!(report.stats.recorded, 0);
    assert!(opik.requests().is_empty());

    let config = OpikConfig::builder()
        .url(opik.base_url())
        .track_disable(true)
        .ignore_environment()
        .no_config_file()
        .build()
        .unwrap();
    let store = SpanStore::builder().config(config).build().unwrap();
    assert!(!store.is_enabled());
}

#[tokio::test]
async fn a_full_batch_is_sent_without_waiting_for_the_interval() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik)
        .flush_interval(Duration::from_secs(3600))
        .max_batch_items(50)
        .build()
        .unwrap();
    let root = store.root_span("burst");
    for i in 0..149 {
        root.child(format!("step {i}")).end();
    }
    // 149 children: two full batches of 50 go out on their own, 49 wait for the interval.
    assert!(opik.wait_for_spans(100, Duration::from_secs(10)).await);
    until(|| store.stats().sent == 100).await;
    assert_eq!(opik.spans().len(), 100, "the rest waits for the interval");
    root.end();
    let report = store.flush(FLUSH).await;
    assert!(report.completed, "{report}");
    assert_eq!(
        (report.stats.sent, report.stats.pending()),
        (151, 0),
        "{report}"
    );
}

#[tokio::test]
async fn batches_go_out_concurrently_up_to_the_limit() {
    for concurrency in [1, 4] {
        let opik = LocalOpik::start().await.unwrap();
        // Slow enough that every batch in flight overlaps the others.
        opik.faults().set_delay(Some(Duration::from_millis(300)));
        let store = store_for(&opik)
            .queue_capacity(10_000)
            .max_batch_items(1000)
            .export_concurrency(concurrency)
            .flush_interval(Duration::from_secs(3600))
            .build()
            .unwrap();
        let root = store.root_span("fan-out");
        for _ in 0..5999 {
            root.child("step").end();
        }
        root.end();
        let report = store.flush(FLUSH).await;
        assert!(report.completed && report.stats.sent == 6001, "{report}");
        assert_eq!(opik.spans().len(), 6000);
        assert_eq!(opik.peak_concurrent_calls(), concurrency, "{concurrency}");
    }
}

#[tokio::test]
async fn a_hung_backend_holds_no_more_than_the_queue_and_the_batches() {
    let opik = LocalOpik::start().await.unwrap();
    opik.faults().set_delay(Some(Duration::from_secs(3600)));
    let (queue, batch, concurrency) = (100, 10, 2);
    let store = store_for(&opik)
        .queue_capacity(queue)
        .max_batch_items(batch)
        .export_concurrency(concurrency)
        .flush_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let mut made = 0;
    for round in 0..40 {
        let root = store.root_span(format!("round {round}"));
        for _ in 0..48 {
            root.child("step").end();
        }
        root.end();
        made += 50; // 49 spans and a trace
        // One thread: the export task, woken every batch's worth, runs here until it
        // waits for a free sender.
        tokio::task::yield_now().await;
    }
    let stats = store.stats();
    assert_eq!(stats.recorded + stats.dropped, made, "{stats}");
    let bound = (queue + (concurrency + 2) * batch) as u64;
    assert!(
        stats.pending() <= bound,
        "{} held, bound {bound}: {stats}",
        stats.pending()
    );
    assert!(stats.dropped > 0 && stats.sent == 0, "{stats}");
}
