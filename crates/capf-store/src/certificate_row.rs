//! Issued certificates as rows of `issued_certificates`: every LSC this
//! CAPF issued, kept after its device is removed.

use capf_operations::rows::IssuedRow;
use capf_operations::{CertificateHistory, DeviceName};
use std::time::SystemTime;

use capf_operations::rows::nanos;
use rusqlite::{Connection, Row, named_params, params};

use crate::StoreError;

/// The columns read, in this order (by position in [`from_row`]).
macro_rules! columns {
    () => {
        "device, serial, der, subject, issuer, not_before_secs, not_after_secs, issued_at_ns, \
         delivered, delivered_at_ns, superseded_at_ns, deleted_at_ns, revoked_at_ns"
    };
}

/// One certificate by serial, whatever its device.
pub(crate) fn load(
    conn: &Connection,
    serial_hex: &str,
) -> Result<Option<CertificateHistory>, StoreError> {
    let context = || format!("reading certificate {serial_hex}");
    let mut stmt = conn
        .prepare_cached(concat!(
            "SELECT ",
            columns!(),
            " FROM issued_certificates WHERE serial = ?1"
        ))
        .map_err(StoreError::sqlite_with(context))?;
    let mut rows = stmt
        .query([serial_hex])
        .map_err(StoreError::sqlite_with(context))?;
    match rows.next().map_err(StoreError::sqlite_with(context))? {
        Some(row) => Ok(Some(from_row(row)?)),
        None => Ok(None),
    }
}

/// Every certificate issued to a device, oldest first.
pub(crate) fn load_for(
    conn: &Connection,
    name: &DeviceName,
) -> Result<Vec<CertificateHistory>, StoreError> {
    let context = || format!("reading the certificates of {name}");
    let mut stmt = conn
        .prepare_cached(concat!(
            "SELECT ",
            columns!(),
            " FROM issued_certificates WHERE device = ?1 ORDER BY id"
        ))
        .map_err(StoreError::sqlite_with(context))?;
    let mut rows = stmt
        .query([name.as_str()])
        .map_err(StoreError::sqlite_with(context))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(StoreError::sqlite_with(context))? {
        out.push(from_row(row)?);
    }
    Ok(out)
}

/// Every certificate, oldest first.
pub(crate) fn load_all(conn: &Connection) -> Result<Vec<CertificateHistory>, StoreError> {
    let context = "reading every issued certificate";
    let mut stmt = conn
        .prepare_cached(concat!(
            "SELECT ",
            columns!(),
            " FROM issued_certificates ORDER BY id"
        ))
        .map_err(StoreError::sqlite(context))?;
    let mut rows = stmt.query([]).map_err(StoreError::sqlite(context))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(StoreError::sqlite(context))? {
        out.push(from_row(row)?);
    }
    Ok(out)
}

/// Inserts a certificate, or updates what can change of it (delivered,
/// superseded, deleted, revoked); what it is never changes.
pub(crate) fn save(conn: &Connection, history: &CertificateHistory) -> Result<(), StoreError> {
    let row = IssuedRow::from_history(history)?;
    conn.prepare_cached(
        "INSERT INTO issued_certificates (device, serial, der, subject, issuer, \
         not_before_secs, not_after_secs, issued_at_ns, delivered, delivered_at_ns, \
         superseded_at_ns, deleted_at_ns, revoked_at_ns) \
         VALUES (:device, :serial, :der, :subject, :issuer, :not_before, :not_after, \
         :issued_at, :delivered, :delivered_at, :superseded_at, :deleted_at, :revoked_at) \
         ON CONFLICT (serial) DO UPDATE SET delivered = excluded.delivered, \
         delivered_at_ns = excluded.delivered_at_ns, superseded_at_ns = excluded.superseded_at_ns, \
         deleted_at_ns = excluded.deleted_at_ns, revoked_at_ns = excluded.revoked_at_ns",
    )
    .and_then(|mut stmt| {
        stmt.execute(named_params! {
            ":device": row.device,
            ":serial": row.serial,
            ":der": row.der,
            ":subject": row.subject,
            ":issuer": row.issuer,
            ":not_before": row.not_before_secs,
            ":not_after": row.not_after_secs,
            ":issued_at": row.issued_at_ns,
            ":delivered": row.delivered,
            ":delivered_at": row.delivered_at_ns,
            ":superseded_at": row.superseded_at_ns,
            ":deleted_at": row.deleted_at_ns,
            ":revoked_at": row.revoked_at_ns,
        })
    })
    .map(|_| ())
    .map_err(StoreError::sqlite_with(|| {
        format!("recording certificate {} of {}", row.serial, row.device)
    }))
}

