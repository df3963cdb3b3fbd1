//! The per-device policy state the caller persists, and how it changes.

use std::time::SystemTime;

use crate::{
    AuthError, AuthMode, AuthString, CapfContact, Certificates, FailureReason, Grant, Operation,
    OperationStatus, Registration, SecurityMode,
};

/// Everything the policy knows about one device; the caller stores it
/// (in the device record) and hands it back for every decision.
///
/// A plain struct with public fields, so that a store can map it to
/// columns. The methods keep the invariants for the usual transitions:
/// [`decide`](DevicePolicy::decide) + [`apply`](DevicePolicy::apply) for a
/// phone's attempt, [`on_operation_succeeded`](DevicePolicy::on_operation_succeeded)
/// when the operation completed, and the operator's
/// [`schedule`](DevicePolicy::schedule), [`rearm`](DevicePolicy::rearm) and
/// [`clear_lockout`](DevicePolicy::clear_lockout).
///
/// The wrong-string counter and the lock live here, so they survive
/// restarts as long as the caller persists every [`PolicyUpdate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePolicy {
    /// How the phone must authenticate.
    pub auth_mode: AuthMode,
    /// The armed one-time string, if any.
    pub auth_string: Option<AuthString>,
    /// Consecutive wrong authentication strings since the last correct one
    /// or the last re-arm.
    pub failed_attempts: u32,
    /// Locked out by wrong strings. Stored (not derived from the counter)
    /// so that it stays until the operator acts, whatever the limit is
    /// later set to.
    pub locked: bool,
    /// The scheduled operation.
    pub operation: Operation,
    /// "Operation completes by": after this instant the operation is
    /// not honoured. `None`: no deadline.
    pub completes_by: Option<SystemTime>,
    /// The operation status shown to the operator.
    pub status: OperationStatus,
    /// The device security mode.
    pub security_mode: SecurityMode,
    /// Which certificates the device holds, as far as the server knows.
    pub certificates: Certificates,
}

impl DevicePolicy {
    /// A device with this mode, nothing scheduled, no string, non-secure,
    /// no certificates on record.
    #[must_use]
    pub const fn new(auth_mode: AuthMode) -> Self {
        DevicePolicy {
            auth_mode,
            auth_string: None,
            failed_attempts: 0,
            locked: false,
            operation: Operation::None,
            completes_by: None,
            status: OperationStatus::Idle,
            security_mode: SecurityMode::NonSecure,
            certificates: Certificates::NONE,
        }
    }

    /// Operator: schedule `operation` (none to cancel) with an optional
    /// deadline. The status becomes pending (idle for none). A lockout is
    /// not lifted: that needs [`rearm`](DevicePolicy::rearm).
    ///
    /// # Errors
    /// [`AuthError::OperationNeedsCertificate`] for delete without an LSC
    /// or troubleshoot without any certificate on record.
    pub fn schedule(
        &mut self,
        operation: Operation,
        completes_by: Option<SystemTime>,
    ) -> Result<(), AuthError> {
        operation.check_schedulable(self.certificates)?;
        self.operation = operation;
        self.completes_by = completes_by;
        self.status = if operation.is_pending() {
            OperationStatus::Pending
        } else {
            OperationStatus::Idle
        };
        Ok(())
    }

    /// Operator: arm a new authentication string (typed or
    /// [generated](AuthString::generate)). Resets the wrong-string counter
    /// and lifts a lockout; an operation that failed by lockout is pending
    /// again. The auth mode is not changed.
    pub fn rearm(&mut self, auth_string: AuthString) {
        self.auth_string = Some(auth_string);
        self.clear_lockout();
    }

    /// Operator: lift a lockout without arming a string, e.g. after
    /// switching the device to a certificate mode. The string that was
    /// disarmed by the lockout stays disarmed.
    pub fn clear_lockout(&mut self) {
        self.failed_attempts = 0;
        self.locked = false;
        if let OperationStatus::Failed {
            operation,
            reason: FailureReason::LockedOut,
            ..
        } = self.status
            && operation == self.operation
        {
            self.status = OperationStatus::Pending;
        }
    }

