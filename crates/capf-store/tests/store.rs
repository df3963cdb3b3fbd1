//! The SqliteStore behaves as the MemoryStore: records round-trip, leases
//! exclude, queries page and sort, parameters validate; and what only a
//! file gives: persistence, migrations, backup and restore, file mode.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use capf_operations::capf_auth::{
    AuthMode, FailureReason, Operation, OperationStatus, PolicyUpdate, SecurityMode,
};
use capf_operations::capf_ca::{EcCurve, KeySpec};
use capf_operations::{
    AuditEntry, CertificateRecord, Device, DeviceEdit, DeviceQuery, LastError, OperationsError,
    OperatorStore, SessionCommit, SessionStore, SortColumn, StatusFilter, TextCriterion, TextField,
    TextMatch,
};
use capf_store::{ExistingTarget, SCHEMA_VERSION, SqliteStore, StoreError};
use common::*;

fn cert(serial: &str, subject: &str) -> CertificateRecord {
    CertificateRecord {
        der: vec![0x30, 0x82, 0x01, 0x02, 0xAA, serial.len() as u8],
        subject: subject.to_owned(),
        issuer: "CN=CAPF-test, O=CAPF".to_owned(),
        serial_hex: serial.to_owned(),
        not_before: at(1_700_000_000),
        // 9999-12-31T23:59:59Z, "no well-defined expiration" (RFC 5280).
        not_after: at(253_402_300_799),
    }
}

/// Every field set, times with nanoseconds.
fn full_device() -> Device {
    let mut d = device(
        "SEP001122334455",
        AuthMode::AuthString,
        Operation::None,
        Some("0123456789"),
    );
    d.description = "Lobby phone, 2nd floor".into();
    d.key = Some(KeySpec::Ec(EcCurve::P384));
    d.lsc = Some(cert("0badc0de", "CN=SEP001122334455, O=CAPF"));
    d.mic = Some(cert(
        "42",
        "CN=CP-8865-SEP001122334455, O=Cisco Systems Inc.",
    ));
    d.policy.certificates.lsc = true;
    d.policy.certificates.mic = true;
    d.schedule(
        Operation::Delete,
        Some(at(1_800_000_000) + Duration::from_nanos(123_456_789)),
    )
    .unwrap();
    d.policy.failed_attempts = 3;
    d.policy.locked = true;
    d.policy.security_mode = SecurityMode::Encrypted;
    d.policy.status = OperationStatus::Failed {
        operation: Operation::Delete,
        reason: FailureReason::LockedOut,
        at: at(1_790_000_000) + Duration::from_nanos(7),
    };
    d.key_generation_failures = 2;
    d.last_error = Some(LastError {
        reason: "phone closed the connection".into(),
        at: at(1_790_000_001) + Duration::from_nanos(999_999_999),
    });
    d
}

fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(dir.path().join("capf.db")).unwrap()
}

#[test]
fn a_fully_populated_device_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let d = full_device();
    store.insert(&d, at(1)).unwrap();
    assert_eq!(store.load(&d.name).unwrap().as_ref(), Some(&d));
    assert!(matches!(
        store.insert(&d, at(1)),
        Err(OperationsError::DeviceExists { .. })
    ));
    drop(store);
    // And from the file.
    let store = open(&dir);
    let loaded = store.load(&d.name).unwrap().unwrap();
    assert_eq!(loaded, d);
    assert_eq!(loaded.policy.auth_string.unwrap().expose(), "0123456789");

    // The other extreme: nothing set.
    assert!(store.remove(&d.name, at(2)).unwrap());
    let mut bare = Device::new(d.name.clone(), AuthMode::ExistingCertificateMicFirst);
    bare.policy.status = OperationStatus::Succeeded {
        operation: Operation::Troubleshoot,
        at: at(5),
    };
    store.insert(&bare, at(3)).unwrap();
    assert_eq!(store.load(&d.name).unwrap(), Some(bare));

    let other = device("CSFjsmith", AuthMode::NullString, Operation::None, None);
    assert!(matches!(
        store.modify(&other.name, &DeviceEdit::default(), at(4)),
        Err(OperationsError::UnknownDevice { .. })
    ));
    assert!(store.load(&other.name).unwrap().is_none());
    assert!(store.remove(&d.name, at(5)).unwrap());
    assert!(!store.remove(&d.name, at(6)).unwrap());
    assert!(store.load(&d.name).unwrap().is_none());
}

