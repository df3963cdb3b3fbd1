//! How a phone session ended, and what it changed on the phone.

use std::fmt;

use bytes::Bytes;
use capf_wire::{Command, KeyGenerateRequest, Reason};

use super::events::KeyGenFailure;
use super::status::{PhoneOperation, PhoneStep};

/// The final result of a phone session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PhoneOutcome {
    /// The operation ran and the server closed the session with reason 0
    /// or 1.
    Succeeded(PhoneSuccess),
    /// Anything else.
    Failed(PhoneFailure),
}

/// A session that ended well.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PhoneSuccess {
    /// A new LSC was stored (install/upgrade).
    Installed {
        /// The new LSC, DER.
        certificate_der: Bytes,
    },
    /// The phone answered a troubleshoot request.
    Fetched {
        /// The certificate returned, or `None` when the phone had no LSC
        /// (it answered REASON=7; the server decides whether that is a
        /// failure).
        returned: Option<Bytes>,
    },
    /// The phone answered a delete request.
    Deleted {
        /// Whether there was an LSC to delete (REASON=1) or not (REASON=7).
        had_one: bool,
    },
    /// END_SESSION (reason 0 or 1) right after authentication: the server
    /// had no operation scheduled.
    NothingScheduled {
        /// The END_SESSION reason.
        reason: Reason,
    },
}

impl PhoneSuccess {
    /// The operation this was, if any.
    #[must_use]
    pub fn operation(&self) -> Option<PhoneOperation> {
        match self {
            PhoneSuccess::Installed { .. } => Some(PhoneOperation::InstallUpgrade),
            PhoneSuccess::Fetched { .. } => Some(PhoneOperation::Troubleshoot),
            PhoneSuccess::Deleted { .. } => Some(PhoneOperation::Delete),
            PhoneSuccess::NothingScheduled { .. } => None,
        }
    }
}

impl fmt::Display for PhoneSuccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PhoneSuccess::Installed { .. } => f.write_str("LSC installed"),
            PhoneSuccess::Fetched { returned: Some(_) } => f.write_str("LSC sent to the server"),
            PhoneSuccess::Fetched { returned: None } => f.write_str("no LSC to send"),
            PhoneSuccess::Deleted { had_one: true } => f.write_str("LSC deleted"),
            PhoneSuccess::Deleted { had_one: false } => f.write_str("no LSC to delete"),
            PhoneSuccess::NothingScheduled { .. } => f.write_str("no scheduled operation"),
        }
    }
}

/// A session that ended badly: why, where, and what it changed anyway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhoneFailure {
    /// Why it failed.
    pub cause: FailureCause,
    /// The step the session was at.
    pub step: PhoneStep,
    /// What the phone did before it failed (an LSC may already be stored
    /// when END_SESSION fails to come).
    pub lsc_change: LscChange,
}

impl fmt::Display for PhoneFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.cause, self.step)?;
        match self.lsc_change {
            LscChange::Unchanged => Ok(()),
            LscChange::Installed { .. } => f.write_str("; the new LSC was stored"),
            LscChange::Deleted => f.write_str("; the LSC was deleted"),
        }
    }
}

/// Why a phone session failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailureCause {
    /// END_SESSION right after authentication with a reason other than 0,
    /// 1 or 9: a wrong string, a refused certificate, or an operation the
    /// server will not run (capfd and CUCM send 7).
    Refused(Reason),
    /// END_SESSION reason 9: the server does not know this device.
    UnknownDevice,
    /// END_SESSION in the middle of an operation, or with a failure reason
    /// after the phone's answer.
    EndedByServer(Reason),
    /// No server message before the reply timeout.
    TimedOut,
    /// The runtime reported the connection lost.
    ConnectionLost,
    /// The server broke the protocol.
    ProtocolError(ProtocolViolation),
    /// The user stopped the operation.
    Aborted,
    /// The phone could not sign its authentication proofs.
    CredentialsUnusable(String),
    /// The runtime could not generate the key; the server ended the session
    /// instead of asking again.
    KeyGenerationFailed(KeyGenFailure),
    /// The server asked for a key the phone cannot make (unknown KEY_TYPE
    /// or CURVE); the phone answered REASON=7.
    UnsupportedKeyRequest(KeyGenerateRequest),
    /// The runtime could not store the certificate; the phone answered
    /// REASON=7.
    StoreFailed,
}

