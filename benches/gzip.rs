//! Gzip of the REST exporter's batch bodies, by level and backend (issue 16): what each
//! costs in CPU for each byte it saves on the wire.
//!
//! The exporter gzips a batch body of at least 256 bytes with flate2's `GzEncoder` on
//! flate2's default backend (miniz_oxide) at `Compression::fast()` (level 1). Here, side by
//! side in one build:
//!
//! - **flate2/miniz_oxide**: the exporter's own `gzip` function, with the level as a
//!   parameter (levels 1, 2, 3, 4, 6, 9);
//! - **zlib-rs**: the same gzip stream (window bits 15 + 16) from `zlib_rs::compress_slice`,
//!   the crate behind flate2's `zlib-rs` feature, with the features that flate2 gives it
//!   (`std`: runtime detection of SIMD; `rust-allocator`). flate2's `zlib-rs` feature cannot
//!   be compared in one build: it switches flate2's backend for every target. Through
//!   flate2, zlib-rs would also pay flate2's `Write` adapter, as miniz_oxide does here.
//!
//! Bodies, each the exact batch body the exporter sends (`ExportBatch::json_body`):
//! 100 LLM span records of benches/common (~1.5 KB each), 1,000 small request spans (a name,
//! start and end times, four `http.*` metadata entries), and one LLM span whose user message
//! is 64 KiB of prompt text (words drawn from a 300-word vocabulary with Zipf frequencies;
//! the crate's README as the prompt is printed beside it as a check on the ratio). Then
//! small bodies, for the threshold: batches of 1 to 64 request spans and a body of exactly
//! 300 bytes.
//!
//! Two measurements: criterion's wall-clock time per body (groups `gzip/<body>`), and a
//! table printed at the end with the **thread CPU time** per body (median of 15 samples of
//! about 20 ms each; `CLOCK_THREAD_CPUTIME_ID` through the `cpu-time` crate, so time the
//! thread spends preempted by other work on the machine is not counted), the compressed
//! size, and the derived ns of CPU per byte saved, ns per KB of body and MB/s.
//!
//! Run: `cargo bench --features otel --bench gzip` (about 2 minutes; `otel` only because
//! benches/common uses the OTel SDK).

mod common;

use std::hint::black_box;
use std::io::{Read, Write};
use std::time::{Duration, UNIX_EPOCH};

use cpu_time::ThreadTime;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use serde_json::json;
use tower_opik::Timestamp;
use tower_opik::record::{Payload, Record, SpanRecord};
use tower_opik::store::{ExportBatch, RecordKind};
use uuid::Uuid;

/// The levels measured on each backend.
const LEVELS: [u32; 6] = [1, 2, 3, 4, 6, 9];

/// The levels of the small bodies' table.
const SMALL_LEVELS: [u32; 3] = [1, 2, 6];

/// What `content-encoding: gzip\r\n` adds to a gzipped request.
const GZIP_HEADER_BYTES: usize = "content-encoding: gzip\r\n".len();

#[derive(Clone, Copy, Debug)]
enum Backend {
    Miniz,
    ZlibRs,
}

const BACKENDS: [Backend; 2] = [Backend::Miniz, Backend::ZlibRs];

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Miniz => "flate2/miniz_oxide",
            Backend::ZlibRs => "zlib-rs",
        }
    }

    /// `body` gzipped at `level`.
    fn gzip(self, body: &[u8], level: u32) -> Vec<u8> {
        match self {
            // The exporter's `gzip` (src/store/rest.rs), the level aside.
            Backend::Miniz => {
                let mut encoder = flate2::write::GzEncoder::new(
                    Vec::with_capacity(body.len() / 4 + 64),
                    flate2::Compression::new(level),
                );
                encoder.write_all(body).unwrap();
                encoder.finish().unwrap()
            }
            Backend::ZlibRs => {
                let config = zlib_rs::DeflateConfig {
                    level: level as i32,
                    window_bits: 15 + 16, // gzip header and trailer (CRC-32, size)
                    ..zlib_rs::DeflateConfig::default()
                };
                // compress_bound counts zlib's 6-byte wrapper; gzip's is 18 bytes.
                let mut out = vec![0u8; zlib_rs::compress_bound(body.len()) + 12];
                let (zipped, rc) = zlib_rs::compress_slice(&mut out, body, config);
                assert_eq!(rc, zlib_rs::ReturnCode::Ok);
                let len = zipped.len();
                out.truncate(len);
                out
            }
        }
    }
}

