#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `capf trust-list` and `capf config` on a data directory, and `capf serve
//! --encrypted-config`: a phone enrolled over TLS gets a configuration
//! encrypted for its new LSC, which its key decrypts; trust lists built
//! with this directory's CAPF certificate name it with role CAPF; what
//! phones refuse is refused. The library's own tests check the formats
//! byte for byte and against openssl (crates/capf-provisioning/tests).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use capf_ca::{CaCertificate, PrivateKey};
use capf_provisioning::{EncryptedConfig, Role, SignedFile, TrustList};
use common::Serve;
use tempfile::TempDir;

/// The test keys of the golden files (SAST, TFTP...): each PEM file holds
/// the private key, then the certificate.
fn key_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/trust-list/keys")
        .join(name)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A phone's configuration, as a TFTP server would hold it.
const CONFIG: &str = "<device>\n  <deviceProtocol>SIP</deviceProtocol>\n  \
    <capfAuthMode>3</capfAuthMode>\n  <sipProfile><phoneLabel>Reception</phoneLabel></sipProfile>\n\
    </device>\n";

/// A data directory made by `capf init` (an RSA-2048 CAPF key, the
/// default, which a signer version 1.0 list can hold).
struct Lab {
    dir: TempDir,
}

impl Lab {
    fn new() -> Lab {
        let lab = Lab {
            dir: tempfile::tempdir().unwrap(),
        };
        lab.ok(&["init"]);
        lab
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn capf_certificate(&self) -> CaCertificate {
        let pem = std::fs::read_to_string(self.data().join("capf.pem")).unwrap();
        CaCertificate::from_pem(&pem, "capf.pem").unwrap()
    }

    /// `capf --data-dir DATA ARGS`, run in the lab's directory.
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_capf"))
            .current_dir(self.dir.path())
            .arg("--data-dir")
            .arg(self.data())
            .args(args)
            .env_remove("CAPF_DATA_DIR")
            .env_remove("CAPF_DATABASE_URL")
            .output()
            .unwrap()
    }

    /// Runs and expects exit 0; returns standard output.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "capf {args:?} ({:?}):\n{}{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Runs and expects exit `code`; returns standard output and error.
    fn fails(&self, code: i32, args: &[&str]) -> (String, String) {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "capf {args:?}: expected exit {code}:\n{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        (text(&out.stdout), text(&out.stderr))
    }

    /// `capf phone install` against `server`, trusting this CAPF, with no
    /// retries; expects the LSC installed.
    fn phone_install(&self, server: &Serve, device: &str, args: &[&str]) {
        let out = Command::new(env!("CARGO_BIN_EXE_capf"))
            .args(["phone", "install", "--server", &server.addr])
            .arg("--capf-cert")
            .arg(self.data().join("capf.pem"))
            .args(["--device", device, "--retries", "0", "--timeout", "30"])
            .args(args)
            .output()
            .unwrap();
        let stderr = text(&out.stderr);
        assert!(
            out.status.success() && stderr.contains("Succeeded: LSC installed"),
            "capf phone install {args:?} ({:?}):\n{}{stderr}\nserver log:\n{}",
            out.status,
            text(&out.stdout),
            server.log()
        );
    }

