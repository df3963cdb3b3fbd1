//! The store conformance suite: one set of checks that every store backend
//! passes (the in-memory store, SQLite, PostgreSQL, yours).
//!
//! Each check takes a fresh, empty store. Run them all from your backend's
//! tests with [`store_conformance_tests!`](crate::store_conformance_tests):
//!
//! ```ignore
//! capf_operations::store_conformance_tests!(my_backend::MyStore::open_empty_for_test());
//! ```
//!
//! The checks panic with a message on a broken rule, like any test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use capf_auth::{AuthMode, AuthString, Grant, Operation, PolicyUpdate, Refusal};
use capf_ca::{CapfIdentity, EcCurve, IdentityParams, Issuer, KeySpec, PrivateKey, TrustStore};

use crate::phone::{Credentials, PhoneConfig, PhoneEvent, PhoneSession};
use crate::{
    Account, AccountName, AccountStore, ApiToken, AuditEntry, AuditQuery, CertificateRecord,
    CompletedWork, Device, DeviceEdit, DeviceName, DeviceStore, IssuedRecord, OperationsError,
    OutcomeKind, Role, ServerConfig, ServerSession, ServiceParameters, SessionCommit,
    SessionDriver, SessionOutcome,
};

/// Generates one `#[test]` per conformance check, each on a fresh store
/// made by `$make` (an expression evaluated once per test).
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:expr) => {
        $crate::store_conformance_tests!(@tests $make;
            begin_leases_and_loads,
            an_expired_lease_can_be_taken_over,
            release_gives_back_only_its_own_lease,
            the_last_commit_gives_the_lease_back,
            install_records_delivers_and_supersedes,
            delete_retires_the_lsc,
            a_serial_is_recorded_once,
            a_delivery_is_recorded_once_and_only_for_its_device,
            a_failed_change_leaves_nothing,
            refusals_are_recorded,
            operators_insert_find_and_remove,
            edits_apply_to_the_current_row,
            edits_that_a_session_depends_on_wait_for_it,
            an_edit_drops_an_expired_lease,
            revoking_the_lsc,
            offline_issuance_is_history_not_the_record,
            operator_edits_never_undo_sessions,
            the_audit_log_is_searched,
            actors_round_trip,
            accounts_add_change_and_remove,
            the_last_admin_stays,
            tokens_add_find_and_remove,
        );
    };
    (@tests $make:expr; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                let store = $make;
                $crate::testing::$check(&store);
            }
        )*
    };
}

/// What the conformance suite checks: a store with every face (every
/// [`StoreBackend`](crate::StoreBackend) is one).
pub trait ConformanceStore: DeviceStore + AccountStore {}

impl<T: DeviceStore + AccountStore + ?Sized> ConformanceStore for T {}

/// A conformance check: its name and the check.
pub type Check = (&'static str, fn(&(dyn ConformanceStore + 'static)));

/// Every conformance check, for a backend whose tests run under their own
/// harness (e.g. to make and drop a database around the whole suite). The
/// same checks as [`store_conformance_tests!`](crate::store_conformance_tests);
/// keep the two lists in step.
pub fn checks() -> Vec<Check> {
    vec![
        ("begin_leases_and_loads", |s| begin_leases_and_loads(s)),
        ("an_expired_lease_can_be_taken_over", |s| {
            an_expired_lease_can_be_taken_over(s)
        }),
        ("release_gives_back_only_its_own_lease", |s| {
            release_gives_back_only_its_own_lease(s)
        }),
        ("the_last_commit_gives_the_lease_back", |s| {
            the_last_commit_gives_the_lease_back(s)
        }),
        ("install_records_delivers_and_supersedes", |s| {
            install_records_delivers_and_supersedes(s)
        }),
        ("delete_retires_the_lsc", |s| delete_retires_the_lsc(s)),
        ("a_serial_is_recorded_once", |s| {
            a_serial_is_recorded_once(s)
        }),
        ("a_delivery_is_recorded_once_and_only_for_its_device", |s| {
            a_delivery_is_recorded_once_and_only_for_its_device(s)
        }),
        ("a_failed_change_leaves_nothing", |s| {
            a_failed_change_leaves_nothing(s)
        }),
        ("refusals_are_recorded", |s| refusals_are_recorded(s)),
        ("operators_insert_find_and_remove", |s| {
            operators_insert_find_and_remove(s)
        }),
        ("edits_apply_to_the_current_row", |s| {
            edits_apply_to_the_current_row(s)
        }),
        ("edits_that_a_session_depends_on_wait_for_it", |s| {
            edits_that_a_session_depends_on_wait_for_it(s)
        }),
        ("an_edit_drops_an_expired_lease", |s| {
            an_edit_drops_an_expired_lease(s)
        }),
        ("revoking_the_lsc", |s| revoking_the_lsc(s)),
        ("offline_issuance_is_history_not_the_record", |s| {
            offline_issuance_is_history_not_the_record(s)
        }),
        ("operator_edits_never_undo_sessions", |s| {
            operator_edits_never_undo_sessions(s)
        }),
        ("the_audit_log_is_searched", |s| {
            the_audit_log_is_searched(s)
        }),
        ("actors_round_trip", |s| actors_round_trip(s)),
        ("accounts_add_change_and_remove", |s| {
            accounts_add_change_and_remove(s)
        }),
        ("the_last_admin_stays", |s| the_last_admin_stays(s)),
        ("tokens_add_find_and_remove", |s| {
            tokens_add_find_and_remove(s)
        }),
    ]
}

/// 2026-12-01T00:00:00Z.
fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_083_200)
}

const HOUR: Duration = Duration::from_secs(3600);

fn name(text: &str) -> DeviceName {
    DeviceName::parse(text).unwrap()
}

fn add(store: &dyn DeviceStore, device: &str, mode: AuthMode, operation: Operation) -> DeviceName {
    let mut d = Device::new(name(device), mode);
    d.key = Some(KeySpec::Ec(EcCurve::P256));
    d.schedule(operation, None).unwrap();
    store.insert(&d, t0()).unwrap();
    d.name
}

/// A P-256 CAPF identity, made once per test binary.
fn identity() -> &'static CapfIdentity {
    static ID: OnceLock<CapfIdentity> = OnceLock::new();
    ID.get_or_init(|| {
        CapfIdentity::generate(
            &IdentityParams {
                key: KeySpec::Ec(EcCurve::P256),
                ..Default::default()
            },
            t0() - Duration::from_secs(86_400),
        )
        .unwrap()
    })
}

fn issuer() -> Issuer {
    identity().issuer().unwrap()
}

/// A certificate issued to `device`, as a session would record it.
fn issued_record(device: &DeviceName, at: SystemTime) -> IssuedRecord {
    let key = PrivateKey::generate(KeySpec::Ec(EcCurve::P256)).unwrap();
    let lsc = issuer()
        .issue_lsc(
            device.as_str(),
            &key.public_key_der().unwrap(),
            &Default::default(),
            at,
        )
        .unwrap();
    IssuedRecord {
        device: device.clone(),
        certificate: CertificateRecord::from_der(&lsc.der, device).unwrap(),
        issued_at: at,
        delivered: false,
    }
}

fn install_grant() -> Grant {
    Grant {
        operation: Operation::InstallUpgrade,
        authenticated_by: capf_auth::AuthenticatedBy::NullString,
    }
}

