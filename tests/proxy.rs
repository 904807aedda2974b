//! Our own HTTP client behind a proxy, as a deployment sets it: `HTTP_PROXY` /
//! `HTTPS_PROXY` / `NO_PROXY` in the environment (the Opik Python SDK's httpx client
//! honours them too). Each case runs in a child process (this test binary again) with its
//! own environment, since the proxy variables are read from the process environment;
//! the parent runs LocalOpik and a forwarding proxy on 127.0.0.1.

#![cfg(all(feature = "testing", feature = "axum"))]

mod common;

use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use axum::Router;
use http::{HeaderMap, Method, Uri};
use tower_opik::SpanStore;
use tower_opik::testing::LocalOpik;

use common::{FLUSH, serve};

/// Which case the child runs (unset: not a child, the test does nothing).
const MODE: &str = "TOWER_OPIK_PROXY_TEST";
/// `user:secret`, as Basic.
const AUTH: &str = "Basic dXNlcjpzZWNyZXQ=";

/// The child: builds a store from the environment, records a trace of two spans, flushes,
/// and prints the report; with a bad proxy, prints the build error.
#[test]
#[ignore = "the child process of this file's tests: they run it with --ignored"]
fn child() {
    let Ok(mode) = std::env::var(MODE) else {
        return;
    };
    // Global: the store logs from its export task, on the runtime's threads.
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_env_filter("tower_opik=trace")
            .with_writer(std::io::stderr)
            .finish(),
    )
    .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        match (mode.as_str(), SpanStore::from_env()) {
            ("send", Ok(store)) => {
                let root = store.root_span("through the proxy");
                root.child("step").end();
                root.end();
                let report = store.flush(FLUSH).await;
                println!("\nREPORT {report}");
                assert!(report.completed && report.stats.sent == 3, "{report}");
            }
            ("refuse", Err(e)) => println!("\nERROR {e}"),
            (mode, result) => panic!("{mode}: {:?}", result.map(|_| ())),
        }
    });
}

/// Runs the child with `vars` and no other proxy setting (nor `~/.opik.config`).
fn run_child(mode: &str, vars: &[(&str, String)]) -> Output {
    let home = tempfile::tempdir().unwrap();
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(MODE, mode)
        .env("HOME", home.path());
    for name in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
        "OPIK_CONFIG_PATH",
        "OPIK_API_KEY",
        "OPIK_WORKSPACE",
        "OPIK_TRACK_DISABLE",
        "OPIK_SAMPLE_RATE",
        "OPIK_SPOOL_DIR",
        "RUST_LOG",
    ] {
        command.env_remove(name);
    }
    command.envs(vars.iter().map(|(k, v)| (*k, v.as_str())));
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "child failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// What the forwarding proxy saw of each request.
#[derive(Debug, Clone)]
struct Seen {
    target: String,
    proxy_authorization: Option<String>,
}

/// A forwarding HTTP proxy on 127.0.0.1: takes absolute-form requests for any host, notes
/// them, and sends each to `upstream` (LocalOpik) without the `Proxy-*` headers; the
/// first it answers itself, with a 502 (a proxy's hiccup, which the store retries).
async fn forwarding_proxy(upstream: String) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let app = Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: axum::body::Bytes| {
            let (log, client, upstream) = (log.clone(), client.clone(), upstream.clone());
            async move {
                // One lock for both: the spans' and the trace's batches come at once, and
                // exactly one of them must get the 502.
                let first = {
                    let mut log = log.lock().unwrap();
                    log.push(Seen {
                        target: uri.to_string(),
                        proxy_authorization: headers
                            .get("proxy-authorization")
                            .map(|v| v.to_str().unwrap().to_owned()),
                    });
                    log.len() == 1
                };
                if first {
                    let body = axum::body::Bytes::from_static(b"upstream unreachable");
                    return (http::StatusCode::BAD_GATEWAY, body);
                }
                let mut headers = headers;
                headers.remove("proxy-authorization");
                headers.remove(http::header::HOST);
                let path = uri.path_and_query().map_or("/", |p| p.as_str());
                let url = format!("{}{}", upstream.trim_end_matches('/'), path);
                let answer = client
                    .request(method, url)
                    .headers(headers)
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                (answer.status(), answer.bytes().await.unwrap())
            }
        },
    );
    let addr = serve(app).await;
    (format!("127.0.0.1:{}", addr.port()), seen)
}

