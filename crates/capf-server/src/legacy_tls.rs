//! Legacy TLS through OpenSSL, for 7900-series phones, which speak only
//! TLS 1.0 with CBC suites such as AES128-SHA.
//! rustls will never offer these. Security level 0 is set on these
//! listeners only; everything above the stream is shared with the modern
//! listeners.

use std::pin::Pin;

use capf_ca::{CaCertificate, CapfIdentity};
use openssl::pkey::PKey;
use openssl::ssl::{Ssl, SslAcceptor, SslConnector, SslMethod, SslVerifyMode, SslVersion};
use openssl::x509::X509;
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

use crate::ServerError;

/// The cipher list: OpenSSL's defaults plus the CBC and static-RSA suites
/// old phones offer, at security level 0.
const LEGACY_CIPHERS: &str = "DEFAULT:AES128-SHA:AES256-SHA:ECDHE-RSA-AES128-SHA:@SECLEVEL=0";

fn tls_err(e: impl std::fmt::Display) -> ServerError {
    ServerError::Tls(format!("legacy TLS (OpenSSL): {e}"))
}

/// An OpenSSL acceptor presenting the CAPF certificate, accepting TLS 1.0
/// to 1.2. Static-RSA suites need an RSA CAPF key.
pub(crate) fn acceptor(identity: &CapfIdentity) -> Result<SslAcceptor, ServerError> {
    let mut b = SslAcceptor::mozilla_intermediate(SslMethod::tls_server()).map_err(tls_err)?;
    b.set_security_level(0);
    b.set_min_proto_version(Some(SslVersion::TLS1))
        .map_err(tls_err)?;
    b.set_max_proto_version(Some(SslVersion::TLS1_2))
        .map_err(tls_err)?;
    b.set_cipher_list(LEGACY_CIPHERS).map_err(tls_err)?;
    let cert = X509::from_der(identity.certificate().der()).map_err(tls_err)?;
    let key =
        PKey::private_key_from_pkcs8(&identity.private_key().to_pkcs8_der()?).map_err(tls_err)?;
    b.set_certificate(&cert).map_err(tls_err)?;
    b.set_private_key(&key).map_err(tls_err)?;
    b.check_private_key().map_err(tls_err)?;
    Ok(b.build())
}

/// Completes the server side of a legacy handshake.
pub(crate) async fn accept(
    acceptor: &SslAcceptor,
    tcp: TcpStream,
) -> Result<SslStream<TcpStream>, String> {
    let ssl = Ssl::new(acceptor.context()).map_err(|e| e.to_string())?;
    let mut stream = SslStream::new(ssl, tcp).map_err(|e| e.to_string())?;
    Pin::new(&mut stream)
        .accept()
        .await
        .map_err(|e| e.to_string())?;
    Ok(stream)
}

/// A phone-side legacy connection: TLS 1.0 only, AES128-SHA (as a 79xx
/// phone), accepting exactly the pinned CAPF certificates.
pub(crate) async fn connect(
    trusted: &[CaCertificate],
    tcp: TcpStream,
) -> Result<SslStream<TcpStream>, String> {
    let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(|e| e.to_string())?;
    b.set_security_level(0);
    b.set_min_proto_version(Some(SslVersion::TLS1))
        .map_err(|e| e.to_string())?;
    b.set_max_proto_version(Some(SslVersion::TLS1))
        .map_err(|e| e.to_string())?;
    b.set_cipher_list("AES128-SHA:@SECLEVEL=0")
        .map_err(|e| e.to_string())?;
    // Verification is done below by pinning, like the modern client.
    b.set_verify(SslVerifyMode::NONE);
    let connector = b.build();
    let config = connector.configure().map_err(|e| e.to_string())?;
    let ssl = config
        .verify_hostname(false)
        .use_server_name_indication(false)
        .into_ssl("capf")
        .map_err(|e| e.to_string())?;
    let mut stream = SslStream::new(ssl, tcp).map_err(|e| e.to_string())?;
    Pin::new(&mut stream)
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let presented = stream
        .ssl()
        .peer_certificate()
        .ok_or("the server presented no certificate")?
        .to_der()
        .map_err(|e| e.to_string())?;
    if !trusted.iter().any(|t| t.der() == presented.as_slice()) {
        return Err("the server's certificate is not the trusted CAPF certificate".into());
    }
    Ok(stream)
}

/// The negotiated protocol version and cipher of a legacy stream (for
/// logs and tests).
pub(crate) fn describe(stream: &SslStream<TcpStream>) -> String {
    let ssl = stream.ssl();
    format!(
        "{} {}",
        ssl.version_str(),
        ssl.current_cipher().map_or("?", |c| c.name())
    )
}
