//! A whole enrollment in memory: a server session and a phone session
//! paired, no TLS, no disk (MemoryStore), P-256 CAPF key, phone keys
//! generated beforehand. Measures the protocol and issuance path alone.
//! Target (issue 9): 8,000 or more per second on one core.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use capf_auth::{AuthMode, Operation};
use capf_ca::{CapfIdentity, EcCurve, IdentityParams, Issuer, KeySpec, PrivateKey, TrustStore};
use capf_operations::phone::{Credentials, PhoneConfig, PhoneEvent, PhoneSession};
use capf_operations::{
    Device, DeviceEdit, DeviceName, MemoryStore, OperatorStore, ServerConfig, ServerSession,
    ServiceParameters, SessionDriver,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// One install between a fresh server session and a fresh phone session.
/// Returns whether it succeeded.
fn enroll(
    store: &MemoryStore,
    issuer: &Issuer,
    config: &Arc<ServerConfig>,
    name: &str,
    spki: &[u8],
    now: SystemTime,
) -> bool {
    let mut server = ServerSession::new(1, config.clone(), now);
    let mut driver = SessionDriver::new(store, issuer, Duration::from_secs(60));
    let mut phone = PhoneSession::new(PhoneConfig::new(name, Credentials::NullString), now);
    for _ in 0..32 {
        driver.service(&mut server, now);
        while let Some(t) = server.poll_transmit() {
            phone.handle_message(now, t.session_id, t.message);
        }
        while let Some(event) = phone.poll_event() {
            match event {
                PhoneEvent::GenerateKey(_) => phone.key_generated(now, Ok(spki.to_vec())),
                PhoneEvent::StoreCertificate { .. } => phone.certificate_stored(now, true),
                PhoneEvent::DeleteCertificate => phone.certificate_deleted(now, false),
                PhoneEvent::Finished => {}
            }
        }
        while let Some(t) = phone.poll_transmit() {
            server.handle_message(now, t.session_id, t.message);
        }
        if server.is_finished() && phone.is_finished() {
            return server.outcome().is_some_and(|o| o.is_success());
        }
    }
    false
}

fn bench(c: &mut Criterion) {
    let now = SystemTime::now();
    let p256 = KeySpec::Ec(EcCurve::P256);
    let Ok(identity) = CapfIdentity::generate(
        &IdentityParams {
            key: p256,
            ..Default::default()
        },
        now,
    ) else {
        return;
    };
    let Ok(issuer) = identity.issuer() else {
        return;
    };
    let config = Arc::new(ServerConfig::new(
        ServiceParameters {
            default_key: p256,
            ..ServiceParameters::default()
        },
        TrustStore::for_issuer(&issuer),
    ));
    // A pool of phone keys, made once.
    let keys: Vec<Vec<u8>> = (0..64)
        .filter_map(|_| PrivateKey::generate(p256).ok()?.public_key_der().ok())
        .collect();
    let store = MemoryStore::new();
    let names: Vec<String> = (0..1024u32).map(|i| format!("SEP{:012X}", i)).collect();
    for n in &names {
        let Ok(name) = DeviceName::parse(n) else {
            return;
        };
        let mut d = Device::new(name, AuthMode::NullString);
        if d.schedule(Operation::InstallUpgrade, None).is_err()
            || store.insert(&d, SystemTime::now()).is_err()
        {
            return;
        }
    }
    let reschedule = DeviceEdit {
        operation: Some(Operation::InstallUpgrade),
        ..DeviceEdit::default()
    };
    let mut group = c.benchmark_group("enrollment_in_memory");
    group.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    group.bench_function("install_null_string_p256_capf_p256_phone", |b| {
        b.iter(|| {
            i = (i + 1) % names.len();
            let name = &names[i];
            // Re-arm the operation (the previous iteration completed it).
            if let Ok(dn) = DeviceName::parse(name) {
                let _ = store.modify(&dn, &reschedule, SystemTime::now());
            }
            assert!(enroll(
                &store,
                &issuer,
                &config,
                name,
                &keys[i % keys.len()],
                now
            ));
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
