//! Group commit on PostgreSQL: the changes queued at one moment share one
//! transaction (each in its own savepoint) and one `COMMIT`, so one WAL
//! flush; each caller is answered after that `COMMIT`.
//!
//! Across nodes, a change holds the device it touches: the first read or
//! write of a device (or its lease) in a transaction takes a
//! transaction-scoped advisory lock on the device's name, held until the
//! `COMMIT`. Two nodes' changes to one device therefore run one after the
//! other, and the second sees the first: a lease taken on one node is
//! seen by the other, wrong-string counts add up. A change that fails
//! rolls back to its savepoint, which also gives back the locks it took.

use std::collections::{HashSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use capf_operations::{
    Account, AccountName, ApiToken, AuditEntry, AuditQuery, CertificateHistory, Device, DeviceName,
    Lease, OperationsError, StoreReads, StoreTransaction,
};

use crate::PostgresError;
use crate::connect::Target;
use crate::rows::{self, Conn};
use crate::schema::{ACCOUNTS_LOCK_CLASS, LOCK_CLASS};

/// The key under which a transaction notes that it holds the accounts
/// lock, among the device names it holds (no device name has a space).
const ACCOUNTS_HELD: &str = " accounts";

/// Most changes in one transaction: bounds the latency of the last one.
const MAX_BATCH: usize = 256;

/// One queued change, type-erased.
pub(crate) trait Pending: Send {
    /// Runs the change; `true` if it succeeded (its result is kept).
    fn run(&mut self, tx: &mut Rows<'_>) -> bool;
    /// Answers the caller; `Some(error)` replaces the result (the batch was
    /// not committed).
    fn finish(self: Box<Self>, batch_error: Option<&PostgresError>);
    /// A write of the change failed when it was sent (after `run`).
    fn fail(&mut self, error: &PostgresError);
}

/// A change and its callback.
pub(crate) struct Change<T, C, D> {
    change: Option<C>,
    done: D,
    result: Option<Result<T, OperationsError>>,
}

impl<T, C, D> Change<T, C, D> {
    pub(crate) fn new(change: C, done: D) -> Self {
        Self {
            change: Some(change),
            done,
            result: None,
        }
    }
}

impl<T, C, D> Pending for Change<T, C, D>
where
    T: Send,
    C: FnOnce(&mut dyn StoreTransaction) -> Result<T, OperationsError> + Send,
    D: FnOnce(Result<T, OperationsError>) + Send,
{
    fn run(&mut self, tx: &mut Rows<'_>) -> bool {
        let Some(change) = self.change.take() else {
            return false;
        };
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| change(tx)))
            .unwrap_or_else(|_| Err(OperationsError::store("the change panicked")));
        // A statement that failed inside the change leaves the transaction
        // unusable even if the change went on: it failed.
        let result = match (result, tx.failed.take()) {
            (Ok(_), Some(why)) => Err(OperationsError::store(format!(
                "a statement failed inside the change: {why}"
            ))),
            (result, _) => result,
        };
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn fail(&mut self, error: &PostgresError) {
        self.result = Some(Err(OperationsError::store(format!(
            "a statement failed inside the change: {error}"
        ))));
    }

    fn finish(self: Box<Self>, batch_error: Option<&PostgresError>) {
        let result = match (batch_error, self.result) {
            (Some(e), _) => Err(OperationsError::store(e.to_string())),
            (None, Some(result)) => result,
            (None, None) => Err(OperationsError::Unanswered),
        };
        (self.done)(result);
    }
}

/// The rows as one change sees them: inside the batch's transaction
/// (taking device locks), or inside a read-only snapshot.
pub(crate) struct Rows<'a> {
    conn: &'a mut Conn,
    /// Devices locked by this transaction; `None` for reads.
    locked: Option<&'a mut HashSet<String>>,
    /// Devices this change locked (given back if it rolls back).
    pub(crate) locked_here: Vec<String>,
    /// The first statement that failed in this change.
    failed: Option<String>,
}

