//! Certificate, key and proof parsing in capf-ca: arbitrary bytes as a
//! certificate, as a phone's public key, and as a certificate-authentication
//! proof never panic, and garbage never verifies.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use capf_ca::{
    AuthProof, CaCertificate, CapfIdentity, EcCurve, IdentityParams, KeyPolicy, KeySpec,
    ProofPolicy, SudiProof, TrustStore,
};
use libfuzzer_sys::fuzz_target;

fn trust() -> &'static TrustStore {
    static T: OnceLock<TrustStore> = OnceLock::new();
    T.get_or_init(|| {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let identity = CapfIdentity::generate(
            &IdentityParams { key: KeySpec::Ec(EcCurve::P256), ..Default::default() },
            now,
        )
        .expect("identity");
        TrustStore::for_issuer(&identity.issuer().expect("issuer"))
    })
}

fuzz_target!(|data: &[u8]| {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    if let Ok(cert) = CaCertificate::from_der(data, "fuzz") {
        let _ = cert.subject();
        let _ = cert.public_key();
        let _ = cert.hashed_file_name();
    }
    let _ = capf_ca::validate_phone_key(data, &KeyPolicy::default(), None);
    let _ = capf_ca::openssl_subject_hash(data);
    let third = data.len() / 3;
    let (cert, rest) = data.split_at(third);
    let (sig1, sig2) = rest.split_at(rest.len() / 2);
    let proof = AuthProof {
        device_name: "SEP001122334455",
        session_id: 1,
        certificate_der: cert,
        sha1_signature: Some(sig1),
        sha512_signature: Some(sig2),
        sudi: Some(SudiProof { certificate_der: cert, sha1_signature: Some(sig1), sha512_signature: None }),
    };
    assert!(
        capf_ca::verify_auth_proof(&proof, trust(), &ProofPolicy::default(), now).is_err(),
        "garbage verified"
    );
});
