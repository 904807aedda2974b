//! The default exporter: Opik's REST batch endpoints over HTTP(S), gzipped above a size.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use reqwest::Url;

use super::exporter::{ExportBatch, ExportError, ExportFuture, Exporter, RecordKind};
use crate::config::{OpikConfig, without_credentials};

use crate::transport::{Transport, TransportError};

/// How much of an error answer's body is kept for the report.
const MAX_ERROR_BODY: usize = 2048;

/// Sends batches to Opik's `POST v1/private/spans/batch` and `POST v1/private/traces/batch`
/// (and feedback scores to `PUT v1/private/{spans,traces}/feedback-scores`)
/// with the headers the official SDKs send (`Authorization: <raw key>`, `Comet-Workspace`),
/// gzipping bodies from a threshold on.
///
/// [`new`](Self::new) sends with our own client: hyper on rustls with the platform's
/// certificate verifier and the crypto provider the application installed as the process
/// default, else the one a feature compiles in (`rustls-aws-lc`, the default, or
/// `rustls-ring`). It enables nothing on the application's reqwest. It goes through the
/// proxies the environment names (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`,
/// read as curl and reqwest read them: `http://`, `socks5://` and `socks5h://` proxies,
/// credentials from the proxy URL). To choose a proxy in code, present a client
/// certificate, or send with the application's own TLS stack, hand it a `reqwest::Client`
/// with [`with_client`](Self::with_client).
///
/// ```
/// use tower_opik::{OpikConfig, store::OpikRestExporter};
/// let config = OpikConfig::local("http://127.0.0.1:5173/api/");
/// let exporter = OpikRestExporter::new(&config)
///     .unwrap()
///     .timeout(std::time::Duration::from_secs(5))
///     .gzip_threshold(1024);
/// println!("{exporter:?}"); // never shows the API key
/// ```
#[derive(Clone)]
pub struct OpikRestExporter {
    transport: Transport,
    spans_url: Url,
    traces_url: Url,
    span_scores_url: Url,
    trace_scores_url: Url,
    headers: HeaderMap,
    timeout: Duration,
    gzip_threshold: usize,
    gzip_level: u32,
}

impl std::fmt::Debug for OpikRestExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpikRestExporter")
            .field("spans_url", &without_credentials(&self.spans_url).as_str())
            .field(
                "traces_url",
                &without_credentials(&self.traces_url).as_str(),
            )
            .field("timeout", &self.timeout)
            .field("gzip_threshold", &self.gzip_threshold)
            .field("gzip_level", &self.gzip_level)
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

impl OpikRestExporter {
    /// An exporter for the Opik instance `config` names: 10 s per request, gzip from 256
    /// bytes (as the Python SDK) at level 1.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidApiKey`](crate::Error::InvalidApiKey) or
    /// [`Error::InvalidWorkspace`](crate::Error::InvalidWorkspace) when they cannot be
    /// headers; [`Error::Tls`](crate::Error::Tls) when the HTTPS client cannot be set up, or
    /// when the URL is `https` and no rustls provider is compiled in (`rustls-aws-lc`,
    /// `rustls-ring`) nor installed as the process default;
    /// [`Error::Proxy`](crate::Error::Proxy) when the environment names a proxy for the URL
    /// this client cannot use (an `https://` proxy, a value that is not a URL).
    ///
    /// ```
    /// let config = tower_opik::OpikConfig::local("http://localhost:5173/api/");
    /// assert!(tower_opik::store::OpikRestExporter::new(&config).is_ok());
    /// ```
    pub fn new(config: &OpikConfig) -> Result<Self, crate::Error> {
        Self::build(config, Transport::for_config(config)?)
    }

