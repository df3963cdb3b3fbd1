//! What the files say about a certificate: names as tlvfile writes them,
//! serials without the DER sign byte, the public key and signature bytes.

use std::fmt;

use capf_ca::CaCertificate;
use der::asn1::ObjectIdentifier;
use der::{Decode, Tag, Tagged};
use x509_cert::Certificate;
use x509_cert::name::Name;

use crate::error::{ProvisioningError, Result};

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");

/// The kind of key a certificate holds, from its SubjectPublicKeyInfo.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// rsaEncryption.
    Rsa,
    /// id-ecPublicKey.
    Ec,
    /// Anything else, by OID.
    Other(String),
}

impl fmt::Display for KeyAlgorithm {
    /// `RSA`, `EC`, or the OID, as tlvfile prints "Key Algorithm".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyAlgorithm::Rsa => f.write_str("RSA"),
            KeyAlgorithm::Ec => f.write_str("EC"),
            KeyAlgorithm::Other(oid) => f.write_str(oid),
        }
    }
}

/// The fields a trust-list record or a signer id copies from a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CertFields {
    pub(crate) subject: String,
    pub(crate) issuer: String,
    pub(crate) serial: Vec<u8>,
    pub(crate) public_key: Vec<u8>,
    pub(crate) signature: Vec<u8>,
    pub(crate) key_algorithm: KeyAlgorithm,
}

impl CertFields {
    pub(crate) fn of(cert: &CaCertificate) -> Result<CertFields> {
        let parsed =
            Certificate::from_der(cert.der()).map_err(|e| ProvisioningError::Certificate {
                what: format!("certificate {}", cert.subject()),
                source: capf_ca::CaError::CertificateParse {
                    what: "certificate".into(),
                    source: e,
                },
            })?;
        let tbs = parsed.tbs_certificate();
        let spki = tbs.subject_public_key_info();
        Ok(CertFields {
            subject: tlvfile_name(tbs.subject()),
            issuer: tlvfile_name(tbs.issuer()),
            serial: minimal_serial(tbs.serial_number().as_bytes()),
            public_key: spki.subject_public_key.raw_bytes().to_vec(),
            signature: parsed.signature().raw_bytes().to_vec(),
            key_algorithm: key_algorithm_of(spki.algorithm.oid),
        })
    }
}

fn key_algorithm_of(oid: ObjectIdentifier) -> KeyAlgorithm {
    if oid == RSA_ENCRYPTION {
        KeyAlgorithm::Rsa
    } else if oid == EC_PUBLIC_KEY {
        KeyAlgorithm::Ec
    } else {
        KeyAlgorithm::Other(oid.to_string())
    }
}

/// The key algorithm of a certificate (from DER), without checking the key.
pub(crate) fn key_algorithm(cert: &CaCertificate) -> KeyAlgorithm {
    match Certificate::from_der(cert.der()) {
        Ok(c) => key_algorithm_of(c.tbs_certificate().subject_public_key_info().algorithm.oid),
        Err(_) => KeyAlgorithm::Other("unparsable".into()),
    }
}

/// A serial as the files hold it: unsigned big-endian in the fewest bytes
/// (no DER sign byte; zero is empty).
pub(crate) fn minimal_serial(bytes: &[u8]) -> Vec<u8> {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes[first..].to_vec()
}

/// Whether two serials are the same integer (leading zero bytes ignored).
pub(crate) fn same_serial(a: &[u8], b: &[u8]) -> bool {
    minimal_serial(a) == minimal_serial(b)
}

/// A name as tlvfile writes it: every attribute in the order encoded in the
/// certificate, `SHORT=value` with RFC 4514 escaping (unknown types as dotted
/// OIDs), joined with `,`. E.g. `CN=SAST,O=SAST,OU=SAST`.
pub(crate) fn tlvfile_name(name: &Name) -> String {
    let mut parts = Vec::new();
    for atv in name.iter() {
        let key = short_name(&atv.oid).map_or_else(|| atv.oid.to_string(), str::to_owned);
        let value = match string_value(&atv.value) {
            Some(s) => escape_rfc4514(&s),
            None => {
                // RFC 4514 2.4: '#' and the hex of the BER encoding.
                let der = der::Encode::to_der(&atv.value).unwrap_or_default();
                format!("#{}", hex::encode(der))
            }
        };
        parts.push(format!("{key}={value}"));
    }
    parts.join(",")
}

/// The attribute names Python's `cryptography` gives in `rfc4514_string()`.
fn short_name(oid: &ObjectIdentifier) -> Option<&'static str> {
    Some(match oid.to_string().as_str() {
        "2.5.4.3" => "CN",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.6" => "C",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

fn string_value(value: &der::asn1::Any) -> Option<String> {
    let bytes = value.value();
    match value.tag() {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::VisibleString
        | Tag::NumericString => String::from_utf8(bytes.to_vec()).ok(),
        Tag::TeletexString => Some(bytes.iter().map(|&b| char::from(b)).collect()),
        Tag::BmpString => {
            if !bytes.len().is_multiple_of(2) {
                return None;
            }
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

/// RFC 4514 escaping as Python's `cryptography` does it.
fn escape_rfc4514(value: &str) -> String {
    if value.is_empty() {
        return String::new();
    }
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' | '"' | '+' | ',' | ';' | '<' | '>' => {
                out.push('\\');
                out.push(c);
            }
            '\0' => out.push_str("\\00"),
            _ => out.push(c),
        }
    }
    // Python's order, quirks included: a lone space becomes `\\ `.
    if out.starts_with('#') || out.starts_with(' ') {
        out.insert(0, '\\');
    }
    if out.ends_with(' ') {
        out.pop();
        out.push_str("\\ ");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_drop_the_sign_byte() {
        assert_eq!(minimal_serial(&[0, 0xe3, 1]), vec![0xe3, 1]);
        assert_eq!(minimal_serial(&[0]), Vec::<u8>::new());
        assert!(same_serial(&[0, 5], &[5]));
        assert!(!same_serial(&[5, 0], &[5]));
    }

    #[test]
    fn escaping_matches_cryptography() {
        assert_eq!(escape_rfc4514("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape_rfc4514("#x "), "\\#x\\ ");
        assert_eq!(escape_rfc4514(" "), "\\\\ ");
        assert_eq!(escape_rfc4514("Krakow; PL"), "Krakow\\; PL");
    }
}
