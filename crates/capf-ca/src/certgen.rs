//! Assembly and signing of X.509 v3 certificates (our own profiles, no cabf).

use std::time::SystemTime;

use der::asn1::{AnyRef, BitStringRef, OctetString, UintRef};
use der::{Decode, Encode, Sequence};
use sha1::{Digest, Sha1};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoRef};
use x509_cert::Certificate;
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::time::{Time, Validity};

use crate::error::{CaError, Result};
use crate::keys::PrivateKey;

/// TBSCertificate with raw names and key, so the issuer name and the phone's
/// SPKI are copied byte for byte.
#[derive(Sequence)]
struct Tbs<'a> {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    version: u8,
    serial: UintRef<'a>,
    signature: AlgorithmIdentifierOwned,
    issuer: AnyRef<'a>,
    validity: Validity,
    subject: AnyRef<'a>,
    spki: AnyRef<'a>,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT")]
    extensions: Vec<Extension>,
}

#[derive(Sequence)]
struct Cert<'a> {
    tbs: AnyRef<'a>,
    algorithm: AlgorithmIdentifierOwned,
    signature: BitStringRef<'a>,
}

/// What goes into one certificate.
pub(crate) struct CertFields<'a> {
    pub(crate) serial: &'a [u8],
    pub(crate) issuer: &'a Name,
    pub(crate) subject: &'a Name,
    pub(crate) spki_der: &'a [u8],
    pub(crate) not_before: SystemTime,
    pub(crate) not_after: SystemTime,
    pub(crate) extensions: Vec<Extension>,
}

pub(crate) fn to_time(t: SystemTime, field: &'static str) -> Result<Time> {
    Time::try_from(t).map_err(|_| CaError::TimeOutOfRange { field })
}

/// Encodes, signs (SHA-256) and re-parses a certificate; returns its DER.
pub(crate) fn sign_certificate(fields: CertFields<'_>, key: &PrivateKey) -> Result<Vec<u8>> {
    let issuer = fields.issuer.to_der().map_err(CaError::der("issuer"))?;
    let subject = fields.subject.to_der().map_err(CaError::der("subject"))?;
    // The algorithm the signature will carry goes into the TBS too.
    let algorithm = key.certificate_signature_algorithm();
    let tbs = Tbs {
        version: 2,
        serial: UintRef::new(fields.serial).map_err(CaError::der("serialNumber"))?,
        signature: algorithm.clone(),
        issuer: AnyRef::from_der(&issuer).map_err(CaError::der("issuer"))?,
        validity: Validity::new(
            to_time(fields.not_before, "notBefore")?,
            to_time(fields.not_after, "notAfter")?,
        ),
        subject: AnyRef::from_der(&subject).map_err(CaError::der("subject"))?,
        spki: AnyRef::from_der(fields.spki_der).map_err(CaError::der("subjectPublicKeyInfo"))?,
        extensions: fields.extensions,
    };
    let tbs_der = tbs.to_der().map_err(CaError::der("tbsCertificate"))?;
    let (signed_alg, signature) = key.sign_certificate(&tbs_der)?;
    debug_assert_eq!(signed_alg, algorithm);
    let cert = Cert {
        tbs: AnyRef::from_der(&tbs_der).map_err(CaError::der("tbsCertificate"))?,
        algorithm: signed_alg,
        signature: BitStringRef::from_bytes(&signature).map_err(CaError::der("signature"))?,
    };
    let der = cert.to_der().map_err(CaError::der("certificate"))?;
    // Refuse to hand out anything our own parser cannot read back.
    Certificate::from_der(&der).map_err(CaError::der("issued certificate"))?;
    Ok(der)
}

/// RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING value.
pub(crate) fn key_identifier(spki_der: &[u8]) -> Result<Vec<u8>> {
    let spki =
        SubjectPublicKeyInfoRef::try_from(spki_der).map_err(|e| CaError::MalformedPublicKey {
            reason: e.to_string(),
        })?;
    Ok(Sha1::digest(spki.subject_public_key.raw_bytes()).to_vec())
}

/// An extension from a DER-encodable value.
pub(crate) fn extension<T: Encode>(
    oid: der::oid::ObjectIdentifier,
    critical: bool,
    value: &T,
    what: &'static str,
) -> Result<Extension> {
    Ok(Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value.to_der().map_err(CaError::der(what))?)
            .map_err(CaError::der(what))?,
    })
}