    /// An exporter that sends with `client`, the application's own: its proxies, root
    /// certificates, TLS backend and crypto provider, its connection pool. Our headers
    /// (`Authorization`, `Comet-Workspace`, `User-Agent`), timeout and gzip still apply; the
    /// client's default headers are sent too. No TLS feature of ours is needed for it
    /// (`default-features = false` builds none).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidApiKey`](crate::Error::InvalidApiKey) or
    /// [`Error::InvalidWorkspace`](crate::Error::InvalidWorkspace) when they cannot be
    /// headers.
    ///
    /// ```
    /// use tower_opik::{OpikConfig, store::OpikRestExporter};
    /// // e.g. reqwest::Client::builder().proxy(reqwest::Proxy::https("http://proxy:3128")?)
    /// let client = reqwest::Client::builder().build()?;
    /// let config = OpikConfig::local("http://127.0.0.1:5173/api/");
    /// let exporter = OpikRestExporter::with_client(&config, client)?;
    /// # let _ = exporter;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_client(config: &OpikConfig, client: reqwest::Client) -> Result<Self, crate::Error> {
        Self::build(config, Transport::Reqwest(client))
    }

    fn build(config: &OpikConfig, transport: Transport) -> Result<Self, crate::Error> {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            http::header::USER_AGENT,
            HeaderValue::from_static(USER_AGENT),
        );
        if let Some(key) = config.api_key() {
            match key.to_header_value() {
                Some(value) => {
                    headers.insert(http::header::AUTHORIZATION, value);
                }
                None => return Err(crate::Error::InvalidApiKey),
            }
        }
        match HeaderValue::from_str(config.workspace()) {
            Ok(value) => {
                headers.insert(HeaderName::from_static("comet-workspace"), value);
            }
            Err(_) => return Err(crate::Error::InvalidWorkspace),
        }
        Ok(Self {
            transport,
            spans_url: config.endpoint(RecordKind::Span.path()),
            traces_url: config.endpoint(RecordKind::Trace.path()),
            span_scores_url: config.endpoint(RecordKind::SpanScore.path()),
            trace_scores_url: config.endpoint(RecordKind::TraceScore.path()),
            headers,
            timeout: Duration::from_secs(10),
            gzip_threshold: 256,
            gzip_level: DEFAULT_GZIP_LEVEL,
        })
    }

    /// The time limit of one request, answer included.
    ///
    /// ```
    /// # let e = tower_opik::store::OpikRestExporter::new(&tower_opik::OpikConfig::local("http://localhost:1/")).unwrap();
    /// let e = e.timeout(std::time::Duration::from_secs(3));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Bodies of at least this many bytes are sent gzipped (`usize::MAX`: never).
    ///
    /// ```
    /// # let e = tower_opik::store::OpikRestExporter::new(&tower_opik::OpikConfig::local("http://localhost:1/")).unwrap();
    /// let e = e.gzip_threshold(usize::MAX);
    /// ```
    pub fn gzip_threshold(mut self, bytes: usize) -> Self {
        self.gzip_threshold = bytes;
        self
    }

    /// The gzip level, 1 (fastest, the default) to 9 (smallest); other values are brought
    /// to the nearest. Measured on LLM-span batches (BENCHMARKS.md §9): level 1 saves 77% of
    /// the bytes for about 2 µs of CPU per KB, level 2 83% for 4 µs, level 6 88% for 24 µs.
    /// Against a local Opik (the same host), `gzip_threshold(usize::MAX)` saves the CPU.
    ///
    /// ```
    /// # let e = tower_opik::store::OpikRestExporter::new(&tower_opik::OpikConfig::local("http://localhost:1/")).unwrap();
    /// let e = e.gzip_level(2);
    /// ```
    pub fn gzip_level(mut self, level: u32) -> Self {
        self.gzip_level = level.clamp(1, 9);
        self
    }

    async fn send(&self, batch: &ExportBatch) -> Result<(), ExportError> {
        let url = match batch.kind() {
            RecordKind::Span => &self.spans_url,
            RecordKind::Trace => &self.traces_url,
            RecordKind::SpanScore => &self.span_scores_url,
            RecordKind::TraceScore => &self.trace_scores_url,
        };
        let json = batch.json_body();
        let mut headers = self.headers.clone();
        let zipped = if json.len() < self.gzip_threshold {
            None
        } else if json.len() >= GZIP_OFF_WORKER {
            // Megabytes of prompts take tens of milliseconds: off the runtime's workers.
            let (body, level) = (batch.body(), self.gzip_level);
            tokio::task::spawn_blocking(move || gzip(&body, level))
                .await
                .ok()
                .flatten()
        } else {
            gzip(json, self.gzip_level)
        };
        let body = match zipped {
            Some(zipped) => {
                headers.insert(
                    http::header::CONTENT_ENCODING,
                    HeaderValue::from_static("gzip"),
                );
                bytes::Bytes::from(zipped)
            }
            None => batch.body(),
        };
        let mut request = http::Request::new(body);
        *request.method_mut() = batch.kind().method();
        *request.uri_mut() = url
            .as_str()
            .parse()
            .map_err(|_| ExportError::rejected(0, "the Opik URL is not a valid URI"))?;
        *request.headers_mut() = headers;
        let reply =
            tokio::time::timeout(self.timeout, self.transport.send(request, MAX_ERROR_BODY))
                .await
                .map_err(|_| ExportError::retryable(format!("timed out: {url}"), None))?
                .map_err(|e| transport_error(e, url))?;
        let status = reply.status;
        if status.is_success() {
            return Ok(());
        }
        let retry_after = retry_after(&reply.headers, SystemTime::now());
        let message = String::from_utf8_lossy(&reply.body).trim().to_owned();
        let summary = if message.is_empty() {
            status.to_string()
        } else {
            format!("{status}: {message}")
        };
        // 407 comes from a proxy on the way, never from Opik: an outage of the path (its
        // credentials can be fixed while records wait), as the CONNECT tunnel's 407 is.
        if status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::PROXY_AUTHENTICATION_REQUIRED
            || status.is_server_error()
        {
            Err(ExportError::retryable(summary, retry_after))
        } else {
            Err(ExportError::rejected(status.as_u16(), summary))
        }
    }
}

