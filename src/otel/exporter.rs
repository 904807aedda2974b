//! An OTLP/HTTP protobuf exporter aimed at Opik's OTel endpoint.

use std::collections::HashMap;

use http::HeaderValue;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};

use crate::config::OpikConfig;
use crate::transport::Transport;
use crate::warn::RateLimit;

/// The OTLP exports that could not be sent (logged at most once per 10 s).
static SEND_FAILED: RateLimit = RateLimit::new();

/// Opik's OTLP endpoint, relative to its base URL.
///
/// ```
/// assert_eq!(tower_opik::otel::OTLP_TRACES_PATH, "v1/private/otel/v1/traces");
/// ```
pub const OTLP_TRACES_PATH: &str = "v1/private/otel/v1/traces";

/// An OTLP span exporter for Opik: protobuf over HTTP (the reliable encoding: Opik reads JSON
/// ids as base64) to `v1/private/otel/v1/traces`, with the `Authorization`,
/// `Comet-Workspace` and `projectName` headers taken from `config`, over the same HTTP(S)
/// client as the REST exporter ([`OpikRestExporter::new`](crate::store::OpikRestExporter::new)).
///
/// The API key is added by our HTTP client as a sensitive header, never handed to
/// opentelemetry-otlp (whose `Debug` prints its headers): the exporter's `Debug` does not
/// show it.
///
/// Call it inside a tokio runtime: the HTTP calls run on that runtime, so the exporter works
/// from the SDK's batch thread too (which has none), as long as the runtime lives.
///
/// # Errors
///
/// [`Error::NoRuntime`](crate::Error::NoRuntime) outside a tokio runtime;
/// [`Error::InvalidApiKey`](crate::Error::InvalidApiKey) when the key cannot be a header;
/// [`Error::Tls`](crate::Error::Tls) and [`Error::Proxy`](crate::Error::Proxy) as
/// [`OpikRestExporter::new`](crate::store::OpikRestExporter::new).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_opik::Error> {
/// use opentelemetry_sdk::trace::SdkTracerProvider;
/// use tower_opik::otel::{OpikSpanProcessor, opik_otlp_exporter};
/// let config = tower_opik::OpikConfig::local("http://127.0.0.1:5173/api/");
/// let provider = SdkTracerProvider::builder()
///     .with_span_processor(OpikSpanProcessor::new())
///     .with_batch_exporter(opik_otlp_exporter(&config)?)
///     .build();
/// # let _ = provider.shutdown();
/// # Ok(()) }
/// ```
pub fn opik_otlp_exporter(
    config: &OpikConfig,
) -> Result<opentelemetry_otlp::SpanExporter, crate::Error> {
    build(config, Transport::for_config(config)?)
}

/// [`opik_otlp_exporter`] sending with the application's own `client` (its proxies, root
/// certificates, TLS stack), as
/// [`OpikRestExporter::with_client`](crate::store::OpikRestExporter::with_client).
///
/// # Errors
///
/// [`Error::NoRuntime`](crate::Error::NoRuntime) outside a tokio runtime;
/// [`Error::InvalidApiKey`](crate::Error::InvalidApiKey) when the key cannot be a header.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = tower_opik::OpikConfig::local("http://127.0.0.1:5173/api/");
/// let client = reqwest::Client::builder().build()?;
/// let exporter = tower_opik::otel::opik_otlp_exporter_with_client(&config, client)?;
/// # let _ = exporter;
/// # Ok(()) }
/// ```
pub fn opik_otlp_exporter_with_client(
    config: &OpikConfig,
    client: reqwest::Client,
) -> Result<opentelemetry_otlp::SpanExporter, crate::Error> {
    build(config, Transport::Reqwest(client))
}

fn build(
    config: &OpikConfig,
    transport: Transport,
) -> Result<opentelemetry_otlp::SpanExporter, crate::Error> {
    let authorization = match config.api_key() {
        Some(key) => Some(key.to_header_value().ok_or(crate::Error::InvalidApiKey)?),
        None => None,
    };
    let mut headers = HashMap::new();
    headers.insert("Comet-Workspace".to_owned(), config.workspace().to_owned());
    headers.insert("projectName".to_owned(), config.project_name().to_owned());
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| crate::Error::NoRuntime)?;
    let client = OnTokio {
        transport,
        authorization,
        runtime,
    };
    opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(config.endpoint(OTLP_TRACES_PATH).to_string())
        .with_headers(headers)
        .build()
        .map_err(|e| crate::Error::Tls(e.to_string()))
}

/// The most of an OTLP answer's body read (a partial-success message is far smaller).
const MAX_ANSWER: usize = 64 * 1024;

/// Runs the exporter's HTTP calls on a tokio runtime, whatever thread asks for them, and
/// adds the `Authorization` header (sensitive: its `Debug` prints `Sensitive`).
#[derive(Debug)]
struct OnTokio {
    transport: Transport,
    authorization: Option<HeaderValue>,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OnTokio {
    async fn send_bytes(
        &self,
        mut request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        if let Some(value) = &self.authorization {
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, value.clone());
        }
        let transport = self.transport.clone();
        let reply = self
            .runtime
            .spawn(async move { transport.send(request, MAX_ANSWER).await })
            .await?
            .map_err(|e| {
                // opentelemetry-otlp reports only "network error" without its
                // internal-logs feature: say why here, at most once per 10 s.
                if let Some(suppressed) = SEND_FAILED.check() {
                    tracing::warn!(
                        target: "tower_opik",
                        error = %e,
                        suppressed,
                        "the OTLP export to Opik failed"
                    );
                }
                e.to_string()
            })?;
        let mut response = http::Response::new(reply.body);
        *response.status_mut() = reply.status;
        *response.headers_mut() = reply.headers;
        Ok(response)
    }
}
