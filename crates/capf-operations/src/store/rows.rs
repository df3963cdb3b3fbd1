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
    Account, AccountName, ApiToken, AuditEntry, AuditQuery, CertificateHistory, CertificateRecord,
    Device, DeviceName, IssuedRecord, LastError, OperationsError, Revocation, Role,
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

/// An operator account as flat column values (table `accounts`). Its
/// `Debug` never shows the password hash.
#[derive(Clone, PartialEq, Eq)]
pub struct AccountRow {
    /// `name` (unique).
    pub name: String,
    /// `role`: `read-only`, `helpdesk` or `admin`.
    pub role: String,
    /// `password_hash`: a PHC string.
    pub password_hash: String,
    /// `created_at_ns`
    pub created_at_ns: i64,
    /// `password_changed_at_ns`
    pub password_changed_at_ns: i64,
}

impl std::fmt::Debug for AccountRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountRow")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("created_at_ns", &self.created_at_ns)
            .field("password_changed_at_ns", &self.password_changed_at_ns)
            .finish_non_exhaustive()
    }
}

impl AccountRow {
    /// The columns of `account`.
    ///
    /// # Errors
    /// [`OperationsError::TimeOutOfRange`].
    pub fn from_account(account: &Account) -> Result<Self, OperationsError> {
        Ok(AccountRow {
            name: account.name.to_string(),
            role: account.role.as_str().to_owned(),
            password_hash: account.password_hash.clone(),
            created_at_ns: nanos(account.created_at, "account creation time")?,
            password_changed_at_ns: nanos(account.password_changed_at, "password change time")?,
        })
    }

    /// The account these columns hold, checked.
    ///
    /// # Errors
    /// [`OperationsError::CorruptRow`] naming the column.
    pub fn into_account(self) -> Result<Account, OperationsError> {
        let key = crate::escape_text(&self.name).into_owned();
        let bad = |why: String| OperationsError::CorruptRow {
            table: "accounts",
            key: key.clone(),
            why,
        };
        let instant = |n: i64, column: &str| {
            from_nanos(n).ok_or_else(|| bad(format!("{column}: {n} out of range")))
        };
        Ok(Account {
            name: AccountName::parse(&self.name).map_err(|e| bad(e.to_string()))?,
            role: self
                .role
                .parse::<Role>()
                .map_err(|e| bad(format!("role: {e}")))?,
            created_at: instant(self.created_at_ns, "created_at_ns")?,
            password_changed_at: instant(self.password_changed_at_ns, "password_changed_at_ns")?,
            password_hash: self.password_hash,
        })
    }
}

/// An API token as flat column values (table `api_tokens`). Its `Debug`
/// never shows the secret's hash.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenRow {
    /// `id` (unique).
    pub id: String,
    /// `label`
    pub label: String,
    /// `role`: `read-only`, `helpdesk` or `admin`.
    pub role: String,
    /// `secret_sha256`: lower-case hex.
    pub secret_sha256: String,
    /// `created_at_ns`
    pub created_at_ns: i64,
    /// `created_by`: an account name.
    pub created_by: Option<String>,
}

impl std::fmt::Debug for TokenRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRow")
            .field("id", &self.id)
            .field("label", &self.label)
            .field("role", &self.role)
            .field("created_at_ns", &self.created_at_ns)
            .field("created_by", &self.created_by)
            .finish_non_exhaustive()
    }
}

impl TokenRow {
    /// The columns of `token`.
    ///
    /// # Errors
    /// [`OperationsError::TimeOutOfRange`].
    pub fn from_token(token: &ApiToken) -> Result<Self, OperationsError> {
        Ok(TokenRow {
            id: token.id.clone(),
            label: token.label.clone(),
            role: token.role.as_str().to_owned(),
            secret_sha256: token.secret_sha256.clone(),
            created_at_ns: nanos(token.created_at, "token creation time")?,
            created_by: token.created_by.as_ref().map(ToString::to_string),
        })
    }

