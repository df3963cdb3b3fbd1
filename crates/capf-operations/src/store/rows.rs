//! Records as flat values, one per column, for SQL backends: the mapping
//! of the model to text names and integer times is written here once, so
//! that every SQL backend (SQLite, PostgreSQL, an application's own) stores
//! the same values and reads them back checked the same way.
//!
//! Times: instants of the service (status, deadlines, audit, leases) in
//! nanoseconds since 1970, so that records round-trip exactly; certificate
//! validity in seconds (X.509 times have no finer resolution, and
//! `notAfter` may be 9999-12-31, past what nanoseconds can hold).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use capf_auth::{
    AuthMode, AuthString, Certificates, DevicePolicy, FailureReason, Operation, OperationStatus,
    SecurityMode,
};
use capf_ca::KeySpec;

use crate::{
    CertificateHistory, CertificateRecord, Device, DeviceName, IssuedRecord, LastError,
    OperationsError, Revocation,
};

/// Nanoseconds since 1970 (negative before).
pub fn nanos(t: SystemTime, what: &'static str) -> Result<i64, OperationsError> {
    let out_of_range = || OperationsError::TimeOutOfRange { what };
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).map_err(|_| out_of_range()),
        Err(e) => i64::try_from(e.duration().as_nanos())
            .map(|n| -n)
            .map_err(|_| out_of_range()),
    }
}

/// [`nanos`], saturating (for lease expiry, where "far future" is all that
/// matters).
pub fn nanos_saturating(t: SystemTime) -> i64 {
    nanos(t, "lease expiry").unwrap_or(i64::MAX)
}

/// The instant `n` nanoseconds from 1970, if representable.
pub fn from_nanos(n: i64) -> Option<SystemTime> {
    let d = Duration::from_nanos(n.unsigned_abs());
    if n >= 0 {
        UNIX_EPOCH.checked_add(d)
    } else {
        UNIX_EPOCH.checked_sub(d)
    }
}

/// Whole seconds since 1970 (negative before); sub-second parts dropped.
pub fn secs(t: SystemTime, what: &'static str) -> Result<i64, OperationsError> {
    let out_of_range = || OperationsError::TimeOutOfRange { what };
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).map_err(|_| out_of_range()),
        Err(e) => i64::try_from(e.duration().as_secs())
            .map(|n| -n)
            .map_err(|_| out_of_range()),
    }
}

/// The instant `s` seconds from 1970, if representable.
pub fn from_secs(s: i64) -> Option<SystemTime> {
    let d = Duration::from_secs(s.unsigned_abs());
    if s >= 0 {
        UNIX_EPOCH.checked_add(d)
    } else {
        UNIX_EPOCH.checked_sub(d)
    }
}

/// The columns of a certificate kept on a device (LSC or MIC).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateColumns {
    /// DER.
    pub der: Vec<u8>,
    /// Subject.
    pub subject: String,
    /// Issuer.
    pub issuer: String,
    /// Serial, lower-case hex.
    pub serial: String,
    /// notBefore, seconds.
    pub not_before_secs: i64,
    /// notAfter, seconds.
    pub not_after_secs: i64,
}

/// A device as flat column values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRow {
    /// `name`
    pub name: String,
    /// `description`
    pub description: String,
    /// `key_spec`: `p256`, `rsa2048`... or none (the service default).
    pub key_spec: Option<String>,
    /// `auth_mode`: `auth-string`, `null-string`, `lsc-first`, `mic-first`.
    pub auth_mode: String,
    /// `auth_string`: the armed digits, in clear (the report shows them).
    pub auth_string: Option<String>,
    /// `failed_attempts`
    pub failed_attempts: i64,
    /// `locked`
    pub locked: bool,
    /// `operation`: `none`, `install`, `delete`, `troubleshoot`.
    pub operation: String,
    /// `completes_by_ns`
    pub completes_by_ns: Option<i64>,
    /// `status_kind`: `idle`, `pending`, `succeeded`, `failed`.
    pub status_kind: String,
    /// `status_operation` (succeeded and failed only).
    pub status_operation: Option<String>,
    /// `status_reason` (failed only).
    pub status_reason: Option<String>,
    /// `status_at_ns` (succeeded and failed only).
    pub status_at_ns: Option<i64>,
    /// `security_mode`: `non-secure`, `authenticated`, `encrypted`.
    pub security_mode: String,
    /// `has_lsc`: an LSC is on record.
    pub has_lsc: bool,
    /// `has_mic`: a MIC is on record.
    pub has_mic: bool,
    /// `lsc_*`
    pub lsc: Option<CertificateColumns>,
    /// `mic_*`
    pub mic: Option<CertificateColumns>,
    /// `key_generation_failures`
    pub key_generation_failures: i64,
    /// `last_error`
    pub last_error: Option<String>,
    /// `last_error_at_ns`
    pub last_error_at_ns: Option<i64>,
    /// `lsc_revoked_at_ns`
    pub lsc_revoked_at_ns: Option<i64>,
    /// `lsc_revoked_reason`
    pub lsc_revoked_reason: Option<String>,
}

