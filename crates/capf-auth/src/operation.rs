//! The certificate operation a device is scheduled for (install/upgrade,
//! delete, troubleshoot), and its status as the operator sees it.

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use crate::AuthError;

/// The one certificate operation scheduled for a device.
///
/// The phone never says what it wants; the operator schedules this and the
/// server runs it after authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Operation {
    /// No pending operation (the default): the session ends with
    /// END_SESSION reason 0.
    #[default]
    None,
    /// Install a new LSC or upgrade (replace) the existing one.
    InstallUpgrade,
    /// Delete the phone's LSC.
    Delete,
    /// Retrieve the phone's LSC and/or MIC for inspection (one trace
    /// file per retrieved certificate).
    Troubleshoot,
}

impl Operation {
    /// Every operation, in the order of the Cisco admin page.
    pub const ALL: [Operation; 4] = [
        Operation::None,
        Operation::InstallUpgrade,
        Operation::Delete,
        Operation::Troubleshoot,
    ];

    const EXPECTED: &'static str = "none, install, delete, troubleshoot";

    /// The stable machine name: `none`, `install`, `delete`, `troubleshoot`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Operation::None => "none",
            Operation::InstallUpgrade => "install",
            Operation::Delete => "delete",
            Operation::Troubleshoot => "troubleshoot",
        }
    }

    /// The human label of the Cisco admin page: "No Pending Operation",
    /// "Install/Upgrade", "Delete", "Troubleshoot".
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Operation::None => "No Pending Operation",
            Operation::InstallUpgrade => "Install/Upgrade",
            Operation::Delete => "Delete",
            Operation::Troubleshoot => "Troubleshoot",
        }
    }

    /// True for every operation except [`Operation::None`].
    #[must_use]
    pub const fn is_pending(self) -> bool {
        !matches!(self, Operation::None)
    }

    /// Whether the operator may schedule this operation for a device with
    /// these certificates on record (delete and troubleshoot are
    /// offered only when the phone has a certificate).
    ///
    /// * none, install/upgrade: always.
    /// * delete: needs an LSC (it deletes the LSC; a MIC cannot be deleted).
    /// * troubleshoot: needs an LSC or a MIC (it retrieves them).
    ///
    /// # Errors
    /// [`AuthError::OperationNeedsCertificate`] naming what is missing.
    pub fn check_schedulable(self, certificates: Certificates) -> Result<(), AuthError> {
        match self {
            Operation::None | Operation::InstallUpgrade => Ok(()),
            Operation::Delete if certificates.lsc => Ok(()),
            Operation::Delete => Err(AuthError::OperationNeedsCertificate {
                operation: self,
                needs: "LSC",
            }),
            Operation::Troubleshoot if certificates.lsc || certificates.mic => Ok(()),
            Operation::Troubleshoot => Err(AuthError::OperationNeedsCertificate {
                operation: self,
                needs: "LSC or MIC",
            }),
        }
    }

    /// [`Operation::check_schedulable`] as a yes/no, e.g. to decide which
    /// choices to offer.
    #[must_use]
    pub fn is_schedulable(self, certificates: Certificates) -> bool {
        self.check_schedulable(certificates).is_ok()
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Operation {
    type Err = AuthError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Operation::ALL
            .into_iter()
            .find(|op| op.name() == s)
            .ok_or_else(|| AuthError::UnknownName {
                kind: "certificate operation",
                name: s.to_owned(),
                expected: Operation::EXPECTED,
            })
    }
}

/// Which certificates the device is known to hold, according to the
/// server's records (issued or retrieved LSC, retrieved or declared MIC).
///
/// `false` means "not on record", which may also mean "unknown".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Certificates {
    /// The device holds an LSC.
    pub lsc: bool,
    /// The device holds a MIC.
    pub mic: bool,
}

impl Certificates {
    /// Neither certificate on record.
    pub const NONE: Certificates = Certificates {
        lsc: false,
        mic: false,
    };
}

