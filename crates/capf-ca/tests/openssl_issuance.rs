//! Issued LSCs pass `openssl verify -x509_strict`, directly under the CAPF
//! certificate and under a separate intermediate issuer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use capf_ca::{CapfIdentity, IdentityParams, Issuer, KeySpec, LscProfile, PrivateKey};
use common::{CAPF_KEYS, PHONE_KEYS, key, now, openssl};

fn check_lsc_text(text: &str, phone: KeySpec, issuer_subject: &str) {
    assert!(text.contains("CA:FALSE"), "{text}");
    assert!(
        text.contains("X509v3 Basic Constraints: critical"),
        "{text}"
    );
    assert!(text.contains("X509v3 Key Usage: critical"), "{text}");
    match phone {
        KeySpec::Rsa { .. } => {
            assert!(
                text.contains("Digital Signature, Key Encipherment"),
                "{text}"
            )
        }
        KeySpec::Ec(_) => assert!(text.contains("Digital Signature, Key Agreement"), "{text}"),
    }
    assert!(
        text.contains(
            "TLS Web Server Authentication, TLS Web Client Authentication, IPSec End System"
        ),
        "{text}"
    );
    assert!(text.contains("X509v3 Subject Key Identifier"), "{text}");
    assert!(text.contains("X509v3 Authority Key Identifier"), "{text}");
    assert!(!text.contains("Subject Alternative Name"), "{text}");
    assert!(
        text.contains(&format!("Issuer: {issuer_subject}")),
        "{text}"
    );
}

fn issue_and_verify(dir: &Path, issuer: &Issuer, verify_args: &[&str], issuer_subject: &str) {
    for phone in PHONE_KEYS {
        let spki = key(phone).public_key_der().unwrap();
        let lsc = issuer
            .issue_lsc("SEP001122334455", &spki, &LscProfile::default(), now())
            .unwrap();
        assert_eq!(lsc.key_spec, phone);
        assert_eq!(lsc.serial.len(), 16);
        assert!(lsc.serial[0] & 0x80 == 0);
        std::fs::write(dir.join("lsc.pem"), lsc.pem()).unwrap();
        let mut args = vec!["verify", "-x509_strict", "-attime", "1800000000"];
        args.extend_from_slice(verify_args);
        args.push("lsc.pem");
        let out = openssl(dir, &args);
        assert!(out.contains("lsc.pem: OK"), "{phone}: {out}");
        let text = openssl(
            dir,
            &[
                "x509", "-in", "lsc.pem", "-noout", "-text", "-nameopt", "oneline",
            ],
        );
        check_lsc_text(&text, phone, issuer_subject);
        assert!(text.contains("Subject: CN = SEP001122334455"), "{text}");
    }
}

#[test]
fn lsc_verifies_under_capf_certificate() {
    for capf_key in CAPF_KEYS {
        let dir = tempfile::tempdir().unwrap();
        let params = IdentityParams {
            key: capf_key,
            organization: Some("Example Org".into()),
            organizational_unit: Some("Voice".into()),
            ..IdentityParams::default()
        };
        let capf = CapfIdentity::generate(&params, now()).unwrap();
        capf.save(dir.path()).unwrap();
        // The CAPF certificate itself is a strict CA certificate.
        let out = openssl(
            dir.path(),
            &[
                "verify",
                "-x509_strict",
                "-attime",
                "1800000000",
                "-CAfile",
                "capf.pem",
                "capf.pem",
            ],
        );
        assert!(out.contains("OK"), "{out}");
        let text = openssl(dir.path(), &["x509", "-in", "capf.pem", "-noout", "-text"]);
        assert!(text.contains("CA:TRUE, pathlen:0"), "{text}");
        assert!(
            text.contains("Digital Signature, Certificate Sign, CRL Sign"),
            "{text}"
        );
        let subject = capf.certificate().subject();
        assert!(subject.starts_with("CN=CAPF-"), "{subject}");
        assert_eq!(
            subject.len(),
            "CN=CAPF-12345678, O=Example Org, OU=Voice".len()
        );

        let issuer = capf.issuer().unwrap();
        let oneline = format!(
            "CN = {}, O = Example Org, OU = Voice",
            capf.certificate().common_name().unwrap()
        );
        issue_and_verify(dir.path(), &issuer, &["-CAfile", "capf.pem"], &oneline);

        // Subject of the LSC copies O and OU.
        let lsc = issuer
            .issue_lsc(
                "SEP00AABBCCDDEE",
                &key(KeySpec::Ec(capf_ca::EcCurve::P256))
                    .public_key_der()
                    .unwrap(),
                &LscProfile::default(),
                now(),
            )
            .unwrap();
        assert_eq!(lsc.subject, "CN=SEP00AABBCCDDEE, O=Example Org, OU=Voice");
    }
}