/// The name a failure reason is stored as.
fn reason_name(reason: FailureReason) -> &'static str {
    match reason {
        FailureReason::LockedOut => "locked-out",
        FailureReason::DeadlinePassed => "deadline-passed",
        FailureReason::KeyGenerationFailed => "key-generation-failed",
        FailureReason::NoCertificate => "no-certificate",
        FailureReason::NoAuthString => "no-auth-string",
    }
}

fn reason_from_name(name: &str) -> Option<FailureReason> {
    Some(match name {
        "locked-out" => FailureReason::LockedOut,
        "deadline-passed" => FailureReason::DeadlinePassed,
        "key-generation-failed" => FailureReason::KeyGenerationFailed,
        "no-certificate" => FailureReason::NoCertificate,
        "no-auth-string" => FailureReason::NoAuthString,
        _ => return None,
    })
}

impl CertificateColumns {
    fn of(c: &CertificateRecord) -> Result<Self, OperationsError> {
        Ok(CertificateColumns {
            der: c.der.clone(),
            subject: c.subject.clone(),
            issuer: c.issuer.clone(),
            serial: c.serial_hex.clone(),
            not_before_secs: secs(c.not_before, "certificate notBefore")?,
            not_after_secs: secs(c.not_after, "certificate notAfter")?,
        })
    }

    fn record(
        self,
        bad: &impl Fn(String) -> OperationsError,
    ) -> Result<CertificateRecord, OperationsError> {
        let time = |s: i64, column: &str| {
            from_secs(s).ok_or_else(|| bad(format!("{column}: {s} out of range")))
        };
        Ok(CertificateRecord {
            not_before: time(self.not_before_secs, "not_before_secs")?,
            not_after: time(self.not_after_secs, "not_after_secs")?,
            der: self.der,
            subject: self.subject,
            issuer: self.issuer,
            serial_hex: self.serial,
        })
    }
}

impl DeviceRow {
    /// The columns of `device`.
    ///
    /// # Errors
    /// [`OperationsError::TimeOutOfRange`] for a time beyond what the
    /// columns hold (years 1677 to 2262 for instants).
    pub fn from_device(device: &Device) -> Result<Self, OperationsError> {
        // Destructured without `..`: a field added to the model stops this
        // from compiling until every SQL backend stores it.
        let Device {
            name,
            description,
            key,
            policy,
            lsc,
            lsc_revoked,
            mic,
            key_generation_failures,
            last_error,
        } = device;
        let DevicePolicy {
            auth_mode,
            auth_string,
            failed_attempts,
            locked,
            operation,
            completes_by,
            status,
            security_mode,
            // Kept in step with the records: `has_lsc` and `has_mic`.
            certificates: _,
        } = policy;
        let (status_kind, status_operation, status_reason, status_at_ns) = match *status {
            OperationStatus::Idle => ("idle", None, None, None),
            OperationStatus::Pending => ("pending", None, None, None),
            OperationStatus::Succeeded { operation, at } => (
                "succeeded",
                Some(operation.name().to_owned()),
                None,
                Some(nanos(at, "status time")?),
            ),
            OperationStatus::Failed {
                operation,
                reason,
                at,
            } => (
                "failed",
                Some(operation.name().to_owned()),
                Some(reason_name(reason).to_owned()),
                Some(nanos(at, "status time")?),
            ),
        };
        Ok(DeviceRow {
            name: name.to_string(),
            description: description.clone(),
            key_spec: key.map(|k| k.to_string()),
            auth_mode: auth_mode.name().to_owned(),
            auth_string: auth_string.as_ref().map(|s| s.expose().to_owned()),
            failed_attempts: i64::from(*failed_attempts),
            locked: *locked,
            operation: operation.name().to_owned(),
            completes_by_ns: completes_by
                .map(|t| nanos(t, "operation completes by"))
                .transpose()?,
            status_kind: status_kind.to_owned(),
            status_operation,
            status_reason,
            status_at_ns,
            security_mode: security_mode.name().to_owned(),
            has_lsc: lsc.is_some(),
            has_mic: mic.is_some(),
            lsc: lsc.as_ref().map(CertificateColumns::of).transpose()?,
            mic: mic.as_ref().map(CertificateColumns::of).transpose()?,
            key_generation_failures: i64::from(*key_generation_failures),
            last_error: last_error.as_ref().map(|e| e.reason.clone()),
            last_error_at_ns: last_error
                .as_ref()
                .map(|e| nanos(e.at, "last error time"))
                .transpose()?,
            lsc_revoked_at_ns: lsc_revoked
                .as_ref()
                .map(|r| nanos(r.at, "revocation time"))
                .transpose()?,
            lsc_revoked_reason: lsc_revoked.as_ref().map(|r| r.reason.clone()),
        })
    }

