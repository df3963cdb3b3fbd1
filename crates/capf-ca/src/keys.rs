//! Key specifications and private keys (the CAPF key, and phone keys in the simulator).

use std::fmt;
use std::str::FromStr;

use p256::elliptic_curve::Generate;
use pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rand_core::TryCryptoRng;
use rsa::{Pkcs1v15Sign, PrivateKey as RsaPrivateKey};
use sha2::{Digest, Sha256};
use signature::hazmat::PrehashSigner;
use spki::AlgorithmIdentifierOwned;

use crate::error::{CaError, Result};
use crate::oids;
use crate::public_key::{ProofHash, PublicKey};

/// A named elliptic curve of the CAPF protocol (CURVE element: 0, 1, 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EcCurve {
    /// secp256r1 / prime256v1.
    P256,
    /// secp384r1.
    P384,
    /// secp521r1.
    P521,
}

impl fmt::Display for EcCurve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
            Self::P521 => "P-521",
        })
    }
}

/// The kind and size of a key: what KEY_GENERATE_REQUEST asks a phone for,
/// and what the CAPF key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeySpec {
    /// RSA with a modulus of `bits` bits (1024, 2048, 3072 or 4096).
    Rsa {
        /// Modulus size in bits.
        bits: u16,
    },
    /// ECDSA on a named curve.
    Ec(EcCurve),
}

impl Default for KeySpec {
    /// RSA-2048: older phones only handle RSA.
    fn default() -> Self {
        Self::Rsa { bits: 2048 }
    }
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rsa { bits } => write!(f, "rsa{bits}"),
            Self::Ec(EcCurve::P256) => f.write_str("p256"),
            Self::Ec(EcCurve::P384) => f.write_str("p384"),
            Self::Ec(EcCurve::P521) => f.write_str("p521"),
        }
    }
}

impl FromStr for KeySpec {
    type Err = CaError;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "rsa1024" => Ok(Self::Rsa { bits: 1024 }),
            "rsa2048" => Ok(Self::Rsa { bits: 2048 }),
            "rsa3072" => Ok(Self::Rsa { bits: 3072 }),
            "rsa4096" => Ok(Self::Rsa { bits: 4096 }),
            "p256" => Ok(Self::Ec(EcCurve::P256)),
            "p384" => Ok(Self::Ec(EcCurve::P384)),
            "p521" => Ok(Self::Ec(EcCurve::P521)),
            _ => Err(CaError::UnknownKeySpec(s.to_owned())),
        }
    }
}

#[derive(Clone)]
enum Inner {
    Rsa(Box<RsaPrivateKey>),
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    P521(p521::ecdsa::SigningKey),
}

/// Which library computes a key's certificate signatures (see
/// [`PrivateKey::signing_backend`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningBackend {
    /// RustCrypto (`rsa`, `p256`, ...): the portable default, every key type.
    RustCrypto,
    /// ring (feature `ring`): RSA of 2048 to 4096 bits and P-256, several
    /// times faster. The signatures are the same kind; only the speed differs.
    Ring,
}

impl fmt::Display for SigningBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::RustCrypto => "RustCrypto",
            Self::Ring => "ring",
        })
    }
}

/// A private key: RSA or ECDSA (P-256, P-384, P-521).
///
/// Used for the CAPF identity and issuer, and by a phone simulator for the
/// phone's own key (to build AUTH_RESPONSE proofs).
///
/// Certificates are signed with RustCrypto, or, when this crate is built
/// with the feature `ring` and ring can hold the key (RSA 2048 to 4096 bits,
/// P-256), with ring. [`signing_backend`](Self::signing_backend) tells which;
/// [`portable`](Self::portable) turns ring off for one key. Proofs
/// ([`sign_proof`](Self::sign_proof)) are always signed with RustCrypto.
#[derive(Clone)]
pub struct PrivateKey {
    inner: Inner,
    /// ring's copy of the key, made on the first certificate signature and
    /// shared by clones; `None` when [`portable`](Self::portable) was asked.
    #[cfg(feature = "ring")]
    ring: Option<std::sync::Arc<std::sync::OnceLock<Option<crate::ring_signer::RingKey>>>>,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({})", self.spec())
    }
}

fn rng_error(e: impl fmt::Display) -> CaError {
    CaError::Rng(e.to_string())
}

