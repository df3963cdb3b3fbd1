//! Device leases as rows of `leases`: in the database, so that two
//! processes on one file exclude each other too.

use capf_operations::{DeviceName, Lease, OperationsError};
use rusqlite::{Connection, OptionalExtension};

use crate::StoreError;
use capf_operations::rows::{from_nanos, nanos_saturating as to_nanos_saturating};

/// The lease row of a device, expired or not.
pub(crate) fn load(conn: &Connection, name: &DeviceName) -> Result<Option<Lease>, StoreError> {
    let row: Option<(i64, i64)> = crate::cached::query_row(
        conn,
        "SELECT token, expires_ns FROM leases WHERE device = ?1",
        [name.as_str()],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
    .optional()
    .map_err(StoreError::sqlite_with(|| {
        format!("reading the lease on {name}")
    }))?;
    match row {
        Some((token, expires)) => Ok(Some(from_columns(name, token, expires)?)),
        None => Ok(None),
    }
}

/// A lease from its row's `token` and `expires_ns`.
pub(crate) fn from_columns(
    name: &DeviceName,
    token: i64,
    expires: i64,
) -> Result<Lease, StoreError> {
    let bad = |why: &str| StoreError::corrupt("leases", name.as_str(), why);
    Ok(Lease {
        device: name.clone(),
        token: u64::try_from(token).map_err(|_| bad("negative token"))?,
        expires: from_nanos(expires).ok_or_else(|| bad("expiry out of range"))?,
    })
}

/// Inserts or replaces the lease row of `lease.device`.
pub(crate) fn save(conn: &Connection, lease: &Lease) -> Result<(), StoreError> {
    let token = i64::try_from(lease.token).map_err(|_| {
        StoreError::from(OperationsError::store(format!(
            "lease token {} does not fit the leases table",
            lease.token
        )))
    })?;
    crate::cached::execute(
        conn,
        "INSERT INTO leases (device, token, expires_ns) VALUES (?1, ?2, ?3) \
         ON CONFLICT (device) DO UPDATE SET token = excluded.token, expires_ns = excluded.expires_ns",
        (lease.device.as_str(), token, to_nanos_saturating(lease.expires)),
    )
    .map(|_| ())
    .map_err(StoreError::sqlite_with(|| format!("taking the lease on {}", lease.device)))
}

/// Deletes the lease row of a device, if any.
pub(crate) fn delete(conn: &Connection, name: &DeviceName) -> Result<(), StoreError> {
    crate::cached::execute(
        conn,
        "DELETE FROM leases WHERE device = ?1",
        [name.as_str()],
    )
    .map(|_| ())
    .map_err(StoreError::sqlite_with(|| {
        format!("releasing the lease on {name}")
    }))
}

/// Deletes every lease row; returns how many.
pub(crate) fn delete_all(conn: &Connection) -> Result<usize, StoreError> {
    crate::cached::execute(conn, "DELETE FROM leases", [])
        .map_err(StoreError::sqlite("clearing stale leases"))
}
