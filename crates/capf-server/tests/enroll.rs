//! Every operation end to end: a real `CapfServer` on 127.0.0.1 (ephemeral
//! port), real TLS, a real SQLite file in a temporary data directory, and
//! phones driven by `PhoneClient` (the phone session over TLS).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::SystemTime;

use capf_auth::{AuthMode, Operation};
use capf_ca::{
    CaCertificate, CapfIdentity, CertificateKind, IdentityParams, LscProfile, PrivateKey,
};
use capf_operations::phone::{
    CertificateCredentials, Credentials, FailureCause, PhoneConfig, PhoneOutcome, PhoneSuccess,
};
use capf_operations::{DeviceEdit, DeviceQuery, OperatorStore};
use capf_store::{ExistingTarget, SqliteStore};
use common::*;

/// What every successful install must leave behind: the phone's LSC
/// certifies the key it generated, names the device, was issued by the CAPF
/// certificate; the device record holds it, the string is spent, one
/// certificate was issued and delivered, and the audit log says how.
fn check_installed(
    server: &Server,
    n: &str,
    installed: &(Vec<u8>, PrivateKey),
    key: capf_ca::KeySpec,
    by: &str,
) {
    let cert = CaCertificate::from_der(&installed.0, "LSC").unwrap();
    assert_eq!(cert.common_name().as_deref(), Some(n));
    assert_eq!(
        cert.spki_der().unwrap(),
        installed.1.public_key_der().unwrap()
    );
    assert_eq!(installed.1.spec(), key);
    assert_eq!(cert.issuer(), server.capf_certificate.subject());

    let d = server.load(n);
    assert_eq!(d.status_label(), "Install/Upgrade successful");
    assert_eq!(d.operation(), Operation::None);
    assert_eq!(d.lsc_status(), "Installed");
    assert_eq!(d.lsc.as_ref().unwrap().der, installed.0);
    assert!(d.policy.auth_string.is_none(), "the string is spent");

    let history = server.store.certificate_history(&name(n)).unwrap();
    let last = history.last().unwrap();
    assert_eq!(last.record.certificate.der, installed.0);
    assert!(last.record.delivered);
    assert!(last.delivered_at.is_some());
    assert_eq!(last.record.certificate.serial_hex, cert.serial_hex());

    let audit = server.store.audit_log(&name(n)).unwrap();
    let events: Vec<&str> = audit.iter().map(|e| e.event.as_str()).collect();
    let issued = events.iter().position(|e| *e == "issued").unwrap();
    let delivered = events.iter().position(|e| *e == "delivered").unwrap();
    assert!(issued < delivered, "{events:?}");
    assert!(
        audit
            .iter()
            .any(|e| e.event == "completed" && e.detail.contains(&format!("authenticated by {by}"))),
        "{audit:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_by_auth_string_rsa_and_ec() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let phones = [
        ("SEP0000000000A1", "1111", RSA1024),
        ("SEP0000000000A2", "22222222", P256),
        ("SEP0000000000A3", "3333333333", RSA2048),
    ];
    for (n, s, key) in phones {
        server.add(&device(
            n,
            AuthMode::AuthString,
            Operation::InstallUpgrade,
            Some(s),
            key,
        ));
    }
    // All three at once: different devices do not wait for each other.
    let runs = futures_join(&server, &phones).await;
    for ((n, _, key), run) in phones.iter().zip(&runs) {
        let installed = assert_installed(run);
        check_installed(&server, n, &installed, *key, "authentication string");
        assert_eq!(server.issued(n).len(), 1);
    }
    server.stop().await;
}

