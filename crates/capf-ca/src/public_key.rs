//! Public keys and signature verification (certificate signatures and CAPF proofs).

use std::fmt;

use der::Encode;
use pkcs8::DecodePublicKey;
use rsa::{Pkcs1v15Sign, PublicKey as RsaPublicKey, traits::PublicKeyParts};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};
use signature::hazmat::PrehashVerifier;
use spki::{ObjectIdentifier, SubjectPublicKeyInfoRef};

use crate::error::{CaError, Result};
use crate::keys::{EcCurve, KeySpec};
use crate::oids;

/// Digest of a CAPF proof signature: SIGNED_DATA uses SHA-1, SHA2_SIGNED_DATA
/// SHA-512 (hash id 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofHash {
    /// SHA-1 (hash id 1).
    Sha1,
    /// SHA-512 (hash id 3).
    Sha512,
}

impl ProofHash {
    pub(crate) fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha1 => Sha1::digest(data).to_vec(),
            Self::Sha512 => Sha512::digest(data).to_vec(),
        }
    }
}

#[derive(Clone)]
enum Inner {
    Rsa(RsaPublicKey),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    P521(p521::ecdsa::VerifyingKey),
}

/// A public key that can verify certificate signatures and CAPF proofs.
#[derive(Clone)]
pub struct PublicKey(Inner);

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.spec())
    }
}

fn malformed(e: impl fmt::Display) -> CaError {
    CaError::MalformedPublicKey {
        reason: e.to_string(),
    }
}

/// Digests used by accepted certificate signature algorithms.
#[derive(Clone, Copy)]
enum CertHash {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl PublicKey {
    pub(crate) fn from_rsa(k: RsaPublicKey) -> Self {
        Self(Inner::Rsa(k))
    }
    pub(crate) fn from_p256(k: p256::ecdsa::VerifyingKey) -> Self {
        Self(Inner::P256(k))
    }
    pub(crate) fn from_p384(k: p384::ecdsa::VerifyingKey) -> Self {
        Self(Inner::P384(k))
    }
    pub(crate) fn from_p521(k: p521::ecdsa::VerifyingKey) -> Self {
        Self(Inner::P521(k))
    }

    /// Decodes a DER SubjectPublicKeyInfo holding an RSA or EC (P-256/384/521) key.
    pub fn from_spki_der(der: &[u8]) -> Result<Self> {
        let spki = SubjectPublicKeyInfoRef::try_from(der).map_err(malformed)?;
        let oid = spki.algorithm.oid;
        if oid == oids::RSA_ENCRYPTION {
            return Ok(Self(Inner::Rsa(
                RsaPublicKey::from_public_key_der(der).map_err(malformed)?,
            )));
        }
        if oid != oids::EC_PUBLIC_KEY {
            return Err(CaError::UnsupportedKeyAlgorithm {
                oid: oid.to_string(),
            });
        }
        let curve = spki
            .algorithm
            .parameters_oid()
            .map_err(|_| CaError::UnsupportedCurve {
                oid: "absent or not a named curve".into(),
            })?;
        let point = spki.subject_public_key.raw_bytes();
        let bad = |curve| move |_| CaError::InvalidEcPoint { curve };
        let inner = if curve == oids::SECP256R1 {
            Inner::P256(
                p256::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(bad(EcCurve::P256))?,
            )
        } else if curve == oids::SECP384R1 {
            Inner::P384(
                p384::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(bad(EcCurve::P384))?,
            )
        } else if curve == oids::SECP521R1 {
            Inner::P521(
                p521::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(bad(EcCurve::P521))?,
            )
        } else {
            return Err(CaError::UnsupportedCurve {
                oid: curve.to_string(),
            });
        };
        Ok(Self(inner))
    }

    /// Decodes the key of a parsed certificate.
    pub(crate) fn from_certificate(cert: &x509_cert::Certificate) -> Result<Self> {
        let der = cert
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(CaError::der("subjectPublicKeyInfo"))?;
        Self::from_spki_der(&der)
    }

    /// The public exponent of an RSA key (big-endian, no leading zeros);
    /// `None` for EC keys.
    pub(crate) fn rsa_exponent(&self) -> Option<Vec<u8>> {
        match &self.0 {
            Inner::Rsa(k) => Some(k.e().to_be_bytes_trimmed_vartime().into_vec()),
            Inner::P256(_) | Inner::P384(_) | Inner::P521(_) => None,
        }
    }

