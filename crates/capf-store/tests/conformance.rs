//! The store conformance suite on SQLite: in memory, and on a database
//! file (two connections, the committer thread, WAL).
#![allow(clippy::unwrap_used)]

mod in_memory {
    capf_operations::store_conformance_tests!(capf_store::SqliteStore::open_in_memory().unwrap());
}

mod on_disk {
    /// A store on a fresh file; the directory lives as long as the store
    /// (leaked: a test's store outlives nothing else).
    fn store() -> capf_store::SqliteStore {
        let dir = Box::leak(Box::new(tempfile::tempdir().unwrap()));
        capf_store::SqliteStore::open(dir.path().join("capf.db")).unwrap()
    }

    capf_operations::store_conformance_tests!(store());
}

/// Two stores on one file (two processes on one database): the checks of
/// a shared database.
#[test]
fn two_stores_on_one_file() {
    for (name, check) in capf_operations::testing::shared_checks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("capf.db");
        let a = capf_store::SqliteStore::open(&path).unwrap();
        let b = capf_store::SqliteStore::open(&path).unwrap();
        println!("shared check {name}");
        check(&a, &b);
    }
}