/// A compressor kept from one body to the next and reset between them, where the exporter
/// makes a new one per body: what that setup (allocating and clearing the compressor's
/// tables) costs, which small bodies feel most.
enum Reused {
    /// flate2's raw deflate on miniz_oxide, with the gzip header and trailer written here
    /// as `GzEncoder` writes them.
    Miniz(flate2::Compress),
    ZlibRs(zlib_rs::Deflate),
}

impl Reused {
    fn new(backend: Backend, level: u32) -> Self {
        match backend {
            Backend::Miniz => Reused::Miniz(flate2::Compress::new(
                flate2::Compression::new(level),
                false,
            )),
            Backend::ZlibRs => {
                Reused::ZlibRs(zlib_rs::Deflate::new_with_config(zlib_rs::DeflateConfig {
                    level: level as i32,
                    window_bits: 15 + 16,
                    ..zlib_rs::DeflateConfig::default()
                }))
            }
        }
    }

    fn gzip(&mut self, body: &[u8]) -> Vec<u8> {
        match self {
            Reused::Miniz(compress) => {
                compress.reset();
                let mut crc = flate2::Crc::new();
                crc.update(body);
                let mut out = Vec::with_capacity(body.len() / 4 + 64);
                out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
                loop {
                    let rest = &body[compress.total_in() as usize..];
                    let status = compress
                        .compress_vec(rest, &mut out, flate2::FlushCompress::Finish)
                        .unwrap();
                    if status == flate2::Status::StreamEnd {
                        break;
                    }
                    out.reserve(out.capacity().max(64));
                }
                out.extend_from_slice(&crc.sum().to_le_bytes());
                out.extend_from_slice(&(body.len() as u32).to_le_bytes());
                out
            }
            Reused::ZlibRs(deflate) => {
                deflate.reset();
                let mut out = vec![0u8; zlib_rs::compress_bound(body.len()) + 12];
                let status = deflate
                    .compress(body, &mut out, zlib_rs::DeflateFlush::Finish)
                    .unwrap();
                assert_eq!(status, zlib_rs::Status::StreamEnd);
                out.truncate(deflate.total_out() as usize);
                out
            }
        }
    }
}

/// A named batch body.
struct Body {
    name: &'static str,
    json: Vec<u8>,
}

fn batch(records: Vec<SpanRecord>) -> Vec<u8> {
    let records = records.into_iter().map(Record::from).collect();
    ExportBatch::from_records(RecordKind::Span, records)
        .json_body()
        .to_vec()
}