    fn serve(&self, args: &[&str]) -> Serve {
        let mut all = vec!["--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        Serve::start_with(&self.data(), self.path("serve.log"), &all)
    }
}

/// The phone's private key in a `--cert-out` file (its certificate first,
/// then its PKCS#8 key).
fn phone_key(file: &Path) -> PrivateKey {
    let pem = std::fs::read_to_string(file).unwrap();
    PrivateKey::from_pkcs8_pem(&pem[pem.find("-----BEGIN PRIVATE KEY-----").unwrap()..]).unwrap()
}

/// The certificate in a `--cert-out` file.
fn phone_certificate(file: &Path) -> CaCertificate {
    let pem = std::fs::read_to_string(file).unwrap();
    let end = "-----END CERTIFICATE-----";
    CaCertificate::from_pem(&pem[..pem.find(end).unwrap() + end.len()], "lsc").unwrap()
}

fn tftp_certificate() -> CaCertificate {
    let pem = std::fs::read_to_string(key_file("tftp.pem")).unwrap();
    capf_provisioning::certificate_from_pem(&pem, "tftp.pem").unwrap()
}

/// Waits (at most 60 s) until `condition` holds.
fn wait_until(what: &str, serve: &Serve, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; server log:\n{}",
            serve.log()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Checks the stub `NAME.sgn` beside an encrypted configuration: signed by
/// the TFTP key, saying encrConfig and naming the certificate's MD5.
fn check_stub(stub: &Path, certificate: &CaCertificate) {
    let signed = SignedFile::parse(&std::fs::read(stub).unwrap()).unwrap();
    signed.verify(&tftp_certificate()).unwrap();
    let body = text(signed.payload());
    assert!(body.contains("<encrConfig>true</encrConfig>"), "{body}");
    let hash = capf_provisioning::cert_hash(certificate);
    assert!(
        body.contains(&format!("<certHash>{hash}</certHash>")),
        "{body}"
    );
}

/// The done-when round trip: `init`, a phone enrolled over TLS, its
/// configuration encrypted with `config encrypt --device`, decrypted by
/// `config decrypt` with the phone's key.
#[test]
fn a_phone_enrolled_over_tls_decrypts_its_encrypted_configuration() {
    let lab = Lab::new();
    let server = lab.serve(&[]);
    let name = "SEP001122334455";
    lab.ok(&[
        "device",
        "add",
        name,
        "--operation",
        "install",
        "--auth-string",
        "12345678",
        "--key",
        "rsa2048",
    ]);
    let lsc = lab.path("lsc.pem");
    lab.phone_install(
        &server,
        name,
        &["--auth-string", "12345678", "--cert-out", p(&lsc)],
    );

    let config = lab.path(&format!("{name}.cnf.xml"));
    std::fs::write(&config, CONFIG).unwrap();
    let tftp = key_file("tftp.pem");
    let stdout = lab.ok(&[
        "config",
        "encrypt",
        p(&config),
        "--tftp",
        p(&tftp),
        "--device",
        name,
    ]);
    let encrypted = lab.path(&format!("{name}.cnf.xml.enc.sgn"));
    let stub = lab.path(&format!("{name}.cnf.xml.sgn"));
    assert!(
        stdout.contains("encrypted for the LSC of SEP001122334455"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&encrypted.display().to_string()),
        "{stdout}"
    );
    check_stub(&stub, &phone_certificate(&lsc));

    // The phone's key (the --cert-out file: certificate and key) decrypts
    // it; the signature is checked first with --tftp.
    let stdout = lab.ok(&["config", "decrypt", p(&encrypted), "--key", p(&lsc)]);
    assert_eq!(stdout, CONFIG);
    let out = lab.run(&[
        "config",
        "decrypt",
        p(&encrypted),
        "--key",
        p(&lsc),
        "--tftp",
        p(&tftp),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), CONFIG);
    assert!(text(&out.stderr).contains("signature valid"));
    // ... and so does the library, with the key alone.
    let parsed = EncryptedConfig::parse(&std::fs::read(&encrypted).unwrap()).unwrap();
    assert_eq!(parsed.decrypt(&phone_key(&lsc)).unwrap(), CONFIG.as_bytes());

    // --out: written 0600 (configurations hold secrets), never replaced
    // without --force.
    let plain = lab.path("plain.xml");
    lab.ok(&[
        "config",
        "decrypt",
        p(&encrypted),
        "--key",
        p(&lsc),
        "--out",
        p(&plain),
    ]);
    assert_eq!(std::fs::read_to_string(&plain).unwrap(), CONFIG);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&plain).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let (_, stderr) = lab.fails(
        1,
        &[
            "config",
            "decrypt",
            p(&encrypted),
            "--key",
            p(&lsc),
            "--out",
            p(&plain),
        ],
    );
    assert!(stderr.contains("--force"), "{stderr}");

    // Another key does not decrypt it; another TFTP certificate does not
    // check it, and nothing is decrypted then.
    let (stdout, _) = lab.fails(
        1,
        &[
            "config",
            "decrypt",
            p(&encrypted),
            "--key",
            p(&key_file("phone-lsc-key.pem")),
        ],
    );
    assert!(stdout.is_empty(), "{stdout}");
    let (stdout, stderr) = lab.fails(
        1,
        &[
            "config",
            "decrypt",
            p(&encrypted),
            "--key",
            p(&lsc),
            "--tftp",
            p(&key_file("sast.pem")),
        ],
    );
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("not decrypted"), "{stderr}");

    // The files are not replaced without --force; with it they are.
    let before = std::fs::read(&encrypted).unwrap();
    let encrypt = [
        "config",
        "encrypt",
        p(&config),
        "--tftp",
        p(&tftp),
        "--device",
        name,
    ];
    let (_, stderr) = lab.fails(1, &encrypt);
    assert!(stderr.contains("already exists: add --force"), "{stderr}");
    assert_eq!(std::fs::read(&encrypted).unwrap(), before);
    let mut forced = encrypt.to_vec();
    forced.push("--force");
    lab.ok(&forced);
    assert_ne!(std::fs::read(&encrypted).unwrap(), before);
    assert_eq!(
        lab.ok(&["config", "decrypt", p(&encrypted), "--key", p(&lsc)]),
        CONFIG
    );

