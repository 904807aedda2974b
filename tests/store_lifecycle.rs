//! The store's commands over loopback against LocalOpik: flushes coalesce and skip callers
//! that gave up, `shutdown` closes the queue at once and is idempotent, and a store whose
//! runtime dropped its export task refuses (and counts) records instead of queueing them
//! for nobody; flush and shutdown are bounded when the backend hangs, a store refuses
//! records after shutdown, and batches lost to a runtime that stops are counted.

#![cfg(feature = "testing")]

mod common;

use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tower_opik::store::LossReason;
use tower_opik::testing::LocalOpik;

use common::{FLUSH, store_for};

/// 100 flushes whose callers give up at once, a record before each: none is worth a round
/// of export calls of its own; the last, real flush sends them together.
#[tokio::test]
async fn flushes_whose_callers_gave_up_cost_nothing() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    for i in 0..100 {
        store.root_span(format!("job {i}")).end(); // a span and its trace
        // Polled once (the command is sent), then dropped: the caller gave up.
        assert!(store.flush(FLUSH).now_or_never().is_none());
        // The export task sees each abandoned flush on its own.
        tokio::task::yield_now().await;
    }
    let report = store.flush(FLUSH).await;
    assert!(report.completed, "{report}");
    assert_eq!(report.stats.sent, 200, "{report}");
    // One call for the spans, one for the traces; a round per abandoned flush made 200.
    assert!(report.stats.export_calls <= 4, "{report}");
    assert_eq!(opik.spans().len(), 100);
}

/// Flushes waiting at once are answered by one round: while records keep arriving, 20
/// flushes queued together cost one round of export calls, not one each (a round per flush
/// exported what had arrived since the last one, every time).
#[tokio::test]
async fn queued_flushes_share_one_round() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    store.root_span("first").end();
    let recorder = {
        let store = store.clone();
        tokio::spawn(async move {
            // Records while the flushes wait on the export calls (one runtime thread: it
            // runs whenever they await).
            for i in 0..500 {
                store.root_span(format!("meanwhile {i}")).end();
                tokio::task::yield_now().await;
            }
        })
    };
    let before = store.stats().export_calls;
    // `join_all` sends all 20 commands before the export task runs.
    let reports = futures_util::future::join_all((0..20).map(|_| store.flush(FLUSH))).await;
    assert!(reports.iter().all(|r| r.completed));
    let calls = store.stats().export_calls - before;
    assert!(calls <= 4, "{calls} export calls for 20 queued flushes");
    recorder.await.unwrap();
    let report = store.flush(FLUSH).await;
    assert_eq!(report.stats.pending(), 0, "{report}");
}

/// Flushes waiting at once all complete, and the records go out once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_flushes_all_complete() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    for i in 0..10 {
        store.root_span(format!("job {i}")).end();
    }
    let flushes = (0..20).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.flush(FLUSH).await })
    });
    for flush in futures_util::future::join_all(flushes).await {
        let report = flush.unwrap();
        assert!(report.completed, "{report}");
    }
    let stats = store.stats();
    assert_eq!(stats.sent, 20, "{stats}");
    assert_eq!(stats.pending(), 0);
    assert!(stats.export_calls <= 4, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_idempotent_and_concurrent_shutdowns_all_complete() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    for i in 0..10 {
        store.root_span(format!("job {i}")).end();
    }
    let (a, b, c) = tokio::join!(
        store.shutdown(FLUSH),
        store.shutdown(FLUSH),
        store.flush(FLUSH)
    );
    for report in [&a, &b, &c] {
        assert!(report.completed, "{report}");
        assert_eq!(report.stats.sent, 20, "{report}");
    }
    // Once more, after the task has stopped.
    let again = store.shutdown(FLUSH).await;
    assert!(again.completed, "{again}");
    assert_eq!(opik.spans().len(), 10);
}

/// What ends after `shutdown` has begun (here: while it waits for the delivery) is refused
/// and counted, not delivered by luck.
#[tokio::test]
async fn shutdown_closes_the_queue_at_once() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    store.root_span("before").end();
    let (report, ()) = tokio::join!(store.shutdown(FLUSH), async {
        // `join!` polled the shutdown first: it has closed the queue by now.
        store.root_span("after").end();
    });
    assert!(report.completed, "{report}");
    let stats = store.stats();
    assert_eq!(stats.sent, 2, "{stats}");
    assert_eq!(stats.dropped, 2, "{stats}");
    assert_eq!(stats.recorded, 2, "{stats}");
    let names: Vec<_> = opik.spans().iter().map(|s| s["name"].clone()).collect();
    assert_eq!(names, ["before"]);
}

