//! A [`Device`] as one row of `devices`, and back, through the shared
//! column mapping ([`DeviceRow`]).

use capf_operations::rows::{CertificateColumns, DeviceRow};
use capf_operations::{Device, DeviceName, Lease};
use rusqlite::types::{ToSql, Value};
use rusqlite::{Connection, Row};

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

/// The position of `column` in [`COLUMNS`] (and so in every statement
/// below), found when the program is compiled: a name that is not a column
/// does not compile.
// The panic can only happen while compiling: the library calls this only
// through `column!`, inside `const { }`, where a panic is a compile error.
#[allow(clippy::panic)]
const fn index_of(column: &str) -> usize {
    let mut i = 0;
    while i < COLUMNS.len() {
        let c = COLUMNS[i].as_bytes();
        let w = column.as_bytes();
        if c.len() == w.len() {
            let mut j = 0;
            while j < c.len() && c[j] == w[j] {
                j += 1;
            }
            if j == c.len() {
                return i;
            }
        }
        i += 1;
    }
    panic!("not a column of devices")
}

/// A column's position, checked at compile time.
macro_rules! column {
    ($name:literal) => {
        const { index_of($name) }
    };
}

/// The statements, built once from [`COLUMNS`]: a row is read and written
/// by position (`?1` is `name`, `?2` `description`...), never by name.
struct Statements {
    update: String,
    insert: String,
    select_one: String,
    select_all: String,
    select_with_lease: String,
}

