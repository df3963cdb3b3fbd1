//! The decision: may this phone, with what it presented, run its operation now?

use std::time::SystemTime;

use crate::{
    AuthMode, CertificateKind, DevicePolicy, FailureReason, Operation, OperationStatus, Parameters,
    PolicyUpdate, Presented, PresentedCertificate, Refusal, Verification,
};

/// The answer of [`DevicePolicy::decide`]: a verdict, and the state changes
/// the caller must persist whatever the verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a decision carries state changes (wrong-string counter, lockout) that must be persisted"]
pub struct Decision {
    /// Proceed or refuse.
    pub verdict: Verdict,
    /// Changes to apply to the device's [`DevicePolicy`] (with
    /// [`DevicePolicy::apply`]) and persist, before answering the phone.
    /// Often empty.
    pub update: PolicyUpdate,
}

/// Proceed with the operation, or refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Run the operation.
    Proceed(Grant),
    /// End the session with [`Refusal::end_session_reason`].
    Refuse(Refusal),
}

/// Permission to run one operation, given to an authenticated phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// The operation to run (never [`Operation::None`]).
    pub operation: Operation,
    /// How the phone proved itself.
    pub authenticated_by: AuthenticatedBy,
}

impl Grant {
    /// Whether the armed authentication string must be consumed when this
    /// operation succeeds (it is single use): true exactly when it
    /// authenticated the phone.
    #[must_use]
    pub const fn consumes_auth_string(&self) -> bool {
        matches!(self.authenticated_by, AuthenticatedBy::AuthString)
    }

    /// The state changes to persist once the operation has succeeded (for
    /// install: the phone confirmed it stored the LSC). See
    /// [`DevicePolicy::on_operation_succeeded`].
    #[must_use]
    pub const fn success_update(&self, now: SystemTime) -> PolicyUpdate {
        PolicyUpdate {
            failed_attempts: None,
            lock: false,
            operation_failed: None,
            consume_auth_string: self.consumes_auth_string(),
            operation_succeeded: Some((self.operation, now)),
        }
    }
}

/// How a phone proved its identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthenticatedBy {
    /// The armed authentication string.
    AuthString,
    /// Null-string mode: no proof.
    NullString,
    /// The LSC on record, verified and bound to the device.
    Lsc {
        /// True under precedence to MIC: the phone presented its LSC
        /// instead of a MIC.
        fallback: bool,
    },
    /// A verified MIC bound to the device.
    Mic {
        /// True under precedence to LSC: the phone presented its MIC
        /// instead of an LSC.
        fallback: bool,
    },
}

impl Decision {
    /// The decision for a device name with no record: END_SESSION 9.
    pub const fn unknown_device() -> Self {
        Decision::refuse(Refusal::UnknownDevice, PolicyUpdate::NONE)
    }

    const fn refuse(refusal: Refusal, update: PolicyUpdate) -> Self {
        Decision {
            verdict: Verdict::Refuse(refusal),
            update,
        }
    }

    /// The grant, if the verdict is to proceed.
    #[must_use]
    pub const fn grant(&self) -> Option<&Grant> {
        match &self.verdict {
            Verdict::Proceed(grant) => Some(grant),
            Verdict::Refuse(_) => None,
        }
    }

    /// The refusal, if the verdict is to refuse.
    #[must_use]
    pub const fn refusal(&self) -> Option<&Refusal> {
        match &self.verdict {
            Verdict::Proceed(_) => None,
            Verdict::Refuse(refusal) => Some(refusal),
        }
    }

    /// The END_SESSION reason to send now, or `None` when the operation
    /// proceeds.
    #[must_use]
    pub const fn end_session_reason(&self) -> Option<u8> {
        match &self.verdict {
            Verdict::Proceed(_) => None,
            Verdict::Refuse(refusal) => Some(refusal.end_session_reason()),
        }
    }
}

/// How authentication failed, before it is turned into a refusal.
enum AuthFailure {
    /// A wrong (non-empty) authentication string: counts towards lockout.
    WrongString,
    /// Any other failure: does not count.
    Refused(Refusal),
}