    /// The token these columns hold, checked.
    ///
    /// # Errors
    /// [`OperationsError::CorruptRow`] naming the column.
    pub fn into_token(self) -> Result<ApiToken, OperationsError> {
        let key = crate::escape_text(&self.id).into_owned();
        let bad = |why: String| OperationsError::CorruptRow {
            table: "api_tokens",
            key: key.clone(),
            why,
        };
        Ok(ApiToken {
            role: self
                .role
                .parse::<Role>()
                .map_err(|e| bad(format!("role: {e}")))?,
            created_at: from_nanos(self.created_at_ns).ok_or_else(|| {
                bad(format!(
                    "created_at_ns: {} out of range",
                    self.created_at_ns
                ))
            })?,
            created_by: self
                .created_by
                .as_deref()
                .map(AccountName::parse)
                .transpose()
                .map_err(|e| bad(format!("created_by: {e}")))?,
            id: self.id,
            label: self.label,
            secret_sha256: self.secret_sha256,
        })
    }
}

/// An audit log entry as flat column values (table `audit_log`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRow {
    /// `at_ns`
    pub at_ns: i64,
    /// `device`: `NULL` for an entry about no device.
    pub device: Option<String>,
    /// `event`
    pub event: String,
    /// `detail`
    pub detail: String,
    /// `actor`: `NULL` for the CAPF itself.
    pub actor: Option<String>,
}

impl AuditRow {
    /// The columns of `entry`.
    ///
    /// # Errors
    /// [`OperationsError::TimeOutOfRange`].
    pub fn from_entry(entry: &AuditEntry) -> Result<Self, OperationsError> {
        Ok(AuditRow {
            at_ns: nanos(entry.at, "audit time")?,
            device: entry.device.as_ref().map(ToString::to_string),
            event: entry.event.clone(),
            detail: entry.detail.clone(),
            actor: entry.actor.clone(),
        })
    }

    /// The entry these columns hold, checked.
    ///
    /// # Errors
    /// [`OperationsError::CorruptRow`] naming the column.
    pub fn into_entry(self) -> Result<AuditEntry, OperationsError> {
        let bad = |why: String| OperationsError::CorruptRow {
            table: "audit_log",
            key: format!(
                "{} at {}",
                crate::escape_text(self.device.as_deref().unwrap_or("(no device)")),
                self.at_ns
            ),
            why,
        };
        let at = from_nanos(self.at_ns)
            .ok_or_else(|| bad(format!("at_ns: {} out of range", self.at_ns)))?;
        let device = self
            .device
            .as_deref()
            .map(DeviceName::parse)
            .transpose()
            .map_err(|e| bad(format!("device: {e}")))?;
        Ok(AuditEntry {
            at,
            device,
            event: self.event,
            detail: self.detail,
            actor: self.actor,
        })
    }
}

/// A value bound to an audit search's statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditParam {
    /// A text column's value (`device`, `event`, `actor`).
    Text(String),
    /// A time bound, nanoseconds since 1970 (`at_ns`), or the limit.
    Integer(i64),
}

/// An [`AuditQuery`] as SQL, for SQL backends: the statement reads
/// `at_ns, device, event, detail, actor` of table `audit_log` (an
/// `INTEGER PRIMARY KEY`/`BIGSERIAL` `id` orders entries recorded at the
/// same time), newest first, and its parameters, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditSql {
    /// The statement.
    pub sql: String,
    /// Its parameters, in order (`placeholder(1)` is the first).
    pub params: Vec<AuditParam>,
}

