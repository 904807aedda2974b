//! Our own client against an Opik behind TLS, over 127.0.0.1: a certificate made on the
//! spot (rcgen) in front of LocalOpik. Refused by default (no one vouches for it), taken
//! when `SSL_CERT_FILE` names it (as the Python SDK's httpx client does), and taken with
//! a warning when certificate checks are off (`check_tls_certificate = false`, the
//! Python SDK's setting).

#![cfg(all(feature = "testing", feature = "rustls-ring"))]

mod common;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tower_opik::testing::LocalOpik;
use tower_opik::{OpikConfig, SpanStore};

use common::{FLUSH, Logs, fast_retry};

/// The child's mode variable (unset: not a child, the test does nothing).
const CHILD: &str = "TOWER_OPIK_TLS_TEST_URL";

/// LocalOpik behind a TLS front whose certificate (for 127.0.0.1) no one issued.
struct TlsOpik {
    opik: LocalOpik,
    /// `https://127.0.0.1:{port}/api/`
    url: String,
    /// The certificate, PEM.
    pem: String,
}

async fn tls_opik() -> TlsOpik {
    let opik = LocalOpik::start().await.unwrap();
    let upstream = opik.addr();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return; // the client refused the certificate
                };
                let mut plain = TcpStream::connect(upstream).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    TlsOpik {
        opik,
        url: format!("https://127.0.0.1:{port}/api/"),
        pem: cert.pem(),
    }
}

fn config(url: &str, check: Option<bool>) -> OpikConfig {
    let mut builder = OpikConfig::builder()
        .url(url)
        .ignore_environment()
        .no_config_file();
    if let Some(check) = check {
        builder = builder.check_tls_certificate(check);
    }
    builder.build().unwrap()
}

fn store(config: OpikConfig) -> SpanStore {
    SpanStore::builder()
        .config(config)
        .flush_interval(Duration::from_secs(3600))
        .retry(fast_retry().max_attempts(2))
        .build()
        .unwrap()
}

fn capture(logs: &Logs) -> tracing::subscriber::DefaultGuard {
    let writer = logs.clone();
    tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .finish(),
    )
}

/// By default the certificate is checked: a self-signed one is refused, the records are
/// counted as failed (nothing reaches Opik), and the warning names the reason.
#[tokio::test(flavor = "current_thread")]
async fn a_certificate_no_one_issued_is_refused_by_default() {
    let server = tls_opik().await;
    let logs = Logs::default();
    let _guard = capture(&logs);
    let config = config(&server.url, None);
    assert!(config.check_tls_certificate());
    let store = store(config);
    store.root_span("refused").end();
    let report = store.flush(FLUSH).await;
    assert!(report.completed, "{report}");
    assert_eq!((report.stats.sent, report.stats.failed), (0, 2), "{report}");
    assert!(server.opik.spans().is_empty());
    let text = logs.text();
    assert!(text.contains("invalid peer certificate"), "{text}");
    assert!(
        text.contains("point SSL_CERT_FILE at it"),
        "what to do: {text}"
    );
    assert!(!text.contains("certificate checks are off"), "{text}");
}

/// `check_tls_certificate(false)`: the records arrive, each once, and building the store
/// says, once, at WARN, that the checks are off.
#[tokio::test(flavor = "current_thread")]
async fn with_certificate_checks_off_the_records_arrive_and_a_warning_says_so() {
    let server = tls_opik().await;
    let logs = Logs::default();
    let _guard = capture(&logs);
    // With a user and password in the URL (a reverse proxy's basic auth): never shown.
    let url = server.url.replace("https://", "https://user:secret@");
    let store = store(config(&url, Some(false)));
    let text = logs.text();
    assert!(!text.contains("secret"), "{text}");
    assert_eq!(
        text.matches("certificate checks are off").count(),
        1,
        "{text}"
    );
    assert!(text.contains("WARN"), "{text}");
    store.root_span("accepted").child("step").end();
    let report = store.flush(FLUSH).await;
    assert!(report.completed && report.stats.sent == 3, "{report}");
    for span in server.opik.spans() {
        assert_eq!(server.opik.write_count(span["id"].as_str().unwrap()), 1);
    }
    assert_eq!(server.opik.spans().len(), 2);
}

/// The child: a store for the URL in `CHILD` with the default checks, one trace, flushed;
/// with `TOWER_OPIK_TLS_TEST_EXPECT=build-error`, the store must fail to build.
#[test]
#[ignore = "the child process of this file's tests: they run it with --ignored"]
fn child() {
    let Ok(url) = std::env::var(CHILD) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let built = SpanStore::builder()
            .config(config(&url, None))
            .flush_interval(Duration::from_secs(3600))
            .retry(fast_retry().max_attempts(2))
            .build();
        if std::env::var("TOWER_OPIK_TLS_TEST_EXPECT").as_deref() == Ok("build-error") {
            let err = built.expect_err("no CA certificate: the store must not build");
            println!("\nERROR {err}");
            return;
        }
        let store = built.unwrap();
        store.root_span("trusted").end();
        let report = store.flush(FLUSH).await;
        assert!(report.completed && report.stats.sent == 2, "{report}");
    });
}

/// Runs [`child`] for `url` with `SSL_CERT_FILE` set to `cert_file`; its stdout.
fn run_child(url: &str, cert_file: &std::path::Path, expect: &str) -> String {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, url)
        .env("SSL_CERT_FILE", cert_file)
        .env("TOWER_OPIK_TLS_TEST_EXPECT", expect)
        .env_remove("SSL_CERT_DIR")
        .output()
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{printed}");
    printed
}

/// `SSL_CERT_FILE` naming the certificate makes it trusted, with the checks on (the
/// platform verifier reads it on Linux, as httpx does for the Python SDK).
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_cert_file_makes_a_private_certificate_trusted() {
    let server = tls_opik().await;
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("opik.pem");
    std::fs::write(&pem, &server.pem).unwrap();
    run_child(&server.url, &pem, "delivery");
    assert_eq!(server.opik.spans().len(), 1);
}

/// No CA certificate to be had (a distroless image; here `SSL_CERT_FILE` names a file
/// that does not exist): an `http://` Opik needs none and works; an `https://` one is a
/// build error that says where certificates come from.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_ca_certificates_http_works_and_https_says_what_is_missing() {
    let missing = std::path::Path::new("/nonexistent/tower-opik/ca.pem");
    let opik = LocalOpik::start().await.unwrap();
    run_child(&opik.base_url(), missing, "delivery");
    assert_eq!(opik.spans().len(), 1);
    let printed = run_child("https://127.0.0.1:9/api/", missing, "build-error");
    let error = printed
        .lines()
        .find_map(|l| l.strip_prefix("ERROR "))
        .unwrap_or_else(|| panic!("{printed}"));
    assert!(error.contains("SSL_CERT_FILE"), "{error}");
}