    /// The device these columns hold, every value checked.
    ///
    /// # Errors
    /// [`OperationsError::CorruptRow`] naming the column, for a value the
    /// model does not accept (a hand-edited or damaged row).
    pub fn into_device(self) -> Result<Device, OperationsError> {
        let key = self.name.clone();
        let bad = |why: String| OperationsError::CorruptRow {
            table: "devices",
            key: key.clone(),
            why,
        };
        let count = |n: i64, column: &str| {
            u32::try_from(n).map_err(|_| bad(format!("{column}: {n} out of range")))
        };
        let instant = |n: Option<i64>, column: &str| {
            n.map(|n| from_nanos(n).ok_or_else(|| bad(format!("{column}: {n} out of range"))))
                .transpose()
        };
        let required = |n: Option<i64>, column: &str| {
            instant(n, column)?.ok_or_else(|| bad(format!("{column} is missing")))
        };
        let operation = |value: &str| -> Result<Operation, OperationsError> {
            value.parse().map_err(|e| bad(format!("operation: {e}")))
        };
        let name = DeviceName::parse(&self.name).map_err(|e| bad(e.to_string()))?;
        let auth_mode: AuthMode = self
            .auth_mode
            .parse()
            .map_err(|e| bad(format!("auth_mode: {e}")))?;
        let auth_string = self
            .auth_string
            .as_deref()
            .map(|s| AuthString::from_digits(s.as_bytes()))
            .transpose()
            .map_err(|e| bad(format!("auth_string: {e}")))?;
        let security_mode: SecurityMode = self
            .security_mode
            .parse()
            .map_err(|e| bad(format!("security_mode: {e}")))?;
        let status_operation = || -> Result<Operation, OperationsError> {
            operation(
                self.status_operation
                    .as_deref()
                    .ok_or_else(|| bad("status_operation is missing".into()))?,
            )
        };
        let status = match self.status_kind.as_str() {
            "idle" => OperationStatus::Idle,
            "pending" => OperationStatus::Pending,
            "succeeded" => OperationStatus::Succeeded {
                operation: status_operation()?,
                at: required(self.status_at_ns, "status_at_ns")?,
            },
            "failed" => {
                let reason = self
                    .status_reason
                    .as_deref()
                    .ok_or_else(|| bad("status_reason is missing".into()))?;
                OperationStatus::Failed {
                    operation: status_operation()?,
                    reason: reason_from_name(reason)
                        .ok_or_else(|| bad(format!("status_reason: unknown {reason:?}")))?,
                    at: required(self.status_at_ns, "status_at_ns")?,
                }
            }
            other => return Err(bad(format!("status_kind: unknown {other:?}"))),
        };
        let key_spec = self
            .key_spec
            .as_deref()
            .map(|s| s.parse::<KeySpec>())
            .transpose()
            .map_err(|e| bad(format!("key_spec: {e}")))?;
        let last_error = match self.last_error {
            None => None,
            Some(reason) => Some(LastError {
                reason,
                at: required(self.last_error_at_ns, "last_error_at_ns")?,
            }),
        };
        let lsc_revoked = match instant(self.lsc_revoked_at_ns, "lsc_revoked_at_ns")? {
            None => None,
            Some(at) => Some(Revocation {
                at,
                reason: self.lsc_revoked_reason.unwrap_or_default(),
            }),
        };
        let policy = DevicePolicy {
            auth_mode,
            auth_string,
            failed_attempts: count(self.failed_attempts, "failed_attempts")?,
            locked: self.locked,
            operation: operation(&self.operation)?,
            completes_by: instant(self.completes_by_ns, "completes_by_ns")?,
            status,
            security_mode,
            certificates: Certificates {
                lsc: self.has_lsc,
                mic: self.has_mic,
            },
        };
        Ok(Device {
            name,
            description: self.description,
            key: key_spec,
            policy,
            lsc: self.lsc.map(|c| c.record(&bad)).transpose()?,
            lsc_revoked,
            mic: self.mic.map(|c| c.record(&bad)).transpose()?,
            key_generation_failures: count(
                self.key_generation_failures,
                "key_generation_failures",
            )?,
            last_error,
        })
    }
}

