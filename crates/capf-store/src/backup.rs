//! Online backup to a file, and restore from one, with SQLite's backup
//! API: the copy is a consistent snapshot even while the server runs.

use std::path::Path;
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::store::create_private_file;
use crate::{SCHEMA_VERSION, SqliteStore, StoreError, schema};

/// What [`SqliteStore::restore_from`] does with a target that already holds
/// data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExistingTarget {
    /// Refuse ([`StoreError::RestoreTargetNotEmpty`]). A missing file, an
    /// empty file or a CAPF database with no devices, certificates, audit
    /// entries or parameters is not refused.
    Refuse,
    /// Replace its contents (stop any server using it first).
    Replace,
}

/// How long a backup step waits for other connections' locks in all.
const BUSY_RETRIES: u32 = 100;
const BUSY_PAUSE: Duration = Duration::from_millis(50);

fn copy_all(backup: &Backup<'_, '_>, what: &str) -> Result<(), StoreError> {
    let mut retries = 0;
    loop {
        match backup.step(-1).map_err(StoreError::sqlite(what))? {
            StepResult::Done => return Ok(()),
            StepResult::More => {}
            StepResult::Busy | StepResult::Locked => {
                retries += 1;
                if retries > BUSY_RETRIES {
                    return Err(StoreError::Sqlite {
                        context: what.to_owned(),
                        source: rusqlite::Error::SqliteFailure(
                            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                            Some("the database stayed locked".into()),
                        ),
                    });
                }
                std::thread::sleep(BUSY_PAUSE);
            }
            // StepResult is non-exhaustive.
            _ => std::thread::sleep(BUSY_PAUSE),
        }
    }
}

fn nonempty_file(path: &Path) -> Result<bool, StoreError> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(m.len() > 0),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StoreError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

/// Whether `path` holds data that a restore would destroy.
fn holds_data(path: &Path) -> Result<bool, StoreError> {
    if !nonempty_file(path)? {
        return Ok(false);
    }
    let Ok(conn) = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE) else {
        return Ok(true);
    };
    let count = |table: &str| -> Option<i64> {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .ok()
    };
    let tables = [
        "devices",
        "issued_certificates",
        "audit_log",
        "service_parameters",
    ];
    let mut total = 0;
    for table in tables {
        match count(table) {
            Some(n) => total += n,
            // Not a CAPF database (or not a database at all).
            None => return Ok(true),
        }
    }
    // Since version 3; a database of an older version has none.
    for table in ["accounts", "api_tokens"] {
        total += count(table).unwrap_or(0);
    }
    Ok(total > 0)
}

impl SqliteStore {
    /// Whether the database file at `path` holds data a restore would
    /// destroy: devices, issued certificates, audit entries, service
    /// parameters, operator accounts or API tokens (a missing or empty file, or a fresh database, does not;
    /// a file that is not a CAPF database does).
    ///
    /// # Errors
    /// [`StoreError::Io`] if the file cannot be inspected.
    pub fn holds_data(path: impl AsRef<Path>) -> Result<bool, StoreError> {
        holds_data(path.as_ref())
    }

    /// Copies the whole database to a new file `path` (mode 0600), as one
    /// consistent snapshot, while the store stays in use. The copy is a
    /// self-contained file (rollback journal, not WAL).
    ///
    /// # Errors
    /// [`StoreError::BackupTargetExists`] if `path` exists and is not
    /// empty; [`StoreError::Io`], [`StoreError::Sqlite`].
    pub fn backup_to(&self, path: impl AsRef<Path>) -> Result<(), StoreError> {
        let path = path.as_ref();
        if nonempty_file(path)? {
            return Err(StoreError::BackupTargetExists {
                path: path.to_path_buf(),
            });
        }
        create_private_file(path)?;
        let what = format!("backing up to {}", path.display());
        let mut dst = Connection::open(path).map_err(StoreError::sqlite(&*what))?;
        {
            let src = self.lock()?;
            let backup = Backup::new(&src, &mut dst).map_err(StoreError::sqlite(&*what))?;
            copy_all(&backup, &what)?;
        }
        let _mode: String = dst
            .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
            .map_err(StoreError::sqlite(&*what))?;
        let check: String = dst
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(StoreError::sqlite(&*what))?;
        if check != "ok" {
            return Err(StoreError::InvalidBackup {
                path: path.to_path_buf(),
                why: format!("the copy fails its integrity check: {check}"),
            });
        }
        dst.close().map_err(|(_, e)| StoreError::sqlite(what)(e))?;
        Ok(())
    }

