//! An OTLP/HTTP protobuf exporter aimed at Opik's OTel endpoint.

use std::collections::HashMap;

use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};

use crate::config::OpikConfig;

/// Opik's OTLP endpoint, relative to its base URL.
///
/// ```
/// assert_eq!(tower_opik::otel::OTLP_TRACES_PATH, "v1/private/otel/v1/traces");
/// ```
pub const OTLP_TRACES_PATH: &str = "v1/private/otel/v1/traces";

/// An OTLP span exporter for Opik: protobuf over HTTP (the reliable encoding: Opik reads JSON
/// ids as base64) to `v1/private/otel/v1/traces`, with the `Authorization`,
/// `Comet-Workspace` and `projectName` headers taken from `config`, over the same
/// pure-Rust TLS stack as the REST exporter.
///
/// Call it inside a tokio runtime: the HTTP calls run on that runtime, so the exporter works
/// from the SDK's batch thread too (which has none), as long as the runtime lives.
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
    let mut headers = HashMap::new();
    if let Some(key) = config.api_key() {
        headers.insert("Authorization".to_owned(), key.expose_secret().to_owned());
    }
    headers.insert("Comet-Workspace".to_owned(), config.workspace().to_owned());
    headers.insert("projectName".to_owned(), config.project_name().to_owned());
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| crate::Error::NoRuntime)?;
    let client = OnTokio {
        client: crate::store::http_client()?,
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

/// Runs the exporter's HTTP calls on a tokio runtime, whatever thread asks for them.
#[derive(Debug)]
struct OnTokio {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OnTokio {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        self.runtime
            .spawn(async move { client.send_bytes(request).await })
            .await?
    }
}
