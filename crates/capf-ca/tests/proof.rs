//! Verification of "existing certificate" proofs (protocol 6.4, 6.5).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::time::Duration;

use capf_ca::{
    AuthProof, CaError, CapfIdentity, CertValidity, CertificateKind, EcCurve, IdentityParams,
    Issuer, KeySpec, LscProfile, PrivateKey, ProofPolicy, ProofSignature, SudiProof, TrustStore,
    auth_data, sign_auth_proof, sign_sudi_proof, verify_auth_proof,
};
use common::{key, now, openssl};
use sha1::{Digest, Sha1};

const DEVICE: &str = "SEP001122334455";

fn capf() -> (CapfIdentity, Issuer) {
    let capf = CapfIdentity::generate(
        &IdentityParams {
            key: KeySpec::Ec(EcCurve::P256),
            organization: Some("CAPF".into()),
            ..IdentityParams::default()
        },
        now(),
    )
    .unwrap();
    let issuer = capf.issuer().unwrap();
    (capf, issuer)
}

fn proof<'a>(device: &'a str, cert: &'a [u8], sha1: &'a [u8], sha512: &'a [u8]) -> AuthProof<'a> {
    AuthProof {
        device_name: device,
        session_id: 7,
        certificate_der: cert,
        sha1_signature: Some(sha1),
        sha512_signature: Some(sha512),
        sudi: None,
    }
}

#[test]
fn accepts_phone_proofs_for_every_key_type() {
    let (_capf, issuer) = capf();
    let trust = TrustStore::for_issuer(&issuer);
    for spec in [
        KeySpec::Rsa { bits: 1024 },
        KeySpec::Rsa { bits: 2048 },
        KeySpec::Ec(EcCurve::P256),
        KeySpec::Ec(EcCurve::P384),
    ] {
        let phone = key(spec);
        let lsc = issuer
            .issue_lsc(
                DEVICE,
                &phone.public_key_der().unwrap(),
                &LscProfile::default(),
                now(),
            )
            .unwrap();
        let (s1, s512) = sign_auth_proof(phone, DEVICE, &lsc.der).unwrap();
        let (u1, u512) = sign_sudi_proof(phone, 7, &lsc.der).unwrap();
        let mut p = proof(DEVICE, &lsc.der, &s1, &s512);
        p.sudi = Some(SudiProof {
            certificate_der: &lsc.der,
            sha1_signature: Some(&u1),
            sha512_signature: Some(&u512),
        });
        let v = verify_auth_proof(&p, &trust, &ProofPolicy::default(), now()).unwrap();
        assert_eq!(v.kind, CertificateKind::Lsc);
        assert_eq!(v.serial_hex, lsc.serial_hex);
        assert_eq!(v.key_spec, spec);
        assert_eq!(v.subject, "CN=SEP001122334455, O=CAPF");
        assert!(v.sudi_subject.is_some());

        // The SUDI signature covers the session id.
        p.session_id = 8;
        let err = verify_auth_proof(&p, &trust, &ProofPolicy::default(), now()).unwrap_err();
        assert!(
            matches!(
                err,
                CaError::BadProofSignature {
                    which: ProofSignature::SudiSha1,
                    ..
                }
            ),
            "{err}"
        );

        // Tampered signature bytes.
        let mut bad = s512.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let err = verify_auth_proof(
            &proof(DEVICE, &lsc.der, &s1, &bad),
            &trust,
            &ProofPolicy::default(),
            now(),
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                CaError::BadProofSignature {
                    which: ProofSignature::Sha512,
                    ..
                }
            ),
            "{err}"
        );
    }
}

