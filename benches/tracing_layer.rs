//! The cost of one `tracing` span (created, entered, two fields recorded, exited, closed)
//! under `OpikTracingLayer`, beside tracing-opentelemetry's cost for the same span, in one
//! run:
//!
//! - the registry alone (what any `tracing-subscriber` stack pays), and with a layer that
//!   does nothing (what `tracing-subscriber` charges for having a layer at all);
//! - `OpikTracingLayer`, a plain span it does not mirror (the hot path of every other span
//!   of a service);
//! - `OpikTracingLayer`, a mirrored GenAI span (the span is built, mapped, queued and
//!   exported to a no-op exporter by the store's background task);
//! - tracing-opentelemetry with an opentelemetry_sdk batch span processor and a no-op
//!   exporter (the peer), the same GenAI span.
//!
//! Each measured span has a parent: the Opik root span (current) for the layer, an entered
//! `tracing` span for the peer. Run: `cargo bench --features testing,tracing --bench tracing_layer`.

mod common;

use std::time::{Duration, Instant};

use common::{DiscardOtel, discard_store};
use criterion::{Criterion, criterion_group, criterion_main};
use tower_opik::tracing::OpikTracingLayer;
use tracing::Dispatch;
use tracing::field::Empty;
use tracing_subscriber::prelude::*;

/// A layer that does nothing: what `tracing-subscriber` itself charges for having a layer.
struct NoopLayer;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for NoopLayer {}

/// The span every figure measures: a GenAI chat span, usage recorded after the call.
fn genai_span() {
    let span = tracing::info_span!(
        "chat",
        "gen_ai.operation.name" = "chat",
        "gen_ai.provider.name" = "openai",
        "gen_ai.request.model" = "gpt-4o",
        "gen_ai.usage.input_tokens" = Empty,
        "gen_ai.usage.output_tokens" = Empty,
    );
    let entered = span.enter();
    span.record("gen_ai.usage.input_tokens", 12);
    span.record("gen_ai.usage.output_tokens", 30);
    drop(entered);
}

/// The same shape without GenAI fields: not mirrored by the default layer.
fn plain_span() {
    let span = tracing::info_span!(
        "query",
        db = "users",
        rows = Empty,
        elapsed_ms = Empty,
        table = "accounts",
        op = "select"
    );
    let entered = span.enter();
    span.record("rows", 12);
    span.record("elapsed_ms", 30);
    drop(entered);
}

fn one_span(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let store = discard_store(&rt);
    let registry = Dispatch::new(tracing_subscriber::registry());
    let noop = Dispatch::new(tracing_subscriber::registry().with(NoopLayer));
    let opik = Dispatch::new(tracing_subscriber::registry().with(OpikTracingLayer::new()));
    let provider = rt.block_on(async {
        opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_batch_exporter(DiscardOtel)
            .build()
    });
    let otel = {
        use opentelemetry::trace::TracerProvider as _;
        Dispatch::new(
            tracing_subscriber::registry()
                .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench"))),
        )
    };
    let root = store.root_span("bench root");

    let mut group = c.benchmark_group("one tracing span");
    let cases: [(&str, &Dispatch, fn()); 6] = [
        (
            "tracing-opentelemetry, batch processor (peer)",
            &otel,
            genai_span,
        ),
        ("registry alone", &registry, genai_span),
        ("registry + a no-op layer, plain span", &noop, plain_span),
        ("registry alone, plain span", &registry, plain_span),
        (
            "OpikTracingLayer, plain span (not mirrored)",
            &opik,
            plain_span,
        ),
        ("OpikTracingLayer, GenAI span (mirrored)", &opik, genai_span),
    ];
    for (name, dispatch, span) in cases {
        group.bench_function(name, |b| {
            tracing::dispatcher::with_default(dispatch, || {
                let parent = tracing::info_span!("parent");
                let _parent = parent.enter();
                root.in_scope(|| {
                    b.iter_custom(|iters| {
                        let mut total = Duration::ZERO;
                        let mut left = iters;
                        while left > 0 {
                            // Stay below the queue bound, flushing outside the measured time.
                            let n = left.min(10_000);
                            let start = Instant::now();
                            for _ in 0..n {
                                span();
                            }
                            total += start.elapsed();
                            left -= n;
                            rt.block_on(store.flush(Duration::from_secs(10)));
                        }
                        total
                    })
                })
            })
        });
    }
    group.finish();
    let stats = store.stats();
    assert_eq!(stats.dropped, 0, "the bench must not measure drops");
    assert!(stats.sent > 0, "the mirrored spans reached the exporter");
    let _ = provider.shutdown();
}

criterion_group!(benches, one_span);
criterion_main!(benches);
