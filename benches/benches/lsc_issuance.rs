//! LSCs issued per second (P-256 and RSA-2048 CAPF keys), signed by the
//! default backend (ring: capf-server turns capf-ca's feature `ring` on)
//! and by RustCrypto (`PrivateKey::portable`), and proof verifications per
//! second.

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use capf_ca::{
    AuthProof, CapfIdentity, EcCurve, IdentityParams, Issuer, KeySpec, LscProfile, PrivateKey,
    ProofPolicy, TrustStore, sign_auth_proof, verify_auth_proof,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const DEVICE: &str = "SEP001122334455";

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn identity(key: KeySpec) -> CapfIdentity {
    let params = IdentityParams {
        key,
        ..IdentityParams::default()
    };
    match CapfIdentity::generate(&params, now()) {
        Ok(id) => id,
        Err(e) => panic!("CAPF identity: {e}"),
    }
}

fn phone_key(spec: KeySpec) -> PrivateKey {
    match PrivateKey::generate(spec) {
        Ok(k) => k,
        Err(e) => panic!("phone key: {e}"),
    }
}

fn issuance(c: &mut Criterion) {
    let mut group = c.benchmark_group("lsc_issuance");
    group.throughput(Throughput::Elements(1));
    let phone = phone_key(KeySpec::Rsa { bits: 2048 });
    let spki = phone.public_key_der().unwrap_or_default();
    for (name, key) in [
        ("capf_p256", KeySpec::Ec(EcCurve::P256)),
        ("capf_rsa2048", KeySpec::Rsa { bits: 2048 }),
    ] {
        let capf = identity(key);
        let Ok(issuer) = capf.issuer() else {
            panic!("issuer")
        };
        let Ok(portable) = Issuer::new(
            capf.certificate().clone(),
            capf.private_key().clone().portable(),
            Vec::new(),
        ) else {
            panic!("portable issuer")
        };
        let profile = LscProfile::default();
        for (backend, issuer) in [
            (issuer.private_key().signing_backend(), &issuer),
            (portable.private_key().signing_backend(), &portable),
        ] {
            let id = format!("{name}_{}", backend.to_string().to_lowercase());
            group.bench_function(id, |b| {
                b.iter(|| issuer.issue_lsc(black_box(DEVICE), black_box(&spki), &profile, now()))
            });
        }
    }
    group.finish();
}

fn proof_verification(c: &mut Criterion) {
    let mut group = c.benchmark_group("proof_verification");
    group.throughput(Throughput::Elements(1));
    let Ok(issuer) = identity(KeySpec::Ec(EcCurve::P256)).issuer() else {
        panic!("issuer")
    };
    let trust = TrustStore::for_issuer(&issuer);
    for (name, spec) in [
        ("phone_rsa2048", KeySpec::Rsa { bits: 2048 }),
        ("phone_p256", KeySpec::Ec(EcCurve::P256)),
    ] {
        let phone = phone_key(spec);
        let spki = phone.public_key_der().unwrap_or_default();
        let Ok(lsc) = issuer.issue_lsc(DEVICE, &spki, &LscProfile::default(), now()) else {
            panic!("lsc")
        };
        let Ok((sha1, sha512)) = sign_auth_proof(&phone, DEVICE, &lsc.der) else {
            panic!("proof")
        };
        let proof = AuthProof {
            device_name: DEVICE,
            session_id: 1,
            certificate_der: &lsc.der,
            sha1_signature: Some(&sha1),
            sha512_signature: Some(&sha512),
            sudi: None,
        };
        let policy = ProofPolicy::default();
        group.bench_function(name, |b| {
            b.iter(|| verify_auth_proof(black_box(&proof), &trust, &policy, now()))
        });
    }
    group.finish();
}

criterion_group!(benches, issuance, proof_verification);
criterion_main!(benches);
