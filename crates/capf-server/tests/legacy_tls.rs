//! TLS 1.0 for 7900-series phones: a legacy listener completes an install
//! over TLS 1.0 with AES128-SHA; the default (rustls) listener refuses
//! TLS 1.0.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::SystemTime;

use capf_ca::{CapfIdentity, EcCurve, IdentityParams, KeySpec};
use capf_operations::{DeviceStore, MemoryStore, OperatorStore, ServerConfig, ServiceParameters};
use capf_server::{CapfServer, ServerOptions};

fn localhost() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Runs `openssl s_client` forcing TLS 1.0 with AES128-SHA; returns its
/// output and whether the handshake completed.
fn s_client_tls1(addr: SocketAddr) -> (String, bool) {
    let out = Command::new("timeout")
        .args(["10", "openssl", "s_client", "-connect"])
        .arg(addr.to_string())
        .args(["-tls1", "-cipher", "AES128-SHA@SECLEVEL=0"])
        .stdin(Stdio::null())
        .output()
        .expect("openssl s_client runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let ok = text.contains("Cipher is AES128-SHA") || text.contains("Cipher    : AES128-SHA");
    (text, ok)
}

async fn start(
    identity: &CapfIdentity,
    store: Arc<dyn DeviceStore>,
    options: ServerOptions,
) -> (Vec<(SocketAddr, bool)>, tokio::sync::oneshot::Sender<()>) {
    let issuer = identity.issuer().unwrap();
    let config = ServerConfig::new(
        ServiceParameters {
            default_key: KeySpec::Ec(EcCurve::P256),
            ..Default::default()
        },
        capf_ca::TrustStore::for_issuer(&issuer),
    );
    let server = CapfServer::bind(identity, issuer, store, config, options)
        .await
        .unwrap();
    let addrs = server.listening();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    (addrs, stop)
}

#[tokio::test]
async fn the_default_listener_refuses_tls_1_0() {
    let identity = CapfIdentity::generate(
        &IdentityParams {
            key: KeySpec::Ec(EcCurve::P256),
            ..Default::default()
        },
        SystemTime::now(),
    )
    .unwrap();
    let options = ServerOptions {
        listen: vec![localhost()],
        ..ServerOptions::default()
    };
    let (addrs, _stop) = start(&identity, Arc::new(MemoryStore::new()), options).await;
    let addr = addrs[0].0;
    let (text, ok) = tokio::task::spawn_blocking(move || s_client_tls1(addr))
        .await
        .unwrap();
    assert!(!ok, "TLS 1.0 accepted by the rustls listener:\n{text}");
}

#[cfg(feature = "legacy-tls")]
#[tokio::test]
async fn an_install_completes_over_tls_1_0_aes128_sha() {
    use capf_auth::{AuthMode, Operation};
    use capf_operations::phone::{Credentials, PhoneConfig, PhoneOutcome, PhoneSuccess};
    use capf_operations::{Device, DeviceName};
    use capf_server::PhoneClient;
    use std::time::Duration;

    // Static-RSA suites need an RSA CAPF key, as 7900-series phones use.
    let identity = CapfIdentity::generate(&IdentityParams::default(), SystemTime::now()).unwrap();
    let store = MemoryStore::new();
    let name = DeviceName::parse("SEP001122334455").unwrap();
    let mut device = Device::new(name.clone(), AuthMode::NullString);
    device.schedule(Operation::InstallUpgrade, None).unwrap();
    store.insert(&device, std::time::SystemTime::now()).unwrap();
    let store = Arc::new(store);
    let options = ServerOptions {
        listen: vec![localhost()],
        legacy_listen: vec![localhost()],
        ..ServerOptions::default()
    };
    let (addrs, stop) = start(&identity, store.clone(), options).await;
    let legacy = addrs.iter().find(|(_, l)| *l).unwrap().0;
    let modern = addrs.iter().find(|(_, l)| !*l).unwrap().0;

    // The legacy listener negotiates TLS 1.0 AES128-SHA with OpenSSL's client...
    let (text, ok) = tokio::task::spawn_blocking(move || s_client_tls1(legacy))
        .await
        .unwrap();
    assert!(ok, "legacy listener refused TLS 1.0 AES128-SHA:\n{text}");
    // ...and the modern one next to it still refuses it.
    let (text, ok) = tokio::task::spawn_blocking(move || s_client_tls1(modern))
        .await
        .unwrap();
    assert!(!ok, "TLS 1.0 accepted by the rustls listener:\n{text}");

    // A phone that speaks only TLS 1.0 with AES128-SHA enrolls.
    let client = PhoneClient::legacy(vec![identity.certificate().clone()]);
    let run = tokio::time::timeout(
        Duration::from_secs(60),
        client.run(
            &legacy.to_string(),
            PhoneConfig::new(name.as_str(), Credentials::NullString),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        matches!(
            run.outcome,
            PhoneOutcome::Succeeded(PhoneSuccess::Installed { .. })
        ),
        "{:?}",
        run.outcome
    );
    let device = store.load(&name).unwrap().unwrap();
    assert_eq!(device.status_label(), "Install/Upgrade successful");
    let _ = stop.send(());
}
