//! The openssl-only checks of trust-list.md section B, on files we build:
//! cut element 12 out of the header, verify the rest with `openssl dgst
//! -verify` and the signer certificate's public key; for an `.enc.sgn`,
//! unwrap the AES key with `openssl pkeyutl`, decrypt with `openssl enc
//! -aes-128-cbc -nopad`, drop the pad bytes and compare the digest with tag
//! 27. The cut is written here from the doc's Python, not with the crate.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;

use capf_provisioning::{
    DigestAlgorithm, Role, SignedFile, SignerVersion, TrustListBuilder, encrypt_config,
};
use common::*;

/// The doc's script, verbatim (run when python3 is there, to check that our
/// transliteration cuts the same bytes).
const DOC_SCRIPT: &str = r#"import sys
d=open(sys.argv[1],"rb").read(); hl=int.from_bytes(d[8:10],"big"); i=10
while i<hl:
    t=d[i]
    if t==13: i+=1; continue
    n=int.from_bytes(d[i+1:i+3],"big")
    if t in (3,7,9,16,17,21): i+=3; continue
    if t==12: open("sig.bin","wb").write(d[i+3:i+3+n]); open("signed.bin","wb").write(d[:i]+d[i+3+n:])
    i+=3+n"#;

/// Header elements by tag (values), walking as the doc's script does.
fn walk(d: &[u8]) -> Vec<(u8, usize, Vec<u8>)> {
    let hl = usize::from(u16::from_be_bytes([d[8], d[9]]));
    let mut out = Vec::new();
    let mut i = 10;
    while i < hl {
        let t = d[i];
        if t == 13 {
            i += 1;
            continue;
        }
        let n = usize::from(u16::from_be_bytes([d[i + 1], d[i + 2]]));
        if [3, 7, 9, 16, 17, 21].contains(&t) {
            i += 3;
            continue;
        }
        out.push((t, i, d[i + 3..i + 3 + n].to_vec()));
        i += 3 + n;
    }
    out
}

fn cut(d: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (_, at, sig) = walk(d).into_iter().find(|(t, _, _)| *t == 12).unwrap();
    let mut signed = d[..at].to_vec();
    signed.extend_from_slice(&d[at + 3 + sig.len()..]);
    (sig, signed)
}

fn run_openssl(dir: &Path, args: &[&str]) -> String {
    let (ok, out) = openssl(dir, args);
    assert!(ok, "openssl {args:?} failed:\n{out}");
    out
}

/// Section B on one file: `Verified OK` with the signer's public key.
fn openssl_verifies(file: &[u8], signer_cert_pem: &str, digest: DigestAlgorithm) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("file.bin"), file).unwrap();
    let (sig, signed) = cut(file);
    std::fs::write(d.join("sig.bin"), &sig).unwrap();
    std::fs::write(d.join("signed.bin"), &signed).unwrap();
    let python = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if python {
        let ok = Command::new("python3")
            .args(["-c", DOC_SCRIPT, "file.bin"])
            .current_dir(d)
            .status()
            .unwrap()
            .success();
        assert!(ok, "the doc's script failed");
        assert_eq!(std::fs::read(d.join("sig.bin")).unwrap(), sig);
        assert_eq!(std::fs::read(d.join("signed.bin")).unwrap(), signed);
    }
    std::fs::write(d.join("signer-cert.pem"), signer_cert_pem).unwrap();
    let pubkey = run_openssl(d, &["x509", "-in", "signer-cert.pem", "-pubkey", "-noout"]);
    std::fs::write(d.join("signer.pub"), pubkey).unwrap();
    let flag = match digest {
        DigestAlgorithm::Sha1 => "-sha1",
        DigestAlgorithm::Sha512 => "-sha512",
        other => panic!("{other}"),
    };
    let (ok, out) = openssl(
        d,
        &[
            "dgst",
            flag,
            "-verify",
            "signer.pub",
            "-signature",
            "sig.bin",
            "signed.bin",
        ],
    );
    assert_eq!(ok, out.contains("Verified OK"), "{out}");
    ok
}

fn cert_pem(pem: &str) -> String {
    cert(pem).pem()
}

