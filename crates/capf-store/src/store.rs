//! [`SqliteStore`]: opening, the transaction helper, and the
//! [`DeviceStore`] implementation.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use capf_operations::{
    AuditEntry, CertificateRecord, CompletedWork, Deferred, Device, DeviceName, DevicePage,
    DeviceQuery, DeviceStore, IssuedRecord, Lease, OperationsError, SessionCommit, audit_entries,
};
use rusqlite::{Connection, OptionalExtension, Row, named_params};

use crate::device_row::{self, Save};
use crate::group::GroupCommit;
use crate::time::{from_nanos, from_secs, to_nanos, to_nanos_saturating, to_secs};
use crate::{StoreError, schema};

/// How long a statement waits for another process's write lock before
/// failing with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A certificate CAPF issued, with what became of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateHistory {
    /// The record as [`DeviceStore::issued_certificates`] returns it.
    pub record: IssuedRecord,
    /// When the phone confirmed it stored it.
    pub delivered_at: Option<SystemTime>,
    /// When a later certificate replaced it as the device's LSC.
    pub superseded_at: Option<SystemTime>,
    /// When a delete operation removed it from the phone.
    pub deleted_at: Option<SystemTime>,
}

/// A [`DeviceStore`] in one SQLite file.
///
/// * Durable: WAL mode with `synchronous=FULL`, so a method that changed
///   something returns only once the change is on disk.
/// * Every change is atomic; a commit ([`DeviceStore::commit`]) checks the
///   lease, records the certificate, applies [`Device::apply_commit`],
///   saves the device and appends the audit entries together.
/// * Group commit: the store's own thread (`capf-store-commit`) writes
///   all changes, those queued at the same moment in one `BEGIN IMMEDIATE`
///   transaction and one fsync, each in its own savepoint; every caller is
///   answered only after that `COMMIT`. Blocking callers wait on their own
///   condition; an async server uses the deferred calls
///   ([`DeviceStore::commit_deferred`], [`DeviceStore::lease_and_load_deferred`])
///   and no thread of its own waits.
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
        let mut conn = Connection::open(path).map_err(StoreError::sqlite(context()))?;
        configure(&conn, path)?;
        schema::migrate(&mut conn, path)?;
        let reader = Connection::open(path).map_err(StoreError::sqlite(context()))?;
        configure(&reader, path)?;
        reader
            .pragma_update(None, "query_only", true)
            .map_err(StoreError::sqlite(context()))?;
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

    /// The schema version of the open database.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`] if SQLite fails.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        schema::version(&*self.lock()?)
    }

    /// Appends an operator action to a device's audit log, e.g.
    /// `("operator", "operation set to install")` or `("operator", "string
    /// armed")`. The detail must never contain a secret (the string
    /// itself). The device need not exist (e.g. "removed").
    ///
    /// # Errors
    /// [`StoreError::TimeOutOfRange`] or [`StoreError::Sqlite`].
    pub fn record_operator_event(
        &self,
        device: &DeviceName,
        event: &str,
        detail: &str,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        let entry = AuditEntry {
            at,
            device: device.clone(),
            event: event.to_owned(),
            detail: detail.to_owned(),
        };
        self.with_transaction(move |tx| insert_audit(tx, &entry))
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
        self.with_transaction(|tx| {
            crate::cached::execute(tx, "DELETE FROM leases", [])
                .map_err(StoreError::sqlite("clearing stale leases"))
        })
    }

    /// Every certificate issued to a device, oldest first, with when it
    /// was delivered, superseded or deleted.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`] or [`StoreError::Corrupt`].
    pub fn certificate_history(
        &self,
        name: &DeviceName,
    ) -> Result<Vec<CertificateHistory>, StoreError> {
        let conn = self.read()?;
        let context = || format!("reading the certificates of {name}");
        let mut stmt = conn
            .prepare_cached("SELECT * FROM issued_certificates WHERE device = ?1 ORDER BY id")
            .map_err(StoreError::sqlite(context()))?;
        let mut rows = stmt
            .query([name.as_str()])
            .map_err(StoreError::sqlite(context()))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(StoreError::sqlite(context()))? {
            out.push(history_from_row(row)?);
        }
        Ok(out)
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

    /// [`with_transaction_then`](Self::with_transaction_then), answered as
    /// soon as `f` ran, before the transaction is durable (see
    /// `GroupCommit::run_early_then`).
    pub(crate) fn with_transaction_early_then<T, F, D>(&self, f: F, done: D)
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        D: FnOnce(Result<T, StoreError>) + Send + 'static,
    {
        self.group.run_early_then(f, done);
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

/// Deletes the lease row if it is still this lease's (a no-op otherwise).
fn release_in(tx: &Connection, lease: &Lease) -> Result<(), StoreError> {
    let Some(token) = token_column(lease.token) else {
        return Ok(());
    };
    let device = &lease.device;
    crate::cached::execute(
        tx,
        "DELETE FROM leases WHERE device = ?1 AND token = ?2",
        (device.as_str(), token),
    )
    .map(|_| ())
    .map_err(StoreError::sqlite(format!(
        "releasing the lease on {device}"
    )))
}

fn insert_audit(conn: &Connection, entry: &AuditEntry) -> Result<(), StoreError> {
    let at = to_nanos(entry.at, "audit time")?;
    conn.prepare_cached(
        "INSERT INTO audit_log (at_ns, device, event, detail) VALUES (?1, ?2, ?3, ?4)",
    )
    .and_then(|mut stmt| stmt.execute((at, entry.device.as_str(), &entry.event, &entry.detail)))
    .map_err(StoreError::sqlite(format!("auditing {}", entry.device)))?;
    Ok(())
}

/// Records an issued certificate. The same record committed again (a
/// retry after an error that hid a success) is accepted once; another
/// certificate with the same serial is refused.
fn insert_issued(conn: &Connection, record: &IssuedRecord) -> Result<(), StoreError> {
    let c = &record.certificate;
    let context = || {
        format!(
            "recording certificate {} of {}",
            c.serial_hex, record.device
        )
    };
    let existing: Option<(String, Vec<u8>)> = crate::cached::query_row(
        conn,
        "SELECT device, der FROM issued_certificates WHERE serial = ?1",
        [&c.serial_hex],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
    .optional()
    .map_err(StoreError::sqlite(context()))?;
    if let Some((device, der)) = existing {
        if device == record.device.as_str() && der == c.der {
            return Ok(());
        }
        return Err(OperationsError::Store(format!(
            "serial {} was already issued to {device}",
            c.serial_hex
        ))
        .into());
    }
    let issued_at = to_nanos(record.issued_at, "issue time")?;
    let delivered_at = record.delivered.then_some(issued_at);
    let not_before = to_secs(c.not_before, "certificate notBefore")?;
    let not_after = to_secs(c.not_after, "certificate notAfter")?;
    conn.prepare_cached(
        "INSERT INTO issued_certificates (device, serial, der, subject, issuer, \
         not_before_secs, not_after_secs, issued_at_ns, delivered, delivered_at_ns) \
         VALUES (:device, :serial, :der, :subject, :issuer, :not_before, :not_after, \
         :issued_at, :delivered, :delivered_at)",
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
        })
    })
    .map_err(StoreError::sqlite(context()))?;
    Ok(())
}