impl Exporter for OpikRestExporter {
    fn export<'a>(&'a self, batch: &'a ExportBatch) -> ExportFuture<'a> {
        Box::pin(self.send(batch))
    }

    /// The spans endpoint, without any user or password the URL carried.
    fn destination(&self) -> Option<String> {
        // The API's base (spans and traces go to two paths under it).
        let mut url = without_credentials(&self.spans_url);
        url.set_query(None);
        let base = url.path().trim_end_matches("spans/batch").to_owned();
        url.set_path(&base);
        Some(url.to_string())
    }
}

/// The `User-Agent` of our requests.
const USER_AGENT: &str = concat!("tower-opik/", env!("CARGO_PKG_VERSION"));

/// The default of [`OpikRestExporter::gzip_level`]: the least CPU per byte saved.
const DEFAULT_GZIP_LEVEL: u32 = 1;

/// Bodies from this size on are gzipped on tokio's blocking pool (an 8 MiB body of prompt
/// text takes about 70 ms: BENCHMARKS.md §9e), smaller ones where they are.
const GZIP_OFF_WORKER: usize = 1 << 20;

/// `body` gzipped (RFC 1952: zlib's window bits 15 + 16); `None` if zlib-rs fails (the body
/// is then sent as it is).
fn gzip(body: &[u8], level: u32) -> Option<Vec<u8>> {
    let config = zlib_rs::DeflateConfig {
        level: level as i32,
        window_bits: 15 + 16,
        ..zlib_rs::DeflateConfig::default()
    };
    // `compress_bound` counts zlib's 6-byte wrapper; gzip's is 18 bytes.
    let mut out = vec![0u8; zlib_rs::compress_bound(body.len()) + 12];
    let (zipped, rc) = zlib_rs::compress_slice(&mut out, body, config);
    if rc != zlib_rs::ReturnCode::Ok {
        return None;
    }
    let len = zipped.len();
    out.truncate(len);
    Some(out)
}

fn transport_error(e: TransportError, url: &Url) -> ExportError {
    // The messages name the URL (never the key, which travels in a header), without any
    // user or password it carried.
    let url = without_credentials(url);
    match e {
        TransportError::Connect(e) => {
            ExportError::retryable(format!("could not connect to {url}: {e}"), None)
        }
        TransportError::Other(e) => {
            ExportError::retryable(format!("transport error with {url}: {e}"), None)
        }
    }
}

/// The wait the backend asked for: `Retry-After` (seconds or an HTTP date), else
/// `RateLimit-Reset` (seconds).
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(v) = text("retry-after") {
        if let Ok(secs) = v.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        if let Ok(secs) = v.parse::<f64>()
            && secs.is_finite()
            && secs >= 0.0
        {
            return Some(Duration::from_secs_f64(secs.min(86_400.0)));
        }
        if let Ok(at) = httpdate::parse_http_date(v) {
            return Some(at.duration_since(now).unwrap_or_default());
        }
    }
    text("ratelimit-reset")
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let h = |k: &'static str, v: &str| {
            let mut m = HeaderMap::new();
            m.insert(k, v.parse().unwrap());
            m
        };
        assert_eq!(
            retry_after(&h("retry-after", " 3 "), now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            retry_after(&h("retry-after", "1.5"), now),
            Some(Duration::from_millis(1500))
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(
            retry_after(&h("retry-after", &date), now),
            Some(Duration::from_secs(7))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(
            retry_after(&h("retry-after", &past), now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            retry_after(&h("ratelimit-reset", "2"), now),
            Some(Duration::from_secs(2))
        );
        assert_eq!(retry_after(&h("retry-after", "soon"), now), None);
        assert_eq!(retry_after(&h("retry-after", "-1"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn gzip_round_trips() {
        let body = br#"{"spans":[]}"#.repeat(100);
        let zipped = gzip(&body, 1).unwrap();
        assert!(zipped.len() < body.len() / 4);
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&zipped[..]), &mut out)
            .unwrap();
        assert_eq!(out, body);
    }
}
