//! The audit log as rows of `audit_log`. Never a secret in here; kept after
//! the device is removed.

use capf_operations::{AuditEntry, DeviceName};
use rusqlite::Connection;

use crate::StoreError;
use capf_operations::rows::{from_nanos, nanos as to_nanos};

pub(crate) fn append(conn: &Connection, entry: &AuditEntry) -> Result<(), StoreError> {
    let at = to_nanos(entry.at, "audit time")?;
    crate::cached::execute(
        conn,
        "INSERT INTO audit_log (at_ns, device, event, detail) VALUES (?1, ?2, ?3, ?4)",
        (at, entry.device.as_str(), &entry.event, &entry.detail),
    )
    .map(|_| ())
    .map_err(StoreError::sqlite(format!("auditing {}", entry.device)))
}

/// A device's entries, oldest first.
pub(crate) fn load(conn: &Connection, name: &DeviceName) -> Result<Vec<AuditEntry>, StoreError> {
    let context = || format!("reading the audit log of {name}");
    let mut stmt = conn
        .prepare_cached("SELECT at_ns, event, detail FROM audit_log WHERE device = ?1 ORDER BY id")
        .map_err(StoreError::sqlite(context()))?;
    let mut rows = stmt
        .query([name.as_str()])
        .map_err(StoreError::sqlite(context()))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(StoreError::sqlite(context()))? {
        let at: i64 = row.get(0).map_err(StoreError::sqlite(context()))?;
        out.push(AuditEntry {
            at: from_nanos(at).ok_or_else(|| {
                StoreError::corrupt("audit_log", name.as_str(), "time out of range")
            })?,
            device: name.clone(),
            event: row.get(1).map_err(StoreError::sqlite(context()))?,
            detail: row.get(2).map_err(StoreError::sqlite(context()))?,
        });
    }
    Ok(out)
}
