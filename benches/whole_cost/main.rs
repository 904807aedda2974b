//! The whole cost of a traced request, export included (issue 16): the process CPU time
//! (user + system, every thread, ended ones too) of N in-process requests through an axum
//! `Router`, then the exporter's shutdown, divided by N.
//!
//! The exporters send to one local sink in another process (this binary, run with
//! `--sink`): an axum server on 127.0.0.1 that answers 204 to everything and counts what it
//! receives (REST records, OTLP spans, requests, bytes), so that its CPU is not counted
//! and nothing lost goes unseen.
//!
//! Rows, every round of each measured in one run, interleaved (round 1 of every stack,
//! then round 2, ...):
//! 1. bare axum (a handler returning a short string);
//!    1h. the same, the requests carrying the two Opik headers: the baseline of row 3 (a
//!    request's header map is the caller's cost, not the layer's);
//! 2. `OpikLayer`, new trace (a span and a trace record per request);
//! 3. `OpikLayer`, joined remote trace (`opik_trace_id` / `opik_parent_span_id` headers:
//!    one span record per request);
//! 4. `OpikLayer`, new trace, and one `llm` child span with input, output and usage opened
//!    in the handler;
//! 5. tower-http `TraceLayer` + tracing-opentelemetry + the OTel SDK batch span processor +
//!    an OTLP/HTTP protobuf exporter (`tower_opik::otel::opik_otlp_exporter`, our hyper
//!    client, aimed at the sink);
//!    5b. the same with one child `tracing` span carrying four fields.
//!
//! Each row builds its own store (or tracer provider) for each round, outside the measured
//! region; the requests and the shutdown (export included) are measured. The runtime is a
//! multi-thread tokio runtime with 2 workers: one task, spawned on it, sends the requests one
//! after the other (`oneshot` on a clone of the router, body collected) and yields to the
//! scheduler every 64 requests, so that the store's export task runs beside it, as it does
//! beside a server's connection tasks (the OTel batch processor has a thread of its own; its
//! HTTP calls run on the runtime). Yielding after every request instead costs the bare row
//! about 2.5 µs a request of scheduler wake-ups, half of it system time: `WHOLE_COST_YIELD=1`.
//!
//! Run: `cargo bench --features axum,otel --bench whole_cost`.
//! `WHOLE_COST_N` (requests a round, default 100000), `WHOLE_COST_ROUNDS` (default 5),
//! `WHOLE_COST_ROWS` (e.g. `4` or `1,2,5b`; default all), `WHOLE_COST_QUEUE` (the store's
//! queue capacity; default: a whole round's records, as the store's own 2,048 drops at this
//! rate), `WHOLE_COST_OTEL_QUEUE` (the batch processor's, likewise), `WHOLE_COST_YIELD`
//! (yield every that many requests; default 64, 0 never). With `--test` (as
//! `cargo test --bench '*' -- --test` in CI), N defaults to 2000 and rounds to 1.

#[path = "../common/mod.rs"]
mod common;
mod sink;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use common::{env_number, summary};
use cpu_time::ProcessTime;
use http::HeaderValue;
use http_body_util::BodyExt;
use serde_json::json;
use sink::{Received, Sink, sink};
use tower::ServiceExt;
use tower_opik::{OpikConfig, OpikLayer, SpanStore, SpanType, Usage};
use tracing::instrument::WithSubscriber;

/// The stacks, in the order of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Row {
    Bare,
    BareHeaders,
    OpikNew,
    OpikJoined,
    OpikChild,
    Otel,
    OtelChild,
}

impl Row {
    const ALL: [Row; 7] = [
        Row::Bare,
        Row::BareHeaders,
        Row::OpikNew,
        Row::OpikJoined,
        Row::OpikChild,
        Row::Otel,
        Row::OtelChild,
    ];

