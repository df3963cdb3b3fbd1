//! Verification of "existing certificate" proofs (with and without SUDI).
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

/// A CA with the given organizational unit, standing in for a manufacturer
/// (MICs issued by it copy O and OU after their CN).
fn maker_with_ou(ou: &str) -> (CapfIdentity, Issuer) {
    let maker = CapfIdentity::generate(
        &IdentityParams {
            key: KeySpec::Ec(EcCurve::P256),
            organization: Some("Maker".into()),
            organizational_unit: Some(ou.into()),
            ..IdentityParams::default()
        },
        now(),
    )
    .unwrap();
    let issuer = maker.issuer().unwrap();
    (maker, issuer)
}

#[test]
fn mic_binds_only_by_the_last_part_of_its_common_name() {
    // The maker's OU carries the device's MAC, so every MIC it issues has
    // the device name in its subject, outside the CN.
    let (maker, maker_issuer) = maker_with_ou(DEVICE);
    let (_capf, our_issuer) = capf();
    let mut trust = TrustStore::for_issuer(&our_issuer);
    trust.add_mic_anchor(maker.certificate().clone());
    let phone = key(KeySpec::Ec(EcCurve::P256));
    let spki = phone.public_key_der().unwrap();
    let policy = ProofPolicy::default();
    let verify = |mic_cn: &str, device: &str| {
        let mic = maker_issuer
            .issue_lsc(mic_cn, &spki, &LscProfile::default(), now())
            .unwrap();
        let (s1, s512) = sign_auth_proof(phone, device, &mic.der).unwrap();
        let result =
            verify_auth_proof(&proof(device, &mic.der, &s1, &s512), &trust, &policy, now());
        (mic.subject, result)
    };

    for (cn, device) in [
        // The common name is the device name itself.
        ("SEP001122334455", DEVICE),
        // Model, then the device name.
        ("CP-7945G-SEP001122334455", DEVICE),
        // ASCII case does not matter, on either side.
        ("cp-7945g-sep001122334455", DEVICE),
        ("CP-7945G-SEP00112233AABB", "sep00112233aabb"),
    ] {
        let (subject, result) = verify(cn, device);
        let v = result.unwrap_or_else(|e| panic!("{cn} for {device}: {e}"));
        assert_eq!(v.kind, CertificateKind::Mic, "{subject}");
        assert_eq!(v.subject, subject);
    }

    for (cn, device, why) in [
        ("CP-7945G", DEVICE, "device name only in OU"),
        (
            "CP-7945G-XSEP001122334455",
            DEVICE,
            "prefix before the name",
        ),
        ("CP-7945G-SEP0011223344551", DEVICE, "digit after the name"),
        ("SEP001122334455-CP-7945G", DEVICE, "name not the last part"),
        ("SEP001122334455-", DEVICE, "empty last part"),
        ("CP-7945G-SEP0011223344AA", DEVICE, "another MAC"),
        ("CP-7945G-SEP00112233445", "SEP00112233445", "11 hex digits"),
        ("ATA-SEPX01122334455", "SEPX01122334455", "not hex"),
        (
            "CP-7945G-ATA001122334455",
            "ATA001122334455",
            "not a SEP name",
        ),
    ] {
        let (subject, result) = verify(cn, device);
        match result {
            Err(CaError::DeviceBinding {
                device: d,
                subject: s,
                ..
            }) => {
                assert_eq!(d, device, "{why}");
                assert_eq!(s, subject, "{why}");
            }
            other => panic!("{why}: {cn} for {device}: {other:?}"),
        }
        if why == "device name only in OU" {
            assert!(subject.contains("OU=SEP001122334455"), "{subject}");
        }
    }
}

/// An RSA key with public exponent 3, as a [`PrivateKey`].
fn rsa_key_with_exponent_3() -> PrivateKey {
    use rsa::pkcs8::EncodePrivateKey;
    let k = rsa::PrivateKey::new_with_exp(&mut getrandom::SysRng, 1024, rsa::BoxedUint::from(3u64))
        .unwrap();
    PrivateKey::from_pkcs8_der(k.to_pkcs8_der().unwrap().as_bytes()).unwrap()
}

