//! A [`Device`] as one row of `devices`, and back.

use capf_operations::capf_auth::{
    AuthMode, AuthString, Certificates, DevicePolicy, FailureReason, Operation, OperationStatus,
    SecurityMode,
};
use capf_operations::capf_ca::KeySpec;
use capf_operations::{CertificateRecord, Device, DeviceName, LastError, Revocation};
use rusqlite::{Connection, Row, named_params};

use crate::StoreError;
use crate::time::{from_nanos, from_secs, to_nanos, to_secs};

/// Every column of `devices`, in schema order; the statements below are
/// built from this list, and [`save`] binds one parameter per column.
const COLUMNS: &[&str] = &[
    "name",
    "description",
    "key_spec",
    "auth_mode",
    "auth_string",
    "failed_attempts",
    "locked",
    "operation",
    "completes_by_ns",
    "status_kind",
    "status_operation",
    "status_reason",
    "status_at_ns",
    "security_mode",
    "has_lsc",
    "has_mic",
    "lsc_der",
    "lsc_subject",
    "lsc_issuer",
    "lsc_serial",
    "lsc_not_before_secs",
    "lsc_not_after_secs",
    "mic_der",
    "mic_subject",
    "mic_issuer",
    "mic_serial",
    "mic_not_before_secs",
    "mic_not_after_secs",
    "key_generation_failures",
    "last_error",
    "last_error_at_ns",
    "lsc_revoked_at_ns",
    "lsc_revoked_reason",
];

