//! Crash safety: `capf serve` killed with SIGKILL at each step of an
//! enrollment, restarted on the same data directory, the phone retrying.
//! After every crash and retry: no committed state lost, nothing
//! duplicated, no serial issued twice, at most one certificate delivered
//! per completed install, and the authentication string used at most once.
//!
//! Steps: after authentication (the phone holds at KEY_GENERATE_REQUEST),
//! after the issued record (the phone holds at STORE_CERTIFICATE_REQUEST),
//! after the phone's confirmation (STORE_CERTIFICATE_RESPONSE written, the
//! server killed at once or a few milliseconds later: before, during or
//! after the completion commit and END_SESSION), and after END_SESSION.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use capf_auth::{AuthMode, AuthString, Operation};
use capf_ca::{EcCurve, KeySpec};
use capf_operations::phone::{PhoneConfig, PhoneOutcome, PhoneSuccess};
use capf_operations::{Device, DeviceName, OperatorStore};
use capf_server::PhoneClient;
use capf_store::SqliteStore;
use common::handset::{Ending, Script, run_scripted};
use common::{Serve, capf, open_store, phone_config, phone_tls, runtime};
use tokio::sync::oneshot;

const LIMIT: Duration = Duration::from_secs(30);
const STRING: &str = "123456";

/// `capf serve` on 127.0.0.1 (ephemeral port) with room for the phone's
/// retries; SIGKILLed when dropped.
fn start_serve(data: &Path, log: PathBuf) -> Serve {
    Serve::start_with(
        data,
        log,
        &["--listen", "127.0.0.1:0", "--max-per-address", "8"],
    )
}

fn init(data: &Path) {
    capf(data, &["init", "--key", "p256"]);
}

fn add_install(data: &Path, n: &str) {
    let mut d = Device::new(DeviceName::parse(n).unwrap(), AuthMode::AuthString);
    d.policy.rearm(STRING.parse::<AuthString>().unwrap());
    d.key = Some(KeySpec::Ec(EcCurve::P256));
    d.schedule(Operation::InstallUpgrade, None).unwrap();
    open_store(data)
        .insert(&d, std::time::SystemTime::now())
        .unwrap();
}

fn config(n: &str) -> PhoneConfig {
    phone_config(n, STRING)
}

/// A phone that stores the certificate, writes STORE_CERTIFICATE_RESPONSE,
/// says so on `confirmed`, and reads on to END_SESSION or the close.
/// Returns the certificate and the session outcome (success only if the
/// server's END_SESSION(1) arrived).
async fn confirming_phone(
    addr: String,
    tls: Arc<rustls::ClientConfig>,
    config: PhoneConfig,
    confirmed: oneshot::Sender<()>,
) -> (Option<Vec<u8>>, PhoneOutcome) {
    let script = Script {
        confirmed: Some(confirmed),
        ..Script::default()
    };
    match run_scripted(addr, tls, config, script).await {
        Ending::Finished { outcome, installed } => (installed.map(|i| i.0), outcome),
        ending @ Ending::HeldAtStore { .. } => panic!("not held at store: {ending:?}"),
    }
}

/// A normal phone run (bounded).
fn run_phone(
    rt: &tokio::runtime::Runtime,
    serve: &Serve,
    tls: &Arc<rustls::ClientConfig>,
    n: &str,
) -> PhoneOutcome {
    let client = PhoneClient::new((**tls).clone());
    rt.block_on(async { tokio::time::timeout(LIMIT, client.run(&serve.addr, config(n))).await })
        .unwrap_or_else(|_| panic!("phone timed out; log:\n{}", serve.log()))
        .unwrap()
        .outcome
}

fn installed_der(outcome: &PhoneOutcome) -> Option<Vec<u8>> {
    match outcome {
        PhoneOutcome::Succeeded(PhoneSuccess::Installed { certificate_der }) => {
            Some(certificate_der.to_vec())
        }
        _ => None,
    }
}