impl DevicePolicy {
    /// Decides whether the phone may run the device's scheduled operation
    /// now. Pure: it reads `self` and returns the changes to persist.
    ///
    /// Checks, in this order (the first that applies wins):
    ///
    /// 1. **Locked out** → refuse [`Refusal::LockedOut`], whatever is
    ///    presented (even the right string).
    /// 2. **Deadline** (only when an operation is pending): `now` later
    ///    than [`completes_by`](DevicePolicy::completes_by) → refuse
    ///    [`Refusal::DeadlinePassed`] and record the operation as failed.
    /// 3. **Authentication** by the device's [`AuthMode`] (table in the
    ///    crate docs). A wrong non-empty string in auth-string mode adds
    ///    one to the counter; reaching [`Parameters::failure_limit`] locks
    ///    the device, disarms its string and records the operation as
    ///    failed. A correct string resets the counter. A refusal that only
    ///    the operator can change (no string armed, no certificate
    ///    presented) records the operation as failed too.
    /// 4. **Operation** none → refuse [`Refusal::NoPendingOperation`]
    ///    (END_SESSION 0). Authentication comes first so that guessing
    ///    strings against a device with nothing scheduled is never free.
    /// 5. Otherwise proceed with a [`Grant`].
    pub fn decide(
        &self,
        presented: &Presented<'_>,
        now: SystemTime,
        params: &Parameters,
    ) -> Decision {
        let operation = self.operation;

        if self.locked {
            let update = PolicyUpdate {
                operation_failed: self.fail_once(FailureReason::LockedOut, now),
                ..PolicyUpdate::NONE
            };
            return Decision::refuse(Refusal::LockedOut, update);
        }

        if operation.is_pending()
            && let Some(deadline) = self.completes_by
            && now > deadline
        {
            let update = PolicyUpdate {
                operation_failed: self.fail_once(FailureReason::DeadlinePassed, now),
                ..PolicyUpdate::NONE
            };
            return Decision::refuse(Refusal::DeadlinePassed { deadline }, update);
        }

        let authenticated_by = match self.authenticate(presented) {
            Ok(by) => by,
            Err(AuthFailure::Refused(refusal)) => {
                // Refusals that nothing but the operator can change mark
                // the operation failed; the others leave it pending.
                let update = PolicyUpdate {
                    operation_failed: refusal
                        .failure_reason()
                        .and_then(|reason| self.fail_once(reason, now)),
                    ..PolicyUpdate::NONE
                };
                return Decision::refuse(refusal, update);
            }
            Err(AuthFailure::WrongString) => {
                let failed_attempts = self.failed_attempts.saturating_add(1);
                let locked = failed_attempts >= params.failure_limit.get();
                let update = PolicyUpdate {
                    failed_attempts: Some(failed_attempts),
                    lock: locked,
                    operation_failed: if locked {
                        self.fail_once(FailureReason::LockedOut, now)
                    } else {
                        None
                    },
                    ..PolicyUpdate::NONE
                };
                let refusal = Refusal::WrongAuthString {
                    failed_attempts,
                    locked,
                };
                return Decision::refuse(refusal, update);
            }
        };

        let update = PolicyUpdate {
            failed_attempts: (authenticated_by == AuthenticatedBy::AuthString
                && self.failed_attempts != 0)
                .then_some(0),
            ..PolicyUpdate::NONE
        };
        if !operation.is_pending() {
            return Decision::refuse(Refusal::NoPendingOperation, update);
        }
        Decision {
            verdict: Verdict::Proceed(Grant {
                operation,
                authenticated_by,
            }),
            update,
        }
    }

    /// "Mark the operation failed", unless nothing is scheduled or it is
    /// already recorded as failed for this reason.
    fn fail_once(
        &self,
        reason: FailureReason,
        now: SystemTime,
    ) -> Option<(FailureReason, SystemTime)> {
        let already = matches!(
            self.status,
            OperationStatus::Failed { operation, reason: recorded, .. }
                if operation == self.operation && recorded == reason
        );
        (self.operation.is_pending() && !already).then_some((reason, now))
    }

    fn authenticate(&self, presented: &Presented<'_>) -> Result<AuthenticatedBy, AuthFailure> {
        match self.auth_mode {
            AuthMode::NullString => Ok(AuthenticatedBy::NullString),
            AuthMode::AuthString => {
                let armed = self
                    .auth_string
                    .as_ref()
                    .ok_or(AuthFailure::Refused(Refusal::NoAuthStringArmed))?;
                let password = presented
                    .non_empty_password()
                    .ok_or(AuthFailure::Refused(Refusal::AuthStringMissing))?;
                if armed.matches(password) {
                    Ok(AuthenticatedBy::AuthString)
                } else {
                    Err(AuthFailure::WrongString)
                }
            }
            AuthMode::ExistingCertificateLscFirst | AuthMode::ExistingCertificateMicFirst => {
                self.existing_certificate(presented.certificate)
            }
        }
    }

    /// The two "existing certificate" modes. Precedence says which
    /// certificate the phone presents when it holds both (its
    /// configuration tells it); the server accepts either kind, verified:
    /// with precedence to LSC, the LSC on record or else a MIC; with
    /// precedence to MIC, a MIC or else the LSC on record. Only a phone
    /// that presents neither fails.
    fn existing_certificate(
        &self,
        certificate: Option<PresentedCertificate>,
    ) -> Result<AuthenticatedBy, AuthFailure> {
        let preferred = match self.auth_mode {
            AuthMode::ExistingCertificateMicFirst => CertificateKind::Mic,
            _ => CertificateKind::Lsc,
        };
        let cert = certificate.ok_or(AuthFailure::Refused(Refusal::NoCertificate))?;
        verified(cert).map_err(AuthFailure::Refused)?;
        let fallback = cert.kind != preferred;
        Ok(match cert.kind {
            CertificateKind::Lsc => AuthenticatedBy::Lsc { fallback },
            CertificateKind::Mic => AuthenticatedBy::Mic { fallback },
        })
    }
}

fn verified(cert: PresentedCertificate) -> Result<(), Refusal> {
    match cert.verification {
        Verification::VerifiedForDevice => Ok(()),
        Verification::Failed(failure) => Err(Refusal::CertificateRejected {
            kind: cert.kind,
            failure,
        }),
    }
}
