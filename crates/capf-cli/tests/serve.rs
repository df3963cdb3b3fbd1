//! The `capf` binary end to end: `capf init`, `capf device add`, `capf
//! serve` on 127.0.0.1 (ephemeral port) in a temporary data directory, a
//! phone over real TLS; SIGKILL between issuing and the phone's
//! confirmation, restart, retry; SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use capf_operations::phone::{PhoneConfig, PhoneOutcome, PhoneSuccess};
use capf_operations::{DeviceName, OperatorStore, SessionStore};
use capf_server::PhoneClient;
use common::handset::{Ending, Script, run_scripted};
use common::{Serve, capf, open_store, phone_config, phone_tls, runtime};
use tokio::sync::oneshot;

const DEVICE: &str = "SEP001122334455";
/// Longest wait for anything the server or a phone does.
const LIMIT: Duration = Duration::from_secs(60);

fn config() -> PhoneConfig {
    phone_config(DEVICE, "123456")
}

#[test]
fn sigkill_after_issuing_then_the_retry_completes_the_install_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    capf(&data, &["init", "--key", "p256"]);
    capf(
        &data,
        &[
            "device",
            "add",
            DEVICE,
            "--operation",
            "install",
            "--auth-string",
            "123456",
            "--key",
            "p256",
        ],
    );
    let name = DeviceName::parse(DEVICE).unwrap();
    let rt = runtime();
    let tls = phone_tls(&data);

    // First server: the phone gets its certificate and stops there,
    // without confirming, with the connection still open.
    let mut serve = Serve::start(&data, tmp.path().join("serve-1.log"));
    let (cert_tx, cert_rx) = oneshot::channel();
    let (release, held) = oneshot::channel::<()>();
    let phone = rt.spawn(run_scripted(
        serve.addr.clone(),
        tls.clone(),
        config(),
        Script {
            hold_at_store: Some((cert_tx, held)),
            ..Script::default()
        },
    ));
    let first_der = rt
        .block_on(async { tokio::time::timeout(LIMIT, cert_rx).await })
        .unwrap_or_else(|_| panic!("no certificate reached the phone; log:\n{}", serve.log()))
        .unwrap();

    // The certificate was recorded before it was sent.
    {
        let store = open_store(&data);
        let issued = store.issued_certificates(&name).unwrap();
        assert_eq!(issued.len(), 1);
        assert_eq!(issued[0].certificate.der, first_der);
        assert!(!issued[0].delivered);
    }

    let status = serve.sigkill();
    assert!(!status.success(), "killed, not exited: {status:?}");
    drop(release); // the phone drops its connection only now
    match rt.block_on(async { tokio::time::timeout(LIMIT, phone).await }) {
        Ok(Ok(Ending::HeldAtStore { certificate_der })) => assert_eq!(certificate_der, first_der),
        other => panic!("{other:?}"),
    }

    // Nothing was marked done: the operation is still pending and the
    // string still armed. The dead server's lease on the device is still in
    // the database (it lasts longer than key generation may take): the
    // restarted server must not be kept out by it.
    {
        let store = open_store(&data);
        match store
            .begin_blocking(&name, std::time::SystemTime::now(), Duration::from_secs(1))
            .map(|(lease, _)| lease)
        {
            Err(capf_operations::OperationsError::DeviceBusy { .. }) => {}
            other => panic!("expected the dead server's lease to be held: {other:?}"),
        }
        let d = store.load(&name).unwrap().unwrap();
        assert_eq!(d.status_label(), "Install/Upgrade pending");
        assert!(d.policy.auth_string.is_some());
        assert!(d.lsc.is_none());
    }

    // Second server on the same directory: the phone's retry completes.
    let mut serve = Serve::start(&data, tmp.path().join("serve-2.log"));
    let client = PhoneClient::new((*tls).clone());
    let run = rt
        .block_on(async { tokio::time::timeout(LIMIT, client.run(&serve.addr, config())).await })
        .unwrap()
        .unwrap();
    let second_der = match &run.outcome {
        PhoneOutcome::Succeeded(PhoneSuccess::Installed { certificate_der }) => {
            certificate_der.to_vec()
        }
        other => panic!(
            "the retry after the restart did not install: {other:?}; log:\n{}",
            serve.log()
        ),
    };
    assert_ne!(second_der, first_der);

    // A further attempt with the same string changes nothing.
    let again = rt
        .block_on(async { tokio::time::timeout(LIMIT, client.run(&serve.addr, config())).await })
        .unwrap()
        .unwrap();
    assert!(!matches!(
        again.outcome,
        PhoneOutcome::Succeeded(PhoneSuccess::Installed { .. })
    ));

    let (status, lines) = serve.sigterm();
    assert!(status.success(), "{status:?}; log:\n{}", serve.log());
    assert!(lines.iter().any(|l| l.ends_with("stopped")), "{lines:?}");

    // Exactly one install: two certificates issued, the second delivered.
    let store = open_store(&data);
    let d = store.load(&name).unwrap().unwrap();
    assert_eq!(d.status_label(), "Install/Upgrade successful");
    assert_eq!(d.lsc.as_ref().unwrap().der, second_der);
    assert!(d.policy.auth_string.is_none());
    let history = store.certificate_history(&name).unwrap();
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!(history[0].record.certificate.der, first_der);
    assert_eq!(history[1].record.certificate.der, second_der);
    assert!(!history[0].record.delivered && history[0].delivered_at.is_none());
    assert!(history[1].record.delivered && history[1].delivered_at.is_some());
    let issued = store.issued_certificates(&name).unwrap();
    assert_eq!(issued.iter().filter(|r| r.delivered).count(), 1);
    let audit = store.audit_log(&name).unwrap();
    let issued_entries: Vec<_> = audit.iter().filter(|e| e.event == "issued").collect();
    assert_eq!(issued_entries.len(), 2, "{audit:?}");
    for h in &history {
        let serial = &h.record.certificate.serial_hex;
        assert!(
            issued_entries
                .iter()
                .any(|e| e.detail.contains(serial.as_str())),
            "serial {serial} is in the audit log: {audit:?}"
        );
    }
    let delivered: Vec<_> = audit.iter().filter(|e| e.event == "delivered").collect();
    assert_eq!(delivered.len(), 1, "{audit:?}");
    assert!(
        delivered[0]
            .detail
            .contains(&history[1].record.certificate.serial_hex)
    );
}

