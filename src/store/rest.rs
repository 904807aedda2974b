//! The default exporter: Opik's REST batch endpoints over HTTP(S), gzipped above a size.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use reqwest::Url;

use super::exporter::{ExportBatch, ExportError, ExportFuture, Exporter, RecordKind};
use crate::config::OpikConfig;

/// How much of an error answer's body is kept for the report.
const MAX_ERROR_BODY: usize = 2048;

/// Sends batches to Opik's `POST v1/private/spans/batch` and `POST v1/private/traces/batch`
/// with the headers the official SDKs send (`Authorization: <raw key>`, `Comet-Workspace`),
/// gzipping bodies from a threshold on.
///
/// HTTPS goes through rustls with the pure-Rust RustCrypto provider and the platform's
/// certificate verifier, unless the application installed its own default rustls
/// `CryptoProvider`, which is then used.
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
    client: reqwest::Client,
    spans_url: Url,
    traces_url: Url,
    headers: HeaderMap,
    timeout: Duration,
    gzip_threshold: usize,
}

impl std::fmt::Debug for OpikRestExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpikRestExporter")
            .field("spans_url", &self.spans_url.as_str())
            .field("traces_url", &self.traces_url.as_str())
            .field("timeout", &self.timeout)
            .field("gzip_threshold", &self.gzip_threshold)
            .finish_non_exhaustive()
    }
}

impl OpikRestExporter {
    /// An exporter for the Opik instance `config` names: 10 s per request, gzip from 256
    /// bytes (as the Python SDK).
    ///
    /// Fails only when the HTTP client cannot be built (no usable TLS configuration).
    ///
    /// ```
    /// let config = tower_opik::OpikConfig::local("http://localhost:5173/api/");
    /// assert!(tower_opik::store::OpikRestExporter::new(&config).is_ok());
    /// ```
    pub fn new(config: &OpikConfig) -> Result<Self, crate::Error> {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
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
            client: http_client()?,
            spans_url: config.endpoint(RecordKind::Span.path()),
            traces_url: config.endpoint(RecordKind::Trace.path()),
            headers,
            timeout: Duration::from_secs(10),
            gzip_threshold: 256,
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

    async fn send(&self, batch: &ExportBatch) -> Result<(), ExportError> {
        let url = match batch.kind() {
            RecordKind::Span => &self.spans_url,
            RecordKind::Trace => &self.traces_url,
        };
        let body = batch.json_body();
        let mut request = self
            .client
            .post(url.clone())
            .headers(self.headers.clone())
            .timeout(self.timeout);
        request = if body.len() >= self.gzip_threshold {
            match gzip(&body) {
                Ok(zipped) => request
                    .header(http::header::CONTENT_ENCODING, "gzip")
                    .body(zipped),
                Err(_) => request.body(body),
            }
        } else {
            request.body(body)
        };
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = retry_after(response.headers(), SystemTime::now());
        let message = error_body(response).await;
        let summary = if message.is_empty() {
            status.to_string()
        } else {
            format!("{status}: {message}")
        };
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
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
        let mut url = self.spans_url.clone();
        let _ = url.set_username("");
        let _ = url.set_password(None);
        url.set_query(None);
        Some(url.to_string())
    }
}

/// The HTTP client: reqwest on rustls. The application's default rustls provider when it
/// installed one, else the pure-Rust RustCrypto provider with the platform verifier.
pub(crate) fn http_client() -> Result<reqwest::Client, crate::Error> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("tower-opik/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(5))
        .pool_idle_timeout(Duration::from_secs(50));
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let provider = Arc::new(rustls_rustcrypto::provider());
        let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
            .map_err(|e| crate::Error::Tls(e.to_string()))?;
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| crate::Error::Tls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        builder = builder.tls_backend_preconfigured(tls);
    }
    builder
        .build()
        .map_err(|e| crate::Error::Tls(e.to_string()))
}

fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4 + 64),
        flate2::Compression::fast(),
    );
    encoder.write_all(body)?;
    encoder.finish()
}

fn transport_error(e: reqwest::Error) -> ExportError {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "transport error"
    };
    // reqwest's message names the URL (never the key, which travels in a header).
    ExportError::retryable(format!("{what}: {e}"), None)
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

/// The start of an error answer's body, as text (bounded: a hostile backend cannot make us
/// read a gigabyte).
async fn error_body(mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    while body.len() < MAX_ERROR_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(MAX_ERROR_BODY);
    String::from_utf8_lossy(&body).trim().to_owned()
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
        let zipped = gzip(&body).unwrap();
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&zipped[..]), &mut out)
            .unwrap();
        assert_eq!(out, body);
    }
}