    fn id(self) -> &'static str {
        match self {
            Row::Bare => "1",
            Row::BareHeaders => "1h",
            Row::OpikNew => "2",
            Row::OpikJoined => "3",
            Row::OpikChild => "4",
            Row::Otel => "5",
            Row::OtelChild => "5b",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Row::Bare => "bare axum",
            Row::BareHeaders => "bare axum, requests carrying the two Opik headers",
            Row::OpikNew => "`OpikLayer`, new trace (span + trace record)",
            Row::OpikJoined => "`OpikLayer`, joined remote trace (one record)",
            Row::OpikChild => "`OpikLayer` + one `llm` child span with input, output, usage",
            Row::Otel => {
                "tower-http `TraceLayer` + tracing-opentelemetry + batch processor + OTLP/HTTP protobuf"
            }
            Row::OtelChild => "the same, with one child `tracing` span",
        }
    }

    fn is_opik(self) -> bool {
        matches!(self, Row::OpikNew | Row::OpikJoined | Row::OpikChild)
    }

    fn is_otel(self) -> bool {
        matches!(self, Row::Otel | Row::OtelChild)
    }

    /// What the sink must receive for `n` requests: (REST spans, REST traces, OTLP spans).
    fn expected(self, n: u64) -> (u64, u64, u64) {
        match self {
            Row::Bare | Row::BareHeaders => (0, 0, 0),
            Row::OpikNew => (n, n, 0),
            Row::OpikJoined => (n, 0, 0),
            Row::OpikChild => (2 * n, n, 0),
            Row::Otel => (0, 0, n),
            Row::OtelChild => (0, 0, 2 * n),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The services.

async fn hello() -> &'static str {
    "hello"
}

/// Row 4's handler: one `llm` child of the request span, with a small input, output and
/// usage.
async fn hello_llm() -> &'static str {
    let llm = tower_opik::current_span().child_of_type("llm", SpanType::Llm);
    llm.set_input(json!({"prompt": "What is Opik?"}));
    llm.set_output(json!({"text": "An LLM observability platform."}));
    llm.set_usage(Usage::tokens(12, 30));
    llm.end();
    "hello"
}

/// Row 5b's handler: the same as one child `tracing` span with four fields, two of them
/// recorded after it opened.
async fn hello_traced() -> &'static str {
    let span = tracing::info_span!(
        "llm",
        prompt = "What is Opik?",
        answer = tracing::field::Empty,
        prompt_tokens = 12u64,
        completion_tokens = tracing::field::Empty,
    );
    {
        let _entered = span.enter();
        span.record("answer", "An LLM observability platform.");
        span.record("completion_tokens", 30u64);
    }
    "hello"
}

fn router(row: Row) -> Router {
    let route = match row {
        Row::OpikChild => get(hello_llm),
        Row::OtelChild => get(hello_traced),
        _ => get(hello),
    };
    Router::new().route("/users/{id}", route)
}

/// Remote-parent headers for row 3: distinct valid ids, made before the measurement.
fn remote_ids(count: usize) -> Vec<(HeaderValue, HeaderValue)> {
    (0..count)
        .map(|_| {
            let trace = tower_opik::id::new_id().to_string();
            let parent = tower_opik::id::new_id().to_string();
            (
                HeaderValue::from_str(&trace).unwrap(),
                HeaderValue::from_str(&parent).unwrap(),
            )
        })
        .collect()
}

const TRACE_ID: http::HeaderName = http::HeaderName::from_static("opik_trace_id");
const PARENT_SPAN_ID: http::HeaderName = http::HeaderName::from_static("opik_parent_span_id");

/// Sends `n` requests one after the other, collecting each body.
async fn drive(
    app: Router,
    n: usize,
    ids: Option<Arc<Vec<(HeaderValue, HeaderValue)>>>,
    yield_every: usize,
) {
    for i in 0..n {
        let mut request = http::Request::get("/users/42");
        if let Some(ids) = &ids {
            let (trace, parent) = &ids[i % ids.len()];
            request = request
                .header(TRACE_ID, trace.clone())
                .header(PARENT_SPAN_ID, parent.clone());
        }
        let request = request.body(axum::body::Body::empty()).unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"hello");
        // Between two requests a connection task waits for the next one: let the runtime
        // run what is ready (the export task among them).
        if yield_every != 0 && (i + 1) % yield_every == 0 {
            tokio::task::yield_now().await;
        }
    }
}

// ---------------------------------------------------------------------------------------
// One measurement.

/// One round of one row.
#[derive(Clone, Debug)]
struct Sample {
    /// Process CPU time a request, µs.
    cpu_us: f64,
    /// Wall time of the round (requests and shutdown), s.
    wall_s: f64,
    /// The store's counters after shutdown (Opik rows).
    stats: Option<tower_opik::store::StoreStats>,
    completed: bool,
    received: Received,
    lost: bool,
}

struct Settings {
    n: usize,
    queue: usize,
    otel_queue: usize,
    yield_every: usize,
    ids: Arc<Vec<(HeaderValue, HeaderValue)>>,
}

fn otel_provider(sink_url: &str, otel_queue: usize) -> opentelemetry_sdk::trace::SdkTracerProvider {
    use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
    let exporter = tower_opik::otel::opik_otlp_exporter(&OpikConfig::local(sink_url)).unwrap();
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(otel_queue)
                .build(),
        )
        .build();
    SdkTracerProvider::builder()
        .with_span_processor(processor)
        .build()
}

