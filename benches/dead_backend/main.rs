//! Memory, and with a spool disk, under a dead backend: a steady stream of LLM-call spans
//! for a minute while every export call is refused (nothing listens on the backend's port).
//!
//! Checks, and exits with an error when one fails:
//! - peak RSS stays within the queue bound plus a small constant: at most
//!   `queue_capacity + (export_concurrency + 2) × max_batch_items` records (the queue, the
//!   batches being retried, and the span and trace batches being filled) of the measured
//!   per-record footprint, plus 16 MiB;
//! - the drop counter equals what was not queued: records made (counted here) = recorded
//!   + dropped;
//! - the records still held (recorded − sent − failed − spooled) stay within the same bound.
//!
//! The per-record footprint is measured in a child process (the same binary with
//! `--footprint`): the RSS growth of 10,000 such records held at once with their JSON (a
//! batched record is held with its encoding).
//!
//! Run: `cargo bench --features testing --bench dead_backend`
//! (`TOWER_OPIK_BENCH_SECONDS`, default 60; `TOWER_OPIK_BENCH_RATE` spans/s, default 5000).
//!
//! With `TOWER_OPIK_BENCH_SPOOL=1` the store spools to a fresh directory under the system's
//! temporary directory (removed at the end), bounded by `TOWER_OPIK_BENCH_SPOOL_MIB`
//! (default 1024, the store's default), and the bench reports the spool's disk bytes beside
//! RSS. It checks, besides the above with the same RSS bound (the spool must not make memory
//! worse):
//! - no record is dropped at the queue (`dropped` = 0): the spool takes what Opik does not;
//! - after shutdown, recorded = spooled + spool_dropped + pending: every record is on disk
//!   or counted as not fitting (`spool_dropped`, reason `spool full`), none lost otherwise;
//! - the spool's bytes stay within `spool_max_bytes`;
//! - the files on disk are what the stats say: the sizes of the `*.json` files add up to
//!   `spool_bytes`, the record counts in their names to `spool_records` and `spooled`, each
//!   file matches the CRC-32 in its name, and no `*.tmp` or `*.corrupt` file is left;
//! - when the spool filled (`spool_dropped` > 0): the drops are all `spool full`, and the
//!   room left is less than one batch (the largest file), so what was dropped did not fit.
//!
//! With `--test` (CI's smoke run: `cargo test --all-features --bench '*' -- --test`), it runs three
//! short children of itself one after the other, each `TOWER_OPIK_BENCH_SECONDS` long
//! (default 3): without a spool, with the default spool, and with a 4 MiB spool that fills.
//!
//! With `TOWER_OPIK_BENCH_PAYLOAD_KIB` set (1024 for the 1 MB prompts), each request
//! is one root span whose input is that large (rate default 100/s), and the bound checked is
//! the store's byte bound instead: `max_queued_bytes + (export_concurrency + 2) ×
//! max_batch_bytes` plus 16 MiB.

#[path = "../common/mod.rs"]
mod common;
mod spool_dir;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use spool_dir::{OnDisk, SpoolDir};

use common::{PAYLOADS, env_number, llm_payload, llm_records, llm_span, rss, summary};
use serde_json::Value;
use tower_opik::store::{LossReason, SpanStoreBuilder, StoreStats};
use tower_opik::{OpikConfig, SpanStore};

const QUEUE: usize = 2048;
const BATCH: usize = 1000;
const CONCURRENCY: usize = 4;
const HELD_AT_MOST: usize = QUEUE + (CONCURRENCY + 2) * BATCH;
/// With a spool, up to 4 more batches, being written to it (or, when it refuses them,
/// retried in memory as without a spool).
const SPOOL_WRITES: usize = 4;

/// The records the store may hold: the queue, the batches in flight and being filled, and
/// with a spool those being written to it.
fn held_at_most(spool: bool) -> usize {
    HELD_AT_MOST + if spool { SPOOL_WRITES * BATCH } else { 0 }
}

/// Whether the spool has refused a batch by now: less room left than the largest file
/// (every batch of a run is about the same size).
fn spool_refused(spool: &SpoolDir) -> bool {
    let disk = OnDisk::read(&spool.path, false);
    disk.files > 0 && spool.max_bytes.saturating_sub(disk.bytes) < disk.largest
}
const SLACK: u64 = 16 << 20;

