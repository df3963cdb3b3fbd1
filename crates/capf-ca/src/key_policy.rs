//! Validation of the public key a phone sends in KEY_GENERATE_RESPONSE.

use der::asn1::UintRef;
use der::{Decode, Sequence};
use spki::SubjectPublicKeyInfoRef;

use crate::error::{CaError, Result};
use crate::keys::{EcCurve, KeySpec};
use crate::oids;
use crate::public_key::PublicKey;

/// Which phone keys CAPF certifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPolicy {
    /// Smallest RSA modulus in bits. Default 1024 (older phones).
    pub rsa_min_bits: usize,
    /// Largest RSA modulus in bits. Default 4096.
    pub rsa_max_bits: usize,
    /// Curves accepted for EC keys. Default P-256, P-384, P-521.
    pub curves: Vec<EcCurve>,
}

impl Default for KeyPolicy {
    fn default() -> Self {
        Self {
            rsa_min_bits: 1024,
            rsa_max_bits: 4096,
            curves: vec![EcCurve::P256, EcCurve::P384, EcCurve::P521],
        }
    }
}

/// PKCS#1 RSAPublicKey.
#[derive(Sequence)]
struct RsaPublicKeyDer<'a> {
    modulus: UintRef<'a>,
    public_exponent: UintRef<'a>,
}

fn malformed(reason: impl ToString) -> CaError {
    CaError::MalformedPublicKey {
        reason: reason.to_string(),
    }
}

fn bit_length(be: &[u8]) -> usize {
    match be.iter().position(|&b| b != 0) {
        None => 0,
        Some(i) => (be.len() - i - 1) * 8 + (8 - be[i].leading_zeros() as usize),
    }
}

/// The smallest RSA public exponent accepted, for phone keys and for the
/// keys of certificates presented for authentication.
pub(crate) const MIN_RSA_EXPONENT: u64 = 65_537;

/// Why an RSA public exponent (big-endian bytes) is refused, or `None` when
/// it is acceptable: odd, at least 65537 and at most 32 bits long.
pub(crate) fn rsa_exponent_problem(e: &[u8]) -> Option<String> {
    let e_bits = bit_length(e);
    if e_bits > 32 {
        return Some(format!("exponent of {e_bits} bits is larger than 32 bits"));
    }
    // At most 4 significant bytes: the value fits in a u64.
    let e_value = e.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    if e_value < MIN_RSA_EXPONENT {
        return Some(format!(
            "exponent {e_value} is smaller than {MIN_RSA_EXPONENT}"
        ));
    }
    if e_value % 2 == 0 {
        return Some(format!("exponent {e_value} is even"));
    }
    None
}

fn check_rsa(spki: &SubjectPublicKeyInfoRef<'_>, policy: &KeyPolicy) -> Result<KeySpec> {
    if spki.algorithm.parameters.is_some_and(|p| !p.is_null()) {
        return Err(malformed("rsaEncryption parameters must be NULL"));
    }
    let key_bytes = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| malformed("public key BIT STRING has unused bits"))?;
    let key = RsaPublicKeyDer::from_der(key_bytes).map_err(malformed)?;
    let bits = bit_length(key.modulus.as_bytes());
    if bits < policy.rsa_min_bits || bits > policy.rsa_max_bits {
        return Err(CaError::RsaKeySize {
            bits,
            min: policy.rsa_min_bits,
            max: policy.rsa_max_bits,
        });
    }
    if let Some(reason) = rsa_exponent_problem(key.public_exponent.as_bytes()) {
        return Err(CaError::RsaExponent { reason });
    }
    if key.modulus.as_bytes().last().is_some_and(|b| b % 2 == 0) {
        return Err(malformed("RSA modulus is even"));
    }
    let bits = u16::try_from(bits).map_err(malformed)?;
    Ok(KeySpec::Rsa { bits })
}

fn check_ec(spki: &SubjectPublicKeyInfoRef<'_>, der: &[u8], policy: &KeyPolicy) -> Result<KeySpec> {
    let curve_oid = spki
        .algorithm
        .parameters_oid()
        .map_err(|_| CaError::UnsupportedCurve {
            oid: "absent or not a named curve".into(),
        })?;
    let curve = match curve_oid {
        o if o == oids::SECP256R1 => EcCurve::P256,
        o if o == oids::SECP384R1 => EcCurve::P384,
        o if o == oids::SECP521R1 => EcCurve::P521,
        o => {
            return Err(CaError::UnsupportedCurve { oid: o.to_string() });
        }
    };
    if !policy.curves.contains(&curve) {
        return Err(CaError::CurveNotAllowed { curve });
    }
    // Decoding checks that the point is on the curve and not the identity.
    PublicKey::from_spki_der(der)?;
    Ok(KeySpec::Ec(curve))
}

/// Checks a phone's public key (DER SubjectPublicKeyInfo) before issuing:
/// RSA or EC on a supported curve, RSA size within the policy, RSA public
/// exponent odd, at least 65537 and at most 32 bits, EC point on the curve, and equal to `requested` (what
/// KEY_GENERATE_REQUEST asked for) when given. Returns the key's spec.
pub fn validate_phone_key(
    spki_der: &[u8],
    policy: &KeyPolicy,
    requested: Option<KeySpec>,
) -> Result<KeySpec> {
    let spki = SubjectPublicKeyInfoRef::try_from(spki_der).map_err(malformed)?;
    let oid = spki.algorithm.oid;
    let actual = if oid == oids::RSA_ENCRYPTION {
        let spec = check_rsa(&spki, policy)?;
        // The RSA implementation must be able to use it too.
        PublicKey::from_spki_der(spki_der)?;
        spec
    } else if oid == oids::EC_PUBLIC_KEY {
        check_ec(&spki, spki_der, policy)?
    } else {
        return Err(CaError::UnsupportedKeyAlgorithm {
            oid: oid.to_string(),
        });
    };
    match requested {
        Some(requested) if requested != actual => {
            Err(CaError::KeySpecMismatch { requested, actual })
        }
        _ => Ok(actual),
    }
}
