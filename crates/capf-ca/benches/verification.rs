//! Verification on the phone-authentication hot path, split up: the whole
//! `verify_auth_proof` (chain + SHA-1 and SHA-512 proofs), the chain alone
//! (`verify_device_certificate`), and one proof signature alone
//! (`PublicKey::verify_proof`), for P-256 and RSA-2048 CAPF keys and phones.
//!
//!     cargo bench -p capf-ca --bench verification                  # RustCrypto
//!     cargo bench -p capf-ca --features ring --bench verification  # ring chains

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use capf_ca::{
    AuthProof, CapfIdentity, EcCurve, IdentityParams, Issuer, KeySpec, LscProfile, PrivateKey,
    ProofHash, ProofPolicy, PublicKey, TrustStore, auth_data, sign_auth_proof, verify_auth_proof,
    verify_device_certificate,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const DEVICE: &str = "SEP001122334455";

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn issuer(key: KeySpec) -> Issuer {
    let params = IdentityParams {
        key,
        ..IdentityParams::default()
    };
    match CapfIdentity::generate(&params, now()).and_then(|id| id.issuer()) {
        Ok(issuer) => issuer,
        Err(e) => panic!("CAPF issuer: {e}"),
    }
}

fn phone_key(spec: KeySpec) -> PrivateKey {
    match PrivateKey::generate(spec) {
        Ok(k) => k,
        Err(e) => panic!("phone key: {e}"),
    }
}

const CAPF_KEYS: [(&str, KeySpec); 2] = [
    ("capf_p256", KeySpec::Ec(EcCurve::P256)),
    ("capf_rsa2048", KeySpec::Rsa { bits: 2048 }),
];
const PHONE_KEYS: [(&str, KeySpec); 2] = [
    ("phone_p256", KeySpec::Ec(EcCurve::P256)),
    ("phone_rsa2048", KeySpec::Rsa { bits: 2048 }),
];

fn verification(c: &mut Criterion) {
    let mut whole = c.benchmark_group("verify_auth_proof");
    whole.throughput(Throughput::Elements(1));
    let policy = ProofPolicy::default();
    let phones: Vec<_> = PHONE_KEYS
        .iter()
        .map(|(name, spec)| (*name, phone_key(*spec)))
        .collect();
    let mut chains = Vec::new();
    for (capf_name, capf_key) in CAPF_KEYS {
        let issuer = issuer(capf_key);
        let trust = TrustStore::for_issuer(&issuer);
        for (phone_name, phone) in &phones {
            let spki = phone.public_key_der().unwrap_or_default();
            let Ok(lsc) = issuer.issue_lsc(DEVICE, &spki, &LscProfile::default(), now()) else {
                panic!("lsc")
            };
            let Ok((sha1, sha512)) = sign_auth_proof(phone, DEVICE, &lsc.der) else {
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
            if verify_auth_proof(&proof, &trust, &policy, now()).is_err() {
                panic!("the proof does not verify");
            }
            whole.bench_function(format!("{capf_name}_{phone_name}"), |b| {
                b.iter(|| verify_auth_proof(black_box(&proof), &trust, &policy, now()))
            });
            if *phone_name == "phone_p256" {
                chains.push((capf_name, trust.clone(), lsc.der.clone()));
            }
        }
    }
    whole.finish();

    let mut chain = c.benchmark_group("verify_chain");
    chain.throughput(Throughput::Elements(1));
    for (capf_name, trust, der) in &chains {
        chain.bench_function(*capf_name, |b| {
            b.iter(|| verify_device_certificate(black_box(der), DEVICE, trust, &policy, now()))
        });
    }
    chain.finish();

    let mut proof = c.benchmark_group("verify_proof");
    proof.throughput(Throughput::Elements(1));
    let data = auth_data(DEVICE, &[0x30; 600]);
    for (phone_name, phone) in &phones {
        let Ok(key) = PublicKey::from_spki_der(&phone.public_key_der().unwrap_or_default()) else {
            panic!("phone public key")
        };
        for (hash_name, hash) in [("sha1", ProofHash::Sha1), ("sha512", ProofHash::Sha512)] {
            let Ok(sig) = phone.sign_proof(hash, &data) else {
                panic!("sign")
            };
            assert!(key.verify_proof(hash, &data, &sig));
            proof.bench_function(format!("{phone_name}_{hash_name}"), |b| {
                b.iter(|| key.verify_proof(hash, black_box(&data), black_box(&sig)))
            });
        }
    }
    proof.finish();
}

criterion_group!(benches, verification);
criterion_main!(benches);