    /// Restores the backup file `backup` into the database file `target`
    /// and opens it.
    ///
    /// The backup is only read, never adopted: a fresh database is made
    /// from this crate's own schema and the rows of the known tables
    /// (devices, issued certificates, audit log, service parameters,
    /// operator accounts, API tokens) are copied into it, each value
    /// checked against the column's type, every device, certificate,
    /// account, token and audit entry read back through the model. Anything else in the backup
    /// (triggers, views, other tables, unknown service parameters) is left
    /// behind and named in [`Restored::ignored`]. An older schema version
    /// is copied column by column; a newer one is refused. The new database
    /// then replaces `target` in one rename; a target holding data is
    /// replaced only with [`ExistingTarget::Replace`]. No other process
    /// may use `target` meanwhile (the command line holds the data
    /// directory's lock).
    ///
    /// # Errors
    /// [`StoreError::InvalidBackup`], [`StoreError::RestoreTargetNotEmpty`],
    /// [`StoreError::Io`], [`StoreError::Sqlite`].
    pub fn restore_from(
        backup: impl AsRef<Path>,
        target: impl AsRef<Path>,
        existing: ExistingTarget,
    ) -> Result<Restored, StoreError> {
        let (backup, target) = (backup.as_ref(), target.as_ref());
        let invalid = |why: String| StoreError::InvalidBackup {
            path: backup.to_path_buf(),
            why,
        };
        if !nonempty_file(backup)? {
            return Err(invalid("missing or empty".into()));
        }
        {
            let src = Connection::open_with_flags(backup, OpenFlags::SQLITE_OPEN_READ_ONLY)
                .map_err(|e| invalid(e.to_string()))?;
            let version = schema::version(&src).map_err(|e| invalid(e.to_string()))?;
            if version == 0 {
                return Err(invalid("no CAPF schema in it".into()));
            }
            if version > SCHEMA_VERSION {
                return Err(invalid(format!(
                    "schema version {version} is newer than this capf-store knows ({SCHEMA_VERSION})"
                )));
            }
            let check: String = src
                .query_row("PRAGMA quick_check", [], |r| r.get(0))
                .map_err(|e| invalid(e.to_string()))?;
            if check != "ok" {
                return Err(invalid(format!("integrity check: {check}")));
            }
            let has_devices = src
                .query_row(
                    "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'devices'",
                    [],
                    |_| Ok(()),
                )
                .optional()
                .map_err(|e| invalid(e.to_string()))?;
            if has_devices.is_none() {
                return Err(invalid("no devices table".into()));
            }
        }
        if existing == ExistingTarget::Refuse && holds_data(target)? {
            return Err(StoreError::RestoreTargetNotEmpty {
                path: target.to_path_buf(),
            });
        }
        // The new database, next to the target, from our own schema.
        let fresh = sibling(target, "restoring");
        remove_database_files(&fresh)?;
        drop(SqliteStore::open(&fresh)?);
        let ignored = copy_rows(backup, &fresh).inspect_err(|_| {
            let _ = remove_database_files(&fresh);
        })?;
        // Closed cleanly, its log is checkpointed: no file of it but the
        // database itself is moved into place.
        for suffix in ["-wal", "-shm"] {
            remove_if_exists(&with_suffix(&fresh, suffix))?;
        }
        // The old database (if any) is checkpointed and closed, so that
        // no write-ahead log of it is left to be replayed into the new one.
        if nonempty_file(target)?
            && let Ok(old) = Connection::open(target)
        {
            let _ = old.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
        for suffix in ["-wal", "-shm"] {
            remove_if_exists(&with_suffix(target, suffix))?;
        }
        std::fs::rename(&fresh, target).map_err(StoreError::io(target))?;
        sync_parent(target);
        Ok(Restored {
            store: SqliteStore::open(target)?,
            ignored,
        })
    }
}

/// What [`SqliteStore::restore_from`] gives back.
#[derive(Debug)]
pub struct Restored {
    /// The restored database, open.
    pub store: SqliteStore,
    /// What the backup held that was not restored, in words (a trigger, a
    /// view, another table, an unknown service parameter).
    pub ignored: Vec<String>,
}

/// The tables a restore copies, in an order that respects nothing but
/// readability (they have no foreign keys between them).
/// A table the backup's schema version does not have yet is skipped (no
/// shared columns).
const RESTORED_TABLES: [&str; 6] = [
    "devices",
    "issued_certificates",
    "audit_log",
    "service_parameters",
    "accounts",
    "api_tokens",
];

/// Objects of our schema that a backup may hold without being reported.
const OUR_OBJECTS: [&str; 12] = [
    "devices",
    "issued_certificates",
    "audit_log",
    "leases",
    "counters",
    "service_parameters",
    "issued_certificates_by_device",
    "audit_log_by_device",
    "audit_log_by_time",
    "audit_log_by_actor",
    "accounts",
    "api_tokens",
];

/// Copies the rows of the known tables of `backup` into the fresh database
/// `fresh`; returns what was left behind.
fn copy_rows(backup: &Path, fresh: &Path) -> Result<Vec<String>, StoreError> {
    let what = format!("copying the rows of {}", backup.display());
    let sql = StoreError::sqlite(what.clone());
    let mut conn = Connection::open_with_flags(
        fresh,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(StoreError::sqlite(what.clone()))?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(StoreError::sqlite(what.clone()))?;
    let uri = format!("file:{}?mode=ro", uri_path(backup));
    conn.execute("ATTACH DATABASE ?1 AS backup", [&uri])
        .map_err(StoreError::sqlite(what.clone()))?;
    let mut ignored = Vec::new();
    {
        let mut stmt = conn
            .prepare("SELECT type, name FROM backup.sqlite_schema ORDER BY type, name")
            .map_err(StoreError::sqlite(what.clone()))?;
        let objects = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(StoreError::sqlite(what.clone()))?;
        for object in objects {
            let (kind, name) = object.map_err(StoreError::sqlite(what.clone()))?;
            if !OUR_OBJECTS.contains(&name.as_str()) && !name.starts_with("sqlite_autoindex_") {
                ignored.push(format!("{kind} {name:?}"));
            }
        }
    }
    let tx = conn
        .transaction()
        .map_err(StoreError::sqlite(what.clone()))?;
    for table in RESTORED_TABLES {
        if table == "service_parameters" {
            copy_parameters(&tx, &mut ignored).map_err(StoreError::sqlite(what.clone()))?;
            continue;
        }
        let ours = columns(&tx, "main", table).map_err(StoreError::sqlite(what.clone()))?;
        let theirs = columns(&tx, "backup", table).map_err(StoreError::sqlite(what.clone()))?;
        let shared: Vec<&String> = ours.iter().filter(|c| theirs.contains(c)).collect();
        if shared.is_empty() {
            continue;
        }
        let list = shared
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ");
        // STRICT tables refuse a value of the wrong type: the copy fails
        // rather than let one in.
        tx.execute(
            &format!("INSERT INTO main.{table} ({list}) SELECT {list} FROM backup.{table}"),
            [],
        )
        .map_err(|e| StoreError::InvalidBackup {
            path: backup.to_path_buf(),
            why: format!("{table}: {e}"),
        })?;
    }
    // Every device and certificate must read back into the model.
    crate::device_row::load_all(&tx).map_err(|e| StoreError::InvalidBackup {
        path: backup.to_path_buf(),
        why: e.to_string(),
    })?;
    crate::certificate_row::load_all(&tx).map_err(|e| StoreError::InvalidBackup {
        path: backup.to_path_buf(),
        why: e.to_string(),
    })?;
    // So must every account, token and audit entry.
    crate::account_row::load_all(&tx)
        .and_then(|_| crate::account_row::load_tokens(&tx))
        .and_then(|_| crate::audit_row::check_all(&tx))
        .map_err(|e| StoreError::InvalidBackup {
            path: backup.to_path_buf(),
            why: e.to_string(),
        })?;
    tx.commit().map_err(sql)?;
    conn.execute("DETACH DATABASE backup", [])
        .map_err(StoreError::sqlite(what.clone()))?;
    conn.close().map_err(|(_, e)| StoreError::sqlite(what)(e))?;
    Ok(ignored)
}

/// Copies the service parameters that this version knows and that
/// validate; the others are left behind.
fn copy_parameters(tx: &Connection, ignored: &mut Vec<String>) -> rusqlite::Result<()> {
    let rows: Vec<(String, String)> = {
        let mut stmt = tx.prepare("SELECT name, value FROM backup.service_parameters")?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?
    };
    for (name, value) in rows {
        let mut params = capf_operations::ServiceParameters::default();
        if params.set(&name, &value).is_ok() {
            tx.execute(
                "INSERT INTO main.service_parameters (name, value) VALUES (?1, ?2)",
                (&name, &value),
            )?;
        } else {
            ignored.push(format!("service parameter {name:?} = {value:?}"));
        }
    }
    Ok(())
}

fn columns(conn: &Connection, schema: &str, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(&format!("PRAGMA {schema}.table_info({table})"))?;
    stmt.query_map([], |r| r.get::<_, String>(1))?.collect()
}

/// A path as the path part of an SQLite URI (`%`, `?` and `#` escaped).
fn uri_path(path: &Path) -> String {
    let text = path.to_string_lossy();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3f"),
            '#' => out.push_str("%23"),
            c => out.push(c),
        }
    }
    out
}

fn with_suffix(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    std::path::PathBuf::from(name)
}

fn sibling(path: &Path, what: &str) -> std::path::PathBuf {
    with_suffix(path, &format!(".{what}"))
}

fn remove_if_exists(path: &Path) -> Result<(), StoreError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

/// Removes a database file and its write-ahead log files.
fn remove_database_files(path: &Path) -> Result<(), StoreError> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        remove_if_exists(&with_suffix(path, suffix))?;
    }
    Ok(())
}

/// Makes a rename in the directory of `path` durable (best effort).
fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent()
        && let Ok(dir) = std::fs::File::open(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
    {
        let _ = dir.sync_all();
    }
}
