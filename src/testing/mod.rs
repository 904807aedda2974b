//! `LocalOpik`: a local stand-in for Opik's ingest API, for tests and examples.
//!
//! A real HTTP server on 127.0.0.1 (an ephemeral port by default) that speaks the part of
//! Opik's REST API the SDKs write to: `POST v1/private/spans/batch` and
//! `POST v1/private/traces/batch`, the feedback scores' `PUT v1/private/spans/feedback-scores`
//! and `PUT v1/private/traces/feedback-scores` (under `/api/` as a self-hosted Opik serves
//! them, and at the root as the backend's own port does), and the SDKs' health check
//! `GET is-alive/ping`.
//! It checks every body against Opik's rules, with
//! the backend's statuses:
//!
//! | refused | status |
//! |---|---|
//! | body not JSON, corrupt gzip, unknown field (stricter than Opik, on purpose), non-v7 id, a new record's id dated > 24 h from now, a `trace_id` / `parent_span_id` dated > 24 h ahead (old ones are fine, as in Opik), timestamp without a zone, unknown span type or source, wrong JSON types, usage not int32 | 400 |
//! | wrong or missing API key (when one is set) | 401 |
//! | workspace other than the configured one (`default`) | 404 |
//! | body over 64 MiB | 413 |
//! | content type not JSON, unknown content encoding | 415 |
//! | empty batch or over 1000 items, blank project name, duplicate tags, negative cost, empty `error_info` parts, `environment` over 150 characters | 422 |
//! | a feedback score (`PUT v1/private/{spans,traces}/feedback-scores`) with no or an empty name, a value beyond ±999999999.999999999, or no source | 422 (400 for a wrong type, an unknown field or source) |
//!
//! One bad record refuses its whole batch, as the backend does. Accepted records are
//! upserted by id: the newest `last_updated_at` wins, so the official SDKs' start-then-end
//! double writes and our retries both land as one record.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use tower_opik::{testing::LocalOpik, OpikConfig, SpanStore};
//!
//! let opik = LocalOpik::start().await?;
//! let store = SpanStore::builder().config(OpikConfig::local(&opik.base_url())).build()?;
//! let span = store.root_span("under test");
//! span.end();
//! store.flush(Duration::from_secs(5)).await;
//! assert_eq!(opik.spans().len(), 1);
//! assert_eq!(opik.write_count(span.id().unwrap().to_string()), 1);
//! # Ok(()) }
//! ```

mod faults;
#[cfg(feature = "otel")]
mod otlp;
mod scores;
mod server;
mod state;
mod tree;
mod validate;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

pub use faults::Faults;
#[cfg(feature = "otel")]
pub use otlp::OtelSpan;
pub use state::RequestLog;
pub use tree::{SpanNode, TraceTree};

use self::server::Shared;

/// Checks a batch body against Opik's rules, as LocalOpik does on
/// `POST v1/private/{spans,traces}/batch`: `kind` is `"spans"` or `"traces"`, `body` the
/// uncompressed JSON. Returns how many records it holds, or the status and message the
/// backend would answer. Never panics, whatever the bytes.
///
/// For the fuzz target only: not part of the API (hidden from the docs and from
/// `docs/public-api.txt`); LocalOpik applies it to every batch it receives.
#[doc(hidden)]
pub fn validate_batch(kind: &str, body: &[u8]) -> Result<usize, (u16, String)> {
    let kind = match kind {
        "spans" => validate::Kind::Span,
        "traces" => validate::Kind::Trace,
        other => return Err((404, format!("no batch endpoint for {other:?}"))),
    };
    let value: Value =
        serde_json::from_slice(body).map_err(|e| (400, format!("invalid JSON: {e}")))?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    validate::batch(kind, &value, now_ms, &mut 0)
        .map(|records| records.len())
        .map_err(|(status, message)| (status.as_u16(), message))
}

/// A local Opik ingest server. Stops when [`shutdown`](Self::shutdown) is called or when
/// it is dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let opik = tower_opik::testing::LocalOpik::start().await?;
/// assert!(opik.base_url().starts_with("http://127.0.0.1:"));
/// assert!(opik.spans().is_empty());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LocalOpik {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

/// Options for a [`LocalOpik`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let opik = tower_opik::testing::LocalOpik::builder()
///     .api_key("test-key")
///     .workspace("team")
///     .start()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
#[must_use]
pub struct LocalOpikBuilder {
    addr: Option<SocketAddr>,
    api_key: Option<String>,
    workspace: Option<String>,
}

