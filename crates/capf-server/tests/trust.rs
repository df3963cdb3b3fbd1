//! Which certificates authenticate a phone, and what a troubleshoot keeps,
//! end to end: a real `CapfServer` on 127.0.0.1 (ephemeral port), real TLS,
//! a real SQLite file in a temporary data directory, phones driven by
//! `PhoneClient`. Where a session must run at another time than now (to put
//! an expired LSC on record) or the server's own outcome must be seen, a
//! `ServerSession` and a `PhoneSession` are paired in process over the same
//! SQLite store the server uses.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use capf_auth::{AuthMode, Operation};
use capf_ca::{
    CaCertificate, CapfIdentity, CertValidity, CertificateKind, IdentityParams, Issuer, LscProfile,
    PrivateKey,
};
use capf_operations::phone::{
    CertificateCredentials, Credentials, PhoneConfig, PhoneEvent, PhoneOutcome, PhoneSession,
    PhoneSuccess,
};
use capf_operations::{
    Device, DeviceEdit, OperatorStore, OutcomeKind, RetrievedKind, ServerConfig, ServerSession,
    SessionDriver, SessionOutcome, Transmit, escape_text, new_session_id,
};
use capf_server::PhoneRun;
use capf_store::SqliteStore;
use capf_wire::{FrameCodec, Message};
use common::*;

/// Longest any test here may take.
const TEST_LIMIT: Duration = Duration::from_secs(240);

/// Runs a test body, bounded.
async fn bounded<F: std::future::Future<Output = ()>>(body: F) {
    tokio::time::timeout(TEST_LIMIT, body)
        .await
        .expect("the test finishes within its bound");
}

// ---------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------

/// A CA as capf-ca builds CAs (self-signed, P-256), named `cn`.
fn ca(cn: &str, organization: &str) -> CapfIdentity {
    CapfIdentity::generate(
        &IdentityParams {
            key: P256,
            common_name: Some(cn.into()),
            organization: Some(organization.into()),
            ..IdentityParams::default()
        },
        SystemTime::now(),
    )
    .unwrap()
}

/// A certificate `ca` issues for a fresh P-256 key, with CN `cn` (an LSC
/// profile: capf-ca issues MICs for tests the same way), and the key.
fn issue(ca: &Issuer, cn: &str) -> (Vec<u8>, PrivateKey) {
    let key = PrivateKey::generate(P256).unwrap();
    let cert = ca
        .issue_lsc(
            cn,
            &key.public_key_der().unwrap(),
            &LscProfile::default(),
            SystemTime::now(),
        )
        .unwrap();
    (cert.der, key)
}

/// A self-signed certificate whose CN is `cn`, with O and OU as given.
fn self_signed(cn: &str, organization: Option<&str>, unit: Option<&str>) -> Vec<u8> {
    CapfIdentity::generate(
        &IdentityParams {
            key: P256,
            common_name: Some(cn.into()),
            organization: organization.map(str::to_owned),
            organizational_unit: unit.map(str::to_owned),
            ..IdentityParams::default()
        },
        SystemTime::now(),
    )
    .unwrap()
    .certificate()
    .der()
    .to_vec()
}

/// A manufacturer CA the server trusts: written to `mic-trust/` of the data
/// directory `root` (call before the server starts).
fn trusted_manufacturer(root: &Path) -> Issuer {
    init_data_dir(root);
    let manufacturer = ca("Test Manufacturing CA", "Test Manufacturer");
    let dir = root.join(MIC_TRUST);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("manufacturer.pem"),
        manufacturer.certificate().pem(),
    )
    .unwrap();
    manufacturer.issuer().unwrap()
}

/// The MIC a manufacturer gives the phone `device`: CN
/// `CP-7945G-<device>` (the device name is the CN's last '-' part).
fn mic_for(manufacturer: &Issuer, device: &str) -> (Vec<u8>, PrivateKey) {
    issue(manufacturer, &format!("CP-7945G-{device}"))
}

fn mic_credentials(mic: &(Vec<u8>, PrivateKey)) -> Credentials {
    Credentials::Certificate(Box::new(CertificateCredentials {
        kind: CertificateKind::Mic,
        certificate_der: mic.0.clone().into(),
        key: mic.1.clone(),
        sudi: None,
    }))
}

fn serial_of(der: &[u8]) -> String {
    CaCertificate::from_der(der, "certificate")
        .unwrap()
        .serial_hex()
}

// ---------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------