/// `HTTP_PROXY` with credentials, Opik at a host only the proxy can reach (`.invalid`
/// names resolve nowhere): every record arrives through the proxy once, a 502 from the
/// proxy is retried, each request carries the proxy's credentials, and no log line,
/// report or error shows them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_proxy_from_the_environment_carries_every_record() {
    let opik = LocalOpik::start().await.unwrap();
    let origin = format!("http://127.0.0.1:{}", opik.addr().port());
    let (proxy, seen) = forwarding_proxy(origin).await;
    let output = run_child(
        "send",
        &[
            (
                "OPIK_URL_OVERRIDE",
                "http://opik.invalid:5173/api/".to_owned(),
            ),
            ("HTTP_PROXY", format!("http://user:secret@{proxy}")),
        ],
    );
    assert_eq!(opik.spans().len(), 2);
    assert_eq!(opik.traces().len(), 1);
    for record in opik.spans().iter().chain(&opik.traces()) {
        let id = record["id"].as_str().unwrap();
        assert_eq!(opik.write_count(id), 1, "{id}");
    }
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty());
    for s in &seen {
        assert!(
            s.target
                .starts_with("http://opik.invalid:5173/api/v1/private/"),
            "{s:?}"
        );
        assert_eq!(s.proxy_authorization.as_deref(), Some(AUTH), "{s:?}");
    }
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(printed.contains("REPORT"), "{printed}");
    assert!(
        printed.contains(" 1 retries"),
        "the 502 was retried: {printed}"
    );
    assert!(printed.contains("502"), "and logged: {printed}");
    assert!(
        !printed.contains("secret") && !printed.contains(AUTH),
        "{printed}"
    );
}

/// `NO_PROXY` naming Opik's host wins over `HTTP_PROXY` (here a closed port): the records
/// go straight to LocalOpik.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_proxy_sends_straight_to_opik() {
    let opik = LocalOpik::start().await.unwrap();
    run_child(
        "send",
        &[
            ("OPIK_URL_OVERRIDE", opik.base_url()),
            ("HTTP_PROXY", "http://user:secret@127.0.0.1:9".to_owned()),
            ("NO_PROXY", "localhost,127.0.0.1".to_owned()),
        ],
    );
    assert_eq!(opik.spans().len(), 2);
}

/// An `HTTPS_PROXY` our client cannot speak (an `https://` proxy) is a build error that
/// names the proxy without its credentials, not exports that fail one by one.
#[tokio::test]
async fn an_unusable_proxy_is_a_build_error_without_its_credentials() {
    let output = run_child(
        "refuse",
        &[
            (
                "OPIK_URL_OVERRIDE",
                "https://www.comet.com/opik/api/".to_owned(),
            ),
            ("OPIK_API_KEY", "key".to_owned()),
            ("OPIK_WORKSPACE", "team".to_owned()),
            (
                "HTTPS_PROXY",
                "https://user:secret@proxy.example:3128".to_owned(),
            ),
        ],
    );
    let printed = String::from_utf8_lossy(&output.stdout);
    let error = printed
        .lines()
        .find_map(|l| l.strip_prefix("ERROR "))
        .unwrap_or_else(|| panic!("{printed}"));
    assert!(error.contains("https://proxy.example:3128"), "{error}");
    assert!(error.contains("NO_PROXY"), "{error}");
    assert!(
        !error.contains("secret") && !error.contains("user:"),
        "{error}"
    );
}

/// A 407 reaching the store comes from a proxy (Opik never sends it): retried as an
/// outage, as the CONNECT tunnel's 407 is, not given up as Opik's refusal.
#[tokio::test]
async fn a_407_from_a_proxy_is_retried_not_given_up() {
    let opik = LocalOpik::start().await.unwrap();
    opik.faults().fail_next(
        2,
        http::StatusCode::PROXY_AUTHENTICATION_REQUIRED,
        HeaderMap::new(),
    );
    let store = common::store_for(&opik).build().unwrap();
    store.root_span("after a 407").end();
    let report = store.flush(FLUSH).await;
    assert!(report.completed, "{report}");
    assert_eq!((report.stats.sent, report.stats.failed), (2, 0), "{report}");
    assert!(report.stats.retries >= 1, "{report}");
}