#[test]
fn lsc_verifies_under_intermediate_issuer() {
    for (capf_key, algo) in [
        (
            KeySpec::Rsa { bits: 2048 },
            ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        ),
        (
            KeySpec::Ec(capf_ca::EcCurve::P256),
            ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("ca.ext"),
            "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
        )
        .unwrap();
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-384",
                "-nodes",
                "-keyout",
                "root-key.pem",
                "-out",
                "root.pem",
                "-days",
                "3650",
                "-subj",
                "/CN=Operator Root/O=Example",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        let mut genkey = vec!["genpkey"];
        genkey.extend_from_slice(&algo);
        genkey.extend_from_slice(&["-out", "issuer-key.pem"]);
        openssl(d, &genkey);
        openssl(
            d,
            &[
                "req",
                "-new",
                "-key",
                "issuer-key.pem",
                "-subj",
                "/CN=CAPF Issuing CA/O=Example/OU=Phones",
                "-out",
                "issuer.csr",
            ],
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "issuer.csr",
                "-CA",
                "root.pem",
                "-CAkey",
                "root-key.pem",
                "-CAcreateserial",
                "-days",
                "3650",
                "-extfile",
                "ca.ext",
                "-out",
                "issuer.pem",
            ],
        );
        let issuer = Issuer::load(&d.join("issuer.pem"), &d.join("issuer-key.pem")).unwrap();
        assert_eq!(issuer.private_key().spec(), capf_key);
        issue_and_verify(
            d,
            &issuer,
            &["-CAfile", "root.pem", "-untrusted", "issuer.pem"],
            "CN = CAPF Issuing CA, O = Example, OU = Phones",
        );
        // The LSC names the intermediate (its subject), not the root.
        let lsc = issuer
            .issue_lsc(
                "SEP001122334455",
                &key(KeySpec::Ec(capf_ca::EcCurve::P256))
                    .public_key_der()
                    .unwrap(),
                &LscProfile::default(),
                now(),
            )
            .unwrap();
        assert_eq!(lsc.subject, "CN=SEP001122334455, O=Example, OU=Phones");
    }
}

