//! Server certificates for the operator console: the profile (checked by
//! `openssl verify -x509_strict -purpose sslserver` with `-verify_ip` /
//! `-verify_hostname`), names, saving with a 0600 key, and the checks that
//! decide whether a stored one is used again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::IpAddr;
use std::time::Duration;

use capf_ca::{
    CaError, CapfIdentity, EcCurve, IdentityParams, KeySpec, ServerCertProblem, ServerCertProfile,
    ServerCertificate, ServerNames, subject_alt_names,
};
use common::{CAPF_KEYS, key, now, openssl, openssl_status};

const DAY: Duration = Duration::from_secs(86_400);

fn names(list: &[&str]) -> ServerNames {
    let mut n = ServerNames::new();
    for name in list {
        n.add(name).unwrap();
    }
    n
}

fn identity(spec: KeySpec) -> CapfIdentity {
    CapfIdentity::generate(
        &IdentityParams {
            key: spec,
            ..IdentityParams::default()
        },
        now(),
    )
    .unwrap()
}

#[test]
fn names_parse_and_normalise() {
    let mut n = ServerNames::new();
    n.add("CAPF.Example.org.").unwrap();
    n.add("capf.example.org").unwrap();
    n.add("127.0.0.1").unwrap();
    n.add("::1").unwrap();
    n.add("localhost").unwrap();
    assert_eq!(n.dns_names(), ["capf.example.org", "localhost"]);
    assert_eq!(
        n.ip_addresses(),
        [
            "127.0.0.1".parse::<IpAddr>().unwrap(),
            "::1".parse().unwrap()
        ]
    );
    assert_eq!(n.to_string(), "capf.example.org, localhost, 127.0.0.1, ::1");
    for bad in [
        "",
        "*.example.org",
        "a..b",
        "-a.example",
        "a-.example",
        "under_score.example",
        "space here",
        &"a".repeat(64),
        &format!("{}.org", ["abc"; 70].join(".")),
    ] {
        let err = ServerNames::new().add(bad).unwrap_err();
        assert!(
            matches!(err, CaError::InvalidParameter { .. }),
            "{bad:?}: {err}"
        );
    }
    assert!(ServerNames::new().is_empty());
    assert!(names(&["a", "10.0.0.1"]).same_names(&names(&["10.0.0.1", "A"])));
    assert!(!names(&["a", "10.0.0.1"]).same_names(&names(&["a"])));
    assert!(!names(&["a"]).same_names(&names(&["a", "b"])));
}

#[test]
fn no_names_no_certificate() {
    let capf = identity(KeySpec::Ec(EcCurve::P256));
    let err = ServerCertificate::issue(
        &capf.issuer().unwrap(),
        &ServerNames::new(),
        &ServerCertProfile::default(),
        now(),
    )
    .unwrap_err();
    assert!(matches!(err, CaError::InvalidParameter { .. }), "{err}");
}

#[test]
fn profile_passes_openssl_as_a_tls_server_certificate() {
    for capf_key in CAPF_KEYS {
        let dir = tempfile::tempdir().unwrap();
        let capf = identity(capf_key);
        capf.save(dir.path()).unwrap();
        let issuer = capf.issuer().unwrap();
        let wanted = names(&["capf.example.org", "127.0.0.1", "::1"]);
        let server =
            ServerCertificate::issue(&issuer, &wanted, &ServerCertProfile::default(), now())
                .unwrap();
        assert_eq!(server.private_key().spec(), KeySpec::Ec(EcCurve::P256));
        assert_eq!(server.chain(), [capf.certificate().clone()]);
        assert_eq!(server.chain_der().len(), 2);
        assert_eq!(
            server.certificate().subject(),
            "CN=capf.example.org",
            "first DNS name as the common name"
        );
        assert!(subject_alt_names(server.certificate()).same_names(&wanted));
        // One year, a little backdated.
        assert_eq!(
            server.certificate().not_after(),
            now() + 365 * DAY,
            "validity"
        );
        assert_eq!(
            server.certificate().not_before(),
            now() - Duration::from_secs(600)
        );
        std::fs::write(dir.path().join("server.pem"), server.certificate().pem()).unwrap();
        let verify = |extra: &[&str]| {
            let mut args = vec![
                "verify",
                "-x509_strict",
                "-attime",
                "1800000000",
                "-purpose",
                "sslserver",
                "-CAfile",
                "capf.pem",
            ];
            args.extend_from_slice(extra);
            args.push("server.pem");
            openssl_status(dir.path(), &args)
        };
        for ok in [
            &["-verify_ip", "127.0.0.1"][..],
            &["-verify_ip", "::1"],
            &["-verify_hostname", "capf.example.org"],
        ] {
            let (success, out) = verify(ok);
            assert!(success && out.contains("server.pem: OK"), "{ok:?}: {out}");
        }
        for wrong in [
            &["-verify_ip", "127.0.0.2"][..],
            &["-verify_hostname", "other.example.org"],
        ] {
            let (success, out) = verify(wrong);
            assert!(!success, "{wrong:?} should fail: {out}");
        }
        let text = openssl(
            dir.path(),
            &["x509", "-in", "server.pem", "-noout", "-text"],
        );
        assert!(
            text.contains("X509v3 Basic Constraints: critical"),
            "{text}"
        );
        assert!(text.contains("CA:FALSE"), "{text}");
        assert!(text.contains("X509v3 Key Usage: critical"), "{text}");
        assert!(text.contains("Digital Signature\n"), "{text}");
        assert!(!text.contains("Key Encipherment"), "{text}");
        assert!(text.contains("TLS Web Server Authentication\n"), "{text}");
        assert!(!text.contains("Client Authentication"), "{text}");
        assert!(
            text.contains("DNS:capf.example.org, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1"),
            "{text}"
        );
        assert!(text.contains("X509v3 Subject Key Identifier"), "{text}");
        assert!(text.contains("X509v3 Authority Key Identifier"), "{text}");
    }
}

