//! The application's own rustls, on aws-lc-rs as reqwest 0.13's default TLS compiles it:
//! with tower-opik linked (default features), `ClientConfig::builder()` without an
//! installed provider still finds one. With ring as tower-opik's default, rustls had two
//! providers and panicked ("could not automatically determine the process-level
//! CryptoProvider"), as a new user's trial showed.
//!
//! Run alone (`cargo test -p tower-opik-host-app -- --ignored`, as CI does): a workspace
//! build with `--all-features` turns on every provider of tower-opik, which is the very
//! case this test rules out for the default features.

#[test]
#[ignore = "run alone: cargo test -p tower-opik-host-app -- --ignored"]
fn the_applications_rustls_picks_its_provider_with_tower_opik_linked() {
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    assert!(!config.alpn_protocols.iter().any(|p| p.is_empty()));
    // tower-opik's exporter builds on the same provider.
    let config = tower_opik::OpikConfig::local("https://opik.example.invalid/api/");
    tower_opik::store::OpikRestExporter::new(&config).expect("an https exporter");
}
