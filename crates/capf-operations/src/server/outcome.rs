//! How a server session ended.

use std::fmt;

use capf_auth::Refusal;
use capf_wire::Reason;

use crate::{CertificateRecord, DeviceName, RetrievedKind};

/// What the server session achieved or why it stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutcomeKind {
    /// Install/upgrade done: the phone stored this certificate.
    Installed {
        /// Serial (lower-case hex).
        serial_hex: String,
        /// Subject.
        subject: String,
    },
    /// Troubleshoot done: the certificates the phone returned, by kind
    /// (one trace file each).
    Retrieved(Vec<(RetrievedKind, CertificateRecord)>),
    /// Delete done.
    Deleted,
    /// Troubleshoot: the phone had no certificate to return.
    NothingRetrieved,
    /// The device had no operation scheduled.
    NothingToDo,
    /// The device is not configured.
    UnknownDevice,
    /// Another session holds the device.
    DeviceBusy,
    /// capf-auth refused (wrong string, lockout, deadline, certificate...).
    Refused(Refusal),
    /// The phone could not produce an acceptable key within the attempts.
    KeyGenerationFailed(String),
    /// The phone answered STORE_CERTIFICATE_REQUEST with a failure.
    PhoneDidNotStore(Reason),
    /// The phone answered DELETE_CERTIFICATE_REQUEST with a failure.
    PhoneDidNotDelete(Reason),
    /// The phone went silent.
    TimedOut {
        /// What the session was waiting for.
        waiting_for: &'static str,
    },
    /// The phone broke the protocol.
    ProtocolError(String),
    /// Issuing, or making a change durable, failed.
    ServerError(String),
}

impl OutcomeKind {
    /// A short stable name, for metrics and machine-readable logs.
    pub fn name(&self) -> &'static str {
        match self {
            OutcomeKind::Installed { .. } => "installed",
            OutcomeKind::Retrieved(_) => "retrieved",
            OutcomeKind::Deleted => "deleted",
            OutcomeKind::NothingRetrieved => "nothing-retrieved",
            OutcomeKind::NothingToDo => "nothing-to-do",
            OutcomeKind::UnknownDevice => "unknown-device",
            OutcomeKind::DeviceBusy => "device-busy",
            OutcomeKind::Refused(_) => "refused",
            OutcomeKind::KeyGenerationFailed(_) => "key-generation-failed",
            OutcomeKind::PhoneDidNotStore(_) => "phone-did-not-store",
            OutcomeKind::PhoneDidNotDelete(_) => "phone-did-not-delete",
            OutcomeKind::TimedOut { .. } => "timed-out",
            OutcomeKind::ProtocolError(_) => "protocol-error",
            OutcomeKind::ServerError(_) => "server-error",
        }
    }
}

/// The final outcome of a server session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionOutcome {
    /// The device, once the phone named one.
    pub device: Option<DeviceName>,
    /// What happened.
    pub kind: OutcomeKind,
    /// The END_SESSION reason sent; `None` when the server hung up without
    /// one (the device is busy in another session, perhaps on another
    /// server: the phone takes it as a lost connection and tries again,
    /// the next server of its list first).
    pub end_reason: Option<Reason>,
}

impl SessionOutcome {
    /// Whether the scheduled operation was carried out.
    pub fn is_success(&self) -> bool {
        matches!(
            self.kind,
            OutcomeKind::Installed { .. } | OutcomeKind::Retrieved(_) | OutcomeKind::Deleted
        )
    }
}

impl fmt::Display for OutcomeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutcomeKind::Installed {
                serial_hex,
                subject,
            } => {
                write!(f, "installed LSC serial {serial_hex} ({subject})")
            }
            OutcomeKind::Retrieved(certs) => {
                write!(f, "retrieved")?;
                for (kind, c) in certs {
                    write!(f, " {} serial {}", kind.as_str(), c.serial_hex)?;
                }
                Ok(())
            }
            OutcomeKind::Deleted => f.write_str("deleted the LSC"),
            OutcomeKind::NothingRetrieved => f.write_str("the phone returned no certificate"),
            OutcomeKind::NothingToDo => f.write_str("no operation scheduled"),
            OutcomeKind::UnknownDevice => f.write_str("unknown device"),
            OutcomeKind::DeviceBusy => f.write_str("device busy in another session"),
            OutcomeKind::Refused(r) => write!(f, "refused: {r}"),
            OutcomeKind::KeyGenerationFailed(why) => write!(f, "key generation failed: {why}"),
            OutcomeKind::PhoneDidNotStore(r) => {
                write!(f, "phone did not store the certificate ({r})")
            }
            OutcomeKind::PhoneDidNotDelete(r) => write!(f, "phone did not delete its LSC ({r})"),
            OutcomeKind::TimedOut { waiting_for } => {
                write!(f, "timed out waiting for {waiting_for}")
            }
            OutcomeKind::ProtocolError(why) => write!(f, "protocol error: {why}"),
            OutcomeKind::ServerError(why) => write!(f, "server error: {why}"),
        }
    }
}