/// A phone holding `lsc` authenticates with it (and returns it if asked).
async fn present_lsc(server: &Server, n: &str, lsc: &(Vec<u8>, PrivateKey)) -> PhoneRun {
    server
        .phone(PhoneConfig::new(n, lsc_credentials(lsc)).with_lsc(lsc.0.clone()))
        .await
}

/// Adds `n` (null string, install), enrolls it, returns its LSC.
async fn enrolled(server: &Server, n: &str) -> (Vec<u8>, PrivateKey) {
    server.add_null_string_install(n);
    let installed = assert_installed(
        &server
            .phone(PhoneConfig::new(n, Credentials::NullString))
            .await,
    );
    assert_eq!(server.load(n).lsc.unwrap().der, installed.0);
    installed
}

/// Schedules an install on `n` authenticated by an existing certificate.
fn schedule_certificate_install(server: &Server, n: &str, mode: AuthMode) {
    server.edit(
        n,
        DeviceEdit {
            auth_mode: Some(mode),
            operation: Some(Operation::InstallUpgrade),
            ..DeviceEdit::default()
        },
    );
}

/// The audit entries of `n` with this event.
fn audit_events(server: &Server, n: &str, event: &str) -> Vec<String> {
    server
        .store
        .audit_log(&name(n))
        .unwrap()
        .into_iter()
        .filter(|e| e.event == event)
        .map(|e| e.detail)
        .collect()
}

/// The install on `n` succeeded, authenticated `by`, and left `installed`
/// as the LSC on record.
fn assert_upgraded(server: &Server, n: &str, run: &PhoneRun, by: &str) -> (Vec<u8>, PrivateKey) {
    let installed = assert_installed(run);
    let d = server.load(n);
    assert_eq!(d.status_label(), "Install/Upgrade successful");
    assert_eq!(d.lsc.as_ref().unwrap().der, installed.0);
    assert!(d.lsc_revoked.is_none());
    assert!(d.last_error.is_none(), "{:?}", d.last_error);
    let completed = audit_events(server, n, "completed");
    assert!(
        completed
            .last()
            .is_some_and(|c| c.contains(&format!("authenticated by {by}"))),
        "{completed:?}"
    );
    installed
}

/// What a refused "existing certificate" install must leave behind: END_SESSION
/// 7, nothing issued or installed, the LSC on record as `before` was, the
/// operation pending, the refusal as the last error (naming the LSC and
/// `why`) and as one more "refused" audit entry.
fn assert_lsc_refused(server: &Server, n: &str, run: &PhoneRun, before: &Device, why: &str) {
    assert_eq!(refused_reason(&run.outcome), 7, "{:?}", run.outcome);
    assert!(run.installed.is_none(), "no certificate installed");
    let d = server.load(n);
    assert_eq!(d.lsc, before.lsc, "the LSC on record is unchanged");
    assert_eq!(d.lsc_revoked, before.lsc_revoked);
    assert_eq!(d.mic, before.mic);
    assert_eq!(d.status_label(), "Install/Upgrade pending");
    assert_eq!(d.operation(), Operation::InstallUpgrade);
    let last = d
        .last_error
        .as_ref()
        .expect("the refusal is the last error");
    assert!(last.reason.contains("LSC rejected"), "{last:?}");
    assert!(last.reason.contains(why), "{last:?} should say {why:?}");
    let refused = audit_events(server, n, "refused");
    assert_eq!(
        refused.last(),
        Some(&last.reason),
        "the audit log has the refusal"
    );
}

/// Decodes what one end sent, through the codec, as bytes travel.
fn on_the_wire(t: &Transmit) -> (u32, Message) {
    let mut buf = BytesMut::new();
    t.encode(&mut buf).unwrap();
    let frame = FrameCodec::new().decode(&mut buf).unwrap().unwrap();
    assert!(buf.is_empty());
    (frame.session_id, Message::from_frame(&frame).unwrap())
}

/// A session run in process, without sockets.
struct InProcess {
    server: SessionOutcome,
    phone: PhoneOutcome,
    installed: Option<(Vec<u8>, PrivateKey)>,
}