#[test]
fn certificate_flags_follow_the_records_as_in_memory_store() {
    let store = SqliteStore::open_in_memory().unwrap();
    let mut d = device(
        "SEP001122334455",
        AuthMode::NullString,
        Operation::None,
        None,
    );
    d.policy.certificates.lsc = true; // no record: not kept
    d.mic = Some(cert("01", "CN=MIC"));
    store.insert(&d, at(1)).unwrap();
    let loaded = store.load(&d.name).unwrap().unwrap();
    assert!(!loaded.policy.certificates.lsc);
    assert!(loaded.policy.certificates.mic);

    let memory = capf_operations::MemoryStore::new();
    memory.insert(&d, at(1)).unwrap();
    assert_eq!(memory.load(&d.name).unwrap().unwrap(), loaded);
}

/// The calls an async server makes, answered through their replies: a
/// lease taken that way excludes a second session at once, an unknown
/// device is refused, and a last commit under the lease is durable and
/// frees the device.
#[test]
fn replies_exclude_at_once_and_the_last_commit_frees_the_device() {
    use std::sync::mpsc;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let d = device(
        "SEP001122334455",
        AuthMode::NullString,
        Operation::InstallUpgrade,
        None,
    );
    store.insert(&d, at(1)).unwrap();
    let ttl = Duration::from_secs(60);
    let t0 = at(1_800_000_000);
    let wait = Duration::from_secs(10);

    let (leases, leased) = mpsc::channel();
    for n in [d.name.clone(), d.name.clone(), name("SEP00112233AAAA")] {
        let leases = leases.clone();
        store.begin(&n, t0, ttl, Box::new(move |r| leases.send(r).unwrap()));
    }
    let (lease, loaded) = leased.recv_timeout(wait).unwrap().unwrap();
    assert_eq!(loaded, store.load(&d.name).unwrap().unwrap());
    assert!(matches!(
        leased.recv_timeout(wait).unwrap(),
        Err(OperationsError::DeviceBusy { .. })
    ));
    assert!(matches!(
        leased.recv_timeout(wait).unwrap(),
        Err(OperationsError::UnknownDevice { .. })
    ));

    let failed = SessionCommit::Failed {
        reason: "phone refused".into(),
        key_generation_failures: None,
        operation_failed: None,
        at: t0,
    };
    let (commits, committed) = mpsc::channel();
    store.commit(
        &lease,
        &failed,
        true,
        Box::new(move |r| commits.send(r).unwrap()),
    );
    let after = committed.recv_timeout(wait).unwrap().unwrap();
    drop(store);
    // Durable, and the device is free for another process.
    let reopened = open(&dir);
    assert_eq!(reopened.load(&d.name).unwrap().unwrap(), after);
    assert!(!reopened.audit_log(&d.name).unwrap().is_empty());
    reopened.begin_blocking(&d.name, t0, ttl).unwrap();
}

#[test]
fn last_commit_gives_the_lease_back_in_its_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let d = device(
        "SEP001122334455",
        AuthMode::NullString,
        Operation::InstallUpgrade,
        None,
    );
    store.insert(&d, at(1)).unwrap();
    let ttl = Duration::from_secs(60);
    let t0 = at(1_800_000_000);
    let failed = SessionCommit::Failed {
        reason: "phone refused".into(),
        key_generation_failures: None,
        operation_failed: None,
        at: t0,
    };
    let lease = store
        .begin_blocking(&d.name, t0, ttl)
        .map(|(lease, _)| lease)
        .unwrap();
    // Under a lost lease nothing happens: no change, the lease stays.
    let mut stale = lease.clone();
    stale.token += 1;
    assert!(matches!(
        store.commit_blocking(&stale, &failed, true),
        Err(OperationsError::LeaseLost { .. })
    ));
    assert!(matches!(
        store
            .begin_blocking(&d.name, t0, ttl)
            .map(|(lease, _)| lease),
        Err(OperationsError::DeviceBusy { .. })
    ));
    let audited = store.audit_log(&d.name).unwrap().len();
    assert_eq!(audited, 1, "only the device's addition");
    // Under its lease: the change is there and the device is free at once,
    // for this connection and for another process.
    let after = store.commit_blocking(&lease, &failed, true).unwrap();
    assert!(store.audit_log(&d.name).unwrap().len() > audited);
    assert_eq!(store.load(&d.name).unwrap().unwrap(), after);
    let other_process = open(&dir);
    let next = other_process
        .begin_blocking(&d.name, t0, ttl)
        .map(|(lease, _)| lease)
        .unwrap();
    assert_ne!(next.token, lease.token);
}