/// The smoke run's spool that fills (`--test`).
const SMOKE_SMALL_SPOOL_MIB: u64 = 4;

/// Bytes of RSS per record, held 10,000 at once (run in a fresh process).
fn footprint() -> u64 {
    let (_, before) = rss().expect("/proc/self/status");
    let records: Vec<_> = llm_records(10_000)
        .into_iter()
        .map(|r| {
            let json = serde_json::to_vec(&r).unwrap();
            (r, json)
        })
        .collect();
    let (_, after) = rss().unwrap();
    std::hint::black_box(&records);
    after.saturating_sub(before) / 10_000
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|a| a == "--footprint") {
        println!("{}", footprint());
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|a| a == "--test") {
        return smoke(&args[0]);
    }
    let seconds: u64 = env_number("TOWER_OPIK_BENCH_SECONDS", 60);
    let spool = SpoolDir::from_env();
    let big_kib: usize = env_number("TOWER_OPIK_BENCH_PAYLOAD_KIB", 0);
    if big_kib > 0 {
        let rate = env_number("TOWER_OPIK_BENCH_RATE", 100);
        return big_payloads(seconds, big_kib, rate, spool.as_ref());
    }
    llm_spans(
        seconds,
        env_number("TOWER_OPIK_BENCH_RATE", 5000),
        spool.as_ref(),
    )
}

