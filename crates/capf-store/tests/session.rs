//! Whole sessions against a SqliteStore file, driven by capf-operations'
//! SessionDriver with the phone's half of the golden transcripts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use capf_operations::capf_auth::{AuthMode, FailureReason, Operation, OperationStatus};
use capf_operations::capf_ca::KeySpec;
use capf_operations::{DeviceEdit, OperatorStore, ServiceParameters};
use capf_store::SqliteStore;
use common::*;

#[test]
fn install_by_auth_string_consumes_the_string_and_delivers_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("capf.db");
    let store = SqliteStore::open(&path).unwrap();
    let mut d = device(
        "SEP001122334455",
        AuthMode::AuthString,
        Operation::InstallUpgrade,
        Some("123456"),
    );
    d.key = Some(KeySpec::Rsa { bits: 2048 });
    store.insert(&d, at(1)).unwrap();

    let outcome = run_transcript(
        &store,
        INSTALL_PASSWORD,
        ServiceParameters::default(),
        vector_now(),
    );
    assert!(outcome.is_success(), "{outcome:?}");
    drop(store);

    // Everything is in the file.
    let store = SqliteStore::open(&path).unwrap();
    let d = store.load(&d.name).unwrap().unwrap();
    assert!(d.policy.auth_string.is_none(), "string consumed");
    assert_eq!(d.operation(), Operation::None);
    assert_eq!(d.status_label(), "Install/Upgrade successful");
    assert!(d.policy.certificates.lsc);
    let lsc = d.lsc.clone().unwrap();
    assert_eq!(lsc.subject.split(',').next(), Some("CN=SEP001122334455"));

    let issued = store.issued_certificates(&d.name).unwrap();
    assert_eq!(issued.len(), 1);
    assert!(issued[0].delivered);
    assert_eq!(issued[0].certificate, lsc);
    let history = store.certificate_history(&d.name).unwrap();
    assert_eq!(history[0].delivered_at, Some(vector_now()));
    assert_eq!(history[0].superseded_at, None);

    let events: Vec<String> = store
        .audit_log(&d.name)
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(events, ["added", "issued", "delivered", "completed"]);
    for e in store.audit_log(&d.name).unwrap() {
        assert!(!e.detail.contains("123456"), "{e:?}");
    }

    // The same string cannot be used again, and the lease was released.
    let again = DeviceEdit {
        operation: Some(Operation::InstallUpgrade),
        ..DeviceEdit::default()
    };
    store.modify(&d.name, &again, vector_now()).unwrap();
    let outcome = run_transcript(
        &store,
        INSTALL_PASSWORD,
        ServiceParameters::default(),
        vector_now(),
    );
    assert!(!outcome.is_success(), "{outcome:?}");
    assert_eq!(store.issued_certificates(&d.name).unwrap().len(), 1);
}

#[test]
fn a_reinstall_supersedes_the_previous_certificate() {
    let store = SqliteStore::open_in_memory().unwrap();
    let mut d = device(
        "SEP001122334455",
        AuthMode::AuthString,
        Operation::InstallUpgrade,
        Some("123456"),
    );
    d.key = Some(KeySpec::Rsa { bits: 2048 });
    store.insert(&d, at(1)).unwrap();
    let params = ServiceParameters::default();
    assert!(run_transcript(&store, INSTALL_PASSWORD, params.clone(), vector_now()).is_success());

    let edit = DeviceEdit {
        auth_string: Some("123456".parse().unwrap()),
        operation: Some(Operation::InstallUpgrade),
        ..DeviceEdit::default()
    };
    store.modify(&d.name, &edit, vector_now()).unwrap();
    let later = vector_now() + std::time::Duration::from_secs(60);
    assert!(run_transcript(&store, INSTALL_PASSWORD, params, later).is_success());

    let history = store.certificate_history(&d.name).unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].superseded_at, Some(later));
    assert_eq!(history[1].superseded_at, None);
    let now = store.load(&d.name).unwrap().unwrap();
    assert_eq!(now.lsc.unwrap(), history[1].record.certificate);
}

#[test]
fn wrong_strings_lock_the_device_and_the_lock_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("capf.db");
    let store = SqliteStore::open(&path).unwrap();
    store.save_parameter("auth_failure_limit", "2").unwrap();
    let d = device(
        "SEP001122334455",
        AuthMode::AuthString,
        Operation::InstallUpgrade,
        Some("999999"), // the transcript's phone types 123456
    );
    store.insert(&d, at(1)).unwrap();

    let params = store.load_parameters().unwrap();
    let outcome = run_transcript(&store, INSTALL_PASSWORD, params.clone(), vector_now());
    assert!(!outcome.is_success());
    drop(store);

    let store = SqliteStore::open(&path).unwrap();
    let after_one = store.load(&d.name).unwrap().unwrap();
    assert_eq!(after_one.policy.failed_attempts, 1);
    assert!(!after_one.policy.locked);
    let outcome = run_transcript(&store, INSTALL_PASSWORD, params, vector_now());
    assert!(!outcome.is_success());
    drop(store);

    let store = SqliteStore::open(&path).unwrap();
    let locked = store.load(&d.name).unwrap().unwrap();
    assert!(locked.policy.locked);
    assert_eq!(locked.policy.failed_attempts, 2);
    assert!(locked.policy.auth_string.is_none());
    assert!(matches!(
        locked.policy.status,
        OperationStatus::Failed {
            reason: FailureReason::LockedOut,
            ..
        }
    ));
    assert!(store.issued_certificates(&d.name).unwrap().is_empty());
    let events: Vec<String> = store
        .audit_log(&d.name)
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert!(events.contains(&"lockout".to_owned()), "{events:?}");
    assert!(
        events.iter().filter(|e| *e == "refused").count() >= 2,
        "{events:?}"
    );
}