#[test]
fn rsa_server_key_also_gets_key_encipherment() {
    let dir = tempfile::tempdir().unwrap();
    let capf = identity(KeySpec::Ec(EcCurve::P256));
    let cert = capf
        .issuer()
        .unwrap()
        .issue_server_certificate(
            &names(&["10.1.2.3"]),
            &key(KeySpec::Rsa { bits: 2048 }).public_key_der().unwrap(),
            &ServerCertProfile::default(),
            now(),
        )
        .unwrap();
    assert_eq!(
        cert.subject(),
        "CN=10.1.2.3",
        "an IP address when no DNS name"
    );
    std::fs::write(dir.path().join("server.pem"), cert.pem()).unwrap();
    let text = openssl(
        dir.path(),
        &["x509", "-in", "server.pem", "-noout", "-text"],
    );
    assert!(
        text.contains("Digital Signature, Key Encipherment"),
        "{text}"
    );
    assert!(text.contains("IP Address:10.1.2.3"), "{text}");
}

#[test]
fn never_outlives_the_issuer_and_refuses_an_expired_one() {
    let capf = identity(KeySpec::Ec(EcCurve::P256));
    let issuer = capf.issuer().unwrap();
    let long = ServerCertProfile {
        validity: capf_ca::CertValidity::Years(100),
        ..ServerCertProfile::default()
    };
    let server = ServerCertificate::issue(&issuer, &names(&["a.example"]), &long, now()).unwrap();
    assert_eq!(
        server.certificate().not_after(),
        capf.certificate().not_after()
    );
    let after = capf.certificate().not_after() + DAY;
    let err = ServerCertificate::issue(&issuer, &names(&["a.example"]), &long, after).unwrap_err();
    assert!(matches!(err, CaError::IssuerExpired { .. }), "{err}");
}

#[test]
fn saved_with_a_private_key_file_and_loaded_back() {
    let dir = tempfile::tempdir().unwrap();
    let capf = identity(KeySpec::Ec(EcCurve::P256));
    let issuer = capf.issuer().unwrap();
    let server = ServerCertificate::issue(
        &issuer,
        &names(&["localhost", "127.0.0.1"]),
        &ServerCertProfile::default(),
        now(),
    )
    .unwrap();
    let cert_path = dir.path().join("admin.pem");
    let key_path = dir.path().join("admin-key.pem");
    server.save(&cert_path, &key_path).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let key_pem = std::fs::read_to_string(&key_path).unwrap();
    assert!(key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    let cert_pem = std::fs::read_to_string(&cert_path).unwrap();
    assert_eq!(cert_pem.matches("BEGIN CERTIFICATE").count(), 2);
    let loaded = ServerCertificate::load(&cert_path, &key_path).unwrap();
    assert_eq!(loaded.certificate(), server.certificate());
    assert_eq!(loaded.chain(), server.chain());
    assert_eq!(
        loaded.private_key().public_key_der().unwrap(),
        server.private_key().public_key_der().unwrap()
    );
    // A key of another certificate is refused.
    let other = ServerCertificate::issue(
        &issuer,
        &names(&["localhost"]),
        &ServerCertProfile::default(),
        now(),
    )
    .unwrap();
    std::fs::write(&key_path, other.private_key().to_pkcs8_pem().unwrap()).unwrap();
    let err = ServerCertificate::load(&cert_path, &key_path).unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
    // A missing file names itself.
    let err = ServerCertificate::load(&dir.path().join("none.pem"), &key_path).unwrap_err();
    assert!(err.to_string().contains("none.pem"), "{err}");
}

#[test]
fn check_decides_whether_to_use_it_again() {
    let capf = identity(KeySpec::Ec(EcCurve::P256));
    let issuer = capf.issuer().unwrap();
    let wanted = names(&["localhost", "127.0.0.1"]);
    let server =
        ServerCertificate::issue(&issuer, &wanted, &ServerCertProfile::default(), now()).unwrap();
    let margin = 30 * DAY;
    assert_eq!(server.check(&issuer, &wanted, now(), margin), Ok(()));
    assert_eq!(
        server.check(&issuer, &names(&["127.0.0.1", "LOCALHOST"]), now(), margin),
        Ok(()),
        "same names, other order and case"
    );
    assert_eq!(
        server.check(&issuer, &wanted, now() + 300 * DAY, margin),
        Ok(())
    );
    assert_eq!(
        server.check(&issuer, &wanted, now() + 340 * DAY, margin),
        Err(ServerCertProblem::ExpiresSoon)
    );
    assert_eq!(
        server.check(&issuer, &wanted, now() + 400 * DAY, margin),
        Err(ServerCertProblem::ExpiresSoon)
    );
    assert_eq!(
        server.check(&issuer, &wanted, now() - DAY, margin),
        Err(ServerCertProblem::NotYetValid)
    );
    let more = names(&["localhost", "127.0.0.1", "capf.example.org"]);
    let problem = server.check(&issuer, &more, now(), margin).unwrap_err();
    assert_eq!(
        problem,
        ServerCertProblem::OtherNames {
            has: wanted.clone()
        }
    );
    assert!(
        problem.to_string().contains("localhost, 127.0.0.1"),
        "{problem}"
    );
    // Another CA (even one with the same subject would fail the signature).
    let other = identity(KeySpec::Ec(EcCurve::P256)).issuer().unwrap();
    assert_eq!(
        server.check(&other, &wanted, now(), margin),
        Err(ServerCertProblem::OtherIssuer)
    );
}
