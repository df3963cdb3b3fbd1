//! The audit log as rows of `audit_log`. Never a secret in here; kept after
//! the device is removed.

use capf_operations::rows::{AuditParam, AuditRow, AuditSql};
use capf_operations::{AuditEntry, AuditQuery, DeviceName};
use rusqlite::types::Value;
use rusqlite::{Connection, Row};

use crate::StoreError;

pub(crate) fn append(conn: &Connection, entry: &AuditEntry) -> Result<(), StoreError> {
    let row = AuditRow::from_entry(entry)?;
    crate::cached::execute(
        conn,
        "INSERT INTO audit_log (at_ns, device, event, detail, actor) VALUES (?1, ?2, ?3, ?4, ?5)",
        (row.at_ns, &row.device, &row.event, &row.detail, &row.actor),
    )
    .map(|_| ())
    .map_err(StoreError::sqlite_with(|| match &entry.device {
        Some(device) => format!("auditing {device}"),
        None => format!("auditing {}", entry.event),
    }))
}

fn read(row: &Row<'_>) -> rusqlite::Result<AuditRow> {
    Ok(AuditRow {
        at_ns: row.get(0)?,
        device: row.get(1)?,
        event: row.get(2)?,
        detail: row.get(3)?,
        actor: row.get(4)?,
    })
}

/// A device's entries, oldest first.
pub(crate) fn load(conn: &Connection, name: &DeviceName) -> Result<Vec<AuditEntry>, StoreError> {
    let context = || format!("reading the audit log of {name}");
    let mut stmt = conn
        .prepare_cached(
            "SELECT at_ns, device, event, detail, actor FROM audit_log \
             WHERE device = ?1 ORDER BY id",
        )
        .map_err(StoreError::sqlite_with(context))?;
    let rows = stmt
        .query_map([name.as_str()], read)
        .map_err(StoreError::sqlite_with(context))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(
            row.map_err(StoreError::sqlite_with(context))?
                .into_entry()?,
        );
    }
    Ok(out)
}

/// The entries matching `query`, newest first.
pub(crate) fn find(conn: &Connection, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
    let context = || "searching the audit log".to_owned();
    let search = AuditSql::new(query, |n| format!("?{n}"));
    let params: Vec<Value> = search
        .params
        .into_iter()
        .map(|p| match p {
            AuditParam::Text(t) => Value::Text(t),
            AuditParam::Integer(n) => Value::Integer(n),
        })
        .collect();
    // Not cached: one of 32 shapes, run by operators now and then; the
    // cache keeps the statements sessions run all the time.
    let mut stmt = conn
        .prepare(&search.sql)
        .map_err(StoreError::sqlite_with(context))?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(params), read)
        .map_err(StoreError::sqlite_with(context))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(
            row.map_err(StoreError::sqlite_with(context))?
                .into_entry()?,
        );
    }
    Ok(out)
}

/// Checks that every entry reads back into the model (a restore's check).
pub(crate) fn check_all(conn: &Connection) -> Result<(), StoreError> {
    let context = || "reading the audit log".to_owned();
    let mut stmt = conn
        .prepare("SELECT at_ns, device, event, detail, actor FROM audit_log")
        .map_err(StoreError::sqlite_with(context))?;
    let rows = stmt
        .query_map([], read)
        .map_err(StoreError::sqlite_with(context))?;
    for row in rows {
        row.map_err(StoreError::sqlite_with(context))?
            .into_entry()?;
    }
    Ok(())
}
