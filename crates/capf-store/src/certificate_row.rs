//! Issued certificates as rows of `issued_certificates`: every LSC this
//! CAPF issued, kept after its device is removed.

use capf_operations::rows::IssuedRow;
use capf_operations::{CertificateHistory, DeviceName};
use rusqlite::{Connection, Row, named_params};

use crate::StoreError;

/// One certificate by serial, whatever its device.
pub(crate) fn load(
    conn: &Connection,
    serial_hex: &str,
) -> Result<Option<CertificateHistory>, StoreError> {
    let context = || format!("reading certificate {serial_hex}");
    let mut stmt = conn
        .prepare_cached("SELECT * FROM issued_certificates WHERE serial = ?1")
        .map_err(StoreError::sqlite(context()))?;
    let mut rows = stmt
        .query([serial_hex])
        .map_err(StoreError::sqlite(context()))?;
    match rows.next().map_err(StoreError::sqlite(context()))? {
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
        .prepare_cached("SELECT * FROM issued_certificates WHERE device = ?1 ORDER BY id")
        .map_err(StoreError::sqlite(context()))?;
    let mut rows = stmt
        .query([name.as_str()])
        .map_err(StoreError::sqlite(context()))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(StoreError::sqlite(context()))? {
        out.push(from_row(row)?);
    }
    Ok(out)
}

/// Every certificate, oldest first.
pub(crate) fn load_all(conn: &Connection) -> Result<Vec<CertificateHistory>, StoreError> {
    let context = "reading every issued certificate";
    let mut stmt = conn
        .prepare_cached("SELECT * FROM issued_certificates ORDER BY id")
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
    .map_err(StoreError::sqlite(format!(
        "recording certificate {} of {}",
        row.serial, row.device
    )))
}

fn from_row(row: &Row<'_>) -> Result<CertificateHistory, StoreError> {
    let serial: String = row
        .get("serial")
        .map_err(StoreError::sqlite("reading an issued certificate"))?;
    let read =
        |e: rusqlite::Error| StoreError::corrupt("issued_certificates", &serial, e.to_string());
    let columns = IssuedRow {
        device: row.get("device").map_err(read)?,
        serial: serial.clone(),
        der: row.get("der").map_err(read)?,
        subject: row.get("subject").map_err(read)?,
        issuer: row.get("issuer").map_err(read)?,
        not_before_secs: row.get("not_before_secs").map_err(read)?,
        not_after_secs: row.get("not_after_secs").map_err(read)?,
        issued_at_ns: row.get("issued_at_ns").map_err(read)?,
        delivered: row.get("delivered").map_err(read)?,
        delivered_at_ns: row.get("delivered_at_ns").map_err(read)?,
        superseded_at_ns: row.get("superseded_at_ns").map_err(read)?,
        deleted_at_ns: row.get("deleted_at_ns").map_err(read)?,
        revoked_at_ns: row.get("revoked_at_ns").map_err(read)?,
    };
    Ok(columns.into_history()?)
}
