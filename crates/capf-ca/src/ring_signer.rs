//! Certificate signing through ring (feature `ring`): the same signatures
//! as the RustCrypto path (PKCS#1 v1.5 with SHA-256, ECDSA P-256 with
//! SHA-256, DER), computed by the library rustls already links for TLS.
//!
//! Only the key types ring can sign certificates with go here: RSA of 2048
//! to 4096 bits and P-256. Everything else (RSA-1024, P-384 and P-521 with
//! SHA-256, raw CAPF proofs) stays on RustCrypto.

use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, RSA_PKCS1_SHA256, RsaKeyPair};

/// A key pair in ring's form, made once from the RustCrypto key.
pub(crate) enum RingKey {
    Rsa(RsaKeyPair),
    P256(EcdsaKeyPair),
}

impl RingKey {
    /// An RSA key from its PKCS#8 DER. `None` when ring refuses it (for
    /// instance a 1024-bit modulus): the caller keeps RustCrypto.
    pub(crate) fn rsa(pkcs8: &[u8]) -> Option<Self> {
        RsaKeyPair::from_pkcs8(pkcs8).ok().map(Self::Rsa)
    }

    /// A P-256 key from its scalar (32 bytes, big-endian) and its public
    /// point (SEC 1, uncompressed).
    pub(crate) fn p256(scalar: &[u8], public_point: &[u8]) -> Option<Self> {
        EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            scalar,
            public_point,
            &SystemRandom::new(),
        )
        .ok()
        .map(Self::P256)
    }

    /// Signs `message` (hashed here with SHA-256). Returns the signature
    /// bytes as they go into the certificate's BIT STRING.
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, ring::error::Unspecified> {
        let rng = SystemRandom::new();
        match self {
            Self::Rsa(key) => {
                let mut signature = vec![0; key.public().modulus_len()];
                key.sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature)?;
                Ok(signature)
            }
            Self::P256(key) => Ok(key.sign(&rng, message)?.as_ref().to_vec()),
        }
    }
}
