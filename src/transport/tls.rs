//! Our own client's TLS: rustls with the application's crypto provider (or the one a
//! feature compiles in) and the platform's certificate verifier, or, when the
//! configuration turns certificate checks off (the Python SDK's `check_tls_certificate`),
//! a verifier that accepts any certificate but still checks the handshake's signatures.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::proxy::{Proxies, ProxyConnector};
use super::{connector, pooled};

/// The application's process-default provider when it installed one, else the one our
/// features compile in (aws-lc-rs, rustls's default, before ring), else none.
pub(super) fn provider() -> Option<Arc<CryptoProvider>> {
    if let Some(provider) = CryptoProvider::get_default() {
        return Some(provider.clone());
    }
    #[cfg(feature = "rustls-aws-lc")]
    return Some(Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    #[cfg(all(feature = "rustls-ring", not(feature = "rustls-aws-lc")))]
    return Some(Arc::new(rustls::crypto::ring::default_provider()));
    #[allow(unreachable_code)]
    None
}

/// rustls with `provider` and the platform's verifier (the OS trust store, or
/// `SSL_CERT_FILE` / `SSL_CERT_DIR` on Linux; revocation where the OS checks it), or with
/// no certificate check when `check_certificates` is false; TLS 1.2 and 1.3, HTTP/1.1.
pub(super) fn tls(
    provider: Arc<CryptoProvider>,
    proxies: Proxies,
    check_certificates: bool,
) -> Result<Client<hyper_rustls::HttpsConnector<ProxyConnector>, Full<Bytes>>, crate::Error> {
    let verifier: Arc<dyn ServerCertVerifier> = if check_certificates {
        Arc::new(
            rustls_platform_verifier::Verifier::new(provider.clone()).map_err(|e| {
                crate::Error::Tls(format!(
                    "{e} (the certificates to trust come from the system's store, or \
                     SSL_CERT_FILE / SSL_CERT_DIR when set: point them at a PEM bundle; \
                     OPIK_CHECK_TLS_CERTIFICATE=false turns the check off)"
                ))
            })?,
        )
    } else {
        Arc::new(NoCertificateCheck(
            provider.signature_verification_algorithms,
        ))
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| crate::Error::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .wrap_connector(ProxyConnector::new(connector(), proxies));
    Ok(pooled(https))
}

/// Any certificate, for any name, is taken; the handshake's signatures are still checked
/// (the server must hold the key of the certificate it sent).
#[derive(Debug)]
struct NoCertificateCheck(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoCertificateCheck {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