#[test]
fn rejects_wrong_device_other_device_untrusted_and_tampered() {
    let (_capf, issuer) = capf();
    let trust = TrustStore::for_issuer(&issuer);
    let phone = key(KeySpec::Ec(EcCurve::P256));
    let spki = phone.public_key_der().unwrap();
    let lsc = issuer
        .issue_lsc(DEVICE, &spki, &LscProfile::default(), now())
        .unwrap();
    let policy = ProofPolicy::default();

    // Signed for another device name than claimed.
    let (s1, s512) = sign_auth_proof(phone, "SEP00112233445A", &lsc.der).unwrap();
    let err = verify_auth_proof(&proof(DEVICE, &lsc.der, &s1, &s512), &trust, &policy, now())
        .unwrap_err();
    assert!(matches!(err, CaError::BadProofSignature { .. }), "{err}");

    // Certificate of another device, correctly signed: the binding refuses it.
    let other = issuer
        .issue_lsc("SEP0011223344AA", &spki, &LscProfile::default(), now())
        .unwrap();
    let (s1, s512) = sign_auth_proof(phone, DEVICE, &other.der).unwrap();
    let err = verify_auth_proof(
        &proof(DEVICE, &other.der, &s1, &s512),
        &trust,
        &policy,
        now(),
    )
    .unwrap_err();
    assert!(matches!(err, CaError::DeviceBinding { .. }), "{err}");

    // Untrusted issuer.
    let (_other_capf, other_issuer) = capf();
    let (s1, s512) = sign_auth_proof(phone, DEVICE, &lsc.der).unwrap();
    let err = verify_auth_proof(
        &proof(DEVICE, &lsc.der, &s1, &s512),
        &TrustStore::for_issuer(&other_issuer),
        &policy,
        now(),
    )
    .unwrap_err();
    assert!(matches!(err, CaError::UntrustedIssuer { .. }), "{err}");

    // Tampered certificate bytes (in the subject): the issuer's signature fails.
    let mut tampered = lsc.der.clone();
    let pos = tampered.windows(4).position(|w| w == b"SEP0").unwrap();
    tampered[pos + 14] ^= 0x01;
    let (s1, s512) = sign_auth_proof(phone, DEVICE, &tampered).unwrap();
    assert!(
        verify_auth_proof(
            &proof(DEVICE, &tampered, &s1, &s512),
            &trust,
            &policy,
            now()
        )
        .is_err()
    );

    // Garbage certificate.
    assert!(matches!(
        verify_auth_proof(
            &proof(DEVICE, b"\x30\x03\x02\x01\x00", &s1, &s512),
            &trust,
            &policy,
            now()
        ),
        Err(CaError::CertificateParse { .. })
    ));

    // No signature at all.
    let mut p = proof(DEVICE, &lsc.der, &s1, &s512);
    p.sha1_signature = None;
    p.sha512_signature = None;
    assert!(matches!(
        verify_auth_proof(&p, &trust, &policy, now()),
        Err(CaError::MissingProof { .. })
    ));

    // Expired LSC.
    let (s1, s512) = sign_auth_proof(phone, DEVICE, &lsc.der).unwrap();
    let later = now() + Duration::from_secs(6 * 365 * 86400);
    let err = verify_auth_proof(&proof(DEVICE, &lsc.der, &s1, &s512), &trust, &policy, later)
        .unwrap_err();
    assert!(matches!(err, CaError::CertificateNotValid { .. }), "{err}");
}

#[test]
fn mic_binding_and_expiry_policy() {
    // A stand-in manufacturer CA and a MIC naming the MAC inside its CN.
    let (maker, maker_issuer) = capf();
    let (_capf, our_issuer) = capf();
    let mut trust = TrustStore::for_issuer(&our_issuer);
    trust.add_mic_anchor(maker.certificate().clone());
    let phone = key(KeySpec::Rsa { bits: 2048 });
    let spki = phone.public_key_der().unwrap();
    let issued_at = now() - Duration::from_secs(30 * 86400);
    let short = LscProfile {
        validity: CertValidity::Days(10),
        ..LscProfile::default()
    };
    let mic = maker_issuer
        .issue_lsc("CP-7961G-SEP001122334455", &spki, &short, issued_at)
        .unwrap();
    let (s1, s512) = sign_auth_proof(phone, "sep001122334455", &mic.der).unwrap();
    let p = proof("sep001122334455", &mic.der, &s1, &s512);

    let err = verify_auth_proof(&p, &trust, &ProofPolicy::default(), now()).unwrap_err();
    assert!(matches!(err, CaError::CertificateNotValid { .. }), "{err}");
    let lenient = ProofPolicy {
        accept_expired_mic: true,
        ..ProofPolicy::default()
    };
    let v = verify_auth_proof(&p, &trust, &lenient, now()).unwrap();
    assert_eq!(v.kind, CertificateKind::Mic);
    assert!(v.expired);

    // Valid MIC for another MAC.
    let (s1, s512) = sign_auth_proof(phone, "SEP0011223344AA", &mic.der).unwrap();
    let err = verify_auth_proof(
        &proof("SEP0011223344AA", &mic.der, &s1, &s512),
        &trust,
        &lenient,
        now(),
    )
    .unwrap_err();
    assert!(matches!(err, CaError::DeviceBinding { .. }), "{err}");

    // An expired LSC is never accepted, whatever the MIC flag says.
    let lsc = our_issuer
        .issue_lsc(DEVICE, &spki, &short, issued_at)
        .unwrap();
    let (s1, s512) = sign_auth_proof(phone, DEVICE, &lsc.der).unwrap();
    let err = verify_auth_proof(
        &proof(DEVICE, &lsc.der, &s1, &s512),
        &trust,
        &lenient,
        now(),
    )
    .unwrap_err();
    assert!(matches!(err, CaError::CertificateNotValid { .. }), "{err}");
}