/// Pairs a `ServerSession` (serviced by a `SessionDriver` over `store`,
/// issuing with `profile`) and a `PhoneSession`, both at `now`, until both
/// have finished.
fn pair_blocking(
    store: &SqliteStore,
    issuer: &Issuer,
    config: Arc<ServerConfig>,
    phone: PhoneConfig,
    profile: LscProfile,
    now: SystemTime,
) -> InProcess {
    let mut server = ServerSession::new(new_session_id(), config, now);
    // Longer than the gap between `now` and the real clock.
    let mut driver = SessionDriver::new(store, issuer, Duration::from_secs(30 * 86_400))
        .with_lsc_profile(profile);
    let mut phone = PhoneSession::new(phone, now);
    let mut pending_key = None;
    let mut installed = None;
    for _ in 0..200 {
        let mut moved = false;
        driver.service(&mut server, now);
        while let Some(t) = server.poll_transmit() {
            let (sid, m) = on_the_wire(&t);
            phone.handle_message(now, sid, m);
            moved = true;
        }
        while let Some(event) = phone.poll_event() {
            moved = true;
            match event {
                PhoneEvent::GenerateKey(spec) => {
                    let key = PrivateKey::generate(spec).unwrap();
                    let spki = key.public_key_der().unwrap();
                    pending_key = Some(key);
                    phone.key_generated(now, Ok(spki));
                }
                PhoneEvent::StoreCertificate { certificate_der } => {
                    let key = pending_key.take().expect("a key was generated");
                    installed = Some((certificate_der.to_vec(), key));
                    phone.certificate_stored(now, true);
                }
                PhoneEvent::DeleteCertificate => {
                    let had = phone.config().lsc_der.is_some();
                    phone.certificate_deleted(now, had);
                }
                PhoneEvent::Finished => {}
            }
        }
        while let Some(t) = phone.poll_transmit() {
            let (sid, m) = on_the_wire(&t);
            server.handle_message(now, sid, m);
            moved = true;
        }
        if !moved {
            break;
        }
    }
    assert!(server.is_finished(), "the server session finished");
    assert!(phone.is_finished(), "the phone session finished");
    InProcess {
        server: server.outcome().cloned().unwrap(),
        phone: phone.outcome().cloned().unwrap(),
        installed,
    }
}

/// Runs one session in process over the server's own SQLite store, with
/// the server's issuer, trust anchors and service parameters, at `now`.
async fn in_process(
    server: &Server,
    phone: PhoneConfig,
    profile: LscProfile,
    now: SystemTime,
) -> InProcess {
    let device = phone.device_name.clone();
    let store = server.store.clone();
    let issuer = init_data_dir(&server.root).issuer().unwrap();
    let config = Arc::new(ServerConfig::new(
        store.load_parameters().unwrap(),
        trust_store(&server.root, &issuer),
    ));
    let run = tokio::time::timeout(
        PHONE_LIMIT,
        tokio::task::spawn_blocking(move || {
            pair_blocking(&store, &issuer, config, phone, profile, now)
        }),
    )
    .await
    .expect("the in-process session within the limit")
    .expect("the in-process session ran");
    wait_lease_free(&server.store, &device).await;
    run
}

/// Runs a troubleshoot on `n` whose phone authenticates with
/// `credentials` and returns `returned`; checks the phone sent it and the
/// operation succeeded.
async fn troubleshoot(server: &Server, n: &str, credentials: Credentials, returned: &[u8]) {
    server.edit(n, schedule(Operation::Troubleshoot));
    let run = server
        .phone(PhoneConfig::new(n, credentials).with_lsc(returned.to_vec()))
        .await;
    match &run.outcome {
        PhoneOutcome::Succeeded(PhoneSuccess::Fetched {
            returned: Some(der),
        }) => {
            assert_eq!(der.as_ref(), returned);
        }
        other => panic!("expected a fetch, got {other:?}"),
    }
    assert!(run.installed.is_none());
    assert_eq!(server.load(n).status_label(), "Troubleshoot successful");
}

/// The trace files of `n`, waiting (bounded) until there are `count`.
async fn traces_of(root: &Path, n: &str, count: usize) -> Vec<PathBuf> {
    let dir = root.join(TRACES);
    let prefix = format!("{n}-");
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map(|entries| {
                    entries
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| {
                            p.file_name()
                                .and_then(|f| f.to_str())
                                .is_some_and(|f| f.starts_with(&prefix))
                        })
                        .collect()
                })
                .unwrap_or_default();
            if files.len() >= count {
                files.sort();
                return files;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{count} trace file(s) of {n} in {}", dir.display()))
}