/// CI's smoke run: each mode briefly, each in a process of its own (peak RSS is per
/// process), one after the other.
fn smoke(me: &str) -> ExitCode {
    let seconds: u64 = env_number("TOWER_OPIK_BENCH_SECONDS", 3);
    let small = SMOKE_SMALL_SPOOL_MIB.to_string();
    let modes: [(&str, &str, Option<&str>); 3] = [
        ("no spool", "0", None),
        ("spool", "1", None),
        ("a spool too small for the run", "1", Some(&small)),
    ];
    let mut ok = true;
    for (what, spool, mib) in modes {
        println!("--- smoke run, {what} ---");
        let mut child = std::process::Command::new(me);
        child
            .env("TOWER_OPIK_BENCH_SECONDS", seconds.to_string())
            .env("TOWER_OPIK_BENCH_SPOOL", spool);
        match mib {
            Some(mib) => child.env("TOWER_OPIK_BENCH_SPOOL_MIB", mib),
            None => child.env_remove("TOWER_OPIK_BENCH_SPOOL_MIB"),
        };
        let status = child.status().expect("run the bench in a child process");
        ok &= status.success();
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn llm_spans(seconds: u64, rate: u64, spool: Option<&SpoolDir>) -> ExitCode {
    let child = std::process::Command::new(std::env::args().next().unwrap())
        .arg("--footprint")
        .output()
        .expect("measure the footprint");
    let per_record: u64 = String::from_utf8_lossy(&child.stdout)
        .trim()
        .parse()
        .expect("a number");

    let (rt, dead) = runtime_and_dead_backend();
    let payloads: Vec<Value> = (0..PAYLOADS as u64).map(llm_payload).collect();
    let builder = SpanStore::builder()
        .config(OpikConfig::local(&format!("http://{dead}/api/")))
        .queue_capacity(QUEUE)
        .max_batch_items(BATCH)
        .export_concurrency(CONCURRENCY);
    let store = build(&rt, builder, spool);
    let per_tick = (rate / 100).max(1) as usize; // every 10 ms
    let mut i = 0usize;
    let load = run_load(
        &rt,
        &store,
        Duration::from_millis(10),
        seconds,
        spool.is_some(),
        |store| {
            let root = store.root_span("request");
            for _ in 0..per_tick {
                llm_span(&payloads[i % PAYLOADS], &root);
                i += 1;
            }
            root.end();
            per_tick as u64 + 2 // the children, the root span and its trace
        },
    );
    let stats = &load.stats;
    let held_bound = held_at_most(spool.is_some());
    let bound = held_bound as u64 * per_record + SLACK;
    let held = stats.pending();
    println!(
        "dead backend, {seconds} s at {rate} spans/s (queue {QUEUE}, batches of {BATCH}, \
         {CONCURRENCY} in flight: at most {held_bound} records held){}:",
        spool.map(SpoolDir::describe).unwrap_or_default()
    );
    println!("  records made      {}", load.made);
    println!(
        "  recorded (queued) {}, dropped {}, failed {}, sent {}, spooled {}, still held {held}",
        stats.recorded, stats.dropped, stats.failed, stats.sent, stats.spooled
    );
    println!(
        "  export calls      {} ({} retries)",
        stats.export_calls, stats.retries
    );
    println!("  per record        {per_record} bytes of RSS");
    load.print_rss(bound);
    print_disk(&load, spool);
    let mut checks = Checks(true);
    checks.check(
        load.grew() <= bound,
        "peak RSS within the queue bound plus 16 MiB",
    );
    checks.check(
        stats.recorded + stats.dropped == load.made,
        "made = recorded + dropped (the drop counter is what was not queued)",
    );
    checks.check(
        held <= held_bound as u64,
        "records held (recorded − sent − failed − spooled) within the bound",
    );
    if let Some(spool) = spool {
        checks.check(
            stats.dropped == 0 || spool_refused(spool),
            "no record dropped at the queue while the spool has room: the spool takes what \
             Opik does not (once it is full, batches are retried in memory as without one)",
        );
    }
    finish(&rt, store, spool, checks)
}

/// A 2-worker runtime, and a port nobody listens on: every export call is refused.
fn runtime_and_dead_backend() -> (tokio::runtime::Runtime, std::net::SocketAddr) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    (rt, dead)
}

/// The store, with the spool when there is one.
fn build(
    rt: &tokio::runtime::Runtime,
    builder: SpanStoreBuilder,
    spool: Option<&SpoolDir>,
) -> SpanStore {
    let builder = match spool {
        Some(spool) => builder
            .spool_dir(&spool.path)
            .spool_max_bytes(spool.max_bytes),
        None => builder,
    };
    let _entered = rt.enter();
    builder.build().unwrap()
}

/// What a load left: the records made, RSS (sampled at every tick), and the store's
/// counters at its end.
struct Load {
    made: u64,
    seconds: f64,
    baseline: u64,
    /// The highest RSS sampled, or the kernel's high-water mark if higher.
    peak: u64,
    /// RSS at every tick.
    samples: Vec<u64>,
    stats: StoreStats,
    /// When the spool first refused a batch for lack of room (seconds into the load).
    spool_full_at: Option<f64>,
}

/// Calls `make` every `every` for `seconds` (it returns the records it made), sampling RSS
/// at every tick and, with a spool, whether it has filled.
fn run_load(
    rt: &tokio::runtime::Runtime,
    store: &SpanStore,
    every: Duration,
    seconds: u64,
    spool: bool,
    mut make: impl FnMut(&SpanStore) -> u64,
) -> Load {
    rt.block_on(async {
        let (_, baseline) = rss().unwrap();
        let mut samples =
            Vec::with_capacity((seconds * 1000 / every.as_millis().max(1) as u64) as usize);
        let mut ticker = tokio::time::interval(every);
        let started = Instant::now();
        let mut made = 0u64;
        let mut spool_full_at = None;
        while started.elapsed() < Duration::from_secs(seconds) {
            ticker.tick().await;
            made += make(store);
            samples.push(rss().unwrap().1);
            if spool && spool_full_at.is_none() && store.stats().spool_dropped > 0 {
                spool_full_at = Some(started.elapsed().as_secs_f64());
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        let stats = store.stats();
        let (hwm, _) = rss().unwrap();
        let peak = samples.iter().copied().max().unwrap_or(baseline).max(hwm);
        Load {
            made,
            seconds: elapsed,
            baseline,
            peak,
            samples,
            stats,
            spool_full_at,
        }
    })
}

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

impl Load {
    fn grew(&self) -> u64 {
        self.peak.saturating_sub(self.baseline)
    }

    /// RSS at start and at its peak, and the samples' median and range, over the whole load
    /// and in each sixth of it.
    fn print_rss(&self, bound: u64) {
        println!(
            "  RSS               {:.1} MiB at start, {:.1} MiB peak: grew {:.1} MiB; bound {:.1} MiB",
            mib(self.baseline),
            mib(self.peak),
            mib(self.grew()),
            mib(bound)
        );
        if self.samples.is_empty() {
            return;
        }
        let (median, min, max) = summary(self.samples.iter().map(|&b| mib(b)).collect());
        println!(
            "  RSS samples       median {median:.1} MiB [{min:.1}, {max:.1}] over {} samples \
             (one a tick)",
            self.samples.len()
        );
        // A footprint that grows shows as rising medians.
        let sixth = self.samples.len().div_ceil(6);
        let medians: Vec<String> = self
            .samples
            .chunks(sixth)
            .map(|part| {
                let (median, min, max) = summary(part.iter().map(|&b| mib(b)).collect());
                format!("{median:.1} [{min:.1}, {max:.1}]")
            })
            .collect();
        println!(
            "  RSS by sixths     median [min, max] MiB: {}",
            medians.join("; ")
        );
    }
}

/// The disk the spool takes at the end of the load, beside RSS (none without a spool).
fn print_disk(load: &Load, spool: Option<&SpoolDir>) {
    let Some(spool) = spool else {
        println!("  disk              0 bytes (no spool)");
        return;
    };
    let during = &load.stats;
    // The files at the end of the load (names and sizes only: the store is still running).
    let listed = OnDisk::read(&spool.path, false);
    let per_s = |x: f64| x / load.seconds;
    println!(
        "  disk              {} bytes ({:.1} MiB) in {} files at the end of the load \
         (spool_max_bytes {:.0} MiB)",
        during.spool_bytes,
        mib(during.spool_bytes),
        listed.files,
        mib(spool.max_bytes)
    );
    println!(
        "  spool rate        {:.0} records/s, {:.2} MiB/s, {:.1} files/s (each written, \
         fsynced, renamed, and its directory fsynced)",
        per_s(during.spooled as f64),
        per_s(mib(during.spool_bytes)),
        per_s(listed.files as f64)
    );
    match load.spool_full_at {
        Some(at) => println!(
            "  spool full        after {at:.1} s: {} records dropped by the spool since",
            during.spool_dropped
        ),
        None => println!(
            "  spool full        never ({} records dropped by the spool)",
            during.spool_dropped
        ),
    }
}

/// Shuts the store down, and with a spool checks what it holds then against the files.
fn finish(
    rt: &tokio::runtime::Runtime,
    store: SpanStore,
    spool: Option<&SpoolDir>,
    mut checks: Checks,
) -> ExitCode {
    let Some(spool) = spool else {
        let report = rt.block_on(store.shutdown(Duration::from_millis(100)));
        println!("  at shutdown: {report}");
        return checks.exit_code();
    };
    let started = Instant::now();
    let report = rt.block_on(store.shutdown(Duration::from_millis(100)));
    let took = started.elapsed();
    println!(
        "  at shutdown ({:.0} ms): {report}",
        took.as_secs_f64() * 1e3
    );
    let after = &report.stats;
    let disk = OnDisk::read(&spool.path, true);
    println!(
        "  on disk after     {} files, {} bytes ({:.1} MiB), {} records by their names, \
         largest file {} bytes; {} failing their CRC-32; others: {:?}",
        disk.files,
        disk.bytes,
        mib(disk.bytes),
        disk.records,
        disk.largest,
        disk.bad_crc,
        disk.others
    );
    println!(
        "  spool stats after spooled {}, spool_dropped {}, spool_records {}, spool_bytes {}, \
         replayed {}, failed {}, pending {}",
        after.spooled,
        after.spool_dropped,
        after.spool_records,
        after.spool_bytes,
        after.replayed,
        after.failed,
        after.pending()
    );
    checks.check(
        after.spooled + after.spool_dropped + after.pending() == after.recorded,
        "after shutdown, recorded = spooled + spool_dropped + pending (nothing lost otherwise)",
    );
    checks.check(
        after.spool_bytes <= spool.max_bytes,
        "spool bytes within spool_max_bytes",
    );
    checks.check(
        disk.bytes == after.spool_bytes,
        "spool_bytes = the sizes of the *.json files on disk",
    );
    checks.check(
        disk.records == after.spool_records && disk.records == after.spooled,
        "spool_records = spooled = the records the files' names count",
    );
    checks.check(
        disk.bad_crc == 0 && disk.others.is_empty(),
        "every file matches its CRC-32; no *.tmp or *.corrupt file left",
    );
    if after.spool_dropped > 0 {
        let full: u64 = after
            .losses
            .iter()
            .filter(|l| l.reason == LossReason::SpoolFull)
            .map(|l| l.count)
            .sum();
        let room = spool.max_bytes.saturating_sub(after.spool_bytes);
        println!(
            "  spool full        {full} records dropped as `spool full`; room left {room} bytes, \
             largest file {} bytes",
            disk.largest
        );
        checks.check(
            full == after.spool_dropped && after.failed == after.spool_dropped,
            "what the spool dropped is all `spool full` (and all that failed)",
        );
        checks.check(
            room < disk.largest,
            "the spool dropped only when a batch did not fit (room left < the largest file)",
        );
    }
    checks.exit_code()
}

/// PASS / FAIL lines, and whether all passed.
struct Checks(bool);

impl Checks {
    fn check(&mut self, pass: bool, what: &str) {
        println!("  {} {what}", if pass { "PASS" } else { "FAIL" });
        self.0 &= pass;
    }

    fn exit_code(&self) -> ExitCode {
        if self.0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

/// The store's defaults for its byte bound, as `big_payloads` builds it.
const MAX_QUEUED_BYTES: u64 = 64 << 20;
const MAX_BATCH_BYTES: u64 = 8 << 20;

/// Root spans with a `kib`-KiB input each, at `rate` a second, against the dead backend:
/// RSS must stay within the byte bound.
fn big_payloads(seconds: u64, kib: usize, rate: u64, spool: Option<&SpoolDir>) -> ExitCode {
    let (rt, dead) = runtime_and_dead_backend();
    let prompt = serde_json::json!({ "prompt": "p".repeat(kib * 1024) });
    let builder = SpanStore::builder()
        .config(OpikConfig::local(&format!("http://{dead}/api/")))
        .max_queued_bytes(MAX_QUEUED_BYTES as usize)
        .max_batch_bytes(MAX_BATCH_BYTES as usize)
        .export_concurrency(CONCURRENCY);
    let store = build(&rt, builder, spool);
    let every = Duration::from_micros(1_000_000 / rate.max(1));
    let load = run_load(&rt, &store, every, seconds, spool.is_some(), |store| {
        let root = store.root_span("chat");
        root.set_input(&prompt);
        root.end();
        2 // the span and its trace
    });
    let stats = &load.stats;
    let spool_writes = if spool.is_some() {
        SPOOL_WRITES as u64
    } else {
        0
    };
    let bound =
        MAX_QUEUED_BYTES + (CONCURRENCY as u64 + 2 + spool_writes) * MAX_BATCH_BYTES + SLACK;
    println!(
        "dead backend, {seconds} s at {rate} requests/s with a {kib} KiB input each \
         (max_queued_bytes {:.0} MiB, batches of at most {:.0} MiB, {CONCURRENCY} in flight){}:",
        mib(MAX_QUEUED_BYTES),
        mib(MAX_BATCH_BYTES),
        spool.map(SpoolDir::describe).unwrap_or_default()
    );
    println!(
        "  records made      {} ({:.0} MiB of inputs)",
        load.made,
        mib(load.made / 2 * (kib as u64) * 1024)
    );
    println!(
        "  recorded (queued) {}, dropped {}, failed {}, sent {}, spooled {}",
        stats.recorded, stats.dropped, stats.failed, stats.sent, stats.spooled
    );
    load.print_rss(bound);
    print_disk(&load, spool);
    let mut checks = Checks(true);
    checks.check(
        load.grew() <= bound,
        "peak RSS within the byte bound plus 16 MiB",
    );
    checks.check(
        stats.recorded + stats.dropped == load.made,
        "made = recorded + dropped",
    );
    if let Some(spool) = spool {
        checks.check(
            stats.dropped == 0 || spool_refused(spool),
            "no record dropped at the queue while the spool has room",
        );
    }
    finish(&rt, store, spool, checks)
}
