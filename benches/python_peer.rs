//! End-to-end export against the official Python SDK and against serde_json alone, side by
//! side in one run, with LocalOpik in a process of its own (this binary, run with
//! `--serve-local-opik`), so that the exporting process pays only for its own work.
//!
//! Each round, on the same LLM-call spans (same fields, same texts):
//! - **Python SDK**: `benches/python/sdk_export.py` makes N finished spans with `Opik.span`
//!   and `flush`es; it reports its wall time and its own CPU time;
//! - **tower-opik, span API**: N child spans made through the span API, then
//!   `SpanStore::shutdown`: the same work as the Python side;
//! - **tower-opik export**: N ready-made records (as the store receives them from ended
//!   spans) recorded and shut down, gzipped and plain: the cost of export alone;
//! - **serde_json alone**: the same N records serialized into one batch body: the CPU limit
//!   of export.
//!
//! Wall time runs from the first span to the end of the flush. CPU time is the exporting
//! process's: for Rust, the time its threads ran (`/proc/self/task/*/schedstat`); for
//! Python, `time.process_time()`. Every span is checked to have arrived.
//!
//! The Python SDK runs from the virtualenv the interop tests use (made on first run under
//! the target directory: needs Python 3 with venv and PyPI).
//!
//! Run: `cargo bench --features testing --bench python_peer`
//! (`TOWER_OPIK_BENCH_SPANS`, default 20000; `TOWER_OPIK_BENCH_ROUNDS`, default 5).

mod common;
#[path = "../tests/common/python.rs"]
#[allow(dead_code, unreachable_pub)]
mod python_sdk;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    PAYLOADS, SerdeSpan, env_number, llm_payload, llm_records, llm_span, serde_batch,
    serde_records, summary,
};
use serde_json::{Value, json};
use tower_opik::record::SpanRecord;
use tower_opik::testing::LocalOpik;
use tower_opik::{OpikConfig, SpanStore};

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// This process's CPU time so far, in seconds: the sum over its threads of the time they
/// ran (`/proc/self/task/*/schedstat`, in nanoseconds). Every thread that works here (the
/// runtime's workers, this one) lives as long as the process.
fn cpu_seconds() -> f64 {
    // The kernel brings a thread's count up to date when it is scheduled: yield, so that
    // this thread's own count is current (idle workers are parked, so theirs are).
    std::thread::yield_now();
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let stat = std::fs::read_to_string(task.unwrap().path().join("schedstat"));
        if let Some(run) = stat
            .ok()
            .and_then(|s| s.split(' ').next()?.parse::<u64>().ok())
        {
            ns += run;
        }
    }
    ns as f64 / 1e9
}

/// The child: LocalOpik until stdin closes. Prints its base URL, then answers each line
/// `TRACE_ID` with `ARRIVED WIRE_BYTES JSON_BYTES` (spans of that trace; bytes sent to the
/// spans endpoint since the last question) and forgets everything.
fn serve_local_opik() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let opik = rt.block_on(LocalOpik::start()).unwrap();
    println!("{}", opik.base_url());
    for line in std::io::stdin().lock().lines() {
        let trace = line.unwrap();
        let arrived = opik.spans_of_trace(trace.trim()).len();
        let log = opik.requests();
        let spans = log.iter().filter(|r| r.path.ends_with("/spans/batch"));
        let (wire, json) = spans.fold((0, 0), |(w, j), r| (w + r.wire_size, j + r.decoded_size));
        opik.clear();
        println!("{arrived} {wire} {json}");
    }
}

/// LocalOpik in a child process.
struct RemoteOpik {
    child: Child,
    ask: ChildStdin,
    answers: BufReader<ChildStdout>,
    base_url: String,
}