    /// The kind and size of this key.
    pub fn spec(&self) -> KeySpec {
        match &self.0 {
            Inner::Rsa(k) => KeySpec::Rsa {
                bits: u16::try_from(k.n().bit_width()).unwrap_or(u16::MAX),
            },
            Inner::P256(_) => KeySpec::Ec(EcCurve::P256),
            Inner::P384(_) => KeySpec::Ec(EcCurve::P384),
            Inner::P521(_) => KeySpec::Ec(EcCurve::P521),
        }
    }

    /// Verifies a CAPF proof signature over `data`: for
    /// RSA a raw PKCS#1 v1.5 type-1 block over the bare digest, whose whole
    /// padding `00 01 FF.. (at least 8) 00 || H` is checked; for EC a DER
    /// ECDSA signature (through aws-lc with the feature `aws-lc`, where it
    /// has the curve and hash).
    pub fn verify_proof(&self, hash: ProofHash, data: &[u8], sig: &[u8]) -> bool {
        #[cfg(feature = "aws-lc")]
        if let Some(verified) = self.verify_proof_aws_lc(hash, data, sig) {
            return verified;
        }
        self.verify_proof_rustcrypto(hash, data, sig)
    }

    /// [`Self::verify_proof`] by aws-lc; `None` for RSA keys and for the
    /// curve and hash pairs aws-lc does not verify.
    #[cfg(feature = "aws-lc")]
    pub(crate) fn verify_proof_aws_lc(
        &self,
        hash: ProofHash,
        data: &[u8],
        sig: &[u8],
    ) -> Option<bool> {
        let (curve, point) = match &self.0 {
            Inner::Rsa(_) => return None,
            Inner::P256(k) => (EcCurve::P256, k.to_sec1_point(false).as_bytes().to_vec()),
            Inner::P384(k) => (EcCurve::P384, k.to_sec1_point(false).as_bytes().to_vec()),
            Inner::P521(k) => (EcCurve::P521, k.to_sec1_point(false).as_bytes().to_vec()),
        };
        crate::aws_lc_verify::verify_ec_proof(curve, &point, hash, data, sig)
    }

    /// [`Self::verify_proof`] by RustCrypto alone.
    pub(crate) fn verify_proof_rustcrypto(&self, hash: ProofHash, data: &[u8], sig: &[u8]) -> bool {
        let digest = hash.digest(data);
        match &self.0 {
            // Pkcs1v15Sign::new_unprefixed() checks 00 01, the FF run (k - |H| - 3
            // bytes, so at least 8 for the sizes we accept), the 00 separator
            // and H: the whole block, in constant time.
            Inner::Rsa(k) => k
                .verify(Pkcs1v15Sign::new_unprefixed(), &digest, sig)
                .is_ok(),
            Inner::P256(k) => p256::ecdsa::Signature::from_der(sig)
                .is_ok_and(|s| k.verify_prehash(&digest, &s).is_ok()),
            Inner::P384(k) => p384::ecdsa::Signature::from_der(sig)
                .is_ok_and(|s| k.verify_prehash(&digest, &s).is_ok()),
            Inner::P521(k) => p521::ecdsa::Signature::from_der(sig)
                .is_ok_and(|s| k.verify_prehash(&digest, &s).is_ok()),
        }
    }