/// A UUIDv7 at `millis`, its random bits from `rng`.
fn id_at(millis: u64, rng: &mut fastrand::Rng) -> Uuid {
    let mut random = [0u8; 10];
    rng.fill(&mut random);
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

fn time_at(micros: u64) -> Timestamp {
    Timestamp::from(UNIX_EPOCH + Duration::from_micros(micros))
}

/// `n` request spans as an HTTP service records them, one trace each: a root span named
/// after the route, 1 to 120 ms long, started about 3 ms apart, with the method, route,
/// target and status as metadata.
fn request_spans(n: usize, seed: u64) -> Vec<SpanRecord> {
    const ROUTES: [(&str, &str, &str); 6] = [
        ("GET", "/api/items/{id}", "/api/items/"),
        ("GET", "/api/items", "/api/items?page="),
        ("POST", "/api/chat", "/api/chat"),
        ("GET", "/health", "/health"),
        ("PUT", "/api/items/{id}", "/api/items/"),
        ("POST", "/api/embeddings", "/api/embeddings"),
    ];
    let mut rng = fastrand::Rng::with_seed(seed);
    let t0: u64 = 1_790_000_000_000_000; // µs, in 2026
    (0..n)
        .map(|i| {
            let (method, route, target) = ROUTES[rng.usize(..ROUTES.len())];
            let start = t0 + i as u64 * 3_000 + rng.u64(..3_000);
            let end = start + rng.u64(1_000..120_000);
            let trace = id_at(start / 1000, &mut rng);
            let id = id_at(start / 1000, &mut rng);
            let mut r = SpanRecord::new(id, trace, format!("{method} {route}"), time_at(start));
            r.end_time = Some(time_at(end));
            r.last_updated_at = Some(time_at(end));
            let target = if target.ends_with('/') || target.ends_with('=') {
                format!("{target}{}", rng.u32(1..10_000))
            } else {
                target.to_owned()
            };
            let status = if rng.u8(..50) == 0 { 500 } else { 200 };
            r.metadata.insert("http.request.method", method);
            r.metadata.insert("http.route", route);
            r.metadata.insert("http.target", target);
            r.metadata.insert("http.response.status_code", status);
            r
        })
        .collect()
}

/// A body of exactly `bytes` bytes (at least about 260): one request span with the fields
/// every span has (ids, name, type, times, source) and no metadata, its name lengthened
/// to fit.
fn exact_body(bytes: usize) -> Vec<u8> {
    let make = |pad: usize| {
        let mut spans = request_spans(1, 7);
        let span = &mut spans[0];
        span.metadata = Default::default();
        span.last_updated_at = None;
        let mut name = String::from("GET /api/items/");
        name.extend(std::iter::repeat_n('x', pad));
        span.name = name.into();
        batch(spans)
    };
    let base = make(0).len();
    let body = make(bytes.checked_sub(base).expect("a larger body"));
    assert_eq!(body.len(), bytes);
    body
}

/// The vocabulary of the prompt text, most frequent first.
const VOCABULARY: &str = "the of and to a in is that for it as with was on be by this are \
    or from at which an not have has but can all will one more their they its were if we \
    been would there other these when so what some into only also than them after two then \
    first new about may used each such any time most over between should through where must \
    data model user service request response system value field error context answer \
    question document section table result number list order name type version file code \
    function method query search index record span trace token prompt message output input \
    latency cost budget policy customer account payment invoice product price shipping \
    return refund support ticket issue release feature report summary review quality metric \
    score test case step process rule limit rate window cache store queue batch export \
    network server client endpoint header body status retry timeout backoff region cluster \
    node instance memory storage disk database schema column row key event stream log \
    warning level config setting option default example note however therefore because \
    while during before within without under above against among across per each every \
    both either neither always never often usually sometimes already still again later \
    early recent current previous next last final total average maximum minimum \
    important possible available required optional different similar specific general \
    simple complex large small high low fast slow long short clear correct valid invalid \
    open closed active pending complete failed successful public private internal external \
    provide include describe explain consider compare check ensure return create update \
    delete read write send receive handle process generate evaluate measure improve reduce \
    increase support allow require contain follow begin continue change keep find show";

/// `bytes` bytes of English-like prompt text: sentences of 6 to 22 words drawn from
/// [`VOCABULARY`] with Zipf frequencies (the k-th word weighs 1/k), in paragraphs.
fn prompt_text(bytes: usize, seed: u64) -> String {
    let words: Vec<&str> = VOCABULARY.split_whitespace().collect();
    let mut cumulative = Vec::with_capacity(words.len());
    let mut sum = 0.0;
    for k in 1..=words.len() {
        sum += 1.0 / k as f64;
        cumulative.push(sum);
    }
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut pick = || {
        let x = rng.f64() * sum;
        words[cumulative.partition_point(|&c| c < x).min(words.len() - 1)]
    };
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x5eed);
    let mut text = String::with_capacity(bytes + 256);
    while text.len() < bytes {
        for _ in 0..rng.usize(3..8) {
            let n = rng.usize(6..23);
            for i in 0..n {
                let word = pick();
                if i == 0 {
                    let mut chars = word.chars();
                    let first = chars.next().unwrap().to_ascii_uppercase();
                    text.push(first);
                    text.push_str(chars.as_str());
                } else {
                    text.push_str(word);
                }
                if i + 1 < n {
                    text.push_str(if rng.u8(..12) == 0 { ", " } else { " " });
                }
            }
            text.push_str(". ");
        }
        text.push_str("\n\n");
    }
    text.truncate(bytes);
    text
}