/// The certificate of a trace file, read from its (only) BEGIN line on.
fn pem_from_begin_line(text: &str) -> CaCertificate {
    let begin = text
        .find("\n-----BEGIN CERTIFICATE-----")
        .expect("a BEGIN line");
    CaCertificate::from_pem(&text[begin + 1..], "trace").unwrap()
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_str().unwrap().to_owned()
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// Only the LSC on record authenticates: a superseded, a deleted, a
/// revoked, an expired and a foreign LSC are refused; the current one is
/// accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn superseded_deleted_revoked_expired_and_foreign_lscs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    bounded(async {
        let server = Server::start(dir.path()).await;

        // Superseded: an upgrade replaced it.
        let n = "SEP00000000A001";
        let first = enrolled(&server, n).await;
        schedule_certificate_install(&server, n, AuthMode::ExistingCertificateLscFirst);
        let second = assert_upgraded(
            &server,
            n,
            &present_lsc(&server, n, &first).await,
            "LSC on record",
        );
        assert_ne!(second.0, first.0);
        server.edit(n, schedule(Operation::InstallUpgrade));
        let before = server.load(n);
        let issued = server.issued(n).len();
        let run = present_lsc(&server, n, &first).await;
        assert_lsc_refused(
            &server,
            n,
            &run,
            &before,
            &format!(
                "serial {} presented, serial {} on record",
                serial_of(&first.0),
                serial_of(&second.0)
            ),
        );
        assert_eq!(server.issued(n).len(), issued, "nothing issued");
        // The LSC on record still works.
        let third = assert_upgraded(
            &server,
            n,
            &present_lsc(&server, n, &second).await,
            "LSC on record",
        );
        assert_ne!(third.0, second.0);

        // Deleted: a delete operation completed.
        let n = "SEP00000000A002";
        let lsc = enrolled(&server, n).await;
        server.edit(n, schedule(Operation::Delete));
        let run = server
            .phone(PhoneConfig::new(n, Credentials::NullString).with_lsc(lsc.0.clone()))
            .await;
        assert_eq!(
            run.outcome,
            PhoneOutcome::Succeeded(PhoneSuccess::Deleted { had_one: true })
        );
        assert!(server.load(n).lsc.is_none());
        schedule_certificate_install(&server, n, AuthMode::ExistingCertificateLscFirst);
        let before = server.load(n);
        let run = present_lsc(&server, n, &lsc).await;
        assert_lsc_refused(
            &server,
            n,
            &run,
            &before,
            &format!("serial {} presented, no LSC on record", serial_of(&lsc.0)),
        );
        assert_eq!(server.issued(n).len(), 1, "nothing issued");

        // Revoked by the operator.
        let n = "SEP00000000A003";
        let lsc = enrolled(&server, n).await;
        server.edit(
            n,
            DeviceEdit {
                auth_mode: Some(AuthMode::ExistingCertificateLscFirst),
                operation: Some(Operation::InstallUpgrade),
                revoke_lsc: Some("key compromised".into()),
                ..DeviceEdit::default()
            },
        );
        let before = server.load(n);
        assert_eq!(before.lsc.as_ref().unwrap().der, lsc.0);
        assert_eq!(
            before.lsc_revoked.as_ref().unwrap().reason,
            "key compromised"
        );
        let run = present_lsc(&server, n, &lsc).await;
        assert_lsc_refused(
            &server,
            n,
            &run,
            &before,
            &format!(
                "revoked by the operator: serial {} revoked",
                serial_of(&lsc.0)
            ),
        );
        assert_eq!(server.issued(n).len(), 1, "nothing issued");
        // A new LSC (by string) lifts the revocation, and then authenticates.
        server.edit(
            n,
            DeviceEdit {
                auth_mode: Some(AuthMode::AuthString),
                auth_string: Some("24680".parse().unwrap()),
                ..DeviceEdit::default()
            },
        );
        let renewed = assert_upgraded(
            &server,
            n,
            &server
                .phone(PhoneConfig::new(n, auth_string("24680")))
                .await,
            "authentication string",
        );
        schedule_certificate_install(&server, n, AuthMode::ExistingCertificateLscFirst);
        assert_upgraded(
            &server,
            n,
            &present_lsc(&server, n, &renewed).await,
            "LSC on record",
        );

        // Expired: the LSC on record, delivered by a session three days ago
        // with a one-day validity.
        let n = "SEP00000000A004";
        server.add_null_string_install(n);
        let three_days_ago = SystemTime::now() - Duration::from_secs(3 * 86_400);
        let past = in_process(
            &server,
            PhoneConfig::new(n, Credentials::NullString),
            LscProfile {
                validity: CertValidity::Days(1),
                ..LscProfile::default()
            },
            three_days_ago,
        )
        .await;
        assert!(
            matches!(past.server.kind, OutcomeKind::Installed { .. }),
            "{:?}",
            past.server
        );
        assert!(
            matches!(
                past.phone,
                PhoneOutcome::Succeeded(PhoneSuccess::Installed { .. })
            ),
            "{:?}",
            past.phone
        );
        let expired = past.installed.unwrap();
        let cert = CaCertificate::from_der(&expired.0, "LSC").unwrap();
        assert!(cert.not_after() < SystemTime::now(), "the LSC has expired");
        assert_eq!(
            server.load(n).lsc.as_ref().unwrap().der,
            expired.0,
            "the expired LSC is the one on record"
        );
        schedule_certificate_install(&server, n, AuthMode::ExistingCertificateLscFirst);
        let before = server.load(n);
        let run = present_lsc(&server, n, &expired).await;
        assert_lsc_refused(&server, n, &run, &before, "expired");
        assert_eq!(server.issued(n).len(), 1, "nothing issued");

        // Foreign: issued by our CA to this device name, never delivered
        // through CAPF.
        let n = "SEP00000000A005";
        let lsc = enrolled(&server, n).await;
        let issuer = init_data_dir(dir.path()).issuer().unwrap();
        let foreign = issue(&issuer, n);
        assert_eq!(
            CaCertificate::from_der(&foreign.0, "foreign")
                .unwrap()
                .issuer(),
            server.capf_certificate.subject(),
            "the foreign LSC chains to the CAPF issuer"
        );
        schedule_certificate_install(&server, n, AuthMode::ExistingCertificateLscFirst);
        let before = server.load(n);
        let run = present_lsc(&server, n, &foreign).await;
        assert_lsc_refused(
            &server,
            n,
            &run,
            &before,
            &format!(
                "serial {} presented, serial {} on record",
                serial_of(&foreign.0),
                serial_of(&lsc.0)
            ),
        );
        assert_eq!(server.issued(n).len(), 1, "nothing issued");
        // The LSC on record is accepted.
        assert_upgraded(
            &server,
            n,
            &present_lsc(&server, n, &lsc).await,
            "LSC on record",
        );

        server.stop().await;
    })
    .await;
}

