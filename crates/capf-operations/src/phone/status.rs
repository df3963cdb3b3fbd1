//! Where a phone session is, as the phone's user sees it.

use std::fmt;

use super::outcome::{PhoneFailure, PhoneSuccess};

/// The step a phone session is at: what it waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PhoneStep {
    /// Waiting for the server's AUTH_REQUEST (the first message).
    AwaitingAuthRequest,
    /// AUTH_RESPONSE sent; waiting for the server to say what to do:
    /// KEY_GENERATE, FETCH or DELETE request, or END_SESSION.
    AwaitingInstruction,
    /// Waiting for the runtime to generate the key pair.
    GeneratingKey,
    /// KEY_GENERATE_RESPONSE sent; waiting for STORE_CERTIFICATE_REQUEST
    /// (or another KEY_GENERATE_REQUEST).
    AwaitingCertificate,
    /// Waiting for the runtime to store the new certificate.
    StoringCertificate,
    /// Waiting for the runtime to delete the LSC.
    DeletingCertificate,
    /// The phone has answered; waiting for END_SESSION.
    AwaitingEndSession,
}

impl fmt::Display for PhoneStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PhoneStep::AwaitingAuthRequest => "waiting for AUTH_REQUEST",
            PhoneStep::AwaitingInstruction => "waiting for the server's instruction",
            PhoneStep::GeneratingKey => "generating the key pair",
            PhoneStep::AwaitingCertificate => "waiting for STORE_CERTIFICATE_REQUEST",
            PhoneStep::StoringCertificate => "storing the certificate",
            PhoneStep::DeletingCertificate => "deleting the certificate",
            PhoneStep::AwaitingEndSession => "waiting for END_SESSION",
        })
    }
}

/// The operation the server asked for (known after AUTH_RESPONSE).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PhoneOperation {
    /// Install or upgrade the LSC (KEY_GENERATE_REQUEST).
    InstallUpgrade,
    /// Troubleshoot: return the LSC (FETCH_CERTIFICATE_REQUEST).
    Troubleshoot,
    /// Delete the LSC (DELETE_CERTIFICATE_REQUEST).
    Delete,
}

impl fmt::Display for PhoneOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PhoneOperation::InstallUpgrade => "Install/Upgrade",
            PhoneOperation::Troubleshoot => "Troubleshoot",
            PhoneOperation::Delete => "Delete",
        })
    }
}

/// What the phone shows while and after a session runs:
/// "Pending" after Submit, then success or failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PhoneStatus {
    /// Still running.
    Pending {
        /// What the session waits for.
        step: PhoneStep,
        /// The operation, once the server has said which.
        operation: Option<PhoneOperation>,
    },
    /// Finished well.
    Succeeded(PhoneSuccess),
    /// Finished badly.
    Failed(PhoneFailure),
}

impl PhoneStatus {
    /// Whether the session is still running.
    #[must_use]
    pub fn is_pending(&self) -> bool {
        matches!(self, PhoneStatus::Pending { .. })
    }
}

impl fmt::Display for PhoneStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PhoneStatus::Pending {
                operation: Some(op),
                ..
            } => write!(f, "{op} pending"),
            PhoneStatus::Pending {
                operation: None, ..
            } => f.write_str("Pending"),
            PhoneStatus::Succeeded(s) => write!(f, "Succeeded: {s}"),
            PhoneStatus::Failed(e) => write!(f, "Failed: {e}"),
        }
    }
}
