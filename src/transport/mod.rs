//! The HTTP(S) client under the REST and OTLP exporters: our own hyper client on rustls
//! (the `rustls-*` features), or a `reqwest::Client` the application hands us.
//!
//! None of this enables a feature of the application's reqwest: our TLS goes through
//! hyper-rustls, beside reqwest, with a `rustls::ClientConfig` we build ourselves. Our
//! client goes through the proxies the environment names ([`proxy`]).

mod proxy;
#[cfg(feature = "rustls-no-provider")]
mod tls;

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use proxy::{Proxies, ProxyConnector};
#[cfg(feature = "rustls-no-provider")]
use tls::{provider, tls};

/// A connection attempt's limit (DNS and TCP; the TLS handshake counts in the request's).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle pooled connections are closed after this (below common 60 s load-balancer limits).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(50);

/// The client the exporters send with.
#[derive(Clone)]
pub(crate) enum Transport {
    /// The application's client, as it configured it (proxies, CAs, TLS stack).
    Reqwest(reqwest::Client),
    /// Ours, plain HTTP only (no TLS feature, or no provider and an `http://` endpoint).
    Plain(Client<ProxyConnector, Full<Bytes>>, Proxies),
    /// Ours, HTTP and HTTPS.
    #[cfg(feature = "rustls-no-provider")]
    Tls(
        Client<hyper_rustls::HttpsConnector<ProxyConnector>, Full<Bytes>>,
        Proxies,
    ),
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect(text) | Self::Other(text) => f.write_str(text),
        }
    }
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Reqwest(_) => "Transport::Reqwest",
            Self::Plain(..) => "Transport::Plain",
            #[cfg(feature = "rustls-no-provider")]
            Self::Tls(..) => "Transport::Tls",
        })
    }
}

/// An answer: its status, headers, and the start of its body.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// Why a request got no answer.
#[derive(Debug)]
pub(crate) enum TransportError {
    /// No connection could be made (DNS, TCP, TLS setup).
    Connect(String),
    /// Anything else on the way (a reset, a malformed answer).
    Other(String),
}

impl Transport {
    /// Our own HTTP(S) client for `config`'s endpoint, through the proxies the environment
    /// names (see [`ours`](Self::ours)). Errors: an `https` endpoint without a rustls
    /// provider ([`Error::Tls`](crate::Error::Tls)), a proxy for the endpoint that our
    /// client cannot speak to ([`Error::Proxy`](crate::Error::Proxy)), both at setup
    /// rather than at every export.
    pub(crate) fn for_config(config: &crate::OpikConfig) -> Result<Self, crate::Error> {
        let endpoint = config.endpoint("");
        let proxies = Proxies::from_env();
        if let Ok(uri) = endpoint.as_str().parse::<http::Uri>() {
            proxies.check(&uri).map_err(crate::Error::Proxy)?;
        }
        let https = endpoint.scheme() == "https";
        if https && !config.check_tls_certificate() {
            tracing::warn!(
                target: "tower_opik",
                url = %crate::config::without_credentials(config.url()),
                "TLS certificate checks are off for Opik (check_tls_certificate = false): \
                 anyone on the path can read the API key and the traces; trust the \
                 certificate instead (SSL_CERT_FILE) where you can"
            );
        }
        Self::ours(https, proxies, config.check_tls_certificate())
    }

    /// Our own client, through `proxies`; `check_certificates: false` accepts any
    /// certificate (see [`OpikConfig::check_tls_certificate`](crate::OpikConfig::check_tls_certificate)).
    pub(crate) fn ours(
        https: bool,
        proxies: Proxies,
        check_certificates: bool,
    ) -> Result<Self, crate::Error> {
        // Plain HTTP needs no TLS, and must not fail for want of one: the verifier loads
        // the CA certificates when built (none in a distroless image, or a bad
        // `SSL_CERT_FILE`), which an `http://localhost` Opik never uses.
        if https {
            #[cfg(feature = "rustls-no-provider")]
            if let Some(provider) = provider() {
                return tls(provider, proxies.clone(), check_certificates)
                    .map(|c| Self::Tls(c, proxies));
            }
            let _ = check_certificates;
            return Err(crate::Error::Tls(NO_PROVIDER.to_owned()));
        }
        Ok(Self::Plain(
            pooled(ProxyConnector::new(connector(), proxies.clone())),
            proxies,
        ))
    }

    /// Sends `request` and reads at most `limit` bytes of the answer's body.
    pub(crate) async fn send(
        &self,
        request: http::Request<Bytes>,
        limit: usize,
    ) -> Result<Reply, TransportError> {
        match self {
            Self::Reqwest(client) => {
                let request = reqwest::Request::try_from(request)
                    .map_err(|e| TransportError::Other(e.to_string()))?;
                let mut response = client.execute(request).await.map_err(|e| {
                    // Without its URL, which may carry a user and password: the exporter
                    // names the URL, without them. The causes say why (a refused
                    // certificate, a reset).
                    let connect = e.is_connect();
                    let text = with_hint(error_chain(&e.without_url()));
                    if connect {
                        TransportError::Connect(text)
                    } else {
                        TransportError::Other(text)
                    }
                })?;
                let status = response.status();
                let headers = std::mem::take(response.headers_mut());
                let mut body = Vec::new();
                while body.len() < limit {
                    match response.chunk().await {
                        Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                        _ => break,
                    }
                }
                body.truncate(limit);
                Ok(Reply {
                    status,
                    headers,
                    body: body.into(),
                })
            }
            Self::Plain(client, proxies) => hyper_send(client, proxies, request, limit).await,
            #[cfg(feature = "rustls-no-provider")]
            Self::Tls(client, proxies) => hyper_send(client, proxies, request, limit).await,
        }
    }
}