fn measure(rt: &tokio::runtime::Runtime, sink: &mut Sink, row: Row, s: &Settings) -> Sample {
    let n = s.n;
    let ids = matches!(row, Row::OpikJoined | Row::BareHeaders).then(|| s.ids.clone());
    // Built outside the measured region: a store or provider is made once per process.
    let store = row.is_opik().then(|| {
        let _guard = rt.enter();
        SpanStore::builder()
            .config(OpikConfig::local(&sink.url))
            .queue_capacity(s.queue)
            .max_queued_bytes(usize::MAX)
            .build()
            .unwrap()
    });
    let provider = row.is_otel().then(|| {
        let _guard = rt.enter();
        otel_provider(&sink.url, s.otel_queue)
    });
    let dispatch = provider.as_ref().map(|p| {
        use opentelemetry::trace::TracerProvider as _;
        use tracing_subscriber::layer::SubscriberExt as _;
        tracing::Dispatch::new(
            tracing_subscriber::registry()
                .with(tracing_opentelemetry::layer().with_tracer(p.tracer("bench"))),
        )
    });
    let app = match (&store, row.is_otel()) {
        (Some(store), _) => router(row).layer(OpikLayer::new(store.clone())),
        (None, true) => router(row).layer(tower_http::trace::TraceLayer::new_for_http()),
        (None, false) => router(row),
    };
    let _ = sink.take();

    let wall = Instant::now();
    let cpu = ProcessTime::now();
    rt.block_on(async {
        match dispatch {
            Some(d) => tokio::spawn(drive(app, n, ids, s.yield_every).with_subscriber(d)).await,
            None => tokio::spawn(drive(app, n, ids, s.yield_every)).await,
        }
        .unwrap()
    });
    let report = store
        .as_ref()
        .map(|store| rt.block_on(store.shutdown(Duration::from_secs(300))));
    if let Some(provider) = &provider {
        provider.shutdown().expect("OTel provider shutdown");
    }
    let cpu = cpu.elapsed();
    let wall = wall.elapsed();

    let received = sink.take();
    let (spans, traces, otlp) = row.expected(n as u64);
    let mut lost = received.rest_spans != spans
        || received.rest_traces != traces
        || received.otlp_spans != otlp;
    if let Some(r) = &report {
        lost |= !r.completed
            || r.stats.dropped != 0
            || r.stats.failed != 0
            || r.stats.sent != spans + traces;
    }
    Sample {
        cpu_us: cpu.as_secs_f64() * 1e6 / n as f64,
        wall_s: wall.as_secs_f64(),
        completed: report.as_ref().is_none_or(|r| r.completed),
        stats: report.map(|r| r.stats),
        received,
        lost,
    }
}

// ---------------------------------------------------------------------------------------