/// Raw RSA private operation by the openssl binary (no padding added).
fn raw_rsa_sign(dir: &Path, block: &[u8]) -> Vec<u8> {
    std::fs::write(dir.join("block.bin"), block).unwrap();
    openssl(
        dir,
        &[
            "rsautl",
            "-sign",
            "-raw",
            "-inkey",
            "k.pem",
            "-in",
            "block.bin",
            "-out",
            "sig.bin",
        ],
    );
    std::fs::read(dir.join("sig.bin")).unwrap()
}

#[test]
fn rsa_padding_is_checked_whole() {
    let (_capf, issuer) = capf();
    let trust = TrustStore::for_issuer(&issuer);
    let phone = key(KeySpec::Rsa { bits: 2048 });
    let lsc = issuer
        .issue_lsc(
            DEVICE,
            &phone.public_key_der().unwrap(),
            &LscProfile::default(),
            now(),
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("k.pem"), phone.to_pkcs8_pem().unwrap()).unwrap();
    let h = Sha1::digest(auth_data(DEVICE, &lsc.der)).to_vec();
    let k = 256;
    let block = |body: &[u8]| {
        let mut b = vec![0u8, 1];
        b.extend(std::iter::repeat_n(0xff, k - 3 - body.len()));
        b.push(0);
        b.extend_from_slice(body);
        b
    };
    let policy = ProofPolicy::default();
    let check = |sig: &[u8]| {
        let mut p = proof(DEVICE, &lsc.der, sig, sig);
        p.sha512_signature = None;
        verify_auth_proof(&p, &trust, &policy, now())
    };

    // Built by hand, signed by openssl: 00 01 FF.. 00 || H is accepted.
    let good = raw_rsa_sign(dir.path(), &block(&h));
    check(&good).unwrap();
    // openssl's own "PKCS#1 padding, no digest" (RSA_private_encrypt) is the same format.
    std::fs::write(dir.path().join("h.bin"), &h).unwrap();
    openssl(
        dir.path(),
        &[
            "pkeyutl", "-sign", "-inkey", "k.pem", "-in", "h.bin", "-out", "sig2.bin",
        ],
    );
    check(&std::fs::read(dir.path().join("sig2.bin")).unwrap()).unwrap();

    // A standard signature with a DigestInfo prefix is refused.
    let mut with_prefix = hex::decode("3021300906052b0e03021a05000414").unwrap();
    with_prefix.extend_from_slice(&h);
    let err = check(&raw_rsa_sign(dir.path(), &block(&with_prefix))).unwrap_err();
    assert!(
        matches!(
            err,
            CaError::BadProofSignature {
                which: ProofSignature::Sha1,
                ..
            }
        ),
        "{err}"
    );

    // Too short an FF run (7 bytes), zeros up to the hash: the trailing hash is right.
    let mut short = vec![0u8, 1];
    short.extend([0xff; 7]);
    short.resize(k - h.len(), 0);
    short.extend_from_slice(&h);
    assert!(check(&raw_rsa_sign(dir.path(), &short)).is_err());

    // Right hash, one padding byte wrong.
    let mut wrong = block(&h);
    wrong[100] = 0xfe;
    assert!(check(&raw_rsa_sign(dir.path(), &wrong)).is_err());

    // Block type 2 instead of 1.
    let mut type2 = block(&h);
    type2[1] = 2;
    assert!(check(&raw_rsa_sign(dir.path(), &type2)).is_err());
}

