//! The LSC profile: validity, clock-skew allowance and key usage choices.

use std::time::Duration;

/// How long an issued certificate lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertValidity {
    /// Whole years of 365 days (the CUCM service parameter is in years).
    Years(u32),
    /// Days (capfd's `-d`).
    Days(u32),
}

impl CertValidity {
    /// The validity as a duration.
    pub fn as_duration(self) -> Duration {
        const DAY: u64 = 86_400;
        match self {
            Self::Years(y) => Duration::from_secs(u64::from(y) * 365 * DAY),
            Self::Days(d) => Duration::from_secs(u64::from(d) * DAY),
        }
    }
}

/// Choices for the LSCs an [`Issuer`](crate::Issuer) signs.
///
/// The fixed parts of the profile are: basicConstraints CA:FALSE (critical),
/// extended key usage serverAuth, clientAuth, ipsecEndSystem, subject and
/// authority key identifiers, a SHA-256 signature, no subjectAltName.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LscProfile {
    /// notAfter = now + validity, capped at the issuing certificate's
    /// notAfter: an LSC never outlives its issuer, so with an issuer that
    /// expires sooner the LSC ends when the issuer does. Default 5 years.
    pub validity: CertValidity,
    /// notBefore = now - backdate, for phones whose clock is behind. Default 10 minutes.
    pub backdate: Duration,
    /// Add keyAgreement to the key usage of EC keys (besides digitalSignature). Default true.
    pub ec_key_agreement: bool,
    /// Copy O, OU, L, ST and C from the issuer's subject after `CN=<device>`. Default true.
    pub copy_issuer_attributes: bool,
}

impl Default for LscProfile {
    fn default() -> Self {
        Self {
            validity: CertValidity::Years(5),
            backdate: Duration::from_secs(600),
            ec_key_agreement: true,
            copy_issuer_attributes: true,
        }
    }
}