/// An issued certificate and what became of it, as flat column values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedRow {
    /// `device`
    pub device: String,
    /// `serial`, lower-case hex (unique).
    pub serial: String,
    /// `der`
    pub der: Vec<u8>,
    /// `subject`
    pub subject: String,
    /// `issuer`
    pub issuer: String,
    /// `not_before_secs`
    pub not_before_secs: i64,
    /// `not_after_secs`
    pub not_after_secs: i64,
    /// `issued_at_ns`
    pub issued_at_ns: i64,
    /// `delivered`
    pub delivered: bool,
    /// `delivered_at_ns`
    pub delivered_at_ns: Option<i64>,
    /// `superseded_at_ns`
    pub superseded_at_ns: Option<i64>,
    /// `deleted_at_ns`
    pub deleted_at_ns: Option<i64>,
    /// `revoked_at_ns`
    pub revoked_at_ns: Option<i64>,
}

impl IssuedRow {
    /// The columns of `history`.
    ///
    /// # Errors
    /// [`OperationsError::TimeOutOfRange`].
    pub fn from_history(history: &CertificateHistory) -> Result<Self, OperationsError> {
        let r = &history.record;
        let c = &r.certificate;
        let opt = |t: Option<SystemTime>, what| t.map(|t| nanos(t, what)).transpose();
        Ok(IssuedRow {
            device: r.device.to_string(),
            serial: c.serial_hex.clone(),
            der: c.der.clone(),
            subject: c.subject.clone(),
            issuer: c.issuer.clone(),
            not_before_secs: secs(c.not_before, "certificate notBefore")?,
            not_after_secs: secs(c.not_after, "certificate notAfter")?,
            issued_at_ns: nanos(r.issued_at, "issue time")?,
            delivered: r.delivered,
            delivered_at_ns: opt(history.delivered_at, "delivery time")?,
            superseded_at_ns: opt(history.superseded_at, "supersession time")?,
            deleted_at_ns: opt(history.deleted_at, "deletion time")?,
            revoked_at_ns: opt(history.revoked_at, "revocation time")?,
        })
    }

    /// The certificate history these columns hold, checked.
    ///
    /// # Errors
    /// [`OperationsError::CorruptRow`] naming the column.
    pub fn into_history(self) -> Result<CertificateHistory, OperationsError> {
        let key = self.serial.clone();
        let bad = |why: String| OperationsError::CorruptRow {
            table: "issued_certificates",
            key: key.clone(),
            why,
        };
        let instant = |n: Option<i64>, column: &str| {
            n.map(|n| from_nanos(n).ok_or_else(|| bad(format!("{column}: {n} out of range"))))
                .transpose()
        };
        let certificate = CertificateColumns {
            der: self.der,
            subject: self.subject,
            issuer: self.issuer,
            serial: self.serial.clone(),
            not_before_secs: self.not_before_secs,
            not_after_secs: self.not_after_secs,
        }
        .record(&bad)?;
        Ok(CertificateHistory {
            record: IssuedRecord {
                device: DeviceName::parse(&self.device).map_err(|e| bad(e.to_string()))?,
                certificate,
                issued_at: instant(Some(self.issued_at_ns), "issued_at_ns")?
                    .ok_or_else(|| bad("issued_at_ns is missing".into()))?,
                delivered: self.delivered,
            },
            delivered_at: instant(self.delivered_at_ns, "delivered_at_ns")?,
            superseded_at: instant(self.superseded_at_ns, "superseded_at_ns")?,
            deleted_at: instant(self.deleted_at_ns, "deleted_at_ns")?,
            revoked_at: instant(self.revoked_at_ns, "revoked_at_ns")?,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn times_round_trip() {
        for t in [
            UNIX_EPOCH,
            UNIX_EPOCH + Duration::new(1_796_083_200, 123_456_789),
            UNIX_EPOCH - Duration::new(86_400, 5),
        ] {
            assert_eq!(from_nanos(nanos(t, "t").unwrap()), Some(t));
        }
        let far = UNIX_EPOCH + Duration::from_secs(253_402_300_799); // 9999-12-31T23:59:59Z
        assert!(nanos(far, "t").is_err());
        assert_eq!(from_secs(secs(far, "t").unwrap()), Some(far));
        assert_eq!(nanos_saturating(far), i64::MAX);
    }

    #[test]
    fn a_device_round_trips_through_its_columns() {
        let mut d = Device::new(
            DeviceName::parse("SEP001122334455").unwrap(),
            AuthMode::AuthString,
        );
        d.policy.rearm("0123".parse().unwrap());
        d.policy.certificates.lsc = true;
        d.schedule(Operation::Delete, Some(UNIX_EPOCH + Duration::from_secs(5)))
            .unwrap();
        d.policy.certificates.lsc = false;
        d.policy.status = OperationStatus::Failed {
            operation: Operation::Delete,
            reason: FailureReason::NoCertificate,
            at: UNIX_EPOCH + Duration::from_secs(7),
        };
        d.last_error = Some(LastError {
            reason: "why".into(),
            at: UNIX_EPOCH + Duration::from_nanos(9),
        });
        let row = DeviceRow::from_device(&d).unwrap();
        assert_eq!(row.into_device().unwrap(), d);
    }
}