#[test]
fn leases_exclude_expire_and_release_only_with_their_token() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let d = device(
        "SEP001122334455",
        AuthMode::NullString,
        Operation::InstallUpgrade,
        None,
    );
    store.insert(&d, at(1)).unwrap();
    let ttl = Duration::from_secs(60);
    let t0 = at(1_800_000_000);

    assert!(matches!(
        store
            .begin_blocking(&name("SEP00112233AAAA"), t0, ttl)
            .map(|(lease, _)| lease),
        Err(OperationsError::UnknownDevice { .. })
    ));
    let first = store
        .begin_blocking(&d.name, t0, ttl)
        .map(|(lease, _)| lease)
        .unwrap();
    assert_eq!(first.expires, t0 + ttl);
    assert!(matches!(
        store
            .begin_blocking(&d.name, t0 + Duration::from_secs(59), ttl)
            .map(|(lease, _)| lease),
        Err(OperationsError::DeviceBusy { .. })
    ));
    // A second process on the same file is excluded too.
    let other_process = open(&dir);
    assert!(matches!(
        other_process
            .begin_blocking(&d.name, t0, ttl)
            .map(|(lease, _)| lease),
        Err(OperationsError::DeviceBusy { .. })
    ));

    // An expired, not taken over lease may still commit (as MemoryStore).
    let failed = SessionCommit::Failed {
        reason: "timeout".into(),
        key_generation_failures: None,
        operation_failed: None,
        at: t0 + Duration::from_secs(120),
    };
    store.commit_blocking(&first, &failed, false).unwrap();

    // Expired: another session takes it over; the first one has lost it.
    let second = other_process
        .begin_blocking(&d.name, t0 + Duration::from_secs(61), ttl)
        .map(|(lease, _)| lease)
        .unwrap();
    assert_ne!(second.token, first.token);
    assert!(matches!(
        store.commit_blocking(&first, &failed, false),
        Err(OperationsError::LeaseLost { .. })
    ));
    // Releasing with the wrong token does nothing.
    store.release_blocking(&first).unwrap();
    assert!(matches!(
        store
            .begin_blocking(&d.name, t0 + Duration::from_secs(62), ttl)
            .map(|(lease, _)| lease),
        Err(OperationsError::DeviceBusy { .. })
    ));
    store.commit_blocking(&second, &failed, false).unwrap();
    other_process.release_blocking(&second).unwrap();
    assert!(matches!(
        store.commit_blocking(&second, &failed, false),
        Err(OperationsError::LeaseLost { .. })
    ));
    let third = store
        .begin_blocking(&d.name, t0 + Duration::from_secs(63), ttl)
        .map(|(lease, _)| lease)
        .unwrap();
    assert_ne!(third.token, second.token);

    // Removing a device is refused while a session holds it.
    assert!(matches!(
        store.remove(&d.name, t0 + Duration::from_secs(63)),
        Err(OperationsError::DeviceBusy { .. })
    ));
    // Once its lease lapsed, it goes, and the lease row with it.
    let later = t0 + Duration::from_secs(63) + ttl;
    assert!(store.remove(&d.name, later).unwrap());
    store.insert(&d, at(1)).unwrap();
    store
        .begin_blocking(&d.name, t0 + Duration::from_secs(64), ttl)
        .map(|(lease, _)| lease)
        .unwrap();
}

#[test]
fn lockout_survives_closing_and_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let d = device(
        "SEP001122334455",
        AuthMode::AuthString,
        Operation::InstallUpgrade,
        Some("123456"),
    );
    store.insert(&d, at(1)).unwrap();
    let lease = store
        .begin_blocking(&d.name, at(1_800_000_000), Duration::from_secs(60))
        .map(|(lease, _)| lease)
        .unwrap();
    let mut update = PolicyUpdate::NONE;
    update.failed_attempts = Some(5);
    update.lock = true;
    update.operation_failed = Some((FailureReason::LockedOut, at(1_800_000_001)));
    let after = store
        .commit_blocking(
            &lease,
            &SessionCommit::Policy {
                update,
                refusal: Some("wrong authentication string".into()),
                mic: None,
                at: at(1_800_000_001),
            },
            false,
        )
        .unwrap();
    drop(store);

    let store = open(&dir);
    let loaded = store.load(&d.name).unwrap().unwrap();
    assert_eq!(loaded, after);
    assert!(loaded.policy.locked);
    assert_eq!(loaded.policy.failed_attempts, 5);
    assert!(loaded.policy.auth_string.is_none(), "string disarmed");
    assert_eq!(loaded.status_label(), "Install/Upgrade failed");
    let events: Vec<String> = store
        .audit_log(&d.name)
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(events, ["added", "refused", "lockout", "operation-failed"]);
}

