//! A parsed certificate with the views the operator and the server need.

use std::time::SystemTime;

use der::pem::LineEnding;
use der::{Decode, Encode, Header, Reader, SliceReader, Tag};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use x509_cert::Certificate;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, SubjectKeyIdentifier};

use crate::error::{CaError, Result};
use crate::hash_name;
use crate::names;
use crate::public_key::PublicKey;

/// A certificate kept as DER together with its parsed form.
#[derive(Clone, Debug)]
pub struct CaCertificate {
    der: Vec<u8>,
    parsed: Certificate,
}

impl PartialEq for CaCertificate {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}
impl Eq for CaCertificate {}

impl CaCertificate {
    /// Parses a DER certificate. `what` names it in errors.
    pub fn from_der(der: &[u8], what: &str) -> Result<Self> {
        let parsed = Certificate::from_der(der).map_err(|source| CaError::CertificateParse {
            what: what.to_owned(),
            source,
        })?;
        Ok(Self {
            der: der.to_vec(),
            parsed,
        })
    }

    /// Parses every certificate of a PEM text (one or more `CERTIFICATE` blocks).
    pub fn all_from_pem(pem: &str, what: &str) -> Result<Vec<Self>> {
        let certs = Certificate::load_pem_chain(pem.as_bytes()).map_err(|e| CaError::Pem {
            what: what.to_owned(),
            reason: e.to_string(),
        })?;
        if certs.is_empty() {
            return Err(CaError::Pem {
                what: what.to_owned(),
                reason: "no CERTIFICATE block".into(),
            });
        }
        certs
            .into_iter()
            .map(|parsed| {
                let der = parsed
                    .to_der()
                    .map_err(|source| CaError::CertificateParse {
                        what: what.to_owned(),
                        source,
                    })?;
                Ok(Self { der, parsed })
            })
            .collect()
    }

    /// Parses the first certificate of a PEM text.
    pub fn from_pem(pem: &str, what: &str) -> Result<Self> {
        let mut all = Self::all_from_pem(pem, what)?;
        Ok(all.swap_remove(0))
    }

    /// The DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The PEM encoding (`-----BEGIN CERTIFICATE-----`).
    pub fn pem(&self) -> String {
        certificate_pem(&self.der)
    }

    pub(crate) fn parsed(&self) -> &Certificate {
        &self.parsed
    }

    /// The tbsCertificate as it is in the DER, the bytes the issuer signed
    /// (the first element of the outer SEQUENCE; `parsed` was decoded from
    /// these same bytes under DER rules, so they are its only encoding).
    pub(crate) fn tbs_der(&self) -> Result<&[u8]> {
        let mut reader = SliceReader::new(&self.der).map_err(CaError::der("certificate"))?;
        let outer = Header::decode(&mut reader).map_err(CaError::der("certificate"))?;
        outer
            .tag()
            .assert_eq(Tag::Sequence)
            .map_err(CaError::der("certificate"))?;
        reader.tlv_bytes().map_err(CaError::der("tbsCertificate"))
    }

    /// The subject, e.g. `CN=CAPF-1a2b3c4d, O=Example`.
    pub fn subject(&self) -> String {
        names::display_name(self.parsed.tbs_certificate().subject())
    }

    /// The issuer name.
    pub fn issuer(&self) -> String {
        names::display_name(self.parsed.tbs_certificate().issuer())
    }

    /// The subject's first common name.
    pub fn common_name(&self) -> Option<String> {
        names::common_name(self.parsed.tbs_certificate().subject())
    }

    /// The serial number as minimal big-endian bytes.
    pub fn serial(&self) -> &[u8] {
        self.parsed.tbs_certificate().serial_number().as_bytes()
    }

    /// The serial number in lower-case hex.
    pub fn serial_hex(&self) -> String {
        to_hex(self.serial())
    }

    /// notBefore.
    pub fn not_before(&self) -> SystemTime {
        self.parsed
            .tbs_certificate()
            .validity()
            .not_before
            .to_system_time()
    }

    /// notAfter.
    pub fn not_after(&self) -> SystemTime {
        self.parsed
            .tbs_certificate()
            .validity()
            .not_after
            .to_system_time()
    }

    /// SHA-256 of the DER.
    pub fn fingerprint_sha256(&self) -> [u8; 32] {
        Sha256::digest(&self.der).into()
    }

    /// SHA-256 of the DER as 64 lower-case hex digits without separators,
    /// e.g. to show which MIC a phone presented. Same as
    /// [`sha256_fingerprint`] over [`der`](Self::der).
    pub fn fingerprint_sha256_hex(&self) -> String {
        sha256_fingerprint(&self.der)
    }

    /// SHA-1 of the DER.
    pub fn fingerprint_sha1(&self) -> [u8; 20] {
        Sha1::digest(&self.der).into()
    }

    /// `openssl x509 -hash` of this certificate.
    pub fn subject_hash(&self) -> Result<u32> {
        hash_name::openssl_name_hash(self.parsed.tbs_certificate().subject())
    }

    /// `<subject hash>.0`, the name of this certificate in an OpenSSL CA directory.
    pub fn hashed_file_name(&self) -> Result<String> {
        Ok(format!("{:08x}.0", self.subject_hash()?))
    }

    /// The certified public key.
    pub fn public_key(&self) -> Result<PublicKey> {
        PublicKey::from_certificate(&self.parsed)
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> Result<Vec<u8>> {
        self.parsed
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(CaError::der("subjectPublicKeyInfo"))
    }

    pub(crate) fn basic_constraints(&self) -> Option<BasicConstraints> {
        self.parsed
            .tbs_certificate()
            .get_extension::<BasicConstraints>()
            .ok()
            .flatten()
            .map(|(_, bc)| bc)
    }

    pub(crate) fn key_usage(&self) -> Option<KeyUsage> {
        self.parsed
            .tbs_certificate()
            .get_extension::<KeyUsage>()
            .ok()
            .flatten()
            .map(|(_, ku)| ku)
    }

    pub(crate) fn subject_key_identifier(&self) -> Option<Vec<u8>> {
        self.parsed
            .tbs_certificate()
            .get_extension::<SubjectKeyIdentifier>()
            .ok()
            .flatten()
            .map(|(_, ski)| ski.0.as_bytes().to_vec())
    }

    /// Whether this certificate may issue certificates: basicConstraints
    /// CA:TRUE and, when keyUsage is present, keyCertSign.
    pub fn is_ca(&self) -> bool {
        self.basic_constraints().is_some_and(|bc| bc.ca)
            && self.key_usage().is_none_or(|ku| ku.key_cert_sign())
    }
}

/// SHA-256 of a DER certificate (or any bytes) as 64 lower-case hex digits
/// without separators, as `sha256sum` prints it.
pub fn sha256_fingerprint(der: &[u8]) -> String {
    to_hex(&Sha256::digest(der))
}

/// Lower-case hex.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// DER certificate bytes as PEM (`CERTIFICATE`, LF line endings).
pub fn certificate_pem(der: &[u8]) -> String {
    // Encoding fails only for an invalid label or a length that overflows
    // usize; "CERTIFICATE" is valid and a DER certificate is far smaller.
    der::pem::encode_string("CERTIFICATE", LineEnding::LF, der).unwrap_or_default()
}
