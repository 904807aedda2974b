//! The sink: another process that answers 204 to every export and counts what arrived, so
//! that its CPU is not the measured process's.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;

/// What the sink has received since the last question.
#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    bytes: AtomicU64,
    rest_spans: AtomicU64,
    rest_traces: AtomicU64,
    otlp_spans: AtomicU64,
}

/// Counts the records of one request body (after gzip, if any).
fn count(counts: &Counts, path: &str, gzip: bool, body: &[u8]) {
    counts.requests.fetch_add(1, Ordering::Relaxed);
    counts.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    let mut plain = Vec::new();
    let body = if gzip {
        use std::io::Read;
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut plain)
            .expect("gzip");
        &plain[..]
    } else {
        body
    };
    if path.contains("/otel/") {
        use prost::Message;
        let request =
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(
                body,
            )
            .expect("OTLP protobuf");
        let spans: usize = request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        counts.otlp_spans.fetch_add(spans as u64, Ordering::Relaxed);
    } else if path.ends_with("/spans/batch") || path.ends_with("/traces/batch") {
        let value: serde_json::Value = serde_json::from_slice(body).expect("JSON batch");
        let (key, counter) = if path.ends_with("/spans/batch") {
            ("spans", &counts.rest_spans)
        } else {
            ("traces", &counts.rest_traces)
        };
        let items = value[key].as_array().map_or(0, Vec::len);
        counter.fetch_add(items as u64, Ordering::Relaxed);
    }
}

/// The child: answers 204 to everything on 127.0.0.1, prints its base URL, then answers each
/// line on stdin with `REQUESTS BYTES REST_SPANS REST_TRACES OTLP_SPANS` since the last one.
/// Exits when stdin closes.
pub(crate) fn sink() {
    let counts = Arc::new(Counts::default());
    let shared = counts.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().fallback(
        move |uri: http::Uri, headers: http::HeaderMap, body: axum::body::Bytes| {
            let counts = shared.clone();
            async move {
                let gzip = headers
                    .get(http::header::CONTENT_ENCODING)
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
                count(&counts, uri.path(), gzip, &body);
                http::StatusCode::NO_CONTENT
            }
        },
    );
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    println!("http://{addr}/api/");
    std::io::stdout().flush().unwrap();
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
        let take = |c: &AtomicU64| c.swap(0, Ordering::Relaxed);
        println!(
            "{} {} {} {} {}",
            take(&counts.requests),
            take(&counts.bytes),
            take(&counts.rest_spans),
            take(&counts.rest_traces),
            take(&counts.otlp_spans)
        );
        std::io::stdout().flush().unwrap();
    }
}

/// The bench's handle on the sink process.
pub(crate) struct Sink {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pub(crate) url: String,
}

/// What the sink received.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Received {
    pub(crate) requests: u64,
    pub(crate) bytes: u64,
    pub(crate) rest_spans: u64,
    pub(crate) rest_traces: u64,
    pub(crate) otlp_spans: u64,
}

impl Sink {
    pub(crate) fn start() -> Sink {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .arg("--sink")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the sink");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut url = String::new();
        stdout.read_line(&mut url).unwrap();
        Sink {
            child,
            stdin,
            stdout,
            url: url.trim().to_owned(),
        }
    }

    /// What arrived since the last call.
    pub(crate) fn take(&mut self) -> Received {
        writeln!(self.stdin, "count").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let v: Vec<u64> = line
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        Received {
            requests: v[0],
            bytes: v[1],
            rest_spans: v[2],
            rest_traces: v[3],
            otlp_spans: v[4],
        }
    }

    pub(crate) fn stop(mut self) {
        drop(self.stdin);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
