//! Operator edits: field-level changes applied to the device as it is
//! inside the store's transaction, never a whole record written back.
//!
//! A session that is running depends on some fields (how the phone
//! authenticates, what it is scheduled to do, the key it must generate);
//! an edit that changes one of them is refused while a session holds the
//! device ([`OperationsError::DeviceBusy`], "try again"). Passive fields
//! (description, security mode) change at any time, and never undo what a
//! session committed. Fields only sessions own (the wrong-string count,
//! the lockout, the string being used up, the certificates on record, the
//! status, the last error) change only through the explicit operator
//! actions here: arm a string, clear a lockout, revoke the LSC, schedule.

use std::time::SystemTime;

use capf_auth::{AuthMode, AuthString, FailureReason, Operation, OperationStatus, SecurityMode};
use capf_ca::KeySpec;

use crate::{Device, OperationsError, Revocation};

/// A set of changes to one device. `None` (or `false`) leaves a field as
/// it is. Build it with `DeviceEdit::default()` and set what changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceEdit {
    /// Free text. Passive.
    pub description: Option<String>,
    /// Device security mode. Passive: the server's decision does not
    /// depend on it.
    pub security_mode: Option<SecurityMode>,
    /// How the phone must authenticate.
    pub auth_mode: Option<AuthMode>,
    /// The key the phone is asked to generate (`Some(None)`: the service
    /// default).
    pub key: Option<Option<KeySpec>>,
    /// Schedule this operation (none cancels), with the deadline below or
    /// the one the device has.
    pub operation: Option<Operation>,
    /// The "completes by" deadline (`Some(None)` removes it).
    pub completes_by: Option<Option<SystemTime>>,
    /// Arm this one-time string: resets the wrong-string count and lifts a
    /// lockout.
    pub auth_string: Option<AuthString>,
    /// Lift a lockout without arming a string.
    pub clear_lockout: bool,
    /// Revoke the LSC on record, with this reason (may be empty): it no
    /// longer authenticates the phone.
    pub revoke_lsc: Option<String>,
}

impl DeviceEdit {
    /// Whether the edit changes something a running session depends on;
    /// such an edit is refused while a session holds the device.
    pub fn touches_session(&self) -> bool {
        self.auth_mode.is_some()
            || self.key.is_some()
            || self.operation.is_some()
            || self.completes_by.is_some()
            || self.auth_string.is_some()
            || self.clear_lockout
            || self.revoke_lsc.is_some()
    }

    /// Whether the edit changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == DeviceEdit::default()
    }

    /// Applies the edit to `device` (the record as it is now), at `now`,
    /// and says what changed, in words for the audit log and the operator.
    /// On an error the device may be half-changed: apply it to a copy (the
    /// stores do, inside their transaction).
    ///
    /// # Errors
    /// [`OperationsError::Policy`] for an operation that cannot be
    /// scheduled (delete without an LSC on record), and
    /// [`OperationsError::InvalidEdit`] for a revocation without a current
    /// LSC.
    pub fn apply(
        &self,
        device: &mut Device,
        now: SystemTime,
    ) -> Result<Vec<String>, OperationsError> {
        let mut changes = Vec::new();
        if let Some(d) = &self.description {
            device.description = d.clone();
            changes.push("description".to_owned());
        }
        if let Some(m) = self.security_mode {
            device.policy.security_mode = m;
            changes.push(format!("security mode {m}"));
        }
        if let Some(k) = self.key {
            device.key = k;
            changes.push(format!(
                "key {}",
                k.map_or("default".to_owned(), |k| k.to_string())
            ));
        }
        if let Some(m) = self.auth_mode {
            device.policy.auth_mode = m;
            changes.push(format!("authentication mode {m}"));
        }
        if let Some(s) = &self.auth_string {
            device.policy.rearm(s.clone());
            changes.push("authentication string armed".to_owned());
        }
        if self.clear_lockout && (device.policy.locked || device.policy.failed_attempts > 0) {
            device.policy.clear_lockout();
            changes.push("lockout cleared".to_owned());
        }
        if let Some(reason) = &self.revoke_lsc {
            let bad = |why: &str| OperationsError::InvalidEdit {
                name: device.name.to_string(),
                why: why.to_owned(),
            };
            let serial = match (&device.lsc, &device.lsc_revoked) {
                (None, _) => return Err(bad("no LSC on record to revoke")),
                (Some(_), Some(_)) => return Err(bad("its LSC is already revoked")),
                (Some(lsc), None) => lsc.serial_hex.clone(),
            };
            device.lsc_revoked = Some(Revocation {
                at: now,
                reason: reason.clone(),
            });
            changes.push(if reason.is_empty() {
                format!("LSC serial {serial} revoked")
            } else {
                format!("LSC serial {serial} revoked ({reason})")
            });
        }
        match (self.operation, self.completes_by) {
            (Some(op), deadline) => {
                let deadline = deadline.unwrap_or(device.policy.completes_by);
                device.schedule(op, deadline)?;
                changes.push(format!("operation {}", op.label()));
            }
            (None, Some(deadline)) => {
                device.policy.completes_by = deadline;
                // A new deadline revives an operation that failed by the
                // old one.
                if let OperationStatus::Failed {
                    operation,
                    reason: FailureReason::DeadlinePassed,
                    ..
                } = device.policy.status
                    && operation == device.policy.operation
                    && !device.policy.deadline_passed(now)
                {
                    device.policy.status = OperationStatus::Pending;
                }
                changes.push("completes-by".to_owned());
            }
            (None, None) => {}
        }
        device.sync_certificate_flags();
        Ok(changes)
    }
}

/// What [`OperatorStore::modify`](crate::OperatorStore::modify) did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edited {
    /// The device as it now is.
    pub device: Device,
    /// What changed, in words (empty: nothing).
    pub changes: Vec<String>,
}
