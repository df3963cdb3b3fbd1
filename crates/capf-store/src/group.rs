//! Durable group commit: concurrent writers share one transaction and one
//! fsync, and each still gets its answer only once its own change is
//! durable.
//!
//! * Every change (a closure) is queued for the store's committer thread.
//!   The committer takes the queued changes (up to [`MAX_BATCH`]), applies
//!   them in queue order in one `BEGIN IMMEDIATE` transaction, each inside
//!   its own `SAVEPOINT` (a change that fails is rolled back alone, and its
//!   caller gets its error), `COMMIT`s once, and then answers each caller.
//!   While it works, new changes queue up for the next batch.
//! * A caller either waits ([`GroupCommit::run`], each on its own
//!   channel, so a commit wakes only the callers it answers) or gets its
//!   answer through a callback on the committer thread
//!   ([`GroupCommit::run_then`]): an async runtime queues a change from its
//!   worker without a thread of its own waiting.
//! * Order: changes are applied in the order they were queued, and a batch
//!   is committed before the next one starts, so the commit order is the
//!   same as with one transaction per change; an answer is only given after
//!   the `COMMIT` (fsync, `synchronous=FULL`) of its batch.
//! * If `BEGIN` or `COMMIT` fails, or a change panics, every change of the
//!   batch fails with that error (nothing of it was stored), and the
//!   committer goes on with the next batch.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use rusqlite::Connection;

use crate::StoreError;

/// Most changes in one transaction: bounds the latency of the last one.
pub(crate) const MAX_BATCH: usize = 256;

/// One queued change, type-erased.
struct Job {
    /// Runs the change inside its savepoint; `true` if it succeeded.
    run: Run,
    /// After the batch: answers the caller; `Some(error)` replaces the
    /// result (the batch was not committed).
    finish: Finish,
}

type Run = Box<dyn FnOnce(&Connection) -> bool + Send>;
type Finish = Box<dyn FnOnce(Option<&rusqlite::Error>) + Send>;

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// The committer sleeps: a new change must wake it.
    idle: bool,
    /// The store is going away: finish the queue, then stop.
    stop: bool,
}

/// What the committer thread and the callers share.
struct Shared {
    queue: Mutex<Queue>,
    /// The committer sleeps on this when the queue is empty.
    work: Condvar,
    conn: Arc<Mutex<Connection>>,
    /// Told the size of each batch (metrics).
    observer: Mutex<Option<BatchObserver>>,
}

/// What a store reports each batch's size to.
pub(crate) type BatchObserver = Arc<dyn Fn(usize) + Send + Sync>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks leaves plain data behind: go on.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A copy of SQLite's error for each caller of a failed batch.
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

/// The queue of changes and the thread that commits them.
pub(crate) struct GroupCommit {
    shared: Arc<Shared>,
    committer: Option<JoinHandle<()>>,
}

impl GroupCommit {
    /// Starts the committer thread on `conn`, the write connection of the
    /// database at `path`.
    pub(crate) fn start(conn: Arc<Mutex<Connection>>, path: &Path) -> Result<Self, StoreError> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            work: Condvar::new(),
            conn,
            observer: Mutex::new(None),
        });
        let committer = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("capf-store-commit".into())
                .spawn(move || commit_loop(&shared))
                .map_err(|source| StoreError::Io {
                    path: path.to_path_buf(),
                    source,
                })?
        };
        Ok(Self {
            shared,
            committer: Some(committer),
        })
    }

    /// Runs `f` in a transaction shared with concurrent callers and
    /// returns once the change is committed (or failed).
    pub(crate) fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        // Each caller waits on its own channel: a commit wakes only the
        // callers it answers.
        let (answer, answered) = std::sync::mpsc::sync_channel(1);
        self.run_then(f, move |result| {
            let _ = answer.send(result);
        });
        answered.recv().unwrap_or(Err(StoreError::Poisoned))
    }

    /// Queues `f` like [`run`](Self::run) and returns at once; `done` gets
    /// the result on the committer thread once the change is committed (or
    /// failed). `done` must be quick and must not call the store.
    pub(crate) fn run_then<T, F, D>(&self, f: F, done: D)
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        D: FnOnce(Result<T, StoreError>) + Send + 'static,
    {
        let slot: Arc<Mutex<Option<Result<T, StoreError>>>> = Arc::default();
        let run_slot = slot.clone();
        let job = Job {
            run: Box::new(move |c| {
                let result = f(c);
                let ok = result.is_ok();
                *lock(&run_slot) = Some(result);
                ok
            }),
            finish: Box::new(move |failed| {
                let result = match (failed, lock(&slot).take()) {
                    (Some(e), _) => Err(StoreError::Sqlite {
                        context: "committing a transaction".into(),
                        source: copy_error(e),
                    }),
                    (None, Some(result)) => result,
                    // Committed without having run: cannot happen.
                    (None, None) => Err(StoreError::Poisoned),
                };
                done(result);
            }),
        };
        self.queue(job);
    }

    /// Reports each batch's size to `observer` from now on.
    pub(crate) fn set_observer(&self, observer: BatchObserver) {
        *lock(&self.shared.observer) = Some(observer);
    }

    fn queue(&self, job: Job) {
        let mut queue = lock(&self.shared.queue);
        queue.jobs.push_back(job);
        let wake = std::mem::take(&mut queue.idle);
        drop(queue);
        if wake {
            self.shared.work.notify_one();
        }
    }
}

