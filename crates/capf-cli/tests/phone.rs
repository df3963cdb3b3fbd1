#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `capf phone` against `capf serve` on 127.0.0.1: every operation and
//! authentication mode, RSA and EC keys, retries, the state file,
//! Ctrl-C.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::Serve;
use tempfile::TempDir;

fn capf() -> Command {
    Command::new(env!("CARGO_BIN_EXE_capf"))
}

/// `capf phone OP --server SERVER --device DEVICE`, trusting no CAPF
/// certificate yet.
fn bare_phone(op: &str, server: &str, device: &str) -> Command {
    let mut command = capf();
    command.args(["phone", op, "--server", server, "--device", device]);
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A data directory with a P-256 CAPF key (fast).
struct Lab {
    dir: TempDir,
}

impl Lab {
    fn new() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let lab = Lab { dir };
        lab.capf_ok(&["init", "--key", "p256"]);
        lab
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn capf_cert(&self) -> PathBuf {
        self.data().join("capf.pem")
    }

    fn capf(&self, args: &[&str]) -> Output {
        capf()
            .arg("--data-dir")
            .arg(self.data())
            .args(args)
            .output()
            .unwrap()
    }

    fn capf_ok(&self, args: &[&str]) -> String {
        let out = self.capf(args);
        assert!(
            out.status.success(),
            "capf {args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// `capf device VERB NAME --operation install --auth-mode MODE --key
    /// KEY`, VERB being `add` or `set`.
    fn schedule_install(&self, verb: &str, name: &str, auth_mode: &str, key: &str) {
        self.capf_ok(&[
            "device",
            verb,
            name,
            "--operation",
            "install",
            "--auth-mode",
            auth_mode,
            "--key",
            key,
        ]);
    }

    fn serve(&self) -> Serve {
        self.serve_on("127.0.0.1:0")
    }

    /// `capf serve --listen LISTEN` on the data directory, its log in
    /// `serve.log` beside it.
    fn serve_on(&self, listen: &str) -> Serve {
        Serve::start_with(&self.data(), self.path("serve.log"), &["--listen", listen])
    }

    /// `capf phone OP --server ADDR --capf-cert DATA/capf.pem --device NAME ARGS`.
    fn phone(&self, op: &str, server: &str, device: &str, args: &[&str]) -> Output {
        self.phone_command(op, server, device, args)
            .output()
            .unwrap()
    }

    fn phone_command(&self, op: &str, server: &str, device: &str, args: &[&str]) -> Command {
        let mut command = bare_phone(op, server, device);
        command.arg("--capf-cert").arg(self.capf_cert()).args(args);
        // Defaults for tests: no retries, a short reply timeout.
        if !args.contains(&"--retries") {
            command.args(["--retries", "0"]);
        }
        if !args.contains(&"--timeout") {
            command.args(["--timeout", "20"]);
        }
        command
    }
}

fn succeeded(out: &Output) -> (String, String) {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success(),
        "phone failed ({:?}):\n{stdout}\n{stderr}",
        out.status
    );
    (stdout, stderr)
}

fn failed(out: &Output) -> (String, String) {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected exit 1:\n{stdout}\n{stderr}"
    );
    (stdout, stderr)
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The key of the LSC in a --cert-out file, as `capf wire` shows keys.
fn lsc_subject_and_key(file: &Path) -> String {
    let pem = std::fs::read_to_string(file).unwrap();
    assert!(pem.contains("-----BEGIN CERTIFICATE-----"), "{pem}");
    assert!(pem.contains("-----BEGIN PRIVATE KEY-----"), "{pem}");
    let cert = capf_ca::CaCertificate::from_pem(certificate_block(&pem), "lsc").unwrap();
    let key = capf_ca::PrivateKey::from_pkcs8_pem(
        &pem[pem.find("-----BEGIN PRIVATE KEY-----").unwrap()..],
    )
    .unwrap();
    assert_eq!(cert.spki_der().unwrap(), key.public_key_der().unwrap());
    format!("{} {}", cert.subject(), cert.public_key().unwrap().spec())
}

/// The CERTIFICATE block of a --cert-out file (the key follows it).
fn certificate_block(pem: &str) -> &str {
    let end = "-----END CERTIFICATE-----";
    &pem[..pem.find(end).unwrap() + end.len()]
}

#[cfg(unix)]
fn mode_of(file: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(file).unwrap().permissions().mode() & 0o777
}

#[test]
fn auth_string_rsa_install_fetch_delete_and_nothing_scheduled() {
    let lab = Lab::new();
    let server = lab.serve();
    let name = "SEP001122334455";
    lab.capf_ok(&[
        "device",
        "add",
        name,
        "--operation",
        "install",
        "--auth-mode",
        "auth-string",
        "--auth-string",
        "12345678",
        "--key",
        "rsa1024",
    ]);
    let lsc = lab.path("lsc.pem");

    // A wrong string is refused.
    let out = lab.phone(
        "install",
        &server.addr,
        name,
        &["--auth-string", "87654321", "--cert-out", p(&lsc)],
    );
    let (stdout, stderr) = failed(&out);
    assert!(stderr.contains("Pending"), "{stderr}");
    assert!(stderr.contains("Failed: refused by the server"), "{stderr}");
    assert!(stdout.contains("LSC: Not Installed"), "{stdout}");
    assert!(!lsc.exists());

    // Install, RSA 1024, by authentication string.
    let out = lab.phone(
        "install",
        &server.addr,
        name,
        &["--auth-string", "12345678", "--cert-out", p(&lsc)],
    );
    let (stdout, stderr) = succeeded(&out);
    assert!(stderr.starts_with("Pending\n"), "{stderr}");
    assert!(stderr.contains("Install/Upgrade pending"), "{stderr}");
    assert!(stderr.contains("Succeeded: LSC installed"), "{stderr}");
    assert!(stdout.contains("LSC: Installed"), "{stdout}");
    assert!(stdout.contains("subject   CN=SEP001122334455"), "{stdout}");
    assert_eq!(
        lsc_subject_and_key(&lsc),
        format!("{} rsa1024", lsc_subject(&lsc))
    );
    #[cfg(unix)]
    assert_eq!(mode_of(&lsc), 0o600);

    // Nothing scheduled now (the string was used up: arm another, which
    // is checked before the server says there is nothing to do): `install`
    // fails clearly, `run` is fine.
    lab.capf_ok(&["device", "set", name, "--auth-string", "13572468"]);
    let out = lab.phone(
        "install",
        &server.addr,
        name,
        &["--auth-string", "13572468", "--cert-out", p(&lsc)],
    );
    let (stdout, stderr) = failed(&out);
    assert!(
        stderr.contains("expected install, but the server had no operation scheduled"),
        "{stderr}"
    );
    assert!(stdout.contains("LSC: Installed"), "{stdout}");
    let out = lab.phone(
        "run",
        &server.addr,
        name,
        &["--auth-string", "13572468", "--cert-out", p(&lsc)],
    );
    let (stdout, stderr) = succeeded(&out);
    assert!(
        stderr.contains("Succeeded: no scheduled operation"),
        "{stderr}"
    );
    assert!(stdout.contains("LSC: Installed"), "{stdout}");

    // Fetch (troubleshoot), by authentication string: the phone returns
    // the LSC in --cert-out; the server records it.
    lab.capf_ok(&[
        "device",
        "set",
        name,
        "--operation",
        "troubleshoot",
        "--auth-string",
        "24681357",
    ]);
    let out = lab.phone(
        "delete",
        &server.addr,
        name,
        &["--auth-string", "24681357", "--cert-out", p(&lsc), "--json"],
    );
    // `delete` was asked but the server fetched: exit 1, said in JSON.
    let (stdout, _) = failed(&out);
    let result: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(result["requested"], "delete");
    assert_eq!(result["operation"], "fetch");
    assert_eq!(result["result"], "unexpected");
    assert_eq!(result["lsc_installed"], true);
    assert!(lsc.exists(), "a fetch must not delete the LSC");

    lab.capf_ok(&[
        "device",
        "set",
        name,
        "--operation",
        "troubleshoot",
        "--auth-string",
        "11223344",
    ]);
    let out = lab.phone(
        "fetch",
        &server.addr,
        name,
        &["--auth-string", "11223344", "--cert-out", p(&lsc)],
    );
    let (stdout, stderr) = succeeded(&out);
    assert!(stderr.contains("Troubleshoot pending"), "{stderr}");
    assert!(
        stderr.contains("Succeeded: LSC sent to the server"),
        "{stderr}"
    );
    assert!(stdout.contains("LSC: Installed"), "{stdout}");

    // Delete, by authentication string: --cert-out is removed.
    lab.capf_ok(&[
        "device",
        "set",
        name,
        "--operation",
        "delete",
        "--auth-string",
        "55667788",
    ]);
    let out = lab.phone(
        "delete",
        &server.addr,
        name,
        &["--auth-string", "55667788", "--cert-out", p(&lsc)],
    );
    let (stdout, stderr) = succeeded(&out);
    assert!(stderr.contains("Succeeded: LSC deleted"), "{stderr}");
    assert!(stdout.contains("LSC: Not Installed"), "{stdout}");
    assert!(!lsc.exists());

    // An unknown device.
    let out = lab.phone("run", &server.addr, "SEP00000000FFFF", &[]);
    let (_, stderr) = failed(&out);
    assert!(stderr.contains("Failed: unknown device"), "{stderr}");
}

fn lsc_subject(file: &Path) -> String {
    let pem = std::fs::read_to_string(file).unwrap();
    capf_ca::CaCertificate::from_pem(certificate_block(&pem), "lsc")
        .unwrap()
        .subject()
}

#[test]
fn null_string_ec_then_lsc_authenticated_upgrade_fetch_and_delete() {
    let lab = Lab::new();
    let server = lab.serve();
    let name = "SEP0011223344AA";
    lab.schedule_install("add", name, "null-string", "p256");
    let lsc = lab.path("lsc.pem");
    // Trust the CAPF certificate through the data directory (capf.pem and
    // its <hash>.0 copy), as a hashed directory.
    let out = bare_phone("install", &server.addr, name)
        .arg("--capf-cert")
        .arg(lab.data())
        .args(["--cert-out", p(&lsc), "--json"])
        .output()
        .unwrap();
    let (stdout, stderr) = succeeded(&out);
    assert!(stderr.contains("Succeeded: LSC installed"), "{stderr}");
    let result: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(result["result"], "succeeded");
    assert_eq!(result["operation"], "install");
    assert_eq!(result["lsc_installed"], true);
    assert_eq!(result["certificate"]["key"], "p256");
    assert!(lsc_subject_and_key(&lsc).ends_with("p256"));
    let first = std::fs::read_to_string(&lsc).unwrap();

    // Upgrade to RSA, authenticated by the LSC (which is also replaced).
    lab.schedule_install("set", name, "lsc-first", "rsa1024");
    let out = lab.phone(
        "install",
        &server.addr,
        name,
        &["--lsc", p(&lsc), "--cert-out", p(&lsc)],
    );
    let (stdout, _) = succeeded(&out);
    assert!(stdout.contains("LSC: Installed"), "{stdout}");
    assert!(lsc_subject_and_key(&lsc).ends_with("rsa1024"));
    assert_ne!(std::fs::read_to_string(&lsc).unwrap(), first);

    // Fetch, authenticated by the LSC from --cert-out (no --lsc: the state
    // is not involved, the flags say null string -> refused).
    lab.capf_ok(&["device", "set", name, "--operation", "troubleshoot"]);
    let out = lab.phone("fetch", &server.addr, name, &["--cert-out", p(&lsc)]);
    let (_, stderr) = failed(&out);
    assert!(stderr.contains("Failed: refused by the server"), "{stderr}");
    let out = lab.phone(
        "fetch",
        &server.addr,
        name,
        &["--lsc", p(&lsc), "--cert-out", p(&lsc)],
    );
    let (_, stderr) = succeeded(&out);
    assert!(
        stderr.contains("Succeeded: LSC sent to the server"),
        "{stderr}"
    );

    // Delete, authenticated by the LSC.
    lab.capf_ok(&["device", "set", name, "--operation", "delete"]);
    let out = lab.phone(
        "delete",
        &server.addr,
        name,
        &["--lsc", p(&lsc), "--cert-out", p(&lsc)],
    );
    let (stdout, _) = succeeded(&out);
    assert!(stdout.contains("LSC: Not Installed"), "{stdout}");
    assert!(!lsc.exists());
}

/// A manufacturer CA and a MIC for `mac` made with openssl (EC P-256), as
/// `--mic` reads it (certificate + PKCS#8 key in one file).
fn make_mic(dir: &Path, mac: &str) -> (PathBuf, PathBuf) {
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
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
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
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
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

#[test]
fn mic_authentication_installs_and_wrong_capf_certificate_is_refused() {
    let lab = Lab::new();
    let (ca, mic) = make_mic(lab.dir.path(), "00112233BBCC");
    let trust = lab.data().join("mic-trust");
    std::fs::create_dir_all(&trust).unwrap();
    std::fs::copy(&ca, trust.join("ca.pem")).unwrap();
    let server = lab.serve();
    let name = "SEP00112233BBCC";
    lab.schedule_install("add", name, "mic-first", "p256");
    let lsc = lab.path("lsc.pem");

    // The phone does not trust a server presenting another certificate.
    let out = bare_phone("install", &server.addr, name)
        .args(["--capf-cert", p(&ca), "--mic", p(&mic), "--retries", "0"])
        .output()
        .unwrap();
    let (_, stderr) = failed(&out);
    assert!(stderr.contains("TLS handshake"), "{stderr}");

    // MIC + SUDI (the MIC again) authentication.
    let out = lab.phone(
        "install",
        &server.addr,
        name,
        &["--mic", p(&mic), "--sudi", p(&mic), "--cert-out", p(&lsc)],
    );
    let (stdout, stderr) = succeeded(&out);
    assert!(stderr.contains("Succeeded: LSC installed"), "{stderr}");
    assert!(stdout.contains("LSC: Installed"), "{stdout}");
    assert!(lsc_subject_and_key(&lsc).ends_with("p256"));

    // --sudi alone is a usage error.
    let out = lab.phone("install", &server.addr, name, &["--sudi", p(&mic)]);
    assert_eq!(out.status.code(), Some(2));
}

/// A free port on 127.0.0.1 (bound, read, released).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn retries_until_the_server_is_up() {
    let lab = Lab::new();
    let name = "SEP001122334466";
    lab.schedule_install("add", name, "null-string", "p256");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let lsc = lab.path("lsc.pem");
    let phone = lab
        .phone_command(
            "install",
            &addr,
            name,
            &[
                "--retries",
                "5",
                "--retry-interval",
                "1",
                "--cert-out",
                p(&lsc),
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_millis(1500));
    let _server = lab.serve_on(&addr);
    let out = phone.wait_with_output().unwrap();
    let (stdout, stderr) = succeeded(&out);
    assert!(stderr.contains("Failed: "), "{stderr}");
    assert!(
        stderr.contains("retrying in 1 s (attempt 2 of 6)"),
        "{stderr}"
    );
    assert!(stderr.contains("Succeeded: LSC installed"), "{stderr}");
    assert!(stdout.contains("LSC: Installed"), "{stdout}");
}

#[test]
fn retries_are_used_up() {
    let port = free_port();
    let lab = Lab::new();
    let started = Instant::now();
    let out = lab.phone(
        "run",
        &format!("127.0.0.1:{port}"),
        "SEP001122334477",
        &["--retries", "2", "--retry-interval", "1"],
    );
    let (stdout, stderr) = failed(&out);
    assert_eq!(stderr.matches("retrying in 1 s").count(), 2, "{stderr}");
    assert!(stderr.contains("Failed: cannot connect") || stderr.contains("Failed: "));
    assert!(stdout.contains("LSC: Not Installed"), "{stdout}");
    assert!(started.elapsed() >= Duration::from_secs(2));
}

/// A TCP server that accepts connections and never answers (the phone
/// hangs in the TLS handshake). Returns its address.
fn black_hole() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    addr
}

fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// A CAPF server that completes the TLS handshake (with the CAPF identity
/// in `data`) and then never says anything: a session that starts and
/// breaks. Returns its address.
fn mute_capf(data: &Path) -> String {
    let identity = capf_ca::CapfIdentity::load(data).unwrap();
    let config = std::sync::Arc::new(capf_server::server_config(&identity).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut tcp) = stream else { continue };
            let Ok(mut tls) = rustls::ServerConnection::new(config.clone()) else {
                continue;
            };
            while tls.is_handshaking() {
                if tls.complete_io(&mut tcp).is_err() {
                    break;
                }
            }
            held.push((tcp, tls));
        }
    });
    addr
}