    // --certificate: the same, for a certificate file; --out-dir.
    let out_dir = lab.path("tftp-root");
    std::fs::create_dir(&out_dir).unwrap();
    lab.ok(&[
        "config",
        "encrypt",
        p(&config),
        "--tftp",
        p(&tftp),
        "--certificate",
        p(&lsc),
        "--out-dir",
        p(&out_dir),
    ]);
    let copy = out_dir.join(format!("{name}.cnf.xml.enc.sgn"));
    assert_eq!(
        lab.ok(&["config", "decrypt", p(&copy), "--key", p(&lsc)]),
        CONFIG
    );
    check_stub(
        &out_dir.join(format!("{name}.cnf.xml.sgn")),
        &phone_certificate(&lsc),
    );

    // The file must be the device's own (a usage error), and the device
    // must be configured.
    let (_, stderr) = lab.fails(
        2,
        &[
            "config",
            "encrypt",
            p(&config),
            "--tftp",
            p(&tftp),
            "--device",
            "SEP00112233FFFF",
        ],
    );
    assert!(
        stderr.contains("phones ask for SEP00112233FFFF.cnf.xml"),
        "{stderr}"
    );
    let unknown = lab.path("SEP00112233FFFF.cnf.xml");
    std::fs::write(&unknown, CONFIG).unwrap();
    let (_, stderr) = lab.fails(
        1,
        &[
            "config",
            "encrypt",
            p(&unknown),
            "--tftp",
            p(&tftp),
            "--device",
            "SEP00112233FFFF",
        ],
    );
    assert!(
        stderr.contains("SEP00112233FFFF is not configured"),
        "{stderr}"
    );
    assert!(!lab.path("SEP00112233FFFF.cnf.xml.enc.sgn").exists());
    // Neither --device nor --certificate: a usage error.
    lab.fails(2, &["config", "encrypt", p(&config), "--tftp", p(&tftp)]);
    // A TFTP file without its key cannot sign.
    let (_, stderr) = lab.fails(
        1,
        &[
            "config",
            "encrypt",
            p(&config),
            "--tftp",
            p(&lab.data().join("capf.pem")),
            "--device",
            name,
            "--force",
        ],
    );
    assert!(stderr.contains("--tftp"), "{stderr}");
    assert!(!stderr.contains("BEGIN"), "{stderr}");
}

#[test]
fn config_sign_writes_file_sgn() {
    let lab = Lab::new();
    let file = lab.path("SEP001122334455.cnf.xml");
    std::fs::write(&file, CONFIG).unwrap();
    let tftp = key_file("tftp.pem");
    let stdout = lab.ok(&["config", "sign", p(&file), "--tftp", p(&tftp)]);
    let sgn = lab.path("SEP001122334455.cnf.xml.sgn");
    assert!(stdout.contains("SEP001122334455.cnf.xml.sgn"), "{stdout}");
    let signed = SignedFile::parse(&std::fs::read(&sgn).unwrap()).unwrap();
    signed.verify(&tftp_certificate()).unwrap();
    assert_eq!(signed.payload(), CONFIG.as_bytes());
    assert_eq!(signed.header.file_name, "SEP001122334455.cnf.xml.sgn");

    // Not replaced without --force; a symbolic link is never followed.
    let before = std::fs::read(&sgn).unwrap();
    let (_, stderr) = lab.fails(1, &["config", "sign", p(&file), "--tftp", p(&tftp)]);
    assert!(stderr.contains("--force"), "{stderr}");
    assert_eq!(std::fs::read(&sgn).unwrap(), before);
    lab.ok(&["config", "sign", p(&file), "--tftp", p(&tftp), "--force"]);
    #[cfg(unix)]
    {
        let target = lab.path("target");
        let link = lab.path("link.sgn");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let (_, stderr) = lab.fails(
            1,
            &[
                "config",
                "sign",
                p(&file),
                "--tftp",
                p(&tftp),
                "--out",
                p(&link),
                "--force",
            ],
        );
        assert!(stderr.contains("symbolic link"), "{stderr}");
        assert!(!target.exists());
    }
    // A signed file is not signed again; an EC key cannot sign.
    let (_, stderr) = lab.fails(
        1,
        &[
            "config",
            "sign",
            p(&sgn),
            "--tftp",
            p(&tftp),
            "--out",
            p(&lab.path("twice.sgn")),
        ],
    );
    assert!(stderr.contains("already a signed file"), "{stderr}");
    lab.fails(
        1,
        &[
            "config",
            "sign",
            p(&file),
            "--tftp",
            p(&key_file("sast-ec.pem")),
            "--out",
            p(&lab.path("ec.sgn")),
        ],
    );
    assert!(!lab.path("ec.sgn").exists());
}