fn statements() -> &'static Statements {
    static SQL: std::sync::OnceLock<Statements> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let list = COLUMNS.join(", ");
        Statements {
            update: format!(
                "UPDATE devices SET {} WHERE name = ?1",
                COLUMNS
                    .iter()
                    .enumerate()
                    .skip(1)
                    .map(|(i, c)| format!("{c} = ?{}", i + 1))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            insert: format!(
                "INSERT INTO devices ({list}) VALUES ({})",
                (1..=COLUMNS.len())
                    .map(|i| format!("?{i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            select_one: format!("SELECT {list} FROM devices WHERE name = ?1"),
            select_all: format!("SELECT {list} FROM devices ORDER BY name"),
            // The lease's two columns follow the device's.
            select_with_lease: format!(
                "SELECT {list}, (SELECT token FROM leases WHERE device = ?1), \
                 (SELECT expires_ns FROM leases WHERE device = ?1) FROM devices WHERE name = ?1"
            ),
        }
    })
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
    // Each value beside its column's name, in the order of COLUMNS (the
    // names are checked against it in debug builds, so in every test).
    let values: [(&str, &dyn ToSql); COLUMNS.len()] = [
        ("name", &row.name),
        ("description", &row.description),
        ("key_spec", &row.key_spec),
        ("auth_mode", &row.auth_mode),
        ("auth_string", &row.auth_string),
        ("failed_attempts", &row.failed_attempts),
        ("locked", &row.locked),
        ("operation", &row.operation),
        ("completes_by_ns", &row.completes_by_ns),
        ("status_kind", &row.status_kind),
        ("status_operation", &row.status_operation),
        ("status_reason", &row.status_reason),
        ("status_at_ns", &row.status_at_ns),
        ("security_mode", &row.security_mode),
        ("has_lsc", &row.has_lsc),
        ("has_mic", &row.has_mic),
        ("lsc_der", &lsc.0),
        ("lsc_subject", &lsc.1),
        ("lsc_issuer", &lsc.2),
        ("lsc_serial", &lsc.3),
        ("lsc_not_before_secs", &lsc.4),
        ("lsc_not_after_secs", &lsc.5),
        ("mic_der", &mic.0),
        ("mic_subject", &mic.1),
        ("mic_issuer", &mic.2),
        ("mic_serial", &mic.3),
        ("mic_not_before_secs", &mic.4),
        ("mic_not_after_secs", &mic.5),
        ("key_generation_failures", &row.key_generation_failures),
        ("last_error", &row.last_error),
        ("last_error_at_ns", &row.last_error_at_ns),
        ("lsc_revoked_at_ns", &row.lsc_revoked_at_ns),
        ("lsc_revoked_reason", &row.lsc_revoked_reason),
    ];
    debug_assert!(
        values.iter().map(|(c, _)| *c).eq(COLUMNS.iter().copied()),
        "the values of a device row are bound in the order of COLUMNS"
    );
    let params = values.map(|(_, v)| v);
    // The row is nearly always there (every session's commit saves it):
    // an UPDATE, and an INSERT only when it changed nothing. An upsert
    // (INSERT .. ON CONFLICT DO UPDATE) checks the row's constraints twice
    // and cost about a tenth of the server's CPU per enrollment.
    let sql = statements();
    let changed = conn
        .prepare_cached(&sql.update)
        .and_then(|mut stmt| stmt.execute(&params[..]))
        .map_err(StoreError::sqlite_with(context))?;
    if changed == 0 {
        conn.prepare_cached(&sql.insert)
            .and_then(|mut stmt| stmt.execute(&params[..]))
            .map_err(StoreError::sqlite_with(context))?;
    }
    Ok(())
}

/// One device, or `None`.
pub(crate) fn load(conn: &Connection, name: &DeviceName) -> Result<Option<Device>, StoreError> {
    let context = || format!("loading device {name}");
    let mut stmt = conn
        .prepare_cached(&statements().select_one)
        .map_err(StoreError::sqlite_with(context))?;
    let mut rows = stmt
        .query([name.as_str()])
        .map_err(StoreError::sqlite_with(context))?;
    match rows.next().map_err(StoreError::sqlite_with(context))? {
        Some(row) => Ok(Some(from_row(row)?)),
        None => Ok(None),
    }
}

/// One device and its lease row (expired or not), in one statement; no
/// lease without its device (a lease row is deleted with its device).
pub(crate) fn load_with_lease(
    conn: &Connection,
    name: &DeviceName,
) -> Result<(Option<Device>, Option<Lease>), StoreError> {
    let context = || format!("loading device {name} and its lease");
    let mut stmt = conn
        .prepare_cached(&statements().select_with_lease)
        .map_err(StoreError::sqlite_with(context))?;
    let mut rows = stmt
        .query([name.as_str()])
        .map_err(StoreError::sqlite_with(context))?;
    let Some(row) = rows.next().map_err(StoreError::sqlite_with(context))? else {
        return Ok((None, None));
    };
    let device = from_row(row)?;
    let token: Option<i64> = row
        .get(COLUMNS.len())
        .map_err(StoreError::sqlite_with(context))?;
    let expires: Option<i64> = row
        .get(COLUMNS.len() + 1)
        .map_err(StoreError::sqlite_with(context))?;
    let lease = match (token, expires) {
        (Some(token), Some(expires)) => Some(crate::lease_row::from_columns(name, token, expires)?),
        _ => None,
    };
    Ok((Some(device), lease))
}

/// Every device, by name.
pub(crate) fn load_all(conn: &Connection) -> Result<Vec<Device>, StoreError> {
    let context = "loading every device";
    let mut stmt = conn
        .prepare_cached(&statements().select_all)
        .map_err(StoreError::sqlite(context))?;
    let mut rows = stmt.query([]).map_err(StoreError::sqlite(context))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(StoreError::sqlite(context))? {
        out.push(from_row(row)?);
    }
    Ok(out)
}

/// Reads the columns (by position: the statements list [`COLUMNS`] in
/// order), each of its exact SQLite type, then the model checks the values.
fn from_row(row: &Row<'_>) -> Result<Device, StoreError> {
    let raw_name: String = row
        .get(column!("name"))
        .map_err(StoreError::sqlite("reading a device row"))?;
    let key = raw_name.as_str();
    let bad = |why: String| StoreError::corrupt("devices", key, why);
    let get = |index: usize| -> Result<Value, StoreError> {
        row.get(index).map_err(StoreError::sqlite_with(|| {
            format!("reading {} of device {key}", COLUMNS[index])
        }))
    };
    let text = |index: usize| -> Result<Option<String>, StoreError> {
        match get(index)? {
            Value::Null => Ok(None),
            Value::Text(s) => Ok(Some(s)),
            other => Err(bad(format!(
                "{}: expected text, found {other:?}",
                COLUMNS[index]
            ))),
        }
    };
    let int = |index: usize| -> Result<Option<i64>, StoreError> {
        match get(index)? {
            Value::Null => Ok(None),
            Value::Integer(n) => Ok(Some(n)),
            other => Err(bad(format!(
                "{}: expected an integer, found {other:?}",
                COLUMNS[index]
            ))),
        }
    };
    let blob = |index: usize| -> Result<Option<Vec<u8>>, StoreError> {
        match get(index)? {
            Value::Null => Ok(None),
            Value::Blob(b) => Ok(Some(b)),
            other => Err(bad(format!(
                "{}: expected a blob, found {other:?}",
                COLUMNS[index]
            ))),
        }
    };
    let required_text = |index: usize| -> Result<String, StoreError> {
        text(index)?.ok_or_else(|| bad(format!("{} is missing", COLUMNS[index])))
    };
    let required_int = |index: usize| -> Result<i64, StoreError> {
        int(index)?.ok_or_else(|| bad(format!("{} is missing", COLUMNS[index])))
    };
    let flag = |index: usize| -> Result<bool, StoreError> {
        match int(index)? {
            Some(0) => Ok(false),
            Some(1) => Ok(true),
            other => Err(bad(format!(
                "{}: expected 0 or 1, found {other:?}",
                COLUMNS[index]
            ))),
        }
    };
    // `first` is the certificate's `_der` column; the other five follow
    // it (checked by a test).
    let certificate = |first: usize| -> Result<Option<CertificateColumns>, StoreError> {
        let Some(der) = blob(first)? else {
            return Ok(None);
        };
        Ok(Some(CertificateColumns {
            der,
            subject: required_text(first + 1)?,
            issuer: required_text(first + 2)?,
            serial: required_text(first + 3)?,
            not_before_secs: required_int(first + 4)?,
            not_after_secs: required_int(first + 5)?,
        }))
    };
    // A struct literal: a column added to the row stops this from
    // compiling until it is read.
    let columns = DeviceRow {
        name: raw_name.clone(),
        description: required_text(column!("description"))?,
        key_spec: text(column!("key_spec"))?,
        auth_mode: required_text(column!("auth_mode"))?,
        auth_string: text(column!("auth_string"))?,
        failed_attempts: required_int(column!("failed_attempts"))?,
        locked: flag(column!("locked"))?,
        operation: required_text(column!("operation"))?,
        completes_by_ns: int(column!("completes_by_ns"))?,
        status_kind: required_text(column!("status_kind"))?,
        status_operation: text(column!("status_operation"))?,
        status_reason: text(column!("status_reason"))?,
        status_at_ns: int(column!("status_at_ns"))?,
        security_mode: required_text(column!("security_mode"))?,
        has_lsc: flag(column!("has_lsc"))?,
        has_mic: flag(column!("has_mic"))?,
        lsc: certificate(column!("lsc_der"))?,
        mic: certificate(column!("mic_der"))?,
        key_generation_failures: required_int(column!("key_generation_failures"))?,
        last_error: text(column!("last_error"))?,
        last_error_at_ns: int(column!("last_error_at_ns"))?,
        lsc_revoked_at_ns: int(column!("lsc_revoked_at_ns"))?,
        lsc_revoked_reason: text(column!("lsc_revoked_reason"))?,
    };
    Ok(columns.into_device()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The six columns of a certificate, in this order, one after the other.
    const CERTIFICATE_SUFFIXES: [&str; 6] = [
        "der",
        "subject",
        "issuer",
        "serial",
        "not_before_secs",
        "not_after_secs",
    ];

    #[test]
    fn a_certificates_columns_follow_its_der_column() {
        for prefix in ["lsc", "mic"] {
            let first = index_of(&format!("{prefix}_der"));
            for (offset, suffix) in CERTIFICATE_SUFFIXES.iter().enumerate() {
                assert_eq!(COLUMNS[first + offset], format!("{prefix}_{suffix}"));
            }
        }
    }

    /// A statement SQLite has to parse again at each run (its plan
    /// depends on a bound value) costs more than the statement it saves.
    #[test]
    fn the_device_and_lease_statement_is_never_prepared_again() {
        use rusqlite::StatementStatus;
        let store = crate::SqliteStore::open_in_memory().unwrap();
        let conn = store.read().unwrap();
        for name in ["SEP000000000001", "SEP000000000002", "SEP000000000001"] {
            let name = DeviceName::parse(name).unwrap();
            assert_eq!(load_with_lease(&conn, &name).unwrap(), (None, None));
        }
        let stmt = conn
            .prepare_cached(&statements().select_with_lease)
            .unwrap();
        assert_eq!(stmt.get_status(StatementStatus::RePrepare), 0);
        drop(stmt);
        for name in ["SEP000000000001", "SEP000000000002", "SEP000000000001"] {
            let name = DeviceName::parse(name).unwrap();
            assert_eq!(load(&conn, &name).unwrap(), None);
        }
        let stmt = conn.prepare_cached(&statements().select_one).unwrap();
        assert_eq!(stmt.get_status(StatementStatus::RePrepare), 0, "one");
    }

    #[test]
    fn the_columns_are_those_of_the_table() {
        let store = crate::SqliteStore::open_in_memory().unwrap();
        let conn = store.read().unwrap();
        let stmt = conn.prepare("SELECT * FROM devices").unwrap();
        let names: Vec<String> = stmt.column_names().map(String::from).collect();
        assert_eq!(names, COLUMNS);
    }
}
