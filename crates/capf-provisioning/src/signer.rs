//! The RSA key that signs files (a SAST for trust lists, a TFTP-role key for
//! `.sgn`/`.enc.sgn`), and signature checks.

use std::fmt;

use capf_ca::{CaCertificate, PrivateKey};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPublicKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, PrivateKey as RsaPrivateKey, PublicKey as RsaPublicKey};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};

use crate::cert::{CertFields, KeyAlgorithm, key_algorithm};
use crate::error::{Place, ProvisioningError, Result};
use crate::tags::DigestAlgorithm;

/// A certificate and its RSA private key, able to sign trust lists (as a
/// SAST) and `.sgn`/`.enc.sgn` files (as the TFTP-role certificate).
///
/// EC keys are refused: phones and the reference tools check these
/// signatures with RSA only, and no code exists for an EC signature.
#[derive(Clone)]
pub struct FileSigner {
    certificate: CaCertificate,
    fields: CertFields,
    key: RsaPrivateKey,
}

impl fmt::Debug for FileSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileSigner")
            .field("subject", &self.fields.subject)
            .field("bits", &(self.key.size() * 8))
            .finish_non_exhaustive()
    }
}

impl FileSigner {
    /// A signer from a certificate and its private key.
    ///
    /// Fails with [`ProvisioningError::EcSigner`] for an EC certificate or
    /// key, [`ProvisioningError::KeyMismatch`] if the key is not the
    /// certificate's, and [`ProvisioningError::UnsupportedKeySize`] for an RSA
    /// size other than 512, 1024, 2048 or 4096 bits.
    pub fn new(certificate: CaCertificate, key: &PrivateKey) -> Result<FileSigner> {
        check_rsa_signer_certificate(&certificate)?;
        if let capf_ca::KeySpec::Ec(_) = key.spec() {
            return Err(ProvisioningError::EcSigner {
                subject: certificate.subject(),
            });
        }
        let der = key.to_pkcs8_der().map_err(|e| ProvisioningError::Key {
            what: format!("private key of {}", certificate.subject()),
            reason: e.to_string(),
        })?;
        let rsa = RsaPrivateKey::from_pkcs8_der(&der).map_err(|e| ProvisioningError::Key {
            what: format!("private key of {}", certificate.subject()),
            reason: e.to_string(),
        })?;
        Self::from_rsa(certificate, rsa)
    }

    /// A signer from one PEM text holding the private key and the certificate
    /// (in any order), as `tlvfile --sast` and `sgnfile --tftp` take them.
    /// The key may be PKCS#8 (`PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`).
    /// `what` names the input in errors (e.g. the file name).
    pub fn from_pem(pem: &str, what: &str) -> Result<FileSigner> {
        let blocks = pem_blocks(pem);
        let certificate = certificate_from_pem(pem, what)?;
        // Refuse an EC signer before looking at its key (which may be in a
        // format we do not read, "EC PRIVATE KEY").
        check_rsa_signer_certificate(&certificate)?;
        let key_error = |reason: String| ProvisioningError::Key {
            what: format!("{what}: private key"),
            reason,
        };
        let key = if let Some((_, block)) = blocks.iter().find(|(l, _)| *l == "PRIVATE KEY") {
            RsaPrivateKey::from_pkcs8_pem(block).map_err(|e| key_error(e.to_string()))?
        } else if let Some((_, block)) = blocks.iter().find(|(l, _)| *l == "RSA PRIVATE KEY") {
            RsaPrivateKey::from_pkcs1_pem(block).map_err(|e| key_error(e.to_string()))?
        } else if blocks.iter().any(|(l, _)| *l == "EC PRIVATE KEY") {
            return Err(ProvisioningError::EcSigner {
                subject: certificate.subject(),
            });
        } else if blocks.iter().any(|(l, _)| *l == "ENCRYPTED PRIVATE KEY") {
            return Err(key_error(
                "the private key is encrypted; give it unencrypted".into(),
            ));
        } else {
            return Err(ProvisioningError::Pem {
                what: what.to_owned(),
                reason: "no PRIVATE KEY or RSA PRIVATE KEY block".into(),
            });
        };
        Self::from_rsa(certificate, key)
    }

    fn from_rsa(certificate: CaCertificate, key: RsaPrivateKey) -> Result<FileSigner> {
        let fields = CertFields::of(&certificate)?;
        let ours = key
            .to_public_key()
            .to_pkcs1_der()
            .map_err(|e| ProvisioningError::Key {
                what: format!("public key of {}", fields.subject),
                reason: e.to_string(),
            })?;
        if ours.as_bytes() != fields.public_key.as_slice() {
            return Err(ProvisioningError::KeyMismatch {
                subject: fields.subject,
            });
        }
        let bytes = key.size();
        if modulus_code(bytes).is_none() {
            return Err(ProvisioningError::UnsupportedKeySize {
                subject: fields.subject,
                bits: bytes * 8,
            });
        }
        Ok(FileSigner {
            certificate,
            fields,
            key,
        })
    }

    /// The signing certificate.
    pub fn certificate(&self) -> &CaCertificate {
        &self.certificate
    }

    /// The length of its signatures in bytes (the RSA modulus size).
    pub fn signature_len(&self) -> usize {
        self.key.size()
    }