/// A MIC that authenticated an install is kept on the device (with an
/// audit entry), and a later mic-first session authenticates with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mic_that_authenticated_is_on_record_and_mic_first_then_uses_it() {
    let dir = tempfile::tempdir().unwrap();
    bounded(async {
        let manufacturer = trusted_manufacturer(dir.path());
        let server = Server::start(dir.path()).await;
        let n = "SEP001122334455";
        let mic = mic_for(&manufacturer, n);
        server.add(&device(
            n,
            AuthMode::ExistingCertificateLscFirst,
            Operation::InstallUpgrade,
            None,
            P256,
        ));
        assert!(server.load(n).mic.is_none());

        let run = server
            .phone(PhoneConfig::new(n, mic_credentials(&mic)))
            .await;
        let lsc = assert_upgraded(&server, n, &run, "MIC");
        let d = server.load(n);
        let on_record = d.mic.clone().expect("the MIC is on record");
        assert_eq!(on_record.der, mic.0);
        assert_eq!(on_record.serial_hex, serial_of(&mic.0));
        assert!(
            on_record.subject.contains("CN=CP-7945G-SEP001122334455"),
            "{on_record:?}"
        );
        let recorded = audit_events(&server, n, "mic-recorded");
        assert_eq!(recorded.len(), 1, "{recorded:?}");
        assert!(recorded[0].contains(&on_record.serial_hex), "{recorded:?}");
        assert!(
            recorded[0].contains(&on_record.fingerprint_sha256()),
            "{recorded:?}"
        );

        // Mic-first: the phone (which now holds an LSC too) presents its
        // MIC, the one on record, and is authenticated by it.
        schedule_certificate_install(&server, n, AuthMode::ExistingCertificateMicFirst);
        let run = server
            .phone(PhoneConfig::new(n, mic_credentials(&mic)).with_lsc(lsc.0.clone()))
            .await;
        let upgraded = assert_upgraded(&server, n, &run, "MIC");
        assert_ne!(upgraded.0, lsc.0);
        let d = server.load(n);
        assert_eq!(d.mic.as_ref(), Some(&on_record), "the MIC on record stays");
        assert_eq!(
            audit_events(&server, n, "mic-recorded").len(),
            1,
            "the MIC on record is not recorded again"
        );
        assert_eq!(audit_events(&server, n, "completed").len(), 2);
        server.stop().await;
    })
    .await;
}

