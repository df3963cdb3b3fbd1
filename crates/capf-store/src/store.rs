//! [`SqliteStore`]: opening the database (pragmas, migrations) and the
//! transaction helpers every change goes through.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::Connection;

use crate::group::GroupCommit;
use crate::{StoreError, schema};

/// How long a statement waits for another process's write lock before
/// failing with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The device store in one SQLite file: a
/// [`StoreBackend`](capf_operations::StoreBackend), and so a
/// [`SessionStore`](capf_operations::SessionStore) and an
/// [`OperatorStore`](capf_operations::OperatorStore) with the rules every
/// store shares.
///
/// * Durable: WAL mode with `synchronous=FULL`, so a change is answered
///   only once it is on disk.
/// * Every change is atomic: a session's commit checks the lease, records
///   the certificate, applies the change to the device, and appends the
///   audit entries in one transaction.
/// * Group commit: the store's own thread (`capf-store-commit`) writes
///   all changes, those queued at the same moment in one `BEGIN IMMEDIATE`
///   transaction and one fsync, each in its own savepoint; every caller is
///   answered only after that `COMMIT`, through its reply (a session's
///   calls) or on its own channel (a blocking caller).
/// * Leases are rows of the database, so two processes on one file exclude
///   each other too.
/// * For a database file, reads (`load`, `find`, histories) go through a
///   second connection: WAL lets them read the last committed state while
///   a batch is being written and synced.
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    /// Reads of a file database; `None` in memory (reads use `conn`).
    reader: Option<Mutex<Connection>>,
    path: Option<PathBuf>,
    group: GroupCommit,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens the database at `path`, creating it (file mode 0600 on Unix:
    /// it holds authentication strings) if needed, and brings its schema
    /// up to [`SCHEMA_VERSION`](crate::SCHEMA_VERSION).
    ///
    /// # Errors
    /// [`StoreError::SchemaTooNew`] for a database of a newer capf-store;
    /// [`StoreError::Io`] if the file cannot be created;
    /// [`StoreError::Sqlite`] if it is not a database or SQLite fails.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        create_private_file(path)?;
        let context = || format!("opening {}", path.display());
        let mut conn = Connection::open(path).map_err(StoreError::sqlite_with(context))?;
        configure(&conn, path)?;
        schema::migrate(&mut conn, path)?;
        let reader = Connection::open(path).map_err(StoreError::sqlite_with(context))?;
        configure(&reader, path)?;
        reader
            .pragma_update(None, "query_only", true)
            .map_err(StoreError::sqlite_with(context))?;
        let conn = Arc::new(Mutex::new(conn));
        Ok(SqliteStore {
            group: GroupCommit::start(conn.clone(), path)?,
            conn,
            reader: Some(Mutex::new(reader)),
            path: Some(path.to_path_buf()),
        })
    }

    /// A store in memory (tests, examples): the same schema and
    /// behaviour, nothing durable.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`] if SQLite fails.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let mut conn =
            Connection::open_in_memory().map_err(StoreError::sqlite("opening in memory"))?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(StoreError::sqlite("enabling foreign keys"))?;
        conn.set_prepared_statement_cache_capacity(crate::cached::CAPACITY);
        schema::migrate(&mut conn, Path::new(":memory:"))?;
        let conn = Arc::new(Mutex::new(conn));
        Ok(SqliteStore {
            group: GroupCommit::start(conn.clone(), Path::new(":memory:"))?,
            conn,
            reader: None,
            path: None,
        })
    }

    /// The database file (`None` in memory).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Reports the number of changes in each committed batch (group
    /// commit) to `observer`, e.g. a metrics histogram. It runs on the
    /// store's committer thread: it must be quick.
    pub fn set_batch_observer(&self, observer: Arc<dyn Fn(usize) + Send + Sync>) {
        self.group.set_observer(observer);
    }

    /// The schema version of the open database.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`] if SQLite fails.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        schema::version(&*self.lock()?)
    }

    /// Drops every device lease. Only for a server that has just started
    /// and holds the data directory's exclusive lock: any lease left in the
    /// database then belongs to a server that died (SIGKILL, power loss)
    /// and would otherwise keep its devices busy until it expired. Returns
    /// how many were dropped.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`] if SQLite fails.
    pub fn clear_stale_leases(&self) -> Result<usize, StoreError> {
        self.with_transaction(crate::lease_row::delete_all)
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction (the write lock is
    /// taken at once, so two writers never deadlock on an upgrade), shared
    /// with concurrent callers (group commit, see `group.rs`): `f` runs in
    /// its own savepoint, rolled back alone if it returns an error, and
    /// this returns once the transaction holding the change is committed
    /// (durable). Every change goes through here.
    pub(crate) fn with_transaction<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.group.run(f)
    }

    /// [`with_transaction`](Self::with_transaction) without waiting:
    /// `done` gets the result on the store's committer thread.
    pub(crate) fn with_transaction_then<T, F, D>(&self, f: F, done: D)
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        D: FnOnce(Result<T, StoreError>) + Send + 'static,
    {
        self.group.run_then(f, done);
    }

    pub(crate) fn lock(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        Ok(self.conn.lock().unwrap_or_else(|poisoned| {
            // A change panicked while it held the connection: its
            // transaction was never committed. Drop it and go on, rather
            // than refuse every later change.
            let conn = poisoned.into_inner();
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            self.conn.clear_poison();
            conn
        }))
    }

    /// The connection for reads: they see what was committed and never
    /// wait for a batch being written.
    pub(crate) fn read(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        match &self.reader {
            Some(reader) => reader.lock().map_err(|_| StoreError::Poisoned),
            None => self.lock(),
        }
    }
}

/// Creates the file with mode 0600 if it does not exist (an existing
/// file's mode is left alone).
pub(crate) fn create_private_file(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map_err(StoreError::io(path))?;
    Ok(())
}

/// Busy timeout, WAL, `synchronous=FULL`, foreign keys.
fn configure(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let context = |what: &str| format!("{what} on {}", path.display());
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(StoreError::sqlite(context("setting the busy timeout")))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(StoreError::sqlite(context("enabling WAL")))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Sqlite {
            context: context("enabling WAL"),
            source: rusqlite::Error::InvalidQuery,
        });
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(StoreError::sqlite(context("setting synchronous=FULL")))?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(StoreError::sqlite(context("enabling foreign keys")))?;
    conn.set_prepared_statement_cache_capacity(crate::cached::CAPACITY);
    Ok(())
}