/// Installs a fresh LSC on `device` through the session calls; returns
/// its record.
fn install(store: &dyn DeviceStore, device: &DeviceName, at: SystemTime) -> IssuedRecord {
    let (lease, _) = store.begin_blocking(device, at, HOUR).unwrap();
    let record = issued_record(device, at);
    store
        .commit_blocking(&lease, &SessionCommit::Issued(record.clone()), false)
        .unwrap();
    let done = SessionCommit::Completed {
        grant: install_grant(),
        work: CompletedWork::Installed {
            serial_hex: record.certificate.serial_hex.clone(),
        },
        at,
    };
    store.commit_blocking(&lease, &done, true).unwrap();
    record
}

fn reschedule(store: &dyn DeviceStore, device: &DeviceName, operation: Operation) {
    let edit = DeviceEdit {
        operation: Some(operation),
        ..DeviceEdit::default()
    };
    store.modify(device, &edit, t0()).unwrap();
}

/// `begin` takes the lease and loads the device; a second `begin` is
/// refused while it is held; an unknown device is unknown.
pub fn begin_leases_and_loads(store: &dyn DeviceStore) {
    let d = add(
        store,
        "SEP000000000001",
        AuthMode::NullString,
        Operation::InstallUpgrade,
    );
    let (lease, device) = store.begin_blocking(&d, t0(), HOUR).unwrap();
    assert_eq!(device.name, d);
    assert_eq!(lease.device, d);
    assert_eq!(device.operation(), Operation::InstallUpgrade);
    assert!(matches!(
        store.begin_blocking(&d, t0() + Duration::from_secs(60), HOUR),
        Err(OperationsError::DeviceBusy { .. })
    ));
    assert!(matches!(
        store.begin_blocking(&name("SEP0000000000FF"), t0(), HOUR),
        Err(OperationsError::UnknownDevice { .. })
    ));
}

/// A lease lapses at its expiry: another session takes the device, and
/// the first session's commit fails with `LeaseLost`.
pub fn an_expired_lease_can_be_taken_over(store: &dyn DeviceStore) {
    let d = add(
        store,
        "SEP000000000002",
        AuthMode::NullString,
        Operation::InstallUpgrade,
    );
    let ttl = Duration::from_secs(10);
    let (first, _) = store.begin_blocking(&d, t0(), ttl).unwrap();
    let (second, _) = store
        .begin_blocking(&d, t0() + ttl + Duration::from_secs(1), ttl)
        .unwrap();
    assert_ne!(first.token, second.token);
    let change = SessionCommit::Failed {
        reason: "stale".into(),
        key_generation_failures: None,
        operation_failed: None,
        at: t0(),
    };
    assert!(matches!(
        store.commit_blocking(&first, &change, false),
        Err(OperationsError::LeaseLost { .. })
    ));
    store.commit_blocking(&second, &change, false).unwrap();
}

/// `release` frees the device; a released (or taken-over) lease never
/// frees a newer one.
pub fn release_gives_back_only_its_own_lease(store: &dyn DeviceStore) {
    let d = add(
        store,
        "SEP000000000003",
        AuthMode::NullString,
        Operation::InstallUpgrade,
    );
    let (first, _) = store.begin_blocking(&d, t0(), HOUR).unwrap();
    store.release_blocking(&first).unwrap();
    let (second, _) = store.begin_blocking(&d, t0(), HOUR).unwrap();
    store.release_blocking(&first).unwrap();
    assert!(
        matches!(
            store.begin_blocking(&d, t0(), HOUR),
            Err(OperationsError::DeviceBusy { .. })
        ),
        "an old lease released the new one"
    );
    store.release_blocking(&second).unwrap();
    store.begin_blocking(&d, t0(), HOUR).unwrap();
}

/// A commit with `release` gives the lease back in the same transaction;
/// without it the lease stays.
pub fn the_last_commit_gives_the_lease_back(store: &dyn DeviceStore) {
    let d = add(
        store,
        "SEP000000000004",
        AuthMode::NullString,
        Operation::InstallUpgrade,
    );
    let (lease, _) = store.begin_blocking(&d, t0(), HOUR).unwrap();
    let change = SessionCommit::Failed {
        reason: "interrupted".into(),
        key_generation_failures: Some(1),
        operation_failed: None,
        at: t0(),
    };
    let device = store.commit_blocking(&lease, &change, false).unwrap();
    assert_eq!(device.key_generation_failures, 1);
    assert!(store.begin_blocking(&d, t0(), HOUR).is_err());
    store.commit_blocking(&lease, &change, true).unwrap();
    store.begin_blocking(&d, t0(), HOUR).unwrap();
}

/// An install records the certificate before delivery, marks it delivered
/// on completion, makes it the LSC on record, and marks the one it
/// replaces superseded; the audit log tells each step.
pub fn install_records_delivers_and_supersedes(store: &dyn DeviceStore) {
    let d = add(
        store,
        "SEP000000000005",
        AuthMode::NullString,
        Operation::InstallUpgrade,
    );
    let (lease, _) = store.begin_blocking(&d, t0(), HOUR).unwrap();
    let first = issued_record(&d, t0());
    store
        .commit_blocking(&lease, &SessionCommit::Issued(first.clone()), false)
        .unwrap();
    let history = store.certificate_history(&d).unwrap();
    assert_eq!(history.len(), 1);
    assert!(history[0].delivered_at.is_none() && !history[0].record.delivered);
    let done = SessionCommit::Completed {
        grant: install_grant(),
        work: CompletedWork::Installed {
            serial_hex: first.certificate.serial_hex.clone(),
        },
        at: t0(),
    };
    let device = store.commit_blocking(&lease, &done, true).unwrap();
    assert_eq!(device.lsc.as_ref().unwrap().der, first.certificate.der);
    assert_eq!(device.operation(), Operation::None);
    assert_eq!(device.status_label(), "Install/Upgrade successful");
    let history = store.certificate_history(&d).unwrap();
    assert!(history[0].record.delivered && history[0].delivered_at == Some(t0()));

    reschedule(store, &d, Operation::InstallUpgrade);
    let later = t0() + Duration::from_secs(60);
    let second = install(store, &d, later);
    let history = store.certificate_history(&d).unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].superseded_at, Some(later));
    assert!(history[1].superseded_at.is_none() && history[1].record.delivered);
    let device = store.load(&d).unwrap().unwrap();
    assert_eq!(
        device.lsc.unwrap().serial_hex,
        second.certificate.serial_hex
    );
    let events: Vec<String> = store
        .audit_log(&d)
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    for expected in ["added", "issued", "delivered", "completed", "changed"] {
        assert!(
            events.iter().any(|e| e == expected),
            "{expected} in {events:?}"
        );
    }
}

/// A completed delete takes the LSC off the record and marks it deleted.
pub fn delete_retires_the_lsc(store: &dyn DeviceStore) {
    let d = add(
        store,
        "SEP000000000006",
        AuthMode::NullString,
        Operation::InstallUpgrade,
    );
    install(store, &d, t0());
    reschedule(store, &d, Operation::Delete);
    let (lease, _) = store.begin_blocking(&d, t0(), HOUR).unwrap();
    let done = SessionCommit::Completed {
        grant: Grant {
            operation: Operation::Delete,
            authenticated_by: capf_auth::AuthenticatedBy::NullString,
        },
        work: CompletedWork::Deleted,
        at: t0(),
    };
    let device = store.commit_blocking(&lease, &done, true).unwrap();
    assert!(device.lsc.is_none());
    assert_eq!(device.lsc_status(), "Not Installed");
    let history = store.certificate_history(&d).unwrap();
    assert_eq!(history[0].deleted_at, Some(t0()));
    assert!(history[0].superseded_at.is_none());
}