/// `trust-list build` with this directory's CAPF certificate, then `show`
/// (text and JSON) names it with role CAPF and a valid signature; a
/// tampered copy makes `show` and `verify` fail; `verify --trust`.
#[test]
fn trust_list_names_this_capf_and_its_signature_is_checked() {
    let lab = Lab::new();
    let capf = lab.capf_certificate();
    let itl = lab.path("ITLFile.tlv");
    let (sast, sast2, tftp) = (
        key_file("sast.pem"),
        key_file("sast2.pem"),
        key_file("tftp.pem"),
    );
    let stdout = lab.ok(&[
        "trust-list",
        "build",
        "--out",
        p(&itl),
        "--sast",
        p(&sast),
        "--sast",
        p(&sast2),
        "--tftp",
        p(&tftp),
    ]);
    assert!(stdout.contains("record 3: CAPF"), "{stdout}");

    // The library reads what the command wrote.
    let list = TrustList::parse(&std::fs::read(&itl).unwrap()).unwrap();
    assert_eq!(list.verify().unwrap(), 0);
    let roles: Vec<Role> = list.records.iter().map(|r| r.role).collect();
    assert_eq!(roles, [Role::Sast, Role::Sast, Role::Tftp, Role::Capf]);
    assert_eq!(list.records[3].certificate, capf);
    assert_eq!(list.header.file_name, "ITLFile.tlv");

    // show: every header field, every record, the signature checked.
    let stdout = lab.ok(&["trust-list", "show", p(&itl)]);
    for field in [
        "Version:",
        "Header length:",
        "Signer version:",
        "Signer name:",
        "Signer issuer:",
        "Signer serial:",
        "Digest:",
        "Key size code:",
        "File name:",
        "Built:",
        "Record 3: CAPF",
    ] {
        assert!(stdout.contains(field), "{field} missing:\n{stdout}");
    }
    assert!(stdout.contains(&format!(
        "Subject:         {}",
        list.records[3].subject_name
    )));
    assert!(
        stdout.contains("Signature: valid (checked with record 0, SAST CN=SAST,O=SAST,OU=SAST)"),
        "{stdout}"
    );

    let stdout = lab.ok(&["trust-list", "show", p(&itl), "--json"]);
    let view: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(view["signature"]["valid"], true);
    assert_eq!(view["signature"]["signer_record"], 0);
    assert_eq!(view["header"]["file_name"], "ITLFile.tlv");
    assert_eq!(view["header"]["signer_version"], "1.0");
    assert_eq!(view["records"].as_array().unwrap().len(), 4);
    let record = &view["records"][3];
    assert_eq!(record["role"], "CAPF");
    assert_eq!(record["certificate_sha256"], capf.fingerprint_sha256_hex());
    assert_eq!(record["key_algorithm"], "RSA");

    // verify: a phone that trusts either SAST of its list takes a list
    // signed by the first; one that trusts only the second, or a TFTP
    // certificate, does not.
    let stdout = lab.ok(&["trust-list", "verify", p(&itl), "--trust", p(&sast)]);
    assert!(stdout.starts_with("accepted"), "{stdout}");
    lab.ok(&["trust-list", "verify", p(&itl), "--trust", p(&itl)]);
    let (stdout, _) = lab.fails(1, &["trust-list", "verify", p(&itl), "--trust", p(&sast2)]);
    assert!(stdout.starts_with("refused"), "{stdout}");
    lab.fails(1, &["trust-list", "verify", p(&itl), "--trust", p(&tftp)]);
    let (stdout, _) = lab.fails(
        1,
        &[
            "trust-list",
            "verify",
            p(&itl),
            "--trust",
            p(&key_file("capf.pem")),
            "--json",
        ],
    );
    let verdict: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(verdict["accepted"], false);
    lab.fails(2, &["trust-list", "verify", p(&itl)]);

    // A list signed by the second SAST: a phone holding the first list
    // (which names both SASTs) takes it.
    let ctl = lab.path("CTLFile.tlv");
    lab.ok(&[
        "trust-list",
        "build",
        "--out",
        p(&ctl),
        "--sast",
        p(&sast2),
        "--sast",
        p(&sast),
    ]);
    lab.ok(&["trust-list", "verify", p(&ctl), "--trust", p(&itl)]);
    lab.fails(1, &["trust-list", "verify", p(&ctl), "--trust", p(&sast)]);

    // One byte changed in the CAPF record's subject: show prints it all
    // and exits 1; so does verify.
    let mut bytes = std::fs::read(&itl).unwrap();
    let offset = list.record_spans[3].0;
    let subject = list.records[3].subject_name.as_bytes();
    let at = offset
        + bytes[offset..]
            .windows(subject.len())
            .position(|w| w == subject)
            .unwrap()
        + 3;
    bytes[at] ^= 0x01;
    let tampered = lab.path("tampered.tlv");
    std::fs::write(&tampered, &bytes).unwrap();
    let (stdout, _) = lab.fails(1, &["trust-list", "show", p(&tampered)]);
    assert!(stdout.contains("Record 3: CAPF"), "{stdout}");
    assert!(stdout.contains("Signature: INVALID"), "{stdout}");
    let (stdout, _) = lab.fails(1, &["trust-list", "show", p(&tampered), "--json"]);
    let view: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(view["signature"]["valid"], false);
    assert!(view["signature"]["problem"].is_string());
    lab.fails(
        1,
        &["trust-list", "verify", p(&tampered), "--trust", p(&sast)],
    );
    // The tampered golden vector too.
    let golden = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/trust-list/itl-v1.0-sha1-tampered.tlv");
    lab.fails(1, &["trust-list", "show", p(&golden)]);
    // Not a trust list at all.
    lab.fails(1, &["trust-list", "show", p(&lab.data().join("capf.pem"))]);
}