fn history_from_row(row: &Row<'_>) -> Result<CertificateHistory, StoreError> {
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
    })
}

fn unknown(name: &DeviceName) -> StoreError {
    OperationsError::UnknownDevice {
        name: name.to_string(),
    }
    .into()
}

fn token_column(token: u64) -> Option<i64> {
    i64::try_from(token).ok()
}

/// The whole of [`DeviceStore::commit`] (and, when `release`, of
/// [`DeviceStore::release_lease`]), inside its transaction.
fn commit_in(
    conn: &Connection,
    lease: &Lease,
    commit: &SessionCommit,
    release: bool,
) -> Result<Device, StoreError> {
    let name = &lease.device;
    // Only the token is checked, as in MemoryStore: a lease past its
    // expiry that nobody took over may still commit.
    let held: Option<i64> = crate::cached::query_row(
        conn,
        "SELECT token FROM leases WHERE device = ?1",
        [name.as_str()],
        |row| row.get(0),
    )
    .optional()
    .map_err(StoreError::sqlite(format!("checking the lease on {name}")))?;
    if held.is_none() || held != token_column(lease.token) {
        return Err(OperationsError::LeaseLost {
            name: name.to_string(),
        }
        .into());
    }
    let mut device = device_row::load(conn, name)?.ok_or_else(|| unknown(name))?;
    let delivered = match commit {
        SessionCommit::Issued(record) => {
            if &record.device != name {
                return Err(OperationsError::Store(format!(
                    "a certificate issued to {} was committed under the lease of {name}",
                    record.device
                ))
                .into());
            }
            insert_issued(conn, record)?;
            None
        }
        SessionCommit::Completed {
            work: CompletedWork::Installed { serial_hex },
            at,
            ..
        } => mark_delivered(conn, name, serial_hex, *at)?,
        _ => None,
    };
    let lsc_before = device.lsc.as_ref().map(|c| c.serial_hex.clone());
    device.apply_commit(commit, delivered.as_ref());
    if let (Some(old), SessionCommit::Completed { at, .. }) = (lsc_before, commit) {
        let now = device.lsc.as_ref().map(|c| c.serial_hex.as_str());
        if now != Some(old.as_str()) {
            let column = if now.is_none() {
                "deleted_at_ns"
            } else {
                "superseded_at_ns"
            };
            crate::cached::execute(
                conn,
                &format!(
                    "UPDATE issued_certificates SET {column} = ?1 \
                     WHERE device = ?2 AND serial = ?3 \
                     AND superseded_at_ns IS NULL AND deleted_at_ns IS NULL"
                ),
                (to_nanos(*at, "completion time")?, name.as_str(), &old),
            )
            .map_err(StoreError::sqlite(format!("retiring certificate {old}")))?;
        }
    }
    device_row::save(conn, &device, Save::Update)?;
    for entry in audit_entries(name, commit) {
        insert_audit(conn, &entry)?;
    }
    if release {
        release_in(conn, lease)?;
    }
    Ok(device)
}