/// The same certificate committed twice is recorded once; another
/// certificate with the same serial is refused.
pub fn a_serial_is_recorded_once(store: &dyn DeviceStore) {
    let d = add(
        store,
        "SEP000000000007",
        AuthMode::NullString,
        Operation::InstallUpgrade,
    );
    let e = add(
        store,
        "SEP000000000008",
        AuthMode::NullString,
        Operation::InstallUpgrade,
    );
    let (lease, _) = store.begin_blocking(&d, t0(), HOUR).unwrap();
    let record = issued_record(&d, t0());
    let issued = SessionCommit::Issued(record.clone());
    store.commit_blocking(&lease, &issued, false).unwrap();
    store.commit_blocking(&lease, &issued, false).unwrap();
    assert_eq!(store.certificate_history(&d).unwrap().len(), 1);
    let (other, _) = store.begin_blocking(&e, t0(), HOUR).unwrap();
    let mut forged = issued_record(&e, t0());
    forged.certificate.serial_hex = record.certificate.serial_hex.clone();
    assert!(matches!(
        store.commit_blocking(&other, &SessionCommit::Issued(forged), false),
        Err(OperationsError::SerialConflict { .. })
    ));
    assert!(store.certificate_history(&e).unwrap().is_empty());
}

/// A delivery committed again keeps the first delivery's time; a session
/// of another device that names this certificate delivers nothing.
pub fn a_delivery_is_recorded_once_and_only_for_its_device(store: &dyn DeviceStore) {
    let d = add(
        store,
        "SEP0000000000B0",
        AuthMode::NullString,
        Operation::InstallUpgrade,
    );
    let e = add(
        store,
        "SEP0000000000B1",
        AuthMode::NullString,
        Operation::InstallUpgrade,
    );
    let (lease, _) = store.begin_blocking(&d, t0(), HOUR).unwrap();
    let record = issued_record(&d, t0());
    store
        .commit_blocking(&lease, &SessionCommit::Issued(record.clone()), false)
        .unwrap();
    let done_at = |at| SessionCommit::Completed {
        grant: install_grant(),
        work: CompletedWork::Installed {
            serial_hex: record.certificate.serial_hex.clone(),
        },
        at,
    };
    let later = t0() + Duration::from_secs(60);
    store
        .commit_blocking(&lease, &done_at(t0()), false)
        .unwrap();
    store
        .commit_blocking(&lease, &done_at(later), true)
        .unwrap();
    let history = store.certificate_history(&d).unwrap();
    assert_eq!(history.len(), 1);
    assert!(history[0].record.delivered);
    assert_eq!(
        history[0].delivered_at,
        Some(t0()),
        "the first delivery's time"
    );

    // Another device's session names d's certificate.
    let (other, _) = store.begin_blocking(&e, later, HOUR).unwrap();
    let device = store
        .commit_blocking(&other, &done_at(later), true)
        .unwrap();
    assert!(device.lsc.is_none(), "not another device's certificate");
    assert!(store.certificate_history(&e).unwrap().is_empty());
    assert_eq!(store.certificate_history(&d).unwrap(), history);
    assert_eq!(
        store.load(&d).unwrap().unwrap().lsc.unwrap().serial_hex,
        record.certificate.serial_hex
    );
}

/// A change that fails leaves no trace: not on the device, not in the
/// history, not in the audit log; the lease is still held.
pub fn a_failed_change_leaves_nothing(store: &dyn DeviceStore) {
    let d = add(
        store,
        "SEP000000000009",
        AuthMode::NullString,
        Operation::InstallUpgrade,
    );
    let other = name("SEP00000000000A");
    let (lease, before) = store.begin_blocking(&d, t0(), HOUR).unwrap();
    let audit_before = store.audit_log(&d).unwrap();
    // A certificate of another device under this lease.
    let wrong = SessionCommit::Issued(issued_record(&other, t0()));
    assert!(matches!(
        store.commit_blocking(&lease, &wrong, true),
        Err(OperationsError::WrongDevice { .. })
    ));
    assert_eq!(store.load(&d).unwrap().unwrap(), before);
    assert_eq!(store.audit_log(&d).unwrap(), audit_before);
    assert!(store.certificate_history(&other).unwrap().is_empty());
    assert!(store.begin_blocking(&d, t0(), HOUR).is_err(), "lease kept");
}

/// A refusal committed by a session sets the last error and writes an
/// audit entry; a lockout is recorded with it.
pub fn refusals_are_recorded(store: &dyn DeviceStore) {
    let d = add(
        store,
        "SEP00000000000B",
        AuthMode::AuthString,
        Operation::InstallUpgrade,
    );
    let (lease, _) = store.begin_blocking(&d, t0(), HOUR).unwrap();
    let mut update = PolicyUpdate::operation_failed(capf_auth::FailureReason::LockedOut, t0());
    update.failed_attempts = Some(5);
    update.lock = true;
    let change = SessionCommit::Policy {
        update,
        refusal: Some(Refusal::LockedOut.to_string()),
        mic: None,
        at: t0(),
    };
    let device = store.commit_blocking(&lease, &change, true).unwrap();
    assert!(device.policy.locked);
    assert_eq!(device.status_label(), "Install/Upgrade failed");
    assert!(device.last_error.unwrap().reason.contains("locked out"));
    let events: Vec<String> = store
        .audit_log(&d)
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert!(events.contains(&"refused".to_owned()), "{events:?}");
    assert!(events.contains(&"lockout".to_owned()), "{events:?}");
}

/// Insert refuses a duplicate; find sees what was inserted; remove
/// removes (and keeps the history and the audit log).
pub fn operators_insert_find_and_remove(store: &dyn DeviceStore) {
    let d = add(
        store,
        "SEP00000000000C",
        AuthMode::NullString,
        Operation::InstallUpgrade,
    );
    assert!(matches!(
        store.insert(&Device::new(d.clone(), AuthMode::NullString), t0()),
        Err(OperationsError::DeviceExists { .. })
    ));
    install(store, &d, t0());
    let page = store.find(&crate::DeviceQuery::default()).unwrap();
    assert_eq!(page.total, 1);
    assert!(store.remove(&d, t0()).unwrap());
    assert!(!store.remove(&d, t0()).unwrap());
    assert!(store.load(&d).unwrap().is_none());
    assert_eq!(store.certificate_history(&d).unwrap().len(), 1);
    assert!(
        store
            .audit_log(&d)
            .unwrap()
            .iter()
            .any(|e| e.event == "removed")
    );
    assert!(matches!(
        store.modify(&d, &DeviceEdit::default(), t0()),
        Err(OperationsError::UnknownDevice { .. })
    ));
}