async fn futures_join(
    server: &Server,
    phones: &[(&str, &str, capf_ca::KeySpec); 3],
) -> Vec<capf_server::PhoneRun> {
    let config = |i: usize| PhoneConfig::new(phones[i].0, auth_string(phones[i].1));
    let (a, b, c) = tokio::join!(
        server.phone(config(0)),
        server.phone(config(1)),
        server.phone(config(2))
    );
    vec![a, b, c]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_by_null_string() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let n = "SEP0000000000B1";
    server.add_null_string_install(n);
    let run = server
        .phone(PhoneConfig::new(n, Credentials::NullString))
        .await;
    let installed = assert_installed(&run);
    check_installed(&server, n, &installed, P256, "null string");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_authenticated_by_the_existing_lsc() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let n = "SEP0000000000C1";
    server.add_install(n, "4711");
    let first = assert_installed(&server.phone(PhoneConfig::new(n, auth_string("4711"))).await);

    // The operator schedules an upgrade authenticated by the LSC.
    server.edit(
        n,
        DeviceEdit {
            auth_mode: Some(AuthMode::ExistingCertificateLscFirst),
            key: Some(Some(RSA1024)),
            operation: Some(Operation::InstallUpgrade),
            ..DeviceEdit::default()
        },
    );
    let config = PhoneConfig::new(n, lsc_credentials(&first)).with_lsc(first.0.clone());
    let second = assert_installed(&server.phone(config).await);
    assert_ne!(second.0, first.0, "a new LSC replaced the old one");
    check_installed(&server, n, &second, RSA1024, "LSC on record");

    let history = server.store.certificate_history(&name(n)).unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].record.certificate.der, first.0);
    assert!(
        history[0].superseded_at.is_some(),
        "the first LSC was superseded"
    );
    assert!(history[1].superseded_at.is_none());
    assert!(history.iter().all(|h| h.record.delivered));

    // Another device cannot authenticate with this device's LSC.
    let other = "SEP0000000000C2";
    server.add(&device(
        other,
        AuthMode::ExistingCertificateLscFirst,
        Operation::InstallUpgrade,
        None,
        P256,
    ));
    let run = server
        .phone(PhoneConfig::new(other, lsc_credentials(&second)).with_lsc(second.0.clone()))
        .await;
    assert_eq!(refused_reason(&run.outcome), 7, "{:?}", run.outcome);
    assert!(run.installed.is_none());
    assert!(server.issued(other).is_empty());
    assert_eq!(server.load(other).status_label(), "Install/Upgrade pending");
    server.stop().await;
}

/// A manufacturer CA (as capf-ca builds CAs) and a MIC it issued for
/// `device`: CN=<device name>, which holds the MAC.
fn manufacturer_and_mic(device: &str) -> (CaCertificate, Vec<u8>, PrivateKey) {
    let now = SystemTime::now();
    let ca = CapfIdentity::generate(
        &IdentityParams {
            key: P256,
            common_name: Some("Test Manufacturing CA".into()),
            organization: Some("Test Manufacturer".into()),
            ..IdentityParams::default()
        },
        now,
    )
    .unwrap();
    let key = PrivateKey::generate(P256).unwrap();
    let mic = ca
        .issuer()
        .unwrap()
        .issue_lsc(
            device,
            &key.public_key_der().unwrap(),
            &LscProfile::default(),
            now,
        )
        .unwrap();
    (ca.certificate().clone(), mic.der, key)
}