#[test]
fn find_filters_sorts_and_pages_like_memory_store() {
    let store = SqliteStore::open_in_memory().unwrap();
    let memory = capf_operations::MemoryStore::new();
    let mut all = Vec::new();
    for i in 0..12u32 {
        let mode = if i % 2 == 0 {
            AuthMode::AuthString
        } else {
            AuthMode::NullString
        };
        let op = if i % 3 == 0 {
            Operation::InstallUpgrade
        } else {
            Operation::None
        };
        let mut d = device(
            &format!("SEP0000000000{i:02X}"),
            mode,
            op,
            (i % 2 == 0).then_some("1234"),
        );
        d.description = format!("floor {}", i % 4);
        if i % 5 == 0 {
            d.lsc = Some(cert(&format!("{i:x}"), "CN=x"));
        }
        store.insert(&d, at(1)).unwrap();
        memory.insert(&d, at(1)).unwrap();
        all.push(d);
    }
    let queries = [
        DeviceQuery::default(),
        DeviceQuery {
            text: vec![TextCriterion {
                field: TextField::Description,
                how: TextMatch::EndsWith,
                pattern: "1".into(),
            }],
            ..DeviceQuery::default()
        },
        DeviceQuery {
            text: vec![TextCriterion {
                field: TextField::AuthString,
                how: TextMatch::NotEmpty,
                pattern: String::new(),
            }],
            operation: Some(Operation::InstallUpgrade),
            ..DeviceQuery::default()
        },
        DeviceQuery {
            lsc_installed: Some(true),
            ..DeviceQuery::default()
        },
        DeviceQuery {
            status: Some(StatusFilter::Pending),
            sort: SortColumn::AuthMode,
            descending: true,
            ..DeviceQuery::default()
        },
        DeviceQuery {
            sort: SortColumn::Description,
            page: 2,
            per_page: 5,
            ..DeviceQuery::default()
        },
    ];
    for q in &queries {
        assert_eq!(store.find(q).unwrap(), memory.find(q).unwrap(), "{q:?}");
    }
    let page = store.find(&queries[5]).unwrap();
    assert_eq!(page.total, 12);
    assert_eq!(page.devices.len(), 5);
    assert_eq!(store.find(&queries[3]).unwrap().total, 3);
    assert!(matches!(
        store.find(&DeviceQuery {
            page: 0,
            ..DeviceQuery::default()
        }),
        Err(OperationsError::InvalidQuery { .. })
    ));
}

#[test]
fn parameters_persist_and_invalid_values_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    assert_eq!(
        store.load_parameters().unwrap(),
        capf_operations::ServiceParameters::default()
    );
    let p = store.save_parameter("default_key", " P256 ").unwrap();
    assert_eq!(p.default_key, KeySpec::Ec(EcCurve::P256));
    store.save_parameter("auth_failure_limit", "3").unwrap();
    store.save_parameter("accept_expired_mic", "yes").unwrap();
    for (n, v) in [
        ("lsc_validity_years", "0"),
        ("lsc_validity_years", "five"),
        ("default_key", "rsa999"),
        ("no_such_parameter", "1"),
    ] {
        match store.save_parameter(n, v) {
            Err(StoreError::Operations(e)) => assert!(matches!(
                *e,
                OperationsError::InvalidParameter { .. } | OperationsError::UnknownParameter { .. }
            )),
            other => panic!("{n}={v}: {other:?}"),
        }
    }
    drop(store);
    let store = open(&dir);
    let p = store.load_parameters().unwrap();
    assert_eq!(p.default_key.to_string(), "p256");
    assert_eq!(p.auth_failure_limit, 3);
    assert!(p.accept_expired_mic);
    assert_eq!(p.lsc_validity_years, 5);
    let p = store.reset_parameter("auth_failure_limit").unwrap();
    assert_eq!(p.auth_failure_limit, 5);
    assert!(store.reset_parameter("nope").is_err());
}