/// A runtime that ends without `shutdown` drops the export task: the records it held are
/// counted as lost to the stopped runtime, and records made later are refused (dropped),
/// never queued for nobody to send (`pending` stays 0).
#[test]
fn after_the_runtime_dropped_the_task_records_are_refused_and_counted() {
    let opik_runtime = tokio::runtime::Runtime::new().unwrap();
    let opik = opik_runtime.block_on(LocalOpik::start()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = runtime.block_on(async { store_for(&opik).build().unwrap() });
    store.root_span("queued").end();
    drop(runtime);
    let lost = store.stats();
    assert_eq!(lost.failed, 2, "{lost}"); // lost to the stopped runtime
    store.root_span("late").end();
    let stats = store.stats();
    assert_eq!(stats.dropped, 2, "{stats}");
    assert_eq!(stats.pending(), 0, "{stats}");
    assert_eq!(stats.recorded, 2, "{stats}");
}

#[tokio::test]
async fn a_flush_interval_of_duration_max_is_once_a_day_not_an_overflow() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik)
        .flush_interval(Duration::MAX)
        .build()
        .unwrap();
    store.root_span("one").end();
    let report = store.flush(FLUSH).await;
    assert!(report.completed, "{report}");
    assert_eq!(report.stats.sent, 2);
}

/// A custom exporter that panics on its first call.
#[derive(Debug, Default)]
struct PanicsOnce(std::sync::atomic::AtomicBool);

impl tower_opik::store::Exporter for PanicsOnce {
    fn export<'a>(
        &'a self,
        _batch: &'a tower_opik::store::ExportBatch,
    ) -> tower_opik::store::ExportFuture<'a> {
        let first = !self.0.swap(true, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move {
            assert!(!first, "the exporter's bug");
            Ok(())
        })
    }
}

/// A panicking export is its own loss reason (not "runtime stopped"), and the store goes
/// on delivering the next batches.
#[tokio::test]
async fn a_panicking_exporter_is_counted_as_such_and_the_store_goes_on() {
    let store = tower_opik::SpanStore::builder()
        .config(tower_opik::OpikConfig::local("http://127.0.0.1:1/"))
        .exporter(PanicsOnce::default())
        .flush_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    store.root_span("lost").end();
    let first = store.flush(FLUSH).await;
    assert!(first.completed, "{first}");
    store.root_span("kept").end();
    let report = store.flush(FLUSH).await;
    let stats = &report.stats;
    let panicked: u64 = stats
        .losses
        .iter()
        .filter(|l| l.reason == tower_opik::store::LossReason::ExportPanicked)
        .map(|l| l.count)
        .sum();
    // The first call (one batch of one record) panicked; the other three records arrived.
    assert_eq!(panicked, 1, "{report}");
    assert_eq!(stats.failed, 1, "{report}");
    assert_eq!(stats.sent, 3, "{report}");
    assert!(
        !stats
            .losses
            .iter()
            .any(|l| l.reason == tower_opik::store::LossReason::RuntimeStopped),
        "{report}"
    );
}

#[tokio::test]
async fn flush_and_shutdown_are_bounded_when_the_backend_hangs_or_drops() {
    let opik = LocalOpik::start().await.unwrap();
    opik.faults().drop_next(1_000);
    // Retries that outlast the test: what is pending stays pending (none given up).
    let store = store_for(&opik)
        .retry(
            common::fast_retry()
                .max_attempts(u32::MAX)
                .max_elapsed(Duration::from_secs(3600)),
        )
        .build()
        .unwrap();
    store.root_span("never").end();
    let started = Instant::now();
    let report = store.flush(Duration::from_millis(300)).await;
    assert!(!report.completed);
    let report = store.shutdown(Duration::from_millis(300)).await;
    assert!(!report.completed);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(report.stats.pending(), 2, "{report}");
}

#[tokio::test]
async fn shutdown_delivers_then_refuses_new_records() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    store.root_span("before").end();
    let report = store.shutdown(FLUSH).await;
    assert!(report.completed && report.stats.sent == 2, "{report}");
    store.root_span("after").end();
    let stats = store.stats();
    assert_eq!(stats.dropped, 2);
    assert!(
        stats
            .losses
            .iter()
            .any(|l| l.reason == LossReason::ShutDown)
    );
    let again = store.flush(Duration::from_millis(100)).await;
    assert!(again.completed, "{again}");
}

#[tokio::test]
async fn the_flush_interval_sends_without_an_explicit_flush() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik)
        .flush_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    store.root_span("timed").end();
    assert!(opik.wait_for_spans(1, Duration::from_secs(10)).await);
    assert!(opik.wait_for_traces(1, Duration::from_secs(10)).await);
}

#[test]
fn a_store_dropped_with_its_runtime_counts_what_it_lost() {
    let stats = common::orphaned_store().stats();
    assert_eq!(stats.failed, 2, "{stats}");
    assert_eq!(stats.losses[0].reason, LossReason::RuntimeStopped);
}

#[test]
fn a_batch_in_flight_when_the_runtime_stops_is_counted() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (store, opik) = runtime.block_on(async {
        let opik = LocalOpik::start().await.unwrap();
        opik.faults().set_delay(Some(Duration::from_secs(3600)));
        let store = store_for(&opik).build().unwrap();
        store.root_span("stuck").end();
        // The batch goes out and hangs; the flush gives up waiting.
        let report = store.flush(Duration::from_millis(200)).await;
        assert!(!report.completed, "{report}");
        (store, opik)
    });
    drop(runtime);
    let stats = store.stats();
    assert_eq!((stats.failed, stats.pending()), (2, 0), "{stats}");
    assert!(
        stats
            .losses
            .iter()
            .all(|l| l.reason == LossReason::RuntimeStopped),
        "{stats}"
    );
    drop(opik);
}
