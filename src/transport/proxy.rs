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
mod tests;