/// The batch body of one LLM span whose user message is `prompt`.
fn prompt_body(prompt: &str) -> Vec<u8> {
    let payload = common::llm_payload(1);
    let mut record = common::llm_record(&payload, tower_opik::id::new_id());
    record.input = Payload::from_serialize(
        json!({"messages": [
            {"role": "system", "content": "You are a helpful assistant. Answer from the context below."},
            {"role": "user", "content": prompt},
        ]}),
        "input",
    );
    batch(vec![record])
}

fn bodies() -> Vec<Body> {
    vec![
        Body {
            name: "llm_100",
            json: batch(common::llm_records(100)),
        },
        Body {
            name: "requests_1000",
            json: batch(request_spans(1000, 1)),
        },
        Body {
            name: "prompt_64k",
            json: prompt_body(&prompt_text(64 * 1024, 1)),
        },
    ]
}

fn check_round_trip(body: &[u8], zipped: &[u8]) {
    let mut out = Vec::with_capacity(body.len());
    flate2::read::GzDecoder::new(zipped)
        .read_to_end(&mut out)
        .unwrap();
    assert!(out == body, "gzip round trip");
}

fn bench(c: &mut Criterion) {
    for body in bodies() {
        let mut group = c.benchmark_group(format!("gzip/{}", body.name));
        group.throughput(Throughput::Bytes(body.json.len() as u64));
        for backend in BACKENDS {
            for level in LEVELS {
                check_round_trip(&body.json, &backend.gzip(&body.json, level));
                group.bench_with_input(
                    BenchmarkId::new(backend.name(), level),
                    &body.json,
                    |b, json| b.iter(|| backend.gzip(black_box(json), level)),
                );
            }
        }
        group.finish();
    }
}

/// The median thread CPU time of one call of `f`, in ns: `samples` samples of about
/// `sample` each.
fn cpu_ns(samples: usize, sample: Duration, mut f: impl FnMut()) -> f64 {
    let start = ThreadTime::now();
    f();
    let once = start.elapsed().max(Duration::from_nanos(100));
    let iters = (sample.as_nanos() / once.as_nanos()).max(1) as u32;
    let mut run = || {
        let start = ThreadTime::now();
        for _ in 0..iters {
            f();
        }
        start.elapsed().as_nanos() as f64 / f64::from(iters)
    };
    run(); // warm-up
    common::summary((0..samples).map(|_| run()).collect()).0
}

/// Samples and their length: 15 of about 20 ms, or one short one with `--test`.
fn sampling(quick: bool) -> (usize, Duration) {
    if quick {
        (1, Duration::from_millis(1))
    } else {
        (15, Duration::from_millis(20))
    }
}

/// One measured configuration.
struct Row {
    size: usize,
    zipped: usize,
    ns: f64,
}

fn measure(json: &[u8], backend: Backend, level: u32, quick: bool) -> Row {
    let zipped = backend.gzip(json, level);
    check_round_trip(json, &zipped);
    let (samples, sample) = sampling(quick);
    let ns = cpu_ns(samples, sample, || {
        black_box(backend.gzip(black_box(json), level));
    });
    Row {
        size: json.len(),
        zipped: zipped.len(),
        ns,
    }
}