/// The device as the last crash left it: either the install completed
/// (LSC = the delivered certificate, string consumed) or it is still
/// pending with its string armed and nothing delivered. Returns whether it
/// completed.
fn consistent_state(data: &Path, n: &str) -> bool {
    let store = open_store(data);
    let name = DeviceName::parse(n).unwrap();
    let d = store.load(&name).unwrap().unwrap();
    let issued = store.issued_certificates(&name).unwrap();
    let delivered: Vec<_> = issued.iter().filter(|r| r.delivered).collect();
    let audit = store.audit_log(&name).unwrap();
    assert_eq!(
        audit.iter().filter(|e| e.event == "issued").count(),
        issued.len(),
        "one audit entry per issued certificate: {audit:?}"
    );
    assert_eq!(
        audit.iter().filter(|e| e.event == "delivered").count(),
        delivered.len()
    );
    match d.status_label().as_str() {
        "Install/Upgrade successful" => {
            assert_eq!(delivered.len(), 1, "{issued:?}");
            assert_eq!(d.lsc.as_ref().unwrap().der, delivered[0].certificate.der);
            assert!(d.policy.auth_string.is_none(), "the string is consumed");
            true
        }
        "Install/Upgrade pending" => {
            assert!(delivered.is_empty(), "{issued:?}");
            assert!(d.lsc.is_none());
            assert!(d.policy.auth_string.is_some(), "the string is still armed");
            false
        }
        other => panic!("{n}: unexpected state {other}"),
    }
}

/// Final checks once the device has enrolled: exactly one certificate
/// delivered, every serial in the database distinct, and the string
/// refused from now on.
fn assert_enrolled_once(
    rt: &tokio::runtime::Runtime,
    serve: &Serve,
    tls: &Arc<rustls::ClientConfig>,
    data: &Path,
    n: &str,
    phone_has: &[u8],
) {
    assert!(consistent_state(data, n), "{n} completed");
    let store = open_store(data);
    let d = store.load(&DeviceName::parse(n).unwrap()).unwrap().unwrap();
    assert_eq!(
        d.lsc.as_ref().unwrap().der,
        phone_has,
        "the LSC the phone holds"
    );
    all_serials_distinct(&store);
    let again = run_phone(rt, serve, tls, n);
    assert!(
        installed_der(&again).is_none() && !again.is_success(),
        "the string was used twice: {again:?}"
    );
    assert_eq!(
        open_store(data)
            .issued_certificates(&DeviceName::parse(n).unwrap())
            .unwrap()
            .len(),
        store
            .issued_certificates(&DeviceName::parse(n).unwrap())
            .unwrap()
            .len(),
        "nothing issued to a used string"
    );
}

fn all_serials_distinct(store: &SqliteStore) {
    let page = store
        .find(&capf_operations::DeviceQuery::default())
        .unwrap();
    let mut seen = HashSet::new();
    for d in &page.devices {
        for r in store.issued_certificates(&d.name).unwrap() {
            assert!(
                seen.insert(r.certificate.serial_hex.clone()),
                "serial {} issued twice",
                r.certificate.serial_hex
            );
        }
    }
}

/// Killed after authentication (KEY_GENERATE_REQUEST sent, the phone
/// generating): nothing issued, still pending; the retry enrolls.
#[test]
fn sigkill_after_authentication_then_the_retry_enrolls_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    init(&data);
    let n = "SEP0000000CA001";
    add_install(&data, n);
    let rt = runtime();
    let tls = phone_tls(&data);
    let mut serve = start_serve(&data, tmp.path().join("serve-1.log"));
    let (asked_tx, asked_rx) = oneshot::channel();
    let (go_tx, go_rx) = oneshot::channel();
    let phone = rt.spawn(run_scripted(
        serve.addr.clone(),
        tls.clone(),
        config(n),
        Script {
            key_requested: Some(asked_tx),
            generate_when: Some(go_rx),
            ..Script::default()
        },
    ));
    rt.block_on(async { tokio::time::timeout(LIMIT, asked_rx).await })
        .unwrap()
        .unwrap();
    serve.sigkill();
    drop(go_tx);
    match rt.block_on(async { tokio::time::timeout(LIMIT, phone).await }) {
        Ok(Ok(Ending::Finished {
            installed: None, ..
        })) => {}
        other => panic!("{other:?}"),
    }
    assert!(!consistent_state(&data, n));
    assert!(
        open_store(&data)
            .issued_certificates(&DeviceName::parse(n).unwrap())
            .unwrap()
            .is_empty()
    );

    let serve = start_serve(&data, tmp.path().join("serve-2.log"));
    let der = installed_der(&run_phone(&rt, &serve, &tls, n)).expect("the retry installs");
    assert_enrolled_once(&rt, &serve, &tls, &data, n, &der);
}

