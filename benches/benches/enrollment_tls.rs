//! End-to-end enrollments over loopback TLS: an in-process `CapfServer` on
//! 127.0.0.1 over a durable `SqliteStore` in a temporary directory (WAL,
//! synchronous=FULL, group commit), P-256 CAPF key, auth-string devices,
//! phones through `PhoneClient` with pre-made P-256 keys, 16 at once.
//! Each iteration is one enrollment: Throughput::Elements gives
//! enrollments per second (both processes share the machine's cores).

#![allow(clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use capf_auth::{AuthMode, AuthString, Operation};
use capf_ca::{CapfIdentity, EcCurve, IdentityParams, KeySpec, PrivateKey, TrustStore};
use capf_operations::phone::{Credentials, PhoneConfig, PhoneOutcome, PhoneSuccess};
use capf_operations::{
    Device, DeviceEdit, DeviceName, OperatorStore, ServerConfig, ServiceParameters,
};
use capf_server::{CapfServer, PhoneClient, ServerOptions, phone_client_config};
use capf_store::SqliteStore;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const DEVICES: usize = 1024;
const CONCURRENCY: usize = 16;
const DIGITS: &[u8] = b"12345678";

fn or_die<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e}"),
    }
}

fn names() -> Vec<DeviceName> {
    (0..DEVICES)
        .map(|i| or_die(DeviceName::parse(&format!("SEP{i:012X}")), "name"))
        .collect()
}

/// Schedules an install (again) on these devices.
fn schedule(store: &SqliteStore, names: &[DeviceName], p256: KeySpec) {
    let now = SystemTime::now();
    for name in names {
        if or_die(store.load(name), "load").is_none() {
            or_die(
                store.insert(&Device::new(name.clone(), AuthMode::AuthString), now),
                "insert",
            );
        }
        let edit = DeviceEdit {
            key: Some(Some(p256)),
            auth_string: Some(or_die(AuthString::from_digits(DIGITS), "string")),
            operation: Some(Operation::InstallUpgrade),
            ..DeviceEdit::default()
        };
        or_die(store.modify(name, &edit, now), "schedule");
    }
}

fn bench(c: &mut Criterion) {
    let p256 = KeySpec::Ec(EcCurve::P256);
    let dir = or_die(tempfile::tempdir(), "tempdir");
    let store = Arc::new(or_die(
        SqliteStore::open(dir.path().join("capf.db")),
        "store",
    ));
    let identity = or_die(
        CapfIdentity::generate(
            &IdentityParams {
                key: p256,
                ..IdentityParams::default()
            },
            SystemTime::now(),
        ),
        "identity",
    );
    let issuer = or_die(identity.issuer(), "issuer");
    let config = ServerConfig::new(
        ServiceParameters {
            default_key: p256,
            ..ServiceParameters::default()
        },
        TrustStore::for_issuer(&issuer),
    );
    let names = names();
    schedule(&store, &names, p256);

    let runtime = or_die(
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
        "runtime",
    );
    let options = ServerOptions {
        listen: vec![std::net::SocketAddr::from(([127, 0, 0, 1], 0))],
        ..ServerOptions::default()
    };
    let server = or_die(
        runtime.block_on(CapfServer::bind(
            &identity,
            issuer,
            store.clone(),
            config,
            options,
        )),
        "bind",
    );
    let addr = match server.local_addrs().first() {
        Some(a) => a.to_string(),
        None => panic!("no address"),
    };
    runtime.spawn(server.run(std::future::pending()));

    let keys: Arc<Vec<PrivateKey>> = Arc::new(
        (0..64)
            .map(|_| or_die(PrivateKey::generate(p256), "phone key"))
            .collect(),
    );
    let cursor = Arc::new(AtomicUsize::new(0));
    let client = {
        let (keys, cursor) = (keys.clone(), cursor.clone());
        Arc::new(
            PhoneClient::new(or_die(
                phone_client_config(vec![identity.certificate().clone()]),
                "client",
            ))
            .with_key_source(move |spec| {
                let key = keys.get(cursor.fetch_add(1, Ordering::Relaxed) % keys.len())?;
                (key.spec() == spec).then(|| key.clone())
            }),
        )
    };

    let mut group = c.benchmark_group("enrollment_tls");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("install_auth_string_p256_capf_sqlite_c16", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = usize::try_from(iters).unwrap_or(usize::MAX);
            while left > 0 {
                let batch = left.min(DEVICES);
                left -= batch;
                // Not timed: re-arm the devices the previous batch enrolled.
                schedule(&store, &names[..batch], p256);
                let started = Instant::now();
                let failures = runtime.block_on(enroll(&client, &addr, &names[..batch]));
                total += started.elapsed();
                assert_eq!(failures, 0, "enrollments failed");
            }
            total
        })
    });
    group.finish();
}

/// Enrolls every device, CONCURRENCY at once; returns the failures.
async fn enroll(client: &Arc<PhoneClient>, addr: &str, names: &[DeviceName]) -> usize {
    let next = Arc::new(AtomicUsize::new(0));
    let names: Arc<Vec<DeviceName>> = Arc::new(names.to_vec());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY.min(names.len()) {
        let (client, addr, next, names) =
            (client.clone(), addr.to_owned(), next.clone(), names.clone());
        tasks.spawn(async move {
            let mut failures = 0;
            while let Some(name) = names.get(next.fetch_add(1, Ordering::Relaxed)) {
                let Ok(string) = AuthString::from_digits(DIGITS) else {
                    failures += 1;
                    continue;
                };
                let config = PhoneConfig::new(name.as_str(), Credentials::AuthString(string));
                match client.run(&addr, config).await {
                    Ok(run)
                        if matches!(
                            run.outcome,
                            PhoneOutcome::Succeeded(PhoneSuccess::Installed { .. })
                        ) => {}
                    _ => failures += 1,
                }
            }
            failures
        });
    }
    let mut failures = 0;
    while let Some(done) = tasks.join_next().await {
        failures += done.unwrap_or(1);
    }
    failures
}

criterion_group!(benches, bench);
criterion_main!(benches);