impl PrivateKey {
    fn from_inner(inner: Inner) -> Self {
        Self {
            inner,
            #[cfg(feature = "ring")]
            ring: Some(std::sync::Arc::default()),
        }
    }

    /// The same key, always signing with RustCrypto (for comparisons and
    /// benchmarks; without the feature `ring` every key already does).
    #[must_use]
    pub fn portable(self) -> Self {
        Self {
            inner: self.inner,
            #[cfg(feature = "ring")]
            ring: None,
        }
    }

    /// Which library signs certificates with this key.
    pub fn signing_backend(&self) -> SigningBackend {
        #[cfg(feature = "ring")]
        if self.ring_key().is_some() {
            return SigningBackend::Ring;
        }
        SigningBackend::RustCrypto
    }

    /// ring's copy of the key, made on first use; `None` if portable or if
    /// ring cannot hold this key.
    #[cfg(feature = "ring")]
    fn ring_key(&self) -> Option<&crate::ring_signer::RingKey> {
        use crate::ring_signer::RingKey;
        let cell = self.ring.as_ref()?;
        cell.get_or_init(|| match &self.inner {
            Inner::Rsa(k) => RingKey::rsa(k.to_pkcs8_der().ok()?.as_bytes()),
            Inner::P256(k) => RingKey::p256(
                &k.to_bytes(),
                k.verifying_key().to_sec1_point(false).as_bytes(),
            ),
            Inner::P384(_) | Inner::P521(_) => None,
        })
        .as_ref()
    }

    /// Generates a key with the operating system's CSPRNG.
    pub fn generate(spec: KeySpec) -> Result<Self> {
        Self::generate_with_rng(spec, &mut getrandom::SysRng)
    }

    /// Generates a key with the given cryptographic RNG.
    pub fn generate_with_rng<R: TryCryptoRng + ?Sized>(spec: KeySpec, rng: &mut R) -> Result<Self>
    where
        R::Error: fmt::Display,
    {
        let inner = match spec {
            KeySpec::Rsa { bits } => {
                if !matches!(bits, 1024 | 2048 | 3072 | 4096) {
                    return Err(CaError::KeyGeneration {
                        spec,
                        reason: "RSA size must be 1024, 2048, 3072 or 4096 bits".into(),
                    });
                }
                let key = RsaPrivateKey::new(rng, usize::from(bits)).map_err(|e| {
                    CaError::KeyGeneration {
                        spec,
                        reason: e.to_string(),
                    }
                })?;
                Inner::Rsa(Box::new(key))
            }
            KeySpec::Ec(EcCurve::P256) => {
                Inner::P256(p256::ecdsa::SigningKey::try_generate_from_rng(rng).map_err(rng_error)?)
            }
            KeySpec::Ec(EcCurve::P384) => {
                Inner::P384(p384::ecdsa::SigningKey::try_generate_from_rng(rng).map_err(rng_error)?)
            }
            KeySpec::Ec(EcCurve::P521) => {
                Inner::P521(p521::ecdsa::SigningKey::try_generate_from_rng(rng).map_err(rng_error)?)
            }
        };
        Ok(Self::from_inner(inner))
    }

    /// The kind and size of this key.
    pub fn spec(&self) -> KeySpec {
        match &self.inner {
            Inner::Rsa(k) => KeySpec::Rsa {
                bits: u16::try_from(rsa::traits::PublicKeyParts::size(k.as_ref()) * 8)
                    .unwrap_or(u16::MAX),
            },
            Inner::P256(_) => KeySpec::Ec(EcCurve::P256),
            Inner::P384(_) => KeySpec::Ec(EcCurve::P384),
            Inner::P521(_) => KeySpec::Ec(EcCurve::P521),
        }
    }

