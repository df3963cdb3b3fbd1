//! CAPF proof signatures of EC keys through aws-lc (feature `aws-lc`).
//!
//! A phone proves it holds its certificate's key with two ECDSA signatures,
//! one with SHA-1 and one with SHA-512, whatever its curve: combinations
//! ring does not verify (it pairs P-256 with SHA-256 and P-384 with
//! SHA-384 only). RustCrypto verifies them, but its P-256 arithmetic is
//! about five times slower than aws-lc's assembly, and on a re-enrollment
//! by certificate the two proofs were the largest single cost of the
//! server. aws-lc verifies each pairing it names (P-256 and P-521 with
//! SHA-1 or SHA-512, P-384 with SHA-512) over the same data, with the same
//! strict DER signature parsing; the rest (P-384 with SHA-1) stays on
//! RustCrypto.
//!
//! The key is handed over as the uncompressed SEC 1 point of the key
//! RustCrypto already decoded and validated from the certificate, so both
//! libraries see the same key whatever encoding the certificate used.

use aws_lc_rs::signature::{
    ECDSA_P256_SHA1_ASN1, ECDSA_P256_SHA512_ASN1, ECDSA_P384_SHA512_ASN1, ECDSA_P521_SHA1_ASN1,
    ECDSA_P521_SHA512_ASN1, EcdsaVerificationAlgorithm, VerificationAlgorithm,
};

use crate::keys::EcCurve;
use crate::public_key::ProofHash;

fn algorithm(curve: EcCurve, hash: ProofHash) -> Option<&'static EcdsaVerificationAlgorithm> {
    Some(match (curve, hash) {
        (EcCurve::P256, ProofHash::Sha1) => &ECDSA_P256_SHA1_ASN1,
        (EcCurve::P256, ProofHash::Sha512) => &ECDSA_P256_SHA512_ASN1,
        (EcCurve::P384, ProofHash::Sha512) => &ECDSA_P384_SHA512_ASN1,
        (EcCurve::P521, ProofHash::Sha1) => &ECDSA_P521_SHA1_ASN1,
        (EcCurve::P521, ProofHash::Sha512) => &ECDSA_P521_SHA512_ASN1,
        (EcCurve::P384, ProofHash::Sha1) => return None,
    })
}

/// Verifies a DER ECDSA proof signature over `data` (hashed here with
/// `hash`) by the key whose uncompressed point is `point`. `None` when
/// aws-lc has no algorithm for this curve and hash.
pub(crate) fn verify_ec_proof(
    curve: EcCurve,
    point: &[u8],
    hash: ProofHash,
    data: &[u8],
    signature: &[u8],
) -> Option<bool> {
    let algorithm = algorithm(curve, hash)?;
    Some(algorithm.verify_sig(point, data, signature).is_ok())
}

#[cfg(test)]
mod tests {
    //! aws-lc and RustCrypto must agree on every proof: accepted, and
    //! refused for each change an attacker could make.

    use super::*;
    use crate::PublicKey;
    use p256::elliptic_curve::Generate;
    use signature::hazmat::PrehashSigner;

    fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
        rand_core::UnwrapErr(getrandom::SysRng)
    }

    /// Signs a bare digest, DER ECDSA.
    type Signer = Box<dyn Fn(&[u8]) -> Vec<u8>>;

    /// A key of `curve`, its public half (as the proof verifier holds it)
    /// and a signer of bare digests.
    fn key(curve: EcCurve) -> (PublicKey, Signer) {
        match curve {
            EcCurve::P256 => {
                let k = p256::ecdsa::SigningKey::try_generate_from_rng(&mut rng()).unwrap();
                let public = PublicKey::from_p256(*k.verifying_key());
                let sign = move |digest: &[u8]| {
                    let sig: p256::ecdsa::Signature = k.sign_prehash(digest).unwrap();
                    sig.to_der().as_bytes().to_vec()
                };
                (public, Box::new(sign))
            }
            EcCurve::P384 => {
                let k = p384::ecdsa::SigningKey::try_generate_from_rng(&mut rng()).unwrap();
                let public = PublicKey::from_p384(*k.verifying_key());
                let sign = move |digest: &[u8]| {
                    let sig: p384::ecdsa::Signature = k.sign_prehash(digest).unwrap();
                    sig.to_der().as_bytes().to_vec()
                };
                (public, Box::new(sign))
            }
            EcCurve::P521 => {
                let k = p521::ecdsa::SigningKey::try_generate_from_rng(&mut rng()).unwrap();
                let public = PublicKey::from_p521(p521::ecdsa::VerifyingKey::from(&k));
                let sign = move |digest: &[u8]| {
                    let sig: p521::ecdsa::Signature = k.sign_prehash(digest).unwrap();
                    sig.to_der().as_bytes().to_vec()
                };
                (public, Box::new(sign))
            }
        }
    }

    #[test]
    fn aws_lc_and_rustcrypto_agree_on_every_proof() {
        let data = b"SEP001122334455 and the certificate it presents".to_vec();
        for curve in [EcCurve::P256, EcCurve::P384, EcCurve::P521] {
            let (public, sign) = key(curve);
            let (other, _) = key(curve);
            for hash in [ProofHash::Sha1, ProofHash::Sha512] {
                let good = sign(&hash.digest(&data));
                let mut cases: Vec<(String, Vec<u8>, Vec<u8>, bool)> =
                    vec![("valid".into(), data.clone(), good.clone(), true)];
                // Every byte of the signature flipped in turn, one bit.
                for i in 0..good.len() {
                    let mut bad = good.clone();
                    bad[i] ^= 0x01;
                    cases.push((format!("signature byte {i}"), data.clone(), bad, false));
                }
                let mut longer = good.clone();
                longer.push(0);
                cases.push(("trailing byte".into(), data.clone(), longer, false));
                cases.push((
                    "truncated".into(),
                    data.clone(),
                    good[..good.len() - 1].to_vec(),
                    false,
                ));
                cases.push(("empty".into(), data.clone(), Vec::new(), false));
                let mut changed = data.clone();
                changed[0] ^= 0x20;
                cases.push(("other data".into(), changed, good.clone(), false));
                let other_hash = match hash {
                    ProofHash::Sha1 => ProofHash::Sha512,
                    ProofHash::Sha512 => ProofHash::Sha1,
                };
                cases.push((
                    "signed the other digest".into(),
                    data.clone(),
                    sign(&other_hash.digest(&data)),
                    false,
                ));
                for (what, data, sig, expected) in &cases {
                    let rustcrypto = public.verify_proof_rustcrypto(hash, data, sig);
                    assert_eq!(
                        rustcrypto, *expected,
                        "{curve:?} {hash:?} {what}: RustCrypto"
                    );
                    if let Some(aws) = public.verify_proof_aws_lc(hash, data, sig) {
                        assert_eq!(aws, *expected, "{curve:?} {hash:?} {what}: aws-lc");
                    } else {
                        assert_eq!((curve, hash), (EcCurve::P384, ProofHash::Sha1));
                    }
                    assert_eq!(public.verify_proof(hash, data, sig), *expected, "{what}");
                    // Never by another key.
                    assert!(!other.verify_proof(hash, data, sig), "{what}: other key");
                }
            }
        }
    }
}