/// Precedence falls back either way: LSC-first without an LSC takes a
/// verified MIC, MIC-first without a MIC takes the LSC on record; a phone
/// that presents neither fails, and the device says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lsc_first_without_an_lsc_falls_back_to_the_mic_and_neither_fails_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    bounded(async {
        let manufacturer = trusted_manufacturer(dir.path());
        let server = Server::start(dir.path()).await;

        // LSC first, no LSC: the MIC.
        let n = "SEP00000000AB01";
        server.add(&device(
            n,
            AuthMode::ExistingCertificateLscFirst,
            Operation::InstallUpgrade,
            None,
            P256,
        ));
        let mic = mic_for(&manufacturer, n);
        let run = server
            .phone(PhoneConfig::new(n, mic_credentials(&mic)))
            .await;
        assert_upgraded(&server, n, &run, "MIC");
        assert_eq!(server.load(n).mic.unwrap().der, mic.0);

        // MIC first, an LSC on record and no MIC: the LSC.
        let n = "SEP00000000AB02";
        let lsc = enrolled(&server, n).await;
        schedule_certificate_install(&server, n, AuthMode::ExistingCertificateMicFirst);
        let run = present_lsc(&server, n, &lsc).await;
        let upgraded = assert_upgraded(&server, n, &run, "LSC on record");
        assert_ne!(upgraded.0, lsc.0);
        assert!(server.load(n).mic.is_none());

        // Neither: LSC first, no LSC, the null string...
        let n = "SEP00000000AB03";
        server.add(&device(
            n,
            AuthMode::ExistingCertificateLscFirst,
            Operation::InstallUpgrade,
            None,
            P256,
        ));
        let run = server
            .phone(PhoneConfig::new(n, Credentials::NullString))
            .await;
        assert_neither(&server, n, &run, None);

        // ...and MIC first, an LSC on record, an authentication string.
        let n = "SEP00000000AB04";
        let lsc = enrolled(&server, n).await;
        schedule_certificate_install(&server, n, AuthMode::ExistingCertificateMicFirst);
        let run = server
            .phone(PhoneConfig::new(n, auth_string("13579")).with_lsc(lsc.0.clone()))
            .await;
        assert_neither(&server, n, &run, Some(&lsc.0));
        server.stop().await;
    })
    .await;
}

/// The phone presented no certificate to a device in a certificate mode:
/// refused, the operation failed, the last error and the audit log name both
/// certificates.
fn assert_neither(server: &Server, n: &str, run: &PhoneRun, lsc: Option<&Vec<u8>>) {
    assert_eq!(refused_reason(&run.outcome), 7, "{:?}", run.outcome);
    assert!(run.installed.is_none());
    let d = server.load(n);
    assert_eq!(d.status_label(), "Install/Upgrade failed");
    assert_eq!(d.lsc.as_ref().map(|l| &l.der), lsc, "the LSC is unchanged");
    assert!(d.mic.is_none());
    let last = d.last_error.as_ref().expect("a last error");
    assert!(
        last.reason.contains("neither its LSC nor a MIC"),
        "{last:?}"
    );
    let refused = audit_events(server, n, "refused");
    assert_eq!(refused.last(), Some(&last.reason), "{refused:?}");
    assert!(
        !audit_events(server, n, "operation-failed").is_empty(),
        "the failure is in the audit log"
    );
    assert_eq!(
        server.issued(n).len(),
        usize::from(lsc.is_some()),
        "nothing issued"
    );
}