/// An edit changes only its fields, on the row as it is now.
pub fn edits_apply_to_the_current_row(store: &dyn DeviceStore) {
    let d = add(
        store,
        "SEP00000000000D",
        AuthMode::AuthString,
        Operation::InstallUpgrade,
    );
    let string: AuthString = "123456".parse().unwrap();
    let arm = DeviceEdit {
        auth_string: Some(string.clone()),
        ..DeviceEdit::default()
    };
    store.modify(&d, &arm, t0()).unwrap();
    // A session counts a wrong string.
    let (lease, _) = store.begin_blocking(&d, t0(), HOUR).unwrap();
    let mut update = PolicyUpdate::NONE;
    update.failed_attempts = Some(1);
    let change = SessionCommit::Policy {
        update,
        refusal: Some("wrong authentication string (1 in a row)".into()),
        mic: None,
        at: t0(),
    };
    store.commit_blocking(&lease, &change, true).unwrap();
    let edit = DeviceEdit {
        description: Some("Lobby".into()),
        ..DeviceEdit::default()
    };
    let edited = store.modify(&d, &edit, t0()).unwrap();
    assert_eq!(edited.changes, ["description"]);
    let device = store.load(&d).unwrap().unwrap();
    assert_eq!(device.description, "Lobby");
    assert_eq!(
        device.policy.failed_attempts, 1,
        "the count survived the edit"
    );
    assert_eq!(device.policy.auth_string, Some(string));
    assert!(device.last_error.is_some());
}

/// While a session holds the device, an edit of what it depends on is
/// refused ("busy"), a passive edit goes through; after the session both
/// do. Removing waits too.
pub fn edits_that_a_session_depends_on_wait_for_it(store: &dyn DeviceStore) {
    let d = add(
        store,
        "SEP00000000000E",
        AuthMode::AuthString,
        Operation::InstallUpgrade,
    );
    let (lease, _) = store.begin_blocking(&d, t0(), HOUR).unwrap();
    let session_edits = [
        DeviceEdit {
            operation: Some(Operation::None),
            ..DeviceEdit::default()
        },
        DeviceEdit {
            auth_mode: Some(AuthMode::NullString),
            ..DeviceEdit::default()
        },
        DeviceEdit {
            auth_string: Some("4711".parse().unwrap()),
            ..DeviceEdit::default()
        },
        DeviceEdit {
            key: Some(None),
            ..DeviceEdit::default()
        },
        DeviceEdit {
            completes_by: Some(Some(t0() + HOUR)),
            ..DeviceEdit::default()
        },
        DeviceEdit {
            clear_lockout: true,
            ..DeviceEdit::default()
        },
    ];
    let before = store.load(&d).unwrap().unwrap();
    for edit in &session_edits {
        let refused = store.modify(&d, edit, t0());
        assert!(
            matches!(&refused, Err(OperationsError::DeviceBusy { .. })),
            "{edit:?}: {refused:?}"
        );
        assert!(refused.is_err_and(|e| e.to_string().contains("try again")));
    }
    assert!(matches!(
        store.remove(&d, t0()),
        Err(OperationsError::DeviceBusy { .. })
    ));
    assert_eq!(store.load(&d).unwrap().unwrap(), before);
    let passive = DeviceEdit {
        description: Some("Desk 12".into()),
        security_mode: Some(capf_auth::SecurityMode::Encrypted),
        ..DeviceEdit::default()
    };
    store.modify(&d, &passive, t0()).unwrap();
    store.release_blocking(&lease).unwrap();
    for edit in &session_edits {
        store.modify(&d, edit, t0()).unwrap();
    }
    let device = store.load(&d).unwrap().unwrap();
    assert_eq!(device.description, "Desk 12");
    assert_eq!(device.operation(), Operation::None);
    assert_eq!(device.policy.auth_mode, AuthMode::NullString);
}

/// An edit of what sessions depend on drops an expired lease, so the
/// session that held it can no longer commit over the edit.
pub fn an_edit_drops_an_expired_lease(store: &dyn DeviceStore) {
    let d = add(
        store,
        "SEP00000000000F",
        AuthMode::AuthString,
        Operation::InstallUpgrade,
    );
    let ttl = Duration::from_secs(10);
    let (lease, _) = store.begin_blocking(&d, t0(), ttl).unwrap();
    let edit = DeviceEdit {
        auth_string: Some("4711".parse().unwrap()),
        ..DeviceEdit::default()
    };
    store.modify(&d, &edit, t0() + ttl * 2).unwrap();
    let change = SessionCommit::Completed {
        grant: Grant {
            operation: Operation::InstallUpgrade,
            authenticated_by: capf_auth::AuthenticatedBy::AuthString,
        },
        work: CompletedWork::Deleted,
        at: t0() + ttl * 2,
    };
    assert!(matches!(
        store.commit_blocking(&lease, &change, true),
        Err(OperationsError::LeaseLost { .. })
    ));
    let device = store.load(&d).unwrap().unwrap();
    assert!(
        device.policy.auth_string.is_some(),
        "the new string stays armed"
    );
}

/// Revoking marks the LSC on record revoked, on the device and in the
/// history; a device with no LSC has nothing to revoke.
pub fn revoking_the_lsc(store: &dyn DeviceStore) {
    let d = add(
        store,
        "SEP000000000010",
        AuthMode::NullString,
        Operation::InstallUpgrade,
    );
    let revoke = DeviceEdit {
        revoke_lsc: Some("phone stolen".into()),
        ..DeviceEdit::default()
    };
    assert!(matches!(
        store.modify(&d, &revoke, t0()),
        Err(OperationsError::InvalidEdit { .. })
    ));
    let record = install(store, &d, t0());
    let edited = store.modify(&d, &revoke, t0()).unwrap();
    let revocation = edited.device.lsc_revoked.unwrap();
    assert_eq!(revocation.reason, "phone stolen");
    assert_eq!(
        edited.device.lsc.unwrap().serial_hex,
        record.certificate.serial_hex
    );
    let history = store.certificate_history(&d).unwrap();
    assert_eq!(history[0].revoked_at, Some(t0()));
    assert!(store.modify(&d, &revoke, t0()).is_err(), "revoked twice");
    // A new install clears the revocation.
    reschedule(store, &d, Operation::InstallUpgrade);
    install(store, &d, t0());
    assert!(store.load(&d).unwrap().unwrap().lsc_revoked.is_none());
}

/// A certificate issued outside a session is kept in the history, never
/// delivered and never the LSC on record; its serial is taken.
pub fn offline_issuance_is_history_not_the_record(store: &dyn DeviceStore) {
    let d = add(
        store,
        "SEP000000000011",
        AuthMode::NullString,
        Operation::None,
    );
    let record = issued_record(&d, t0());
    store.record_issued(&record, t0()).unwrap();
    let history = store.certificate_history(&d).unwrap();
    assert_eq!(history.len(), 1);
    assert!(!history[0].record.delivered && history[0].delivered_at.is_none());
    assert!(store.load(&d).unwrap().unwrap().lsc.is_none());
    assert!(matches!(
        store.record_issued(&record, t0()),
        Err(OperationsError::SerialConflict { .. })
    ));
    assert!(
        store
            .audit_log(&d)
            .unwrap()
            .iter()
            .any(|e| e.event == "issued-offline")
    );
}