impl<'a> Rows<'a> {
    pub(crate) fn writing(conn: &'a mut Conn, locked: &'a mut HashSet<String>) -> Self {
        Self {
            conn,
            locked: Some(locked),
            locked_here: Vec::new(),
            failed: None,
        }
    }

    pub(crate) fn reading(conn: &'a mut Conn) -> Self {
        Self {
            conn,
            locked: None,
            locked_here: Vec::new(),
            failed: None,
        }
    }

    /// Notes a failed statement, and hands its error on.
    fn note<T>(&mut self, result: Result<T, PostgresError>) -> Result<T, OperationsError> {
        if let Err(e) = &result
            && self.failed.is_none()
            && matches!(e, PostgresError::Query { .. })
        {
            self.failed = Some(e.to_string());
        }
        result.map_err(OperationsError::from)
    }

    /// Holds `name` until the transaction ends (writes only).
    fn hold(&mut self, name: &DeviceName) -> Result<(), OperationsError> {
        let Some(locked) = self.locked.as_deref_mut() else {
            return Ok(());
        };
        if locked.contains(name.as_str()) {
            return Ok(());
        }
        // Sent with the read or write that follows: the database takes the
        // lock before it runs them (statements run in the order sent).
        let device = name.to_string();
        self.conn.defer(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            format!("holding device {device}"),
            Box::new(move |client, statement| {
                Box::pin(async move { client.execute(statement, &[&LOCK_CLASS, &device]).await })
            }),
        );
        if let Some(locked) = self.locked.as_deref_mut() {
            locked.insert(name.to_string());
        }
        self.locked_here.push(name.to_string());
        Ok(())
    }
}

impl Rows<'_> {
    /// Holds every operator account and token until the transaction ends
    /// (writes only): the last-admin rule reads all accounts, then writes
    /// one, and no other node's account change may come in between.
    fn hold_accounts(&mut self) {
        let Some(locked) = self.locked.as_deref_mut() else {
            return;
        };
        if !locked.insert(ACCOUNTS_HELD.to_owned()) {
            return;
        }
        // Sent with the read or write that follows, as a device's lock.
        self.conn.defer(
            "SELECT pg_advisory_xact_lock($1, 0)",
            "holding the operator accounts".to_owned(),
            Box::new(move |client, statement| {
                Box::pin(async move { client.execute(statement, &[&ACCOUNTS_LOCK_CLASS]).await })
            }),
        );
        self.locked_here.push(ACCOUNTS_HELD.to_owned());
    }
}

impl StoreReads for Rows<'_> {
    fn device(&mut self, name: &DeviceName) -> Result<Option<Device>, OperationsError> {
        self.hold(name)?;
        let result = rows::load_device(self.conn, name);
        self.note(result)
    }

    fn devices(&mut self) -> Result<Vec<Device>, OperationsError> {
        let result = rows::load_devices(self.conn);
        self.note(result)
    }

    fn lease(&mut self, name: &DeviceName) -> Result<Option<Lease>, OperationsError> {
        self.hold(name)?;
        let result = rows::load_lease(self.conn, name);
        self.note(result)
    }

    fn certificate(
        &mut self,
        serial_hex: &str,
    ) -> Result<Option<CertificateHistory>, OperationsError> {
        let result = rows::load_certificate(self.conn, serial_hex);
        self.note(result)
    }

    fn certificates(
        &mut self,
        device: &DeviceName,
    ) -> Result<Vec<CertificateHistory>, OperationsError> {
        let result = rows::load_certificates(self.conn, device);
        self.note(result)
    }

    fn audit(&mut self, device: &DeviceName) -> Result<Vec<AuditEntry>, OperationsError> {
        let result = rows::load_audit(self.conn, device);
        self.note(result)
    }

    fn find_audit(&mut self, query: &AuditQuery) -> Result<Vec<AuditEntry>, OperationsError> {
        let result = rows::find_audit(self.conn, query);
        self.note(result)
    }

    fn account(&mut self, name: &AccountName) -> Result<Option<Account>, OperationsError> {
        self.hold_accounts();
        let result = rows::load_account(self.conn, name);
        self.note(result)
    }

    fn accounts(&mut self) -> Result<Vec<Account>, OperationsError> {
        self.hold_accounts();
        let result = rows::load_accounts(self.conn);
        self.note(result)
    }

    fn token(&mut self, id: &str) -> Result<Option<ApiToken>, OperationsError> {
        self.hold_accounts();
        let result = rows::load_token(self.conn, id);
        self.note(result)
    }

    fn tokens(&mut self) -> Result<Vec<ApiToken>, OperationsError> {
        self.hold_accounts();
        let result = rows::load_tokens(self.conn);
        self.note(result)
    }
}

