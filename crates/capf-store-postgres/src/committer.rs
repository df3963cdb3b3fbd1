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

use std::collections::{HashMap, HashSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use capf_operations::{
    Account, AccountName, ApiToken, AuditEntry, AuditQuery, CertificateHistory, Device, DeviceName,
    Lease, OperationsError, StoreReads, StoreTransaction, Touching,
};

use crate::PostgresError;
use crate::connect::Target;
use crate::rows::{self, Conn, Held};
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
    fn fail(&mut self, error: PostgresError);
    /// What the change said it will touch (it may touch more).
    fn touching(&self) -> &Touching;
}

/// A change and its callback.
pub(crate) struct Change<T, C, D> {
    change: Option<C>,
    done: D,
    result: Option<Result<T, OperationsError>>,
    touching: Touching,
}

impl<T, C, D> Change<T, C, D> {
    pub(crate) fn new(change: C, done: D) -> Self {
        Self {
            change: Some(change),
            done,
            result: None,
            touching: Touching::default(),
        }
    }

    /// The change will touch `touching`: the batch holds and reads it
    /// ahead, with what the other changes touch.
    pub(crate) fn touching(mut self, touching: &Touching) -> Self {
        self.touching = touching.clone();
        self
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

    fn fail(&mut self, error: PostgresError) {
        self.result = Some(Err(match error {
            // The change's answer (a serial held by another device).
            PostgresError::Operations(inner) => *inner,
            other => {
                OperationsError::store(format!("a statement failed inside the change: {other}"))
            }
        }));
    }

    fn touching(&self) -> &Touching {
        &self.touching
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

/// What a batch's transaction holds: the devices it locked (and the
/// operator accounts, as [`ACCOUNTS_HELD`]), and the device and lease rows
/// of held devices as the transaction sees them, so that a change reads
/// them without a round trip (no other node can change a held device).
#[derive(Default)]
pub(crate) struct BatchHeld {
    locked: HashSet<String>,
    rows: HashMap<String, Held>,
    /// Issued certificates read ahead, by serial (`None`: not recorded),
    /// with what this batch's changes recorded since. Another node may
    /// record a serial meanwhile only for another device, and then the
    /// upsert refuses this batch's record of it.
    certificates: HashMap<String, Option<CertificateHistory>>,
}

/// The rows as one change sees them: inside the batch's transaction
/// (holding devices), or inside a read-only snapshot.
pub(crate) struct Rows<'a> {
    conn: &'a mut Conn,
    /// What the batch holds; `None` for reads.
    batch: Option<&'a mut BatchHeld>,
    /// Devices this change locked (given back if it rolls back).
    locked_here: Vec<String>,
    /// Held rows this change read or wrote (forgotten if it rolls back).
    touched_here: Vec<String>,
    /// Certificates read ahead that this change read or wrote (forgotten
    /// if it rolls back).
    certificates_here: Vec<String>,
    /// The first statement that failed in this change.
    failed: Option<String>,
}

impl<'a> Rows<'a> {
    pub(crate) fn writing(conn: &'a mut Conn, batch: &'a mut BatchHeld) -> Self {
        Self {
            conn,
            batch: Some(batch),
            locked_here: Vec::new(),
            touched_here: Vec::new(),
            certificates_here: Vec::new(),
            failed: None,
        }
    }

    pub(crate) fn reading(conn: &'a mut Conn) -> Self {
        Self {
            conn,
            batch: None,
            locked_here: Vec::new(),
            touched_here: Vec::new(),
            certificates_here: Vec::new(),
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

    /// Locks `name` until the transaction ends (writes only), if the
    /// transaction does not hold it yet.
    fn hold(&mut self, name: &DeviceName) {
        let Some(batch) = self.batch.as_deref_mut() else {
            return;
        };
        if batch.locked.contains(name.as_str()) {
            return;
        }
        // Sent with the read or write that follows: the database takes the
        // lock before it runs them (statements run in the order sent).
        rows::lock_devices(self.conn, vec![name.to_string()], LOCK_CLASS);
        batch.locked.insert(name.to_string());
        self.locked_here.push(name.to_string());
    }

    /// The device and lease rows of `name`, held (writes only; `None` for
    /// reads): read with its lock unless the batch read them already.
    fn held(&mut self, name: &DeviceName) -> Result<Option<&mut Held>, OperationsError> {
        if self.batch.is_none() {
            return Ok(None);
        }
        let cached = self
            .batch
            .as_deref()
            .is_some_and(|b| b.rows.contains_key(name.as_str()));
        if !cached {
            self.hold(name);
            let loaded = rows::load_held(self.conn, &[name.to_string()]);
            let loaded = self.note(loaded)?;
            let mut found = Held::default();
            for (wanted, held) in loaded {
                if wanted == name.as_str() {
                    found = self.note(held)?;
                }
            }
            if let Some(batch) = self.batch.as_deref_mut() {
                batch.rows.insert(name.to_string(), found);
            }
        }
        self.touched_here.push(name.to_string());
        Ok(self
            .batch
            .as_deref_mut()
            .and_then(|b| b.rows.get_mut(name.as_str())))
    }

    /// Changes the held rows of `name`, if the transaction read them (a
    /// write to rows it did not read is read back from the database).
    fn update_held(&mut self, name: &DeviceName, update: impl FnOnce(&mut Held)) {
        if let Some(held) = self
            .batch
            .as_deref_mut()
            .and_then(|b| b.rows.get_mut(name.as_str()))
        {
            update(held);
            self.touched_here.push(name.to_string());
        }
    }
}

impl Rows<'_> {
    /// Holds every operator account and token until the transaction ends
    /// (writes only): the last-admin rule reads all accounts, then writes
    /// one, and no other node's account change may come in between.
    fn hold_accounts(&mut self) {
        let Some(batch) = self.batch.as_deref_mut() else {
            return;
        };
        if !batch.locked.insert(ACCOUNTS_HELD.to_owned()) {
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
        if let Some(held) = self.held(name)? {
            return Ok(held.device.clone());
        }
        let result = rows::load_device(self.conn, name);
        self.note(result)
    }

    fn devices(&mut self) -> Result<Vec<Device>, OperationsError> {
        let result = rows::load_devices(self.conn);
        self.note(result)
    }

    fn lease(&mut self, name: &DeviceName) -> Result<Option<Lease>, OperationsError> {
        if let Some(held) = self.held(name)? {
            return Ok(held.lease.clone());
        }
        let result = rows::load_lease(self.conn, name);
        self.note(result)
    }

    fn certificate(
        &mut self,
        serial_hex: &str,
    ) -> Result<Option<CertificateHistory>, OperationsError> {
        if let Some(ahead) = self
            .batch
            .as_deref()
            .and_then(|b| b.certificates.get(serial_hex))
        {
            let ahead = ahead.clone();
            self.certificates_here.push(serial_hex.to_owned());
            return Ok(ahead);
        }
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
        self.hold(&device.name);
        let result = rows::save_device(self.conn, device);
        self.note(result)?;
        self.update_held(&device.name, |held| held.device = Some(device.clone()));
        Ok(())
    }

    fn delete_device(&mut self, name: &DeviceName) -> Result<bool, OperationsError> {
        self.hold(name);
        let result = rows::delete_device(self.conn, name);
        let removed = self.note(result)?;
        // The lease goes with the device.
        self.update_held(name, |held| *held = Held::default());
        Ok(removed)
    }

    fn put_lease(&mut self, lease: &Lease) -> Result<(), OperationsError> {
        self.hold(&lease.device);
        let result = rows::save_lease(self.conn, lease);
        self.note(result)?;
        self.update_held(&lease.device, |held| held.lease = Some(lease.clone()));
        Ok(())
    }

    fn delete_lease(&mut self, name: &DeviceName) -> Result<(), OperationsError> {
        self.hold(name);
        let result = rows::delete_lease(self.conn, name);
        self.note(result)?;
        self.update_held(name, |held| held.lease = None);
        Ok(())
    }

    fn put_certificate(&mut self, certificate: &CertificateHistory) -> Result<(), OperationsError> {
        let result = rows::save_certificate(self.conn, certificate);
        self.note(result)?;
        let serial = &certificate.record.certificate.serial_hex;
        if let Some(ahead) = self
            .batch
            .as_deref_mut()
            .and_then(|b| b.certificates.get_mut(serial))
        {
            *ahead = Some(certificate.clone());
            self.certificates_here.push(serial.clone());
        }
        Ok(())
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
/// Round trips are few: `BEGIN`, the locks on every device the changes
/// said they touch and the read of those devices and their leases go out
/// together; each change then reads them from memory, and its `SAVEPOINT`
/// and writes go out together at its end. A change's savepoint is not
/// released (it would cost a statement): savepoints nest, and a change
/// that fails rolls back to its own, the most recent.
fn run_batch(conn: &mut Conn, mut batch: Vec<Box<dyn Pending>>) {
    let single = batch.len() == 1;
    let mut held = BatchHeld::default();
    let outcome = (|| {
        conn.defer_simple("BEGIN");
        let mut names: Vec<String> = batch
            .iter()
            .flat_map(|job| &job.touching().devices)
            .map(ToString::to_string)
            .collect();
        // Sorted: two nodes' batches lock shared devices in the same order.
        names.sort_unstable();
        names.dedup();
        let mut serials: Vec<String> = batch
            .iter()
            .flat_map(|job| job.touching().certificates.iter().cloned())
            .collect();
        serials.sort_unstable();
        serials.dedup();
        if !names.is_empty() || !serials.is_empty() {
            if !names.is_empty() {
                rows::lock_devices(conn, names.clone(), LOCK_CLASS);
            }
            let ahead = rows::load_ahead(conn, &names, &serials)?;
            // A row that cannot be read is left to the change that reads
            // it (it reads it again, and fails alone).
            for (name, rows) in ahead.devices {
                if let Ok(rows) = rows {
                    held.rows.insert(name, rows);
                }
            }
            for (serial, recorded) in ahead.certificates {
                if let Ok(recorded) = recorded {
                    held.certificates.insert(serial, recorded);
                }
            }
            held.locked.extend(names);
        }
        let mut any_ok = false;
        for job in &mut batch {
            let mark = conn.mark();
            if !single {
                conn.defer_simple("SAVEPOINT change");
            }
            let sent_before = conn.sent();
            let mut rows = Rows::writing(conn, &mut held);
            let mut ok = job.run(&mut rows);
            let locked_here = std::mem::take(&mut rows.locked_here);
            let touched_here = std::mem::take(&mut rows.touched_here);
            let certificates_here = std::mem::take(&mut rows.certificates_here);
            if ok {
                // The change's writes, answered: one that failed fails it.
                if let Err(e) = conn.flush() {
                    if e.is_connection_lost() {
                        return Err(e);
                    }
                    job.fail(rows::name_holder(conn, e));
                    ok = false;
                }
            }
            if ok {
                any_ok = true;
                continue;
            }
            // What it read or wrote is read again by the next change that
            // needs it; the locks it took go with its savepoint.
            for name in touched_here {
                held.rows.remove(&name);
            }
            for serial in certificates_here {
                held.certificates.remove(&serial);
            }
            for name in locked_here {
                held.locked.remove(&name);
            }
            if single {
                conn.discard();
            } else if conn.sent() == sent_before {
                // Nothing of it went out (not even its savepoint).
                conn.discard_from(mark);
            } else {
                // Whatever it queued runs, and is undone.
                let _ = conn.flush();
                conn.batch_execute("ROLLBACK TO SAVEPOINT change; RELEASE SAVEPOINT change")?;
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
