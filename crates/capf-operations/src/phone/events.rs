//! What the phone session asks of its runtime, and the runtime's answer to
//! a failed key generation.

use std::fmt;

use bytes::Bytes;
use capf_ca::{EcCurve, KeySpec};
use capf_wire::{Curve, RequestedKey};

/// Work for the runtime. Each one needs an answer through the matching
/// [`PhoneSession`](super::PhoneSession) method, except
/// [`PhoneEvent::Finished`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PhoneEvent {
    /// Generate a key pair of this kind, keep the private key, and answer
    /// with [`key_generated`](super::PhoneSession::key_generated) (the DER
    /// SubjectPublicKeyInfo, or a failure). Slow for RSA; may run at low
    /// priority.
    GenerateKey(KeySpec),
    /// Store this certificate as the phone's LSC, with the private key of
    /// the last generated key pair, and answer with
    /// [`certificate_stored`](super::PhoneSession::certificate_stored).
    StoreCertificate {
        /// The new LSC, DER, as the server sent it.
        certificate_der: Bytes,
    },
    /// Delete the phone's LSC (the phone falls back to its MIC) and answer
    /// with [`certificate_deleted`](super::PhoneSession::certificate_deleted).
    DeleteCertificate,
    /// The session is over: send what [`poll_transmit`](super::PhoneSession::poll_transmit)
    /// still yields, then close the connection. Read the result with
    /// [`outcome`](super::PhoneSession::outcome).
    Finished,
}

/// Why the runtime could not generate the requested key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyGenFailure {
    /// A description for logs and the status display.
    pub reason: String,
}

impl KeyGenFailure {
    /// A failure with this description.
    pub fn new(reason: impl Into<String>) -> Self {
        KeyGenFailure {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for KeyGenFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// The key spec for what the server asked, or `None` for a curve code the
/// phone does not know.
pub(super) fn key_spec(requested: RequestedKey) -> Option<KeySpec> {
    match requested {
        RequestedKey::Rsa(bits) => Some(KeySpec::Rsa { bits }),
        RequestedKey::Ec(Curve::P256) => Some(KeySpec::Ec(EcCurve::P256)),
        RequestedKey::Ec(Curve::P384) => Some(KeySpec::Ec(EcCurve::P384)),
        RequestedKey::Ec(Curve::P521) => Some(KeySpec::Ec(EcCurve::P521)),
        RequestedKey::Ec(_) => None,
    }
}