#[test]
fn operator_events_are_audited_and_outlive_the_device() {
    let store = SqliteStore::open_in_memory().unwrap();
    let d = device(
        "SEP001122334455",
        AuthMode::AuthString,
        Operation::None,
        None,
    );
    store.insert(&d, at(1)).unwrap();
    store
        .record_event(&AuditEntry::new(
            at(10),
            &d.name,
            "operator",
            "string armed",
        ))
        .unwrap();
    assert!(store.remove(&d.name, at(7)).unwrap());
    store
        .record_event(&AuditEntry::new(
            at(11),
            &d.name,
            "operator",
            "device removed",
        ))
        .unwrap();
    let log = store.audit_log(&d.name).unwrap();
    let events: Vec<&str> = log.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(events, ["added", "operator", "removed", "operator"]);
    assert_eq!(log[1].detail, "string armed");
    assert_eq!(log[3].at, at(11));
}

#[cfg(unix)]
#[test]
fn the_database_and_its_backup_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.insert(&full_device(), at(1)).unwrap();
    store.backup_to(dir.path().join("backup.db")).unwrap();
    for file in ["capf.db", "capf.db-wal", "backup.db"] {
        let mode = std::fs::metadata(dir.path().join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
}

#[test]
fn a_newer_schema_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
    }
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found, supported, .. }
            if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
        "{err:?}"
    );
    assert!(err.to_string().contains("upgrade capf"), "{err}");
}

#[test]
fn a_file_that_is_not_a_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.db");
    std::fs::write(
        &path,
        b"this is not an SQLite database, just some text padding it out",
    )
    .unwrap();
    assert!(matches!(
        SqliteStore::open(&path),
        Err(StoreError::Sqlite { .. })
    ));
}

/// A version 1 database as capf-store 0.1 wrote it (schema and rows frozen
/// in `tests/fixtures/schema_v1.sql`) opens and reads.
#[test]
fn an_existing_version_1_database_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(include_str!("fixtures/schema_v1.sql"))
            .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let d = store.load(&name("SEP001122334455")).unwrap().unwrap();
    assert_eq!(d.description, "Lobby");
    assert_eq!(d.operation(), Operation::InstallUpgrade);
    assert_eq!(d.policy.auth_string.as_ref().unwrap().expose(), "123456");
    assert_eq!(d.policy.failed_attempts, 2);
    let issued = store.issued_certificates(&d.name).unwrap();
    assert_eq!(issued.len(), 1);
    assert!(!issued[0].delivered);
    assert_eq!(store.audit_log(&d.name).unwrap()[0].event, "issued");
    assert_eq!(store.load_parameters().unwrap().lsc_validity_years, 2);
    // Leases still work on it.
    store
        .begin_blocking(&d.name, at(1_800_000_000), Duration::from_secs(5))
        .map(|(lease, _)| lease)
        .unwrap();
}

