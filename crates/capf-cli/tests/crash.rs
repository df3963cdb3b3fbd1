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

#[path = "../../capf-server/tests/common/handset.rs"]
mod handset;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant, SystemTime};

use bytes::BytesMut;
use capf_auth::{AuthMode, AuthString, Operation};
use capf_ca::{CaCertificate, EcCurve, KeySpec, PrivateKey};
use capf_operations::capf_wire::{FrameCodec, Message};
use capf_operations::phone::{
    Credentials, KeyGenFailure, PhoneConfig, PhoneEvent, PhoneOutcome, PhoneSession, PhoneSuccess,
};
use capf_operations::{Device, DeviceName, DeviceStore};
use capf_server::{DataDir, PhoneClient};
use capf_store::SqliteStore;
use handset::{Ending, Script, run_scripted};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::TlsConnector;

const LIMIT: Duration = Duration::from_secs(30);
const STRING: &str = "123456";

/// A running `capf serve`, SIGKILLed when dropped.
struct Serve {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Serve {
    fn start(data: &Path, log: PathBuf) -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_capf"))
            .arg("--data-dir")
            .arg(data)
            .args(["serve", "--listen", "127.0.0.1:0", "--max-per-address", "8"])
            .env_remove("CAPF_DATA_DIR")
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let (tx, rx): (_, Receiver<String>) = channel();
        let pipe = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + LIMIT;
        let addr = loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.starts_with("listening on ") => {
                    break line.trim_start_matches("listening on ").trim().to_owned();
                }
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => panic!(
                    "capf serve did not start; log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ),
            }
        };
        Serve { child, addr, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, and wait (bounded) until it is gone.
    fn sigkill(&mut self) {
        let _ = self.child.kill();
        let deadline = Instant::now() + LIMIT;
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "capf serve survived SIGKILL");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn init(data: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_capf"))
        .arg("--data-dir")
        .arg(data)
        .args(["init", "--key", "p256"])
        .env_remove("CAPF_DATA_DIR")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

fn open_store(data: &Path) -> SqliteStore {
    SqliteStore::open(data.join(DataDir::DATABASE)).unwrap()
}

fn add_install(data: &Path, n: &str) {
    let mut d = Device::new(DeviceName::parse(n).unwrap(), AuthMode::AuthString);
    d.policy.rearm(STRING.parse::<AuthString>().unwrap());
    d.key = Some(KeySpec::Ec(EcCurve::P256));
    d.schedule(Operation::InstallUpgrade, None).unwrap();
    open_store(data).insert(&d).unwrap();
}

fn phone_tls(data: &Path) -> Arc<rustls::ClientConfig> {
    let pem = std::fs::read_to_string(data.join(capf_ca::CERT_FILE)).unwrap();
    let capf = CaCertificate::from_pem(&pem, "CAPF certificate").unwrap();
    Arc::new(capf_server::phone_client_config(vec![capf]).unwrap())
}

fn config(n: &str) -> PhoneConfig {
    PhoneConfig::new(
        n,
        Credentials::AuthString(STRING.parse::<AuthString>().unwrap()),
    )
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
    let mut confirmed = Some(confirmed);
    let tcp = TcpStream::connect(&addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let mut stream = TlsConnector::from(tls)
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    let mut session = PhoneSession::new(config, SystemTime::now());
    let mut codec = FrameCodec::new();
    let mut inbound = BytesMut::new();
    let mut outbound = BytesMut::new();
    let mut key = None;
    let mut certificate = None;
    loop {
        let mut wrote = false;
        while let Some(t) = session.poll_transmit() {
            outbound.clear();
            t.encode(&mut outbound).unwrap();
            if stream.write_all(&outbound).await.is_err() {
                session.connection_lost(SystemTime::now());
                break;
            }
            wrote = true;
        }
        let _ = stream.flush().await;
        if wrote
            && certificate.is_some()
            && let Some(tx) = confirmed.take()
        {
            let _ = tx.send(());
        }
        if let Some(event) = session.poll_event() {
            match event {
                PhoneEvent::GenerateKey(spec) => {
                    let k = PrivateKey::generate(spec).unwrap();
                    let spki = k
                        .public_key_der()
                        .map_err(|e| KeyGenFailure::new(e.to_string()));
                    key = Some(k);
                    session.key_generated(SystemTime::now(), spki);
                }
                PhoneEvent::StoreCertificate { certificate_der } => {
                    assert!(key.is_some());
                    certificate = Some(certificate_der.to_vec());
                    session.certificate_stored(SystemTime::now(), true);
                }
                PhoneEvent::DeleteCertificate => {
                    session.certificate_deleted(SystemTime::now(), false)
                }
                PhoneEvent::Finished => {}
            }
            continue;
        }
        if session.is_finished() {
            break;
        }
        match codec.decode(&mut inbound) {
            Ok(Some(frame)) => {
                match Message::from_frame(&frame) {
                    Ok(m) => session.handle_message(SystemTime::now(), m, frame.session_id),
                    Err(e) => session.malformed_message(SystemTime::now(), &e),
                }
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                session.malformed_message(SystemTime::now(), &e);
                continue;
            }
        }
        match tokio::time::timeout(LIMIT, stream.read_buf(&mut inbound)).await {
            Ok(Ok(0) | Err(_)) => session.connection_lost(SystemTime::now()),
            Ok(Ok(_)) => {}
            Err(_) => panic!("the server neither answered nor closed"),
        }
    }
    (certificate, session.outcome().cloned().unwrap())
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
    let mut serve = Serve::start(&data, tmp.path().join("serve-1.log"));
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

    let serve = Serve::start(&data, tmp.path().join("serve-2.log"));
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
    let mut serve = Serve::start(&data, tmp.path().join("serve-1.log"));
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

    let serve = Serve::start(&data, tmp.path().join("serve-2.log"));
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
        let mut serve = Serve::start(&data, tmp.path().join(format!("serve-{i}-a.log")));
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

        let serve = Serve::start(&data, tmp.path().join(format!("serve-{i}-b.log")));
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
