//! The one error type of this crate.

use std::path::PathBuf;

use capf_operations::OperationsError;

/// What can go wrong opening, migrating, reading or writing the SQLite
/// store. Through the [`DeviceStore`](capf_operations::DeviceStore) trait it
/// becomes an [`OperationsError`] (see the `From` impl).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite refused or failed a statement.
    #[error("SQLite: {context}: {source}")]
    Sqlite {
        /// What the store was doing.
        context: String,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A file could not be created, read or inspected.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// The database was written by a newer capf-store.
    #[error(
        "database {} has schema version {found}, newer than this capf-store knows ({supported}): \
         upgrade capf before opening it",
        path.display()
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// Its `PRAGMA user_version`.
        found: u32,
        /// The newest version this crate knows.
        supported: u32,
    },
    /// A row that does not decode into the model (hand-edited or corrupt).
    #[error("corrupt row in {table} ({key}): {why}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The row's key (device name, serial, parameter name).
        key: String,
        /// What is wrong.
        why: String,
    },
    /// A stored service parameter no longer validates.
    #[error("stored service parameter {name}: {source}")]
    StoredParameter {
        /// The parameter.
        name: String,
        /// Why it was refused.
        source: Box<OperationsError>,
    },
    /// The backup destination already holds data.
    #[error("{} already exists and is not empty: choose a new file for the backup", path.display())]
    BackupTargetExists {
        /// The destination.
        path: PathBuf,
    },
    /// The restore target already holds a database with data.
    #[error(
        "{} already holds a CAPF database with data (or another file): \
         refusing to overwrite it without being told to",
        path.display()
    )]
    RestoreTargetNotEmpty {
        /// The target.
        path: PathBuf,
    },
    /// The file given as a backup is not a usable CAPF database.
    #[error("{} is not a usable CAPF backup: {why}", path.display())]
    InvalidBackup {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The connection's lock was poisoned by a panic in another thread.
    #[error("SQLite store lock poisoned")]
    Poisoned,
    /// An error of the device model (unknown device, lease lost, invalid
    /// parameter...).
    #[error(transparent)]
    Operations(Box<OperationsError>),
}

impl StoreError {
    pub(crate) fn sqlite(context: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> Self {
        let context = context.into();
        move |source| StoreError::Sqlite { context, source }
    }

    /// [`Self::sqlite`] whose context is only written out when there is
    /// an error: statements on the hot path run thousands of times a
    /// second and nearly always succeed.
    pub(crate) fn sqlite_with(
        context: impl FnOnce() -> String,
    ) -> impl FnOnce(rusqlite::Error) -> Self {
        move |source| StoreError::Sqlite {
            context: context(),
            source,
        }
    }

    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| StoreError::Io { path, source }
    }

    pub(crate) fn corrupt(table: &'static str, key: &str, why: impl Into<String>) -> Self {
        StoreError::Corrupt {
            table,
            key: key.to_owned(),
            why: why.into(),
        }
    }
}

impl From<StoreError> for OperationsError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Operations(inner) => *inner,
            other => OperationsError::store(other),
        }
    }
}

impl From<OperationsError> for StoreError {
    fn from(e: OperationsError) -> Self {
        StoreError::Operations(Box::new(e))
    }
}
