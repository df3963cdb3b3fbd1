//! Why a phone is refused, and the END_SESSION reason it gets.

use std::fmt;
use std::time::SystemTime;

use crate::{CertificateFailure, CertificateKind, FailureReason};

/// Why the server ends the session right after AUTH_RESPONSE.
///
/// [`Refusal::end_session_reason`] gives the END_SESSION reason. The
/// variants are for logs, the operator and tests; the phone only ever sees
/// 0, 7 or 9.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Refusal {
    /// The device name is not configured (END_SESSION 9). The caller
    /// produces this one ([`Decision::unknown_device`](crate::Decision::unknown_device)):
    /// without a device record there is no policy to consult.
    UnknownDevice,
    /// The phone authenticated but no operation is scheduled
    /// (END_SESSION 0).
    NoPendingOperation,
    /// Too many wrong authentication strings; refused whatever is presented
    /// until the operator sets a new string.
    LockedOut,
    /// The operation's "completes by" deadline has passed.
    DeadlinePassed {
        /// The deadline that passed.
        deadline: SystemTime,
    },
    /// Auth-string mode but no string is armed (never set, consumed by a
    /// successful operation, or disarmed by a lockout).
    NoAuthStringArmed,
    /// Auth-string mode and the phone sent no (or an empty) password. Not
    /// counted as a wrong guess.
    AuthStringMissing,
    /// Auth-string mode and the password does not match.
    WrongAuthString {
        /// The consecutive wrong-string count, this one included.
        failed_attempts: u32,
        /// Whether this attempt reached the limit and locked the device.
        locked: bool,
    },
    /// The presented certificate failed `capf-ca`'s checks.
    CertificateRejected {
        /// Which certificate.
        kind: CertificateKind,
        /// Why.
        failure: CertificateFailure,
    },
    /// "Existing certificate" mode and the phone presented neither its LSC
    /// nor a MIC (e.g. a 7940/7960, which has no MIC, and no LSC yet).
    NoCertificate,
}

impl Refusal {
    /// END_SESSION reason "no action": nothing to do.
    pub const END_SESSION_NO_ACTION: u8 = 0;
    /// END_SESSION reason "invalid element": generic failure or refusal.
    pub const END_SESSION_FAILURE: u8 = 7;
    /// END_SESSION reason "unknown device".
    pub const END_SESSION_UNKNOWN_DEVICE: u8 = 9;

    /// The END_SESSION REASON to send: 0 for
    /// [`NoPendingOperation`](Refusal::NoPendingOperation), 9 for
    /// [`UnknownDevice`](Refusal::UnknownDevice), 7 for everything else.
    #[must_use]
    pub const fn end_session_reason(&self) -> u8 {
        match self {
            Refusal::NoPendingOperation => Self::END_SESSION_NO_ACTION,
            Refusal::UnknownDevice => Self::END_SESSION_UNKNOWN_DEVICE,
            _ => Self::END_SESSION_FAILURE,
        }
    }

    /// A short stable name, for metrics and machine-readable logs:
    /// `unknown-device`, `no-pending-operation`, `locked-out`,
    /// `deadline-passed`, `no-string-armed`, `string-missing`,
    /// `wrong-string`, `certificate-rejected`, `no-certificate`.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            Refusal::UnknownDevice => "unknown-device",
            Refusal::NoPendingOperation => "no-pending-operation",
            Refusal::LockedOut => "locked-out",
            Refusal::DeadlinePassed { .. } => "deadline-passed",
            Refusal::NoAuthStringArmed => "no-string-armed",
            Refusal::AuthStringMissing => "string-missing",
            Refusal::WrongAuthString { .. } => "wrong-string",
            Refusal::CertificateRejected { .. } => "certificate-rejected",
            Refusal::NoCertificate => "no-certificate",
        }
    }

    /// The failure to record on the operation, for refusals that nothing
    /// but the operator can change: lockout, deadline, no string armed, no
    /// certificate presented. `None` leaves the operation pending (a wrong
    /// string below the limit, a rejected certificate, a missing password).
    #[must_use]
    pub const fn failure_reason(&self) -> Option<FailureReason> {
        match self {
            Refusal::LockedOut => Some(FailureReason::LockedOut),
            Refusal::DeadlinePassed { .. } => Some(FailureReason::DeadlinePassed),
            Refusal::NoAuthStringArmed => Some(FailureReason::NoAuthString),
            Refusal::NoCertificate => Some(FailureReason::NoCertificate),
            Refusal::WrongAuthString { locked: true, .. } => Some(FailureReason::LockedOut),
            _ => None,
        }
    }

    /// True when the phone failed to prove its identity (as opposed to a
    /// refusal by policy: unknown device, nothing to do, locked out,
    /// deadline passed).
    #[must_use]
    pub const fn is_authentication_failure(&self) -> bool {
        !matches!(
            self,
            Refusal::UnknownDevice
                | Refusal::NoPendingOperation
                | Refusal::LockedOut
                | Refusal::DeadlinePassed { .. }
        )
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::UnknownDevice => f.write_str("unknown device"),
            Refusal::NoPendingOperation => f.write_str("no pending operation"),
            Refusal::LockedOut => f.write_str(
                "locked out after too many wrong authentication strings; \
                 the operator must set a new string",
            ),
            Refusal::DeadlinePassed { .. } => {
                f.write_str("the operation's completion deadline has passed")
            }
            Refusal::NoAuthStringArmed => f.write_str("no authentication string is set"),
            Refusal::AuthStringMissing => f.write_str("the phone sent no authentication string"),
            Refusal::WrongAuthString {
                failed_attempts,
                locked,
            } => {
                write!(
                    f,
                    "wrong authentication string ({failed_attempts} in a row)"
                )?;
                if *locked {
                    f.write_str("; the device is now locked out")?;
                }
                Ok(())
            }
            Refusal::CertificateRejected { kind, failure } => {
                write!(f, "{kind} rejected: {failure}")
            }
            Refusal::NoCertificate => f.write_str(
                "the phone presented neither its LSC nor a MIC; \
                 a phone without either needs an authentication string or the null string",
            ),
        }
    }
}