impl fmt::Display for FailureCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureCause::Refused(r) => write!(f, "refused by the server (reason {r})"),
            FailureCause::UnknownDevice => f.write_str("unknown device"),
            FailureCause::EndedByServer(r) => write!(f, "server ended the session (reason {r})"),
            FailureCause::TimedOut => f.write_str("timed out"),
            FailureCause::ConnectionLost => f.write_str("connection lost"),
            FailureCause::ProtocolError(v) => write!(f, "protocol error: {v}"),
            FailureCause::Aborted => f.write_str("stopped by the user"),
            FailureCause::CredentialsUnusable(e) => write!(f, "cannot sign the proofs: {e}"),
            FailureCause::KeyGenerationFailed(e) => write!(f, "key generation failed: {e}"),
            FailureCause::UnsupportedKeyRequest(r) => write!(
                f,
                "unsupported key request (type {:?}, curve {:?})",
                r.key_type, r.curve
            ),
            FailureCause::StoreFailed => f.write_str("the certificate could not be stored"),
        }
    }
}

/// How the server broke the protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProtocolViolation {
    /// A command that is not allowed at this step (including commands
    /// nobody uses, and phone-to-server commands).
    UnexpectedMessage(Command),
    /// A message with another session id than AUTH_REQUEST's.
    SessionIdMismatch {
        /// The id AUTH_REQUEST set.
        expected: u32,
        /// The id the message carried.
        found: u32,
    },
    /// A frame the runtime could not decode (its error text).
    Malformed(String),
}

impl fmt::Display for ProtocolViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolViolation::UnexpectedMessage(c) => write!(f, "unexpected {c}"),
            ProtocolViolation::SessionIdMismatch { expected, found } => {
                write!(f, "session id {found}, expected {expected}")
            }
            ProtocolViolation::Malformed(e) => write!(f, "malformed message: {e}"),
        }
    }
}

/// What a session changed in the phone's LSC slot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum LscChange {
    /// Nothing.
    #[default]
    Unchanged,
    /// A new LSC was stored.
    Installed {
        /// The new LSC, DER.
        certificate_der: Bytes,
    },
    /// The LSC was deleted.
    Deleted,
}

impl PhoneOutcome {
    /// Whether the session succeeded.
    #[must_use]
    pub fn is_success(&self) -> bool {
        matches!(self, PhoneOutcome::Succeeded(_))
    }

    /// What the session changed in the phone's LSC slot.
    #[must_use]
    pub fn lsc_change(&self) -> LscChange {
        match self {
            PhoneOutcome::Succeeded(PhoneSuccess::Installed { certificate_der }) => {
                LscChange::Installed {
                    certificate_der: certificate_der.clone(),
                }
            }
            PhoneOutcome::Succeeded(PhoneSuccess::Deleted { had_one: true }) => LscChange::Deleted,
            PhoneOutcome::Succeeded(_) => LscChange::Unchanged,
            PhoneOutcome::Failed(f) => f.lsc_change.clone(),
        }
    }

    /// Whether the phone holds an LSC after this session, given whether it
    /// held one before (shown as "Installed" / "Not Installed").
    #[must_use]
    pub fn lsc_installed_after(&self, before: bool) -> bool {
        match self.lsc_change() {
            LscChange::Unchanged => before,
            LscChange::Installed { .. } => true,
            LscChange::Deleted => false,
        }
    }

    /// Whether this is a communication failure worth retrying: a
    /// timeout or a lost connection. Answers from the server (refused,
    /// unknown device, nothing scheduled), protocol errors (the same server
    /// will break the protocol again), local failures and a user's abort
    /// are final.
    #[must_use]
    pub fn is_communication_failure(&self) -> bool {
        matches!(
            self,
            PhoneOutcome::Failed(PhoneFailure {
                cause: FailureCause::TimedOut | FailureCause::ConnectionLost,
                ..
            })
        )
    }
}

impl fmt::Display for PhoneOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PhoneOutcome::Succeeded(s) => s.fmt(f),
            PhoneOutcome::Failed(e) => e.fmt(f),
        }
    }
}