impl AuditSql {
    /// The statement for `query`, with placeholders written by
    /// `placeholder(n)` (`?1` for SQLite, `$1` for PostgreSQL). Only the
    /// criteria given become conditions, so that the database can use its
    /// indexes (by device, by time, by actor).
    pub fn new(query: &AuditQuery, placeholder: impl Fn(usize) -> String) -> Self {
        let mut conditions = Vec::new();
        let mut params = Vec::new();
        let mut bind = |column: &str, op: &str, value: AuditParam| {
            params.push(value);
            conditions.push(format!("{column} {op} {}", placeholder(params.len())));
        };
        if let Some(device) = &query.device {
            bind("device", "=", AuditParam::Text(device.to_string()));
        }
        if let Some(event) = &query.event {
            bind("event", "=", AuditParam::Text(event.clone()));
        }
        if let Some(actor) = &query.actor {
            bind("actor", "=", AuditParam::Text(actor.clone()));
        }
        if let Some(since) = query.since {
            bind("at_ns", ">=", AuditParam::Integer(nanos_clamped(since)));
        }
        if let Some(until) = query.until {
            bind("at_ns", "<", AuditParam::Integer(nanos_clamped(until)));
        }
        let mut sql = String::from("SELECT at_ns, device, event, detail, actor FROM audit_log");
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        params.push(AuditParam::Integer(
            i64::try_from(query.limit).unwrap_or(i64::MAX),
        ));
        sql.push_str(&format!(
            " ORDER BY at_ns DESC, id DESC LIMIT {}",
            placeholder(params.len())
        ));
        AuditSql { sql, params }
    }
}

/// [`nanos`], clamped to the range of `i64` (for search bounds, where a
/// time before or after every representable one is all that matters).
pub fn nanos_clamped(t: SystemTime) -> i64 {
    nanos(t, "search bound").unwrap_or(if t < UNIX_EPOCH { i64::MIN } else { i64::MAX })
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

    #[test]
    fn accounts_tokens_and_audit_entries_round_trip_and_hide_hashes() {
        let t = UNIX_EPOCH + Duration::new(1_796_083_200, 17);
        let account = Account {
            name: AccountName::parse("alice").unwrap(),
            role: Role::Helpdesk,
            password_hash: "$argon2id$v=19$HASH".into(),
            created_at: t,
            password_changed_at: t + Duration::from_secs(1),
        };
        let row = AccountRow::from_account(&account).unwrap();
        assert!(!format!("{row:?}").contains("HASH"));
        assert_eq!(row.into_account().unwrap(), account);
        let token = ApiToken {
            id: "t1".into(),
            label: "nightly".into(),
            role: Role::ReadOnly,
            secret_sha256: "ab".repeat(32),
            created_at: t,
            created_by: Some(account.name.clone()),
        };
        let row = TokenRow::from_token(&token).unwrap();
        assert!(!format!("{row:?}").contains(&"ab".repeat(32)));
        assert_eq!(row.into_token().unwrap(), token);
        let entry = AuditEntry::account_removed(t, &account.name).by("bob");
        assert_eq!(
            AuditRow::from_entry(&entry).unwrap().into_entry().unwrap(),
            entry
        );
        let mut bad = AccountRow::from_account(&account).unwrap();
        bad.role = "root".into();
        assert!(matches!(
            bad.into_account(),
            Err(OperationsError::CorruptRow { .. })
        ));
    }

    #[test]
    fn audit_sql_has_only_the_criteria_given() {
        let all = AuditSql::new(&AuditQuery::default(), |n| format!("${n}"));
        assert_eq!(
            all.sql,
            "SELECT at_ns, device, event, detail, actor FROM audit_log \
             ORDER BY at_ns DESC, id DESC LIMIT $1"
        );
        assert_eq!(all.params, vec![AuditParam::Integer(1000)]);
        let query = AuditQuery {
            actor: Some("alice".into()),
            since: Some(UNIX_EPOCH - Duration::from_secs(u64::MAX / 2)),
            until: Some(UNIX_EPOCH + Duration::from_secs(5)),
            limit: usize::MAX,
            ..AuditQuery::default()
        };
        let some = AuditSql::new(&query, |n| format!("?{n}"));
        assert_eq!(
            some.sql,
            "SELECT at_ns, device, event, detail, actor FROM audit_log \
             WHERE actor = ?1 AND at_ns >= ?2 AND at_ns < ?3 ORDER BY at_ns DESC, id DESC LIMIT ?4"
        );
        assert_eq!(
            some.params,
            vec![
                AuditParam::Text("alice".into()),
                AuditParam::Integer(i64::MIN),
                AuditParam::Integer(5_000_000_000),
                AuditParam::Integer(i64::MAX),
            ]
        );
    }
}