/// A troubleshoot classifies what the phone returns by verification: a
/// self-signed certificate naming the device, a certificate from an
/// unknown CA and a MIC from an untrusted manufacturer are unverified and
/// never recorded; the LSC on record and a trusted MIC are what they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn troubleshoot_never_records_an_unverified_certificate() {
    let dir = tempfile::tempdir().unwrap();
    bounded(async {
        let manufacturer = trusted_manufacturer(dir.path());
        let server = Server::start(dir.path()).await;
        let unknown_ca = ca("Unknown CA", "Nobody");
        let untrusted_manufacturer = ca("Test Manufacturing CA", "Test Manufacturer");

        // An LSC on record; one with a MIC on record as well.
        let plain = "SEP0000000C0001";
        let lsc_plain = enrolled(&server, plain).await;
        let other = "SEP0000000C0002";
        let lsc_other = enrolled(&server, other).await;
        let with_mic = "SEP0000000C0003";
        server.add(&device(
            with_mic,
            AuthMode::ExistingCertificateLscFirst,
            Operation::InstallUpgrade,
            None,
            P256,
        ));
        let mic = mic_for(&manufacturer, with_mic);
        let lsc_with_mic = assert_upgraded(
            &server,
            with_mic,
            &server
                .phone(PhoneConfig::new(with_mic, mic_credentials(&mic)))
                .await,
            "MIC",
        );
        assert!(server.load(with_mic).mic.is_some());

        // Each phone authenticates as its device requires (the null string;
        // the LSC on record) and returns a certificate naming the device.
        let cases = [
            // Self-signed, CN = the device name.
            (
                plain,
                Credentials::NullString,
                self_signed(plain, Some("Test Manufacturer"), None),
            ),
            // Issued for this device by a CA nobody trusts.
            (
                other,
                Credentials::NullString,
                issue(&unknown_ca.issuer().unwrap(), other).0,
            ),
            // A "MIC" naming the device from a manufacturer not trusted.
            (
                with_mic,
                lsc_credentials(&lsc_with_mic),
                mic_for(&untrusted_manufacturer.issuer().unwrap(), with_mic).0,
            ),
        ];
        for (n, credentials, returned) in &cases {
            let before = server.load(n);
            troubleshoot(&server, n, credentials.clone(), returned).await;
            let d = server.load(n);
            assert_eq!(d.lsc, before.lsc, "{n}: the LSC on record is unchanged");
            assert_eq!(d.mic, before.mic, "{n}: the MIC on record is unchanged");
            assert_eq!(d.lsc_revoked, before.lsc_revoked);
            assert_eq!(
                audit_events(&server, n, "mic-recorded").len(),
                usize::from(*n == with_mic),
                "{n}: no MIC recorded by the troubleshoot"
            );
            let completed = audit_events(&server, n, "completed");
            let last = completed.last().unwrap();
            assert!(
                last.contains("troubleshoot")
                    && last.contains("unverified")
                    && last.contains("not recorded")
                    && last.contains(&serial_of(returned)),
                "{n}: {completed:?}"
            );
            let files = traces_of(dir.path(), n, 1).await;
            assert_eq!(files.len(), 1, "{files:?}");
            let file = file_name(&files[0]);
            assert!(file.starts_with(&format!("{n}-unverified-")), "{file}");
            let text = std::fs::read_to_string(&files[0]).unwrap();
            assert!(text.contains("UNVERIFIED"), "{text}");
            assert_eq!(pem_from_begin_line(&text).der(), returned.as_slice());
        }

        // The server's own outcome (a session paired in process over the
        // same store): Retrieved, of kind Unverified, for each; the record
        // is unchanged.
        for (n, credentials, returned) in &cases {
            let before = server.load(n);
            server.edit(n, schedule(Operation::Troubleshoot));
            let run = in_process(
                &server,
                PhoneConfig::new(*n, credentials.clone()).with_lsc(returned.clone()),
                LscProfile::default(),
                SystemTime::now(),
            )
            .await;
            match &run.server.kind {
                OutcomeKind::Retrieved(certs) => {
                    assert_eq!(certs.len(), 1, "{n}: {certs:?}");
                    assert_eq!(certs[0].0, RetrievedKind::Unverified, "{n}");
                    assert_eq!(&certs[0].1.der, returned, "{n}");
                }
                other => panic!("{n}: expected Retrieved, got {other:?}"),
            }
            let d = server.load(n);
            assert_eq!(d.lsc, before.lsc, "{n}");
            assert_eq!(d.mic, before.mic, "{n}");
        }

        // What verification does accept, for contrast: the LSC on record...
        server.edit(plain, schedule(Operation::Troubleshoot));
        let run = in_process(
            &server,
            PhoneConfig::new(plain, Credentials::NullString).with_lsc(lsc_plain.0.clone()),
            LscProfile::default(),
            SystemTime::now(),
        )
        .await;
        assert!(
            matches!(&run.server.kind, OutcomeKind::Retrieved(c)
                if c.len() == 1 && c[0].0 == RetrievedKind::Lsc),
            "{:?}",
            run.server
        );
        // ...and a trusted MIC of the device, which is then on record.
        let other_mic = mic_for(&manufacturer, other);
        server.edit(other, schedule(Operation::Troubleshoot));
        let run = in_process(
            &server,
            PhoneConfig::new(other, Credentials::NullString).with_lsc(other_mic.0.clone()),
            LscProfile::default(),
            SystemTime::now(),
        )
        .await;
        assert!(
            matches!(&run.server.kind, OutcomeKind::Retrieved(c)
                if c.len() == 1 && c[0].0 == RetrievedKind::Mic),
            "{:?}",
            run.server
        );
        let d = server.load(other);
        assert_eq!(d.mic.as_ref().unwrap().der, other_mic.0);
        assert_eq!(d.lsc.as_ref().unwrap().der, lsc_other.0);
        server.stop().await;
    })
    .await;
}

