//! Durable group commit: concurrent writers share one transaction and one
//! fsync, and each still returns only once its own change is durable.
//!
//! * A writer queues its change (a closure) and waits. The first writer to
//!   find no leader becomes the leader: it takes the queued changes (up to
//!   [`MAX_BATCH`]), applies them in queue order in one `BEGIN IMMEDIATE`
//!   transaction, each inside its own `SAVEPOINT` (a change that fails is
//!   rolled back alone, and its caller gets its error), `COMMIT`s once, and
//!   hands every waiter its own result. Then it wakes the first writer
//!   still in line, who leads the next batch. Each writer sleeps on its own
//!   condition: a commit wakes only the writers it answers and the next
//!   leader.
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
    /// Runs the change inside its savepoint; `true` if it succeeded.
    run: Run,
    /// After the batch: `Some(error)` replaces the result (the batch was
    /// not committed).
    finish: Finish,
    /// Wakes this job's caller, and only it.
    signal: Arc<Signal>,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Someone leads (or has been told to): new callers just wait.
    leader: bool,
}

/// What a waiting caller is told.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
enum Turn {
    #[default]
    Wait,
    /// Take the next batch and commit it.
    Lead,
    /// Your change's result is in its slot.
    Done,
}

/// One caller's wake-up: each caller sleeps on its own condition, so a
/// commit wakes exactly the callers it answers and the next leader (one
/// shared condition woke every waiting thread at every commit; at 64
/// sessions that cost more CPU than the commits).
#[derive(Default)]
struct Signal {
    turn: Mutex<Turn>,
    wake: Condvar,
}

impl Signal {
    fn set(&self, turn: Turn) {
        *lock(&self.turn) = turn;
        self.wake.notify_one();
    }

    /// Sleeps until told to lead or done; a `Lead` is consumed.
    fn wait(&self) -> Turn {
        let mut turn = lock(&self.turn);
        while *turn == Turn::Wait {
            turn = self.wake.wait(turn).unwrap_or_else(PoisonError::into_inner);
        }
        let told = *turn;
        if told == Turn::Lead {
            *turn = Turn::Wait;
        }
        told
    }
}

/// The queue of changes waiting for a transaction.
#[derive(Default)]
pub(crate) struct GroupCommit {
    queue: Mutex<Queue>,
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
        let signal = Arc::new(Signal::default());
        let mut queue = lock(&self.queue);
        queue.jobs.push_back(Job {
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
            signal: signal.clone(),
        });
        // Nobody leads: this caller does, at once.
        let mut lead = !queue.leader;
        queue.leader = true;
        drop(queue);
        loop {
            if !lead && signal.wait() == Turn::Done {
                return lock(&slot).take().unwrap_or(Err(StoreError::Poisoned));
            }
            lead = false;
            let batch: Vec<Job> = {
                let mut queue = lock(&self.queue);
                let n = queue.jobs.len().min(MAX_BATCH);
                queue.jobs.drain(..n).collect()
            };
            // Our own change may be in a later batch: then the lead comes
            // back to us when it is first in line.
            self.lead(&conn, batch);
        }
    }

    /// Applies one batch and commits it; answers its callers; then hands
    /// the lead to the first caller still in line (or leaves it free).
    fn lead<'c>(
        &self,
        conn: &impl Fn() -> Result<MutexGuard<'c, Connection>, StoreError>,
        batch: Vec<Job>,
    ) {
        /// Answers the batch and passes the lead on, even if a change
        /// panics (its callers then get `Poisoned`).
        struct Leaving<'a> {
            group: &'a GroupCommit,
            signals: Vec<Arc<Signal>>,
        }
        impl Drop for Leaving<'_> {
            fn drop(&mut self) {
                for signal in &self.signals {
                    signal.set(Turn::Done);
                }
                let mut queue = lock(&self.group.queue);
                match queue.jobs.front() {
                    Some(next) => next.signal.set(Turn::Lead),
                    None => queue.leader = false,
                }
            }
        }
        let mut leaving = Leaving {
            group: self,
            signals: Vec::with_capacity(batch.len()),
        };
        let mut runs = Vec::with_capacity(batch.len());
        let mut finishes = Vec::with_capacity(batch.len());
        for job in batch {
            runs.push(job.run);
            finishes.push(job.finish);
            leaving.signals.push(job.signal);
        }
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