/// Killed after the issued record (the certificate sent, not confirmed):
/// the record is there, undelivered; the retry issues a new serial and
/// completes; exactly one delivered.
#[test]
fn sigkill_after_the_issued_record_then_the_retry_enrolls_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    init(&data);
    let n = "SEP0000000CA002";
    add_install(&data, n);
    let rt = runtime();
    let tls = phone_tls(&data);
    let mut serve = start_serve(&data, tmp.path().join("serve-1.log"));
    let (cert_tx, cert_rx) = oneshot::channel();
    let (release, held) = oneshot::channel::<()>();
    let phone = rt.spawn(run_scripted(
        serve.addr.clone(),
        tls.clone(),
        config(n),
        Script {
            hold_at_store: Some((cert_tx, held)),
            ..Script::default()
        },
    ));
    let first = rt
        .block_on(async { tokio::time::timeout(LIMIT, cert_rx).await })
        .unwrap()
        .unwrap();
    serve.sigkill();
    drop(release);
    let _ = rt.block_on(async { tokio::time::timeout(LIMIT, phone).await });
    assert!(!consistent_state(&data, n));
    let issued = open_store(&data)
        .issued_certificates(&DeviceName::parse(n).unwrap())
        .unwrap();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].certificate.der, first);

    let serve = start_serve(&data, tmp.path().join("serve-2.log"));
    let der = installed_der(&run_phone(&rt, &serve, &tls, n)).expect("the retry installs");
    assert_ne!(der, first);
    assert_enrolled_once(&rt, &serve, &tls, &data, n, &der);
}

/// Killed after the phone's confirmation, at growing delays (0 to 20 ms
/// after STORE_CERTIFICATE_RESPONSE was written: before the server read
/// it, while it commits, around END_SESSION), and after END_SESSION.
/// Whatever the instant: if the phone heard END_SESSION(1), the install is
/// durable; otherwise the device is either completed or still pending
/// (never half-done), and a retry ends with exactly one delivered
/// certificate that the phone holds, and the string used once.
#[test]
fn sigkill_around_the_confirmation_never_leaves_half_done_state() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    init(&data);
    let rt = runtime();
    let tls = phone_tls(&data);
    // Delays in microseconds; `None`: kill only after END_SESSION.
    let delays: [Option<u64>; 9] = [
        Some(0),
        Some(200),
        Some(500),
        Some(1_000),
        Some(2_000),
        Some(5_000),
        Some(10_000),
        Some(20_000),
        None,
    ];
    let (mut completed_at_crash, mut pending_at_crash) = (0, 0);
    for (i, delay) in delays.iter().enumerate() {
        let n = format!("SEP0000000CB{i:03}");
        add_install(&data, &n);
        let mut serve = start_serve(&data, tmp.path().join(format!("serve-{i}-a.log")));
        let (confirmed_tx, confirmed_rx) = oneshot::channel();
        let phone = rt.spawn(confirming_phone(
            serve.addr.clone(),
            tls.clone(),
            config(&n),
            confirmed_tx,
        ));
        rt.block_on(async { tokio::time::timeout(LIMIT, confirmed_rx).await })
            .unwrap_or_else(|_| panic!("{n}: no confirmation; log:\n{}", serve.log()))
            .unwrap();
        let (held, heard) = match delay {
            Some(us) => {
                std::thread::sleep(Duration::from_micros(*us));
                serve.sigkill();
                rt.block_on(async { tokio::time::timeout(LIMIT, phone).await })
                    .unwrap()
                    .unwrap()
            }
            None => {
                let r = rt
                    .block_on(async { tokio::time::timeout(LIMIT, phone).await })
                    .unwrap()
                    .unwrap();
                serve.sigkill();
                r
            }
        };
        let held = held.expect("the phone stored a certificate");
        let completed = consistent_state(&data, &n);
        if heard.is_success() {
            assert!(
                completed,
                "{n}: END_SESSION(1) reached the phone before the commit"
            );
        }
        if delay.is_none() {
            assert!(heard.is_success() && completed);
        }
        if completed {
            completed_at_crash += 1;
        } else {
            pending_at_crash += 1;
        }

        let serve = start_serve(&data, tmp.path().join(format!("serve-{i}-b.log")));
        let phone_has = if completed {
            held
        } else {
            installed_der(&run_phone(&rt, &serve, &tls, &n))
                .unwrap_or_else(|| panic!("{n}: the retry did not install; log:\n{}", serve.log()))
        };
        assert_enrolled_once(&rt, &serve, &tls, &data, &n, &phone_has);
    }
    eprintln!(
        "crashes around the confirmation: {completed_at_crash} found completed, \
         {pending_at_crash} found pending after restart"
    );
    all_serials_distinct(&open_store(&data));
}