impl StoreTransaction for Rows<'_> {
    fn put_device(&mut self, device: &Device) -> Result<(), OperationsError> {
        self.hold(&device.name)?;
        let result = rows::save_device(self.conn, device);
        self.note(result)
    }

    fn delete_device(&mut self, name: &DeviceName) -> Result<bool, OperationsError> {
        self.hold(name)?;
        let result = rows::delete_device(self.conn, name);
        self.note(result)
    }

    fn put_lease(&mut self, lease: &Lease) -> Result<(), OperationsError> {
        self.hold(&lease.device)?;
        let result = rows::save_lease(self.conn, lease);
        self.note(result)
    }

    fn delete_lease(&mut self, name: &DeviceName) -> Result<(), OperationsError> {
        self.hold(name)?;
        let result = rows::delete_lease(self.conn, name);
        self.note(result)
    }

    fn put_certificate(&mut self, certificate: &CertificateHistory) -> Result<(), OperationsError> {
        let result = rows::save_certificate(self.conn, certificate);
        // A serial held by another device is the change's answer, not a
        // broken statement (the upsert's WHERE refused it quietly).
        match result {
            Err(PostgresError::Operations(e)) => Err(*e),
            other => self.note(other),
        }
    }

    fn append_audit(&mut self, entry: &AuditEntry) -> Result<(), OperationsError> {
        let result = rows::append_audit(self.conn, entry);
        self.note(result)
    }

    fn put_account(&mut self, account: &Account) -> Result<(), OperationsError> {
        self.hold_accounts();
        let result = rows::save_account(self.conn, account);
        self.note(result)
    }

    fn delete_account(&mut self, name: &AccountName) -> Result<bool, OperationsError> {
        self.hold_accounts();
        let result = rows::delete_account(self.conn, name);
        self.note(result)
    }

    fn put_token(&mut self, token: &ApiToken) -> Result<(), OperationsError> {
        self.hold_accounts();
        let result = rows::save_token(self.conn, token);
        self.note(result)
    }

    fn delete_token(&mut self, id: &str) -> Result<bool, OperationsError> {
        self.hold_accounts();
        let result = rows::delete_token(self.conn, id);
        self.note(result)
    }
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Box<dyn Pending>>,
    stop: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    work: Condvar,
    /// Told the size of each batch (metrics).
    observer: Mutex<Option<BatchObserver>>,
}

