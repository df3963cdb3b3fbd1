//! The crate's single error type.

use std::path::PathBuf;

use crate::keys::KeySpec;

/// Which of the phone's proof signatures failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofSignature {
    /// SIGNED_DATA: SHA-1 over `device name || 0x00 || certificate`.
    Sha1,
    /// SHA2_SIGNED_DATA: SHA-512 over `device name || 0x00 || certificate`.
    Sha512,
    /// SUDI_DATA SHA-1 signature over `session id (LE) || SUDI certificate`.
    SudiSha1,
    /// SUDI_DATA SHA-512 signature over `session id (LE) || SUDI certificate`.
    SudiSha512,
}

impl std::fmt::Display for ProofSignature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Sha1 => "SIGNED_DATA (SHA-1)",
            Self::Sha512 => "SHA2_SIGNED_DATA (SHA-512)",
            Self::SudiSha1 => "SUDI_DATA SHA-1 signature",
            Self::SudiSha512 => "SUDI_DATA SHA-512 signature",
        })
    }
}

/// Everything that can go wrong in the certificate authority.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// The operating system's random number generator failed.
    #[error("random number generator failed: {0}")]
    Rng(String),

    /// A key specification string was not one of `rsa1024 rsa2048 rsa3072 rsa4096 p256 p384 p521`.
    #[error(
        "unknown key specification {0:?} (expected rsa1024, rsa2048, rsa3072, rsa4096, p256, p384 or p521)"
    )]
    UnknownKeySpec(String),

    /// Key generation is not possible for this specification.
    #[error("cannot generate a {spec} key: {reason}")]
    KeyGeneration {
        /// The requested key.
        spec: KeySpec,
        /// Why it failed.
        reason: String,
    },

    /// A private key could not be encoded or decoded (PKCS#8).
    #[error("private key {what}: {reason}")]
    PrivateKey {
        /// What was being done (e.g. "PKCS#8 decoding").
        what: &'static str,
        /// Why it failed.
        reason: String,
    },

    /// Signing failed.
    #[error("signing {what} failed: {reason}")]
    Signing {
        /// What was being signed.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },

    /// DER encoding or decoding failed.
    #[error("DER error in {what}: {source}")]
    Der {
        /// Which structure or field.
        what: &'static str,
        /// The underlying error (with position).
        source: der::Error,
    },

    /// PEM decoding failed or the PEM holds the wrong kind of object.
    #[error("PEM error in {what}: {reason}")]
    Pem {
        /// Which object (e.g. "issuer certificate").
        what: String,
        /// Why it failed.
        reason: String,
    },

    /// Reading or writing a file failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// A time could not be represented in a certificate.
    #[error("time out of range for {field}")]
    TimeOutOfRange {
        /// Which field (notBefore, notAfter).
        field: &'static str,
    },

    /// A parameter is not acceptable.
    #[error("invalid parameter {field}: {reason}")]
    InvalidParameter {
        /// The parameter.
        field: &'static str,
        /// Why.
        reason: String,
    },

    /// The device name cannot be put into a certificate.
    #[error("invalid device name {device:?}: {reason}")]
    InvalidDeviceName {
        /// The device name.
        device: String,
        /// Why.
        reason: String,
    },

    /// A certificate cannot act as the LSC issuer.
    #[error("unusable issuer certificate {subject}: {reason}")]
    BadIssuer {
        /// The issuer certificate's subject.
        subject: String,
        /// Why.
        reason: String,
    },

    /// The issuing certificate has expired: an LSC issued under it would
    /// never be valid.
    #[error(
        "the issuing certificate {subject} expired at {not_after}: renew it before issuing certificates"
    )]
    IssuerExpired {
        /// The issuing certificate's subject.
        subject: String,
        /// Its notAfter as text.
        not_after: String,
    },

    // ---- phone public keys ----
    /// The public key is not a well-formed SubjectPublicKeyInfo.
    #[error("malformed public key: {reason}")]
    MalformedPublicKey {
        /// Why.
        reason: String,
    },

    /// The key algorithm is neither RSA nor EC.
    #[error("unsupported public key algorithm {oid}")]
    UnsupportedKeyAlgorithm {
        /// The algorithm OID.
        oid: String,
    },

    /// The EC curve is not P-256, P-384 or P-521.
    #[error("unsupported elliptic curve {oid}")]
    UnsupportedCurve {
        /// The curve OID (or a description when absent).
        oid: String,
    },

    /// The curve is supported by the protocol but not allowed by the key policy.
    #[error("curve {curve} is not allowed by the key policy")]
    CurveNotAllowed {
        /// The curve.
        curve: crate::keys::EcCurve,
    },

    /// The RSA modulus size is outside the policy.
    #[error("RSA key of {bits} bits is outside the allowed range {min}..={max}")]
    RsaKeySize {
        /// The key's modulus size.
        bits: usize,
        /// The policy's minimum.
        min: usize,
        /// The policy's maximum.
        max: usize,
    },

    /// The RSA public exponent is unacceptable.
    #[error("unacceptable RSA public exponent: {reason}")]
    RsaExponent {
        /// Why.
        reason: String,
    },

    /// The EC point does not decode or is not on the curve.
    #[error("EC public key is not a valid point on {curve}")]
    InvalidEcPoint {
        /// The curve.
        curve: crate::keys::EcCurve,
    },

    /// The phone sent a different key than the one requested.
    #[error("phone key is {actual} but {requested} was requested")]
    KeySpecMismatch {
        /// What KEY_GENERATE_REQUEST asked for.
        requested: KeySpec,
        /// What the phone sent.
        actual: KeySpec,
    },

    // ---- certificates presented by phones ----
    /// A certificate could not be parsed.
    #[error("cannot parse {what}: {source}")]
    CertificateParse {
        /// Which certificate.
        what: String,
        /// The underlying error (with position).
        source: der::Error,
    },

    /// A signature algorithm is not accepted.
    #[error("unsupported signature algorithm {oid} in {subject}")]
    UnsupportedSignatureAlgorithm {
        /// The algorithm OID.
        oid: String,
        /// The subject of the certificate carrying it.
        subject: String,
    },

    /// No trust anchor or intermediate issued the certificate.
    #[error("device {device}: certificate {subject} has no trusted issuer (issuer {issuer})")]
    UntrustedIssuer {
        /// The device.
        device: String,
        /// The certificate's subject.
        subject: String,
        /// The certificate's issuer name.
        issuer: String,
    },

    /// The chain would be longer than the policy allows.
    #[error("device {device}: certificate chain of {subject} longer than {max} intermediates")]
    PathTooLong {
        /// The device.
        device: String,
        /// The leaf's subject.
        subject: String,
        /// The maximum number of intermediates.
        max: usize,
    },

    /// A certificate in the chain is expired or not yet valid.
    #[error(
        "device {device}: certificate {subject} is not valid at this time ({not_before} .. {not_after})"
    )]
    CertificateNotValid {
        /// The device.
        device: String,
        /// The certificate's subject.
        subject: String,
        /// notBefore as text.
        not_before: String,
        /// notAfter as text.
        not_after: String,
    },

    /// The certificate does not belong to the device.
    #[error("device {device}: certificate {subject} does not belong to it ({reason})")]
    DeviceBinding {
        /// The device.
        device: String,
        /// The certificate's subject.
        subject: String,
        /// Why the binding failed.
        reason: String,
    },

    /// The key of a certificate presented for authentication is not
    /// acceptable (e.g. an RSA public exponent below 65537).
    #[error("device {device}: the key of certificate {subject} is not acceptable: {reason}")]
    UnacceptableCertificateKey {
        /// The device.
        device: String,
        /// The certificate's subject.
        subject: String,
        /// Why the key is refused.
        reason: String,
    },

    /// A proof signature is missing.
    #[error("device {device}: no proof signature was sent")]
    MissingProof {
        /// The device.
        device: String,
    },

    /// A proof signature did not verify.
    #[error("device {device}: {which} does not verify with the key of {subject}")]
    BadProofSignature {
        /// The device.
        device: String,
        /// Which signature.
        which: ProofSignature,
        /// The certificate whose key was used.
        subject: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = CaError> = std::result::Result<T, E>;

impl CaError {
    pub(crate) fn der(what: &'static str) -> impl FnOnce(der::Error) -> CaError {
        move |source| CaError::Der { what, source }
    }
}