/// One statement of the batch's frame, through the statement cache (they
/// run for every change; `execute_batch` would parse them every time).
fn run_statement(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// The batch in one transaction, each change in its own savepoint;
/// `Some(error)` when the batch was not committed.
fn apply(conn: &Connection, runs: Vec<Run>) -> Option<rusqlite::Error> {
    if !conn.is_autocommit() {
        // Left open by a change that panicked: it was never committed.
        let _ = conn.execute_batch("ROLLBACK");
    }
    if let Err(e) = run_statement(conn, "BEGIN IMMEDIATE") {
        return Some(e);
    }
    let abandon = |e: rusqlite::Error| {
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        Some(e)
    };
    for run in runs {
        if let Err(e) = run_statement(conn, "SAVEPOINT capf_change") {
            return abandon(e);
        }
        let ended = if run(conn) {
            run_statement(conn, "RELEASE capf_change")
        } else {
            run_statement(conn, "ROLLBACK TO capf_change")
                .and_then(|()| run_statement(conn, "RELEASE capf_change"))
        };
        if let Err(e) = ended {
            return abandon(e);
        }
    }
    match run_statement(conn, "COMMIT") {
        Ok(()) => None,
        Err(e) => abandon(e),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    fn table() -> Mutex<Connection> {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER PRIMARY KEY)")
            .unwrap();
        Mutex::new(conn)
    }

    /// Many writers, one of whose changes panics mid-batch: every other
    /// caller gets an answer (no one sleeps forever on a lost wake-up), the
    /// lead passes on, and the changes of batches that committed are there.
    #[test]
    fn a_panicking_change_neither_hangs_nor_loses_the_others() {
        const WRITERS: i64 = 32;
        const EACH: i64 = 20;
        let conn = table();
        let group = GroupCommit::default();
        let (done, answers) = mpsc::channel();
        std::thread::scope(|s| {
            for w in 0..WRITERS {
                let (conn, group, done) = (&conn, &group, done.clone());
                s.spawn(move || {
                    for i in 0..EACH {
                        let v = w * EACH + i;
                        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            group.run(
                                || Ok(lock(conn)),
                                move |c| {
                                    if v == 7 {
                                        panic!("change {v} panics");
                                    }
                                    c.execute("INSERT INTO t (v) VALUES (?1)", [v])
                                        .map(|_| ())
                                        .map_err(StoreError::sqlite("insert"))
                                },
                            )
                        }));
                        done.send((v, result.map(|r| r.is_ok()))).unwrap();
                    }
                });
            }
            drop(done);
            let mut answered = 0;
            let mut ok = Vec::new();
            while answered < WRITERS * EACH {
                let (v, result) = answers
                    .recv_timeout(Duration::from_secs(30))
                    .expect("a writer was never answered");
                answered += 1;
                if matches!(result, Ok(true)) {
                    ok.push(v);
                }
            }
            // Everything that was answered Ok is in the table.
            let c = lock(&conn);
            for v in &ok {
                let n: i64 = c
                    .query_row("SELECT count(*) FROM t WHERE v = ?1", [v], |r| r.get(0))
                    .unwrap();
                assert_eq!(n, 1, "change {v} was answered Ok but is missing");
            }
            assert!(!ok.contains(&7));
            // Only the panicking change's batch was lost.
            assert!(ok.len() as i64 > WRITERS * EACH - i64::try_from(MAX_BATCH).unwrap());
        });
    }
}
