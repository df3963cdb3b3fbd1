//! Authentication policy through the real server and SQLite: single-use
//! strings, lockout that survives a restart, deadlines.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, SystemTime};

use capf_auth::{AuthMode, AuthString, Operation};
use capf_operations::phone::PhoneConfig;
use capf_operations::{DeviceEdit, OperatorStore};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auth_string_authenticates_one_operation_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let n = "SEP000000001001";
    server.add_install(n, "123456");
    let first = assert_installed(
        &server
            .phone(PhoneConfig::new(n, auth_string("123456")))
            .await,
    );

    // The operator schedules another install but arms no new string: the
    // spent one is refused.
    server.edit(n, schedule(Operation::InstallUpgrade));
    let run = server
        .phone(PhoneConfig::new(n, auth_string("123456")))
        .await;
    assert_eq!(refused_reason(&run.outcome), 7, "{:?}", run.outcome);
    assert!(run.installed.is_none());
    let d = server.load(n);
    // Only the operator can arm a string: the operation is failed until
    // then, and the device says why.
    assert_eq!(d.status_label(), "Install/Upgrade failed");
    let last = d.last_error.as_ref().unwrap();
    assert!(last.reason.contains("no authentication string"), "{last:?}");
    assert_eq!(d.lsc.as_ref().unwrap().der, first.0, "the LSC is unchanged");
    assert_eq!(
        d.policy.failed_attempts, 0,
        "a spent string is not a wrong guess"
    );
    assert_eq!(server.issued(n).len(), 1);

    // Nor after a restart.
    server.stop().await;
    let server = Server::start(dir.path()).await;
    let run = server
        .phone(PhoneConfig::new(n, auth_string("123456")))
        .await;
    assert_eq!(refused_reason(&run.outcome), 7, "{:?}", run.outcome);
    assert_eq!(server.issued(n).len(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_strings_lock_the_device_and_the_lock_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let limit = server.store.load_parameters().unwrap().auth_failure_limit;
    assert_eq!(limit, 5, "the default limit");
    let n = "SEP000000002001";
    server.add_install(n, "123456");

    for attempt in 1..limit {
        let run = server
            .phone(PhoneConfig::new(n, auth_string("654321")))
            .await;
        assert_eq!(refused_reason(&run.outcome), 7, "{:?}", run.outcome);
        let d = server.load(n);
        assert_eq!(d.policy.failed_attempts, attempt);
        assert!(!d.policy.locked, "not locked after {attempt} wrong strings");
        assert_eq!(d.status_label(), "Install/Upgrade pending");
    }
    // Restart before the last guess: the counter is durable, so the next
    // wrong string still reaches the limit.
    server.stop().await;
    let server = Server::start(dir.path()).await;
    assert_eq!(server.load(n).policy.failed_attempts, limit - 1);
    let run = server
        .phone(PhoneConfig::new(n, auth_string("000000")))
        .await;
    assert_eq!(refused_reason(&run.outcome), 7, "{:?}", run.outcome);
    let d = server.load(n);
    assert!(d.policy.locked, "locked at the limit");
    assert_eq!(d.policy.failed_attempts, limit);
    assert_eq!(d.status_label(), "Install/Upgrade failed");
    let audit = server.store.audit_log(&name(n)).unwrap();
    assert_eq!(
        audit.iter().filter(|e| e.event == "refused").count(),
        limit as usize
    );
    assert_eq!(audit.iter().filter(|e| e.event == "lockout").count(), 1);

    // The lock survives a restart: even the right string is refused.
    server.stop().await;
    let server = Server::start(dir.path()).await;
    let run = server
        .phone(PhoneConfig::new(n, auth_string("123456")))
        .await;
    assert_eq!(refused_reason(&run.outcome), 7, "{:?}", run.outcome);
    assert!(run.installed.is_none());
    let d = server.load(n);
    assert!(d.policy.locked);
    assert!(d.lsc.is_none());
    assert!(server.issued(n).is_empty());

    // The operator arms a new string: the lock is lifted.
    server.edit(
        n,
        DeviceEdit {
            auth_string: Some("2468".parse::<AuthString>().unwrap()),
            ..DeviceEdit::default()
        },
    );
    let run = server.phone(PhoneConfig::new(n, auth_string("2468"))).await;
    assert_installed(&run);
    assert_eq!(server.load(n).status_label(), "Install/Upgrade successful");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passed_deadline_refuses_the_operation() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let late = "SEP000000003001";
    let mut d = device(
        late,
        AuthMode::AuthString,
        Operation::InstallUpgrade,
        Some("123456"),
        P256,
    );
    d.schedule(
        Operation::InstallUpgrade,
        Some(SystemTime::now() - Duration::from_secs(60)),
    )
    .unwrap();
    server.add(&d);
    let run = server
        .phone(PhoneConfig::new(late, auth_string("123456")))
        .await;
    assert_eq!(refused_reason(&run.outcome), 7, "{:?}", run.outcome);
    assert!(run.installed.is_none());
    let d = server.load(late);
    assert_eq!(d.status_label(), "Install/Upgrade failed");
    assert!(d.lsc.is_none());
    assert!(
        d.policy.auth_string.is_some(),
        "a refused operation does not spend the string"
    );
    assert!(server.issued(late).is_empty());

    // A deadline still ahead does not refuse.
    let on_time = "SEP000000003002";
    let mut d = device(
        on_time,
        AuthMode::NullString,
        Operation::InstallUpgrade,
        None,
        P256,
    );
    d.schedule(
        Operation::InstallUpgrade,
        Some(SystemTime::now() + Duration::from_secs(3600)),
    )
    .unwrap();
    server.add(&d);
    assert_installed(
        &server
            .phone(PhoneConfig::new(
                on_time,
                capf_operations::phone::Credentials::NullString,
            ))
            .await,
    );
    server.stop().await;
}
