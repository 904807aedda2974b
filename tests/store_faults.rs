//! The span store against LocalOpik's lasting faults over loopback (issue 14: nothing lost
//! to a proxy or a rate limit): a proxy's body limit (413), a rate limit for a while (429
//! with `Retry-After`), useless server waits, systemic refusals, several bad records, an
//! exporter that never returns, extreme retry settings, and what is logged when exports
//! fail. Each test checks that every record arrives exactly once or is named as given up.

#![cfg(feature = "testing")]

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use http::{HeaderMap, HeaderValue, StatusCode};
use tower_opik::record::SpanRecord;
use tower_opik::store::{
    ExportBatch, ExportFuture, Exporter, LossReason, OpikRestExporter, RetryPolicy,
};
use tower_opik::testing::LocalOpik;
use tower_opik::{OpikConfig, SpanStore, SpanType, Timestamp};

use common::{FLUSH, Logs, fast_retry, store_for};

/// `n` characters gzip cannot shrink much.
fn noise(n: usize) -> String {
    (0..n).map(|_| fastrand::alphanumeric()).collect()
}

fn span(name: &str) -> SpanRecord {
    SpanRecord::new(
        tower_opik::id::new_id(),
        tower_opik::id::new_id(),
        name.to_owned(),
        Timestamp::now(),
    )
}

/// Every id in `ids` stored exactly once.
fn each_once(opik: &LocalOpik, ids: &[String]) {
    for id in ids {
        assert_eq!(opik.write_count(id), 1, "record {id}");
    }
}

/// A trace of `children` LLM spans with `output_bytes` of output each, ended; the ids of
/// every span, root included.
fn llm_trace(store: &SpanStore, children: usize, output_bytes: usize) -> Vec<String> {
    let root = store.root_span("chat");
    let mut ids = vec![root.id().unwrap().to_string()];
    for i in 0..children {
        let llm = root.child_of_type(format!("completion {i}"), SpanType::Llm);
        llm.set_output(noise(output_bytes));
        ids.push(llm.id().unwrap().to_string());
        llm.end();
    }
    root.end();
    ids
}

#[tokio::test]
async fn a_proxy_body_limit_splits_batches_until_each_fits() {
    // 60 spans of 100 KB and their trace: one 6 MB body, over nginx's 1 MiB.
    let opik = LocalOpik::start().await.unwrap();
    opik.faults().limit_body(Some(1024 * 1024));
    let store = store_for(&opik).build().unwrap();
    let ids = llm_trace(&store, 59, 100_000);
    let report = store.flush(FLUSH).await;
    assert!(report.completed, "{report}");
    assert_eq!(
        (report.stats.sent, report.stats.failed),
        (61, 0),
        "{report}"
    );
    assert_eq!(report.stats.truncated, 0, "{report}");
    assert!(opik.faults().refused() >= 1, "the limit was never met");
    each_once(&opik, &ids);

    // Small records under a 256 KiB limit: 360 spans of 1.5 KB in one batch.
    let opik = LocalOpik::start().await.unwrap();
    opik.faults().limit_body(Some(256 * 1024));
    let store = store_for(&opik).gzip_threshold(usize::MAX).build().unwrap();
    let ids = llm_trace(&store, 359, 1_500);
    let report = store.flush(FLUSH).await;
    assert!(report.completed, "{report}");
    assert_eq!(
        (report.stats.sent, report.stats.failed),
        (361, 0),
        "{report}"
    );
    assert!(opik.faults().refused() >= 1);
    each_once(&opik, &ids);
}

#[tokio::test]
async fn a_span_too_large_alone_is_cut_down_and_its_batch_mates_arrive() {
    let opik = LocalOpik::start().await.unwrap();
    opik.faults().limit_body(Some(1024 * 1024));
    let store = store_for(&opik).build().unwrap();
    let mut ids = Vec::new();
    let (mut huge, mut huge_trace) = (String::new(), String::new());
    for i in 0..120 {
        let root = store.root_span(format!("request {i}"));
        root.set_input(noise(500));
        if i == 60 {
            // The root span's output is its trace's too: two records of 1.5 MB.
            root.set_output(noise(1_500_000));
            huge = root.id().unwrap().to_string();
            huge_trace = root.trace_id().unwrap().to_string();
        }
        ids.push(root.id().unwrap().to_string());
        ids.push(root.trace_id().unwrap().to_string());
        root.end();
    }
    let report = store.flush(FLUSH).await;
    assert!(report.completed, "{report}");
    assert_eq!(
        (report.stats.sent, report.stats.failed),
        (240, 0),
        "{report}"
    );
    assert_eq!(report.stats.truncated, 2, "{report}");
    each_once(&opik, &ids);
    for stored in [opik.span(&huge).unwrap(), opik.trace(&huge_trace).unwrap()] {
        assert_eq!(stored["output"]["opik_truncated"], true, "{stored}");
        assert_eq!(stored["input"]["input"].as_str().unwrap().len(), 500);
    }
}