fn fmt_us(x: f64) -> String {
    if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn cell(xs: &[f64]) -> String {
    let (median, min, max) = summary(xs.to_vec());
    format!("{} µs [{}–{}]", fmt_us(median), fmt_us(min), fmt_us(max))
}

fn signed(x: f64) -> String {
    if x >= 0.0 {
        format!("+{}", fmt_us(x))
    } else {
        format!("−{}", fmt_us(-x))
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|a| a == "--sink") {
        sink();
        return ExitCode::SUCCESS;
    }
    let quick = args.iter().any(|a| a == "--test");
    let n: usize = env_number("WHOLE_COST_N", if quick { 2_000 } else { 100_000 });
    let rounds: usize = env_number("WHOLE_COST_ROUNDS", if quick { 1 } else { 5 });
    // At this rate the defaults (2,048 for both) drop records: the store's export task
    // and the OTel batch thread fall behind one task sending requests flat out. The queues
    // hold a whole round, so that every record is exported and paid for.
    let queue: usize = env_number("WHOLE_COST_QUEUE", (3 * n).next_power_of_two().max(2048));
    let otel_queue: usize = env_number(
        "WHOLE_COST_OTEL_QUEUE",
        (2 * n).next_power_of_two().max(2048),
    );
    let yield_every: usize = env_number("WHOLE_COST_YIELD", 64);
    let rows: Vec<Row> = match std::env::var("WHOLE_COST_ROWS") {
        Ok(list) => {
            let wanted: Vec<&str> = list.split(',').map(str::trim).collect();
            Row::ALL
                .into_iter()
                .filter(|r| wanted.contains(&r.id()))
                .collect()
        }
        Err(_) => Row::ALL.to_vec(),
    };
    assert!(n > 0 && rounds > 0 && !rows.is_empty());

    let mut sink = Sink::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let settings = Settings {
        n,
        queue,
        otel_queue,
        yield_every,
        ids: Arc::new(remote_ids(1024)),
    };
    println!(
        "whole cost: N = {n} requests a round, {rounds} round(s), rows {}; store queue {queue}, \
         OTel batch queue {otel_queue}; yield every {yield_every} request(s) (0: never); sink at {}",
        rows.iter().map(|r| r.id()).collect::<Vec<_>>().join(","),
        sink.url
    );

    // One untimed round of each row first (allocator, code, connections).
    let warm = Settings {
        n: n.min(10_000),
        ..settings
    };
    for &row in &rows {
        measure(&rt, &mut sink, row, &warm);
    }
    let settings = Settings { n, ..warm };

    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); rows.len()];
    let mut any_lost = false;
    for round in 1..=rounds {
        for (i, &row) in rows.iter().enumerate() {
            let s = measure(&rt, &mut sink, row, &settings);
            let store = s.stats.as_ref().map_or(String::new(), |st| {
                format!(
                    "; store: {} recorded, {} sent, {} dropped, {} failed, {} export calls{}",
                    st.recorded,
                    st.sent,
                    st.dropped,
                    st.failed,
                    st.export_calls,
                    if s.completed { "" } else { ", NOT completed" }
                )
            });
            println!(
                "round {round} row {:>2}: {:>7} µs CPU a request, {:.2} s wall; sink: {} requests, \
                 {} bytes, {} REST spans, {} REST traces, {} OTLP spans{store}{}",
                row.id(),
                fmt_us(s.cpu_us),
                s.wall_s,
                s.received.requests,
                s.received.bytes,
                s.received.rest_spans,
                s.received.rest_traces,
                s.received.otlp_spans,
                if s.lost { "  <- LOST RECORDS" } else { "" }
            );
            any_lost |= s.lost;
            samples[i].push(s);
        }
    }
    sink.stop();

    let cpu = |row: Row| -> Option<Vec<f64>> {
        let i = rows.iter().position(|&r| r == row)?;
        Some(samples[i].iter().map(|s| s.cpu_us).collect())
    };
    println!();
    println!(
        "N = {n} requests a round, {rounds} round(s) interleaved; median [min–max] over the rounds"
    );
    println!();
    println!("| stack | CPU per request, export included |");
    println!("|---|---|");
    for row in [
        Row::Bare,
        Row::BareHeaders,
        Row::OpikNew,
        Row::OpikJoined,
        Row::OpikChild,
    ] {
        if let Some(xs) = cpu(row) {
            println!("| {} | {} |", row.label(), cell(&xs));
        }
    }
    match (cpu(Row::Otel), cpu(Row::OtelChild)) {
        (Some(a), Some(b)) => println!(
            "| {} | {} ({} with the child span) |",
            Row::Otel.label(),
            cell(&a),
            cell(&b)
        ),
        (Some(a), None) => println!("| {} | {} |", Row::Otel.label(), cell(&a)),
        (None, Some(b)) => println!(
            "| {} | ({} with the child span) |",
            Row::Otel.label(),
            cell(&b)
        ),
        (None, None) => {}
    }

    if let Some(bare) = cpu(Row::Bare) {
        // Added over bare: the difference of the medians, and the spread of the
        // differences within each round.
        // The joined row against bare requests carrying the same headers: building and
        // dropping a request's header map is the caller's cost, not the layer's.
        let bare_headers = cpu(Row::BareHeaders);
        let added = |row: Row| -> Option<(f64, f64, f64)> {
            let xs = cpu(row)?;
            let base = match (row, &bare_headers) {
                (Row::OpikJoined, Some(h)) => h.clone(),
                _ => bare.clone(),
            };
            let diffs: Vec<f64> = xs.iter().zip(&base).map(|(x, b)| x - b).collect();
            let (_, min, max) = summary(diffs);
            Some((summary(xs).0 - summary(base).0, min, max))
        };
        let otel = added(Row::Otel).map(|a| a.0);
        let otel_child = added(Row::OtelChild).map(|a| a.0);
        let ratio = |x: f64, of: Option<f64>| {
            of.map_or("-".to_owned(), |o| format!("{:.0}%", 100.0 * x / o))
        };
        println!();
        println!(
            "| stack | added over bare axum (the joined row: over row 1h), median [per-round min–max] | of the OTel stack's added cost | of the OTel stack's with the child span |"
        );
        println!("|---|---|---|---|");
        for row in Row::ALL.into_iter().skip(2) {
            if let Some((a, min, max)) = added(row) {
                println!(
                    "| {} | {} µs [{}–{}] | {} | {} |",
                    row.label(),
                    signed(a),
                    signed(min),
                    signed(max),
                    ratio(a, otel),
                    ratio(a, otel_child)
                );
            }
        }
    }
    if any_lost {
        println!();
        println!(
            "RECORDS WERE LOST: see the rounds above (raise WHOLE_COST_QUEUE / WHOLE_COST_OTEL_QUEUE)"
        );
        return ExitCode::FAILURE;
    }
    println!();
    println!("nothing lost: every record sent by the store and counted by the sink");
    ExitCode::SUCCESS
}
