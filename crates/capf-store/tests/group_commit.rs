//! Group commit: many threads writing through one store at once get their
//! own results (a failing change does not undo the others sharing its
//! transaction), and every change that returned Ok is durable: it is
//! there after the store is closed and reopened.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Barrier;
use std::time::Duration;

use capf_operations::capf_auth::{AuthMode, Operation};
use capf_operations::{OperationsError, OperatorStore, SessionCommit, SessionStore};
use capf_store::SqliteStore;
use common::*;

const THREADS: usize = 16;
const PER_THREAD: usize = 25;

fn name_of(t: usize, i: usize) -> String {
    format!("SEP{:06X}{:06X}", t, i)
}

#[test]
fn concurrent_writers_share_commits_and_keep_their_own_results() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("capf.db");
    let store = SqliteStore::open(&path).unwrap();
    let barrier = Barrier::new(THREADS);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (store, barrier) = (&store, &barrier);
            s.spawn(move || {
                barrier.wait();
                for i in 0..PER_THREAD {
                    let d = device(&name_of(t, i), AuthMode::NullString, Operation::None, None);
                    store.insert(&d, at(1)).unwrap();
                    // The same insert again fails alone.
                    assert!(matches!(
                        store.insert(&d, at(1)),
                        Err(OperationsError::DeviceExists { .. })
                    ));
                    let now = at(1_800_000_000);
                    let lease = store
                        .begin_blocking(&d.name, now, Duration::from_secs(60))
                        .map(|(lease, _)| lease)
                        .unwrap();
                    // A commit under a stale token is refused, alone.
                    let mut stale = lease.clone();
                    stale.token += 1_000_000;
                    let failed = SessionCommit::Failed {
                        reason: format!("test {t}/{i}"),
                        key_generation_failures: None,
                        operation_failed: None,
                        at: now,
                    };
                    assert!(matches!(
                        store.commit_blocking(&stale, &failed, false),
                        Err(OperationsError::LeaseLost { .. })
                    ));
                    let after = store.commit_blocking(&lease, &failed, false).unwrap();
                    assert_eq!(
                        after.last_error.as_ref().map(|e| e.reason.as_str()),
                        Some(format!("test {t}/{i}").as_str())
                    );
                    store.release_blocking(&lease).unwrap();
                }
            });
        }
    });
    drop(store);

    let store = SqliteStore::open(&path).unwrap();
    for t in 0..THREADS {
        for i in 0..PER_THREAD {
            let d = store
                .load(&capf_operations::DeviceName::parse(&name_of(t, i)).unwrap())
                .unwrap()
                .unwrap_or_else(|| panic!("{} lost", name_of(t, i)));
            assert_eq!(
                d.last_error.map(|e| e.reason),
                Some(format!("test {t}/{i}"))
            );
            let log = store.audit_log(&d.name).unwrap();
            assert_eq!(log.iter().filter(|e| e.event == "failed").count(), 1);
            // The lease was released: it can be taken again at once.
            assert!(
                store
                    .begin_blocking(&d.name, at(1_800_000_001), Duration::from_secs(60))
                    .map(|(lease, _)| lease)
                    .is_ok()
            );
        }
    }
}
