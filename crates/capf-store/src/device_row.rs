//! A [`Device`] as one row of `devices`, and back, through the shared
//! column mapping ([`DeviceRow`]).

use capf_operations::rows::{CertificateColumns, DeviceRow};
use capf_operations::{Device, DeviceName};
use rusqlite::types::Value;
use rusqlite::{Connection, Row, named_params};

use crate::StoreError;

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

/// Writes a device: replaces the row, or inserts it. The certificate flags
/// follow the records (`has_lsc`, `has_mic`).
pub(crate) fn save(conn: &Connection, device: &Device) -> Result<(), StoreError> {
    let row = DeviceRow::from_device(device)?;
    let context = || format!("saving device {}", row.name);
    let cert = |c: &Option<CertificateColumns>| {
        (
            c.as_ref().map(|c| c.der.clone()),
            c.as_ref().map(|c| c.subject.clone()),
            c.as_ref().map(|c| c.issuer.clone()),
            c.as_ref().map(|c| c.serial.clone()),
            c.as_ref().map(|c| c.not_before_secs),
            c.as_ref().map(|c| c.not_after_secs),
        )
    };
    let lsc = cert(&row.lsc);
    let mic = cert(&row.mic);
    let params = named_params! {
        ":name": row.name,
        ":description": row.description,
        ":key_spec": row.key_spec,
        ":auth_mode": row.auth_mode,
        ":auth_string": row.auth_string,
        ":failed_attempts": row.failed_attempts,
        ":locked": row.locked,
        ":operation": row.operation,
        ":completes_by_ns": row.completes_by_ns,
        ":status_kind": row.status_kind,
        ":status_operation": row.status_operation,
        ":status_reason": row.status_reason,
        ":status_at_ns": row.status_at_ns,
        ":security_mode": row.security_mode,
        ":has_lsc": row.has_lsc,
        ":has_mic": row.has_mic,
        ":lsc_der": lsc.0,
        ":lsc_subject": lsc.1,
        ":lsc_issuer": lsc.2,
        ":lsc_serial": lsc.3,
        ":lsc_not_before_secs": lsc.4,
        ":lsc_not_after_secs": lsc.5,
        ":mic_der": mic.0,
        ":mic_subject": mic.1,
        ":mic_issuer": mic.2,
        ":mic_serial": mic.3,
        ":mic_not_before_secs": mic.4,
        ":mic_not_after_secs": mic.5,
        ":key_generation_failures": row.key_generation_failures,
        ":last_error": row.last_error,
        ":last_error_at_ns": row.last_error_at_ns,
        ":lsc_revoked_at_ns": row.lsc_revoked_at_ns,
        ":lsc_revoked_reason": row.lsc_revoked_reason,
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

/// Reads the columns, each of its exact SQLite type, then the model checks
/// the values.
fn from_row(row: &Row<'_>) -> Result<Device, StoreError> {
    let raw_name: String = row
        .get("name")
        .map_err(StoreError::sqlite("reading a device row"))?;
    let key = raw_name.as_str();
    let bad = |why: String| StoreError::corrupt("devices", key, why);
    let get = |column: &str| -> Result<Value, StoreError> {
        row.get(column).map_err(StoreError::sqlite(format!(
            "reading {column} of device {key}"
        )))
    };
    let text = |column: &str| -> Result<Option<String>, StoreError> {
        match get(column)? {
            Value::Null => Ok(None),
            Value::Text(s) => Ok(Some(s)),
            other => Err(bad(format!("{column}: expected text, found {other:?}"))),
        }
    };
    let int = |column: &str| -> Result<Option<i64>, StoreError> {
        match get(column)? {
            Value::Null => Ok(None),
            Value::Integer(n) => Ok(Some(n)),
            other => Err(bad(format!(
                "{column}: expected an integer, found {other:?}"
            ))),
        }
    };
    let blob = |column: &str| -> Result<Option<Vec<u8>>, StoreError> {
        match get(column)? {
            Value::Null => Ok(None),
            Value::Blob(b) => Ok(Some(b)),
            other => Err(bad(format!("{column}: expected a blob, found {other:?}"))),
        }
    };
    let required_text = |column: &str| -> Result<String, StoreError> {
        text(column)?.ok_or_else(|| bad(format!("{column} is missing")))
    };
    let required_int = |column: &str| -> Result<i64, StoreError> {
        int(column)?.ok_or_else(|| bad(format!("{column} is missing")))
    };
    let flag = |column: &str| -> Result<bool, StoreError> {
        match int(column)? {
            Some(0) => Ok(false),
            Some(1) => Ok(true),
            other => Err(bad(format!("{column}: expected 0 or 1, found {other:?}"))),
        }
    };
    let certificate = |prefix: &str| -> Result<Option<CertificateColumns>, StoreError> {
        let Some(der) = blob(&format!("{prefix}_der"))? else {
            return Ok(None);
        };
        Ok(Some(CertificateColumns {
            der,
            subject: required_text(&format!("{prefix}_subject"))?,
            issuer: required_text(&format!("{prefix}_issuer"))?,
            serial: required_text(&format!("{prefix}_serial"))?,
            not_before_secs: required_int(&format!("{prefix}_not_before_secs"))?,
            not_after_secs: required_int(&format!("{prefix}_not_after_secs"))?,
        }))
    };
    // A struct literal: a column added to the row stops this from
    // compiling until it is read.
    let columns = DeviceRow {
        name: raw_name.clone(),
        description: required_text("description")?,
        key_spec: text("key_spec")?,
        auth_mode: required_text("auth_mode")?,
        auth_string: text("auth_string")?,
        failed_attempts: required_int("failed_attempts")?,
        locked: flag("locked")?,
        operation: required_text("operation")?,
        completes_by_ns: int("completes_by_ns")?,
        status_kind: required_text("status_kind")?,
        status_operation: text("status_operation")?,
        status_reason: text("status_reason")?,
        status_at_ns: int("status_at_ns")?,
        security_mode: required_text("security_mode")?,
        has_lsc: flag("has_lsc")?,
        has_mic: flag("has_mic")?,
        lsc: certificate("lsc")?,
        mic: certificate("mic")?,
        key_generation_failures: required_int("key_generation_failures")?,
        last_error: text("last_error")?,
        last_error_at_ns: int("last_error_at_ns")?,
        lsc_revoked_at_ns: int("lsc_revoked_at_ns")?,
        lsc_revoked_reason: text("lsc_revoked_reason")?,
    };
    Ok(columns.into_device()?)
}