impl RemoteOpik {
    fn start() -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .arg("--serve-local-opik")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start LocalOpik");
        let ask = child.stdin.take().unwrap();
        let mut answers = BufReader::new(child.stdout.take().unwrap());
        let mut base_url = String::new();
        answers.read_line(&mut base_url).unwrap();
        Self {
            child,
            ask,
            answers,
            base_url: base_url.trim().to_owned(),
        }
    }

    /// How many spans of `trace` arrived, and the span bytes sent (wire, JSON) since the
    /// last call.
    fn collect(&mut self, trace: &str) -> (usize, usize, usize) {
        writeln!(self.ask, "{trace}").unwrap();
        let mut line = String::new();
        self.answers.read_line(&mut line).unwrap();
        let n: Vec<usize> = line
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        (n[0], n[1], n[2])
    }
}

impl Drop for RemoteOpik {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One measurement: wall and CPU seconds, bytes on the wire and of JSON.
#[derive(Default)]
struct Run {
    seconds: f64,
    cpu: f64,
    wire: usize,
    json: usize,
}

fn python_run(python: &Path, opik: &mut RemoteOpik, payloads: &[Value], n: usize) -> Run {
    let home = std::env::temp_dir().join(format!("tower-opik-bench-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let mut child = Command::new(python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/python/sdk_export.py"))
        .env("OPIK_URL_OVERRIDE", &opik.base_url)
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
    let (arrived, wire, json) = opik.collect(result["trace_id"].as_str().unwrap());
    assert_eq!(arrived, n, "every Python span must arrive");
    Run {
        seconds: result["seconds"].as_f64().unwrap(),
        cpu: result["cpu_seconds"].as_f64().unwrap(),
        wire,
        json,
    }
}

fn store(url: &str, n: usize, gzip: bool) -> SpanStore {
    let builder = SpanStore::builder()
        .config(OpikConfig::local(url))
        .project_name("bench")
        .queue_capacity(n + 16);
    if gzip {
        builder
    } else {
        builder.gzip_threshold(usize::MAX)
    }
    .build()
    .unwrap()
}

/// Times `work` (which returns the trace to check and how many spans it holds) on `rt`.
fn timed(
    rt: &tokio::runtime::Runtime,
    opik: &mut RemoteOpik,
    work: impl std::future::Future<Output = (String, usize)>,
) -> Run {
    let (cpu, start) = (cpu_seconds(), Instant::now());
    let (trace, spans) = rt.block_on(work);
    let (seconds, cpu) = (start.elapsed().as_secs_f64(), cpu_seconds() - cpu);
    let (arrived, wire, json) = opik.collect(&trace);
    assert_eq!(arrived, spans, "every span must arrive");
    Run {
        seconds,
        cpu,
        wire,
        json,
    }
}

/// The span API: the same work as the Python side.
async fn span_api(url: String, payloads: &[Value], n: usize) -> (String, usize) {
    let store = store(&url, n, true);
    let root = store.root_span("bench");
    for i in 0..n {
        llm_span(&payloads[i % payloads.len()], &root);
    }
    root.end();
    let report = store.shutdown(Duration::from_secs(600)).await;
    assert!(
        report.completed && report.stats.sent == n as u64 + 2,
        "{report}"
    );
    (root.trace_id().unwrap().to_string(), n + 1)
}

/// Export alone: ready-made records of one trace.
async fn export(url: String, records: Vec<SpanRecord>, gzip: bool) -> (String, usize) {
    let (n, trace) = (records.len(), records[0].trace_id.to_string());
    let store = store(&url, n, gzip);
    for r in records {
        store.record(r);
    }
    let report = store.shutdown(Duration::from_secs(600)).await;
    assert!(
        report.completed && report.stats.sent == n as u64,
        "{report}"
    );
    (trace, n)
}

/// serde_json alone: the records into one batch body, then (when `free`) freeing them, as
/// anything that owns the records must.
fn serde_alone(records: Vec<SerdeSpan>, free: bool) -> Run {
    let (cpu, start) = (cpu_seconds(), Instant::now());
    let body = serde_batch(&records);
    std::hint::black_box(&body);
    let kept = if free {
        drop(records);
        None
    } else {
        Some(records)
    };
    let run = Run {
        seconds: start.elapsed().as_secs_f64(),
        cpu: cpu_seconds() - cpu,
        wire: body.len(),
        json: body.len(),
    };
    drop(kept); // outside the measure
    run
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return; // `cargo bench -- --list` asks every bench target
    }
    if args.iter().any(|a| a == "--serve-local-opik") {
        return serve_local_opik();
    }
    let n: usize = env_number("TOWER_OPIK_BENCH_SPANS", 20_000);
    let rounds: usize = env_number("TOWER_OPIK_BENCH_ROUNDS", 5);
    let python = python_sdk::python_sdk(&target_dir()).expect("the official SDK");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut opik = RemoteOpik::start();
    let payloads: Vec<Value> = (0..PAYLOADS as u64).map(llm_payload).collect();