// ---- the real capfd/capfc transcript ----

/// Minimal TLV reader for the test (capf-wire is a separate crate).
fn tlvs(mut body: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    while !body.is_empty() {
        let tag = body[0];
        let len = usize::from(u16::from_be_bytes([body[1], body[2]]));
        out.push((tag, &body[3..3 + len]));
        body = &body[3 + len..];
    }
    out
}

#[test]
fn real_auth_response_vector_verifies() {
    let transcript = include_str!("vectors/install-lsc-auth.txt");
    let line = transcript
        .lines()
        .find(|l| l.starts_with("C>S AUTH_RESPONSE"))
        .unwrap();
    let frame = hex::decode(line.split_whitespace().nth(2).unwrap()).unwrap();
    assert_eq!(frame[0], 0x55);
    let session_id = u32::from_be_bytes(frame[2..6].try_into().unwrap());
    let body_len = usize::from(u16::from_be_bytes([frame[6], frame[7]]));
    let body = &frame[8..8 + body_len];
    let elements = tlvs(body);
    let get = |tag: u8| {
        elements
            .iter()
            .find(|(t, _)| *t == tag)
            .map(|(_, v)| *v)
            .unwrap()
    };
    let cert = &get(4)[5..];
    let signed = get(6);
    let sha2 = get(20);
    assert_eq!(sha2[0], 3);
    let sha512_sig = &sha2[3..];
    let name_raw = get(13);
    let device = std::str::from_utf8(&name_raw[..name_raw.len() - 1]).unwrap();
    let sudi = tlvs(get(16));
    let sudi_get = |tag: u8| {
        sudi.iter()
            .find(|(t, _)| *t == tag)
            .map(|(_, v)| *v)
            .unwrap()
    };

    let anchor =
        capf_ca::CaCertificate::from_pem(include_str!("vectors/capf-issuer.pem"), "vector")
            .unwrap();
    let mut trust = TrustStore::new();
    trust.add_lsc_anchor(anchor);
    // 2026-12-01T00:00:00Z
    let now = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_083_200);
    let mut p = AuthProof {
        device_name: device,
        session_id,
        certificate_der: cert,
        sha1_signature: Some(signed),
        sha512_signature: Some(sha512_sig),
        sudi: Some(SudiProof {
            certificate_der: sudi_get(0),
            sha1_signature: Some(sudi_get(1)),
            sha512_signature: Some(sudi_get(3)),
        }),
    };
    let v = verify_auth_proof(&p, &trust, &ProofPolicy::default(), now).unwrap();
    assert_eq!(v.kind, CertificateKind::Lsc);
    assert_eq!(v.subject, format!("CN={device}, O=CAPF, OU=CAPF"));
    assert!(v.sudi_subject.is_some());

    // Another device name, or another session id for SUDI, fails.
    p.device_name = "SEP0011223344AA";
    assert!(verify_auth_proof(&p, &trust, &ProofPolicy::default(), now).is_err());
    p.device_name = device;
    p.session_id = session_id.swap_bytes();
    let err = verify_auth_proof(&p, &trust, &ProofPolicy::default(), now).unwrap_err();
    assert!(
        matches!(
            err,
            CaError::BadProofSignature {
                which: ProofSignature::SudiSha1,
                ..
            }
        ),
        "{err}"
    );
    // Before the certificates' validity.
    p.session_id = session_id;
    let early = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
    assert!(matches!(
        verify_auth_proof(&p, &trust, &ProofPolicy::default(), early),
        Err(CaError::CertificateNotValid { .. })
    ));
}

#[test]
fn private_key_pkcs8_round_trip_rsa() {
    let k = key(KeySpec::Rsa { bits: 1024 });
    let der = k.to_pkcs8_der().unwrap();
    let back = PrivateKey::from_pkcs8_der(&der).unwrap();
    assert_eq!(back.spec(), KeySpec::Rsa { bits: 1024 });
    assert_eq!(back.public_key_der().unwrap(), k.public_key_der().unwrap());
    assert!(PrivateKey::from_pkcs8_der(b"nonsense").is_err());
}
