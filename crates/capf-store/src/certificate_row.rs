//! Issued certificates as rows of `issued_certificates`: every LSC this
//! CAPF issued, kept after its device is removed.

use std::time::SystemTime;

use capf_operations::{CertificateHistory, CertificateRecord, DeviceName, IssuedRecord};
use rusqlite::{Connection, Row, named_params};

use crate::StoreError;
use crate::time::{from_nanos, from_secs, to_nanos, to_secs};

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
    let record = &history.record;
    let c = &record.certificate;
    let nanos = |t: Option<SystemTime>, what| t.map(|t| to_nanos(t, what)).transpose();
    let not_before = to_secs(c.not_before, "certificate notBefore")?;
    let not_after = to_secs(c.not_after, "certificate notAfter")?;
    let issued_at = to_nanos(record.issued_at, "issue time")?;
    let delivered_at = nanos(history.delivered_at, "delivery time")?;
    let superseded_at = nanos(history.superseded_at, "supersession time")?;
    let deleted_at = nanos(history.deleted_at, "deletion time")?;
    let revoked_at = nanos(history.revoked_at, "revocation time")?;
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
            ":device": record.device.as_str(),
            ":serial": c.serial_hex,
            ":der": c.der,
            ":subject": c.subject,
            ":issuer": c.issuer,
            ":not_before": not_before,
            ":not_after": not_after,
            ":issued_at": issued_at,
            ":delivered": record.delivered,
            ":delivered_at": delivered_at,
            ":superseded_at": superseded_at,
            ":deleted_at": deleted_at,
            ":revoked_at": revoked_at,
        })
    })
    .map(|_| ())
    .map_err(StoreError::sqlite(format!(
        "recording certificate {} of {}",
        c.serial_hex, record.device
    )))
}

fn from_row(row: &Row<'_>) -> Result<CertificateHistory, StoreError> {
    let serial: String = row
        .get("serial")
        .map_err(StoreError::sqlite("reading an issued certificate"))?;
    let bad = |why: String| StoreError::corrupt("issued_certificates", &serial, why);
    let read = |e: rusqlite::Error| bad(e.to_string());
    let device: String = row.get("device").map_err(read)?;
    let nanos = |column: &str| -> Result<Option<SystemTime>, StoreError> {
        row.get::<_, Option<i64>>(column)
            .map_err(read)?
            .map(|n| from_nanos(n).ok_or_else(|| bad(format!("{column}: {n} out of range"))))
            .transpose()
    };
    let secs = |column: &str| -> Result<SystemTime, StoreError> {
        let n: i64 = row.get(column).map_err(read)?;
        from_secs(n).ok_or_else(|| bad(format!("{column}: {n} out of range")))
    };
    let record = IssuedRecord {
        device: DeviceName::parse(&device).map_err(|e| bad(e.to_string()))?,
        certificate: CertificateRecord {
            der: row.get("der").map_err(read)?,
            subject: row.get("subject").map_err(read)?,
            issuer: row.get("issuer").map_err(read)?,
            serial_hex: serial.clone(),
            not_before: secs("not_before_secs")?,
            not_after: secs("not_after_secs")?,
        },
        issued_at: nanos("issued_at_ns")?.ok_or_else(|| bad("issued_at_ns is missing".into()))?,
        delivered: row.get("delivered").map_err(read)?,
    };
    Ok(CertificateHistory {
        record,
        delivered_at: nanos("delivered_at_ns")?,
        superseded_at: nanos("superseded_at_ns")?,
        deleted_at: nanos("deleted_at_ns")?,
        revoked_at: nanos("revoked_at_ns")?,
    })
}
