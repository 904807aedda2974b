//! The proxy connector over real sockets on 127.0.0.1: fake HTTP and SOCKS5 proxies.
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
    Proxies::from_vars(&move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
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
