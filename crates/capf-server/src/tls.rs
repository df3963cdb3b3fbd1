//! TLS for both sides: the server presents the CAPF certificate; the phone
//! client trusts exactly the CAPF certificates it was given (as a phone
//! trusts the CAPF entry of its ITL), without host-name checks.

use std::sync::Arc;

use capf_ca::{CaCertificate, CapfIdentity};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{CipherSuite, DigitallySignedStruct, SignatureScheme};

use crate::ServerError;

/// ring, with the AES-128-GCM / SHA-256 suites first (ring's default puts
/// AES-256-GCM / SHA-384 first). Both are strong; SHA-256 has CPU
/// instructions where SHA-384 often has none, which makes a P-256 handshake
/// measurably cheaper (`tls_handshake` bench). The server applies this
/// order itself ([`server_config`]), whatever order the phone offers.
fn provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    // A stable sort: the rest keeps ring's order.
    provider.cipher_suites.sort_by_key(|suite| {
        !matches!(
            suite.suite(),
            CipherSuite::TLS13_AES_128_GCM_SHA256
                | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                | CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        )
    });
    Arc::new(provider)
}

/// A rustls server configuration presenting the CAPF certificate (and the
/// chain above it, if any): TLS 1.2 and 1.3, no client certificate (phones
/// authenticate inside the protocol).
pub fn server_config(identity: &CapfIdentity) -> Result<rustls::ServerConfig, ServerError> {
    let cert = CertificateDer::from(identity.certificate().der().to_vec());
    let key_der = identity.private_key().to_pkcs8_der()?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der));
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ServerError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    config.ignore_client_order = true;
    Ok(config)
}

/// A rustls client configuration that accepts a server only if it presents
/// one of `trusted` (the CAPF certificates, exactly) and proves it holds the
/// key. Host names are not checked, as capfc does not check them.
pub fn phone_client_config(
    trusted: Vec<CaCertificate>,
) -> Result<rustls::ClientConfig, ServerError> {
    if trusted.is_empty() {
        return Err(ServerError::Tls("no CAPF certificate to trust".into()));
    }
    let provider = provider();
    let verifier = pinned_capf_verifier(&trusted, &provider);
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ServerError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// The certificate check of [`phone_client_config`], for a client
/// configuration of one's own (other protocol versions or key exchange
/// groups, as a given phone model offers): accepts a server only if it
/// presents one of `trusted` exactly and its handshake signature verifies
/// with `provider`'s algorithms.
pub fn pinned_capf_verifier(
    trusted: &[CaCertificate],
    provider: &CryptoProvider,
) -> Arc<dyn ServerCertVerifier> {
    Arc::new(PinnedCapfVerifier {
        trusted: trusted.iter().map(|c| c.der().to_vec()).collect(),
        algorithms: provider.signature_verification_algorithms,
    })
}

/// Accepts exactly the pinned CAPF certificates.
#[derive(Debug)]
struct PinnedCapfVerifier {
    trusted: Vec<Vec<u8>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedCapfVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .trusted
            .iter()
            .any(|t| t.as_slice() == end_entity.as_ref())
        {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
