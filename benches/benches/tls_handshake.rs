//! Server CPU for one full TLS handshake, as `capf serve` does it: the
//! rustls `ServerConfig` comes from `capf_server::server_config` itself
//! (ring provider, TLS 1.3 and 1.2, no client certificate, rustls defaults
//! otherwise: key exchange groups X25519, secp256r1, secp384r1; a 256-entry
//! server session cache, no ticketer, two TLS 1.3 tickets sent per
//! connection), presenting a CAPF certificate made by
//! `CapfIdentity::generate` as `capf init` makes it (P-256 or RSA-2048).
//!
//! Entirely in memory: a `ServerConnection` and a `ClientConnection`
//! exchange bytes through `Vec` buffers, no sockets. Only the server-side
//! calls are timed (`ServerConnection::new`, its `read_tls`,
//! `process_new_packets` and `write_tls`, and its drop), summed with
//! `iter_custom`: the figure is server CPU per handshake (one element).
//! Every iteration is a fresh, full handshake: new connections on both
//! sides and a client that does not resume (checked with
//! `handshake_kind`).
//!
//! Clients:
//! * `*_tls13`: `capf_server::phone_client_config`, what `PhoneClient`
//!   offers (TLS 1.3 and 1.2, X25519 key share first), with resumption
//!   turned off; it negotiates TLS 1.3.
//! * `*_tls12`: a client restricted to TLS 1.2 (`phone_client_config`
//!   offers both versions), built here with ring's provider and the
//!   server crate's `pinned_capf_verifier`; the client's cost is not
//!   timed. The server picks X25519 (its first group).
//! * `*_tls12_secp256r1`: as `*_tls12`, but the client offers only the
//!   secp256r1 group, as phones without X25519 would.
//! * `*_tls13_resumed`: `phone_client_config` as it is (resumption on,
//!   one client config reused, as `PhoneClient` reuses it; `capf loadgen`
//!   turns resumption off unless `--resume-tls`): every handshake after the first resumes with a TLS 1.3 ticket,
//!   no certificate signature. For comparison only; it is not the ceiling.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use capf_ca::{CapfIdentity, EcCurve, IdentityParams, KeySpec};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use rustls::{
    ClientConfig, ClientConnection, HandshakeKind, ProtocolVersion, ServerConfig, ServerConnection,
};

/// A phone-like client speaking TLS 1.2 only, optionally offering only
/// secp256r1.
fn tls12_client(identity: &CapfIdentity, secp256r1_only: bool) -> Option<ClientConfig> {
    let mut provider: CryptoProvider = rustls::crypto::ring::default_provider();
    if secp256r1_only {
        provider.kx_groups = vec![rustls::crypto::ring::kx_group::SECP256R1];
    }
    let verifier = capf_server::pinned_capf_verifier(&[identity.certificate().clone()], &provider);
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .ok()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.resumption = Resumption::disabled();
    Some(config)
}

/// What one handshake negotiated, for the sanity check.
struct Negotiated {
    version: Option<ProtocolVersion>,
    kind: Option<HandshakeKind>,
    suite: String,
    group: String,
}

/// Server-side bytes in: feeds `input` to the server and processes it.
fn server_read(server: &mut ServerConnection, input: &[u8]) -> Result<(), String> {
    let mut rd = input;
    while !rd.is_empty() {
        let n = server.read_tls(&mut rd).map_err(|e| e.to_string())?;
        server.process_new_packets().map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("server read_tls made no progress".into());
        }
    }
    Ok(())
}

fn client_read(client: &mut ClientConnection, input: &[u8]) -> Result<(), String> {
    let mut rd = input;
    while !rd.is_empty() {
        let n = client.read_tls(&mut rd).map_err(|e| e.to_string())?;
        client.process_new_packets().map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("client read_tls made no progress".into());
        }
    }
    Ok(())
}

