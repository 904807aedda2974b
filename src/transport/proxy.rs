//! Our own client's proxies, from the environment as curl reads it: `HTTPS_PROXY`,
//! `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` (and their lower-case forms), the rules
//! reqwest applies by default and the Opik Python SDK's httpx client with its default
//! `trust_env=True`. hyper-util's [`Matcher`] reads them and its connectors speak to the
//! proxy: an `https` endpoint through an HTTP `CONNECT` tunnel (TLS to Opik inside it), an
//! `http` one as an absolute-form request to the proxy, and either through SOCKS5
//! (`socks5://` resolves Opik's host here, `socks5h://` at the proxy).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::client::legacy::connect::proxy::{SocksV5, Tunnel};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::{Builder, Intercept, Matcher};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The way around this client, in the errors above.
const WITH_CLIENT: &str = "hand the exporters a reqwest::Client built with the proxy \
    (`OpikRestExporter::with_client`, `otel::opik_otlp_exporter_with_client`)";

/// How a destination is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// Straight to it (no proxy, or `NO_PROXY` names it).
    Direct,
    /// An HTTP proxy: `CONNECT` for `https`, absolute-form requests for `http`.
    Http,
    /// A SOCKS5 proxy; `remote_dns` for `socks5h`.
    Socks { remote_dns: bool },
}

/// The proxies in effect, and the checks made when the client is built.
#[derive(Clone)]
pub(crate) struct Proxies {
    matcher: Arc<Matcher>,
    /// The variables read, to name the one at fault (none for [`given`](Self::given)).
    vars: Arc<Vars>,
}

impl std::fmt::Debug for Proxies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The proxy URLs can carry credentials.
        f.write_str("Proxies(..)")
    }
}

/// The proxy variables as hyper-util's `Matcher::from_env` reads them: the upper-case
/// name first (as reqwest), a set but empty variable counting as set, `HTTP_PROXY`
/// ignored when `REQUEST_METHOD` is set (a CGI environment, where it could be a request
/// header: "httpoxy").
#[derive(Default)]
struct Vars {
    all: Option<Var>,
    http: Option<Var>,
    https: Option<Var>,
    /// `NO_PROXY`, as given.
    no: String,
}

struct Var {
    name: &'static str,
    /// Trimmed, its scheme in lower case.
    value: String,
}

impl Vars {
    fn read(get: &dyn Fn(&str) -> Option<String>) -> Self {
        let first = |names: [&'static str; 2]| {
            names.into_iter().find_map(|name| {
                get(name).map(|value| Var {
                    name,
                    value: normalise(&value),
                })
            })
        };
        let cgi = get("REQUEST_METHOD").is_some();
        Self {
            all: first(["ALL_PROXY", "all_proxy"]),
            http: if cgi {
                None
            } else {
                first(["HTTP_PROXY", "http_proxy"])
            },
            https: first(["HTTPS_PROXY", "https_proxy"]),
            no: first(["NO_PROXY", "no_proxy"])
                .map(|v| v.value)
                .unwrap_or_default(),
        }
    }

    /// The variable that names the proxy for `dst`'s scheme, if one is set and not empty.
    fn governing(&self, dst: &Uri) -> Option<&Var> {
        let specific = match dst.scheme_str() {
            Some("https") => self.https.as_ref(),
            _ => self.http.as_ref(),
        };
        specific
            .filter(|v| !v.value.is_empty())
            .or(self.all.as_ref())
            .filter(|v| !v.value.is_empty())
    }
}

/// Trimmed, with its scheme in lower case: hyper-util compares schemes as written
/// (`SOCKS5H://` would otherwise be dropped, and traffic go direct).
fn normalise(value: &str) -> String {
    let value = value.trim();
    match value.split_once("://") {
        Some((scheme, rest)) => format!("{}://{rest}", scheme.to_ascii_lowercase()),
        None => value.to_owned(),
    }
}

/// `NO_PROXY` for hyper-util: `None` when it holds `*` (no proxy for any host, as curl
/// reads it; hyper-util applies `*` to host names only, not to IP addresses), else the
/// list with the ports of `host:port` entries dropped (hyper-util ignores such entries;
/// httpx honours them; since this client only ever reaches Opik's host, the host is
/// reached directly on every port).
fn no_proxy(value: &str) -> Option<String> {
    let mut entries = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        if entry == "*" {
            return None;
        }
        let entry = match entry.rsplit_once(':') {
            Some((host, port))
                if !host.contains(':')
                    && !port.is_empty()
                    && port.bytes().all(|b| b.is_ascii_digit()) =>
            {
                host
            }
            _ => entry,
        };
        entries.push(entry);
    }
    Some(entries.join(","))
}