#[test]
fn a_dead_server_is_skipped_for_the_next_one() {
    let lab = Lab::new();
    let server = lab.serve();
    let name = "SEP0011223344CC";
    lab.schedule_install("add", name, "null-string", "p256");
    // Nothing listens there: the connection is refused.
    let dead = format!("127.0.0.1:{}", free_port());
    let lsc = lab.path("lsc.pem");
    let started = Instant::now();
    let out = lab.phone(
        "install",
        &dead,
        name,
        &["--server", &server.addr, "--cert-out", p(&lsc)],
    );
    let (stdout, stderr) = succeeded(&out);
    assert!(
        stderr.contains(&format!("connecting to {dead}: ")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("; trying {}", server.addr)),
        "{stderr}"
    );
    assert!(!stderr.contains("retrying"), "{stderr}");
    assert!(stderr.contains("Succeeded: LSC installed"), "{stderr}");
    assert!(
        stdout.contains(&format!("CAPF Server: {}", server.addr)),
        "{stdout}"
    );
    assert!(stdout.contains("LSC: Installed"), "{stdout}");
    assert!(lsc_subject_and_key(&lsc).ends_with("p256"));

    // Again, in JSON: the same attempt went on to the live server.
    lab.schedule_install("set", name, "null-string", "p256");
    let out = lab.phone(
        "install",
        &dead,
        name,
        &["--server", &server.addr, "--cert-out", p(&lsc), "--json"],
    );
    let (stdout, _) = succeeded(&out);
    let result: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(result["result"], "succeeded");
    assert_eq!(result["operation"], "install");
    assert_eq!(result["server"], server.addr.as_str());
    assert_eq!(result["attempts"], 1);
    assert_eq!(result["unreachable"][0]["server"], dead.as_str());
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn a_session_that_breaks_is_retried_on_the_next_server() {
    let lab = Lab::new();
    let server = lab.serve();
    let name = "SEP0011223344DD";
    lab.schedule_install("add", name, "null-string", "p256");
    // The first server answers the TLS handshake, then goes silent: the
    // phone times out, and its one retry must start with the second
    // server (starting with the mute one again would fail for good).
    let mute = mute_capf(&lab.data());
    let lsc = lab.path("lsc.pem");
    let state = lab.path("phone.state");
    let out = lab.phone(
        "install",
        &mute,
        name,
        &[
            "--server",
            &server.addr,
            "--timeout",
            "2",
            "--retries",
            "1",
            "--retry-interval",
            "1",
            "--cert-out",
            p(&lsc),
            "--state",
            p(&state),
            "--json",
        ],
    );
    let (stdout, stderr) = succeeded(&out);
    assert!(
        stderr.contains(&format!(
            "Failed on {mute}: timed out (waiting for AUTH_REQUEST); retrying in 1 s, from {} \
             (attempt 2 of 2)",
            server.addr
        )),
        "{stderr}"
    );
    let result: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(result["result"], "succeeded");
    assert_eq!(result["server"], server.addr.as_str());
    assert_eq!(result["attempts"], 2);
    // The state file is kept as with one server: the operation completed.
    let kept = std::fs::read_to_string(&state).unwrap();
    assert!(!kept.contains("auth_mode"), "{kept}");
    assert!(kept.contains("lsc_installed=yes"), "{kept}");
}

#[test]
fn more_than_five_servers_is_a_usage_error() {
    let mut command = bare_phone("run", "127.0.0.1:1", "SEP001122334455");
    for port in 2..=6 {
        command.args(["--server", &format!("127.0.0.1:{port}")]);
    }
    let out = command
        .args(["--capf-cert", "missing.pem", "--retries", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("at most 5 CAPF servers"), "{stderr}");
    assert!(out.stdout.is_empty());
}

/// `capf --data-dir DATA loadgen ARGS --json`, as JSON, and its exit code.
fn loadgen(lab: &Lab, args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let out = lab.capf(&[&["loadgen"], args, &["--json"]].concat());
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let report =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    (out.status.code(), report, stderr)
}

#[test]
fn loadgen_phones_walk_their_servers() {
    let lab = Lab::new();
    // A second CAPF with the same identity and, below, the same devices
    // scheduled (one data directory serves one `capf serve`).
    let other = lab.path("other");
    std::fs::create_dir(&other).unwrap();
    for entry in std::fs::read_dir(lab.data()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, other.join(path.file_name().unwrap())).unwrap();
    }
    // Devices 4 to 11 in both, for the phones that may go to either.
    for dir in [lab.data(), other.clone()] {
        for index in 4..12 {
            let name = format!("SEP{index:012X}");
            let out = capf()
                .arg("--data-dir")
                .arg(&dir)
                .args(["device", "add", &name, "--operation", "install"])
                .args(["--auth-mode", "null-string", "--key", "p256"])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", text(&out.stderr));
        }
    }
    let mut one = lab.serve();
    let two = Serve::start_with(
        &other,
        lab.path("serve-2.log"),
        &["--listen", "127.0.0.1:0"],
    );
    let dead = format!("127.0.0.1:{}", free_port());
    let common = [
        "--phones",
        "4",
        "--concurrency",
        "2",
        "--auth",
        "null-string",
        "--timeout",
        "10",
        "--retry-interval",
        "1",
    ];

    // Rotated: phones 0 and 2 start at the dead server and go on to the
    // live one at once; 1 and 3 start there. (loadgen schedules devices 0
    // to 3 in the data directory of the live server.)
    let args = [&["--server", &dead, "--server", &one.addr][..], &common].concat();
    let (code, report, stderr) = loadgen(&lab, &args);
    assert_eq!(code, Some(0), "{report:#}\n{stderr}");
    assert_eq!(report["succeeded"], 4);
    assert_eq!(report["servers"][0]["server"], dead.as_str());
    assert_eq!(report["servers"][0]["unreachable"], 2);
    assert_eq!(report["servers"][0]["enrolled"], 0);
    assert_eq!(report["servers"][1]["enrolled"], 4);
    assert_eq!(report["retried_attempts"], 0);

    // Two live servers, rotated: half the phones each. (An uninitialised
    // --data-dir: loadgen schedules nothing, devices 4 to 7 are ready.)
    let elsewhere = lab.path("none");
    let trust = lab.capf_cert();
    let two_live = [
        "--server",
        &one.addr,
        "--server",
        &two.addr,
        "--capf-cert",
        p(&trust),
    ];
    let loadgen_elsewhere = |extra: &[&str]| {
        let out = capf()
            .arg("--data-dir")
            .arg(&elsewhere)
            .arg("loadgen")
            .args(two_live)
            .args(common)
            .args(extra)
            .arg("--json")
            .output()
            .unwrap();
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        let report: serde_json::Value =
            serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
        assert_eq!(out.status.code(), Some(0), "{report:#}\n{stderr}");
        report
    };
    let report = loadgen_elsewhere(&["--first-index", "4"]);
    assert_eq!(report["servers"][0]["enrolled"], 2);
    assert_eq!(report["servers"][1]["enrolled"], 2);

    // The same order: every phone on the first.
    let report = loadgen_elsewhere(&["--first-index", "8", "--server-order", "same"]);
    assert_eq!(report["servers"][0]["enrolled"], 4);
    assert_eq!(report["servers"][1]["enrolled"], 0);

    // Only dead servers: every phone retries once, then fails; exit 1.
    one.sigkill();
    let started = Instant::now();
    let args = [
        &["--server", &dead, "--server", &one.addr, "--retries", "1"][..],
        &common,
    ]
    .concat();
    let (code, report, _) = loadgen(&lab, &args);
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(report["succeeded"], 0);
    assert_eq!(report["failed"], 4);
    assert_eq!(report["retried_attempts"], 4);
    assert_eq!(report["phones_retried"], 4);
    assert_eq!(report["servers"][0]["unreachable"], 8);
    assert!(started.elapsed() >= Duration::from_secs(1));

    // Six servers are a usage error.
    let six: Vec<String> = (1..=6).map(|p| format!("127.0.0.1:{p}")).collect();
    let mut args: Vec<&str> = Vec::new();
    for s in &six {
        args.extend(["--server", s.as_str()]);
    }
    let out = lab.capf(&[&["loadgen"], &args[..], &common].concat());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn interrupted_install_resumes_with_the_stored_auth_mode() {
    let lab = Lab::new();
    let server = lab.serve();
    let name = "SEP001122334488";
    lab.schedule_install("add", name, "null-string", "p256");
    let lsc = lab.path("lsc.pem");
    let state = lab.path("phone.state");
    let out = lab.phone(
        "install",
        &server.addr,
        name,
        &["--cert-out", p(&lsc), "--state", p(&state)],
    );
    succeeded(&out);
    let text_of = |f: &Path| std::fs::read_to_string(f).unwrap_or_default();
    // Completed: the pending mode is cleared, the LSC recorded.
    assert!(
        !text_of(&state).contains("auth_mode"),
        "{}",
        text_of(&state)
    );
    assert!(text_of(&state).contains("lsc_installed=yes"));

    // Now an upgrade that must be authenticated by the LSC.
    lab.schedule_install("set", name, "lsc-first", "p256");
    // The phone starts it with its LSC, but the power fails mid-session
    // (the server never answers; the process is killed).
    let hole = black_hole();
    let mut phone = lab
        .phone_command(
            "install",
            &hole,
            name,
            &[
                "--lsc",
                p(&lsc),
                "--cert-out",
                p(&lsc),
                "--state",
                p(&state),
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the pending state", || {
        text_of(&state).contains("auth_mode=lsc-first")
    });
    phone.kill().unwrap();
    phone.wait().unwrap();
    assert!(text_of(&state).contains("auth_mode=lsc-first"));
    assert!(text_of(&state).contains("attempts=1"));

    // After the "reboot" the phone has no auth flags (its configuration
    // is lost). Without the state it would send the null string, which the
    // server refuses...
    let out = lab.phone("install", &server.addr, name, &["--cert-out", p(&lsc)]);
    let (_, stderr) = failed(&out);
    assert!(stderr.contains("refused by the server"), "{stderr}");
    // ...with the state it resumes with the LSC it kept.
    let out = lab.phone(
        "install",
        &server.addr,
        name,
        &["--cert-out", p(&lsc), "--state", p(&state)],
    );
    let (stdout, stderr) = succeeded(&out);
    assert!(
        stderr.contains("stored authentication mode lsc-first"),
        "{stderr}"
    );
    assert!(stdout.contains("LSC: Installed"), "{stdout}");
    assert!(
        !text_of(&state).contains("auth_mode"),
        "{}",
        text_of(&state)
    );
}

#[cfg(unix)]
#[test]
fn ctrl_c_stops_the_phone() {
    let lab = Lab::new();
    let hole = black_hole();
    let state = lab.path("phone.state");
    let phone = lab
        .phone_command(
            "install",
            &hole,
            "SEP001122334499",
            &["--auth-string", "12345678", "--state", p(&state)],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the attempt to start", || state.exists());
    thread::sleep(Duration::from_millis(300));
    let status = Command::new("kill")
        .args(["-INT", &phone.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let out = phone.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    let (stdout, stderr) = failed(&out);
    assert!(stderr.contains("stopped by user"), "{stderr}");
    assert!(stdout.contains("LSC: Not Installed"), "{stdout}");
    // The user ended the operation: nothing stays pending.
    let kept = std::fs::read_to_string(&state).unwrap();
    assert!(!kept.contains("auth_mode"), "{kept}");
}

#[test]
fn help_has_examples() {
    for args in [
        &["phone", "install", "--help"][..],
        &["phone", "fetch", "--help"],
        &["phone", "delete", "--help"],
        &["phone", "run", "--help"],
        &["wire", "decode", "--help"],
    ] {
        let out = capf().args(args).output().unwrap();
        assert!(out.status.success());
        let help = text(&out.stdout);
        assert!(help.contains("Examples:"), "{args:?}:\n{help}");
        assert!(help.contains("capf "), "{args:?}:\n{help}");
    }
    let out = capf().args(["phone", "run", "--help"]).output().unwrap();
    let help = text(&out.stdout);
    for flag in [
        "--server",
        "--capf-cert",
        "--device",
        "--auth-string",
        "--lsc",
        "--mic",
        "--sudi",
        "--cert-out",
        "--state",
        "--timeout",
        "--retry-interval",
        "--retries",
        "--json",
    ] {
        assert!(help.contains(flag), "{flag} missing:\n{help}");
    }
}