#[tokio::test]
async fn a_record_that_truncation_cannot_fit_is_named_and_alone_given_up() {
    let opik = LocalOpik::start().await.unwrap();
    opik.faults().limit_body(Some(4 * 1024));
    let store = store_for(&opik).gzip_threshold(usize::MAX).build().unwrap();
    let mut ids = Vec::new();
    for i in 0..10 {
        let rec = span(&format!("small {i}"));
        ids.push(rec.id.to_string());
        store.record(rec);
    }
    // Its name, not its payloads, makes it large: truncation cannot help.
    let too_large = span(&noise(6_000));
    let too_large_id = too_large.id;
    store.record(too_large);
    let report = store.flush(FLUSH).await;
    assert!(report.completed, "{report}");
    assert_eq!(
        (report.stats.sent, report.stats.failed),
        (10, 1),
        "{report}"
    );
    let loss = &report.stats.losses[0];
    assert_eq!(loss.reason, LossReason::TooLarge, "{report}");
    assert_eq!(loss.records, [too_large_id], "{report}");
    assert!(loss.last_message.contains("413"), "{report}");
    each_once(&opik, &ids);
    assert_eq!(opik.write_count(too_large_id.to_string()), 0);
}

#[tokio::test]
async fn a_rate_limit_is_bounded_by_time_not_by_a_count_of_attempts() {
    let opik = LocalOpik::start().await.unwrap();
    // Every call refused for 2.5 s, each asking to wait 1 s: 3 or more attempts per batch,
    // against a policy of 2.
    opik.faults()
        .rate_limit(Duration::from_millis(2_500), Duration::from_secs(1));
    let store = store_for(&opik)
        .flush_interval(Duration::from_millis(100))
        .retry(
            fast_retry()
                .max_attempts(2)
                .max_elapsed(Duration::from_secs(10)),
        )
        .build()
        .unwrap();
    let mut ids = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        let root = store.root_span("steady");
        ids.push(root.id().unwrap().to_string());
        root.end();
        tokio::time::sleep(Duration::from_millis(50)).await; // steady traffic, not a wait
    }
    let report = store.flush(FLUSH).await;
    assert!(report.completed, "{report}");
    assert_eq!(report.stats.failed, 0, "{report}");
    assert_eq!(report.stats.sent, 2 * ids.len() as u64, "{report}");
    assert!(opik.faults().refused() >= 3, "{}", opik.faults().refused());
    each_once(&opik, &ids);

    // Past its time budget, a batch the server keeps asking to wait is given up, named.
    opik.faults()
        .rate_limit(Duration::from_secs(60), Duration::from_millis(300));
    let store = store_for(&opik)
        .retry(fast_retry().max_elapsed(Duration::from_secs(1)))
        .build()
        .unwrap();
    let rec = span("waits too long");
    let id = rec.id;
    store.record(rec);
    let report = store.flush(FLUSH).await;
    assert_eq!(report.stats.failed, 1, "{report}");
    assert!(report.stats.export_calls >= 3, "{report}");
    assert_eq!(report.stats.losses[0].reason, LossReason::RetriesExhausted);
    assert_eq!(report.stats.losses[0].records, [id]);
    opik.faults().clear();
}

#[tokio::test]
async fn a_zero_or_past_retry_after_backs_off_instead_of_hammering() {
    let past = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(3600));
    for value in ["0", past.as_str()] {
        let opik = LocalOpik::start().await.unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_str(value).unwrap());
        opik.faults()
            .fail_next(3, StatusCode::TOO_MANY_REQUESTS, headers);
        let store = store_for(&opik)
            .retry(
                RetryPolicy::default()
                    .initial_backoff(Duration::from_millis(100))
                    .max_backoff(Duration::from_millis(100)),
            )
            .build()
            .unwrap();
        let rec = span("patient");
        let id = rec.id.to_string();
        store.record(rec);
        let started = Instant::now();
        let report = store.flush(FLUSH).await;
        assert_eq!(
            (report.stats.sent, report.stats.retries),
            (1, 3),
            "{report}"
        );
        // Three backoffs of at least 50 ms each (equal jitter over 100 ms).
        assert!(
            started.elapsed() >= Duration::from_millis(150),
            "Retry-After: {value}: {:?}",
            started.elapsed()
        );
        each_once(&opik, &[id]);
    }
}