impl Proxies {
    /// The process environment's proxies.
    pub(crate) fn from_env() -> Self {
        Self::from_vars(&|name| std::env::var(name).ok())
    }

    fn from_vars(get: &dyn Fn(&str) -> Option<String>) -> Self {
        let vars = Vars::read(get);
        let mut builder = Matcher::builder();
        if let Some(no) = no_proxy(&vars.no) {
            for (var, set) in [
                (&vars.all, Builder::all as fn(Builder, String) -> Builder),
                (&vars.http, Builder::http),
                (&vars.https, Builder::https),
            ] {
                if let Some(var) = var {
                    builder = set(builder, var.value.clone());
                }
            }
            builder = builder.no(no);
        }
        Self {
            matcher: Arc::new(builder.build()),
            vars: Arc::new(vars),
        }
    }

    /// None at all.
    #[cfg(test)]
    pub(crate) fn none() -> Self {
        Self::from_vars(&|_| None)
    }

    /// Given ones (`all` for every scheme, `no` as `NO_PROXY`).
    #[cfg(test)]
    pub(crate) fn given(all: &str, no: &str) -> Self {
        let (all, no) = (all.to_owned(), no.to_owned());
        Self::from_vars(&move |name| match name {
            "ALL_PROXY" => Some(all.clone()),
            "NO_PROXY" => Some(no.clone()),
            _ => None,
        })
    }

    /// The checks made when the client is built, for Opik's endpoint `dst`: the proxy
    /// for it has a scheme this client speaks ([`route`](Self::route)), and a proxy
    /// variable that is set for it was understood (hyper-util drops a value it cannot
    /// read, and traffic would go direct, unnoticed). The error names the variable, never
    /// its value (it can hold credentials).
    pub(crate) fn check(&self, dst: &Uri) -> Result<(), String> {
        self.route(dst)?;
        let Some(var) = self.vars.governing(dst) else {
            return Ok(());
        };
        // A value both parsers read the same way (the `url` crate, WHATWG, as
        // `reqwest::Url`; and hyper-util's `http::Uri`): `http://u:p#q@host` is a host `u`
        // with a bad port to one, and something else to the other.
        let with_scheme = if var.value.contains("://") {
            var.value.clone()
        } else {
            format!("http://{}", var.value)
        };
        let readable = reqwest::Url::parse(&with_scheme).is_ok_and(|u| u.host_str().is_some());
        if readable && self.intercept(dst).is_some() {
            return Ok(());
        }
        // Not intercepted: either NO_PROXY exempts Opik's host, or the value was dropped.
        let exempt = match no_proxy(&self.vars.no) {
            None => true,
            Some(no) => Matcher::builder()
                .all("http://probe.invalid")
                .no(no)
                .build()
                .intercept(dst)
                .is_none(),
        };
        if exempt {
            return Ok(());
        }
        let scheme = var
            .value
            .split_once("://")
            .map(|(scheme, _)| scheme)
            .filter(|s| {
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
            })
            .filter(|_| readable);
        Err(format!(
            "{} is set but tower-opik's own client cannot use it ({}); it takes \
             `http://host:port`, `socks5://host:port` or `socks5h://host:port`, with any \
             user and password percent-encoded (`@` as `%40`, `#` as `%23`); fix it, list \
             Opik's host in NO_PROXY, or {WITH_CLIENT}",
            var.name,
            match scheme {
                Some(scheme) => format!("a {scheme}:// proxy"),
                None => "not a URL it can read".to_owned(),
            },
        ))
    }

    /// `scheme://host:port` of the proxy `dst` goes through, without its user-info.
    pub(crate) fn describe(&self, dst: &Uri) -> Option<String> {
        let proxy = self.intercept(dst)?;
        let uri = proxy.uri();
        Some(format!(
            "{}://{}",
            uri.scheme_str().unwrap_or("http"),
            uri.authority()
                .map_or("", |a| a.as_str().rsplit('@').next().unwrap_or(""))
        ))
    }

    fn intercept(&self, dst: &Uri) -> Option<Intercept> {
        self.matcher.intercept(dst)
    }

