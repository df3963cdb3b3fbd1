//! Certificate signature verification through ring (feature `ring`): the
//! same checks as the RustCrypto path of [`PublicKey`](crate::PublicKey)
//! (PKCS#1 v1.5 with a DigestInfo, DER ECDSA), by the library rustls already
//! links for TLS, for the key sizes and algorithms ring accepts:
//!
//! - RSA keys of 2048 to 8192 bits, PKCS#1 v1.5 with SHA-1 (ring's legacy
//!   verification algorithm; manufacturing CAs still sign MICs with it),
//!   SHA-256, SHA-384 or SHA-512;
//! - P-256 and P-384 keys (uncompressed points), ECDSA with SHA-256 or SHA-384.
//!
//! Everything else (RSA below 2048 bits, P-521, ECDSA with SHA-512,
//! compressed points) stays on RustCrypto, and so do the CAPF proofs: ring
//! only verifies a message it hashes itself, never a bare digest.

use ring::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA384_ASN1, ECDSA_P384_SHA256_ASN1, ECDSA_P384_SHA384_ASN1,
    RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, RSA_PKCS1_2048_8192_SHA256,
    RSA_PKCS1_2048_8192_SHA384, RSA_PKCS1_2048_8192_SHA512, UnparsedPublicKey,
    VerificationAlgorithm,
};
use spki::ObjectIdentifier;

use crate::keys::{EcCurve, KeySpec};
use crate::oids;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Rsa,
    P256,
    P384,
}

/// An issuer's key in the form ring takes: the SubjectPublicKeyInfo's BIT
/// STRING (PKCS#1 RSAPublicKey, or the SEC 1 point).
#[derive(Clone, Debug)]
pub(crate) struct RingVerifier {
    kind: Kind,
    public_key: Vec<u8>,
}

impl RingVerifier {
    /// `None` when ring cannot take the key (the caller keeps RustCrypto).
    /// `spec` is the key RustCrypto decoded from the same `public_key` bytes,
    /// so an RSA key here already has an odd exponent of 3 to 2^33 - 1 and
    /// an odd modulus, which ring requires too.
    pub(crate) fn new(spec: KeySpec, public_key: &[u8]) -> Option<Self> {
        let uncompressed = |len: usize| public_key.len() == len && public_key.first() == Some(&4);
        let kind = match spec {
            KeySpec::Rsa { bits } if (2048..=8192).contains(&bits) => Kind::Rsa,
            KeySpec::Ec(EcCurve::P256) if uncompressed(65) => Kind::P256,
            KeySpec::Ec(EcCurve::P384) if uncompressed(97) => Kind::P384,
            _ => return None,
        };
        Some(Self {
            kind,
            public_key: public_key.to_vec(),
        })
    }