impl Drop for GroupCommit {
    /// Commits what is queued, then stops the committer.
    fn drop(&mut self) {
        lock(&self.shared.queue).stop = true;
        self.shared.work.notify_one();
        if let Some(committer) = self.committer.take() {
            let _ = committer.join();
        }
    }
}

/// The committer thread: one batch after another until stopped.
fn commit_loop(shared: &Shared) {
    loop {
        let batch: Vec<Job> = {
            let mut queue = lock(&shared.queue);
            while queue.jobs.is_empty() && !queue.stop {
                queue.idle = true;
                queue = shared
                    .work
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            queue.idle = false;
            if queue.jobs.is_empty() {
                return;
            }
            let n = queue.jobs.len().min(MAX_BATCH);
            queue.jobs.drain(..n).collect()
        };
        if let Some(observe) = lock(&shared.observer).as_ref() {
            observe(batch.len());
        }
        let mut runs = Vec::with_capacity(batch.len());
        let mut finishes = Vec::with_capacity(batch.len());
        for job in batch {
            runs.push(job.run);
            finishes.push(job.finish);
        }
        let failure = {
            let conn = lock(&shared.conn);
            // A change that panics fails its whole batch (rolled back),
            // not the committer.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| apply(&conn, runs)))
                .unwrap_or_else(|_| {
                    if !conn.is_autocommit() {
                        let _ = conn.execute_batch("ROLLBACK");
                    }
                    Some(rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                        Some("a change panicked; its batch was not committed".into()),
                    ))
                })
        };
        for finish in finishes {
            finish(failure.as_ref());
        }
    }
}

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

    fn table() -> Arc<Mutex<Connection>> {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER PRIMARY KEY)")
            .unwrap();
        Arc::new(Mutex::new(conn))
    }

    /// Many writers, one of whose changes panics mid-batch: every caller
    /// gets an answer (no one sleeps forever on a lost wake-up), the
    /// committer goes on, and the changes answered Ok are there.
    #[test]
    fn a_panicking_change_neither_hangs_nor_loses_the_others() {
        const WRITERS: i64 = 32;
        const EACH: i64 = 20;
        let conn = table();
        let group = GroupCommit::start(conn.clone(), Path::new(":memory:")).unwrap();
        let (done, answers) = mpsc::channel();
        std::thread::scope(|s| {
            for w in 0..WRITERS {
                let (group, done) = (&group, done.clone());
                s.spawn(move || {
                    for i in 0..EACH {
                        let v = w * EACH + i;
                        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            group.run(move |c| {
                                if v == 7 {
                                    panic!("change {v} panics");
                                }
                                c.execute("INSERT INTO t (v) VALUES (?1)", [v])
                                    .map(|_| ())
                                    .map_err(StoreError::sqlite("insert"))
                            })
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

    /// Changes queued with a callback are answered in queue order, once
    /// committed; dropping the group commits what is still queued first.
    #[test]
    fn callbacks_come_in_order_and_drop_drains_the_queue() {
        let conn = table();
        let group = GroupCommit::start(conn.clone(), Path::new(":memory:")).unwrap();
        let (done, answers) = mpsc::channel();
        for v in 0..500i64 {
            let done = done.clone();
            group.run_then(
                move |c| {
                    c.execute("INSERT INTO t (v) VALUES (?1)", [v])
                        .map_err(StoreError::sqlite("insert"))
                },
                move |result| done.send((v, result.is_ok())).unwrap(),
            );
        }
        drop(group);
        drop(done);
        let answered: Vec<(i64, bool)> = answers.iter().collect();
        assert_eq!(answered, (0..500).map(|v| (v, true)).collect::<Vec<_>>());
        let n: i64 = lock(&conn)
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 500);
    }
}
