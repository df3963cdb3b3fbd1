//! `<hash>.0` names equal `openssl x509 -hash`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use capf_ca::{CaCertificate, hashed_file_name, openssl_subject_hash};
use common::openssl;

#[test]
fn subject_hash_matches_openssl() {
    let subjects = [
        "/CN=CAPF-1a2b3c4d",
        "/CN=CAPF/O=CAPF/OU=CAPF",
        "/CN=Mixed Case NAME/O=ACME Corp",
        "/CN=  Extra   Spaces  Here /O=Lots\tof  Space",
        "/C=NZ/ST=Wellington/L=Te Aro/O=Example Ltd/OU=Voice Team/CN=capf.example.com",
        "/CN=UPPER/OU=a/OU=B/OU=c",
        "/CN=Ünïcödé Näme/O=ÄÖÜ",
        "/CN=a+O=Multi Valued/OU=x",
    ];
    for (i, subject) in subjects.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        openssl(
            dir.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "k.pem",
                "-out",
                "c.pem",
                "-days",
                "1",
                "-utf8",
                "-multivalue-rdn",
                "-subj",
                subject,
            ],
        );
        let expected = openssl(dir.path(), &["x509", "-in", "c.pem", "-noout", "-hash"]);
        let pem = std::fs::read_to_string(dir.path().join("c.pem")).unwrap();
        let cert = CaCertificate::from_pem(&pem, "test").unwrap();
        let hash = openssl_subject_hash(cert.der()).unwrap();
        assert_eq!(
            format!("{hash:08x}"),
            expected.trim(),
            "subject #{i} {subject}"
        );
        assert_eq!(
            hashed_file_name(cert.der()).unwrap(),
            format!("{}.0", expected.trim())
        );
        assert_eq!(
            cert.hashed_file_name().unwrap(),
            format!("{}.0", expected.trim())
        );
    }
}

#[test]
fn vector_issuer_hash_matches_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let pem = include_str!("vectors/capf-issuer.pem");
    std::fs::write(dir.path().join("c.pem"), pem).unwrap();
    let expected = openssl(dir.path(), &["x509", "-in", "c.pem", "-noout", "-hash"]);
    let cert = CaCertificate::from_pem(pem, "vector").unwrap();
    assert_eq!(
        cert.hashed_file_name().unwrap(),
        format!("{}.0", expected.trim())
    );
}

#[test]
fn sha256_fingerprint_known_vectors() {
    // sha256sum of the empty input.
    assert_eq!(
        capf_ca::sha256_fingerprint(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    // `openssl x509 -in tests/vectors/capf-issuer.pem -outform DER | sha256sum`
    // (openssl x509 -fingerprint -sha256: 97:26:B7:E1:...:C9:50).
    let expected = "9726b7e18b9fdca93b863cfcaf61ce377d04a0dbf6eb5ca12f9c0db76b34c950";
    let cert = CaCertificate::from_pem(include_str!("vectors/capf-issuer.pem"), "vector").unwrap();
    assert_eq!(capf_ca::sha256_fingerprint(cert.der()), expected);
    assert_eq!(cert.fingerprint_sha256_hex(), expected);
    assert_eq!(hex::encode(cert.fingerprint_sha256()), expected);
}
