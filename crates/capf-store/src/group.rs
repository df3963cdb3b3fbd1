//! Durable group commit: concurrent writers share one transaction and one
//! fsync, and each still returns only once its own change is durable.
//!
//! * A writer queues its change (a closure) and waits. The first writer to
//!   find no leader becomes the leader: it takes the queued changes (up to
//!   [`MAX_BATCH`]), applies them in queue order in one `BEGIN IMMEDIATE`
//!   transaction, each inside its own `SAVEPOINT` (a change that fails is
//!   rolled back alone, and its caller gets its error), `COMMIT`s once, and
//!   hands every waiter its own result. Then it leaves, and the next writer
//!   in line leads the next batch.
//! * Order: changes are applied in the order they were queued, and a batch
//!   is committed before the next one starts, so the commit order is the
//!   same as with one transaction per change; a caller's result is only
//!   delivered after the `COMMIT` (fsync, `synchronous=FULL`) of its batch.
//! * If `BEGIN` or `COMMIT` fails, every change of the batch fails with
//!   that error (nothing of it was stored).
//! * A lone writer pays nothing extra but two savepoint statements.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use rusqlite::Connection;

use crate::StoreError;

/// Most changes in one transaction: bounds the latency of the last one.
pub(crate) const MAX_BATCH: usize = 256;

/// One queued change, type-erased.
struct Job {
    ticket: u64,
    /// Runs the change inside its savepoint; `true` if it succeeded.
    run: Run,
    /// After the batch: `Some(error)` replaces the result (the batch was
    /// not committed).
    finish: Finish,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    leader: bool,
    next_ticket: u64,
    /// Every job with a ticket below this has its result (or never will).
    finished_below: u64,
}

/// The queue and the condition its waiters sleep on.
#[derive(Default)]
pub(crate) struct GroupCommit {
    queue: Mutex<Queue>,
    wake: Condvar,
}

type Slot<T> = Arc<Mutex<Option<Result<T, StoreError>>>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks leaves plain data behind: go on.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A copy of SQLite's error for each waiter of a failed batch.
fn copy_error(e: &rusqlite::Error) -> rusqlite::Error {
    match e {
        rusqlite::Error::SqliteFailure(code, message) => {
            rusqlite::Error::SqliteFailure(*code, message.clone())
        }
        other => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    }
}

impl GroupCommit {
    /// Runs `f` in a transaction shared with concurrent callers; returns
    /// once the change is committed (or failed). `conn` gives the
    /// connection to the leader.
    pub(crate) fn run<'c, T, F>(
        &self,
        conn: impl Fn() -> Result<MutexGuard<'c, Connection>, StoreError>,
        f: F,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let slot: Slot<T> = Arc::new(Mutex::new(None));
        let run_slot = slot.clone();
        let finish_slot = slot.clone();
        let mut queue = lock(&self.queue);
        let ticket = queue.next_ticket;
        queue.next_ticket += 1;
        queue.jobs.push_back(Job {
            ticket,
            run: Box::new(move |c| {
                let result = f(c);
                let ok = result.is_ok();
                *lock(&run_slot) = Some(result);
                ok
            }),
            finish: Box::new(move |failed| {
                let mut slot = lock(&finish_slot);
                match failed {
                    Some(e) => {
                        *slot = Some(Err(StoreError::Sqlite {
                            context: "committing a transaction".into(),
                            source: copy_error(e),
                        }));
                    }
                    None if slot.is_none() => {
                        *slot = Some(Err(StoreError::Sqlite {
                            context: "committing a transaction".into(),
                            source: rusqlite::Error::InvalidQuery,
                        }));
                    }
                    None => {}
                }
            }),
        });
        loop {
            if queue.finished_below > ticket {
                drop(queue);
                return lock(&slot).take().unwrap_or(Err(StoreError::Poisoned));
            }
            if !queue.leader {
                queue.leader = true;
                let n = queue.jobs.len().min(MAX_BATCH);
                let batch: Vec<Job> = queue.jobs.drain(..n).collect();
                drop(queue);
                self.lead(&conn, batch);
                queue = lock(&self.queue);
                continue;
            }
            queue = self
                .wake
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Applies one batch and commits it; then lets the next leader in.
    fn lead<'c>(
        &self,
        conn: &impl Fn() -> Result<MutexGuard<'c, Connection>, StoreError>,
        batch: Vec<Job>,
    ) {
        /// Leaves the leadership even if a change panics.
        struct Leaving<'a> {
            group: &'a GroupCommit,
            below: u64,
        }
        impl Drop for Leaving<'_> {
            fn drop(&mut self) {
                let mut queue = lock(&self.group.queue);
                queue.leader = false;
                queue.finished_below = queue.finished_below.max(self.below);
                drop(queue);
                self.group.wake.notify_all();
            }
        }
        let _leaving = Leaving {
            group: self,
            below: batch.last().map_or(0, |j| j.ticket + 1),
        };
        let (runs, finishes): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|j| (j.run, j.finish)).unzip();
        let failure = match conn() {
            Err(e) => Some(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
                Some(e.to_string()),
            )),
            Ok(c) => apply(&c, runs),
        };
        for finish in finishes {
            finish(failure.as_ref());
        }
    }
}

type Run = Box<dyn FnOnce(&Connection) -> bool + Send>;
type Finish = Box<dyn FnOnce(Option<&rusqlite::Error>) + Send>;

/// The batch in one transaction, each change in its own savepoint;
/// `Some(error)` when the batch was not committed.
fn apply(conn: &Connection, runs: Vec<Run>) -> Option<rusqlite::Error> {
    if !conn.is_autocommit() {
        // Left open by a change that panicked: it was never committed.
        let _ = conn.execute_batch("ROLLBACK");
    }
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        return Some(e);
    }
    let abandon = |e: rusqlite::Error| {
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        Some(e)
    };
    for run in runs {
        if let Err(e) = conn.execute_batch("SAVEPOINT capf_change") {
            return abandon(e);
        }
        let end = if run(conn) {
            "RELEASE capf_change"
        } else {
            "ROLLBACK TO capf_change; RELEASE capf_change"
        };
        if let Err(e) = conn.execute_batch(end) {
            return abandon(e);
        }
    }
    match conn.execute_batch("COMMIT") {
        Ok(()) => None,
        Err(e) => abandon(e),
    }
}