/// The whole audit log, searched: by device, event, actor and time, at
/// most `limit` entries, newest first (entries of one instant: the latest
/// recorded first); entries about no device are found, never under a
/// device; a device's own log is unchanged (oldest first).
pub fn the_audit_log_is_searched(store: &dyn DeviceStore) {
    let d = add(
        store,
        "SEP000000000301",
        AuthMode::NullString,
        Operation::None,
    );
    let e = add(
        store,
        "SEP000000000302",
        AuthMode::NullString,
        Operation::None,
    );
    let at = |s: u64| t0() + Duration::from_secs(s);
    let alice = AccountName::parse("alice").unwrap();
    let recorded = [
        AuditEntry::new(at(10), &d, "refused", "wrong string").by("token:t1"),
        AuditEntry::new(at(20), &e, "refused", "locked out"),
        AuditEntry::new(at(20), &d, "changed", "description").by("alice"),
        AuditEntry::account_role_set(at(30), &alice, Role::Helpdesk).by("bob"),
        AuditEntry::new(at(40), &e, "changed", "operation").by("alice"),
    ];
    for entry in &recorded {
        store.record_event(entry).unwrap();
    }
    let search = |query: AuditQuery| store.audit(&query).unwrap();
    let events = |found: &[AuditEntry]| -> Vec<(u64, String)> {
        found
            .iter()
            .map(|x| {
                let secs = x.at.duration_since(t0()).unwrap().as_secs();
                (secs, x.event.clone())
            })
            .collect()
    };
    // Everything, newest first: the two `added` entries of `add` (at t0)
    // last, the later of them first.
    let all = search(AuditQuery::default());
    assert_eq!(all.len(), 7);
    assert_eq!(all[0], recorded[4]);
    assert_eq!(all[1], recorded[3]);
    assert_eq!(
        all[2], recorded[2],
        "same instant: the latest recorded first"
    );
    assert_eq!(all[3], recorded[1]);
    assert_eq!(all[4], recorded[0]);
    assert_eq!(
        (all[5].device.as_ref(), all[6].device.as_ref()),
        (Some(&e), Some(&d))
    );
    assert!(
        all[5..]
            .iter()
            .all(|x| x.event == "added" && x.actor.is_none())
    );
    // One device: only its entries (never those about no device).
    let of_d = search(AuditQuery {
        device: Some(d.clone()),
        ..AuditQuery::default()
    });
    assert_eq!(
        events(&of_d),
        [
            (20, "changed".to_owned()),
            (10, "refused".to_owned()),
            (0, "added".to_owned())
        ]
    );
    // An event.
    let refused = search(AuditQuery {
        event: Some("refused".into()),
        ..AuditQuery::default()
    });
    assert_eq!(refused, [recorded[1].clone(), recorded[0].clone()]);
    // An actor: the CAPF's own entries have none and never match.
    let by_alice = search(AuditQuery {
        actor: Some("alice".into()),
        ..AuditQuery::default()
    });
    assert_eq!(by_alice, [recorded[4].clone(), recorded[2].clone()]);
    assert!(
        search(AuditQuery {
            actor: Some("nobody".into()),
            ..AuditQuery::default()
        })
        .is_empty()
    );
    // Time: since is inclusive, until exclusive.
    let window = search(AuditQuery {
        since: Some(at(20)),
        until: Some(at(40)),
        ..AuditQuery::default()
    });
    assert_eq!(
        window,
        [
            recorded[3].clone(),
            recorded[2].clone(),
            recorded[1].clone()
        ]
    );
    assert!(
        search(AuditQuery {
            since: Some(at(41)),
            ..AuditQuery::default()
        })
        .is_empty()
    );
    assert_eq!(
        search(AuditQuery {
            until: Some(at(10)),
            ..AuditQuery::default()
        })
        .len(),
        2,
        "the two added entries"
    );
    // Criteria together.
    let together = search(AuditQuery {
        device: Some(e.clone()),
        event: Some("changed".into()),
        actor: Some("alice".into()),
        since: Some(at(40)),
        until: Some(at(41)),
        limit: 5,
    });
    assert_eq!(together, [recorded[4].clone()]);
    // The limit keeps the newest.
    let newest = search(AuditQuery {
        limit: 2,
        ..AuditQuery::default()
    });
    assert_eq!(newest, [recorded[4].clone(), recorded[3].clone()]);
    assert!(
        search(AuditQuery {
            limit: 0,
            ..AuditQuery::default()
        })
        .is_empty()
    );
    assert!(matches!(
        store.audit(&AuditQuery {
            since: Some(at(2)),
            until: Some(at(1)),
            ..AuditQuery::default()
        }),
        Err(OperationsError::InvalidQuery { .. })
    ));
    assert_eq!(AuditQuery::default().limit, 1000);
    // A device's own log: oldest first, as before.
    let log = store.audit_log(&d).unwrap();
    assert_eq!(
        log.iter().map(|x| x.event.as_str()).collect::<Vec<_>>(),
        ["added", "refused", "changed"]
    );
    assert_eq!(log[1], recorded[0]);
}