/// Inserts a certificate unless its serial is recorded: then writes
/// nothing and returns the one recorded. One statement when it is new.
pub(crate) fn insert(
    conn: &Connection,
    history: &CertificateHistory,
) -> Result<Option<CertificateHistory>, StoreError> {
    let row = IssuedRow::from_history(history)?;
    let inserted = conn
        .prepare_cached(
            "INSERT INTO issued_certificates (device, serial, der, subject, issuer, \
             not_before_secs, not_after_secs, issued_at_ns, delivered, delivered_at_ns, \
             superseded_at_ns, deleted_at_ns, revoked_at_ns) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
             ON CONFLICT (serial) DO NOTHING",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                row.device,
                row.serial,
                row.der,
                row.subject,
                row.issuer,
                row.not_before_secs,
                row.not_after_secs,
                row.issued_at_ns,
                row.delivered,
                row.delivered_at_ns,
                row.superseded_at_ns,
                row.deleted_at_ns,
                row.revoked_at_ns,
            ])
        })
        .map_err(StoreError::sqlite_with(|| {
            format!("recording certificate {} of {}", row.serial, row.device)
        }))?;
    if inserted == 1 {
        return Ok(None);
    }
    load(conn, &row.serial)
}

/// Marks a certificate of `device` delivered (the first delivery's time
/// stays) and returns it as it now is, in one statement; `None` if no
/// certificate with this serial was issued to `device`.
pub(crate) fn mark_delivered(
    conn: &Connection,
    serial_hex: &str,
    device: &DeviceName,
    at: SystemTime,
) -> Result<Option<CertificateHistory>, StoreError> {
    let context = || format!("recording the delivery of certificate {serial_hex} to {device}");
    let at = nanos(at, "delivery time")?;
    let mut stmt = conn
        .prepare_cached(concat!(
            "UPDATE issued_certificates SET delivered = 1, \
             delivered_at_ns = COALESCE(delivered_at_ns, ?3) \
             WHERE serial = ?1 AND device = ?2 RETURNING ",
            columns!()
        ))
        .map_err(StoreError::sqlite_with(context))?;
    let mut rows = stmt
        .query(params![serial_hex, device.as_str(), at])
        .map_err(StoreError::sqlite_with(context))?;
    match rows.next().map_err(StoreError::sqlite_with(context))? {
        Some(row) => Ok(Some(from_row(row)?)),
        None => Ok(None),
    }
}

/// Reads the columns of `columns!()` by position.
fn from_row(row: &Row<'_>) -> Result<CertificateHistory, StoreError> {
    let serial: String = row
        .get(1)
        .map_err(StoreError::sqlite("reading an issued certificate"))?;
    let read =
        |e: rusqlite::Error| StoreError::corrupt("issued_certificates", &serial, e.to_string());
    let columns = IssuedRow {
        device: row.get(0).map_err(read)?,
        serial: serial.clone(),
        der: row.get(2).map_err(read)?,
        subject: row.get(3).map_err(read)?,
        issuer: row.get(4).map_err(read)?,
        not_before_secs: row.get(5).map_err(read)?,
        not_after_secs: row.get(6).map_err(read)?,
        issued_at_ns: row.get(7).map_err(read)?,
        delivered: row.get(8).map_err(read)?,
        delivered_at_ns: row.get(9).map_err(read)?,
        superseded_at_ns: row.get(10).map_err(read)?,
        deleted_at_ns: row.get(11).map_err(read)?,
        revoked_at_ns: row.get(12).map_err(read)?,
    };
    Ok(columns.into_history()?)
}