    /// Decodes a PKCS#8 `PrivateKeyInfo` (DER).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self> {
        let info = pkcs8::PrivateKeyInfoRef::try_from(der).map_err(|e| CaError::PrivateKey {
            what: "PKCS#8 decoding",
            reason: e.to_string(),
        })?;
        let oid = info.algorithm.oid;
        let fail = |e: pkcs8::Error| CaError::PrivateKey {
            what: "PKCS#8 decoding",
            reason: e.to_string(),
        };
        let inner = if oid == oids::RSA_ENCRYPTION {
            Inner::Rsa(Box::new(RsaPrivateKey::from_pkcs8_der(der).map_err(fail)?))
        } else if oid == oids::EC_PUBLIC_KEY {
            let curve = info
                .algorithm
                .parameters_oid()
                .map_err(|e| CaError::PrivateKey {
                    what: "PKCS#8 decoding",
                    reason: format!("EC key without a named curve: {e}"),
                })?;
            if curve == oids::SECP256R1 {
                Inner::P256(p256::ecdsa::SigningKey::from_pkcs8_der(der).map_err(fail)?)
            } else if curve == oids::SECP384R1 {
                Inner::P384(p384::ecdsa::SigningKey::from_pkcs8_der(der).map_err(fail)?)
            } else if curve == oids::SECP521R1 {
                Inner::P521(p521::ecdsa::SigningKey::from_pkcs8_der(der).map_err(fail)?)
            } else {
                return Err(CaError::PrivateKey {
                    what: "PKCS#8 decoding",
                    reason: format!("unsupported curve {curve}"),
                });
            }
        } else {
            return Err(CaError::PrivateKey {
                what: "PKCS#8 decoding",
                reason: format!("unsupported key algorithm {oid}"),
            });
        };
        Ok(Self::from_inner(inner))
    }

    /// Decodes a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self> {
        let (label, doc) =
            pkcs8::SecretDocument::from_pem(pem).map_err(|e| CaError::PrivateKey {
                what: "PEM decoding",
                reason: e.to_string(),
            })?;
        if label != "PRIVATE KEY" {
            return Err(CaError::PrivateKey {
                what: "PEM decoding",
                reason: format!("expected a PKCS#8 \"PRIVATE KEY\", found {label:?}"),
            });
        }
        Self::from_pkcs8_der(doc.as_bytes())
    }

    fn pkcs8_document(&self) -> Result<pkcs8::SecretDocument> {
        let r = match &self.inner {
            Inner::Rsa(k) => k.to_pkcs8_der(),
            Inner::P256(k) => k.to_pkcs8_der(),
            Inner::P384(k) => k.to_pkcs8_der(),
            Inner::P521(k) => k.to_pkcs8_der(),
        };
        r.map_err(|e| CaError::PrivateKey {
            what: "PKCS#8 encoding",
            reason: e.to_string(),
        })
    }

    /// Encodes the key as PKCS#8 DER. The result is secret.
    pub fn to_pkcs8_der(&self) -> Result<Vec<u8>> {
        Ok(self.pkcs8_document()?.as_bytes().to_vec())
    }

    /// Encodes the key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`). The result is secret.
    pub fn to_pkcs8_pem(&self) -> Result<String> {
        let pem = self
            .pkcs8_document()?
            .to_pem("PRIVATE KEY", LineEnding::LF)
            .map_err(|e| CaError::PrivateKey {
                what: "PEM encoding",
                reason: e.to_string(),
            })?;
        Ok(pem.as_str().to_owned())
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        match &self.inner {
            Inner::Rsa(k) => PublicKey::from_rsa(k.to_public_key()),
            Inner::P256(k) => PublicKey::from_p256(*k.verifying_key()),
            Inner::P384(k) => PublicKey::from_p384(*k.verifying_key()),
            Inner::P521(k) => PublicKey::from_p521(*k.verifying_key()),
        }
    }

    /// The DER SubjectPublicKeyInfo of the public half (what a phone sends in PUBLIC_KEY).
    pub fn public_key_der(&self) -> Result<Vec<u8>> {
        let r = match &self.inner {
            Inner::Rsa(k) => k.to_public_key().to_public_key_der(),
            Inner::P256(k) => k.verifying_key().to_public_key_der(),
            Inner::P384(k) => k.verifying_key().to_public_key_der(),
            Inner::P521(k) => k.verifying_key().to_public_key_der(),
        };
        r.map(|d| d.into_vec()).map_err(|e| CaError::PrivateKey {
            what: "public key encoding",
            reason: e.to_string(),
        })
    }

    /// The signatureAlgorithm of certificates this key signs.
    pub(crate) fn certificate_signature_algorithm(&self) -> AlgorithmIdentifierOwned {
        match &self.inner {
            Inner::Rsa(_) => oids::sha256_with_rsa(),
            _ => oids::ecdsa_with_sha256(),
        }
    }

    /// Signs `data` for an X.509 certificate with SHA-256 (PKCS#1 v1.5 or
    /// ECDSA). Returns the signatureAlgorithm and the signature bytes.
    pub(crate) fn sign_certificate(
        &self,
        data: &[u8],
    ) -> Result<(AlgorithmIdentifierOwned, Vec<u8>)> {
        let fail = |e: &dyn fmt::Display| CaError::Signing {
            what: "certificate",
            reason: e.to_string(),
        };
        #[cfg(feature = "ring")]
        if let Some(key) = self.ring_key() {
            let signature = key.sign(data).map_err(|e| fail(&e))?;
            return Ok((self.certificate_signature_algorithm(), signature));
        }
        let digest = Sha256::digest(data);
        match &self.inner {
            Inner::Rsa(k) => {
                let sig = k
                    .sign_with_rng(
                        &mut getrandom::SysRng,
                        Pkcs1v15Sign::new::<Sha256>(),
                        &digest,
                    )
                    .map_err(|e| fail(&e))?;
                Ok((oids::sha256_with_rsa(), sig))
            }
            Inner::P256(k) => {
                let sig: p256::ecdsa::Signature = k.sign_prehash(&digest).map_err(|e| fail(&e))?;
                Ok((oids::ecdsa_with_sha256(), sig.to_der().as_bytes().to_vec()))
            }
            Inner::P384(k) => {
                let sig: p384::ecdsa::Signature = k.sign_prehash(&digest).map_err(|e| fail(&e))?;
                Ok((oids::ecdsa_with_sha256(), sig.to_der().as_bytes().to_vec()))
            }
            Inner::P521(k) => {
                let sig: p521::ecdsa::Signature = k.sign_prehash(&digest).map_err(|e| fail(&e))?;
                Ok((oids::ecdsa_with_sha256(), sig.to_der().as_bytes().to_vec()))
            }
        }
    }

    /// Signs `data` the way CAPF proofs are signed: RSA as a
    /// raw PKCS#1 v1.5 type-1 block over the bare digest (no DigestInfo),
    /// ECDSA as a DER `ECDSA-Sig-Value`.
    pub fn sign_proof(&self, hash: ProofHash, data: &[u8]) -> Result<Vec<u8>> {
        let digest = hash.digest(data);
        let fail = |e: &dyn fmt::Display| CaError::Signing {
            what: "proof",
            reason: e.to_string(),
        };
        match &self.inner {
            Inner::Rsa(k) => k
                .sign_with_rng(
                    &mut getrandom::SysRng,
                    Pkcs1v15Sign::new_unprefixed(),
                    &digest,
                )
                .map_err(|e| fail(&e)),
            Inner::P256(k) => {
                let sig: p256::ecdsa::Signature = k.sign_prehash(&digest).map_err(|e| fail(&e))?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
            Inner::P384(k) => {
                let sig: p384::ecdsa::Signature = k.sign_prehash(&digest).map_err(|e| fail(&e))?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
            Inner::P521(k) => {
                let sig: p521::ecdsa::Signature = k.sign_prehash(&digest).map_err(|e| fail(&e))?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn key_spec_names_round_trip() {
        for name in [
            "rsa1024", "rsa2048", "rsa3072", "rsa4096", "p256", "p384", "p521",
        ] {
            let spec: KeySpec = name.parse().unwrap();
            assert_eq!(spec.to_string(), name);
        }
        assert!("rsa512".parse::<KeySpec>().is_err());
        assert_eq!(KeySpec::default(), KeySpec::Rsa { bits: 2048 });
    }

    #[test]
    fn ec_keys_round_trip_pkcs8() {
        for curve in [EcCurve::P256, EcCurve::P384, EcCurve::P521] {
            let key = PrivateKey::generate(KeySpec::Ec(curve)).unwrap();
            let pem = key.to_pkcs8_pem().unwrap();
            let back = PrivateKey::from_pkcs8_pem(&pem).unwrap();
            assert_eq!(back.spec(), KeySpec::Ec(curve));
            assert_eq!(
                back.public_key_der().unwrap(),
                key.public_key_der().unwrap()
            );
        }
    }
}
