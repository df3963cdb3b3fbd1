//! The certificate that signs LSCs: the CAPF identity, or an intermediate
//! under the operator's own root.

use std::path::Path;

use crate::cert::CaCertificate;
use crate::certgen::key_identifier;
use crate::error::{CaError, Result};
use crate::files;
use crate::keys::PrivateKey;

/// Signs LSCs. Built from a [`CapfIdentity`](crate::CapfIdentity) (the
/// default) or from a separate CA certificate and key.
#[derive(Clone, Debug)]
pub struct Issuer {
    pub(crate) certificate: CaCertificate,
    pub(crate) key: PrivateKey,
    pub(crate) chain: Vec<CaCertificate>,
    pub(crate) key_id: Vec<u8>,
}

impl Issuer {
    /// An issuer from its certificate, its key and the certificates above it
    /// (intermediates up to, optionally, the root). Checks that the key fits
    /// the certificate and that the certificate is a CA with keyCertSign.
    pub fn new(
        certificate: CaCertificate,
        key: PrivateKey,
        chain: Vec<CaCertificate>,
    ) -> Result<Self> {
        let spki = certificate.spki_der()?;
        if spki != key.public_key_der()? {
            return Err(CaError::BadIssuer {
                subject: certificate.subject(),
                reason: "the private key does not match the certificate".into(),
            });
        }
        if !certificate.is_ca() {
            return Err(CaError::BadIssuer {
                subject: certificate.subject(),
                reason: "not a CA certificate (basicConstraints CA:TRUE and keyCertSign required)"
                    .into(),
            });
        }
        // The AKI of issued LSCs must equal the issuer's SKI when it has one.
        let key_id = match certificate.subject_key_identifier() {
            Some(ski) => ski,
            None => key_identifier(&spki)?,
        };
        Ok(Self {
            certificate,
            key,
            chain,
            key_id,
        })
    }

    /// An issuer from PEM: `cert_pem` holds the issuing certificate first,
    /// optionally followed by the chain above it; `key_pem` its PKCS#8 key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self> {
        let mut certs = CaCertificate::all_from_pem(cert_pem, "issuer certificate")?;
        let certificate = certs.remove(0);
        Self::new(certificate, PrivateKey::from_pkcs8_pem(key_pem)?, certs)
    }

    /// Loads an issuer from a certificate (chain) PEM file and a PKCS#8 key PEM file.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self> {
        Self::from_pem(&files::read_text(cert_path)?, &files::read_text(key_path)?)
    }

    /// The issuing certificate.
    pub fn certificate(&self) -> &CaCertificate {
        &self.certificate
    }

    /// The certificates above the issuing certificate, as configured.
    pub fn chain(&self) -> &[CaCertificate] {
        &self.chain
    }

    /// The issuing key.
    pub fn private_key(&self) -> &PrivateKey {
        &self.key
    }
}
