//! End-to-end export against the official Python SDK, side by side in one run.
//!
//! Both ship the same LLM-call spans (same fields, same texts) to the same LocalOpik over
//! loopback, taking turns, `ROUNDS` times each. Timed for each: from the first span created
//! to the end of the flush (Python: `Opik.span` with end times, then `flush`; tower-opik:
//! child spans made through the span API, then `SpanStore::shutdown`). Every span is checked
//! to have arrived. LocalOpik runs in this process in both cases, so the receiver's cost is
//! the same for both.
//!
//! The Python SDK runs from the virtualenv the interop tests use (made on first run under
//! the target directory: needs Python 3 with venv and PyPI).
//!
//! Run: `cargo bench --features testing --bench python_peer`
//! (`TOWER_OPIK_BENCH_SPANS`, default 20000; `TOWER_OPIK_BENCH_ROUNDS`, default 5).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{PAYLOADS, llm_payload, llm_span, summary};
use serde_json::{Value, json};
use tower_opik::testing::LocalOpik;
use tower_opik::{OpikConfig, SpanStore};

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Round {
    seconds: f64,
    wire_bytes: usize,
    json_bytes: usize,
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// What LocalOpik's log says was sent to the spans endpoint, then forgets it.
fn sent_bytes(opik: &LocalOpik) -> (usize, usize) {
    let log = opik.requests();
    let spans = log.iter().filter(|r| r.path.ends_with("/spans/batch"));
    let bytes = spans.fold((0, 0), |(w, j), r| (w + r.wire_size, j + r.decoded_size));
    opik.clear();
    bytes
}

fn python_round(python: &Path, opik: &LocalOpik, payloads: &[Value], n: usize) -> Round {
    let home = std::env::temp_dir().join(format!("tower-opik-bench-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let mut child = Command::new(python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/python/sdk_export.py"))
        .env("OPIK_URL_OVERRIDE", opik.base_url())
        .env("OPIK_WORKSPACE", "default")
        .env("OPIK_PROJECT_NAME", "bench")
        .env_remove("OPIK_API_KEY")
        .env_remove("OPIK_CONFIG_PATH")
        .env("HOME", &home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run the Python SDK");
    let job = json!({"n": n, "payloads": payloads});
    child
        .stdin
        .take()
        .unwrap()
        .write_all(job.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let _ = std::fs::remove_dir_all(&home);
    assert!(out.status.success(), "the Python SDK script failed");
    let result: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(result["flushed"], true, "{result}");
    let arrived = opik
        .spans_of_trace(result["trace_id"].as_str().unwrap())
        .len();
    assert_eq!(arrived, n, "every Python span must arrive");
    let (wire_bytes, json_bytes) = sent_bytes(opik);
    Round {
        seconds: result["seconds"].as_f64().unwrap(),
        wire_bytes,
        json_bytes,
    }
}

async fn rust_round(opik: &LocalOpik, payloads: &[Value], n: usize) -> Round {
    let store = SpanStore::builder()
        .config(OpikConfig::local(&opik.base_url()))
        .project_name("bench")
        .queue_capacity(n + 16)
        .build()
        .unwrap();
    let start = Instant::now();
    let root = store.root_span("bench");
    for i in 0..n {
        llm_span(&payloads[i % payloads.len()], &root);
    }
    root.end();
    let report = store.shutdown(Duration::from_secs(600)).await;
    let seconds = start.elapsed().as_secs_f64();
    assert!(
        report.completed && report.stats.sent == n as u64 + 2,
        "{report}"
    );
    let arrived = opik
        .spans_of_trace(root.trace_id().unwrap().to_string())
        .len();
    assert_eq!(arrived, n + 1, "every span must arrive");
    let (wire_bytes, json_bytes) = sent_bytes(opik);
    Round {
        seconds,
        wire_bytes,
        json_bytes,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` asks every bench target
    }
    let n = env_number("TOWER_OPIK_BENCH_SPANS", 20_000);
    let rounds = env_number("TOWER_OPIK_BENCH_ROUNDS", 5);
    let python = tower_opik::testing::python_sdk(&target_dir()).expect("the official SDK");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let opik = rt.block_on(LocalOpik::start()).unwrap();
    let payloads: Vec<Value> = (0..PAYLOADS as u64).map(llm_payload).collect();

    // One untimed round each: the venv's imports, the connection pool, the page cache.
    let _ = python_round(&python, &opik, &payloads, 100);
    let _ = rt.block_on(rust_round(&opik, &payloads, 100));

    let (mut py, mut rs) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let p = python_round(&python, &opik, &payloads, n);
        let r = rt.block_on(rust_round(&opik, &payloads, n));
        println!(
            "round {}: Python SDK {:.0} spans/s, tower-opik {:.0} spans/s",
            round + 1,
            n as f64 / p.seconds,
            n as f64 / r.seconds
        );
        py.push(p);
        rs.push(r);
    }
    let rate = |rounds: &[Round]| summary(rounds.iter().map(|r| n as f64 / r.seconds).collect());
    let bytes = |rounds: &[Round]| {
        let r = &rounds[0];
        (
            r.wire_bytes as f64 / n as f64,
            r.json_bytes as f64 / n as f64,
        )
    };
    let (py_rate, rs_rate) = (rate(&py), rate(&rs));
    println!("\n{n} LLM spans a round, {rounds} rounds each, median [min, max]:");
    for (name, (median, min, max), (wire, json)) in [
        ("official Python SDK", py_rate, bytes(&py)),
        ("tower-opik", rs_rate, bytes(&rs)),
    ] {
        println!(
            "  {name:<20} {median:>9.0} spans/s [{min:.0}, {max:.0}]; {wire:.0} bytes/span sent ({json:.0} of JSON)"
        );
    }
    println!(
        "  ratio (medians): tower-opik ships {:.1}x the Python SDK's spans per second",
        rs_rate.0 / py_rate.0
    );
}
