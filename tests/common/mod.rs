//! Shared set-up for the integration tests: a LocalOpik and a store that sends to it.
#![allow(dead_code, unreachable_pub)]

pub mod python;
pub mod spool;
#[cfg(feature = "tracing")]
pub mod tracing_env;

use std::time::Duration;

use tower_opik::store::RetryPolicy;
use tower_opik::testing::LocalOpik;
use tower_opik::{OpikConfig, SpanStore};

/// A store builder aimed at `opik`, with quick retries and a long flush interval (tests
/// flush explicitly).
pub fn store_for(opik: &LocalOpik) -> tower_opik::store::SpanStoreBuilder {
    SpanStore::builder()
        .config(OpikConfig::local(&opik.base_url()))
        .flush_interval(Duration::from_secs(3600))
        .request_timeout(Duration::from_secs(5))
        .retry(fast_retry())
}

pub fn fast_retry() -> RetryPolicy {
    RetryPolicy::default()
        .initial_backoff(Duration::from_millis(20))
        .max_backoff(Duration::from_millis(200))
        .max_attempts(8)
}

pub const FLUSH: Duration = Duration::from_secs(30);

/// A store (aimed at a closed port) built on a runtime that is then dropped, with one
/// trace recorded and never sent: its export task is gone.
pub fn orphaned_store() -> SpanStore {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = runtime.block_on(async {
        let store = SpanStore::builder()
            .config(OpikConfig::local("http://127.0.0.1:9/api/"))
            .flush_interval(Duration::from_secs(3600))
            .build()
            .unwrap();
        store.root_span("orphan").end();
        store
    });
    drop(runtime);
    store
}

/// Waits (without sleeping on data: it polls a counter) until `cond` holds, up to 10 s.
pub async fn until(mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached in 10 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Whether `text` is an RFC 3339 UTC timestamp with microseconds: `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub fn is_opik_timestamp(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 27
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            26 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// A plain reqwest client (no TLS: the tests talk HTTP on 127.0.0.1).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::new()
}

/// Serves an axum router on 127.0.0.1 (ephemeral port) in the background.
#[cfg(feature = "axum")]
pub async fn serve(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// GETs `url` with a plain client and returns the body as text (panics on a transport
/// error: the tests' servers are local).
pub async fn get_text(url: impl reqwest::IntoUrl) -> String {
    http_client()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Sends a request through a middleware client and returns its answer's body as text
/// (panics on a transport error: the tests' servers are local).
#[cfg(feature = "reqwest-middleware")]
pub async fn text(request: reqwest_middleware::RequestBuilder) -> String {
    request.send().await.unwrap().text().await.unwrap()
}

/// A log sink for the tests that check what is logged: every line of the process's
/// `tracing` output while it is the writer.
#[derive(Clone, Default)]
pub struct Logs(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Logs {
    /// What was written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A listener on 127.0.0.1 (ephemeral port) as the stream of connections tonic's
/// `serve_with_incoming` takes, and its address.
pub async fn tonic_listener() -> (
    std::net::SocketAddr,
    impl futures_util::Stream<Item = std::io::Result<tokio::net::TcpStream>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = futures_util::stream::unfold(listener, |listener| async move {
        Some((listener.accept().await.map(|(s, _)| s), listener))
    });
    (addr, incoming)
}

/// A tonic channel to `addr`, connected.
pub async fn channel(addr: std::net::SocketAddr) -> tonic::transport::Channel {
    tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// tonic-health's service, answering SERVING for the server as a whole (`""`) and
/// `NotFound` for any other name: a real gRPC service without protoc.
pub async fn serving_health()
-> tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    health
}

/// The only span named `name` that `opik` received (fails the test if there is not exactly
/// one).
pub fn span_named(opik: &LocalOpik, name: &str) -> serde_json::Value {
    let mut spans: Vec<_> = opik
        .spans()
        .into_iter()
        .filter(|s| s["name"] == name)
        .collect();
    assert_eq!(spans.len(), 1, "spans named {name}: {:#?}", opik.spans());
    spans.remove(0)
}

/// Flushes `store` and fails the test unless everything was delivered.
pub async fn flushed(store: &SpanStore) {
    let report = store.flush(FLUSH).await;
    assert!(report.completed && report.stats.failed == 0, "{report}");
}

/// Two services in one test: a gateway (`gateway`'s store, project "gateway") whose `/ask`
/// calls a worker's `/work` (`worker`'s store, project "worker") through `OpikMiddleware`
/// with client spans, answering "done" and the trace id in `x-trace-id`. Returns the
/// gateway's `/ask` URL.
pub async fn gateway_and_worker(gateway: &SpanStore, worker: &SpanStore) -> String {
    use axum::routing::get;
    use tower_opik::OpikLayer;
    let worker = serve(
        axum::Router::new()
            .route("/work", get(|| async { "done" }))
            .layer(OpikLayer::new(worker.clone()).project_name("worker")),
    )
    .await;
    let client = reqwest_middleware::ClientBuilder::new(http_client())
        .with(tower_opik::client::OpikMiddleware::new().client_spans(true))
        .build();
    let gateway = serve(
        axum::Router::new()
            .route(
                "/ask",
                get(move || {
                    let client = client.clone();
                    async move { text(client.get(format!("http://{worker}/work"))).await }
                }),
            )
            .layer(
                OpikLayer::new(gateway.clone())
                    .project_name("gateway")
                    .trace_id_response_header(http::HeaderName::from_static("x-trace-id")),
            ),
    )
    .await;
    format!("http://{gateway}/ask")
}