#[test]
fn trust_list_build_refuses_what_phones_refuse() {
    let lab = Lab::new();
    let out = lab.path("ITLFile.tlv");
    let (sast, sast2) = (key_file("sast.pem"), key_file("sast2.pem"));

    // A third SAST.
    let (_, stderr) = lab.fails(
        1,
        &[
            "trust-list",
            "build",
            "--out",
            p(&out),
            "--sast",
            p(&sast),
            "--sast",
            p(&sast2),
            "--sast",
            p(&key_file("tftp.pem")),
        ],
    );
    assert!(stderr.contains("more than 2 SAST"), "{stderr}");
    // An EC signer.
    let (_, stderr) = lab.fails(
        1,
        &[
            "trust-list",
            "build",
            "--out",
            p(&out),
            "--sast",
            p(&key_file("sast-ec.pem")),
        ],
    );
    assert!(stderr.contains("EC"), "{stderr}");
    assert!(!stderr.contains("BEGIN"), "{stderr}");
    // A SAST without its key cannot sign.
    lab.fails(
        1,
        &[
            "trust-list",
            "build",
            "--out",
            p(&out),
            "--sast",
            p(&lab.data().join("capf.pem")),
        ],
    );
    // An EC certificate in a list of signer version 1.0; with 1.1 it is
    // written.
    let capf_ec = key_file("capf-ec.pem");
    let ec = ["--capf", p(&capf_ec)];
    let mut args = vec!["trust-list", "build", "--out", p(&out), "--sast", p(&sast)];
    args.extend_from_slice(&ec);
    let (_, stderr) = lab.fails(1, &args);
    assert!(stderr.contains("--signer-version 1.1"), "{stderr}");
    assert!(!out.exists());
    args.extend_from_slice(&["--signer-version", "1.1"]);
    lab.ok(&args);
    let list = TrustList::parse(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(list.signer_version().to_string(), "1.1");
    // Usage: no --sast.
    lab.fails(2, &["trust-list", "build", "--out", p(&out)]);

    // The file is not replaced without --force, and a link is not followed.
    let before = std::fs::read(&out).unwrap();
    let (_, stderr) = lab.fails(
        1,
        &["trust-list", "build", "--out", p(&out), "--sast", p(&sast)],
    );
    assert!(stderr.contains("--force"), "{stderr}");
    assert_eq!(std::fs::read(&out).unwrap(), before);
    lab.ok(&[
        "trust-list",
        "build",
        "--out",
        p(&out),
        "--sast",
        p(&sast),
        "--force",
    ]);
    #[cfg(unix)]
    {
        let link = lab.path("CTLFile.tlv");
        std::os::unix::fs::symlink(&out, &link).unwrap();
        let (_, stderr) = lab.fails(
            1,
            &[
                "trust-list",
                "build",
                "--out",
                p(&link),
                "--sast",
                p(&sast),
                "--force",
            ],
        );
        assert!(stderr.contains("symbolic link"), "{stderr}");
    }
    // Never over a file holding a private key.
    let key_copy = lab.path("sast-copy.pem");
    std::fs::copy(&sast, &key_copy).unwrap();
    let (_, stderr) = lab.fails(
        1,
        &[
            "trust-list",
            "build",
            "--out",
            p(&key_copy),
            "--sast",
            p(&sast),
            "--force",
        ],
    );
    assert!(stderr.contains("private key"), "{stderr}");

    // Larger than phones load: written, with a warning (and show warns).
    let big = lab.path("big.tlv");
    let tftp = key_file("tftp.pem");
    let mut args = vec![
        "trust-list",
        "build",
        "--out",
        p(&big),
        "--filename",
        "ITLFile.tlv",
        "--sast",
        p(&sast),
    ];
    for _ in 0..50 {
        args.extend_from_slice(&["--ccm", p(&tftp)]);
    }
    let out = lab.run(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("warning") && stderr.contains("bytes phones load"),
        "{stderr}"
    );
    assert!(std::fs::metadata(&big).unwrap().len() > 65_536);
    let stdout = lab.ok(&["trust-list", "show", p(&big)]);
    assert!(stdout.contains("Warning:"), "{stdout}");
}

/// `<capfAuthMode>` from the device's record, for each mode, and the
/// servers in the order given.
#[test]
fn capf_list_takes_the_mode_from_the_device_record() {
    let lab = Lab::new();
    let devices = [
        ("SEP0000000000A1", "auth-string", 1),
        ("SEP0000000000A2", "null-string", 2),
        ("SEP0000000000A3", "lsc-first", 3),
        ("SEP0000000000A4", "mic-first", 4),
    ];
    let servers = [
        "--server",
        "capf1.example",
        "--server",
        "10.0.0.5:4000",
        "--server",
        "[2001:db8::5]",
    ];
    for (name, mode, value) in devices {
        lab.ok(&["device", "add", name, "--auth-mode", mode]);
        let mut args = vec!["config", "capf-list"];
        args.extend_from_slice(&servers);
        args.extend_from_slice(&["--device", name]);
        let stdout = lab.ok(&args);
        assert_eq!(
            stdout,
            format!(
                "<capfAuthMode>{value}</capfAuthMode>\n<capfList>\n  \
                 <capf><processNodeName>capf1.example</processNodeName><phonePort>3804</phonePort></capf>\n  \
                 <capf><processNodeName>10.0.0.5</processNodeName><phonePort>4000</phonePort></capf>\n  \
                 <capf><processNodeName>2001:db8::5</processNodeName><phonePort>3804</phonePort></capf>\n\
                 </capfList>\n"
            )
        );
        args.push("--json");
        let view: serde_json::Value = serde_json::from_str(&lab.ok(&args)).unwrap();
        assert_eq!(view["device"], name);
        assert_eq!(view["auth_mode"], mode);
        assert_eq!(view["capf_auth_mode"], value);
        assert_eq!(view["servers"][1]["port"], 4000);
        assert_eq!(view["xml"], stdout);
    }
    // A mode changed on the device changes the output.
    lab.ok(&[
        "device",
        "set",
        "SEP0000000000A1",
        "--auth-mode",
        "mic-first",
    ]);
    let stdout = lab.ok(&[
        "config",
        "capf-list",
        "--server",
        "capf1.example",
        "--device",
        "SEP0000000000A1",
    ]);
    assert!(
        stdout.starts_with("<capfAuthMode>4</capfAuthMode>\n"),
        "{stdout}"
    );
    // Without a device or mode, no <capfAuthMode>.
    let stdout = lab.ok(&["config", "capf-list", "--server", "capf1.example"]);
    assert!(stdout.starts_with("<capfList>\n"), "{stdout}");
    // An unknown device fails; bad servers, a sixth server, a bad mode are
    // usage errors.
    let (stdout, stderr) = lab.fails(
        1,
        &[
            "config",
            "capf-list",
            "--server",
            "capf1.example",
            "--device",
            "SEP0000000000FF",
        ],
    );
    assert!(stdout.is_empty());
    assert!(stderr.contains("SEP0000000000FF"), "{stderr}");
    lab.fails(2, &["config", "capf-list", "--server", "capf1:0"]);
    lab.fails(2, &["config", "capf-list", "--server", "<capf>"]);
    lab.fails(
        2,
        &["config", "capf-list", "--server", "a", "--auth-mode", "x"],
    );
    let mut six = vec!["config", "capf-list"];
    for _ in 0..6 {
        six.extend_from_slice(&["--server", "capf.example"]);
    }
    lab.fails(2, &six);
}

/// `serve --encrypted-config DIR --tftp`: after each install the phone's
/// DIR/<device>.cnf.xml.enc.sgn is written again for its new LSC.
#[test]
fn serve_encrypts_the_configuration_again_after_each_install() {
    let lab = Lab::new();
    let configs = lab.path("tftp");
    std::fs::create_dir(&configs).unwrap();
    let name = "SEP0011223344EE";
    std::fs::write(configs.join(format!("{name}.cnf.xml")), CONFIG).unwrap();
    let encrypted = configs.join(format!("{name}.cnf.xml.enc.sgn"));
    let stub = configs.join(format!("{name}.cnf.xml.sgn"));
    let tftp = key_file("tftp.pem");
    let mut server = lab.serve(&["--encrypted-config", p(&configs), "--tftp", p(&tftp)]);
    let lsc = lab.path("lsc.pem");

    // An EC LSC cannot receive an encrypted configuration: the log says
    // so, nothing is written.
    lab.ok(&[
        "device",
        "add",
        name,
        "--operation",
        "install",
        "--auth-mode",
        "null-string",
        "--key",
        "p256",
    ]);
    lab.phone_install(&server, name, &["--cert-out", p(&lsc)]);
    let line = server.wait_for_line("encrypted configuration not rewritten");
    assert!(line.contains(name), "{line}");
    assert!(!encrypted.exists() && !stub.exists());
    // So does config encrypt --device, saying what to do.
    let plain = configs.join(format!("{name}.cnf.xml"));
    let (_, stderr) = lab.fails(
        1,
        &[
            "config",
            "encrypt",
            p(&plain),
            "--tftp",
            p(&tftp),
            "--device",
            name,
        ],
    );
    assert!(stderr.contains("--key rsa2048"), "{stderr}");

    // Upgrade to RSA: the file appears, for the new LSC.
    lab.ok(&[
        "device",
        "set",
        name,
        "--operation",
        "install",
        "--auth-mode",
        "lsc-first",
        "--key",
        "rsa2048",
    ]);
    lab.phone_install(&server, name, &["--lsc", p(&lsc), "--cert-out", p(&lsc)]);
    wait_until("the encrypted configuration", &server, || {
        encrypted.exists() && stub.exists()
    });
    server.wait_for_line("rewrote");
    let first_key = phone_key(&lsc);
    let first = std::fs::read(&encrypted).unwrap();
    let parsed = EncryptedConfig::parse(&first).unwrap();
    parsed.verify(&tftp_certificate()).unwrap();
    assert_eq!(parsed.decrypt(&first_key).unwrap(), CONFIG.as_bytes());
    check_stub(&stub, &phone_certificate(&lsc));

    // Upgrade again: rewritten for the newest LSC, which the old key no
    // longer decrypts.
    lab.ok(&["device", "set", name, "--operation", "install"]);
    lab.phone_install(&server, name, &["--lsc", p(&lsc), "--cert-out", p(&lsc)]);
    let second_lsc = phone_certificate(&lsc);
    wait_until("the configuration encrypted again", &server, || {
        std::fs::read(&stub).is_ok_and(|bytes| {
            SignedFile::parse(&bytes).is_ok_and(|s| {
                text(s.payload()).contains(&capf_provisioning::cert_hash(&second_lsc))
            })
        })
    });
    let second = std::fs::read(&encrypted).unwrap();
    assert_ne!(second, first);
    let parsed = EncryptedConfig::parse(&second).unwrap();
    assert_eq!(parsed.decrypt(&phone_key(&lsc)).unwrap(), CONFIG.as_bytes());
    assert!(parsed.decrypt(&first_key).is_err());
    assert_eq!(
        lab.ok(&["config", "decrypt", p(&encrypted), "--key", p(&lsc)]),
        CONFIG
    );
    // No temporary file is left in DIR.
    let mut names: Vec<String> = std::fs::read_dir(&configs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            format!("{name}.cnf.xml"),
            format!("{name}.cnf.xml.enc.sgn"),
            format!("{name}.cnf.xml.sgn"),
        ]
    );

    // A phone with no configuration in DIR: nothing is written.
    let other = "SEP0011223344EF";
    lab.ok(&[
        "device",
        "add",
        other,
        "--operation",
        "install",
        "--auth-mode",
        "null-string",
        "--key",
        "rsa2048",
    ]);
    lab.phone_install(&server, other, &["--cert-out", p(&lab.path("other.pem"))]);
    server.wait_for_line("no encrypted configuration to rewrite");
    assert!(!configs.join(format!("{other}.cnf.xml.enc.sgn")).exists());

    // The key never appears in the log.
    let log = server.log();
    assert!(!log.contains("PRIVATE KEY"), "{log}");
    let (status, _) = server.sigterm();
    assert!(status.success(), "{status:?}");

    // --encrypted-config needs --tftp (a usage error), and a directory.
    lab.fails(2, &["serve", "--encrypted-config", p(&configs)]);
    lab.fails(
        1,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--encrypted-config",
            p(&lab.path("missing")),
            "--tftp",
            p(&tftp),
        ],
    );
}