    /// How `dst` is reached; an error names a proxy this client cannot use (by scheme,
    /// host and port only: its user-info is a secret).
    pub(crate) fn route(&self, dst: &Uri) -> Result<Route, String> {
        let Some(proxy) = self.intercept(dst) else {
            return Ok(Route::Direct);
        };
        match proxy.uri().scheme_str() {
            Some("http") | None => Ok(Route::Http),
            Some("socks5") => Ok(Route::Socks { remote_dns: false }),
            Some("socks5h") => Ok(Route::Socks { remote_dns: true }),
            Some(other) => Err(format!(
                "the proxy for {} is {}, a scheme tower-opik's own client does not speak \
                 (it speaks http://, socks5:// and socks5h:// proxies); set HTTPS_PROXY / \
                 HTTP_PROXY / ALL_PROXY to one of those, list Opik's host in NO_PROXY, or \
                 {WITH_CLIENT}",
                dst.scheme_str().unwrap_or("http"),
                self.describe(dst).unwrap_or_else(|| format!("{other}://")),
            )),
        }
    }

    /// The `Proxy-Authorization` an `http` request to `dst` carries (the proxy's
    /// user-info, as Basic), if it goes through an HTTP proxy that has one.
    pub(crate) fn authorization(&self, dst: &Uri) -> Option<http::HeaderValue> {
        if dst.scheme_str() != Some("http") {
            return None; // https: sent once, on the CONNECT, by the tunnel
        }
        let proxy = self.intercept(dst)?;
        if !matches!(proxy.uri().scheme_str(), Some("http") | None) {
            return None;
        }
        let mut value = proxy.basic_auth()?.clone();
        value.set_sensitive(true);
        Some(value)
    }
}

/// A connector that goes through the proxy `Proxies` names for each destination.
#[derive(Clone, Debug)]
pub(crate) struct ProxyConnector {
    http: HttpConnector,
    proxies: Proxies,
}

impl ProxyConnector {
    pub(crate) fn new(http: HttpConnector, proxies: Proxies) -> Self {
        Self { http, proxies }
    }
}

impl Service<Uri> for ProxyConnector {
    type Response = ProxyStream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<ProxyStream, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(())) // each call clones the (always ready) HttpConnector
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let http = self.http.clone();
        let route = self.proxies.route(&dst);
        let proxy = self.proxies.intercept(&dst);
        Box::pin(async move {
            let https = dst.scheme_str() == Some("https");
            let (io, to_proxy) = match (route?, proxy) {
                (Route::Direct, _) | (_, None) => (oneshot(http, dst).await?, false),
                (Route::Http, Some(proxy)) if https => {
                    let mut tunnel = Tunnel::new(proxy.uri().clone(), http);
                    if let Some(auth) = proxy.basic_auth() {
                        tunnel = tunnel.with_auth(auth.clone());
                    }
                    (oneshot(tunnel, dst).await?, false)
                }
                // Plain http: the request itself goes to the proxy, in absolute form.
                (Route::Http, Some(proxy)) => (oneshot(http, proxy.uri().clone()).await?, true),
                (Route::Socks { remote_dns }, Some(proxy)) => {
                    let mut socks = SocksV5::new(proxy.uri().clone(), http).local_dns(!remote_dns);
                    if let Some((user, pass)) = proxy.raw_auth() {
                        socks = socks.with_auth(user.to_owned(), pass.to_owned());
                    }
                    (oneshot(socks, dst).await?, false)
                }
            };
            Ok(ProxyStream { io, to_proxy })
        })
    }
}

/// `service` made ready, then called once (tower's `ServiceExt::oneshot`, which needs
/// tower's `util` feature this crate does not otherwise use).
async fn oneshot<S>(mut service: S, dst: Uri) -> Result<S::Response, BoxError>
where
    S: Service<Uri>,
    S::Error: Into<BoxError>,
{
    std::future::poll_fn(|cx| service.poll_ready(cx))
        .await
        .map_err(Into::into)?;
    service.call(dst).await.map_err(Into::into)
}

/// A connection, which tells hyper whether it goes to an HTTP proxy (hyper then writes
/// absolute-form request targets).
#[derive(Debug)]
pub(crate) struct ProxyStream {
    io: TokioIo<TcpStream>,
    to_proxy: bool,
}

impl Connection for ProxyStream {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.to_proxy)
    }
}

