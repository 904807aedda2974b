//! The span store: the cost of recording a span on the request path, and the throughput of
//! export to LocalOpik over loopback.
//!
//! Run: `cargo bench --features testing --bench store`.

mod common;

use std::time::{Duration, Instant};

use common::Discard;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tower_opik::record::SpanRecord;
use tower_opik::testing::LocalOpik;
use tower_opik::{OpikConfig, SpanStore, Timestamp};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn recording(c: &mut Criterion) {
    let rt = runtime();
    let store = rt.block_on(async {
        SpanStore::builder()
            .config(OpikConfig::local("http://127.0.0.1:9/api/"))
            .exporter(Discard)
            .queue_capacity(1 << 16)
            .flush_interval(Duration::from_millis(10))
            .build()
            .unwrap()
    });
    let mut group = c.benchmark_group("record");
    let record = SpanRecord::new(
        tower_opik::id::new_id(),
        tower_opik::id::new_id(),
        "bench",
        Timestamp::now(),
    );
    group.bench_function("store.record(finished span record)", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                // Stay below the queue bound: measure recording, not dropping.
                let n = left.min(20_000);
                let records: Vec<_> = (0..n).map(|_| record.clone()).collect();
                let start = Instant::now();
                for r in records {
                    store.record(r);
                }
                total += start.elapsed();
                left -= n;
                rt.block_on(store.flush(Duration::from_secs(10)));
            }
            total
        })
    });
    let root = rt.block_on(async { store.root_span("root") });
    group.bench_function("child span: open, set output, end", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(20_000);
                let start = Instant::now();
                for _ in 0..n {
                    let span = root.child("step");
                    span.set_output("ok");
                    span.end();
                }
                total += start.elapsed();
                left -= n;
                rt.block_on(store.flush(Duration::from_secs(10)));
            }
            total
        })
    });
    group.finish();
    assert_eq!(store.stats().dropped, 0, "the bench must not measure drops");
}

fn export_throughput(c: &mut Criterion) {
    let rt = runtime();
    let opik = rt.block_on(LocalOpik::start()).unwrap();
    let mut group = c.benchmark_group("export to LocalOpik");
    group.sample_size(10);
    for n in [1_000u64, 10_000] {
        group.throughput(Throughput::Elements(n));
        group.bench_with_input(BenchmarkId::new("spans", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let store = rt.block_on(async {
                        SpanStore::builder()
                            .config(OpikConfig::local(&opik.base_url()))
                            .queue_capacity(n as usize)
                            .flush_interval(Duration::from_secs(3600))
                            .build()
                            .unwrap()
                    });
                    let trace = tower_opik::id::new_id();
                    let records: Vec<_> = (0..n)
                        .map(|_| {
                            SpanRecord::new(
                                tower_opik::id::new_id(),
                                trace,
                                "bench",
                                Timestamp::now(),
                            )
                        })
                        .collect();
                    let start = Instant::now();
                    for r in records {
                        store.record(r);
                    }
                    let report = rt.block_on(store.shutdown(Duration::from_secs(60)));
                    total += start.elapsed();
                    assert_eq!(report.stats.sent, n, "{report}");
                    opik.clear();
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, recording, export_throughput);
criterion_main!(benches);