#[test]
fn backup_then_restore_gives_the_same_devices_and_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let d = full_device();
    store.insert(&d, at(1)).unwrap();
    let other = device(
        "CSFjsmith",
        AuthMode::NullString,
        Operation::InstallUpgrade,
        None,
    );
    store.insert(&other, at(1)).unwrap();
    let lease = store
        .begin_blocking(&other.name, at(1_800_000_000), Duration::from_secs(60))
        .map(|(lease, _)| lease)
        .unwrap();
    let record = capf_operations::IssuedRecord {
        device: other.name.clone(),
        certificate: cert("77", "CN=CSFjsmith"),
        issued_at: at(1_800_000_000),
        delivered: false,
    };
    store
        .commit_blocking(&lease, &SessionCommit::Issued(record.clone()), false)
        .unwrap();
    store.save_parameter("lsc_validity_years", "10").unwrap();

    let backup = dir.path().join("backup.db");
    // Backing up while the store is in use (lease held, WAL not checkpointed).
    store.backup_to(&backup).unwrap();
    assert!(matches!(
        store.backup_to(&backup),
        Err(StoreError::BackupTargetExists { .. })
    ));

    let target = dir.path().join("restored").join("capf.db");
    std::fs::create_dir(target.parent().unwrap()).unwrap();
    let restored = SqliteStore::restore_from(&backup, &target, ExistingTarget::Refuse).unwrap();
    assert!(restored.ignored.is_empty(), "{:?}", restored.ignored);
    let restored = restored.store;
    let q = DeviceQuery::default();
    assert_eq!(restored.find(&q).unwrap(), store.find(&q).unwrap());
    assert_eq!(
        restored.issued_certificates(&other.name).unwrap(),
        vec![record]
    );
    assert_eq!(
        restored.audit_log(&other.name).unwrap(),
        store.audit_log(&other.name).unwrap()
    );
    assert_eq!(restored.load_parameters().unwrap().lsc_validity_years, 10);
    drop(restored);

    // The target now holds data: refused unless told to replace it.
    assert!(matches!(
        SqliteStore::restore_from(&backup, &target, ExistingTarget::Refuse),
        Err(StoreError::RestoreTargetNotEmpty { .. })
    ));
    // The live database is not empty either.
    assert!(matches!(
        SqliteStore::restore_from(&backup, dir.path().join("capf.db"), ExistingTarget::Refuse),
        Err(StoreError::RestoreTargetNotEmpty { .. })
    ));
    let replaced = SqliteStore::restore_from(&backup, &target, ExistingTarget::Replace)
        .unwrap()
        .store;
    assert_eq!(replaced.load(&d.name).unwrap(), Some(d));

    // An empty, freshly initialised database may be restored over.
    let fresh = dir.path().join("fresh.db");
    drop(SqliteStore::open(&fresh).unwrap());
    SqliteStore::restore_from(&backup, &fresh, ExistingTarget::Refuse).unwrap();
}

#[test]
fn restore_refuses_what_is_not_a_capf_backup() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("capf.db");
    let missing = dir.path().join("missing.db");
    assert!(matches!(
        SqliteStore::restore_from(&missing, &target, ExistingTarget::Refuse),
        Err(StoreError::InvalidBackup { .. })
    ));
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
    assert!(matches!(
        SqliteStore::restore_from(&junk, &target, ExistingTarget::Refuse),
        Err(StoreError::InvalidBackup { .. })
    ));
    let future = dir.path().join("future.db");
    {
        let conn = rusqlite::Connection::open(&future).unwrap();
        conn.execute_batch("CREATE TABLE devices (name TEXT)")
            .unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
    }
    let err = SqliteStore::restore_from(&future, &target, ExistingTarget::Refuse).unwrap_err();
    assert!(err.to_string().contains("newer"), "{err}");
    let unrelated = dir.path().join("unrelated.db");
    {
        let conn = rusqlite::Connection::open(&unrelated).unwrap();
        conn.execute_batch("CREATE TABLE t (x)").unwrap();
    }
    assert!(matches!(
        SqliteStore::restore_from(&unrelated, &target, ExistingTarget::Refuse),
        Err(StoreError::InvalidBackup { .. })
    ));
}

/// Several "processes" (connections) open a fresh file at once and race
/// for one device's lease: the schema is created once, exactly one wins.
#[test]
fn concurrent_openers_and_lease_racers_on_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("capf.db");
    let d = device(
        "SEP001122334455",
        AuthMode::NullString,
        Operation::None,
        None,
    );
    let barrier = std::sync::Barrier::new(6);
    let results: Vec<Result<(), OperationsError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|_| {
                s.spawn(|| {
                    let store = SqliteStore::open(&path).unwrap();
                    // Whoever comes first inserts; the others see it exists.
                    match store.insert(&d, at(1)) {
                        Ok(()) | Err(OperationsError::DeviceExists { .. }) => {}
                        Err(e) => panic!("{e}"),
                    }
                    barrier.wait();
                    store
                        .begin_blocking(&d.name, at(1_800_000_000), Duration::from_secs(60))
                        .map(|(lease, _)| lease)
                        .map(|_| ())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(()) | Err(OperationsError::DeviceBusy { .. })))
    );
}