    pub(crate) fn fields(&self) -> &CertFields {
        &self.fields
    }

    /// The header's modulus code for this key.
    pub(crate) fn modulus_code(&self) -> u8 {
        modulus_code(self.key.size()).unwrap_or(u8::MAX)
    }

    /// PKCS#1 v1.5 signature over the concatenation of `parts`.
    pub(crate) fn sign(&self, digest: DigestAlgorithm, parts: &[&[u8]]) -> Result<Vec<u8>> {
        let (scheme, hashed) = prehash(digest, parts, Place::Header)?;
        self.key
            .sign(scheme, &hashed)
            .map_err(|e| ProvisioningError::Crypto {
                what: "RSA signature",
                reason: e.to_string(),
            })
    }
}

/// The first certificate of a PEM text that may hold other blocks too (a
/// private key before it, as in the files tlvfile and sgnfile take).
/// `what` names the input in errors.
pub fn certificate_from_pem(pem: &str, what: &str) -> Result<CaCertificate> {
    let (_, block) = pem_blocks(pem)
        .into_iter()
        .find(|(label, _)| *label == "CERTIFICATE")
        .ok_or_else(|| ProvisioningError::Pem {
            what: what.to_owned(),
            reason: "no CERTIFICATE block".into(),
        })?;
    CaCertificate::from_pem(block, what).map_err(|source| ProvisioningError::Certificate {
        what: what.to_owned(),
        source,
    })
}

/// The header's modulus code for a signature of `bytes` bytes.
pub(crate) fn modulus_code(bytes: usize) -> Option<u8> {
    match bytes {
        64 => Some(0),
        128 => Some(1),
        256 => Some(2),
        512 => Some(3),
        _ => None,
    }
}

fn check_rsa_signer_certificate(certificate: &CaCertificate) -> Result<()> {
    match key_algorithm(certificate) {
        KeyAlgorithm::Rsa => Ok(()),
        KeyAlgorithm::Ec => Err(ProvisioningError::EcSigner {
            subject: certificate.subject(),
        }),
        KeyAlgorithm::Other(oid) => Err(ProvisioningError::UnsupportedKey {
            subject: certificate.subject(),
            oid,
        }),
    }
}

/// The PKCS#1 v1.5 scheme and the digest of the concatenated parts.
fn prehash(
    digest: DigestAlgorithm,
    parts: &[&[u8]],
    place: Place,
) -> Result<(Pkcs1v15Sign, Vec<u8>)> {
    fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
        let mut h = D::new();
        for p in parts {
            h.update(p);
        }
        h.finalize().to_vec()
    }
    Ok(match digest {
        DigestAlgorithm::Sha1 => (Pkcs1v15Sign::new::<Sha1>(), run::<Sha1>(parts)),
        DigestAlgorithm::Sha256 => (Pkcs1v15Sign::new::<Sha256>(), run::<Sha256>(parts)),
        DigestAlgorithm::Sha512 => (Pkcs1v15Sign::new::<Sha512>(), run::<Sha512>(parts)),
        other => {
            return Err(ProvisioningError::UnsupportedDigest {
                place,
                digest: other,
            });
        }
    })
}

/// The digest of `data` with a header digest code.
pub(crate) fn digest_of(digest: DigestAlgorithm, data: &[u8], place: Place) -> Result<Vec<u8>> {
    Ok(prehash(digest, &[data], place)?.1)
}

/// The RSA public key of a certificate, refusing EC ones as signers.
pub(crate) fn rsa_public_key(certificate: &CaCertificate) -> Result<RsaPublicKey> {
    check_rsa_signer_certificate(certificate)?;
    let spki = certificate
        .spki_der()
        .map_err(|source| ProvisioningError::Certificate {
            what: format!("public key of {}", certificate.subject()),
            source,
        })?;
    RsaPublicKey::from_public_key_der(&spki).map_err(|e| ProvisioningError::Key {
        what: format!("public key of {}", certificate.subject()),
        reason: e.to_string(),
    })
}

/// Verifies a PKCS#1 v1.5 signature over the concatenation of `parts`.
/// `Ok(false)` means a signature that does not verify.
pub(crate) fn verify_parts(
    key: &RsaPublicKey,
    digest: DigestAlgorithm,
    parts: &[&[u8]],
    signature: &[u8],
) -> Result<bool> {
    let (scheme, hashed) = prehash(digest, parts, Place::Header)?;
    Ok(key.verify(scheme, &hashed, signature).is_ok())
}

/// The PEM blocks of a text: (label, whole block text).
pub(crate) fn pem_blocks(text: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(begin) = rest.find("-----BEGIN ") {
        let after = &rest[begin + 11..];
        let Some(label_end) = after.find("-----") else {
            break;
        };
        let label = &after[..label_end];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = rest[begin..].find(&end_marker) else {
            break;
        };
        let stop = begin + end + end_marker.len();
        out.push((label, &rest[begin..stop]));
        rest = &rest[stop..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_blocks_split() {
        let text = "junk\n-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n\
                    -----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n";
        let blocks = pem_blocks(text);
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].0, "PRIVATE KEY");
        assert!(blocks[1].1.ends_with("-----END CERTIFICATE-----"));
        assert_eq!(modulus_code(256), Some(2));
        assert_eq!(modulus_code(384), None);
    }
}