impl hyper::rt::Read for ProxyStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for ProxyStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Transport, TransportError};
    use super::*;
    use bytes::Bytes;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    /// `user:secret`, Basic.
    const AUTH: &str = "Basic dXNlcjpzZWNyZXQ=";

    fn post(url: &str) -> http::Request<Bytes> {
        let mut request = http::Request::new(Bytes::from_static(b"{}"));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = url.parse().unwrap();
        request
    }

    /// A proxy that reads one request head, hands it back through the join handle, and
    /// answers with `answer` (then, for a tunnel, the first two bytes sent through it).
    async fn fake_proxy(
        answer: &'static str,
        tunnel: bool,
    ) -> (
        String,
        tokio::task::JoinHandle<(Vec<String>, Option<[u8; 2]>)>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let mut socket = BufReader::new(socket);
            let mut head = Vec::new();
            loop {
                let mut line = String::new();
                socket.read_line(&mut line).await.unwrap();
                let line = line.trim_end().to_owned();
                if line.is_empty() {
                    break;
                }
                head.push(line);
            }
            socket.get_mut().write_all(answer.as_bytes()).await.unwrap();
            let mut first = [0u8; 2];
            let through = if tunnel {
                socket.read_exact(&mut first).await.ok().map(|_| first)
            } else {
                None
            };
            (head, through)
        });
        (format!("http://user:secret@{addr}"), handle)
    }

    fn has(head: &[String], line: &str) -> bool {
        head.iter().any(|l| l.eq_ignore_ascii_case(line))
    }

    /// An `http` endpoint goes to the proxy as an absolute-form request with the proxy's
    /// credentials; Opik's host is never resolved here (`.invalid` cannot be).
    #[tokio::test]
    async fn http_goes_to_the_proxy_in_absolute_form_with_its_credentials() {
        let (proxy, seen) = fake_proxy("HTTP/1.1 204 No Content\r\n\r\n", false).await;
        let transport = Transport::ours(false, Proxies::given(&proxy, ""), true).unwrap();
        let reply = transport
            .send(
                post("http://opik.invalid:5173/api/v1/private/spans/batch"),
                64,
            )
            .await
            .unwrap();
        assert_eq!(reply.status, http::StatusCode::NO_CONTENT);
        let (head, _) = seen.await.unwrap();
        assert_eq!(
            head[0],
            "POST http://opik.invalid:5173/api/v1/private/spans/batch HTTP/1.1"
        );
        assert!(
            has(&head, &format!("proxy-authorization: {AUTH}")),
            "{head:?}"
        );
    }

    /// An `https` endpoint goes through a `CONNECT` tunnel (credentials on the CONNECT),
    /// and TLS starts inside it: the proxy sees a handshake record (0x16, version 3.x).
    #[cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc"))]
    #[tokio::test]
    async fn https_goes_through_a_connect_tunnel_and_tls_starts_inside_it() {
        let (proxy, seen) = fake_proxy("HTTP/1.1 200 Connection established\r\n\r\n", true).await;
        let transport = Transport::ours(true, Proxies::given(&proxy, ""), true).unwrap();
        let result = transport
            .send(post("https://opik.invalid/api/v1/private/spans/batch"), 64)
            .await;
        assert!(result.is_err(), "the fake proxy hangs up after the hello");
        let (head, through) = seen.await.unwrap();
        assert_eq!(head[0], "CONNECT opik.invalid:443 HTTP/1.1");
        assert!(
            has(&head, &format!("proxy-authorization: {AUTH}")),
            "{head:?}"
        );
        assert_eq!(through, Some([0x16, 0x03]));
    }

    /// A proxy that refuses the tunnel (407) is a connection error that says so, and
    /// names no credential.
    #[cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc"))]
    #[tokio::test]
    async fn a_refused_tunnel_is_a_connection_error_without_the_credentials() {
        let (proxy, _seen) =
            fake_proxy("HTTP/1.1 407 Proxy Authentication Required\r\n\r\n", false).await;
        let transport = Transport::ours(true, Proxies::given(&proxy, ""), true).unwrap();
        let result = transport.send(post("https://opik.invalid/api/x"), 64).await;
        let Err(TransportError::Connect(text)) = result else {
            panic!("{:?}", result.map(|r| r.status));
        };
        assert!(text.contains("proxy authorization required"), "{text}");
        assert!(!text.contains("secret") && !text.contains("user"), "{text}");
    }

    /// `NO_PROXY` names the endpoint's host: straight to it, no credentials sent.
    #[tokio::test]
    async fn no_proxy_hosts_are_reached_directly() {
        let (direct, seen) = fake_proxy("HTTP/1.1 204 No Content\r\n\r\n", false).await;
        let addr = direct.rsplit('@').next().unwrap().to_owned();
        // The proxy named is a closed port: using it would fail.
        let proxies = Proxies::given("http://user:secret@127.0.0.1:9", "127.0.0.1,localhost");
        let reply = Transport::ours(false, proxies, true)
            .unwrap()
            .send(post(&format!("http://{addr}/api/x")), 64)
            .await
            .unwrap();
        assert_eq!(reply.status, http::StatusCode::NO_CONTENT);
        let (head, _) = seen.await.unwrap();
        assert_eq!(head[0], "POST /api/x HTTP/1.1");
        assert!(
            !head
                .iter()
                .any(|l| l.to_ascii_lowercase().starts_with("proxy-"))
        );
    }

    /// `socks5h://` with user and password: the SOCKS5 handshake (RFC 1928, RFC 1929)
    /// carries them, and Opik's host name goes to the proxy unresolved.
    #[tokio::test]
    async fn socks5h_sends_the_host_name_and_the_credentials() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut greeting = [0u8; 2];
            s.read_exact(&mut greeting).await.unwrap();
            let mut methods = vec![0u8; greeting[1] as usize];
            s.read_exact(&mut methods).await.unwrap();
            assert!(methods.contains(&2), "user/password offered: {methods:?}");
            s.write_all(&[5, 2]).await.unwrap();
            let mut ver_ulen = [0u8; 2];
            s.read_exact(&mut ver_ulen).await.unwrap();
            let mut user = vec![0u8; ver_ulen[1] as usize];
            s.read_exact(&mut user).await.unwrap();
            let mut plen = [0u8; 1];
            s.read_exact(&mut plen).await.unwrap();
            let mut pass = vec![0u8; plen[0] as usize];
            s.read_exact(&mut pass).await.unwrap();
            s.write_all(&[1, 0]).await.unwrap();
            let mut request = [0u8; 5];
            s.read_exact(&mut request).await.unwrap();
            assert_eq!(request[..4], [5, 1, 0, 3], "CONNECT to a domain name");
            let mut host = vec![0u8; request[4] as usize];
            s.read_exact(&mut host).await.unwrap();
            let mut port = [0u8; 2];
            s.read_exact(&mut port).await.unwrap();
            s.write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 80])
                .await
                .unwrap();
            let mut http = [0u8; 4];
            s.read_exact(&mut http).await.unwrap();
            s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
                .await
                .unwrap();
            (
                String::from_utf8(user).unwrap(),
                String::from_utf8(pass).unwrap(),
                String::from_utf8(host).unwrap(),
                u16::from_be_bytes(port),
                http,
            )
        });
        let proxies = Proxies::given(&format!("socks5h://user:secret@{addr}"), "");
        let reply = Transport::ours(false, proxies, true)
            .unwrap()
            .send(post("http://opik.invalid:5173/api/x"), 64)
            .await
            .unwrap();
        assert_eq!(reply.status, http::StatusCode::NO_CONTENT);
        let (user, pass, host, port, http) = server.await.unwrap();
        assert_eq!((user.as_str(), pass.as_str()), ("user", "secret"));
        assert_eq!((host.as_str(), port), ("opik.invalid", 5173));
        assert_eq!(
            &http, b"POST",
            "origin-form request through the SOCKS tunnel"
        );
    }

    fn from(vars: &[(&str, &str)]) -> Proxies {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Proxies::from_vars(&move |name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    fn uri(text: &str) -> Uri {
        text.parse().unwrap()
    }

    /// What hyper-util would drop without a word (and traffic then go direct) is either
    /// read after normalising (case, spaces) or refused at build, naming the variable and
    /// never its value.
    #[test]
    fn proxy_values_are_read_or_refused_never_dropped() {
        let opik = uri("http://opik.internal:5173/api/");
        for value in [
            "SOCKS5H://u:secret@10.0.0.1:1080",
            "  http://u:secret@10.0.0.1:3128  ",
            "HTTP://10.0.0.1:3128",
        ] {
            let proxies = from(&[("HTTP_PROXY", value)]);
            assert!(proxies.check(&opik).is_ok(), "{value}");
            assert_ne!(proxies.route(&opik), Ok(Route::Direct), "{value}");
        }
        for (value, says) in [
            ("ftp://u:secret@10.0.0.1:21", "a ftp:// proxy"),
            ("socks://u:secret@10.0.0.1:1080", "a socks:// proxy"),
            ("::not a url::", "not a URL"),
            ("http://u:sec#ret@10.0.0.1:3128", "not a URL"),
        ] {
            let err = from(&[("http_proxy", value)])
                .check(&opik)
                .expect_err(value);
            assert!(err.starts_with("http_proxy is set"), "{err}");
            assert!(err.contains(says), "{value}: {err}");
            assert!(!err.contains("secret") && !err.contains("sec#"), "{err}");
            // The same value for the other scheme only, or exempted: no error.
            assert!(from(&[("HTTPS_PROXY", value)]).check(&opik).is_ok());
            let exempt = from(&[("HTTP_PROXY", value), ("NO_PROXY", "opik.internal")]);
            assert!(exempt.check(&opik).is_ok(), "{value}");
        }
        // An empty HTTP_PROXY counts as set: ALL_PROXY then applies (hyper-util's rule).
        let proxies = from(&[("HTTP_PROXY", ""), ("ALL_PROXY", "http://10.0.0.1:3128")]);
        assert_eq!(proxies.route(&opik), Ok(Route::Http));
        // The upper-case name wins, as in reqwest.
        let proxies = from(&[
            ("HTTP_PROXY", "socks5://10.0.0.1:1"),
            ("http_proxy", "http://10.0.0.1:2"),
        ]);
        assert_eq!(proxies.route(&opik), Ok(Route::Socks { remote_dns: false }));
    }

    /// `NO_PROXY=*` covers IP addresses too, and a `host:port` entry covers its host;
    /// in a CGI environment `HTTP_PROXY` is not read (it may come from a request header).
    #[test]
    fn no_proxy_star_and_ports_and_the_cgi_guard() {
        let ip = uri("http://127.0.0.1:5173/api/");
        let all = "http://10.0.0.1:3128";
        for no in [
            "*",
            "example.com, *",
            "127.0.0.1:5173",
            "localhost,127.0.0.1:9",
        ] {
            let proxies = from(&[("ALL_PROXY", all), ("no_proxy", no)]);
            assert_eq!(proxies.route(&ip), Ok(Route::Direct), "{no}");
            assert!(proxies.check(&ip).is_ok(), "{no}");
        }
        let proxies = from(&[("ALL_PROXY", all), ("NO_PROXY", "127.0.0.2")]);
        assert_eq!(proxies.route(&ip), Ok(Route::Http));
        let cgi = from(&[
            ("HTTP_PROXY", all),
            ("HTTPS_PROXY", all),
            ("REQUEST_METHOD", "GET"),
        ]);
        assert_eq!(cgi.route(&ip), Ok(Route::Direct));
        assert_eq!(cgi.route(&uri("https://127.0.0.1/")), Ok(Route::Http));
    }

    /// A proxy that cannot be reached is named in the error, without its credentials.
    #[tokio::test]
    async fn a_dead_proxy_is_named_in_the_error() {
        let proxies = Proxies::given("http://user:secret@127.0.0.1:9", "");
        let result = Transport::ours(false, proxies, true)
            .unwrap()
            .send(post("http://opik.invalid/api/x"), 64)
            .await;
        let Err(TransportError::Connect(text)) = result else {
            panic!("{:?}", result.map(|r| r.status));
        };
        assert!(
            text.contains("through the proxy http://127.0.0.1:9"),
            "{text}"
        );
        assert!(!text.contains("secret"), "{text}");
    }

    /// A proxy scheme our client cannot speak is refused when the client is built, by a
    /// message that names the proxy's host and not its user-info.
    #[test]
    fn an_unusable_proxy_scheme_is_named_without_its_credentials() {
        let proxies = Proxies::given("https://user:secret@proxy.example:3128", "");
        let err = proxies
            .route(&"https://www.comet.com/opik/api/".parse().unwrap())
            .unwrap_err();
        assert!(err.contains("https://proxy.example:3128"), "{err}");
        assert!(!err.contains("secret") && !err.contains("user:"), "{err}");
        assert_eq!(
            proxies.route(&"http://127.0.0.1/".parse().unwrap()),
            Err(err.replace("for https", "for http"))
        );
        let exempt = Proxies::given("https://proxy.example:3128", "www.comet.com");
        assert_eq!(
            exempt.route(&"https://www.comet.com/opik/api/".parse().unwrap()),
            Ok(Route::Direct)
        );
        assert!(!format!("{proxies:?}").contains("secret"));
    }
}