#[test]
fn stale_leases_are_cleared_for_a_restarted_server() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.insert(&full_device(), at(1)).unwrap();
    let name = full_device().name;
    let now = at(1_800_000_000);
    let _held = store
        .begin_blocking(&name, now, Duration::from_secs(3600))
        .map(|(lease, _)| lease)
        .unwrap();
    drop(store); // the server dies holding the lease
    let store = open(&dir);
    assert!(matches!(
        store
            .begin_blocking(&name, now, Duration::from_secs(60))
            .map(|(lease, _)| lease),
        Err(OperationsError::DeviceBusy { .. })
    ));
    assert_eq!(store.clear_stale_leases().unwrap(), 1);
    assert!(
        store
            .begin_blocking(&name, now, Duration::from_secs(60))
            .map(|(lease, _)| lease)
            .is_ok()
    );
}

/// A restore copies rows into a database of our own schema: what else the
/// backup holds (a trigger that would switch devices to the null string on
/// any update, a view, another table, a parameter this version does not
/// know) is named and left behind, and never fires.
#[test]
fn restore_copies_rows_and_leaves_everything_else_behind() {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("evil.db");
    let d = device(
        "SEP001122334455",
        AuthMode::AuthString,
        Operation::InstallUpgrade,
        Some("123456"),
    );
    {
        let store = SqliteStore::open(dir.path().join("source.db")).unwrap();
        store.insert(&d, at(1)).unwrap();
        store.save_parameter("auth_failure_limit", "3").unwrap();
        store.backup_to(&backup).unwrap();
    }
    {
        let conn = rusqlite::Connection::open(&backup).unwrap();
        conn.execute_batch(
            "CREATE TRIGGER evil AFTER UPDATE ON devices BEGIN \
                 UPDATE devices SET auth_mode = 'null-string' WHERE name = NEW.name; END;\
             CREATE VIEW strings AS SELECT name, auth_string FROM devices;\
             CREATE TABLE extra (x INTEGER);\
             INSERT INTO service_parameters (name, value) VALUES ('lsc_first_mic_fallback', 'true');",
        )
        .unwrap();
    }
    let target = dir.path().join("capf.db");
    let restored = SqliteStore::restore_from(&backup, &target, ExistingTarget::Refuse).unwrap();
    let ignored = restored.ignored.join("; ");
    for what in [
        "trigger \"evil\"",
        "view \"strings\"",
        "table \"extra\"",
        "lsc_first_mic_fallback",
    ] {
        assert!(ignored.contains(what), "{what} in {ignored}");
    }
    let store = restored.store;
    assert_eq!(store.load(&d.name).unwrap().as_ref(), Some(&d));
    assert_eq!(store.load_parameters().unwrap().auth_failure_limit, 3);
    // An update after the restore: nothing switches the mode.
    let edit = capf_operations::DeviceEdit {
        description: Some("after restore".into()),
        ..capf_operations::DeviceEdit::default()
    };
    store.modify(&d.name, &edit, at(2)).unwrap();
    let after = store.load(&d.name).unwrap().unwrap();
    assert_eq!(after.policy.auth_mode, AuthMode::AuthString);
    drop(store);
    let conn = rusqlite::Connection::open(&target).unwrap();
    let extra: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type IN ('trigger', 'view') OR name = 'extra'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(extra, 0, "nothing but our schema");
}

/// A value of the wrong type in a known column fails the restore, which
/// then changes nothing.
#[test]
fn restore_refuses_a_value_of_the_wrong_type() {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("bad.db");
    {
        let store = SqliteStore::open(dir.path().join("source.db")).unwrap();
        store
            .insert(
                &device(
                    "SEP001122334455",
                    AuthMode::NullString,
                    Operation::None,
                    None,
                ),
                at(1),
            )
            .unwrap();
        store.backup_to(&backup).unwrap();
    }
    {
        // A copy of the table without its types, holding text where a
        // count belongs.
        let conn = rusqlite::Connection::open(&backup).unwrap();
        conn.execute_batch(
            "CREATE TABLE d2 AS SELECT * FROM devices; DROP TABLE devices; \
             ALTER TABLE d2 RENAME TO devices; \
             UPDATE devices SET failed_attempts = 'many';",
        )
        .unwrap();
    }
    let target = dir.path().join("capf.db");
    let err = SqliteStore::restore_from(&backup, &target, ExistingTarget::Refuse).unwrap_err();
    assert!(matches!(err, StoreError::InvalidBackup { .. }), "{err}");
    assert!(!target.exists(), "nothing written");
}

fn admin(n: &str) -> capf_operations::Account {
    capf_operations::Account {
        name: capf_operations::AccountName::parse(n).unwrap(),
        role: capf_operations::Role::Admin,
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA${n}"),
        created_at: at(1_800_000_000) + Duration::from_nanos(5),
        password_changed_at: at(1_800_000_001),
    }
}

