//! The CAPF identity: its key and self-signed certificate.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use der::asn1::OctetString;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};

use crate::cert::{CaCertificate, to_hex};
use crate::certgen::{CertFields, extension, key_identifier, sign_certificate};
use crate::error::{CaError, Result};
use crate::files;
use crate::issuer::Issuer;
use crate::keys::{KeySpec, PrivateKey};
use crate::profile::CertValidity;
use crate::{names, oids, serial};

/// File name of the CAPF certificate in the data directory.
pub const CERT_FILE: &str = "capf.pem";
/// File name of the CAPF private key (PKCS#8 PEM, mode 0600) in the data directory.
pub const KEY_FILE: &str = "capf-key.pem";

/// Parameters of a new CAPF identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityParams {
    /// The CAPF key. Default RSA-2048 (older phones only handle RSA).
    pub key: KeySpec,
    /// Common name. Default `CAPF-<8 random hex digits>`, like CUCM.
    pub common_name: Option<String>,
    /// Organization (O), also copied into every LSC subject.
    pub organization: Option<String>,
    /// Organizational unit (OU), also copied into every LSC subject.
    pub organizational_unit: Option<String>,
    /// Validity. Default 5 years.
    pub validity: CertValidity,
    /// notBefore = now - backdate. Default 10 minutes.
    pub backdate: Duration,
}

impl Default for IdentityParams {
    fn default() -> Self {
        Self {
            key: KeySpec::default(),
            common_name: None,
            organization: None,
            organizational_unit: None,
            validity: CertValidity::Years(5),
            backdate: Duration::from_secs(600),
        }
    }
}

/// The CAPF key and its self-signed certificate: the TLS server identity
/// and, by default, the LSC issuer.
#[derive(Clone, Debug)]
pub struct CapfIdentity {
    certificate: CaCertificate,
    key: PrivateKey,
}

impl CapfIdentity {
    /// Generates a new key and self-signed CA certificate: basicConstraints
    /// CA:TRUE pathlen 0 (critical), keyUsage digitalSignature, keyCertSign,
    /// cRLSign (critical), subject and authority key identifiers, SHA-256.
    pub fn generate(params: &IdentityParams, now: SystemTime) -> Result<Self> {
        let key = PrivateKey::generate(params.key)?;
        Self::generate_with_key(params, key, now)
    }

    /// Like [`generate`](Self::generate) with a key the caller already has
    /// (`params.key` is ignored).
    pub fn generate_with_key(
        params: &IdentityParams,
        key: PrivateKey,
        now: SystemTime,
    ) -> Result<Self> {
        let serial = serial::random_serial(&mut getrandom::SysRng)?;
        let common_name = match &params.common_name {
            Some(cn) if !cn.trim().is_empty() => cn.clone(),
            Some(_) => {
                return Err(CaError::InvalidParameter {
                    field: "common_name",
                    reason: "empty".into(),
                });
            }
            // Distinct from the serial's bytes, so the name reveals nothing about it.
            None => format!(
                "CAPF-{}",
                to_hex(&serial::random_serial(&mut getrandom::SysRng)?[12..])
            ),
        };
        let subject = names::simple_name(
            &common_name,
            params.organization.as_deref(),
            params.organizational_unit.as_deref(),
        )?;
        let spki = key.public_key_der()?;
        let key_id = key_identifier(&spki)?;
        let key_id_octets = OctetString::new(key_id).map_err(CaError::der("key identifier"))?;
        let extensions = vec![
            extension(
                oids::BASIC_CONSTRAINTS,
                true,
                &BasicConstraints {
                    ca: true,
                    path_len_constraint: Some(0),
                },
                "basicConstraints",
            )?,
            extension(
                oids::KEY_USAGE,
                true,
                &KeyUsage(
                    KeyUsages::DigitalSignature | KeyUsages::KeyCertSign | KeyUsages::CRLSign,
                ),
                "keyUsage",
            )?,
            extension(
                oids::SUBJECT_KEY_IDENTIFIER,
                false,
                &SubjectKeyIdentifier(key_id_octets.clone()),
                "subjectKeyIdentifier",
            )?,
            extension(
                oids::AUTHORITY_KEY_IDENTIFIER,
                false,
                &AuthorityKeyIdentifier {
                    key_identifier: Some(key_id_octets),
                    authority_cert_issuer: None,
                    authority_cert_serial_number: None,
                },
                "authorityKeyIdentifier",
            )?,
        ];
        let not_before = now.checked_sub(params.backdate).unwrap_or(now);
        let not_after = now
            .checked_add(params.validity.as_duration())
            .ok_or(CaError::TimeOutOfRange { field: "notAfter" })?;
        let der = sign_certificate(
            CertFields {
                serial: &serial,
                issuer: &subject,
                subject: &subject,
                spki_der: &spki,
                not_before,
                not_after,
                extensions,
            },
            &key,
        )?;
        Ok(Self {
            certificate: CaCertificate::from_der(&der, "CAPF certificate")?,
            key,
        })
    }

    /// Pairs a certificate with its key, checking that they belong together.
    pub fn from_parts(certificate: CaCertificate, key: PrivateKey) -> Result<Self> {
        if certificate.spki_der()? != key.public_key_der()? {
            return Err(CaError::BadIssuer {
                subject: certificate.subject(),
                reason: "the private key does not match the certificate".into(),
            });
        }
        Ok(Self { certificate, key })
    }

    /// Reads a certificate PEM and a PKCS#8 key PEM.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self> {
        let certificate = CaCertificate::from_pem(cert_pem, "CAPF certificate")?;
        Self::from_parts(certificate, PrivateKey::from_pkcs8_pem(key_pem)?)
    }

    /// Loads `capf.pem` and `capf-key.pem` from `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let cert = files::read_text(&dir.join(CERT_FILE))?;
        let key = files::read_text(&dir.join(KEY_FILE))?;
        Self::from_pem(&cert, &key)
    }

    /// Whether `dir` holds a saved identity (if not, generate one on first start).
    pub fn exists(dir: &Path) -> bool {
        dir.join(CERT_FILE).is_file() && dir.join(KEY_FILE).is_file()
    }

    /// Saves `capf-key.pem` (PKCS#8, created with mode 0600) and `capf.pem` in `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        files::write_atomic(
            &dir.join(KEY_FILE),
            self.key.to_pkcs8_pem()?.as_bytes(),
            true,
        )?;
        files::write_atomic(
            &dir.join(CERT_FILE),
            self.certificate.pem().as_bytes(),
            false,
        )
    }

    /// Writes the certificate as `<subject hash>.0` into `dir` and returns its path.
    pub fn write_hashed_copy(&self, dir: &Path) -> Result<PathBuf> {
        let path = dir.join(self.certificate.hashed_file_name()?);
        files::write_atomic(&path, self.certificate.pem().as_bytes(), false)?;
        Ok(path)
    }

    /// The self-signed CAPF certificate.
    pub fn certificate(&self) -> &CaCertificate {
        &self.certificate
    }

    /// The CAPF private key.
    pub fn private_key(&self) -> &PrivateKey {
        &self.key
    }

    /// The LSC issuer made of this identity (the default issuer).
    pub fn issuer(&self) -> Result<Issuer> {
        Issuer::new(self.certificate.clone(), self.key.clone(), Vec::new())
    }
}