/// The UPDATE and INSERT of a whole row, built once from [`COLUMNS`].
fn statements() -> (&'static str, &'static str) {
    static SQL: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    let (update, insert) = SQL.get_or_init(|| {
        let update = format!(
            "UPDATE devices SET {} WHERE name = :name",
            COLUMNS
                .iter()
                .skip(1)
                .map(|c| format!("{c} = :{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let insert = format!(
            "INSERT INTO devices ({}) VALUES ({})",
            COLUMNS.join(", "),
            COLUMNS
                .iter()
                .map(|c| format!(":{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        (update, insert)
    });
    (update, insert)
}

/// How a row is written.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Save {
    /// Insert, or replace every field of the existing row.
    Upsert,
}

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
    match name {
        "locked-out" => Some(FailureReason::LockedOut),
        "deadline-passed" => Some(FailureReason::DeadlinePassed),
        "key-generation-failed" => Some(FailureReason::KeyGenerationFailed),
        "no-certificate" => Some(FailureReason::NoCertificate),
        "no-auth-string" => Some(FailureReason::NoAuthString),
        _ => None,
    }
}

/// The columns of one certificate (LSC or MIC).
struct CertColumns {
    der: Option<Vec<u8>>,
    subject: Option<String>,
    issuer: Option<String>,
    serial: Option<String>,
    not_before: Option<i64>,
    not_after: Option<i64>,
}

impl CertColumns {
    fn of(cert: Option<&CertificateRecord>) -> Result<Self, StoreError> {
        Ok(match cert {
            None => CertColumns {
                der: None,
                subject: None,
                issuer: None,
                serial: None,
                not_before: None,
                not_after: None,
            },
            Some(c) => CertColumns {
                der: Some(c.der.clone()),
                subject: Some(c.subject.clone()),
                issuer: Some(c.issuer.clone()),
                serial: Some(c.serial_hex.clone()),
                not_before: Some(to_secs(c.not_before, "certificate notBefore")?),
                not_after: Some(to_secs(c.not_after, "certificate notAfter")?),
            },
        })
    }
}

/// Writes a device. The certificate flags the policy decides with are
/// brought in step with the records first, as `MemoryStore` does.
pub(crate) fn save(conn: &Connection, device: &Device, how: Save) -> Result<(), StoreError> {
    // Destructured without `..`: a field added to the model stops this from
    // compiling until the store keeps it too.
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
        // Kept in step with the records, as MemoryStore does on insert and
        // update: `has_lsc` and `has_mic` below.
        certificates: _,
    } = policy;
    let (status_kind, status_operation, status_reason, status_at) = match *status {
        OperationStatus::Idle => ("idle", None, None, None),
        OperationStatus::Pending => ("pending", None, None, None),
        OperationStatus::Succeeded { operation, at } => (
            "succeeded",
            Some(operation.name()),
            None,
            Some(to_nanos(at, "status time")?),
        ),
        OperationStatus::Failed {
            operation,
            reason,
            at,
        } => (
            "failed",
            Some(operation.name()),
            Some(reason_name(reason)),
            Some(to_nanos(at, "status time")?),
        ),
    };
    let completes_by = completes_by
        .map(|t| to_nanos(t, "operation completes by"))
        .transpose()?;
    let last_error_at = last_error
        .as_ref()
        .map(|e| to_nanos(e.at, "last error time"))
        .transpose()?;
    let revoked_at = lsc_revoked
        .as_ref()
        .map(|r| to_nanos(r.at, "revocation time"))
        .transpose()?;
    let lsc_columns = CertColumns::of(lsc.as_ref())?;
    let mic_columns = CertColumns::of(mic.as_ref())?;
    let Save::Upsert = how;
    let context = || format!("saving device {name}");
    let params = named_params! {
        ":name": name.as_str(),
        ":description": description,
        ":key_spec": key.map(|k| k.to_string()),
        ":auth_mode": auth_mode.name(),
        ":auth_string": auth_string.as_ref().map(AuthString::expose),
        ":failed_attempts": failed_attempts,
        ":locked": locked,
        ":operation": operation.name(),
        ":completes_by_ns": completes_by,
        ":status_kind": status_kind,
        ":status_operation": status_operation,
        ":status_reason": status_reason,
        ":status_at_ns": status_at,
        ":security_mode": security_mode.name(),
        ":has_lsc": lsc.is_some(),
        ":has_mic": mic.is_some(),
        ":lsc_der": lsc_columns.der,
        ":lsc_subject": lsc_columns.subject,
        ":lsc_issuer": lsc_columns.issuer,
        ":lsc_serial": lsc_columns.serial,
        ":lsc_not_before_secs": lsc_columns.not_before,
        ":lsc_not_after_secs": lsc_columns.not_after,
        ":mic_der": mic_columns.der,
        ":mic_subject": mic_columns.subject,
        ":mic_issuer": mic_columns.issuer,
        ":mic_serial": mic_columns.serial,
        ":mic_not_before_secs": mic_columns.not_before,
        ":mic_not_after_secs": mic_columns.not_after,
        ":key_generation_failures": key_generation_failures,
        ":last_error": last_error.as_ref().map(|e| e.reason.as_str()),
        ":last_error_at_ns": last_error_at,
        ":lsc_revoked_at_ns": revoked_at,
        ":lsc_revoked_reason": lsc_revoked.as_ref().map(|r| r.reason.as_str()),
    };
    // The row is nearly always there (every session's commit saves it):
    // an UPDATE, and an INSERT only when it changed nothing. An upsert
    // (INSERT .. ON CONFLICT DO UPDATE) checks the row's constraints twice
    // and cost about a tenth of the server's CPU per enrollment.
    let (update, insert) = statements();
    let changed = conn
        .prepare_cached(update)
        .and_then(|mut stmt| stmt.execute(params))
        .map_err(StoreError::sqlite(context()))?;
    if changed == 0 {
        conn.prepare_cached(insert)
            .and_then(|mut stmt| stmt.execute(params))
            .map_err(StoreError::sqlite(context()))?;
    }
    Ok(())
}

/// One device, or `None`.
pub(crate) fn load(conn: &Connection, name: &DeviceName) -> Result<Option<Device>, StoreError> {
    let context = || format!("loading device {name}");
    let mut stmt = conn
        .prepare_cached("SELECT * FROM devices WHERE name = ?1")
        .map_err(StoreError::sqlite(context()))?;
    let mut rows = stmt
        .query([name.as_str()])
        .map_err(StoreError::sqlite(context()))?;
    match rows.next().map_err(StoreError::sqlite(context()))? {
        Some(row) => Ok(Some(from_row(row)?)),
        None => Ok(None),
    }
}

/// Every device, by name.
pub(crate) fn load_all(conn: &Connection) -> Result<Vec<Device>, StoreError> {
    let context = "loading every device";
    let mut stmt = conn
        .prepare_cached("SELECT * FROM devices ORDER BY name")
        .map_err(StoreError::sqlite(context))?;
    let mut rows = stmt.query([]).map_err(StoreError::sqlite(context))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(StoreError::sqlite(context))? {
        out.push(from_row(row)?);
    }
    Ok(out)
}

fn from_row(row: &Row<'_>) -> Result<Device, StoreError> {
    let raw_name: String = row
        .get("name")
        .map_err(StoreError::sqlite("reading a device row"))?;
    let key = raw_name.as_str();
    let bad = |why: String| StoreError::corrupt("devices", key, why);
    let get = |column: &str| -> Result<rusqlite::types::Value, StoreError> {
        row.get(column).map_err(StoreError::sqlite(format!(
            "reading {column} of device {key}"
        )))
    };
    let text = |column: &str| -> Result<Option<String>, StoreError> {
        match get(column)? {
            rusqlite::types::Value::Null => Ok(None),
            rusqlite::types::Value::Text(s) => Ok(Some(s)),
            other => Err(bad(format!("{column}: expected text, found {other:?}"))),
        }
    };
    let int = |column: &str| -> Result<Option<i64>, StoreError> {
        match get(column)? {
            rusqlite::types::Value::Null => Ok(None),
            rusqlite::types::Value::Integer(n) => Ok(Some(n)),
            other => Err(bad(format!(
                "{column}: expected an integer, found {other:?}"
            ))),
        }
    };
    let blob = |column: &str| -> Result<Option<Vec<u8>>, StoreError> {
        match get(column)? {
            rusqlite::types::Value::Null => Ok(None),
            rusqlite::types::Value::Blob(b) => Ok(Some(b)),
            other => Err(bad(format!("{column}: expected a blob, found {other:?}"))),
        }
    };
    let required_text = |column: &str| -> Result<String, StoreError> {
        text(column)?.ok_or_else(|| bad(format!("{column} is missing")))
    };
    let count = |column: &str| -> Result<u32, StoreError> {
        let n = int(column)?.ok_or_else(|| bad(format!("{column} is missing")))?;
        u32::try_from(n).map_err(|_| bad(format!("{column}: {n} out of range")))
    };
    let flag = |column: &str| -> Result<bool, StoreError> {
        match int(column)? {
            Some(0) => Ok(false),
            Some(1) => Ok(true),
            other => Err(bad(format!("{column}: expected 0 or 1, found {other:?}"))),
        }
    };
    let instant = |column: &str| -> Result<Option<std::time::SystemTime>, StoreError> {
        int(column)?
            .map(|n| from_nanos(n).ok_or_else(|| bad(format!("{column}: {n} out of range"))))
            .transpose()
    };
    let required_instant = |column: &str| -> Result<std::time::SystemTime, StoreError> {
        instant(column)?.ok_or_else(|| bad(format!("{column} is missing")))
    };
    let operation = |value: &str| -> Result<Operation, StoreError> {
        value.parse().map_err(|e| bad(format!("operation: {e}")))
    };
    let certificate = |prefix: &str| -> Result<Option<CertificateRecord>, StoreError> {
        let Some(der) = blob(&format!("{prefix}_der"))? else {
            return Ok(None);
        };
        let secs = |column: String| -> Result<std::time::SystemTime, StoreError> {
            let n = int(&column)?.ok_or_else(|| bad(format!("{column} is missing")))?;
            from_secs(n).ok_or_else(|| bad(format!("{column}: {n} out of range")))
        };
        Ok(Some(CertificateRecord {
            der,
            subject: required_text(&format!("{prefix}_subject"))?,
            issuer: required_text(&format!("{prefix}_issuer"))?,
            serial_hex: required_text(&format!("{prefix}_serial"))?,
            not_before: secs(format!("{prefix}_not_before_secs"))?,
            not_after: secs(format!("{prefix}_not_after_secs"))?,
        }))
    };

    let name = DeviceName::parse(key).map_err(|e| bad(e.to_string()))?;
    let auth_mode: AuthMode = required_text("auth_mode")?
        .parse()
        .map_err(|e| bad(format!("auth_mode: {e}")))?;
    let auth_string = text("auth_string")?
        .map(|s| AuthString::from_digits(s.as_bytes()))
        .transpose()
        .map_err(|e| bad(format!("auth_string: {e}")))?;
    let security_mode: SecurityMode = required_text("security_mode")?
        .parse()
        .map_err(|e| bad(format!("security_mode: {e}")))?;
    let status_operation = || -> Result<Operation, StoreError> {
        operation(
            &text("status_operation")?.ok_or_else(|| bad("status_operation is missing".into()))?,
        )
    };
    let status = match required_text("status_kind")?.as_str() {
        "idle" => OperationStatus::Idle,
        "pending" => OperationStatus::Pending,
        "succeeded" => OperationStatus::Succeeded {
            operation: status_operation()?,
            at: required_instant("status_at_ns")?,
        },
        "failed" => {
            let reason = required_text("status_reason")?;
            OperationStatus::Failed {
                operation: status_operation()?,
                reason: reason_from_name(&reason)
                    .ok_or_else(|| bad(format!("status_reason: unknown {reason:?}")))?,
                at: required_instant("status_at_ns")?,
            }
        }
        other => return Err(bad(format!("status_kind: unknown {other:?}"))),
    };
    let key_spec = text("key_spec")?
        .map(|s| s.parse::<KeySpec>())
        .transpose()
        .map_err(|e| bad(format!("key_spec: {e}")))?;
    let last_error = match text("last_error")? {
        None => None,
        Some(reason) => Some(LastError {
            reason,
            at: required_instant("last_error_at_ns")?,
        }),
    };
    let lsc_revoked = match instant("lsc_revoked_at_ns")? {
        None => None,
        Some(at) => Some(Revocation {
            at,
            reason: text("lsc_revoked_reason")?.unwrap_or_default(),
        }),
    };
    // Struct literals, not constructors: a field added to the model stops
    // this from compiling until the store keeps it too.
    let policy = DevicePolicy {
        auth_mode,
        auth_string,
        failed_attempts: count("failed_attempts")?,
        locked: flag("locked")?,
        operation: operation(&required_text("operation")?)?,
        completes_by: instant("completes_by_ns")?,
        status,
        security_mode,
        certificates: Certificates {
            lsc: flag("has_lsc")?,
            mic: flag("has_mic")?,
        },
    };
    Ok(Device {
        name,
        description: required_text("description")?,
        key: key_spec,
        policy,
        lsc: certificate("lsc")?,
        lsc_revoked,
        mic: certificate("mic")?,
        key_generation_failures: count("key_generation_failures")?,
        last_error,
    })
}
