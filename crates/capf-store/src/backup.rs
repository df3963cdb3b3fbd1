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
    Ok(total > 0)
}

impl SqliteStore {
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
    /// and opens it. The backup must be a CAPF database of a known schema
    /// version (an older one is migrated) that passes SQLite's integrity
    /// check; it is only read. A target holding data is replaced only
    /// with [`ExistingTarget::Replace`].
    ///
    /// # Errors
    /// [`StoreError::InvalidBackup`], [`StoreError::RestoreTargetNotEmpty`],
    /// [`StoreError::Io`], [`StoreError::Sqlite`].
    pub fn restore_from(
        backup: impl AsRef<Path>,
        target: impl AsRef<Path>,
        existing: ExistingTarget,
    ) -> Result<SqliteStore, StoreError> {
        let (backup, target) = (backup.as_ref(), target.as_ref());
        let invalid = |why: String| StoreError::InvalidBackup {
            path: backup.to_path_buf(),
            why,
        };
        if !nonempty_file(backup)? {
            return Err(invalid("missing or empty".into()));
        }
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
        if existing == ExistingTarget::Refuse && holds_data(target)? {
            return Err(StoreError::RestoreTargetNotEmpty {
                path: target.to_path_buf(),
            });
        }
        create_private_file(target)?;
        let what = format!("restoring {} into {}", backup.display(), target.display());
        let mut dst = Connection::open(target).map_err(StoreError::sqlite(&*what))?;
        dst.busy_timeout(Duration::from_secs(5))
            .map_err(StoreError::sqlite(&*what))?;
        // Leave WAL so that the page size may change with the copy; `open`
        // below turns it back on.
        let _mode: String = dst
            .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
            .map_err(StoreError::sqlite(&*what))?;
        {
            let backup = Backup::new(&src, &mut dst).map_err(StoreError::sqlite(&*what))?;
            copy_all(&backup, &what)?;
        }
        dst.close().map_err(|(_, e)| StoreError::sqlite(what)(e))?;
        drop(src);
        SqliteStore::open(target)
    }
}