/// Troubleshoots `n` (enrolled first) with a phone that returns a
/// self-signed certificate named after the device whose subject (and so
/// issuer) holds line breaks, control characters and a whole PEM block.
/// Returns the certificate and the text of its trace file.
async fn trace_of_a_hostile_certificate(server: &Server, n: &str) -> (Vec<u8>, String) {
    let lsc = enrolled(server, n).await;
    let forged = CaCertificate::from_der(&lsc.0, "LSC").unwrap().pem();
    let organization = format!("Evil Corp\n{}", forged.trim_end());
    let unit = "bell\u{7} cr\r tab\t nul\u{0} del\u{7f} ls\u{2028}";
    let evil = self_signed(n, Some(&organization), Some(unit));
    let cert = CaCertificate::from_der(&evil, "evil").unwrap();
    assert_eq!(cert.common_name().as_deref(), Some(n));
    let subject = cert.subject();
    assert!(
        subject.contains("\n-----BEGIN CERTIFICATE-----\n"),
        "{subject:?}"
    );
    assert_eq!(cert.issuer(), subject, "self-signed");

    let before = server.load(n);
    troubleshoot(server, n, Credentials::NullString, &evil).await;
    let d = server.load(n);
    assert_eq!(d.lsc, before.lsc);
    assert_eq!(d.mic, before.mic);

    let files = traces_of(&server.root, n, 1).await;
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        file_name(&files[0]).starts_with(&format!("{n}-unverified-")),
        "{files:?}"
    );
    (evil, std::fs::read_to_string(&files[0]).unwrap())
}

/// A certificate's subject and issuer holding line breaks, control
/// characters and a PEM block are escaped in the trace file's comment
/// lines: the file holds exactly one certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_text_is_escaped_in_trace_files() {
    let dir = tempfile::tempdir().unwrap();
    bounded(async {
        let server = Server::start(dir.path()).await;
        let (evil, text) = trace_of_a_hostile_certificate(&server, "SEP0000000D0001").await;
        let subject = CaCertificate::from_der(&evil, "evil").unwrap().subject();
        let lines: Vec<&str> = text.lines().collect();

        // One certificate, and nothing but comments before it.
        let begins: Vec<usize> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.starts_with("-----BEGIN CERTIFICATE-----"))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(begins.len(), 1, "{text}");
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.starts_with("-----END CERTIFICATE-----"))
                .count(),
            1,
            "{text}"
        );
        assert!(
            lines[..begins[0]].iter().all(|l| l.starts_with("# ")),
            "{text}"
        );
        assert_eq!(pem_from_begin_line(&text).der(), evil.as_slice());

        // The subject and issuer lines hold the escaped text in full.
        let escaped = escape_text(&subject).into_owned();
        assert!(
            escaped.contains("Evil Corp\\n-----BEGIN CERTIFICATE-----\\n"),
            "{escaped}"
        );
        assert!(
            escaped.contains("bell\\u{7} cr\\r tab\\t nul\\u{0}"),
            "{escaped}"
        );
        assert!(escaped.contains("del\\u{7f} ls\\u{2028}"), "{escaped}");
        // In a trace, a run of five dashes is written `\u{2d}----` too, so
        // that no PEM reader stops at a boundary inside a comment.
        let in_trace = escaped.replace("-----", "\\u{2d}----");
        assert!(!in_trace.contains("-----"));
        let subject_line = format!("# subject: {in_trace}");
        let issuer_line = format!("# issuer: {in_trace}");
        assert!(lines.contains(&subject_line.as_str()), "{text}");
        assert!(lines.contains(&issuer_line.as_str()), "{text}");
        // No control character other than the line ends is left.
        assert!(
            text.chars()
                .all(|c| c == '\n' || !(c.is_control() || c == '\u{2028}')),
            "{text:?}"
        );
        server.stop().await;
    })
    .await;
}

/// The same trace file read back with capf-ca's own PEM reader (as the
/// troubleshoot test in enroll.rs reads traces): it must give the one
/// certificate the phone returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_files_of_hostile_certificates_stay_readable_by_capf_ca() {
    let dir = tempfile::tempdir().unwrap();
    bounded(async {
        let server = Server::start(dir.path()).await;
        let (evil, text) = trace_of_a_hostile_certificate(&server, "SEP0000000D0002").await;
        let all = CaCertificate::all_from_pem(&text, "trace");
        let all = all.unwrap_or_else(|e| panic!("the trace does not read back: {e}\n{text}"));
        assert_eq!(all.len(), 1, "{text}");
        assert_eq!(all[0].der(), evil.as_slice());
        server.stop().await;
    })
    .await;
}