#[tokio::test]
async fn extreme_retry_settings_neither_overflow_nor_hang() {
    let opik = LocalOpik::start().await.unwrap();
    opik.faults()
        .fail_next(2, StatusCode::SERVICE_UNAVAILABLE, HeaderMap::new());
    let store = store_for(&opik)
        .retry(
            fast_retry()
                .max_backoff(Duration::MAX)
                .max_retry_after(Duration::MAX)
                .max_elapsed(Duration::MAX),
        )
        .build()
        .unwrap();
    let rec = span("survives");
    let id = rec.id.to_string();
    store.record(rec);
    let report = store.flush(FLUSH).await;
    assert_eq!(
        (report.stats.sent, report.stats.retries),
        (1, 2),
        "{report}"
    );
    each_once(&opik, &[id]);

    // Waits too long for any budget: given up at once, not slept on, not a panic.
    let mut headers = HeaderMap::new();
    headers.insert("retry-after", HeaderValue::from_static("99999999999"));
    opik.faults()
        .fail_next(1, StatusCode::TOO_MANY_REQUESTS, headers);
    opik.faults()
        .fail_next(1, StatusCode::SERVICE_UNAVAILABLE, HeaderMap::new());
    for policy in [
        fast_retry()
            .max_retry_after(Duration::MAX)
            .max_elapsed(Duration::from_secs(1)),
        fast_retry()
            .initial_backoff(Duration::MAX)
            .max_backoff(Duration::MAX)
            .max_elapsed(Duration::from_secs(1)),
    ] {
        let store = store_for(&opik).retry(policy).build().unwrap();
        let rec = span("given up");
        let id = rec.id;
        store.record(rec);
        let report = store.flush(Duration::from_secs(5)).await;
        assert!(report.completed, "{report}");
        let loss = &report.stats.losses[0];
        assert_eq!(loss.reason, LossReason::RetriesExhausted, "{report}");
        assert_eq!(loss.records, [id], "{report}");
    }
}

#[tokio::test]
async fn a_systemic_refusal_is_not_bisected_record_by_record() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let mut ids = Vec::new();
    for i in 0..64 {
        // A blank project name: every record is refused, each naming its own id.
        let mut rec = span(&format!("bad project {i}"));
        rec.project_name = Some(" ".into());
        ids.push(rec.id);
        store.record(rec);
    }
    let report = store.flush(FLUSH).await;
    assert!(report.completed, "{report}");
    // One call, both halves, both quarters of the first half: not 2n.
    assert_eq!(report.stats.export_calls, 5, "{report}");
    assert_eq!(report.stats.failed, 64, "{report}");
    let loss = &report.stats.losses[0];
    assert_eq!(loss.reason, LossReason::Rejected { status: 422 });
    assert!(loss.last_message.contains("systemic"), "{report}");
    assert!(loss.last_message.contains("blank"), "{report}");
    let named: HashSet<_> = loss.records.iter().collect();
    assert_eq!(named, ids.iter().collect(), "{report}");
    assert!(opik.spans().is_empty());

    // The same from a proxy or gateway answering one identical 400 to everything.
    opik.faults()
        .fail_next(1000, StatusCode::BAD_REQUEST, HeaderMap::new());
    let store = store_for(&opik).build().unwrap();
    for i in 0..100 {
        store.record(span(&format!("refused {i}")));
    }
    let report = store.flush(FLUSH).await;
    assert_eq!(report.stats.export_calls, 5, "{report}");
    assert_eq!(report.stats.failed, 100, "{report}");
    opik.faults().clear();
}

#[tokio::test]
async fn every_bad_record_is_named_and_the_others_arrive_once() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for i in 0..40 {
        let rec = span(&format!("good {i}"));
        good.push(rec.id.to_string());
        store.record(rec);
        if i == 5 || i == 30 {
            // A v4 id: LocalOpik refuses the whole batch with a 400 naming it.
            let mut poisoned = span("poisoned");
            poisoned.id = uuid::Uuid::new_v4();
            bad.push(poisoned.id);
            store.record(poisoned);
        }
    }
    let report = store.flush(FLUSH).await;
    assert!(report.completed, "{report}");
    assert_eq!(
        (report.stats.sent, report.stats.failed),
        (40, 2),
        "{report}"
    );
    let loss = &report.stats.losses[0];
    assert_eq!(loss.reason, LossReason::Rejected { status: 400 });
    let named: HashSet<_> = loss.records.iter().copied().collect();
    assert_eq!(named, bad.iter().copied().collect(), "{report}");
    let text = report.to_string();
    for id in &bad {
        assert!(text.contains(&id.to_string()), "{text}");
    }
    each_once(&opik, &good);
}