/// What a store reports each batch's size to.
pub(crate) type BatchObserver = Arc<dyn Fn(usize) + Send + Sync>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks leaves plain data behind: go on.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The queue of changes and the thread that commits them.
pub(crate) struct Committer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Committer {
    /// Starts the committer thread on `conn`; it reconnects through
    /// `target` when the connection breaks.
    pub(crate) fn start(conn: Conn, target: Target) -> Result<Self, PostgresError> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            work: Condvar::new(),
            observer: Mutex::new(None),
        });
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("capf-postgres-commit".into())
                .spawn(move || commit_loop(&shared, conn, &target))
                .map_err(PostgresError::Thread)?
        };
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    pub(crate) fn submit(&self, job: Box<dyn Pending>) {
        let mut queue = lock(&self.shared.queue);
        if queue.stop {
            drop(queue);
            job.finish(Some(&PostgresError::from(OperationsError::store(
                "the store is closing",
            ))));
            return;
        }
        queue.jobs.push_back(job);
        drop(queue);
        self.shared.work.notify_one();
    }

    pub(crate) fn set_observer(&self, observer: BatchObserver) {
        *lock(&self.shared.observer) = Some(observer);
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        lock(&self.shared.queue).stop = true;
        self.shared.work.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn commit_loop(shared: &Shared, conn: Conn, target: &Target) {
    let mut conn = Some(conn);
    loop {
        let batch: Vec<Box<dyn Pending>> = {
            let mut queue = lock(&shared.queue);
            while queue.jobs.is_empty() && !queue.stop {
                queue = shared
                    .work
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if queue.jobs.is_empty() {
                return;
            }
            let n = queue.jobs.len().min(MAX_BATCH);
            queue.jobs.drain(..n).collect()
        };
        if let Some(observer) = lock(&shared.observer).clone() {
            observer(batch.len());
        }
        // A broken connection (the database restarted) is made again.
        if conn.as_ref().is_none_or(Conn::is_closed) {
            conn = match target.connect() {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "the database cannot be reached");
                    for job in batch {
                        job.finish(Some(&e));
                    }
                    continue;
                }
            };
        }
        let Some(c) = conn.as_mut() else { continue };
        run_batch(c, batch);
    }
}

/// One transaction: each change in its own savepoint (none when the batch
/// holds one change: a failure rolls the whole transaction back), one
/// `COMMIT`, then the answers.
///
/// Round trips are few: `BEGIN` and each `SAVEPOINT` go out with the
/// change's first statement, a change's writes and the release of its
/// savepoint go out together at its end.
fn run_batch(conn: &mut Conn, mut batch: Vec<Box<dyn Pending>>) {
    let single = batch.len() == 1;
    let mut locked = HashSet::new();
    let outcome = (|| {
        conn.defer_simple("BEGIN");
        let mut any_ok = false;
        for job in &mut batch {
            if !single {
                conn.defer_simple("SAVEPOINT change");
            }
            let mut rows = Rows::writing(conn, &mut locked);
            let mut ok = job.run(&mut rows);
            let locked_here = std::mem::take(&mut rows.locked_here);
            if ok {
                if !single {
                    conn.defer_simple("RELEASE SAVEPOINT change");
                }
                // The change's writes, answered: one that failed fails it.
                if let Err(e) = conn.flush() {
                    if e.is_connection_lost() {
                        return Err(e);
                    }
                    job.fail(&e);
                    ok = false;
                }
            }
            if ok {
                any_ok = true;
            } else {
                // Its locks go with the savepoint.
                for name in locked_here {
                    locked.remove(&name);
                }
                if single {
                    conn.discard();
                } else {
                    // Whatever it queued runs, and is undone.
                    let _ = conn.flush();
                    conn.batch_execute("ROLLBACK TO SAVEPOINT change; RELEASE SAVEPOINT change")?;
                }
            }
        }
        if any_ok {
            conn.batch_execute("COMMIT")
        } else {
            conn.discard();
            conn.batch_execute("ROLLBACK")
        }
    })();
    let error = match outcome {
        Ok(()) => None,
        Err(e) => {
            // Leave no transaction open (the connection may be gone: then
            // the next batch reconnects).
            conn.discard();
            let _ = conn.batch_execute("ROLLBACK");
            tracing::warn!(error = %e, changes = batch.len(), "a batch of store changes failed");
            Some(e)
        }
    };
    for job in batch {
        job.finish(error.as_ref());
    }
}