/// Who did it comes back as recorded, for an entry about a device and one
/// about no device; entries made by the store itself have no actor.
pub fn actors_round_trip(store: &dyn DeviceStore) {
    let d = add(
        store,
        "SEP000000000311",
        AuthMode::NullString,
        Operation::None,
    );
    let at = t0() + Duration::from_nanos(1_234_567_891);
    let by_operator =
        AuditEntry::new(at, &d, "changed", "operation install").by("alice.smith@example");
    let by_token = AuditEntry::new(at, &d, "changed", "description").by("token:nightly-1");
    let token = ApiToken {
        id: "nightly-1".into(),
        label: "nightly \"report\"\n".into(),
        role: Role::ReadOnly,
        secret_sha256: "0f".repeat(32),
        created_at: at,
        created_by: None,
    };
    let no_device = AuditEntry::token_created(at, &token).by("alice.smith@example");
    assert!(no_device.device.is_none() && !no_device.detail.contains('\n'));
    assert!(!no_device.detail.contains(&token.secret_sha256));
    for entry in [&by_operator, &by_token, &no_device] {
        store.record_event(entry).unwrap();
    }
    let log = store.audit_log(&d).unwrap();
    assert_eq!(log[0].actor, None, "the store's own entry");
    assert_eq!(log[1..], [by_operator, by_token.clone()]);
    let found = store
        .audit(&AuditQuery {
            event: Some("token-created".into()),
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(found, [no_device]);
    let found = store
        .audit(&AuditQuery {
            actor: Some("token:nightly-1".into()),
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(found, [by_token]);
}

fn account(text: &str, role: Role) -> Account {
    Account {
        name: AccountName::parse(text).unwrap(),
        role,
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA${text}"),
        created_at: t0(),
        password_changed_at: t0(),
    }
}

/// Accounts: added once (a taken name is refused), found, listed by name,
/// their password hash and role changed, removed; a password in clear is
/// refused as a hash.
pub fn accounts_add_change_and_remove(store: &dyn AccountStore) {
    assert!(store.accounts().unwrap().is_empty());
    let carol = account("carol", Role::ReadOnly);
    let alice = account("alice", Role::Admin);
    let bob = account("bob", Role::Helpdesk);
    for a in [&carol, &alice, &bob] {
        store.add_account(a).unwrap();
    }
    let mut again = alice.clone();
    again.role = Role::ReadOnly;
    assert!(matches!(
        store.add_account(&again),
        Err(OperationsError::AccountExists {
            what: "account",
            ..
        })
    ));
    assert_eq!(store.account(&alice.name).unwrap(), Some(alice.clone()));
    assert_eq!(
        store.accounts().unwrap(),
        [alice.clone(), bob.clone(), carol.clone()]
    );
    let nobody = AccountName::parse("nobody").unwrap();
    assert_eq!(store.account(&nobody).unwrap(), None);

    let later = t0() + Duration::from_secs(3600);
    assert!(
        store
            .set_password(&bob.name, "$argon2id$new", later)
            .unwrap()
    );
    let changed = store.account(&bob.name).unwrap().unwrap();
    assert_eq!(changed.password_hash, "$argon2id$new");
    assert_eq!(changed.password_changed_at, later);
    assert_eq!(changed.created_at, bob.created_at);
    assert!(!store.set_password(&nobody, "$argon2id$x", later).unwrap());
    for clear in ["hunter2", "", "$", "$argon2id$ with space"] {
        assert!(
            matches!(
                store.set_password(&bob.name, clear, later),
                Err(OperationsError::InvalidAccount { .. })
            ),
            "{clear:?} taken as a hash"
        );
    }
    let mut clear = account("dave", Role::ReadOnly);
    clear.password_hash = "hunter2".into();
    assert!(matches!(
        store.add_account(&clear),
        Err(OperationsError::InvalidAccount { .. })
    ));
    assert_eq!(store.account(&clear.name).unwrap(), None);
    assert_eq!(
        store.account(&bob.name).unwrap().unwrap().password_hash,
        "$argon2id$new"
    );

    assert!(store.set_role(&carol.name, Role::Helpdesk).unwrap());
    assert_eq!(
        store.account(&carol.name).unwrap().unwrap().role,
        Role::Helpdesk
    );
    assert!(!store.set_role(&nobody, Role::Admin).unwrap());

    assert!(store.remove_account(&carol.name).unwrap());
    assert!(!store.remove_account(&carol.name).unwrap());
    assert_eq!(store.account(&carol.name).unwrap(), None);
    assert_eq!(store.accounts().unwrap().len(), 2);
}

/// The last admin can be neither removed nor demoted; with another admin
/// it can; accounts of other roles come and go freely.
pub fn the_last_admin_stays(store: &dyn AccountStore) {
    // No admin yet: nothing to keep.
    let helper = account("helper", Role::Helpdesk);
    store.add_account(&helper).unwrap();
    assert!(store.set_role(&helper.name, Role::ReadOnly).unwrap());
    assert!(store.remove_account(&helper.name).unwrap());

    let alice = account("alice", Role::Admin);
    let bob = account("bob", Role::Helpdesk);
    store.add_account(&alice).unwrap();
    store.add_account(&bob).unwrap();
    assert!(matches!(
        store.remove_account(&alice.name),
        Err(OperationsError::LastAdmin { .. })
    ));
    for role in [Role::Helpdesk, Role::ReadOnly] {
        assert!(matches!(
            store.set_role(&alice.name, role),
            Err(OperationsError::LastAdmin { .. })
        ));
    }
    assert_eq!(
        store.account(&alice.name).unwrap().unwrap().role,
        Role::Admin
    );
    // Admin to admin changes nothing and is allowed.
    assert!(store.set_role(&alice.name, Role::Admin).unwrap());
    // Others go freely.
    assert!(store.remove_account(&bob.name).unwrap());
    // A second admin: now either may go, not both.
    let carol = account("carol", Role::Admin);
    store.add_account(&carol).unwrap();
    assert!(store.set_role(&alice.name, Role::Helpdesk).unwrap());
    assert!(matches!(
        store.remove_account(&carol.name),
        Err(OperationsError::LastAdmin { .. })
    ));
    assert!(matches!(
        store.set_role(&carol.name, Role::ReadOnly),
        Err(OperationsError::LastAdmin { .. })
    ));
    assert!(store.set_role(&alice.name, Role::Admin).unwrap());
    assert!(store.remove_account(&carol.name).unwrap());
    let admins: Vec<Account> = store
        .accounts()
        .unwrap()
        .into_iter()
        .filter(|a| a.role == Role::Admin)
        .collect();
    assert_eq!(admins.len(), 1);
    assert_eq!(admins[0].name, alice.name);
}

fn api_token(id: &str, role: Role, created: SystemTime) -> ApiToken {
    ApiToken {
        id: id.into(),
        label: format!("label of {id}"),
        role,
        secret_sha256: format!("{:0>64}", hex_of(id)),
        created_at: created,
        created_by: Some(AccountName::parse("alice").unwrap()),
    }
}

fn hex_of(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Tokens: added once (a taken id is refused), found by id, listed oldest
/// first, removed; a secret in clear, or an id with spaces, is refused.
pub fn tokens_add_find_and_remove(store: &dyn AccountStore) {
    assert!(store.tokens().unwrap().is_empty());
    let later = api_token("t-later", Role::Admin, t0() + Duration::from_secs(60));
    let earlier = api_token("t-earlier", Role::ReadOnly, t0());
    let mut anonymous = api_token("t-anon", Role::Helpdesk, t0());
    anonymous.created_by = None;
    for t in [&later, &earlier, &anonymous] {
        store.add_token(t).unwrap();
    }
    let mut same_id = earlier.clone();
    same_id.role = Role::Admin;
    assert!(matches!(
        store.add_token(&same_id),
        Err(OperationsError::AccountExists { what: "token", .. })
    ));
    assert_eq!(store.token("t-earlier").unwrap(), Some(earlier.clone()));
    assert_eq!(store.token("t-anon").unwrap(), Some(anonymous.clone()));
    assert_eq!(store.token("nope").unwrap(), None);
    // Oldest first; the same instant by id.
    assert_eq!(
        store.tokens().unwrap(),
        [anonymous.clone(), earlier.clone(), later.clone()]
    );
    let mut clear = api_token("t-clear", Role::Admin, t0());
    clear.secret_sha256 = "my-secret".into();
    let mut upper = api_token("t-upper", Role::Admin, t0());
    upper.secret_sha256 = upper.secret_sha256.to_uppercase().replace('0', "A");
    let bad_id = api_token("t bad", Role::Admin, t0());
    let empty_id = api_token("", Role::Admin, t0());
    for t in [&clear, &upper, &bad_id, &empty_id] {
        assert!(
            matches!(
                store.add_token(t),
                Err(OperationsError::InvalidAccount { .. })
            ),
            "{t:?} accepted"
        );
    }
    assert_eq!(store.tokens().unwrap().len(), 3);
    assert!(store.remove_token("t-earlier").unwrap());
    assert!(!store.remove_token("t-earlier").unwrap());
    assert_eq!(store.token("t-earlier").unwrap(), None);
    assert_eq!(store.tokens().unwrap(), [anonymous, later]);
}

/// The race: two threads loop operator edits on the devices while phones
/// enroll with their strings, retry with used strings, and guess wrong. No
/// used string is ever accepted again, the lockout comes after exactly the
/// configured number of wrong strings, and no install issues two LSCs.
pub fn operator_edits_never_undo_sessions(store: &(dyn DeviceStore + 'static)) {
    const ENROLLING: usize = 6;
    const GUESSING: usize = 3;
    const LIMIT: u32 = 3;
    let params = ServiceParameters {
        auth_failure_limit: LIMIT,
        ..ServiceParameters::default()
    };
    let issuer = issuer();
    let config = Arc::new(ServerConfig::new(params, TrustStore::for_issuer(&issuer)));
    let enrolling: Vec<(DeviceName, String)> = (0..ENROLLING)
        .map(|i| {
            let d = add(
                store,
                &format!("SEP0000000001{i:02X}"),
                AuthMode::AuthString,
                Operation::InstallUpgrade,
            );
            let digits = format!("1234{i:02}");
            arm(store, &d, &digits);
            (d, digits)
        })
        .collect();
    let guessing: Vec<DeviceName> = (0..GUESSING)
        .map(|i| {
            let d = add(
                store,
                &format!("SEP0000000002{i:02X}"),
                AuthMode::AuthString,
                Operation::InstallUpgrade,
            );
            arm(store, &d, "98765432");
            d
        })
        .collect();
    let all: Vec<DeviceName> = enrolling
        .iter()
        .map(|(d, _)| d.clone())
        .chain(guessing.iter().cloned())
        .collect();
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for editor in 0..2 {
            let (all, stop) = (&all, &stop);
            scope.spawn(move || {
                let mut round = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for d in all {
                        round += 1;
                        let edit = DeviceEdit {
                            description: Some(format!("editor {editor} round {round}")),
                            security_mode: Some(capf_auth::SecurityMode::NonSecure),
                            ..DeviceEdit::default()
                        };
                        store.modify(d, &edit, t0()).unwrap();
                    }
                }
            });
        }
        let phones: Vec<_> = enrolling
            .iter()
            .map(|(d, digits)| {
                let (config, issuer) = (config.clone(), &issuer);
                scope.spawn(move || {
                    let first = enroll(store, issuer, &config, d, digits);
                    assert!(first.is_success(), "{d}: {first:?}");
                    // The operator schedules another install without a new
                    // string: the used one must not work again.
                    reschedule(store, d, Operation::InstallUpgrade);
                    for _ in 0..3 {
                        let again = enroll(store, issuer, &config, d, digits);
                        assert_eq!(
                            again.kind,
                            OutcomeKind::Refused(Refusal::NoAuthStringArmed),
                            "{d}: a used string was accepted again"
                        );
                    }
                })
            })
            .chain(guessing.iter().map(|d| {
                let (config, issuer) = (config.clone(), &issuer);
                scope.spawn(move || {
                    for attempt in 1..=LIMIT + 3 {
                        let guess = enroll(store, issuer, &config, d, "11111111");
                        let expected = if attempt < LIMIT {
                            Refusal::WrongAuthString {
                                failed_attempts: attempt,
                                locked: false,
                            }
                        } else if attempt == LIMIT {
                            Refusal::WrongAuthString {
                                failed_attempts: attempt,
                                locked: true,
                            }
                        } else {
                            Refusal::LockedOut
                        };
                        assert_eq!(
                            guess.kind,
                            OutcomeKind::Refused(expected),
                            "{d}, guess {attempt}"
                        );
                    }
                    // Locked: even the right string fails now.
                    let right = enroll(store, issuer, &config, d, "98765432");
                    assert_eq!(right.kind, OutcomeKind::Refused(Refusal::LockedOut), "{d}");
                })
            }))
            .collect();
        for phone in phones {
            if let Err(panic) = phone.join() {
                stop.store(true, Ordering::Relaxed);
                std::panic::resume_unwind(panic);
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    for (d, _) in &enrolling {
        let history = store.certificate_history(d).unwrap();
        assert_eq!(history.len(), 1, "{d}: one LSC for one install");
        assert!(history[0].record.delivered);
        let device = store.load(d).unwrap().unwrap();
        assert!(
            device.policy.auth_string.is_none(),
            "{d}: the string stays used"
        );
    }
    for d in &guessing {
        let device = store.load(d).unwrap().unwrap();
        assert!(device.policy.locked, "{d}");
        assert_eq!(device.policy.failed_attempts, LIMIT, "{d}");
        assert!(store.certificate_history(d).unwrap().is_empty(), "{d}");
    }
}

fn arm(store: &dyn DeviceStore, device: &DeviceName, digits: &str) {
    let edit = DeviceEdit {
        auth_string: Some(digits.parse().unwrap()),
        ..DeviceEdit::default()
    };
    store.modify(device, &edit, t0()).unwrap();
}

/// One phone session against the store, server and phone paired in
/// memory; a busy device is retried until it is free.
fn enroll(
    store: &dyn DeviceStore,
    issuer: &Issuer,
    config: &Arc<ServerConfig>,
    device: &DeviceName,
    digits: &str,
) -> SessionOutcome {
    loop {
        let outcome = enroll_once(store, issuer, config, device, digits);
        if outcome.kind != OutcomeKind::DeviceBusy {
            return outcome;
        }
        std::thread::yield_now();
    }
}

fn enroll_once(
    store: &dyn DeviceStore,
    issuer: &Issuer,
    config: &Arc<ServerConfig>,
    device: &DeviceName,
    digits: &str,
) -> SessionOutcome {
    let now = t0();
    let id = crate::new_session_id();
    let mut server = ServerSession::new(id, config.clone(), now);
    let mut driver = SessionDriver::new(store, issuer, HOUR);
    let credentials = Credentials::AuthString(digits.parse().unwrap());
    let mut phone = PhoneSession::new(PhoneConfig::new(device.as_str(), credentials), now);
    let mut key = None;
    for _ in 0..64 {
        if let Some(outcome) = driver.service(&mut server, now) {
            while let Some(t) = server.poll_transmit() {
                phone.handle_message(now, t.session_id, t.message);
            }
            return outcome;
        }
        while let Some(t) = server.poll_transmit() {
            phone.handle_message(now, t.session_id, t.message);
        }
        while let Some(event) = phone.poll_event() {
            match event {
                PhoneEvent::GenerateKey(spec) => {
                    let k = PrivateKey::generate(spec).unwrap();
                    phone.key_generated(now, Ok(k.public_key_der().unwrap()));
                    key = Some(k);
                }
                PhoneEvent::StoreCertificate { .. } => {
                    phone.certificate_stored(now, key.is_some());
                }
                PhoneEvent::DeleteCertificate => phone.certificate_deleted(now, false),
                PhoneEvent::Finished => {}
            }
        }
        while let Some(t) = phone.poll_transmit() {
            server.handle_message(now, t.session_id, t.message);
        }
    }
    panic!("{device}: the session did not finish");
}

/// A check of two stores on one database (two nodes, or two processes on
/// one SQLite file): its name and the check, given both.
pub type SharedCheck = (
    &'static str,
    fn(&(dyn ConformanceStore + 'static), &(dyn ConformanceStore + 'static)),
);

/// The checks for backends that several processes share: run each on two
/// stores opened on the same fresh, empty database.
pub fn shared_checks() -> Vec<SharedCheck> {
    vec![
        ("nodes_exclude_each_other", |a, b| {
            nodes_exclude_each_other(a, b)
        }),
        ("nodes_race_for_one_lease", |a, b| {
            nodes_race_for_one_lease(a, b)
        }),
        ("serials_are_unique_across_nodes", |a, b| {
            serials_are_unique_across_nodes(a, b)
        }),
        ("edits_on_one_node_wait_for_sessions_on_another", |a, b| {
            edits_on_one_node_wait_for_sessions_on_another(a, b)
        }),
        ("accounts_are_shared_across_nodes", |a, b| {
            accounts_are_shared_across_nodes(a, b)
        }),
        ("nodes_racing_never_remove_the_last_admin", |a, b| {
            nodes_racing_never_remove_the_last_admin(a, b)
        }),
    ]
}

/// A device leased on one node is busy on the other until released or
/// lapsed; a lease taken over on the other node can no longer commit.
pub fn nodes_exclude_each_other(a: &dyn DeviceStore, b: &dyn DeviceStore) {
    let d = add(
        a,
        "SEP0000000000A1",
        AuthMode::NullString,
        Operation::InstallUpgrade,
    );
    let ttl = Duration::from_secs(10);
    let (first, _) = a.begin_blocking(&d, t0(), ttl).unwrap();
    assert!(matches!(
        b.begin_blocking(&d, t0() + Duration::from_secs(1), ttl),
        Err(OperationsError::DeviceBusy { .. })
    ));
    a.release_blocking(&first).unwrap();
    let (second, _) = b
        .begin_blocking(&d, t0() + Duration::from_secs(2), ttl)
        .unwrap();
    // The node that holds it dies: the lease lapses, the other takes over.
    let (third, _) = a
        .begin_blocking(&d, t0() + Duration::from_secs(13), ttl)
        .unwrap();
    let change = SessionCommit::Failed {
        reason: "stale".into(),
        key_generation_failures: None,
        operation_failed: None,
        at: t0() + Duration::from_secs(14),
    };
    assert!(matches!(
        b.commit_blocking(&second, &change, false),
        Err(OperationsError::LeaseLost { .. })
    ));
    a.commit_blocking(&third, &change, true).unwrap();
}

/// Many sessions on both nodes begin one device at once: exactly one gets
/// it.
pub fn nodes_race_for_one_lease(a: &(dyn DeviceStore + 'static), b: &(dyn DeviceStore + 'static)) {
    let d = add(
        a,
        "SEP0000000000A2",
        AuthMode::NullString,
        Operation::InstallUpgrade,
    );
    let barrier = std::sync::Barrier::new(16);
    let won = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for i in 0..16 {
            let store: &dyn DeviceStore = if i % 2 == 0 { a } else { b };
            let (barrier, won, d) = (&barrier, &won, &d);
            scope.spawn(move || {
                barrier.wait();
                match store.begin_blocking(d, t0(), HOUR) {
                    Ok(_) => {
                        won.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(OperationsError::DeviceBusy { .. }) => {}
                    Err(e) => panic!("begin failed: {e}"),
                }
            });
        }
    });
    assert_eq!(won.load(Ordering::SeqCst), 1);
}

/// A serial recorded on one node cannot be recorded for another device on
/// the other.
pub fn serials_are_unique_across_nodes(a: &dyn DeviceStore, b: &dyn DeviceStore) {
    let d = add(
        a,
        "SEP0000000000A3",
        AuthMode::NullString,
        Operation::InstallUpgrade,
    );
    let e = add(
        b,
        "SEP0000000000A4",
        AuthMode::NullString,
        Operation::InstallUpgrade,
    );
    let (lease, _) = a.begin_blocking(&d, t0(), HOUR).unwrap();
    let record = issued_record(&d, t0());
    a.commit_blocking(&lease, &SessionCommit::Issued(record.clone()), false)
        .unwrap();
    let (other, _) = b.begin_blocking(&e, t0(), HOUR).unwrap();
    let mut forged = issued_record(&e, t0());
    forged.certificate.serial_hex = record.certificate.serial_hex.clone();
    assert!(matches!(
        b.commit_blocking(&other, &SessionCommit::Issued(forged), false),
        Err(OperationsError::SerialConflict { .. })
    ));
    assert!(b.certificate_history(&e).unwrap().is_empty());
    assert_eq!(b.certificate_history(&d).unwrap().len(), 1);
}

/// An operator's edit made on one node to what a session on the other
/// node depends on waits for that session (the device is busy).
pub fn edits_on_one_node_wait_for_sessions_on_another(a: &dyn DeviceStore, b: &dyn DeviceStore) {
    let d = add(
        a,
        "SEP0000000000A5",
        AuthMode::AuthString,
        Operation::InstallUpgrade,
    );
    let (lease, _) = a.begin_blocking(&d, t0(), HOUR).unwrap();
    let edit = DeviceEdit {
        auth_string: Some("4711".parse().unwrap()),
        ..Default::default()
    };
    assert!(matches!(
        b.modify(&d, &edit, t0()),
        Err(OperationsError::DeviceBusy { .. })
    ));
    a.release_blocking(&lease).unwrap();
    b.modify(&d, &edit, t0()).unwrap();
    assert_eq!(
        a.load(&d).unwrap().unwrap().policy.auth_string,
        Some("4711".parse().unwrap())
    );
}

/// Accounts and tokens added on one node are seen, and taken, on the
/// other; the last-admin rule counts the admins of both; audit entries
/// recorded on one are found on the other.
pub fn accounts_are_shared_across_nodes(a: &dyn ConformanceStore, b: &dyn ConformanceStore) {
    let alice = account("alice", Role::Admin);
    a.add_account(&alice).unwrap();
    assert_eq!(b.account(&alice.name).unwrap(), Some(alice.clone()));
    assert!(matches!(
        b.add_account(&alice),
        Err(OperationsError::AccountExists { .. })
    ));
    let bob = account("bob", Role::Admin);
    b.add_account(&bob).unwrap();
    assert_eq!(a.accounts().unwrap(), [alice.clone(), bob.clone()]);
    assert!(a.remove_account(&bob.name).unwrap());
    assert!(matches!(
        b.remove_account(&alice.name),
        Err(OperationsError::LastAdmin { .. })
    ));
    let later = t0() + Duration::from_secs(5);
    assert!(
        b.set_password(&alice.name, "$argon2id$changed", later)
            .unwrap()
    );
    assert_eq!(
        a.account(&alice.name).unwrap().unwrap().password_hash,
        "$argon2id$changed"
    );
    let token = api_token("shared-1", Role::ReadOnly, t0());
    a.add_token(&token).unwrap();
    assert_eq!(b.token("shared-1").unwrap(), Some(token.clone()));
    assert!(matches!(
        b.add_token(&token),
        Err(OperationsError::AccountExists { .. })
    ));
    assert!(b.remove_token("shared-1").unwrap());
    assert_eq!(a.token("shared-1").unwrap(), None);
    let entry = AuditEntry::account_removed(later, &bob.name).by("alice");
    a.record_event(&entry).unwrap();
    let found = b
        .audit(&AuditQuery {
            actor: Some("alice".into()),
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(found, [entry]);
}

/// Two admins, each removed (or demoted) on another node at the same
/// moment, round after round: one change wins, the other is refused as
/// the last admin; an admin always stays.
pub fn nodes_racing_never_remove_the_last_admin(
    a: &(dyn ConformanceStore + 'static),
    b: &(dyn ConformanceStore + 'static),
) {
    for round in 0..8 {
        let first = account(&format!("first-{round}"), Role::Admin);
        let second = account(&format!("second-{round}"), Role::Admin);
        a.add_account(&first).unwrap();
        b.add_account(&second).unwrap();
        // The admins of the round before are gone: these two are the only
        // ones.
        for old in a.accounts().unwrap() {
            if old.name != first.name && old.name != second.name {
                assert!(a.remove_account(&old.name).unwrap());
            }
        }
        let barrier = std::sync::Barrier::new(2);
        let demote = round % 2 == 1;
        let results: Vec<Result<bool, OperationsError>> = std::thread::scope(|scope| {
            let jobs = [(a, &first.name), (b, &second.name)].map(|(store, name)| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    if demote {
                        store.set_role(name, Role::ReadOnly)
                    } else {
                        store.remove_account(name)
                    }
                })
            });
            jobs.map(|j| j.join().unwrap()).into_iter().collect()
        });
        let won = results.iter().filter(|r| matches!(r, Ok(true))).count();
        let refused = results
            .iter()
            .filter(|r| matches!(r, Err(OperationsError::LastAdmin { .. })))
            .count();
        assert_eq!((won, refused), (1, 1), "round {round}: {results:?}");
        let admins = b
            .accounts()
            .unwrap()
            .into_iter()
            .filter(|x| x.role == Role::Admin)
            .count();
        assert_eq!(admins, 1, "round {round}");
    }
}
