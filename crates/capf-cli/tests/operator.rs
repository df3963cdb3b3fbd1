#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The operator commands, run as a user runs them: `capf` against a
//! temporary data directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

const OPENSSL: &str = "/usr/bin/openssl";

struct Env {
    dir: TempDir,
}

impl Env {
    /// A data directory initialised with a P-256 CAPF key (fast).
    fn new() -> Env {
        let env = Env {
            dir: TempDir::new().unwrap(),
        };
        env.ok(&["init", "--key", "p256"]);
        env
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_capf"))
            .arg("--data-dir")
            .arg(self.data())
            .args(args)
            .env_remove("CAPF_DATA_DIR")
            .output()
            .unwrap()
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "capf {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and expects exit code `code`; returns stdout + stderr.
    fn fails(&self, code: i32, args: &[&str]) -> String {
        let out = self.run(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(code), "capf {args:?}: {text}");
        assert!(!text.contains("panicked"), "{text}");
        text
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }
}

fn names(page: &serde_json::Value) -> Vec<String> {
    page["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Five devices: three in the lobby, two of them with an install pending.
fn lobby(env: &Env) {
    env.ok(&[
        "device",
        "add",
        "SEP000000000001",
        "--description",
        "Lobby east",
        "--operation",
        "install",
        "--auth-string",
        "1111",
    ]);
    env.ok(&[
        "device",
        "add",
        "SEP000000000002",
        "--description",
        "Lobby west",
        "--operation",
        "install",
        "--auth-string",
        "2222",
    ]);
    env.ok(&[
        "device",
        "add",
        "SEP000000000003",
        "--description",
        "Lobby north",
    ]);
    env.ok(&[
        "device",
        "add",
        "SEP000000000004",
        "--description",
        "Office",
        "--operation",
        "install",
        "--auth-string",
        "1234",
    ]);
    env.ok(&[
        "device",
        "add",
        "SEP0000000000AA",
        "--description",
        "Lobby south",
        "--operation",
        "install",
        "--auth-string",
        "9999",
    ]);
}

#[test]
fn find_combines_criteria_pages_and_sorts_both_ways() {
    let env = Env::new();
    lobby(&env);

    // AND of description, operation and status.
    let page = env.json(&[
        "find",
        "--description",
        "lobby",
        "--operation",
        "install",
        "--status",
        "pending",
        "--json",
    ]);
    assert_eq!(
        names(&page),
        ["SEP000000000001", "SEP000000000002", "SEP0000000000AA"]
    );
    assert_eq!(page["total"], 3);

    // Text match kinds; one --match for all, or per criterion.
    let page = env.json(&[
        "find",
        "--name",
        "sep00000000000",
        "--match",
        "begins-with",
        "--description",
        "LOBBY",
        "--description-match",
        "contains",
        "--json",
    ]);
    assert_eq!(
        names(&page),
        ["SEP000000000001", "SEP000000000002", "SEP000000000003"]
    );
    let page = env.json(&[
        "find",
        "--auth-string",
        "1",
        "--match",
        "begins-with",
        "--json",
    ]);
    assert_eq!(names(&page), ["SEP000000000001", "SEP000000000004"]);
    let page = env.json(&["find", "--auth-string-match", "empty", "--json"]);
    assert_eq!(names(&page), ["SEP000000000003"]);
    let page = env.json(&[
        "find",
        "--description",
        "office",
        "--match",
        "exact",
        "--json",
    ]);
    assert_eq!(names(&page), ["SEP000000000004"]);
    let page = env.json(&["find", "--lsc-status", "installed", "--json"]);
    assert_eq!(page["total"], 0);

    // Paging, ascending and descending.
    let args = [
        "find",
        "--description",
        "lobby",
        "--per-page",
        "3",
        "--sort",
        "name",
        "--json",
    ];
    let p1 = env.json(&[&args[..], &["--page", "1"]].concat());
    let p2 = env.json(&[&args[..], &["--page", "2"]].concat());
    assert_eq!(
        names(&p1),
        ["SEP000000000001", "SEP000000000002", "SEP000000000003"]
    );
    assert_eq!(names(&p2), ["SEP0000000000AA"]);
    assert_eq!(
        (p1["pages"].as_u64(), p1["total"].as_u64()),
        (Some(2), Some(4))
    );
    let d1 = env.json(&[&args[..], &["--page", "1", "--desc"]].concat());
    assert_eq!(
        names(&d1),
        ["SEP0000000000AA", "SEP000000000003", "SEP000000000002"]
    );

    // Sort by another column: description.
    let page = env.json(&["find", "--sort", "description", "--json"]);
    assert_eq!(names(&page)[0], "SEP000000000001"); // "Lobby east"
    assert_eq!(names(&page)[4], "SEP000000000004"); // "Office"
    let page = env.json(&["find", "--sort", "description", "--desc", "--json"]);
    assert_eq!(names(&page)[0], "SEP000000000004");

    // The table and its page line.
    let text = env.ok(&[
        "find",
        "--description",
        "lobby",
        "--per-page",
        "3",
        "--page",
        "2",
    ]);
    assert!(text.contains("SEP0000000000AA"), "{text}");
    assert!(text.contains("device 4 of 4 (page 2 of 2)"), "{text}");
    assert!(
        !text.contains("9999"),
        "the table never shows the string: {text}"
    );

    // Mistakes are usage errors.
    env.fails(2, &["find", "--match", "sounds-like", "--name", "x"]);
    env.fails(2, &["find", "--sort", "colour"]);
    env.fails(2, &["find", "--lsc-status", "maybe"]);
    env.fails(2, &["find", "--status", "done"]);
    env.fails(2, &["find", "--page", "0"]);
}

#[test]
fn report_has_every_column_and_the_string_and_is_private() {
    let env = Env::new();
    lobby(&env);
    let file = env.file("report.csv");
    env.ok(&["report", "--output", file.to_str().unwrap()]);
    let text = std::fs::read_to_string(&file).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "Device Name,Description,Security Mode,Authentication String,Authentication Mode,\
         LSC Status,Certificate Operation,Operation Status,Completes By"
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 5);
    assert_eq!(
        rows[0],
        "SEP000000000001,Lobby east,non-secure,1111,By Authentication String,Not Installed,\
         Install/Upgrade,Install/Upgrade pending,"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    // Filtered, with a deadline, to stdout.
    env.ok(&[
        "device",
        "set",
        "SEP000000000004",
        "--completes-by",
        "2031-01-02T03:04:05Z",
        "--security-mode",
        "encrypted",
    ]);
    let text = env.ok(&["report", "--output", "-", "--description", "office"]);
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert_eq!(
        rows[1],
        "SEP000000000004,Office,encrypted,1234,By Authentication String,Not Installed,\
         Install/Upgrade,Install/Upgrade pending,2031-01-02T03:04:05Z"
    );
    env.fails(2, &["report", "--output", "-", "--status", "bogus"]);
}

#[test]
fn import_applies_good_rows_and_never_half_applies_a_bad_one() {
    let env = Env::new();
    env.ok(&[
        "device",
        "add",
        "SEP000000000003",
        "--description",
        "before",
    ]);
    let csv = env.file("phones.csv");
    std::fs::write(
        &csv,
        "name,description,operation,auth_mode,auth_string,generate_string,key,completes_by,security_mode\n\
         SEP000000000001,Desk 1,install,auth-string,,6,p256,,\n\
         SEP000000000003,changed,,,,,rsa999,,\n\
         SEP000000000002,Desk 2,install,null-string,,,,2031-01-01T00:00:00Z,authenticated\n\
         NOTAPHONE,,,,,,,,\n\
         SEP000000000003,,delete,,,,,,\n\
         SEP000000000003,Desk 3,,,4711,,,,\n",
    )
    .unwrap();
    let strings = env.file("strings.csv");
    let text = env.fails(
        1,
        &[
            "device",
            "import",
            csv.to_str().unwrap(),
            "--strings-out",
            strings.to_str().unwrap(),
        ],
    );
    assert!(text.contains("row 3 (SEP000000000003)"), "{text}");
    assert!(text.contains("rsa999"), "{text}");
    assert!(text.contains("row 5 (NOTAPHONE)"), "{text}");
    // Delete needs an LSC on record.
    assert!(text.contains("row 6 (SEP000000000003)"), "{text}");
    assert!(text.contains("2 added, 1 updated, 3 failed"), "{text}");

    // The bad rows changed nothing; the good ones all applied.
    let d3 = env.json(&["device", "show", "SEP000000000003", "--json"]);
    assert_eq!(d3["description"], "Desk 3");
    assert_eq!(d3["key"], serde_json::Value::Null);
    assert_eq!(d3["operation"], "none");
    let d1 = env.json(&["device", "show", "SEP000000000001", "--json"]);
    assert_eq!(
        (d1["operation"].as_str(), d1["key"].as_str()),
        (Some("install"), Some("p256"))
    );
    assert_eq!(d1["auth_string_state"], "armed");
    let d2 = env.json(&["device", "show", "SEP000000000002", "--json"]);
    assert_eq!(d2["auth_mode"], "null-string");
    assert_eq!(d2["security_mode"], "authenticated");
    assert_eq!(d2["completes_by"], "2031-01-01T00:00:00Z");
    env.fails(2, &["device", "show", "NOTAPHONE"]);

    // The generated string went to the private file, and is the armed one.
    let written = std::fs::read_to_string(&strings).unwrap();
    let digits = written
        .lines()
        .nth(1)
        .unwrap()
        .strip_prefix("SEP000000000001,")
        .unwrap();
    // A string that begins with 0 is written after an apostrophe, the same
    // in both files, so that a spreadsheet keeps its zeros.
    assert_eq!(digits.strip_prefix('\'').unwrap_or(digits).len(), 6);
    let report = env.ok(&[
        "report",
        "--output",
        "-",
        "--name",
        "SEP000000000001",
        "--match",
        "exact",
    ]);
    assert!(report.contains(&format!(",{digits},")), "{report}");
    let report = env.ok(&[
        "report",
        "--output",
        "-",
        "--name",
        "SEP000000000003",
        "--match",
        "exact",
    ]);
    assert!(report.contains(",4711,"), "{report}");

    // All good: exit 0, strings printed.
    std::fs::write(&csv, "Name,Generate-String\nSEP000000000009,8\n").unwrap();
    let out = env.ok(&["device", "import", csv.to_str().unwrap()]);
    assert!(out.contains("1 added, 0 updated, 0 failed"), "{out}");
    assert!(out.contains("SEP000000000009"), "{out}");

    // A file whose header is wrong is refused before anything happens.
    std::fs::write(&csv, "device,colour\nSEP000000000010,red\n").unwrap();
    let text = env.fails(2, &["device", "import", csv.to_str().unwrap()]);
    assert!(text.contains("unknown column"), "{text}");
    env.fails(
        1,
        &[
            "device",
            "import",
            env.file("missing.csv").to_str().unwrap(),
        ],
    );
}

#[test]
fn params_are_validated_persist_and_show_help() {
    let env = Env::new();
    let text = env.ok(&["params", "show"]);
    assert!(text.contains("lsc_validity_years = 5"), "{text}");
    assert!(text.contains("Validity of the LSCs CAPF issues"), "{text}");
    assert!(text.contains("restarts"), "{text}");

    let text = env.fails(2, &["params", "set", "lsc_validity_years", "0"]);
    assert!(text.contains("between 1 and 20"), "{text}");
    env.fails(2, &["params", "set", "default_key", "rsa999"]);
    env.fails(2, &["params", "set", "no_such_parameter", "1"]);
    env.fails(2, &["params", "reset", "no_such_parameter"]);

    let text = env.ok(&["params", "set", "lsc_validity_years", "3"]);
    assert!(
        text.contains("takes effect when `capf serve` restarts"),
        "{text}"
    );
    env.ok(&["params", "set", "default_key", "P256"]);
    let list = env.json(&["params", "show", "--json"]);
    let get = |name: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(get("lsc_validity_years")["value"], 3);
    assert_eq!(get("lsc_validity_years")["default"], 5);
    assert_eq!(get("default_key")["value"], "p256");
    assert!(
        !get("auth_failure_limit")["help"]
            .as_str()
            .unwrap()
            .is_empty()
    );

    env.ok(&["params", "reset", "lsc_validity_years"]);
    let list = env.json(&["params", "show", "--json"]);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "lsc_validity_years" && p["value"] == 5)
    );
}

fn openssl(args: &[&str]) -> String {
    let out = Command::new(OPENSSL).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn ca_show_and_export_match_openssl() {
    let env = Env::new();
    let capf_pem = env.data().join("capf.pem");
    let hash = openssl(&["x509", "-hash", "-noout", "-in", capf_pem.to_str().unwrap()]);
    let hash = hash.trim();

    let dir = env.file("trust");
    let out = env.ok(&["ca", "export", "--hashed-dir", dir.to_str().unwrap()]);
    let written = dir.join(format!("{hash}.0"));
    assert!(written.exists(), "{out}");
    assert!(out.contains(&format!("{hash}.0")));
    assert_eq!(
        std::fs::read(&written).unwrap(),
        std::fs::read(&capf_pem).unwrap()
    );
    // Again: the same certificate is not duplicated.
    env.ok(&["ca", "export", "--hashed-dir", dir.to_str().unwrap()]);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);

    let pem = env.ok(&["ca", "export"]);
    assert_eq!(pem.as_bytes(), std::fs::read(&capf_pem).unwrap());
    let der_file = env.file("capf.der");
    env.ok(&[
        "ca",
        "export",
        "--format",
        "der",
        "--out",
        der_file.to_str().unwrap(),
    ]);
    let fp = openssl(&[
        "x509",
        "-inform",
        "DER",
        "-in",
        der_file.to_str().unwrap(),
        "-noout",
        "-fingerprint",
        "-sha256",
    ]);
    let fp = fp.trim().rsplit('=').next().unwrap().to_owned();

    let text = env.ok(&["ca", "show"]);
    assert!(text.contains(&fp), "{text}\n{fp}");
    assert!(text.contains(&format!("{hash}.0")), "{text}");
    assert!(text.contains("ECDSA P-256"), "{text}");
    let json = env.json(&["ca", "show", "--json"]);
    assert_eq!(json["capf"]["sha256_fingerprint"], fp.as_str());
    assert_eq!(json["capf"]["key"], "p256");
    env.fails(2, &["ca", "export", "--format", "xml"]);
}

fn verify(ca: &Path, cert: &Path) {
    let out = openssl(&[
        "verify",
        "-CAfile",
        ca.to_str().unwrap(),
        cert.to_str().unwrap(),
    ]);
    assert!(out.contains(": OK"), "{out}");
}

#[test]
fn ca_issue_makes_an_lsc_that_openssl_verifies() {
    let env = Env::new();
    let key = env.file("phone.key");
    let public = env.file("phone.pub");
    let public_der = env.file("phone.pub.der");
    openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        key.to_str().unwrap(),
    ]);
    openssl(&[
        "pkey",
        "-in",
        key.to_str().unwrap(),
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    openssl(&[
        "pkey",
        "-in",
        key.to_str().unwrap(),
        "-pubout",
        "-outform",
        "DER",
        "-out",
        public_der.to_str().unwrap(),
    ]);
    let capf_pem = env.data().join("capf.pem");

    // PEM key, to a file.
    let lsc = env.file("lsc.pem");
    env.ok(&[
        "ca",
        "issue",
        "--device",
        "SEP001122334455",
        "--public-key",
        public.to_str().unwrap(),
        "--out",
        lsc.to_str().unwrap(),
    ]);
    verify(&capf_pem, &lsc);
    let subject = openssl(&["x509", "-in", lsc.to_str().unwrap(), "-noout", "-subject"]);
    assert!(subject.contains("SEP001122334455"), "{subject}");

    // DER key, to stdout, with the key kind required.
    let pem = env.ok(&[
        "ca",
        "issue",
        "--device",
        "SEP001122334455",
        "--public-key",
        public_der.to_str().unwrap(),
        "--key",
        "p256",
    ]);
    let lsc2 = env.file("lsc2.pem");
    std::fs::write(&lsc2, pem).unwrap();
    verify(&capf_pem, &lsc2);

    // Mistakes.
    env.fails(
        1,
        &[
            "ca",
            "issue",
            "--device",
            "SEP001122334455",
            "--public-key",
            public.to_str().unwrap(),
            "--key",
            "rsa2048",
        ],
    );
    let text = env.fails(
        2,
        &[
            "ca",
            "issue",
            "--device",
            "SEP001122334455",
            "--public-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(text.contains("private key"), "{text}");
    env.fails(
        2,
        &[
            "ca",
            "issue",
            "--device",
            "bad name!",
            "--public-key",
            public.to_str().unwrap(),
        ],
    );
    env.fails(
        1,
        &[
            "ca",
            "issue",
            "--device",
            "SEP001122334455",
            "--public-key",
            env.file("nope").to_str().unwrap(),
        ],
    );
}

#[test]
fn backup_and_restore_round_trip() {
    let env = Env::new();
    lobby(&env);
    env.ok(&["params", "set", "auth_failure_limit", "3"]);
    let backup = env.file("capf.bak");
    let pass = env.file("pass");
    std::fs::write(&pass, "correct horse battery\n").unwrap();
    let pass = pass.to_str().unwrap();
    let text = env.ok(&[
        "backup",
        backup.to_str().unwrap(),
        "--passphrase-file",
        pass,
    ]);
    assert!(text.contains("backed up 5 devices"), "{text}");
    // Never overwrites a backup.
    env.fails(
        1,
        &[
            "backup",
            backup.to_str().unwrap(),
            "--passphrase-file",
            pass,
        ],
    );

    env.ok(&["device", "remove", "SEP000000000001"]);
    env.ok(&["device", "set", "SEP000000000002", "--description", "moved"]);
    let text = env.fails(
        1,
        &[
            "restore",
            backup.to_str().unwrap(),
            "--passphrase-file",
            pass,
        ],
    );
    assert!(text.contains("--force"), "{text}");
    assert!(text.contains("Stop `capf serve`"), "{text}");
    let text = env.ok(&[
        "restore",
        backup.to_str().unwrap(),
        "--force",
        "--passphrase-file",
        pass,
    ]);
    assert!(text.contains("restored 5 devices"), "{text}");
    let d2 = env.json(&["device", "show", "SEP000000000002", "--json"]);
    assert_eq!(d2["description"], "Lobby west");
    env.ok(&["device", "show", "SEP000000000001"]);
    let report = env.ok(&[
        "report",
        "--output",
        "-",
        "--name",
        "SEP000000000001",
        "--match",
        "exact",
    ]);
    assert!(report.contains(",1111,"), "{report}");
    assert!(
        env.ok(&["params", "show"])
            .contains("auth_failure_limit = 3")
    );

    // Into a data directory initialised with another CAPF: refused, naming
    // both certificates, unless forced.
    let other = Env::new();
    let text = other.fails(
        1,
        &[
            "restore",
            backup.to_str().unwrap(),
            "--passphrase-file",
            pass,
        ],
    );
    assert!(text.matches("SHA-256").count() >= 2, "{text}");
    other.ok(&[
        "restore",
        backup.to_str().unwrap(),
        "--force",
        "--passphrase-file",
        pass,
    ]);
    assert_eq!(other.json(&["find", "--json"])["total"], 5);

    // Not a backup.
    let junk = env.file("junk");
    std::fs::write(&junk, "not a database").unwrap();
    env.fails(
        1,
        &[
            "restore",
            junk.to_str().unwrap(),
            "--force",
            "--passphrase-file",
            pass,
        ],
    );
}

#[test]
fn every_operator_command_has_help_with_examples() {
    let env = Env::new();
    for command in [
        &["find"][..],
        &["report"],
        &["device", "add"],
        &["device", "set"],
        &["device", "show"],
        &["device", "list"],
        &["device", "remove"],
        &["device", "import"],
        &["params"],
        &["params", "show"],
        &["params", "set"],
        &["params", "reset"],
        &["ca"],
        &["ca", "show"],
        &["ca", "export"],
        &["ca", "issue"],
        &["backup"],
        &["restore"],
    ] {
        let text = env.ok(&[command, &["--help"]].concat());
        assert!(text.contains("Example"), "capf {command:?} --help:\n{text}");
    }
}

#[test]
fn commands_before_init_say_what_to_do() {
    let dir = TempDir::new().unwrap();
    for args in [
        &["find"][..],
        &["report", "--output", "-"],
        &["params", "show"],
        &["ca", "show"],
        &["backup", "x"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_capf"))
            .arg("--data-dir")
            .arg(dir.path().join("nothing"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("capf init"), "{args:?}: {err}");
    }
}

/// Certificate text a phone sent (here a subject holding control
/// characters and a PEM block) is shown escaped by `device show`, exact in
/// its JSON; revoking the LSC shows, and the phone's edits stay field-level.
#[test]
fn device_show_escapes_certificate_text_and_revoke_lsc_marks_the_record() {
    use capf_operations::{CertificateRecord, Device, DeviceName, OperatorStore};
    let env = Env::new();
    let forged = "CN=SEP001122334455\n-----BEGIN CERTIFICATE-----\nMIIB\u{1b}[31m";
    {
        let store = capf_store::SqliteStore::open(env.data().join("capf.sqlite3")).unwrap();
        let name = DeviceName::parse("SEP001122334455").unwrap();
        let mut d = Device::new(name, capf_auth::AuthMode::ExistingCertificateLscFirst);
        let now = std::time::SystemTime::now();
        d.mic = Some(CertificateRecord {
            der: vec![0x30, 0x03, 0x02, 0x01, 0x01],
            subject: forged.to_owned(),
            issuer: "CN=Maker\r\nCN=Fake".to_owned(),
            serial_hex: "01".to_owned(),
            not_before: now,
            not_after: now,
        });
        store.insert(&d, now).unwrap();
    }
    let shown = env.ok(&["device", "show", "SEP001122334455"]);
    assert_eq!(
        shown.matches("-----BEGIN CERTIFICATE-----").count(),
        1,
        "one line, escaped: {shown}"
    );
    assert!(
        shown.contains("\\n-----BEGIN CERTIFICATE-----\\nMIIB\\u{1b}[31m"),
        "{shown}"
    );
    assert!(shown.contains("CN=Maker\\r\\nCN=Fake"), "{shown}");
    assert!(
        !shown.contains('\u{1b}') && !shown.contains('\r'),
        "{shown}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["device", "show", "SEP001122334455", "--json"])).unwrap();
    assert_eq!(json["mic"]["subject"], forged, "JSON keeps the exact text");
    assert!(
        json["mic"]["sha256"]
            .as_str()
            .is_some_and(|f| f.len() == 64)
    );

    // Nothing to revoke yet.
    let err = env.fails(1, &["device", "revoke-lsc", "SEP001122334455"]);
    assert!(err.contains("no LSC on record"), "{err}");
}

#[test]
fn device_set_edits_fields_and_refuses_a_deadline_in_the_past() {
    let env = Env::new();
    env.ok(&[
        "device",
        "add",
        "SEP00112233AA01",
        "--operation",
        "install",
        "--auth-string",
        "2468",
    ]);
    let err = env.fails(
        2,
        &[
            "device",
            "set",
            "SEP00112233AA01",
            "--completes-by",
            "2001-01-01T00:00:00Z",
        ],
    );
    assert!(err.contains("in the past"), "{err}");
    let out = env.ok(&["device", "set", "SEP00112233AA01", "--clear-lockout"]);
    assert!(
        out.contains("no change"),
        "not locked: nothing to clear: {out}"
    );
    let out = env.ok(&["device", "set", "SEP00112233AA01", "--description", "Lobby"]);
    assert!(out.contains("description"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["device", "show", "SEP00112233AA01", "--json"])).unwrap();
    assert_eq!(json["description"], "Lobby");
    assert_eq!(
        json["auth_string_state"], "armed",
        "the string survived the edit"
    );
    assert_eq!(json["operation"], "install");
}
