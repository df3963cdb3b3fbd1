#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The facade composes the layers for an embedder: in memory and over TLS.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use capf::auth::{AuthMode, AuthString, Operation};
use capf::ca::{CaCertificate, CapfIdentity, EcCurve, IdentityParams, KeySpec, PrivateKey};
use capf::operations::phone::{Credentials, PhoneConfig, PhoneEvent, PhoneSession};
use capf::operations::{
    Device, DeviceName, DeviceStore, MemoryStore, OperatorStore, ServiceParameters,
};
use capf::{Capf, CapfError};

fn identity() -> CapfIdentity {
    CapfIdentity::generate(
        &IdentityParams {
            key: KeySpec::Ec(EcCurve::P256),
            ..Default::default()
        },
        SystemTime::now(),
    )
    .unwrap()
}

/// A device with an install pending, authenticated by `digits`.
fn schedule(store: &dyn DeviceStore, name: &DeviceName, digits: &str) {
    let mut device = Device::new(name.clone(), AuthMode::AuthString);
    device.key = Some(KeySpec::Ec(EcCurve::P256));
    device.policy.rearm(digits.parse::<AuthString>().unwrap());
    device.schedule(Operation::InstallUpgrade, None).unwrap();
    store.insert(&device, SystemTime::now()).unwrap();
}

#[test]
fn the_builder_says_what_is_missing() {
    let err = Capf::builder()
        .store(Arc::new(MemoryStore::new()))
        .build()
        .unwrap_err();
    assert!(
        matches!(err, CapfError::Missing { what: "identity" }),
        "{err}"
    );
    let err = Capf::builder().identity(identity()).build().unwrap_err();
    assert!(err.to_string().contains(".store("), "{err}");
}

#[test]
fn an_in_memory_session_installs_an_lsc_with_the_configured_validity() {
    let now = SystemTime::now();
    let store = Arc::new(MemoryStore::new());
    let params = ServiceParameters {
        lsc_validity_years: 2,
        ..Default::default()
    };
    let capf = Capf::builder()
        .identity(identity())
        .store(store.clone())
        .params(params)
        .build()
        .unwrap();
    let name = DeviceName::parse("SEP001122334455").unwrap();
    schedule(&*store, &name, "13579246");

    let mut server = capf.new_session(capf.next_session_id(), now);
    let mut driver = capf.driver();
    let mut phone = PhoneSession::new(
        PhoneConfig::new(
            name.as_str(),
            Credentials::AuthString("13579246".parse().unwrap()),
        ),
        now,
    );
    let mut lsc = None;
    for _ in 0..50 {
        driver.service(&mut server, now);
        while let Some(t) = server.poll_transmit() {
            phone.handle_message(now, t.session_id, t.message);
        }
        while let Some(event) = phone.poll_event() {
            match event {
                PhoneEvent::GenerateKey(spec) => {
                    let key = PrivateKey::generate(spec).unwrap();
                    phone.key_generated(now, Ok(key.public_key_der().unwrap()));
                }
                PhoneEvent::StoreCertificate { certificate_der } => {
                    lsc = Some(certificate_der.to_vec());
                    phone.certificate_stored(now, true);
                }
                PhoneEvent::DeleteCertificate => phone.certificate_deleted(now, false),
                PhoneEvent::Finished => {}
            }
        }
        while let Some(t) = phone.poll_transmit() {
            server.handle_message(now, t.session_id, t.message);
        }
        if server.is_finished() && phone.is_finished() {
            break;
        }
    }
    driver.release();
    let device = store.load(&name).unwrap().unwrap();
    assert_eq!(device.lsc_status(), "Installed");
    let lsc = CaCertificate::from_der(&lsc.unwrap(), "lsc").unwrap();
    assert_eq!(lsc.issuer(), capf.identity().certificate().subject());
    let years = lsc
        .not_after()
        .duration_since(lsc.not_before())
        .unwrap()
        .as_secs()
        / (365 * 86_400);
    assert_eq!(years, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_enrolls_a_phone_over_tls() {
    let store = Arc::new(MemoryStore::new());
    let capf = Capf::builder()
        .identity(identity())
        .store(store.clone())
        .build()
        .unwrap();
    let name = DeviceName::parse("SEP0011223344AA").unwrap();
    schedule(&*store, &name, "24681357");

    let options = capf::server::ServerOptions {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        ..Default::default()
    };
    let server = capf.bind(options).await.unwrap();
    let addr = server.local_addrs()[0];
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));

    let tls =
        capf::server::phone_client_config(vec![capf.identity().certificate().clone()]).unwrap();
    let client = capf::server::PhoneClient::new(tls).with_connect_timeout(Duration::from_secs(10));
    let config = PhoneConfig::new(
        name.as_str(),
        Credentials::AuthString("24681357".parse().unwrap()),
    );
    let run = client.run(&addr.to_string(), config).await.unwrap();
    assert!(run.installed.is_some(), "{:?}", run.outcome);
    let _ = stop.send(());
    running.await.unwrap().unwrap();
    assert_eq!(
        store.load(&name).unwrap().unwrap().lsc_status(),
        "Installed"
    );
}