#[test]
fn openssl_verifies_the_trust_lists_we_build() {
    let cases = [
        (
            TrustListBuilder::new(1_800_000_000)
                .add(Role::Sast, cert(SAST_PEM))
                .add(Role::Capf, cert(CAPF_PEM)),
            SAST_PEM,
        ),
        (
            TrustListBuilder::new(1_800_000_001)
                .digest(DigestAlgorithm::Sha512)
                .signer_version(SignerVersion::V1_1)
                .add(Role::Sast, cert(SAST_PEM))
                .add(Role::Sast, cert(SAST2_PEM))
                .add(Role::Capf, cert(CAPF_EC_PEM))
                .add(Role::Tvs, cert(CAPF_PEM))
                .add(Role::AppServer, cert(PHONE_LSC_PEM)),
            SAST_PEM,
        ),
        (
            TrustListBuilder::new(1_800_000_002)
                .file_name("CTLFile.tlv")
                .add(Role::Sast, cert(SAST2_PEM))
                .add(Role::Ccm, cert(TFTP_PEM))
                .add(Role::Tftp, cert(TFTP_PEM))
                .add(Role::Capf, cert(CAPF_PEM)),
            SAST2_PEM,
        ),
    ];
    for (builder, signer_pem) in cases {
        let bytes = builder.build(&signer(signer_pem)).unwrap();
        assert!(
            openssl_verifies(&bytes, &cert_pem(signer_pem), builder.digest),
            "{}",
            builder.file_name
        );
        // Any other key: openssl says no.
        assert!(!openssl_verifies(
            &bytes,
            &cert_pem(TFTP_PEM),
            builder.digest
        ));
    }
}

#[test]
fn openssl_agrees_on_the_golden_lists() {
    assert!(openssl_verifies(
        ITL_V10_SHA1,
        &cert_pem(SAST_PEM),
        DigestAlgorithm::Sha1
    ));
    assert!(openssl_verifies(
        ITL_V10_SHA512,
        &cert_pem(SAST_PEM),
        DigestAlgorithm::Sha512
    ));
    assert!(openssl_verifies(
        CTL_PADDED,
        &cert_pem(SAST2_PEM),
        DigestAlgorithm::Sha1
    ));
    assert!(!openssl_verifies(
        ITL_TAMPERED,
        &cert_pem(SAST_PEM),
        DigestAlgorithm::Sha1
    ));
}

#[test]
fn openssl_verifies_our_signed_config() {
    for digest in [DigestAlgorithm::Sha1, DigestAlgorithm::Sha512] {
        let bytes = SignedFile::sign(
            &signer(TFTP_PEM),
            "Desktops/320x196x4/List.xml.sgn",
            CONFIG,
            digest,
            1_800_000_000,
        )
        .unwrap();
        assert!(openssl_verifies(&bytes, &cert_pem(TFTP_PEM), digest));
    }
}

#[test]
fn openssl_decrypts_our_encrypted_config() {
    let files = encrypt_config(
        &signer(TFTP_PEM),
        &cert(PHONE_LSC_PEM),
        "SEP001122334455.cnf.xml",
        CONFIG,
        DigestAlgorithm::Sha1,
        1_800_000_000,
    )
    .unwrap();
    let enc = &files.encrypted;
    assert!(openssl_verifies(
        enc,
        &cert_pem(TFTP_PEM),
        DigestAlgorithm::Sha1
    ));
    assert!(openssl_verifies(
        &files.stub,
        &cert_pem(TFTP_PEM),
        DigestAlgorithm::Sha1
    ));

    let elements = walk(enc);
    let get = |tag: u8| {
        elements
            .iter()
            .find(|(t, _, _)| *t == tag)
            .unwrap()
            .2
            .clone()
    };
    let (iv, pad, wrapped, digest) = (get(19), get(20), get(25), get(27));
    let pad = usize::from(u16::from_be_bytes([pad[0], pad[1]]));
    let hl = usize::from(u16::from_be_bytes([enc[8], enc[9]]));

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("phone-key.pem"), PHONE_KEY_PEM).unwrap();
    std::fs::write(d.join("key.bin"), &wrapped).unwrap();
    std::fs::write(d.join("payload.bin"), &enc[hl..]).unwrap();
    run_openssl(
        d,
        &[
            "pkeyutl",
            "-decrypt",
            "-inkey",
            "phone-key.pem",
            "-pkeyopt",
            "rsa_padding_mode:pkcs1",
            "-in",
            "key.bin",
            "-out",
            "aes.key",
        ],
    );
    let key = std::fs::read(d.join("aes.key")).unwrap();
    assert_eq!(key.len(), 16);
    run_openssl(
        d,
        &[
            "enc",
            "-d",
            "-aes-128-cbc",
            "-nopad",
            "-K",
            &hex::encode(&key),
            "-iv",
            &hex::encode(&iv),
            "-in",
            "payload.bin",
            "-out",
            "plain.bin",
        ],
    );
    let mut plain = std::fs::read(d.join("plain.bin")).unwrap();
    assert!(plain[plain.len() - pad..].iter().all(|&b| b == 0x0d));
    plain.truncate(plain.len() - pad);
    std::fs::write(d.join("plain.bin"), &plain).unwrap();
    let out = run_openssl(d, &["dgst", "-sha1", "-r", "plain.bin"]);
    assert!(out.starts_with(&hex::encode(&digest)), "{out}");
    assert_eq!(plain, CONFIG);
}