/// Operator accounts, API tokens and the whole audit log (who did what,
/// entries about no device) are in the backup and come back from it; a
/// database holding only accounts holds data a restore would destroy.
#[test]
fn accounts_tokens_and_actors_survive_backup_and_restore() {
    use capf_operations::{AccountStore, ApiToken, AuditQuery, Role};
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let alice = admin("alice");
    store.add_account(&alice).unwrap();
    let token = ApiToken {
        id: "nightly".into(),
        label: "nightly report".into(),
        role: Role::ReadOnly,
        secret_sha256: "5e".repeat(32),
        created_at: at(1_800_000_002),
        created_by: Some(alice.name.clone()),
    };
    store.add_token(&token).unwrap();
    let d = full_device();
    store.insert(&d, at(1)).unwrap();
    store
        .record_event(&AuditEntry::account_added(at(1_800_000_000), &alice))
        .unwrap();
    store
        .record_event(&AuditEntry::token_created(at(1_800_000_002), &token).by("alice"))
        .unwrap();
    store
        .record_event(
            &AuditEntry::new(at(1_800_000_003), &d.name, "changed", "x").by("token:nightly"),
        )
        .unwrap();
    let everything = store.audit(&AuditQuery::default()).unwrap();
    assert_eq!(everything.len(), 4);

    let backup = dir.path().join("backup.db");
    store.backup_to(&backup).unwrap();
    let target = dir.path().join("restored.db");
    let restored = SqliteStore::restore_from(&backup, &target, ExistingTarget::Refuse).unwrap();
    assert!(restored.ignored.is_empty(), "{:?}", restored.ignored);
    let restored = restored.store;
    assert_eq!(restored.accounts().unwrap(), std::slice::from_ref(&alice));
    assert_eq!(restored.tokens().unwrap(), [token]);
    assert_eq!(restored.audit(&AuditQuery::default()).unwrap(), everything);
    assert_eq!(
        restored.audit_log(&d.name).unwrap(),
        store.audit_log(&d.name).unwrap()
    );
    drop(restored);

    // Only an account: data all the same.
    let accounts_only = dir.path().join("accounts-only.db");
    SqliteStore::open(&accounts_only)
        .unwrap()
        .add_account(&alice)
        .unwrap();
    assert!(SqliteStore::holds_data(&accounts_only).unwrap());
    assert!(matches!(
        SqliteStore::restore_from(&backup, &accounts_only, ExistingTarget::Refuse),
        Err(StoreError::RestoreTargetNotEmpty { .. })
    ));
}

/// A version 1 database (no accounts, an audit log whose device is NOT
/// NULL and has no actor) migrates to the current schema keeping every
/// entry and its order; searching works on it; restored as a backup, it
/// gives a store with no accounts.
#[test]
fn a_version_1_audit_log_migrates_and_restores() {
    use capf_operations::{AccountStore, AuditQuery};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(include_str!("fixtures/schema_v1.sql"))
            .unwrap();
    }
    let target = dir.path().join("restored-v1.db");
    let restored = SqliteStore::restore_from(&path, &target, ExistingTarget::Refuse).unwrap();
    assert!(restored.ignored.is_empty(), "{:?}", restored.ignored);
    let store = SqliteStore::open(&path).unwrap();
    let d = name("SEP001122334455");
    let log = store.audit_log(&d).unwrap();
    assert!(!log.is_empty());
    assert!(
        log.iter()
            .all(|e| e.actor.is_none() && e.device.as_ref() == Some(&d))
    );
    let found = store.audit(&AuditQuery::default()).unwrap();
    let mut oldest_first = found.clone();
    oldest_first.reverse();
    assert_eq!(oldest_first, log);
    assert!(store.accounts().unwrap().is_empty());
    // New entries go after the old ones.
    store
        .record_event(&AuditEntry::new(at(1_900_000_000), &d, "changed", "x").by("alice"))
        .unwrap();
    assert_eq!(store.audit_log(&d).unwrap().len(), log.len() + 1);
    let restored = restored.store;
    assert_eq!(restored.audit_log(&d).unwrap(), log);
    assert!(restored.accounts().unwrap().is_empty());
    assert!(restored.tokens().unwrap().is_empty());
}
