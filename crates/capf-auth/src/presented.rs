//! What a phone presented in AUTH_RESPONSE, as the caller understood it.

use std::fmt;

/// The proofs a phone presented, after the caller decoded AUTH_RESPONSE and
/// had `capf-ca` check any certificate.
///
/// This crate never sees wire bytes or certificates: the caller passes the
/// PASSWORD value and what `capf-ca` concluded about the certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Presented<'a> {
    /// The PASSWORD element's value without its NUL terminator, or `None`
    /// if the element was absent. An empty password (the single `00` byte
    /// a null-string phone sends) is `Some(b"")`; absent and empty are
    /// treated alike.
    pub password: Option<&'a [u8]>,
    /// The certificate the phone authenticated with, if any.
    pub certificate: Option<PresentedCertificate>,
}

impl<'a> Presented<'a> {
    /// Nothing at all.
    pub const NOTHING: Presented<'static> = Presented {
        password: None,
        certificate: None,
    };

    /// Only a password (no certificate).
    #[must_use]
    pub const fn password(password: &'a [u8]) -> Self {
        Presented {
            password: Some(password),
            certificate: None,
        }
    }

    /// Only a certificate, as `capf-ca` judged it.
    #[must_use]
    pub const fn certificate(kind: CertificateKind, verification: Verification) -> Self {
        Presented {
            password: None,
            certificate: Some(PresentedCertificate { kind, verification }),
        }
    }

    /// The password as given, unless it is absent, empty, or a lone NUL.
    pub(crate) fn non_empty_password(&self) -> Option<&'a [u8]> {
        let password = self.password?;
        let content = password.strip_suffix(&[0]).unwrap_or(password);
        (!content.is_empty()).then_some(password)
    }
}

/// A certificate presented for "by existing certificate" authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PresentedCertificate {
    /// LSC or MIC, as `capf-ca` classified it (by the issuer that signed
    /// it), not the wire's certificate-type byte, which peers always set
    /// to 1. A certificate that chains to no trusted issuer is reported as
    /// the kind the phone claimed.
    pub kind: CertificateKind,
    /// What `capf-ca` concluded.
    pub verification: Verification,
}

/// The two kinds of phone certificate that can authenticate a phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertificateKind {
    /// Locally significant certificate, issued by this CAPF.
    Lsc,
    /// Manufacturer-installed certificate.
    Mic,
}

impl CertificateKind {
    /// `"LSC"` or `"MIC"`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            CertificateKind::Lsc => "LSC",
            CertificateKind::Mic => "MIC",
        }
    }
}

impl fmt::Display for CertificateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What `capf-ca` concluded about a presented certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verification {
    /// The certificate chains to a configured trust anchor, the phone's
    /// signatures over the authentication data verify with its key, and the
    /// certificate is bound to the device name that was presented.
    VerifiedForDevice,
    /// Some check failed.
    Failed(CertificateFailure),
}

/// Why `capf-ca` rejected a presented certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertificateFailure {
    /// It does not chain to a trusted issuer.
    UntrustedIssuer,
    /// The phone's signature over the authentication data does not verify.
    BadSignature,
    /// It is valid but names another device.
    NotBoundToDevice,
    /// It could not be parsed, uses an unsupported or weak key, or its
    /// proof names an unknown hash.
    Malformed,
    /// It is past its notAfter date (or before its notBefore).
    Expired,
    /// An LSC from a trusted issuer that is not the device's LSC on record:
    /// replaced by a later one, deleted, or never delivered to this device.
    NotOnRecord,
    /// The device's LSC on record, revoked by the operator.
    Revoked,
}

impl CertificateFailure {
    /// A short human description.
    #[must_use]
    pub const fn describe(self) -> &'static str {
        match self {
            CertificateFailure::UntrustedIssuer => "not issued by a trusted issuer",
            CertificateFailure::BadSignature => "the phone's signature does not verify",
            CertificateFailure::NotBoundToDevice => "issued to another device",
            CertificateFailure::Malformed => "malformed or unsupported",
            CertificateFailure::Expired => "expired or not yet valid",
            CertificateFailure::NotOnRecord => {
                "not the device's LSC on record (replaced, deleted or never issued to it)"
            }
            CertificateFailure::Revoked => "revoked by the operator",
        }
    }
}

impl fmt::Display for CertificateFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}