/// Marks the issued certificate delivered and returns it.
fn mark_delivered(
    conn: &Connection,
    name: &DeviceName,
    serial_hex: &str,
    at: SystemTime,
) -> Result<Option<IssuedRecord>, StoreError> {
    let context = || format!("marking certificate {serial_hex} of {name} delivered");
    let changed = crate::cached::execute(
        conn,
        "UPDATE issued_certificates SET delivered = 1, \
             delivered_at_ns = COALESCE(delivered_at_ns, ?1) \
             WHERE device = ?2 AND serial = ?3",
        (to_nanos(at, "delivery time")?, name.as_str(), serial_hex),
    )
    .map_err(StoreError::sqlite(context()))?;
    if changed == 0 {
        return Ok(None);
    }
    let mut stmt = conn
        .prepare_cached("SELECT * FROM issued_certificates WHERE device = ?1 AND serial = ?2")
        .map_err(StoreError::sqlite(context()))?;
    let mut rows = stmt
        .query((name.as_str(), serial_hex))
        .map_err(StoreError::sqlite(context()))?;
    match rows.next().map_err(StoreError::sqlite(context()))? {
        Some(row) => Ok(Some(history_from_row(row)?.record)),
        None => Ok(None),
    }
}

fn acquire_in(
    conn: &Connection,
    name: &DeviceName,
    now: SystemTime,
    ttl: Duration,
) -> Result<Lease, StoreError> {
    if !device_row::exists(conn, name)? {
        return Err(unknown(name));
    }
    take_lease_in(conn, name, now, ttl)
}

/// The lease and the device in one change (the device is read in the same
/// transaction that takes its lease).
fn lease_and_load_in(
    conn: &Connection,
    name: &DeviceName,
    now: SystemTime,
    ttl: Duration,
) -> Result<(Lease, Device), StoreError> {
    let device = device_row::load(conn, name)?.ok_or_else(|| unknown(name))?;
    Ok((take_lease_in(conn, name, now, ttl)?, device))
}

/// Takes the lease on an existing device unless another unexpired one is
/// held.
fn take_lease_in(
    conn: &Connection,
    name: &DeviceName,
    now: SystemTime,
    ttl: Duration,
) -> Result<Lease, StoreError> {
    let context = || format!("taking the lease on {name}");
    let held: Option<i64> = crate::cached::query_row(
        conn,
        "SELECT expires_ns FROM leases WHERE device = ?1",
        [name.as_str()],
        |row| row.get(0),
    )
    .optional()
    .map_err(StoreError::sqlite(context()))?;
    if held.is_some_and(|expires| expires > to_nanos_saturating(now)) {
        return Err(OperationsError::DeviceBusy {
            name: name.to_string(),
        }
        .into());
    }
    let expires = now.checked_add(ttl).ok_or(StoreError::TimeOutOfRange {
        what: "lease expiry",
    })?;
    let token: i64 = crate::cached::query_row(
        conn,
        "UPDATE counters SET value = value + 1 WHERE name = 'lease_token' RETURNING value",
        [],
        |row| row.get(0),
    )
    .map_err(StoreError::sqlite(context()))?;
    crate::cached::execute(conn,
        "INSERT INTO leases (device, token, expires_ns) VALUES (?1, ?2, ?3) \
         ON CONFLICT (device) DO UPDATE SET token = excluded.token, expires_ns = excluded.expires_ns",
        (name.as_str(), token, to_nanos_saturating(expires)),
    )
    .map_err(StoreError::sqlite(context()))?;
    Ok(Lease {
        device: name.clone(),
        token: u64::try_from(token)
            .map_err(|_| StoreError::corrupt("counters", "lease_token", "negative"))?,
        expires,
    })
}

impl DeviceStore for SqliteStore {
    fn load(&self, name: &DeviceName) -> Result<Option<Device>, OperationsError> {
        Ok(device_row::load(&*self.read()?, name)?)
    }