    fn algorithm(&self, alg: ObjectIdentifier) -> Option<&'static dyn VerificationAlgorithm> {
        Some(match self.kind {
            Kind::Rsa if alg == oids::SHA1_WITH_RSA => {
                &RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY
            }
            Kind::Rsa if alg == oids::SHA256_WITH_RSA => &RSA_PKCS1_2048_8192_SHA256,
            Kind::Rsa if alg == oids::SHA384_WITH_RSA => &RSA_PKCS1_2048_8192_SHA384,
            Kind::Rsa if alg == oids::SHA512_WITH_RSA => &RSA_PKCS1_2048_8192_SHA512,
            Kind::P256 if alg == oids::ECDSA_WITH_SHA256 => &ECDSA_P256_SHA256_ASN1,
            Kind::P256 if alg == oids::ECDSA_WITH_SHA384 => &ECDSA_P256_SHA384_ASN1,
            Kind::P384 if alg == oids::ECDSA_WITH_SHA256 => &ECDSA_P384_SHA256_ASN1,
            Kind::P384 if alg == oids::ECDSA_WITH_SHA384 => &ECDSA_P384_SHA384_ASN1,
            _ => return None,
        })
    }

    /// Verifies an X.509 signature with algorithm `alg` over `tbs`; `None`
    /// when ring does not do this algorithm with this key (ask RustCrypto).
    pub(crate) fn verify_x509(
        &self,
        alg: ObjectIdentifier,
        tbs: &[u8],
        sig: &[u8],
    ) -> Option<bool> {
        let algorithm = self.algorithm(alg)?;
        Some(
            UnparsedPublicKey::new(algorithm, &self.public_key)
                .verify(tbs, sig)
                .is_ok(),
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    //! ring and RustCrypto must agree on every certificate signature ring
    //! verifies: both accept a good one, both refuse a tampered signature, a
    //! tampered message and another key's signature.

    use pkcs8::DecodePrivateKey;
    use rsa::Pkcs1v15Sign;
    use sha1::Sha1;
    use sha2::{Digest, Sha256, Sha384, Sha512};
    use signature::hazmat::PrehashSigner;

    use super::*;
    use crate::keys::PrivateKey;
    use crate::public_key::{IssuerKey, PublicKey};

    const TBS: &[u8] = b"a tbsCertificate stand-in: any bytes are signed the same way";

    fn issuer_key(key: &PrivateKey) -> IssuerKey {
        let der = key.public_key_der().unwrap();
        let spki = spki::SubjectPublicKeyInfoRef::try_from(der.as_slice()).unwrap();
        IssuerKey::new(
            PublicKey::from_spki_der(&der).unwrap(),
            spki.subject_public_key.raw_bytes(),
        )
    }

    /// A certificate signature by RustCrypto with algorithm `alg`.
    fn sign(key: &PrivateKey, alg: ObjectIdentifier, msg: &[u8]) -> Vec<u8> {
        let pkcs8 = key.to_pkcs8_der().unwrap();
        let digest = match alg {
            a if a == oids::SHA1_WITH_RSA => Sha1::digest(msg).to_vec(),
            a if a == oids::SHA256_WITH_RSA || a == oids::ECDSA_WITH_SHA256 => {
                Sha256::digest(msg).to_vec()
            }
            a if a == oids::SHA384_WITH_RSA || a == oids::ECDSA_WITH_SHA384 => {
                Sha384::digest(msg).to_vec()
            }
            a if a == oids::SHA512_WITH_RSA || a == oids::ECDSA_WITH_SHA512 => {
                Sha512::digest(msg).to_vec()
            }
            a => panic!("no digest for {a}"),
        };
        match key.spec() {
            KeySpec::Rsa { .. } => {
                let scheme = match alg {
                    a if a == oids::SHA1_WITH_RSA => Pkcs1v15Sign::new::<Sha1>(),
                    a if a == oids::SHA256_WITH_RSA => Pkcs1v15Sign::new::<Sha256>(),
                    a if a == oids::SHA384_WITH_RSA => Pkcs1v15Sign::new::<Sha384>(),
                    _ => Pkcs1v15Sign::new::<Sha512>(),
                };
                rsa::PrivateKey::from_pkcs8_der(&pkcs8)
                    .unwrap()
                    .sign_with_rng(&mut getrandom::SysRng, scheme, &digest)
                    .unwrap()
            }
            KeySpec::Ec(EcCurve::P256) => {
                let k = p256::ecdsa::SigningKey::from_pkcs8_der(&pkcs8).unwrap();
                let sig: p256::ecdsa::Signature = k.sign_prehash(&digest).unwrap();
                sig.to_der().as_bytes().to_vec()
            }
            KeySpec::Ec(EcCurve::P384) => {
                let k = p384::ecdsa::SigningKey::from_pkcs8_der(&pkcs8).unwrap();
                let sig: p384::ecdsa::Signature = k.sign_prehash(&digest).unwrap();
                sig.to_der().as_bytes().to_vec()
            }
            KeySpec::Ec(EcCurve::P521) => {
                let k = p521::ecdsa::SigningKey::from_pkcs8_der(&pkcs8).unwrap();
                let sig: p521::ecdsa::Signature = k.sign_prehash(&digest).unwrap();
                sig.to_der().as_bytes().to_vec()
            }
        }
    }

    /// Both paths give `expected` (and the combined path too).
    fn agree(key: &IssuerKey, alg: ObjectIdentifier, msg: &[u8], sig: &[u8], expected: bool) {
        assert_eq!(
            key.verify_x509_ring(alg, msg, sig),
            Some(expected),
            "ring, {alg}"
        );
        assert_eq!(
            key.verify_x509_rustcrypto(alg, msg, sig),
            Some(expected),
            "RustCrypto, {alg}"
        );
        assert_eq!(key.verify_x509(alg, msg, sig), Some(expected), "{alg}");
    }

    fn check(spec: KeySpec, algs: &[ObjectIdentifier]) {
        let signer = PrivateKey::generate(spec).unwrap();
        let other = PrivateKey::generate(spec).unwrap();
        let key = issuer_key(&signer);
        let other_key = issuer_key(&other);
        for &alg in algs {
            let sig = sign(&signer, alg, TBS);
            agree(&key, alg, TBS, &sig, true);
            // A signature with one bit changed, first and last byte.
            for at in [0, sig.len() / 2, sig.len() - 1] {
                let mut tampered = sig.clone();
                tampered[at] ^= 0x01;
                agree(&key, alg, TBS, &tampered, false);
            }
            // Truncated, and one byte longer.
            agree(&key, alg, TBS, &sig[..sig.len() - 1], false);
            let mut longer = sig.clone();
            longer.push(0);
            agree(&key, alg, TBS, &longer, false);
            // Another message.
            let mut msg = TBS.to_vec();
            msg[3] ^= 0x80;
            agree(&key, alg, &msg, &sig, false);
            // Another key: its own signature verifies, this one does not.
            agree(&other_key, alg, TBS, &sig, false);
            agree(&other_key, alg, TBS, &sign(&other, alg, TBS), true);
        }
        // Another algorithm of the same key: refused by both.
        if let [first, second, ..] = algs {
            let sig = sign(&signer, *first, TBS);
            agree(&key, *second, TBS, &sig, false);
        }
    }

    #[test]
    fn ring_and_rustcrypto_agree_on_rsa_2048() {
        check(
            KeySpec::Rsa { bits: 2048 },
            &[
                oids::SHA1_WITH_RSA,
                oids::SHA256_WITH_RSA,
                oids::SHA384_WITH_RSA,
                oids::SHA512_WITH_RSA,
            ],
        );
    }

    #[test]
    fn ring_and_rustcrypto_agree_on_p256() {
        check(
            KeySpec::Ec(EcCurve::P256),
            &[oids::ECDSA_WITH_SHA256, oids::ECDSA_WITH_SHA384],
        );
    }

    #[test]
    fn ring_and_rustcrypto_agree_on_p384() {
        check(
            KeySpec::Ec(EcCurve::P384),
            &[oids::ECDSA_WITH_SHA256, oids::ECDSA_WITH_SHA384],
        );
    }

    /// What ring does not verify stays on RustCrypto, with the same answers.
    #[test]
    fn rustcrypto_keeps_what_ring_does_not_take() {
        let cases = [
            (KeySpec::Rsa { bits: 1024 }, oids::SHA256_WITH_RSA),
            (KeySpec::Ec(EcCurve::P256), oids::ECDSA_WITH_SHA512),
            (KeySpec::Ec(EcCurve::P521), oids::ECDSA_WITH_SHA256),
        ];
        for (spec, alg) in cases {
            let signer = PrivateKey::generate(spec).unwrap();
            let key = issuer_key(&signer);
            let sig = sign(&signer, alg, TBS);
            assert_eq!(key.verify_x509_ring(alg, TBS, &sig), None, "{spec} {alg}");
            assert_eq!(key.verify_x509(alg, TBS, &sig), Some(true), "{spec} {alg}");
            let mut tampered = sig.clone();
            tampered[sig.len() / 2] ^= 0x01;
            assert_eq!(
                key.verify_x509(alg, TBS, &tampered),
                Some(false),
                "{spec} {alg}"
            );
        }
    }
}