impl LocalOpikBuilder {
    /// Listens on this address instead of `127.0.0.1:0`.
    ///
    /// ```
    /// let b = tower_opik::testing::LocalOpik::builder().addr(([127, 0, 0, 1], 0).into());
    /// ```
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = Some(addr);
        self
    }

    /// Requires this API key in `Authorization` (401 otherwise), as Opik Cloud does.
    ///
    /// ```
    /// let b = tower_opik::testing::LocalOpik::builder().api_key("k");
    /// ```
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Accepts this workspace in `Comet-Workspace` instead of `default` (404 otherwise).
    ///
    /// ```
    /// let b = tower_opik::testing::LocalOpik::builder().workspace("team");
    /// ```
    pub fn workspace(mut self, workspace: impl Into<String>) -> Self {
        self.workspace = Some(workspace.into());
        self
    }

    /// Binds and starts serving on the current tokio runtime.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let opik = tower_opik::testing::LocalOpik::builder().start().await?;
    /// # Ok(()) }
    /// ```
    pub async fn start(self) -> std::io::Result<LocalOpik> {
        let listener =
            tokio::net::TcpListener::bind(self.addr.unwrap_or(([127, 0, 0, 1], 0).into())).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::default(),
            faults: Faults::default(),
            api_key: self.api_key,
            workspace: self.workspace.unwrap_or_else(|| "default".to_owned()),
            changed: tokio::sync::watch::Sender::new(0),
            calls: Default::default(),
        });
        let task = tokio::spawn(server::serve(listener, shared.clone()));
        Ok(LocalOpik { addr, shared, task })
    }
}

impl LocalOpik {
    /// Starts a LocalOpik on `127.0.0.1` on an ephemeral port.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let opik = tower_opik::testing::LocalOpik::start().await?;
    /// # Ok(()) }
    /// ```
    pub async fn start() -> std::io::Result<Self> {
        Self::builder().start().await
    }

    /// Options: address, API key, workspace.
    ///
    /// ```
    /// let builder = tower_opik::testing::LocalOpik::builder();
    /// ```
    pub fn builder() -> LocalOpikBuilder {
        LocalOpikBuilder::default()
    }

    /// The address it listens on.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let opik = tower_opik::testing::LocalOpik::start().await?;
    /// assert!(opik.addr().ip().is_loopback());
    /// # Ok(()) }
    /// ```
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL to configure SDKs with: `http://127.0.0.1:PORT/api/`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let opik = tower_opik::testing::LocalOpik::start().await?;
    /// assert!(opik.base_url().ends_with("/api/"));
    /// # Ok(()) }
    /// ```
    pub fn base_url(&self) -> String {
        format!("http://{}/api/", self.addr)
    }