/// Why an operation ended as failed by policy (not by the phone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureReason {
    /// Too many wrong authentication strings; the operator must set a new
    /// string.
    LockedOut,
    /// The "operation completes by" deadline passed.
    DeadlinePassed,
    /// The phone could not produce an acceptable key within the attempts
    /// of a session.
    KeyGenerationFailed,
    /// "Existing certificate" mode and the phone presented no certificate.
    NoCertificate,
    /// Authentication-string mode and no string is armed.
    NoAuthString,
}

impl FailureReason {
    /// A short human description, for the operator.
    #[must_use]
    pub const fn describe(self) -> &'static str {
        match self {
            FailureReason::LockedOut => "too many wrong authentication strings",
            FailureReason::DeadlinePassed => "the operation's completion deadline passed",
            FailureReason::KeyGenerationFailed => "the phone could not generate an acceptable key",
            FailureReason::NoCertificate => "the phone presented neither its LSC nor a MIC",
            FailureReason::NoAuthString => "no authentication string is set",
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// The certificate operation status shown to the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OperationStatus {
    /// Nothing has been scheduled or has happened yet.
    #[default]
    Idle,
    /// The scheduled operation has not completed yet (retries allowed).
    Pending,
    /// The operation completed; the device's operation is now none.
    Succeeded {
        /// What succeeded.
        operation: Operation,
        /// When.
        at: SystemTime,
    },
    /// The operation failed for a reason only the operator can change (a
    /// lockout, the deadline, no string, no certificate, no acceptable
    /// key). It stays scheduled: a phone may still complete it once the
    /// cause is gone (a lockout and a passed deadline refuse it until the
    /// operator acts).
    Failed {
        /// What failed.
        operation: Operation,
        /// Why.
        reason: FailureReason,
        /// When the failure was recorded.
        at: SystemTime,
    },
}

impl OperationStatus {
    /// The status text: "`<operation>` pending", "`<operation>` failed",
    /// "`<operation>` successful", or "" when idle. `scheduled` is the
    /// device's current operation (used for "pending").
    #[must_use]
    pub fn label(&self, scheduled: Operation) -> String {
        match self {
            OperationStatus::Idle => String::new(),
            OperationStatus::Pending => format!("{} pending", scheduled.label()),
            OperationStatus::Succeeded { operation, .. } => {
                format!("{} successful", operation.label())
            }
            OperationStatus::Failed { operation, .. } => format!("{} failed", operation.label()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels() {
        for op in Operation::ALL {
            assert_eq!(op.to_string().parse::<Operation>().unwrap(), op);
        }
        assert_eq!(Operation::InstallUpgrade.to_string(), "install");
        assert_eq!(Operation::None.label(), "No Pending Operation");
        assert!("fetch".parse::<Operation>().is_err());
    }

    #[test]
    fn delete_and_troubleshoot_need_a_certificate() {
        let none = Certificates::NONE;
        let lsc = Certificates {
            lsc: true,
            mic: false,
        };
        let mic = Certificates {
            lsc: false,
            mic: true,
        };
        assert!(Operation::None.is_schedulable(none));
        assert!(Operation::InstallUpgrade.is_schedulable(none));
        assert!(!Operation::Delete.is_schedulable(none));
        assert!(!Operation::Delete.is_schedulable(mic));
        assert!(Operation::Delete.is_schedulable(lsc));
        assert!(!Operation::Troubleshoot.is_schedulable(none));
        assert!(Operation::Troubleshoot.is_schedulable(mic));
        assert!(Operation::Troubleshoot.is_schedulable(lsc));
        assert_eq!(
            Operation::Delete.check_schedulable(mic),
            Err(AuthError::OperationNeedsCertificate {
                operation: Operation::Delete,
                needs: "LSC"
            })
        );
    }

    #[test]
    fn status_labels() {
        let at = SystemTime::UNIX_EPOCH;
        assert_eq!(
            OperationStatus::Pending.label(Operation::Delete),
            "Delete pending"
        );
        assert_eq!(
            OperationStatus::Succeeded {
                operation: Operation::InstallUpgrade,
                at
            }
            .label(Operation::None),
            "Install/Upgrade successful"
        );
        assert_eq!(
            OperationStatus::Failed {
                operation: Operation::Troubleshoot,
                reason: FailureReason::LockedOut,
                at
            }
            .label(Operation::Troubleshoot),
            "Troubleshoot failed"
        );
    }
}
