//! The per-request cost of `OpikLayer` over a bare axum router, in-process
//! (`tower::ServiceExt::oneshot`, response body collected), side by side in one run: bare
//! router; router + OpikLayer with tracing off; router + OpikLayer recording every request;
//! and the peer a Rust team uses today, router + tower-http `TraceLayer` +
//! tracing-opentelemetry + an opentelemetry_sdk batch span processor. Both recording stacks
//! export to a no-op exporter, so the figures are each stack's own cost.
//!
//! Run: `cargo bench --features testing,axum,otel --bench layer`.

mod common;

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use common::{DiscardOtel, discard_store};
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::BodyExt;
use tower::ServiceExt;
use tower_opik::{OpikLayer, SpanStore};

/// Installs tracing-opentelemetry with a batch span processor as the global subscriber.
fn install_otel_peer() -> opentelemetry_sdk::trace::SdkTracerProvider {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(DiscardOtel)
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench")));
    tracing::subscriber::set_global_default(subscriber).unwrap();
    provider
}

fn router() -> Router {
    Router::new().route("/users/{id}", get(|| async { "hello" }))
}

fn request() -> http::Request<axum::body::Body> {
    http::Request::get("/users/42")
        .header("opik_trace_id", "019a0000-0000-7000-8000-000000000000")
        .body(axum::body::Body::empty())
        .unwrap()
}

async fn call(app: &Router) {
    let response = app.clone().oneshot(request()).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"hello");
}

fn per_request(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let store = discard_store(&rt);
    let bare = router();
    let off = router().layer(OpikLayer::new(SpanStore::disabled()));
    let on = router().layer(OpikLayer::new(store.clone()));
    let _provider = install_otel_peer();
    let otel = router().layer(tower_http::trace::TraceLayer::new_for_http());
    let mut group = c.benchmark_group("request through axum");
    for (name, app) in [
        (
            "tower-http TraceLayer + tracing-opentelemetry (peer)",
            &otel,
        ),
        ("bare router", &bare),
        ("OpikLayer, tracing off", &off),
        ("OpikLayer", &on),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    // Stay below the queue bound, flushing outside the measured time.
                    let n = left.min(10_000);
                    total += rt.block_on(async {
                        let start = Instant::now();
                        for _ in 0..n {
                            call(app).await;
                        }
                        start.elapsed()
                    });
                    left -= n;
                    rt.block_on(store.flush(Duration::from_secs(10)));
                }
                total
            })
        });
    }
    group.finish();
    assert_eq!(store.stats().dropped, 0, "the bench must not measure drops");
}

criterion_group!(benches, per_request);
criterion_main!(benches);