    /// The accepted spans, in order of first arrival (after upserts).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let opik = tower_opik::testing::LocalOpik::start().await?;
    /// assert!(opik.spans().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn spans(&self) -> Vec<Value> {
        self.shared.state().spans()
    }

    /// The feedback scores accepted for spans (`PUT v1/private/spans/feedback-scores`), in
    /// order of arrival, as sent (`id` is the span's).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let opik = tower_opik::testing::LocalOpik::start().await?;
    /// assert!(opik.span_feedback_scores().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn span_feedback_scores(&self) -> Vec<Value> {
        self.shared.state().scores(validate::Kind::SpanScore)
    }

    /// The feedback scores accepted for traces (`PUT v1/private/traces/feedback-scores`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let opik = tower_opik::testing::LocalOpik::start().await?;
    /// assert!(opik.trace_feedback_scores().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn trace_feedback_scores(&self) -> Vec<Value> {
        self.shared.state().scores(validate::Kind::TraceScore)
    }

    /// The accepted traces, in order of first arrival (after upserts).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let opik = tower_opik::testing::LocalOpik::start().await?;
    /// assert!(opik.traces().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn traces(&self) -> Vec<Value> {
        self.shared.state().traces()
    }

    /// One span by id.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let opik = tower_opik::testing::LocalOpik::start().await?;
    /// assert!(opik.span(tower_opik::id::new_id().to_string()).is_none());
    /// # Ok(()) }
    /// ```
    pub fn span(&self, id: impl AsRef<str>) -> Option<Value> {
        self.shared.state().span(id.as_ref())
    }

    /// One trace record by id.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let opik = tower_opik::testing::LocalOpik::start().await?;
    /// assert!(opik.trace(tower_opik::id::new_id().to_string()).is_none());
    /// # Ok(()) }
    /// ```
    pub fn trace(&self, id: impl AsRef<str>) -> Option<Value> {
        self.shared.state().trace(id.as_ref())
    }

    /// The spans of one trace.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let opik = tower_opik::testing::LocalOpik::start().await?;
    /// assert!(opik.spans_of_trace(tower_opik::id::new_id().to_string()).is_empty());
    /// # Ok(()) }
    /// ```
    pub fn spans_of_trace(&self, trace_id: impl AsRef<str>) -> Vec<Value> {
        let trace_id = trace_id.as_ref();
        self.spans()
            .into_iter()
            .filter(|s| s["trace_id"] == trace_id)
            .collect()
    }

    /// One trace as a tree of spans (`None` when nothing of it arrived).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let opik = tower_opik::testing::LocalOpik::start().await?;
    /// assert!(opik.trace_tree(tower_opik::id::new_id().to_string()).is_none());
    /// # Ok(()) }
    /// ```
    pub fn trace_tree(&self, trace_id: impl AsRef<str>) -> Option<TraceTree> {
        let trace_id = trace_id.as_ref();
        TraceTree::build(
            trace_id,
            self.trace(trace_id),
            self.spans_of_trace(trace_id),
        )
    }

    /// How many accepted writes a record (span or trace) received: 1 means delivered once.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let opik = tower_opik::testing::LocalOpik::start().await?;
    /// assert_eq!(opik.write_count(tower_opik::id::new_id().to_string()), 0);
    /// # Ok(()) }
    /// ```
    pub fn write_count(&self, id: impl AsRef<str>) -> u64 {
        self.shared.state().write_count(id.as_ref())
    }

    /// The OTel spans received on `v1/private/otel/v1/traces` (feature `otel`), in order.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let opik = tower_opik::testing::LocalOpik::start().await?;
    /// assert!(opik.otel_spans().is_empty());
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "otel")]
    pub fn otel_spans(&self) -> Vec<OtelSpan> {
        self.shared.state().otel_spans()
    }

    /// Every request received so far, with the answer given.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let opik = tower_opik::testing::LocalOpik::start().await?;
    /// assert!(opik.requests().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn requests(&self) -> Vec<RequestLog> {
        self.shared.state().requests()
    }

    /// Forgets every record and the request log (faults are kept).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let opik = tower_opik::testing::LocalOpik::start().await?;
    /// opik.clear();
    /// # Ok(()) }
    /// ```
    pub fn clear(&self) {
        self.shared.state().clear();
    }

    /// The faults injected into the next ingest calls.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let opik = tower_opik::testing::LocalOpik::start().await?;
    /// opik.faults().drop_next(1);
    /// # Ok(()) }
    /// ```
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// The most calls LocalOpik was answering at one time (any endpoint), so far.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let opik = tower_opik::testing::LocalOpik::start().await?;
    /// assert_eq!(opik.peak_concurrent_calls(), 0);
    /// # Ok(()) }
    /// ```
    pub fn peak_concurrent_calls(&self) -> usize {
        self.shared
            .calls
            .peak
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until at least `n` spans are stored, at most `timeout`. For data sent by other
    /// processes (the official SDKs); for this crate's own store, `flush` instead.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let opik = tower_opik::testing::LocalOpik::start().await?;
    /// assert!(!opik.wait_for_spans(1, std::time::Duration::from_millis(10)).await);
    /// # Ok(()) }
    /// ```
    pub async fn wait_for_spans(&self, n: usize, timeout: Duration) -> bool {
        self.wait(timeout, |s| s.span_count() >= n).await
    }

    /// Waits until at least `n` traces are stored, at most `timeout`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let opik = tower_opik::testing::LocalOpik::start().await?;
    /// assert!(!opik.wait_for_traces(1, std::time::Duration::from_millis(10)).await);
    /// # Ok(()) }
    /// ```
    pub async fn wait_for_traces(&self, n: usize, timeout: Duration) -> bool {
        self.wait(timeout, |s| s.trace_count() >= n).await
    }

    async fn wait(&self, timeout: Duration, done: impl Fn(&state::State) -> bool) -> bool {
        let mut changes = self.shared.changed.subscribe();
        let wait = async {
            loop {
                if done(&self.shared.state()) {
                    return;
                }
                if changes.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok() && done(&self.shared.state())
    }

    /// Stops serving and closes every connection.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let opik = tower_opik::testing::LocalOpik::start().await?;
    /// opik.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub async fn shutdown(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for LocalOpik {
    fn drop(&mut self) {
        self.task.abort();
    }
}