/// One handshake between a fresh server connection and a fresh client
/// connection, in memory. Returns the time spent in server-side calls.
fn handshake(
    server_config: &Arc<ServerConfig>,
    client_config: &Arc<ClientConfig>,
    name: &ServerName<'static>,
    c2s: &mut Vec<u8>,
    s2c: &mut Vec<u8>,
) -> Result<(Duration, Negotiated), String> {
    let mut client =
        ClientConnection::new(client_config.clone(), name.clone()).map_err(|e| e.to_string())?;
    let mut spent = Duration::ZERO;

    let t = Instant::now();
    let mut server = ServerConnection::new(server_config.clone()).map_err(|e| e.to_string())?;
    spent += t.elapsed();

    for _ in 0..16 {
        c2s.clear();
        while client.wants_write() {
            client.write_tls(c2s).map_err(|e| e.to_string())?;
        }

        let t = Instant::now();
        server_read(&mut server, c2s)?;
        s2c.clear();
        while server.wants_write() {
            server.write_tls(s2c).map_err(|e| e.to_string())?;
        }
        spent += t.elapsed();

        client_read(&mut client, s2c)?;
        if !server.is_handshaking()
            && !client.is_handshaking()
            && !server.wants_write()
            && !client.wants_write()
        {
            let negotiated = Negotiated {
                version: server.protocol_version(),
                kind: server.handshake_kind(),
                suite: format!("{:?}", server.negotiated_cipher_suite().map(|s| s.suite())),
                group: format!(
                    "{:?}",
                    server.negotiated_key_exchange_group().map(|g| g.name())
                ),
            };
            let t = Instant::now();
            drop(server);
            spent += t.elapsed();
            return Ok((spent, negotiated));
        }
    }
    Err("handshake did not finish in 16 round trips".into())
}

fn identity(key: KeySpec) -> Option<CapfIdentity> {
    let params = IdentityParams {
        key,
        ..IdentityParams::default()
    };
    CapfIdentity::generate(&params, SystemTime::now()).ok()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("tls_handshake");
    group.throughput(Throughput::Elements(1));
    let Ok(name) = ServerName::try_from("capf") else {
        return;
    };
    for (key_name, key) in [
        ("p256", KeySpec::Ec(EcCurve::P256)),
        ("rsa2048", KeySpec::Rsa { bits: 2048 }),
    ] {
        let Some(identity) = identity(key) else {
            eprintln!("tls_handshake: cannot generate the {key_name} CAPF identity");
            continue;
        };
        // The server exactly as CapfServer::bind configures it.
        let Ok(server_config) = capf_server::server_config(&identity) else {
            eprintln!("tls_handshake: capf_server::server_config failed for {key_name}");
            continue;
        };
        let server_config = Arc::new(server_config);
        let phone = capf_server::phone_client_config(vec![identity.certificate().clone()]).ok();
        let tls13 = phone.clone().map(|mut c| {
            c.resumption = Resumption::disabled();
            c
        });
        let variants: [(&str, Option<ClientConfig>, ProtocolVersion, HandshakeKind); 4] = [
            (
                "tls12",
                tls12_client(&identity, false),
                ProtocolVersion::TLSv1_2,
                HandshakeKind::Full,
            ),
            (
                "tls12_secp256r1",
                tls12_client(&identity, true),
                ProtocolVersion::TLSv1_2,
                HandshakeKind::Full,
            ),
            (
                "tls13",
                tls13,
                ProtocolVersion::TLSv1_3,
                HandshakeKind::Full,
            ),
            (
                "tls13_resumed",
                phone,
                ProtocolVersion::TLSv1_3,
                HandshakeKind::Resumed,
            ),
        ];
        for (variant, client_config, version, kind) in variants {
            let Some(client_config) = client_config else {
                continue;
            };
            let client_config = Arc::new(client_config);
            let id = format!("server_{key_name}_{variant}");
            let mut c2s = Vec::with_capacity(8192);
            let mut s2c = Vec::with_capacity(8192);
            // Sanity check, untimed: two handshakes (the second would be
            // the resumed one if the client resumed).
            let mut ok = true;
            for _ in 0..2 {
                match handshake(&server_config, &client_config, &name, &mut c2s, &mut s2c) {
                    Ok((_, n)) => {
                        eprintln!(
                            "tls_handshake/{id}: {:?} {:?} {} {}",
                            n.version.unwrap_or(ProtocolVersion::Unknown(0)),
                            n.kind,
                            n.suite,
                            n.group
                        );
                        ok &= n.version == Some(version);
                    }
                    Err(e) => {
                        eprintln!("tls_handshake/{id}: handshake failed: {e}");
                        ok = false;
                    }
                }
            }
            // The kind of the steady state (the second handshake).
            if let Ok((_, n)) = handshake(&server_config, &client_config, &name, &mut c2s, &mut s2c)
            {
                ok &= n.kind == Some(kind);
            }
            if !ok {
                eprintln!("tls_handshake/{id}: not what was expected, skipped");
                continue;
            }
            let mut failures = 0u64;
            group.bench_function(&id, |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        match handshake(&server_config, &client_config, &name, &mut c2s, &mut s2c) {
                            Ok((spent, _)) => total += spent,
                            Err(_) => failures += 1,
                        }
                    }
                    total
                })
            });
            if failures > 0 {
                eprintln!("tls_handshake/{id}: {failures} handshakes failed during measurement");
            }
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