/// Never answers its first call; sends the others to LocalOpik.
#[derive(Debug)]
struct HangsOnce {
    inner: OpikRestExporter,
    calls: AtomicUsize,
}

impl Exporter for HangsOnce {
    fn export<'a>(&'a self, batch: &'a ExportBatch) -> ExportFuture<'a> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            return Box::pin(std::future::pending());
        }
        self.inner.export(batch)
    }
}

#[tokio::test]
async fn an_exporter_that_never_returns_is_cut_off_and_retried() {
    let opik = LocalOpik::start().await.unwrap();
    let exporter = HangsOnce {
        inner: OpikRestExporter::new(&OpikConfig::local(&opik.base_url())).unwrap(),
        calls: AtomicUsize::new(0),
    };
    let store = store_for(&opik)
        .exporter(exporter)
        .export_concurrency(1)
        .retry(fast_retry().attempt_timeout(Duration::from_millis(200)))
        .build()
        .unwrap();
    let rec = span("after a hang");
    let id = rec.id.to_string();
    store.record(rec);
    let report = store.flush(Duration::from_secs(5)).await;
    assert!(report.completed, "{report}");
    assert_eq!(
        (report.stats.sent, report.stats.retries),
        (1, 1),
        "{report}"
    );
    each_once(&opik, &[id]);
}

/// A subscriber writing this thread's `tower_opik` logs (INFO and up) to `logs`.
fn capture(logs: &Logs) -> tracing::subscriber::DefaultGuard {
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_default(subscriber)
}

#[tokio::test(flavor = "current_thread")]
async fn a_dead_url_is_logged_once_at_warn_and_recovery_at_info() {
    let logs = Logs::default();
    let _guard = capture(&logs);
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let config = OpikConfig::builder()
        .url(format!("http://127.0.0.1:{port}/api/"))
        .api_key("CANARY-KEY-1234")
        .workspace("default")
        .build()
        .unwrap();
    let store = SpanStore::builder()
        .config(config)
        .flush_interval(Duration::from_secs(3600))
        .retry(fast_retry().max_attempts(3))
        .build()
        .unwrap();
    for _ in 0..3 {
        store.root_span("unseen").end();
        let report = store.flush(FLUSH).await;
        assert_eq!(report.stats.pending(), 0, "{report}");
    }
    let text = logs.text();
    let failing: Vec<_> = text
        .lines()
        .filter(|l| l.contains("Opik export failing"))
        .collect();
    assert_eq!(failing.len(), 1, "{text}");
    assert!(failing[0].contains("WARN"), "{text}");
    assert!(failing[0].contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(failing[0].contains("connect"), "{text}");
    assert!(failing[0].contains("kept and retried"), "{text}");
    // Sent to: the API's base, not one of its two paths (the error names the path).
    assert!(
        failing[0].contains(&format!(
            "sending to http://127.0.0.1:{port}/api/v1/private/:"
        )),
        "{text}"
    );
    assert!(!text.contains("CANARY"), "{text}");
    assert!(!text.contains("recovered"), "{text}");

    // Failures then a success: one WARN, one INFO.
    let logs = Logs::default();
    let _guard = capture(&logs);
    let opik = LocalOpik::start().await.unwrap();
    opik.faults().drop_next(2);
    let store = store_for(&opik).build().unwrap();
    for _ in 0..3 {
        store.root_span("seen").end();
        let report = store.flush(FLUSH).await;
        assert_eq!(report.stats.failed, 0, "{report}");
    }
    let text = logs.text();
    assert_eq!(text.matches("Opik export failing").count(), 1, "{text}");
    let recovered: Vec<_> = text
        .lines()
        .filter(|l| l.contains("Opik export recovered"))
        .collect();
    assert_eq!(recovered.len(), 1, "{text}");
    assert!(recovered[0].contains("INFO"), "{text}");

    // A refusal (401) is not "retried": the warning says the records are given up.
    let logs = Logs::default();
    let _guard = capture(&logs);
    let opik = LocalOpik::start().await.unwrap();
    opik.faults()
        .fail_next(1, http::StatusCode::UNAUTHORIZED, http::HeaderMap::new());
    let store = store_for(&opik)
        .max_batch_items(1)
        .export_concurrency(1)
        .build()
        .unwrap();
    store.root_span("refused").end();
    store.flush(FLUSH).await;
    let text = logs.text();
    let failing: Vec<_> = text
        .lines()
        .filter(|l| l.contains("Opik export failing"))
        .collect();
    assert_eq!(failing.len(), 1, "{text}");
    assert!(failing[0].contains("given up"), "{text}");
    assert!(!failing[0].contains("kept and retried"), "{text}");
}