#[test]
fn identity_save_load_round_trip_and_key_mode() {
    let dir = tempfile::tempdir().unwrap();
    let params = IdentityParams {
        key: KeySpec::Ec(capf_ca::EcCurve::P256),
        common_name: Some("CAPF-0badcafe".into()),
        ..IdentityParams::default()
    };
    let capf = CapfIdentity::generate(&params, now()).unwrap();
    assert!(!CapfIdentity::exists(dir.path()));
    capf.save(dir.path()).unwrap();
    assert!(CapfIdentity::exists(dir.path()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("capf-key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let loaded = CapfIdentity::load(dir.path()).unwrap();
    assert_eq!(loaded.certificate(), capf.certificate());
    assert_eq!(loaded.certificate().subject(), "CN=CAPF-0badcafe");
    // openssl reads our PKCS#8 key and agrees it belongs to the certificate.
    let from_key = openssl(dir.path(), &["pkey", "-in", "capf-key.pem", "-pubout"]);
    let from_cert = openssl(
        dir.path(),
        &["x509", "-in", "capf.pem", "-noout", "-pubkey"],
    );
    assert_eq!(from_key, from_cert);
    let fp = openssl(
        dir.path(),
        &[
            "x509",
            "-in",
            "capf.pem",
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
    );
    let ours: String = capf
        .certificate()
        .fingerprint_sha256()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    assert!(fp.contains(&ours), "{fp} vs {ours}");
    // The hex form is the same digest, lower case, without colons.
    let hex_form = capf.certificate().fingerprint_sha256_hex();
    assert_eq!(hex_form, ours.replace(':', "").to_lowercase());
    assert_eq!(
        capf_ca::sha256_fingerprint(capf.certificate().der()),
        hex_form
    );
    let path = capf.write_hashed_copy(dir.path()).unwrap();
    let hash = openssl(dir.path(), &["x509", "-in", "capf.pem", "-noout", "-hash"]);
    assert_eq!(
        path.file_name().unwrap().to_str().unwrap(),
        format!("{}.0", hash.trim())
    );
    // A mismatched key is refused.
    let other = PrivateKey::generate(KeySpec::Ec(capf_ca::EcCurve::P256)).unwrap();
    assert!(CapfIdentity::from_parts(capf.certificate().clone(), other.clone()).is_err());
    assert!(Issuer::new(capf.certificate().clone(), other, vec![]).is_err());
}

#[test]
fn lsc_validity_and_backdating() {
    use std::time::Duration;
    let capf = CapfIdentity::generate(
        &IdentityParams {
            key: KeySpec::Ec(capf_ca::EcCurve::P256),
            ..IdentityParams::default()
        },
        now(),
    )
    .unwrap();
    let profile = LscProfile {
        validity: capf_ca::CertValidity::Days(30),
        backdate: Duration::from_secs(3600),
        ..LscProfile::default()
    };
    let spki = key(KeySpec::Ec(capf_ca::EcCurve::P256))
        .public_key_der()
        .unwrap();
    let a = capf
        .issuer()
        .unwrap()
        .issue_lsc("SEP001122334455", &spki, &profile, now())
        .unwrap();
    let b = capf
        .issuer()
        .unwrap()
        .issue_lsc("SEP001122334455", &spki, &profile, now())
        .unwrap();
    assert_ne!(a.serial, b.serial);
    assert_eq!(a.not_before, now() - Duration::from_secs(3600));
    assert_eq!(a.not_after, now() + Duration::from_secs(30 * 86400));
    assert!(
        capf.issuer()
            .unwrap()
            .issue_lsc("SEP 1", &spki, &profile, now())
            .is_err()
    );
    assert!(
        capf.issuer()
            .unwrap()
            .issue_lsc("SEP1", b"garbage", &profile, now())
            .is_err()
    );
}

#[test]
fn lsc_not_after_is_capped_at_the_issuer_not_after() {
    use std::time::Duration;
    let capf = CapfIdentity::generate(
        &IdentityParams {
            key: KeySpec::Ec(capf_ca::EcCurve::P256),
            validity: capf_ca::CertValidity::Years(1),
            ..IdentityParams::default()
        },
        now(),
    )
    .unwrap();
    let issuer = capf.issuer().unwrap();
    let issuer_end = capf.certificate().not_after();
    assert_eq!(issuer_end, now() + Duration::from_secs(365 * 86400));
    let spki = key(KeySpec::Ec(capf_ca::EcCurve::P256))
        .public_key_der()
        .unwrap();
    let five_years = LscProfile {
        validity: capf_ca::CertValidity::Years(5),
        ..LscProfile::default()
    };

    // Five years asked, one year left on the issuer: the LSC ends with it.
    let lsc = issuer
        .issue_lsc("SEP001122334455", &spki, &five_years, now())
        .unwrap();
    assert_eq!(lsc.not_after, issuer_end);
    assert_eq!(lsc.not_before, now() - Duration::from_secs(600));
    let parsed = capf_ca::CaCertificate::from_der(&lsc.der, "LSC").unwrap();
    assert_eq!(parsed.not_after(), issuer_end);
    // openssl agrees on both ends and still verifies it strictly.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), capf.certificate().pem()).unwrap();
    std::fs::write(dir.path().join("lsc.pem"), lsc.pem()).unwrap();
    let ends = |file: &str| openssl(dir.path(), &["x509", "-in", file, "-noout", "-enddate"]);
    assert_eq!(ends("lsc.pem"), ends("ca.pem"));
    let at = now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    openssl(
        dir.path(),
        &[
            "verify",
            "-x509_strict",
            "-attime",
            &at,
            "-CAfile",
            "ca.pem",
            "lsc.pem",
        ],
    );

    // A validity that ends before the issuer is kept as asked.
    let short = LscProfile {
        validity: capf_ca::CertValidity::Days(30),
        ..LscProfile::default()
    };
    let lsc = issuer
        .issue_lsc("SEP001122334455", &spki, &short, now())
        .unwrap();
    assert_eq!(lsc.not_after, now() + Duration::from_secs(30 * 86400));

    // One second before the issuer expires: an LSC that ends with it.
    let last = issuer_end - Duration::from_secs(1);
    let lsc = issuer
        .issue_lsc("SEP001122334455", &spki, &five_years, last)
        .unwrap();
    assert_eq!(lsc.not_after, issuer_end);
    assert!(lsc.not_before < lsc.not_after);

    // Once the issuer has expired nothing is issued, and the error says so.
    for at in [issuer_end, issuer_end + Duration::from_secs(86400)] {
        match issuer.issue_lsc("SEP001122334455", &spki, &five_years, at) {
            Err(capf_ca::CaError::IssuerExpired { subject, not_after }) => {
                assert_eq!(subject, capf.certificate().subject());
                assert!(!not_after.is_empty());
            }
            other => panic!("{other:?}"),
        }
    }
    let err = issuer
        .issue_lsc("SEP001122334455", &spki, &five_years, issuer_end)
        .unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
}

/// Both signing backends (RustCrypto always; ring with the feature `ring`)
/// issue LSCs that openssl accepts, for every CAPF key ring can hold and
/// one it cannot (P-384 stays on RustCrypto).
#[test]
fn every_signing_backend_issues_verifiable_lscs() {
    use capf_ca::{EcCurve, SigningBackend};
    let phone = key(KeySpec::Ec(EcCurve::P256)).public_key_der().unwrap();
    for capf_key in [
        KeySpec::Rsa { bits: 2048 },
        KeySpec::Ec(EcCurve::P256),
        KeySpec::Ec(EcCurve::P384),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let params = IdentityParams {
            key: capf_key,
            ..IdentityParams::default()
        };
        let capf = CapfIdentity::generate(&params, now()).unwrap();
        capf.save(dir.path()).unwrap();
        let fast = capf.issuer().unwrap();
        let expected = if cfg!(feature = "ring") && capf_key != KeySpec::Ec(EcCurve::P384) {
            SigningBackend::Ring
        } else {
            SigningBackend::RustCrypto
        };
        assert_eq!(fast.private_key().signing_backend(), expected, "{capf_key}");
        let portable = Issuer::new(
            capf.certificate().clone(),
            capf.private_key().clone().portable(),
            Vec::new(),
        )
        .unwrap();
        assert_eq!(
            portable.private_key().signing_backend(),
            SigningBackend::RustCrypto
        );
        for (backend, issuer) in [("default", &fast), ("portable", &portable)] {
            let lsc = issuer
                .issue_lsc("SEP001122334455", &phone, &LscProfile::default(), now())
                .unwrap();
            std::fs::write(dir.path().join("lsc.pem"), lsc.pem()).unwrap();
            let out = openssl(
                dir.path(),
                &[
                    "verify",
                    "-x509_strict",
                    "-attime",
                    "1800000000",
                    "-CAfile",
                    "capf.pem",
                    "lsc.pem",
                ],
            );
            assert!(out.contains("lsc.pem: OK"), "{capf_key} {backend}: {out}");
        }
    }
}