#[test]
fn presented_certificates_with_rsa_exponent_below_65537_are_refused() {
    let (maker, maker_issuer) = capf();
    let (_capf, our_issuer) = capf();
    let mut trust = TrustStore::for_issuer(&our_issuer);
    trust.add_mic_anchor(maker.certificate().clone());
    let policy = ProofPolicy::default();
    let weak = rsa_key_with_exponent_3();
    assert_eq!(weak.spec(), KeySpec::Rsa { bits: 1024 });
    let weak_spki = weak.public_key_der().unwrap();
    let good = key(KeySpec::Rsa { bits: 1024 });
    let good_spki = good.public_key_der().unwrap();

    let lsc = |spki: &[u8]| {
        our_issuer
            .issue_lsc(DEVICE, spki, &LscProfile::default(), now())
            .unwrap()
    };
    let mic = |spki: &[u8]| {
        maker_issuer
            .issue_lsc(
                "CP-7945G-SEP001122334455",
                spki,
                &LscProfile::default(),
                now(),
            )
            .unwrap()
    };
    let expect_refused = |result: Result<_, CaError>, subject: &str| match result {
        Err(CaError::UnacceptableCertificateKey {
            device,
            subject: s,
            reason,
        }) => {
            assert_eq!(device, DEVICE);
            assert_eq!(s, subject);
            assert!(
                reason.contains("exponent 3 is smaller than 65537"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    };

    // The same certificates with an exponent of 65537 are accepted; with 3,
    // refused although chain, binding and proof signatures are all right.
    for (issue, kind) in [
        (
            &lsc as &dyn Fn(&[u8]) -> capf_ca::IssuedLsc,
            CertificateKind::Lsc,
        ),
        (&mic, CertificateKind::Mic),
    ] {
        let ok = issue(&good_spki);
        let (s1, s512) = sign_auth_proof(good, DEVICE, &ok.der).unwrap();
        let v =
            verify_auth_proof(&proof(DEVICE, &ok.der, &s1, &s512), &trust, &policy, now()).unwrap();
        assert_eq!(v.kind, kind);

        let bad = issue(&weak_spki);
        let (s1, s512) = sign_auth_proof(&weak, DEVICE, &bad.der).unwrap();
        let err = verify_auth_proof(&proof(DEVICE, &bad.der, &s1, &s512), &trust, &policy, now())
            .unwrap_err();
        let message = err.to_string();
        expect_refused(Err(err), &bad.subject);
        assert!(message.contains(DEVICE), "{message}");
    }

    // A SUDI certificate is held to the same rule.
    let ok = lsc(&good_spki);
    let sudi = lsc(&weak_spki);
    let (s1, s512) = sign_auth_proof(good, DEVICE, &ok.der).unwrap();
    let (u1, u512) = sign_sudi_proof(&weak, 7, &sudi.der).unwrap();
    let mut p = proof(DEVICE, &ok.der, &s1, &s512);
    p.sudi = Some(SudiProof {
        certificate_der: &sudi.der,
        sha1_signature: Some(&u1),
        sha512_signature: Some(&u512),
    });
    expect_refused(verify_auth_proof(&p, &trust, &policy, now()), &sudi.subject);
}

#[test]
fn lsc_outside_its_validity_is_not_valid_rather_than_untrusted() {
    let (_capf, issuer) = capf();
    let trust = TrustStore::for_issuer(&issuer);
    let (_other_capf, other_issuer) = capf();
    let untrusting = TrustStore::for_issuer(&other_issuer);
    let policy = ProofPolicy::default();
    let phone = key(KeySpec::Ec(EcCurve::P256));
    let profile = LscProfile {
        validity: CertValidity::Days(10),
        ..LscProfile::default()
    };
    let lsc = issuer
        .issue_lsc(DEVICE, &phone.public_key_der().unwrap(), &profile, now())
        .unwrap();
    let (s1, s512) = sign_auth_proof(phone, DEVICE, &lsc.der).unwrap();
    let p = proof(DEVICE, &lsc.der, &s1, &s512);

    // Inside its validity it authenticates the device.
    verify_auth_proof(&p, &trust, &policy, now()).unwrap();
    verify_auth_proof(&p, &trust, &policy, lsc.not_after).unwrap();

    // Past notAfter, and before notBefore: chained to our anchor, so "not
    // valid at this time", never "untrusted issuer".
    for at in [
        lsc.not_after + Duration::from_secs(1),
        now() + Duration::from_secs(365 * 86400),
        lsc.not_before - Duration::from_secs(1),
    ] {
        match verify_auth_proof(&p, &trust, &policy, at) {
            Err(CaError::CertificateNotValid {
                device, subject, ..
            }) => {
                assert_eq!(device, DEVICE);
                assert_eq!(subject, lsc.subject);
            }
            other => panic!("{other:?}"),
        }
        // The MIC leniency does not apply to LSCs.
        let lenient = ProofPolicy {
            accept_expired_mic: true,
            ..ProofPolicy::default()
        };
        assert!(matches!(
            verify_auth_proof(&p, &trust, &lenient, at),
            Err(CaError::CertificateNotValid { .. })
        ));
        // Without our anchor the same certificate is untrusted, expired or not.
        assert!(matches!(
            verify_auth_proof(&p, &untrusting, &policy, at),
            Err(CaError::UntrustedIssuer { .. })
        ));
    }
    assert!(matches!(
        verify_auth_proof(&p, &untrusting, &policy, now()),
        Err(CaError::UntrustedIssuer { .. })
    ));
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