    // One untimed run each: the venv's imports, the connection pool, the page cache.
    let _ = python_run(&python, &mut opik, &payloads, 100);
    let warm_up = span_api(opik.base_url.clone(), &payloads, 100);
    let _ = timed(&rt, &mut opik, warm_up);

    const NAMES: [&str; 6] = [
        "official Python SDK",
        "tower-opik, span API",
        "tower-opik export, gzip",
        "tower-opik export, plain",
        "serde_json alone",
        "serde_json, then free",
    ];
    let mut runs: Vec<Vec<Run>> = NAMES.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        runs[0].push(python_run(&python, &mut opik, &payloads, n));
        let span_api = span_api(opik.base_url.clone(), &payloads, n);
        runs[1].push(timed(&rt, &mut opik, span_api));
        for (i, gzip) in [(2, true), (3, false)] {
            let records = llm_records(n);
            let export = export(opik.base_url.clone(), records, gzip);
            runs[i].push(timed(&rt, &mut opik, export));
        }
        runs[4].push(serde_alone(serde_records(n), false));
        runs[5].push(serde_alone(serde_records(n), true));
        println!(
            "round {}: Python SDK {:.0} spans/s, tower-opik {:.0} spans/s",
            round + 1,
            n as f64 / runs[0][round].seconds,
            n as f64 / runs[1][round].seconds
        );
    }

    let per = |x: f64| x / n as f64;
    println!("\n{n} LLM spans a run, {rounds} runs each; LocalOpik in its own process:");
    println!(
        "  {:<26} {:>9} {:>20} {:>13} {:>18}",
        "", "spans/s", "[min, max]", "CPU µs/span", "bytes/span (JSON)"
    );
    let mut rates = Vec::new();
    let mut cpu = Vec::new();
    for (name, runs) in NAMES.iter().zip(&runs) {
        let (median, min, max) = summary(runs.iter().map(|r| n as f64 / r.seconds).collect());
        let cpu_per_span = per(runs.iter().map(|r| r.cpu).sum::<f64>()) / runs.len() as f64;
        let last = &runs[runs.len() - 1];
        println!(
            "  {name:<26} {median:>9.0} {:>20} {:>13.2} {:>10.0} ({:.0})",
            format!("[{min:.0}, {max:.0}]"),
            cpu_per_span * 1e6,
            per(last.wire as f64),
            per(last.json as f64),
        );
        rates.push(median);
        cpu.push(cpu_per_span);
    }
    println!(
        "  tower-opik ships {:.1}x the Python SDK's spans per second, at {:.1}x less CPU a span",
        rates[1] / rates[0],
        cpu[0] / cpu[1]
    );
    println!(
        "  export CPU a span over serde_json alone: {:.2}x gzipped, {:.2}x plain; \
         over serde_json then freeing the records: {:.2}x gzipped, {:.2}x plain",
        cpu[2] / cpu[4],
        cpu[3] / cpu[4],
        cpu[2] / cpu[5],
        cpu[3] / cpu[5]
    );
}