#[test]
fn sigterm_stops_serve_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // An empty directory: `capf serve` initialises it first.
    let mut serve = Serve::start(&data, tmp.path().join("serve.log"));
    assert!(capf_ca::CapfIdentity::exists(&data));
    // One session (an unknown device) first, so that stopping happens with
    // a session behind it.
    let client = PhoneClient::new((*phone_tls(&data)).clone());
    let rt = runtime();
    let run = rt
        .block_on(async { tokio::time::timeout(LIMIT, client.run(&serve.addr, config())).await })
        .unwrap()
        .unwrap();
    assert!(!run.outcome.is_success(), "{:?}", run.outcome);
    let (status, lines) = serve.sigterm();
    assert!(status.success(), "{status:?}; log:\n{}", serve.log());
    assert_eq!(status.code(), Some(0));
    assert!(lines.iter().any(|l| l.ends_with("stopped")), "{lines:?}");
}

#[test]
fn sigterm_right_after_listening_on_stops_serve_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    capf(&data, &["init", "--key", "p256"]);
    for i in 0..20 {
        let mut serve = Serve::start(&data, tmp.path().join(format!("serve-{i}.log")));
        let (status, lines) = serve.sigterm();
        assert_eq!(
            status.code(),
            Some(0),
            "start {i}: {status:?}; log:\n{}",
            serve.log()
        );
        assert!(
            lines.iter().any(|l| l.ends_with("stopped")),
            "start {i}: {lines:?}"
        );
    }
}

/// `--log-format json` writes one JSON object per line on standard error,
/// and `--metrics-listen` serves metrics and a health check.
#[test]
fn serve_logs_json_and_serves_metrics_and_health() {
    use std::io::{Read, Write};
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    capf(&data, &["init", "--key", "p256"]);
    let mut serve = Serve::start_env(
        &data,
        tmp.path().join("serve.log"),
        &[
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ],
        "info",
    );
    let line = serve.wait_for_line("metrics on http://");
    let at = line.find("http://").unwrap() + "http://".len();
    let observer: String = line[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | ':'))
        .collect();
    let get = |path: &str| {
        let mut tcp = std::net::TcpStream::connect(&observer).unwrap();
        tcp.set_read_timeout(Some(LIMIT)).unwrap();
        write!(
            tcp,
            "GET {path} HTTP/1.1\r\nHost: capf\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        tcp.read_to_string(&mut response).unwrap();
        response
    };
    // The health endpoint answers 503 until the listeners run (a moment
    // after they are bound and logged), then 200.
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let health = get("/health");
        if health.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(health.starts_with("HTTP/1.1 503"), "{health}");
        assert!(
            std::time::Instant::now() < deadline,
            "not healthy in time: {health}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let metrics = get("/metrics");
    assert!(metrics.contains("capf_connections_open"), "{metrics}");
    let (status, _) = serve.sigterm();
    assert!(status.success());
    let log = serve.log();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(value["timestamp"].is_string(), "{line}");
    }
}