    fn insert(&self, device: &Device) -> Result<(), OperationsError> {
        let device = device.clone();
        Ok(self.with_transaction(move |tx| {
            if device_row::exists(tx, &device.name)? {
                return Err(OperationsError::DeviceExists {
                    name: device.name.to_string(),
                }
                .into());
            }
            device_row::save(tx, &device, Save::Insert)
        })?)
    }

    fn update(&self, device: &Device) -> Result<(), OperationsError> {
        let device = device.clone();
        Ok(self.with_transaction(move |tx| device_row::save(tx, &device, Save::Update))?)
    }

    fn remove(&self, name: &DeviceName) -> Result<bool, OperationsError> {
        // The lease goes with it (ON DELETE CASCADE); issued certificates
        // and the audit log stay.
        let name = name.clone();
        Ok(self.with_transaction(move |tx| {
            crate::cached::execute(tx, "DELETE FROM devices WHERE name = ?1", [name.as_str()])
                .map(|n| n > 0)
                .map_err(StoreError::sqlite(format!("removing device {name}")))
        })?)
    }

    /// Loads every device and filters, sorts and pages them in memory with
    /// [`DeviceQuery::run`]: simple, always the same answer as
    /// `MemoryStore`, and fast enough up to about 100 000 devices.
    fn find(&self, query: &DeviceQuery) -> Result<DevicePage, OperationsError> {
        let devices = device_row::load_all(&*self.read()?)?;
        query.run(devices)
    }

    fn acquire_lease(
        &self,
        name: &DeviceName,
        now: SystemTime,
        ttl: Duration,
    ) -> Result<Lease, OperationsError> {
        let name = name.clone();
        Ok(self.with_transaction(move |tx| acquire_in(tx, &name, now, ttl))?)
    }

    fn release_lease(&self, lease: &Lease) -> Result<(), OperationsError> {
        if token_column(lease.token).is_none() {
            return Ok(());
        }
        let lease = lease.clone();
        Ok(self.with_transaction(move |tx| release_in(tx, &lease))?)
    }

    fn commit(&self, lease: &Lease, commit: &SessionCommit) -> Result<Device, OperationsError> {
        let (lease, commit) = (lease.clone(), commit.clone());
        Ok(self.with_transaction(move |tx| commit_in(tx, &lease, &commit, false))?)
    }

    /// The change and the release in one transaction.
    fn commit_and_release(
        &self,
        lease: &Lease,
        commit: &SessionCommit,
    ) -> Result<Device, OperationsError> {
        let (lease, commit) = (lease.clone(), commit.clone());
        Ok(self.with_transaction(move |tx| commit_in(tx, &lease, &commit, true))?)
    }

    /// The lease and the device in one transaction.
    fn lease_and_load(
        &self,
        name: &DeviceName,
        now: SystemTime,
        ttl: Duration,
    ) -> Result<(Lease, Device), OperationsError> {
        let name = name.clone();
        Ok(self.with_transaction(move |tx| lease_and_load_in(tx, &name, now, ttl))?)
    }

    /// Queued for the committer thread: the lease is taken and the device
    /// read in one change, answered as soon as it ran, without waiting for
    /// its fsync. Nothing durable depends on a lease: this store's later
    /// changes see it at once (one writer, in order), other processes once
    /// it is committed, and if that commit fails the session's next change
    /// finds its lease lost and fails.
    fn lease_and_load_deferred(
        &self,
        name: &DeviceName,
        now: SystemTime,
        ttl: Duration,
        done: Deferred<(Lease, Device)>,
    ) -> Result<(), Deferred<(Lease, Device)>> {
        let name = name.clone();
        self.with_transaction_early_then(
            move |tx| lease_and_load_in(tx, &name, now, ttl),
            move |result| done(result.map_err(OperationsError::from)),
        );
        Ok(())
    }

    /// Queued for the committer thread.
    fn commit_deferred(
        &self,
        lease: &Lease,
        commit: &SessionCommit,
        release: bool,
        done: Deferred<Device>,
    ) -> Result<(), Deferred<Device>> {
        let (lease, commit) = (lease.clone(), commit.clone());
        self.with_transaction_then(
            move |tx| commit_in(tx, &lease, &commit, release),
            move |result| done(result.map_err(OperationsError::from)),
        );
        Ok(())
    }

    fn issued_certificates(&self, name: &DeviceName) -> Result<Vec<IssuedRecord>, OperationsError> {
        Ok(self
            .certificate_history(name)?
            .into_iter()
            .map(|h| h.record)
            .collect())
    }

    fn audit_log(&self, name: &DeviceName) -> Result<Vec<AuditEntry>, OperationsError> {
        let conn = self.read()?;
        let context = || format!("reading the audit log of {name}");
        let mut stmt = conn
            .prepare_cached(
                "SELECT at_ns, event, detail FROM audit_log WHERE device = ?1 ORDER BY id",
            )
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
}
