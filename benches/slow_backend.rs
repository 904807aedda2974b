//! No added latency on the request path when Opik is slow, side by side in one run.
//!
//! Three real axum servers on 127.0.0.1 whose handler opens an LLM child span, called over
//! TCP by one reqwest client (keep-alive), one request at a time: without the layer; with
//! `OpikLayer` exporting to a LocalOpik that answers at once; with `OpikLayer` exporting to
//! a LocalOpik that takes 2 s to answer every call; and the same with a queue large enough
//! to hold every record of the run. The stores flush every 50 ms, so exports are in flight
//! throughout; against the slow backend they hang, and with the default queue (2048) it
//! fills within a second and every later record is dropped (and freed) where it is made.
//!
//! Loopback latency on two cores drifts by ±20% over seconds, more than the effect looked
//! for, so the cases are not run one after the other (as criterion groups run): each round
//! sends one request to each server, in a shuffled order, and every request is timed. The
//! medians and tails of the three samples are then compared. Expected: the two `OpikLayer`
//! figures equal within noise.
//!
//! Run: `cargo bench --features testing,axum --bench slow_backend`
//! (`TOWER_OPIK_BENCH_ROUNDS`, default 20000).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use common::{env_number, llm_payload, llm_span, summary};
use serde_json::Value;
use tower_opik::server::OpikSpan;
use tower_opik::testing::LocalOpik;
use tower_opik::{OpikConfig, OpikLayer, SpanStore};

fn app(payload: &'static Value) -> Router {
    Router::new().route(
        "/chat",
        get(move |OpikSpan(span): OpikSpan| async move {
            llm_span(payload, &span);
            "ok"
        }),
    )
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn store_for(opik: &LocalOpik, queue: usize) -> SpanStore {
    SpanStore::builder()
        .config(OpikConfig::local(&opik.base_url()))
        .flush_interval(Duration::from_millis(50))
        .queue_capacity(queue)
        .build()
        .unwrap()
}

/// A quantile of a sorted sample.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rounds: usize = env_number("TOWER_OPIK_BENCH_ROUNDS", 20_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::new();
    let payload: &'static Value = Box::leak(Box::new(llm_payload(1)));
    let names = [
        "no OpikLayer",
        "OpikLayer, Opik answers at once",
        "OpikLayer, Opik takes 2 s a call",
        "… with a queue that never fills",
    ];
    let samples = rt.block_on(async {
        let fast_opik = LocalOpik::start().await.unwrap();
        let slow_opik = LocalOpik::start().await.unwrap();
        slow_opik.faults().set_delay(Some(Duration::from_secs(2)));
        let fast = store_for(&fast_opik, 2048).await;
        let slow = store_for(&slow_opik, 2048).await;
        // Holds every record of the run: isolates what dropping costs from the rest.
        let roomy = store_for(&slow_opik, 4 * rounds + 4096).await;
        let urls: Vec<String> = [
            serve(app(payload)).await,
            serve(app(payload).layer(OpikLayer::new(fast.clone()))).await,
            serve(app(payload).layer(OpikLayer::new(slow.clone()))).await,
            serve(app(payload).layer(OpikLayer::new(roomy.clone()))).await,
        ]
        .iter()
        .map(|addr| format!("http://{addr}/chat"))
        .collect();
        let call = |url: &str| {
            let request = client.get(url);
            async move {
                let start = Instant::now();
                let response = request.send().await.unwrap();
                assert!(response.status().is_success());
                response.bytes().await.unwrap();
                start.elapsed().as_secs_f64() * 1e6
            }
        };
        for _ in 0..1000 {
            for url in &urls {
                call(url).await; // warm-up: connections, allocator, caches
            }
        }
        let mut samples: Vec<Vec<f64>> = (0..4).map(|_| Vec::with_capacity(rounds)).collect();
        let mut order = [0usize, 1, 2, 3];
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..rounds {
            rng.shuffle(&mut order);
            for &i in &order {
                samples[i].push(call(&urls[i]).await);
            }
        }
        let (fast_stats, slow_stats) = (fast.stats(), slow.stats());
        println!("store with Opik fast: {fast_stats}");
        println!("store with Opik slow: {slow_stats}");
        println!("store with Opik slow, roomy queue: {}", roomy.stats());
        assert_eq!(roomy.stats().dropped, 0, "the roomy queue never fills");
        assert!(
            slow_stats.sent < fast_stats.sent,
            "the slow backend was really slow during the run"
        );
        samples
    });
    println!("\n{rounds} requests to each server, interleaved; latency in µs:");
    println!(
        "  {:<34} {:>8} {:>8} {:>8} {:>8}",
        "", "median", "p90", "p99", "min"
    );
    let mut medians = Vec::new();
    for (name, mut sample) in names.iter().zip(samples) {
        sample.sort_by(f64::total_cmp);
        let (median, min, _) = summary(sample.clone());
        medians.push(median);
        println!(
            "  {name:<34} {median:>8.1} {:>8.1} {:>8.1} {min:>8.1}",
            quantile(&sample, 0.9),
            quantile(&sample, 0.99),
        );
    }
    println!(
        "  median with Opik slow / with Opik fast: {:.3} (dropping), {:.3} (queue never full)",
        medians[2] / medians[1],
        medians[3] / medians[1]
    );
}