    /// Applies the changes of a [`Decision`](crate::Decision) or of
    /// [`Grant::success_update`]. The caller persists the result.
    pub fn apply(&mut self, update: &PolicyUpdate) {
        if let Some(failed_attempts) = update.failed_attempts {
            self.failed_attempts = failed_attempts;
        }
        if update.lock {
            self.locked = true;
            // The string was under attack: it must never work again.
            self.auth_string = None;
        }
        if let Some((reason, at)) = update.operation_failed
            && self.operation.is_pending()
        {
            self.status = OperationStatus::Failed {
                operation: self.operation,
                reason,
                at,
            };
        }
        if update.consume_auth_string {
            self.auth_string = None;
        }
        if let Some((operation, at)) = update.operation_succeeded
            // Ignore a stale success if the operator rescheduled meanwhile.
            && operation == self.operation
            && operation.is_pending()
        {
            match operation {
                Operation::InstallUpgrade => self.certificates.lsc = true,
                Operation::Delete => self.certificates.lsc = false,
                Operation::None | Operation::Troubleshoot => {}
            }
            self.operation = Operation::None;
            self.completes_by = None;
            self.status = OperationStatus::Succeeded { operation, at };
        }
    }

    /// The operation of `grant` has succeeded (for install: only after the
    /// phone confirmed it stored the certificate). Consumes the
    /// authentication string if it authenticated the phone (a string is single use), sets the
    /// operation to none and the status to successful, and records the
    /// LSC as present (install) or absent (delete). Troubleshoot leaves
    /// [`certificates`](DevicePolicy::certificates) to the caller, who
    /// knows what the phone returned.
    ///
    /// A failed or interrupted operation needs no call: everything,
    /// including the armed string, stays as it was, so the phone can retry.
    pub fn on_operation_succeeded(&mut self, grant: &Grant, now: SystemTime) {
        self.apply(&grant.success_update(now));
    }

    /// Whether the deadline has passed at `now` (strictly later).
    #[must_use]
    pub fn deadline_passed(&self, now: SystemTime) -> bool {
        self.completes_by.is_some_and(|deadline| now > deadline)
    }

    /// [`registration_after_reset`](crate::registration_after_reset) for
    /// this device, taking an LSC on record as a valid LSC.
    #[must_use]
    pub const fn registration_after_reset(&self) -> Registration {
        crate::registration_after_reset(
            self.security_mode,
            self.auth_mode,
            self.operation,
            self.certificates.lsc,
        )
    }

    /// [`capf_contact`](crate::capf_contact) for this device.
    #[must_use]
    pub const fn capf_contact(&self) -> CapfContact {
        crate::capf_contact(self.auth_mode, self.operation)
    }

    /// The operation status text, e.g. "Install/Upgrade pending".
    #[must_use]
    pub fn status_label(&self) -> String {
        self.status.label(self.operation)
    }
}

/// State changes produced by a decision or a success, to apply with
/// [`DevicePolicy::apply`] and persist.
///
/// Every field is a change; [`PolicyUpdate::NONE`] changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PolicyUpdate {
    /// New value of the wrong-string counter.
    pub failed_attempts: Option<u32>,
    /// Lock the device and disarm its string.
    pub lock: bool,
    /// Record the scheduled operation as failed, with this reason, at this
    /// time.
    pub operation_failed: Option<(FailureReason, SystemTime)>,
    /// Disarm the authentication string: it has been used (single use).
    pub consume_auth_string: bool,
    /// This operation succeeded at this time: operation none, status
    /// successful.
    pub operation_succeeded: Option<(Operation, SystemTime)>,
}

impl PolicyUpdate {
    /// No change.
    pub const NONE: PolicyUpdate = PolicyUpdate {
        failed_attempts: None,
        lock: false,
        operation_failed: None,
        consume_auth_string: false,
        operation_succeeded: None,
    };

    /// Only this: record the scheduled operation as failed, for `reason`,
    /// at `at`.
    #[must_use]
    pub const fn operation_failed(reason: FailureReason, at: SystemTime) -> Self {
        PolicyUpdate {
            operation_failed: Some((reason, at)),
            ..PolicyUpdate::NONE
        }
    }

    /// True when applying this changes nothing (nothing to persist).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == PolicyUpdate::NONE
    }
}
