//! What a session asks the store to make durable, and how a device record
//! changes when it is applied. Every store applies commits with
//! [`Device::apply_commit`] inside one transaction, so the rules live here,
//! once.

use std::time::SystemTime;

use capf_auth::{FailureReason, Grant, PolicyUpdate};

use crate::{CertificateRecord, Device, DeviceName, LastError, RetrievedKind};

/// A certificate CAPF issued, recorded before it is sent to the phone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedRecord {
    /// The device it was issued to.
    pub device: DeviceName,
    /// The certificate and its fields.
    pub certificate: CertificateRecord,
    /// When it was issued.
    pub issued_at: SystemTime,
    /// Whether the phone confirmed it stored it.
    pub delivered: bool,
}

/// The work a completed operation did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompletedWork {
    /// Install/upgrade: the phone stored this certificate (by serial).
    Installed {
        /// Serial number (lower-case hex) of the issued certificate.
        serial_hex: String,
    },
    /// Troubleshoot: the certificates the phone returned, by what
    /// verification found them to be.
    Retrieved(Vec<(RetrievedKind, CertificateRecord)>),
    /// Delete: the phone deleted its LSC (or had none).
    Deleted,
}

/// One durable change a session needs before it may go on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionCommit {
    /// What an authentication decision changes: counters, lock and
    /// failure marks, the refusal as the device's last error, and the MIC
    /// that authenticated the phone; made durable before the phone hears
    /// the answer.
    Policy {
        /// What capf-auth decided to change.
        update: PolicyUpdate,
        /// A reason to record as the device's last error, if refused.
        refusal: Option<String>,
        /// A verified MIC that authenticated the phone (or passed every
        /// check before another refusal), to keep as the MIC on record.
        mic: Option<CertificateRecord>,
        /// When.
        at: SystemTime,
    },
    /// A freshly issued LSC, not yet delivered: made durable before the
    /// certificate is sent (no certificate reaches a phone without its
    /// record).
    Issued(IssuedRecord),
    /// The phone confirmed: operation successful, auth string consumed,
    /// certificates updated, all in one transaction.
    Completed {
        /// The authorisation the session ran under (carries whether the
        /// string is consumed).
        grant: Grant,
        /// What was done.
        work: CompletedWork,
        /// When.
        at: SystemTime,
    },
    /// The session ended without completing the operation; it stays
    /// scheduled for the next session (unless policy marked it failed).
    Failed {
        /// Why, for the operator.
        reason: String,
        /// Key-generation failures so far in this operation, if that moved.
        key_generation_failures: Option<u32>,
        /// Mark the operation failed for this reason (it stays scheduled);
        /// `None` leaves it pending.
        operation_failed: Option<FailureReason>,
        /// When.
        at: SystemTime,
    },
}

impl SessionCommit {
    /// A short name for logs and the audit trail.
    pub fn kind(&self) -> &'static str {
        match self {
            SessionCommit::Policy { .. } => "policy",
            SessionCommit::Issued(_) => "issued",
            SessionCommit::Completed { .. } => "completed",
            SessionCommit::Failed { .. } => "failed",
        }
    }
}

impl Device {
    /// Applies a commit to this record. `issued` is the store's record of
    /// the certificate a [`CompletedWork::Installed`] names (by serial);
    /// without it the LSC field is left as it was.
    pub fn apply_commit(&mut self, commit: &SessionCommit, issued: Option<&IssuedRecord>) {
        match commit {
            SessionCommit::Policy {
                update,
                refusal,
                mic,
                at,
            } => {
                self.policy.apply(update);
                if let Some(reason) = refusal {
                    self.last_error = Some(LastError {
                        reason: reason.clone(),
                        at: *at,
                    });
                }
                if let Some(mic) = mic {
                    self.mic = Some(mic.clone());
                }
            }
            SessionCommit::Issued(_) => {}
            SessionCommit::Completed { grant, work, at } => {
                let operation_still_scheduled = self.policy.operation == grant.operation;
                self.policy.on_operation_succeeded(grant, *at);
                if operation_still_scheduled {
                    match work {
                        CompletedWork::Installed { serial_hex } => {
                            if let Some(record) =
                                issued.filter(|r| &r.certificate.serial_hex == serial_hex)
                            {
                                self.lsc = Some(record.certificate.clone());
                                self.lsc_revoked = None;
                            }
                        }
                        CompletedWork::Retrieved(certs) => {
                            // Only a verified MIC changes the record: a
                            // verified LSC is the one on record already,
                            // and an unverified certificate proves nothing.
                            for (kind, cert) in certs {
                                if *kind == RetrievedKind::Mic {
                                    self.mic = Some(cert.clone());
                                }
                            }
                        }
                        CompletedWork::Deleted => {
                            self.lsc = None;
                            self.lsc_revoked = None;
                        }
                    }
                    self.key_generation_failures = 0;
                    self.last_error = None;
                }
                self.sync_certificate_flags();
            }
            SessionCommit::Failed {
                reason,
                key_generation_failures,
                operation_failed,
                at,
            } => {
                if let Some(n) = key_generation_failures {
                    self.key_generation_failures = *n;
                }
                if let Some(failure) = operation_failed {
                    self.policy
                        .apply(&PolicyUpdate::operation_failed(*failure, *at));
                }
                self.last_error = Some(LastError {
                    reason: reason.clone(),
                    at: *at,
                });
            }
        }
        self.sync_certificate_flags();
    }
}