/// `--device` takes the LSC on record, else the MIC: a phone whose LSC was
/// deleted gets its configuration encrypted for its MIC.
#[test]
fn config_encrypt_takes_the_mic_when_there_is_no_lsc() {
    let lab = Lab::new();
    let (ca, mic) = make_rsa_mic(lab.dir.path(), "00112233BBCC");
    let trust = lab.data().join("mic-trust");
    std::fs::create_dir_all(&trust).unwrap();
    std::fs::copy(&ca, trust.join("ca.pem")).unwrap();
    let server = lab.serve(&[]);
    let name = "SEP00112233BBCC";
    let config = lab.path(&format!("{name}.cnf.xml"));
    std::fs::write(&config, CONFIG).unwrap();
    let tftp = key_file("tftp.pem");
    let encrypt = [
        "config",
        "encrypt",
        p(&config),
        "--tftp",
        p(&tftp),
        "--device",
        name,
        "--force",
    ];
    // Nothing on record yet.
    lab.ok(&["device", "add", name, "--auth-mode", "mic-first"]);
    let (_, stderr) = lab.fails(1, &encrypt);
    assert!(stderr.contains("no LSC or MIC"), "{stderr}");

    // Installed by MIC (an EC LSC): the LSC comes first, and it is EC.
    lab.ok(&[
        "device",
        "set",
        name,
        "--operation",
        "install",
        "--key",
        "p256",
    ]);
    let lsc = lab.path("lsc.pem");
    lab.phone_install(&server, name, &["--mic", p(&mic), "--cert-out", p(&lsc)]);
    let (_, stderr) = lab.fails(1, &encrypt);
    assert!(stderr.contains("EC"), "{stderr}");

    // The LSC deleted: the MIC (RSA) on record is used.
    lab.ok(&["device", "set", name, "--operation", "delete"]);
    let out = Command::new(env!("CARGO_BIN_EXE_capf"))
        .args(["phone", "delete", "--server", &server.addr])
        .arg("--capf-cert")
        .arg(lab.data().join("capf.pem"))
        .args(["--device", name, "--retries", "0", "--mic", p(&mic)])
        .args(["--cert-out", p(&lsc)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}\n{}",
        text(&out.stdout),
        text(&out.stderr),
        server.log()
    );
    let stdout = lab.ok(&encrypt);
    assert!(stdout.contains("encrypted for the MIC"), "{stdout}");
    let encrypted = lab.path(&format!("{name}.cnf.xml.enc.sgn"));
    assert_eq!(
        lab.ok(&["config", "decrypt", p(&encrypted), "--key", p(&mic)]),
        CONFIG
    );
}

/// A manufacturer CA and an RSA MIC for `mac` made with openssl, as `--mic`
/// reads it (certificate + PKCS#8 key in one file).
fn make_rsa_mic(dir: &Path, mac: &str) -> (PathBuf, PathBuf) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            text(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
        "-subj",
        "/O=Test Manufacturer/CN=Test Manufacturing CA",
        "-days",
        "30",
    ]);
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "mic-key.pem",
        "-out",
        "mic.csr",
        "-subj",
        &format!("/O=Test Manufacturer/CN=CP-8841-SEP{mac}"),
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "mic.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca-key.pem",
        "-CAcreateserial",
        "-days",
        "30",
        "-out",
        "mic-cert.pem",
    ]);
    let mic = dir.join("mic.pem");
    let both = std::fs::read_to_string(dir.join("mic-cert.pem")).unwrap()
        + &std::fs::read_to_string(dir.join("mic-key.pem")).unwrap();
    std::fs::write(&mic, both).unwrap();
    (dir.join("ca.pem"), mic)
}