    /// Verifies an X.509 signature with algorithm `alg` over `tbs`. Accepted:
    /// RSA PKCS#1 v1.5 with SHA-1/256/384/512; ECDSA with SHA-256/384/512.
    /// `Ok(false)` means a supported algorithm whose signature is wrong.
    pub(crate) fn verify_x509(
        &self,
        alg: ObjectIdentifier,
        tbs: &[u8],
        sig: &[u8],
    ) -> Option<bool> {
        let (rsa, hash) = match alg {
            a if a == oids::SHA1_WITH_RSA => (true, CertHash::Sha1),
            a if a == oids::SHA256_WITH_RSA => (true, CertHash::Sha256),
            a if a == oids::SHA384_WITH_RSA => (true, CertHash::Sha384),
            a if a == oids::SHA512_WITH_RSA => (true, CertHash::Sha512),
            a if a == oids::ECDSA_WITH_SHA256 => (false, CertHash::Sha256),
            a if a == oids::ECDSA_WITH_SHA384 => (false, CertHash::Sha384),
            a if a == oids::ECDSA_WITH_SHA512 => (false, CertHash::Sha512),
            _ => return None,
        };
        let (digest, scheme) = match hash {
            CertHash::Sha1 => (Sha1::digest(tbs).to_vec(), Pkcs1v15Sign::new::<Sha1>()),
            CertHash::Sha256 => (Sha256::digest(tbs).to_vec(), Pkcs1v15Sign::new::<Sha256>()),
            CertHash::Sha384 => (Sha384::digest(tbs).to_vec(), Pkcs1v15Sign::new::<Sha384>()),
            CertHash::Sha512 => (Sha512::digest(tbs).to_vec(), Pkcs1v15Sign::new::<Sha512>()),
        };
        Some(match (&self.0, rsa) {
            (Inner::Rsa(k), true) => k.verify(scheme, &digest, sig).is_ok(),
            (Inner::P256(k), false) => p256::ecdsa::Signature::from_der(sig)
                .is_ok_and(|s| k.verify_prehash(&digest, &s).is_ok()),
            (Inner::P384(k), false) => p384::ecdsa::Signature::from_der(sig)
                .is_ok_and(|s| k.verify_prehash(&digest, &s).is_ok()),
            (Inner::P521(k), false) => p521::ecdsa::Signature::from_der(sig)
                .is_ok_and(|s| k.verify_prehash(&digest, &s).is_ok()),
            _ => false,
        })
    }
}

/// The key of a certificate that signs others (a trust anchor or an
/// intermediate), decoded once when it enters the trust store rather than
/// at every chain verification; with the feature `ring`, also in ring's
/// form for the algorithms ring verifies.
#[derive(Clone, Debug)]
pub(crate) struct IssuerKey {
    key: PublicKey,
    #[cfg(feature = "ring")]
    ring: Option<crate::ring_verify::RingVerifier>,
}

impl IssuerKey {
    /// Decodes the key of a parsed certificate.
    pub(crate) fn from_certificate(cert: &x509_cert::Certificate) -> Result<Self> {
        let key = PublicKey::from_certificate(cert)?;
        let bits = cert
            .tbs_certificate()
            .subject_public_key_info()
            .subject_public_key
            .raw_bytes();
        Ok(Self::new(key, bits))
    }

    /// `key` decoded from a SubjectPublicKeyInfo whose BIT STRING is
    /// `spki_bits` (the same bytes, in the form ring takes them).
    pub(crate) fn new(key: PublicKey, spki_bits: &[u8]) -> Self {
        #[cfg(feature = "ring")]
        let ring = crate::ring_verify::RingVerifier::new(key.spec(), spki_bits);
        #[cfg(not(feature = "ring"))]
        let _ = spki_bits;
        Self {
            key,
            #[cfg(feature = "ring")]
            ring,
        }
    }

    /// [`PublicKey::verify_x509`], through ring where it takes the key and
    /// the algorithm, through RustCrypto otherwise.
    pub(crate) fn verify_x509(
        &self,
        alg: ObjectIdentifier,
        tbs: &[u8],
        sig: &[u8],
    ) -> Option<bool> {
        #[cfg(feature = "ring")]
        if let Some(verified) = self
            .ring
            .as_ref()
            .and_then(|ring| ring.verify_x509(alg, tbs, sig))
        {
            return Some(verified);
        }
        self.key.verify_x509(alg, tbs, sig)
    }

    /// The RustCrypto path alone (tests compare it with ring's).
    #[cfg(all(test, feature = "ring"))]
    pub(crate) fn verify_x509_rustcrypto(
        &self,
        alg: ObjectIdentifier,
        tbs: &[u8],
        sig: &[u8],
    ) -> Option<bool> {
        self.key.verify_x509(alg, tbs, sig)
    }

    /// The ring path alone; `None` when ring does not take this key or
    /// algorithm.
    #[cfg(all(test, feature = "ring"))]
    pub(crate) fn verify_x509_ring(
        &self,
        alg: ObjectIdentifier,
        tbs: &[u8],
        sig: &[u8],
    ) -> Option<bool> {
        self.ring
            .as_ref()
            .and_then(|ring| ring.verify_x509(alg, tbs, sig))
    }
}
