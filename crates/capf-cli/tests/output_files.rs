#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The files `capf` writes where the operator says: an existing file is
//! replaced only with --force, never a key file, never through a symbolic
//! link; secret files are 0600 whatever stood there. And the CSV report:
//! safe in a spreadsheet, and read back by `capf device import`.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

const OPENSSL: &str = "/usr/bin/openssl";

/// A file that must survive what the test does.
const SENTINEL: &str = "the operator's own file\n";

struct Env {
    dir: TempDir,
}

impl Env {
    /// A data directory (`DIR/data`) with a P-256 CAPF key.
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

    /// A phone's P-256 public key (PEM), for `capf ca issue`.
    fn public_key(&self) -> PathBuf {
        let key = self.file("phone.key");
        let public = self.file("phone.pub");
        if !public.exists() {
            openssl(&[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                s(&key),
            ]);
            openssl(&["pkey", "-in", s(&key), "-pubout", "-out", s(&public)]);
        }
        public
    }
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn openssl(args: &[&str]) {
    let out = Command::new(OPENSSL).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// One way the CLI writes a file the operator names.
struct OutputPath {
    what: &'static str,
    /// Holds a secret: 0600.
    secret: bool,
    /// The arguments that write `path`, with or without --force.
    args: fn(&Env, &Path, bool) -> Vec<String>,
}

fn with_force(mut args: Vec<String>, force: bool) -> Vec<String> {
    if force {
        args.push("--force".into());
    }
    args
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

const OUTPUTS: [OutputPath; 5] = [
    OutputPath {
        what: "ca export --out (PEM)",
        secret: false,
        args: |_, path, force| with_force(strings(&["ca", "export", "--out", s(path)]), force),
    },
    OutputPath {
        what: "ca export --format der --out",
        secret: false,
        args: |_, path, force| {
            with_force(
                strings(&["ca", "export", "--format", "der", "--out", s(path)]),
                force,
            )
        },
    },
    OutputPath {
        what: "ca issue --out",
        secret: false,
        args: |env, path, force| {
            let public = env.public_key();
            with_force(
                strings(&[
                    "ca",
                    "issue",
                    "--device",
                    "SEP001122334455",
                    "--public-key",
                    s(&public),
                    "--out",
                    s(path),
                ]),
                force,
            )
        },
    },
    OutputPath {
        what: "report --output",
        secret: true,
        args: |_, path, force| with_force(strings(&["report", "--output", s(path)]), force),
    },
    OutputPath {
        what: "device import --strings-out",
        secret: true,
        args: |env, path, force| {
            let csv = env.file("generate.csv");
            fs::write(&csv, "name,generate_string\nSEP0000000000AA,8\n").unwrap();
            with_force(
                strings(&["device", "import", s(&csv), "--strings-out", s(path)]),
                force,
            )
        },
    },
];

fn run_output(env: &Env, output: &OutputPath, path: &Path, force: bool) -> Output {
    let args = (output.args)(env, path, force);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    env.run(&args)
}

fn expect_refused(env: &Env, output: &OutputPath, path: &Path, force: bool, why: &str) {
    let out = run_output(env, output, path, force);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{}: {text}", output.what);
    assert!(
        text.contains(why),
        "{}: expected {why:?} in: {text}",
        output.what
    );
    assert!(!text.contains("panicked"), "{text}");
}

fn expect_written(env: &Env, output: &OutputPath, path: &Path, force: bool) {
    let out = run_output(env, output, path, force);
    assert!(
        out.status.success(),
        "{}: {}{}",
        output.what,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_existing_file_is_replaced_only_with_force() {
    let env = Env::new();
    for (i, output) in OUTPUTS.iter().enumerate() {
        let path = env.file(&format!("existing-{i}"));
        fs::write(&path, SENTINEL).unwrap();
        expect_refused(&env, output, &path, false, "--force");
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            SENTINEL,
            "{}",
            output.what
        );

        expect_written(&env, output, &path, true);
        let written = fs::read(&path).unwrap();
        assert_ne!(written, SENTINEL.as_bytes(), "{}", output.what);
        assert!(!written.is_empty(), "{}", output.what);
        // A new file needs no --force.
        let fresh = env.file(&format!("fresh-{i}"));
        expect_written(&env, output, &fresh, false);
    }
    // Nothing but the files asked for: no temporary file left behind.
    let stray: Vec<String> = fs::read_dir(env.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

fn issued_count(env: &Env) -> usize {
    use capf_operations::{DeviceName, OperatorStore};
    let store = capf_store::SqliteStore::open(env.data().join("capf.sqlite3")).unwrap();
    store
        .issued_certificates(&DeviceName::parse("SEP001122334455").unwrap())
        .unwrap()
        .len()
}

#[test]
fn a_refused_ca_issue_records_nothing() {
    let env = Env::new();
    let path = env.file("lsc.pem");
    fs::write(&path, SENTINEL).unwrap();
    let issue = &OUTPUTS[2];
    // The file is checked before the certificate is issued and recorded.
    expect_refused(&env, issue, &path, false, "--force");
    assert_eq!(issued_count(&env), 0);
    expect_written(&env, issue, &path, true);
    assert_eq!(issued_count(&env), 1);
}

#[test]
fn no_output_follows_a_symbolic_link() {
    let env = Env::new();
    for (i, output) in OUTPUTS.iter().enumerate() {
        // A link to another file: refused, even with --force; the target
        // is unchanged (content and mode).
        let target = env.file(&format!("target-{i}"));
        fs::write(&target, SENTINEL).unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o644)).unwrap();
        let link = env.file(&format!("link-{i}"));
        symlink(&target, &link).unwrap();
        for force in [false, true] {
            expect_refused(&env, output, &link, force, "symbolic link");
        }
        assert_eq!(
            fs::read_to_string(&target).unwrap(),
            SENTINEL,
            "{}",
            output.what
        );
        assert_eq!(mode(&target), 0o644, "{}", output.what);
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );

        // A dangling link: refused, its target never created.
        let nowhere = env.file(&format!("nowhere-{i}"));
        let dangling = env.file(&format!("dangling-{i}"));
        symlink(&nowhere, &dangling).unwrap();
        for force in [false, true] {
            expect_refused(&env, output, &dangling, force, "symbolic link");
        }
        assert!(!nowhere.exists(), "{}", output.what);
    }
}

#[test]
fn key_files_are_never_overwritten() {
    let env = Env::new();
    let key = env.data().join("capf-key.pem");
    let before = fs::read(&key).unwrap();
    let key_mode = mode(&key);

    // The issue's own example.
    let text = env.fails(
        1,
        &[
            "ca",
            "export",
            "--format",
            "der",
            "--out",
            s(&key),
            "--force",
        ],
    );
    assert!(text.contains("private key"), "{text}");
    assert_eq!(fs::read(&key).unwrap(), before);

    for output in &OUTPUTS {
        for force in [false, true] {
            expect_refused(&env, output, &key, force, "private key");
        }
    }
    // Any PEM private key, e.g. an issuer key or an encrypted one.
    for label in [
        "PRIVATE KEY",
        "ENCRYPTED PRIVATE KEY",
        "RSA PRIVATE KEY",
        "EC PRIVATE KEY",
    ] {
        let other = env.data().join("issuer-key.pem");
        let pem = format!("-----BEGIN {label}-----\nAAAA\n-----END {label}-----\n");
        fs::write(&other, &pem).unwrap();
        for output in &OUTPUTS {
            expect_refused(&env, output, &other, true, "private key");
        }
        assert_eq!(fs::read_to_string(&other).unwrap(), pem);
    }
    assert_eq!(fs::read(&key).unwrap(), before);
    assert_eq!(mode(&key), key_mode);
    // The data directory still works.
    env.ok(&["ca", "show"]);
}

#[test]
fn secret_files_are_private_whatever_stood_there() {
    let env = Env::new();
    for (i, output) in OUTPUTS.iter().enumerate() {
        let path = env.file(&format!("open-{i}"));
        fs::write(&path, SENTINEL).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        expect_written(&env, output, &path, true);
        let replaced = mode(&path);
        if output.secret {
            assert_eq!(replaced, 0o600, "{}", output.what);
        } else {
            // Public: at most 0644 (less the umask), never the old 0666.
            assert_eq!(replaced & !0o644, 0, "{}: {replaced:o}", output.what);
        }
        // A new secret file is 0600 too.
        let fresh = env.file(&format!("new-{i}"));
        expect_written(&env, output, &fresh, false);
        if output.secret {
            assert_eq!(mode(&fresh), 0o600, "{}", output.what);
        }
    }
}

#[test]
fn hashed_dir_never_writes_through_a_link() {
    let env = Env::new();
    let hashed = env.json(&["ca", "show", "--json"])["capf"]["hashed_file_name"]
        .as_str()
        .unwrap()
        .to_owned();
    let capf_pem = env.data().join("capf.pem");

    // A dangling link where the certificate goes: refused, nothing created.
    let dir = env.file("trust");
    fs::create_dir(&dir).unwrap();
    let nowhere = env.file("nowhere.pem");
    symlink(&nowhere, dir.join(&hashed)).unwrap();
    let text = env.fails(1, &["ca", "export", "--hashed-dir", s(&dir)]);
    assert!(text.contains("symbolic link"), "{text}");
    assert!(!nowhere.exists());

    // A link to another file (not this certificate): the file is left
    // alone, the certificate goes to the next number, as a real file.
    let dir = env.file("trust2");
    fs::create_dir(&dir).unwrap();
    let other = env.file("other.pem");
    fs::write(&other, SENTINEL).unwrap();
    symlink(&other, dir.join(&hashed)).unwrap();
    let out = env.ok(&["ca", "export", "--hashed-dir", s(&dir)]);
    let next = dir.join(hashed.replace(".0", ".1"));
    assert!(out.contains(s(&next)), "{out}");
    assert_eq!(fs::read_to_string(&other).unwrap(), SENTINEL);
    assert!(fs::symlink_metadata(&next).unwrap().is_file());
    assert_eq!(fs::read(&next).unwrap(), fs::read(&capf_pem).unwrap());

    // A link to this certificate (what `openssl rehash` makes): already there.
    let dir = env.file("trust3");
    fs::create_dir(&dir).unwrap();
    symlink(&capf_pem, dir.join(&hashed)).unwrap();
    let out = env.ok(&["ca", "export", "--hashed-dir", s(&dir)]);
    assert!(out.contains(&hashed), "{out}");
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
}

#[test]
fn the_phone_replaces_its_own_files_but_never_through_a_link() {
    let env = Env::new();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let server = format!("127.0.0.1:{port}");
    let capf_pem = env.data().join("capf.pem");
    let phone = |extra: &[&str]| {
        let mut args = vec![
            "phone",
            "install",
            "--server",
            &server,
            "--capf-cert",
            s(&capf_pem),
            "--device",
            "SEP001122334455",
            "--auth-string",
            "1234",
            "--retries",
            "0",
            "--timeout",
            "5",
        ];
        args.extend_from_slice(extra);
        env.fails(1, &args)
    };

    // The state file is rewritten by design (no --force), as a new 0600
    // file, even where a 0666 one stood.
    let state = env.file("phone.state");
    fs::write(&state, "format=capf-phone-state/1\nlsc_installed=no\n").unwrap();
    fs::set_permissions(&state, fs::Permissions::from_mode(0o666)).unwrap();
    phone(&["--state", s(&state)]);
    // Rewritten: the phone's own header line is there now.
    assert!(
        fs::read_to_string(&state)
            .unwrap()
            .starts_with("# CAPF phone state")
    );
    assert_eq!(mode(&state), 0o600);

    // Links are refused before the phone contacts the server.
    let target = env.file("target");
    fs::write(&target, SENTINEL).unwrap();
    let link = env.file("link");
    symlink(&target, &link).unwrap();
    let nowhere = env.file("nowhere");
    let dangling = env.file("dangling");
    symlink(&nowhere, &dangling).unwrap();
    for flag in ["--state", "--cert-out"] {
        for path in [&link, &dangling] {
            let text = phone(&[flag, s(path)]);
            assert!(text.contains("symbolic link"), "{flag}: {text}");
        }
    }
    assert_eq!(fs::read_to_string(&target).unwrap(), SENTINEL);
    assert!(!nowhere.exists());

    // The CAPF key is not an LSC store.
    let key = env.data().join("capf-key.pem");
    let before = fs::read(&key).unwrap();
    for flag in ["--state", "--cert-out"] {
        phone(&[flag, s(&key)]);
    }
    assert_eq!(fs::read(&key).unwrap(), before);
}

/// The report's rows as cells.
fn report_rows(text: &str) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

fn add(env: &Env, name: &str, extra: &[&str]) {
    let mut args = vec!["device", "add", name];
    args.extend_from_slice(extra);
    env.ok(&args);
}

/// Devices whose report cells need care: formulas, a comma, a leading
/// apostrophe, a string with a leading zero.
fn tricky_devices(env: &Env) {
    add(
        env,
        "SEP000000000001",
        &[
            "--description",
            "=HYPERLINK(\"x\")",
            "--operation",
            "install",
            "--auth-string",
            "01234567",
        ],
    );
    add(
        env,
        "SEP000000000002",
        &[
            "--description",
            "Lobby, east",
            "--operation",
            "install",
            "--auth-string",
            "4711",
            "--security-mode",
            "encrypted",
            "--completes-by",
            "2031-01-02T03:04:05Z",
        ],
    );
    add(
        env,
        "SEP000000000003",
        &["--description=-5 dB @ desk", "--auth-mode", "null-string"],
    );
    add(
        env,
        "SEP000000000004",
        &["--description", "'quoted'", "--auth-mode", "lsc-first"],
    );
    add(env, "SEP000000000005", &["--description", "+49 30 1234"]);
    add(
        env,
        "SEP000000000006",
        &[
            "--description",
            "@SUM(A1)",
            "--auth-mode",
            "mic-first",
            "--auth-string",
            "0000",
        ],
    );
}

#[test]
fn the_report_is_safe_in_a_spreadsheet() {
    let env = Env::new();
    tricky_devices(&env);
    let text = env.ok(&["report", "--output", "-"]);
    let rows = report_rows(&text);
    assert_eq!(rows.len(), 7, "{text}");
    // No cell starts a formula.
    for row in &rows {
        for cell in row {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{cell:?} in {text}"
            );
        }
    }
    let description = |n: usize| rows[n][1].as_str();
    assert_eq!(description(1), "'=HYPERLINK(\"x\")");
    assert_eq!(description(2), "Lobby, east");
    assert_eq!(description(3), "'-5 dB @ desk");
    assert_eq!(description(4), "''quoted'");
    assert_eq!(description(5), "'+49 30 1234");
    assert_eq!(description(6), "'@SUM(A1)");
    // The strings keep their leading zeros: text after an apostrophe.
    assert_eq!(rows[1][3], "'01234567");
    assert_eq!(rows[6][3], "'0000");
    assert!(text.contains(",'01234567,"), "{text}");
    // Other strings are plain digits.
    assert_eq!(rows[2][3], "4711");
    // The written file says the same.
    let file = env.file("report.csv");
    env.ok(&["report", "--output", s(&file)]);
    assert_eq!(fs::read_to_string(&file).unwrap(), text);
    // The help says how.
    let help = env.ok(&["report", "--help"]);
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(help.contains("apostrophe"), "{help}");
    assert!(help.contains("leading zeros"), "{help}");
}

#[test]
fn a_report_imported_into_a_fresh_directory_round_trips() {
    let env = Env::new();
    tricky_devices(&env);
    let report = env.file("report.csv");
    env.ok(&["report", "--output", s(&report)]);
    let before = fs::read_to_string(&report).unwrap();

    let fresh = Env::new();
    let out = fresh.run(&["device", "import", s(&report)]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("6 added, 0 updated, 0 failed"), "{stdout}");
    // One note for the read-only columns.
    assert_eq!(stderr.matches("note:").count(), 1, "{stderr}");
    assert!(stderr.contains("LSC Status"), "{stderr}");
    assert!(stderr.contains("Operation Status"), "{stderr}");

    // The same report: devices, descriptions, strings, modes, operations.
    let after = fresh.ok(&["report", "--output", "-"]);
    assert_eq!(after, before);
    let d1 = fresh.json(&["device", "show", "SEP000000000001", "--json"]);
    assert_eq!(d1["description"], "=HYPERLINK(\"x\")");
    let d4 = fresh.json(&["device", "show", "SEP000000000004", "--json"]);
    assert_eq!(d4["description"], "'quoted'");
    let found = fresh.json(&[
        "find",
        "--auth-string",
        "01234567",
        "--match",
        "exact",
        "--json",
    ]);
    assert_eq!(found["total"], 1, "{found}");
}

#[test]
fn a_report_edited_and_imported_changes_only_what_was_edited() {
    let env = Env::new();
    tricky_devices(&env);
    let report = env.file("report.csv");
    env.ok(&["report", "--output", s(&report)]);
    let before = fs::read_to_string(&report).unwrap();

    // Unedited: nothing changes (no string re-armed, nothing rescheduled).
    let out = env.ok(&["device", "import", s(&report)]);
    assert!(
        out.contains("0 added, 0 updated, 0 failed; 6 unchanged"),
        "{out}"
    );
    assert_eq!(env.ok(&["report", "--output", "-"]), before);

    // Edited as in a spreadsheet: a description, an operation label, a
    // string typed with its apostrophe.
    let edited = before
        .replace("Lobby, east", "Lobby, west")
        .replace(
            "SEP000000000003,'-5 dB @ desk,non-secure,,By Null String,Not Installed,No Pending Operation",
            "SEP000000000003,'-5 dB @ desk,non-secure,'0815,By Authentication String,Not Installed,Install/Upgrade",
        );
    assert_ne!(edited, before, "{before}");
    fs::write(&report, &edited).unwrap();
    let out = env.ok(&["device", "import", s(&report)]);
    assert!(
        out.contains("0 added, 2 updated, 0 failed; 4 unchanged"),
        "{out}"
    );
    let d2 = env.json(&["device", "show", "SEP000000000002", "--json"]);
    assert_eq!(d2["description"], "Lobby, west");
    let d3 = env.json(&["device", "show", "SEP000000000003", "--json"]);
    assert_eq!(d3["auth_mode"], "auth-string");
    assert_eq!(d3["operation"], "install");
    assert_eq!(d3["description"], "-5 dB @ desk");
    let after = env.ok(&["report", "--output", "-"]);
    assert!(
        after.contains("SEP000000000003,'-5 dB @ desk,non-secure,'0815,"),
        "{after}"
    );
}

#[test]
fn strings_out_keeps_leading_zeros_and_imports_back() {
    let env = Env::new();
    let csv = env.file("phones.csv");
    let mut text = String::from("name,generate_string\n");
    for n in 0..30 {
        text.push_str(&format!("SEP0000000001{n:02},4\n"));
    }
    fs::write(&csv, text).unwrap();
    let strings = env.file("strings.csv");
    env.ok(&["device", "import", s(&csv), "--strings-out", s(&strings)]);
    let written = fs::read_to_string(&strings).unwrap();
    for row in report_rows(&written).iter().skip(1) {
        let cell = &row[1];
        let digits = cell.strip_prefix('\'').unwrap_or(cell);
        assert_eq!(digits.len(), 4, "{written}");
        // An apostrophe exactly when the string begins with 0.
        assert_eq!(cell.starts_with('\''), digits.starts_with('0'), "{written}");
    }
    // The file is importable, and names the strings already armed.
    let out = env.ok(&["device", "import", s(&strings)]);
    assert!(out.contains("30 unchanged"), "{out}");
}