fn mic_credentials(der: &[u8], key: &PrivateKey) -> Credentials {
    Credentials::Certificate(Box::new(CertificateCredentials {
        kind: CertificateKind::Mic,
        certificate_der: der.to_vec().into(),
        key: key.clone(),
        sudi: None,
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_authenticated_by_a_mic() {
    let dir = tempfile::tempdir().unwrap();
    let n = "SEP0011223344D1";
    let (ca, mic, mic_key) = manufacturer_and_mic(n);
    // The manufacturer CA goes where the server reads MIC anchors.
    init_data_dir(dir.path());
    let trust_dir = dir.path().join(MIC_TRUST);
    std::fs::create_dir_all(&trust_dir).unwrap();
    std::fs::write(trust_dir.join("manufacturer.pem"), ca.pem()).unwrap();
    let server = Server::start(dir.path()).await;

    server.add(&device(
        n,
        AuthMode::ExistingCertificateMicFirst,
        Operation::InstallUpgrade,
        None,
        P256,
    ));
    let run = server
        .phone(PhoneConfig::new(n, mic_credentials(&mic, &mic_key)))
        .await;
    let installed = assert_installed(&run);
    check_installed(&server, n, &installed, P256, "MIC");

    // A MIC from a manufacturer the server does not trust is refused.
    let untrusted = "SEP0011223344D2";
    let (_, other_mic, other_key) = manufacturer_and_mic(untrusted);
    server.add(&device(
        untrusted,
        AuthMode::ExistingCertificateMicFirst,
        Operation::InstallUpgrade,
        None,
        P256,
    ));
    let run = server
        .phone(PhoneConfig::new(
            untrusted,
            mic_credentials(&other_mic, &other_key),
        ))
        .await;
    assert_eq!(refused_reason(&run.outcome), 7, "{:?}", run.outcome);
    assert!(server.issued(untrusted).is_empty());

    // A trusted MIC of another phone (another MAC) does not authenticate this one.
    let run = server
        .phone(PhoneConfig::new(untrusted, mic_credentials(&mic, &mic_key)))
        .await;
    assert_eq!(refused_reason(&run.outcome), 7, "{:?}", run.outcome);
    assert_eq!(
        server.load(untrusted).status_label(),
        "Install/Upgrade pending"
    );
    server.stop().await;
}

/// Installs an LSC on `n` by null string and returns it.
async fn installed_device(server: &Server, n: &str) -> (Vec<u8>, PrivateKey) {
    server.add_null_string_install(n);
    assert_installed(
        &server
            .phone(PhoneConfig::new(n, Credentials::NullString))
            .await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn troubleshoot_writes_one_trace_file_per_retrieved_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let n = "SEP0000000000E1";
    let lsc = installed_device(&server, n).await;
    let serial = CaCertificate::from_der(&lsc.0, "LSC").unwrap().serial_hex();

    server.edit(n, schedule(Operation::Troubleshoot));
    let run = server
        .phone(PhoneConfig::new(n, Credentials::NullString).with_lsc(lsc.0.clone()))
        .await;
    match &run.outcome {
        PhoneOutcome::Succeeded(PhoneSuccess::Fetched {
            returned: Some(der),
        }) => {
            assert_eq!(der.as_ref(), lsc.0.as_slice());
        }
        other => panic!("expected a fetch, got {other:?}"),
    }
    let d = server.load(n);
    assert_eq!(d.status_label(), "Troubleshoot successful");
    assert_eq!(d.lsc.as_ref().unwrap().der, lsc.0, "the LSC is unchanged");
    let audit = server.store.audit_log(&name(n)).unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.event == "completed" && e.detail.contains("troubleshoot")),
        "{audit:?}"
    );

    // The trace is written as the session ends: wait (bounded) for it.
    let traces = dir.path().join(TRACES);
    let files = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let files: Vec<_> = std::fs::read_dir(&traces)
                .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
            if !files.is_empty() {
                return files;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a trace file is written");
    assert_eq!(
        files.len(),
        1,
        "one file per retrieved certificate: {files:?}"
    );
    let file_name = files[0].file_name().unwrap().to_str().unwrap().to_owned();
    assert!(file_name.starts_with(&format!("{n}-lsc-")), "{file_name}");
    assert!(file_name.ends_with(".pem"), "{file_name}");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(text.contains(&serial), "{text}");
    let traced = CaCertificate::from_pem(&text, "trace").unwrap();
    assert_eq!(traced.der(), lsc.0.as_slice());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_the_lsc() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let n = "SEP0000000000F1";
    let lsc = installed_device(&server, n).await;

    server.edit(n, schedule(Operation::Delete));
    let run = server
        .phone(PhoneConfig::new(n, Credentials::NullString).with_lsc(lsc.0.clone()))
        .await;
    assert_eq!(
        run.outcome,
        PhoneOutcome::Succeeded(PhoneSuccess::Deleted { had_one: true })
    );
    assert!(run.deleted);
    let d = server.load(n);
    assert_eq!(d.status_label(), "Delete successful");
    assert_eq!(d.lsc_status(), "Not Installed");
    assert!(d.lsc.is_none());
    let history = server.store.certificate_history(&name(n)).unwrap();
    assert_eq!(history.len(), 1);
    assert!(history[0].deleted_at.is_some(), "the deletion is recorded");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_scheduled_and_unknown_device() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let n = "SEP0000000000A9";
    server.add(&device(
        n,
        AuthMode::AuthString,
        Operation::None,
        Some("123456"),
        P256,
    ));
    let before = server.load(n);

    let run = server
        .phone(PhoneConfig::new(n, auth_string("123456")))
        .await;
    assert!(
        matches!(
            run.outcome,
            PhoneOutcome::Succeeded(PhoneSuccess::NothingScheduled { .. })
        ),
        "{:?}",
        run.outcome
    );
    assert!(run.installed.is_none());
    let after = server.load(n);
    assert_eq!(after.status_label(), before.status_label());
    assert!(after.lsc.is_none());
    assert!(
        after.policy.auth_string.is_some(),
        "no operation ran, so the string is not spent"
    );
    assert!(server.issued(n).is_empty());

    let unknown = "SEP0000DEADBEEF";
    let run = server
        .phone(PhoneConfig::new(unknown, auth_string("123456")))
        .await;
    match &run.outcome {
        PhoneOutcome::Failed(f) => assert_eq!(f.cause, FailureCause::UnknownDevice),
        other => panic!("expected unknown device, got {other:?}"),
    }
    assert!(server.store.load(&name(unknown)).unwrap().is_none());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_then_restore_gives_the_same_devices_and_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let upgraded = "SEP0000000000BA";
    let lsc = installed_device(&server, upgraded).await;
    server.edit(
        upgraded,
        DeviceEdit {
            auth_mode: Some(AuthMode::ExistingCertificateLscFirst),
            operation: Some(Operation::InstallUpgrade),
            ..DeviceEdit::default()
        },
    );
    assert_installed(
        &server
            .phone(PhoneConfig::new(upgraded, lsc_credentials(&lsc)).with_lsc(lsc.0.clone()))
            .await,
    );
    installed_device(&server, "SEP0000000000BB").await;
    let pending = "SEP0000000000BC";
    server.add_install(pending, "90210");
    let names = [upgraded, "SEP0000000000BB", pending];

    // Online backup, while the server runs.
    let backup = dir.path().join("backup.sqlite3");
    server.store.backup_to(&backup).unwrap();
    let devices = server.store.find(&DeviceQuery::default()).unwrap().devices;
    assert_eq!(devices.len(), 3);
    let histories: Vec<_> = names
        .iter()
        .map(|n| server.store.certificate_history(&name(n)).unwrap())
        .collect();
    let audits: Vec<_> = names
        .iter()
        .map(|n| server.store.audit_log(&name(n)).unwrap())
        .collect();
    assert_eq!(histories[0].len(), 2);
    server.stop().await;

    let restored_dir = tempfile::tempdir().unwrap();
    let target = restored_dir.path().join(DATABASE);
    let restored = SqliteStore::restore_from(&backup, &target, ExistingTarget::Refuse).unwrap();
    assert!(restored.ignored.is_empty(), "{:?}", restored.ignored);
    let restored = restored.store;
    assert_eq!(
        restored.find(&DeviceQuery::default()).unwrap().devices,
        devices
    );
    for (i, n) in names.iter().enumerate() {
        assert_eq!(
            restored.certificate_history(&name(n)).unwrap(),
            histories[i],
            "{n}"
        );
        assert_eq!(restored.audit_log(&name(n)).unwrap(), audits[i], "{n}");
    }
    drop(restored);

    // The restored directory serves: the pending device enrolls with the
    // string armed before the backup.
    let server = Server::start(restored_dir.path()).await;
    let run = server
        .phone(PhoneConfig::new(pending, auth_string("90210")))
        .await;
    assert_installed(&run);
    assert_eq!(
        server.load(pending).status_label(),
        "Install/Upgrade successful"
    );
    server.stop().await;
}