fn table(quick: bool) {
    println!("\n## Gzip per body: thread CPU time (median), size, and the cost of a byte saved\n");
    println!(
        "| body | backend | level | bytes | ratio | saved | CPU per body | MB/s | ns per KB | ns per byte saved |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut marginal = Vec::new();
    for body in bodies() {
        let n = body.json.len();
        println!(
            "| {} | none | - | {n} | 1.00 | 0% | 0 | - | - | - |",
            body.name
        );
        for backend in BACKENDS {
            let mut first: Option<Row> = None;
            for level in LEVELS {
                let row = measure(&body.json, backend, level, quick);
                let saved = row.size - row.zipped;
                println!(
                    "| {} | {} | {level} | {} | {:.2} | {:.1}% | {:.1} µs | {:.0} | {:.0} | {:.2} |",
                    body.name,
                    backend.name(),
                    row.zipped,
                    row.size as f64 / row.zipped as f64,
                    100.0 * saved as f64 / row.size as f64,
                    row.ns / 1e3,
                    row.size as f64 / row.ns * 1e3,
                    row.ns / (row.size as f64 / 1e3),
                    row.ns / saved as f64,
                );
                match &first {
                    None => first = Some(row),
                    Some(l1) => marginal.push(format!(
                        "| {} | {} | 1 → {level} | {:+} ({:+.1}% of the body) | {:+.1} µs | {:.1} |",
                        body.name,
                        backend.name(),
                        l1.zipped as i64 - row.zipped as i64,
                        100.0 * (l1.zipped as f64 - row.zipped as f64) / n as f64,
                        (row.ns - l1.ns) / 1e3,
                        (row.ns - l1.ns) / (l1.zipped as f64 - row.zipped as f64),
                    )),
                }
            }
        }
    }
    println!("\n## Above level 1: the extra bytes saved and what each costs\n");
    println!("| body | backend | levels | bytes saved more | CPU more | ns per extra byte saved |");
    println!("|---|---|---|---|---|---|");
    for line in marginal {
        println!("{line}");
    }

    // The crate's README as the prompt: real prose, for the ratio only.
    let readme = include_str!("../README.md");
    let readme_body = prompt_body(readme);
    print!(
        "\nThe README as the prompt ({} bytes of body), ratio at levels 1 / 6:",
        readme_body.len()
    );
    for backend in BACKENDS {
        let r1 = readme_body.len() as f64 / backend.gzip(&readme_body, 1).len() as f64;
        let r6 = readme_body.len() as f64 / backend.gzip(&readme_body, 6).len() as f64;
        print!(" {} {r1:.2} / {r6:.2};", backend.name());
    }
    println!();

    println!(
        "\n## Small bodies: where gzip stops paying (net saved = before - after - {GZIP_HEADER_BYTES} bytes of `content-encoding: gzip`)\n"
    );
    println!(
        "| body | bytes | backend | level | gzipped | net saved | CPU | ns per net byte saved | CPU, compressor reused | ns per net byte saved, reused |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut small: Vec<(String, Vec<u8>)> = vec![("300 bytes, 1 span".into(), exact_body(300))];
    for n in [1, 2, 4, 8, 16, 64] {
        small.push((format!("{n} request spans"), batch(request_spans(n, 3))));
    }
    for (name, json) in &small {
        for backend in BACKENDS {
            for level in SMALL_LEVELS {
                let row = measure(json, backend, level, quick);
                let mut reused = Reused::new(backend, level);
                let zipped = reused.gzip(json);
                check_round_trip(json, &zipped);
                let (samples, sample) = sampling(quick);
                let reused_ns = cpu_ns(samples, sample, || {
                    black_box(reused.gzip(black_box(json)));
                });
                let net = row.size as i64 - row.zipped as i64 - GZIP_HEADER_BYTES as i64;
                let per_byte = |ns: f64| {
                    if net > 0 {
                        format!("{:.0}", ns / net as f64)
                    } else {
                        "(loses)".into()
                    }
                };
                println!(
                    "| {name} | {} | {} | {level} | {} | {net} | {:.2} µs | {} | {:.2} µs | {} |",
                    row.size,
                    backend.name(),
                    row.zipped,
                    row.ns / 1e3,
                    per_byte(row.ns),
                    reused_ns / 1e3,
                    per_byte(reused_ns),
                );
            }
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(20);
    targets = bench
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--test");
    if args.iter().any(|a| a == "--list") {
        benches();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    table(quick);
}