/// What to do when HTTPS has no provider.
const NO_PROVIDER: &str = "HTTPS to Opik needs a rustls crypto provider: enable tower-opik's \
    `rustls-aws-lc` (default) or `rustls-ring` feature, install a process default \
    (`rustls::crypto::CryptoProvider::install_default`) with `rustls-no-provider`, or pass \
    your own client (`OpikRestExporter::with_client`)";

pub(crate) fn connector() -> HttpConnector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    http.set_nodelay(true);
    http
}

pub(crate) fn pooled<C>(connector: C) -> Client<C, Full<Bytes>>
where
    C: hyper_util::client::legacy::connect::Connect + Clone,
{
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_timer(TokioTimer::new())
        .build(connector)
}

async fn hyper_send<C>(
    client: &Client<C, Full<Bytes>>,
    proxies: &Proxies,
    mut request: http::Request<Bytes>,
    limit: usize,
) -> Result<Reply, TransportError>
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    if let Some(auth) = proxies.authorization(request.uri()) {
        request
            .headers_mut()
            .insert(http::header::PROXY_AUTHORIZATION, auth);
    }
    let via = proxies.describe(request.uri());
    let response = client.request(request.map(Full::new)).await.map_err(|e| {
        let mut text = with_hint(error_chain(&e));
        if let Some(proxy) = via {
            text.push_str(&format!(
                " (through the proxy {proxy}, from the environment)"
            ));
        }
        if e.is_connect() {
            TransportError::Connect(text)
        } else {
            TransportError::Other(text)
        }
    })?;
    let (parts, mut incoming) = response.into_parts();
    let mut body = Vec::new();
    // Read to the end when the body is short (the connection goes back to the pool),
    // stop at `limit` when not (a hostile backend cannot make us read a gigabyte).
    while body.len() < limit {
        match incoming.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    body.extend_from_slice(&data);
                }
            }
            _ => break,
        }
    }
    body.truncate(limit);
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.into(),
    })
}

/// `text`, with what to do when it is a certificate refused.
fn with_hint(mut text: String) -> String {
    if text.contains("invalid peer certificate") {
        text.push_str(
            " (a private CA or self-signed certificate: point SSL_CERT_FILE at it, or set \
             OPIK_CHECK_TLS_CERTIFICATE=false, which sends the API key to whoever answers)",
        );
    }
    text
}

/// An error with its causes, `a: b: c` (hyper's own message alone says little).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn post(url: &str) -> http::Request<Bytes> {
        let mut request = http::Request::new(Bytes::from_static(b"{}"));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = url.parse().unwrap();
        request
    }

    /// Our own client speaks TLS to an `https` URL with the provider the features compile
    /// in: the server sees a TLS handshake record (0x16, version 3.x), then hangs up.
    #[cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc"))]
    #[tokio::test]
    async fn https_goes_through_our_tls() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut first = [0u8; 2];
            socket.read_exact(&mut first).await.unwrap();
            first
        });
        let transport = Transport::ours(true, Proxies::none(), true).unwrap();
        assert!(matches!(transport, Transport::Tls(..)), "{transport:?}");
        let result = transport
            .send(post(&format!("https://{addr}/api/x")), 16)
            .await;
        assert!(matches!(result, Err(TransportError::Connect(_))));
        assert_eq!(server.await.unwrap(), [0x16, 0x03]);
    }

    /// The application's reqwest client: an error carries its causes, not only reqwest's
    /// "error sending request" (the cause is what tells a refused certificate apart).
    #[tokio::test]
    async fn a_reqwest_error_carries_its_causes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = socket.read(&mut buf).await; // then hang up without an answer
        });
        let result = Transport::Reqwest(reqwest::Client::new())
            .send(post(&format!("http://{addr}/api/x")), 64)
            .await;
        let Err(TransportError::Other(text)) = result else {
            panic!("{:?}", result.map(|r| r.status));
        };
        assert!(text.starts_with("error sending request"), "{text}");
        assert!(text.contains("connection closed"), "the cause: {text}");
    }

    /// Plain HTTP reads a short answer whole and cuts a long one at the limit.
    #[tokio::test]
    async fn http_reads_the_answer_up_to_the_limit() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            let body = "x".repeat(10_000);
            let answer = format!(
                "HTTP/1.1 429 Too Many Requests\r\nretry-after: 3\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(answer.as_bytes()).await;
        });
        let reply = Transport::ours(false, Proxies::none(), true)
            .unwrap()
            .send(post(&format!("http://{addr}/api/x")), 100)
            .await
            .unwrap();
        assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(reply.headers["retry-after"], "3");
        assert_eq!(reply.body.len(), 100);
    }
}
