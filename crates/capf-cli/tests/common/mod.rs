//! Shared helpers for the `capf` binary's integration tests: running
//! `capf` on a data directory, `capf serve` on 127.0.0.1 (ephemeral port)
//! as a child process, and what a phone needs to talk to it. The scripted
//! phone (`handset`) is the capf-server tests' own.
#![allow(dead_code, unreachable_pub)]

#[path = "../../../capf-server/tests/common/handset.rs"]
pub mod handset;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use capf_auth::AuthString;
use capf_ca::CaCertificate;
use capf_operations::phone::{Credentials, PhoneConfig};
use capf_store::SqliteStore;
use tempfile::TempDir;

/// The database file in a data directory, as `capf init` creates it.
pub const DATABASE: &str = "capf.sqlite3";

/// Longest wait for `capf serve` to start or to exit.
pub const SERVE_LIMIT: Duration = Duration::from_secs(60);

/// Runs `capf --data-dir DATA ARGS` and expects success.
pub fn capf(data: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_capf"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("CAPF_DATA_DIR")
        .env_remove("CAPF_DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "capf {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A running `capf serve`, killed if the test ends early. Its log
/// (standard error) is copied to a file and read line by line.
pub struct Serve {
    child: Child,
    pub addr: String,
    lines: Receiver<String>,
    log: PathBuf,
}

impl Serve {
    /// Starts `capf serve --listen 127.0.0.1:0` and waits for the address it
    /// logs. Its log (stderr) goes to `log`.
    pub fn start(data: &Path, log: PathBuf) -> Serve {
        Self::start_with(data, log, &["--listen", "127.0.0.1:0"])
    }

    /// Starts `capf serve ARGS` (which name a `--listen` address on
    /// 127.0.0.1) and waits for the address it logs. Its log (stderr) goes
    /// to `log`.
    pub fn start_with(data: &Path, log: PathBuf, args: &[&str]) -> Serve {
        Self::start_env(data, log, args, "debug")
    }

    /// [`start_with`](Self::start_with) with this `RUST_LOG`.
    pub fn start_env(data: &Path, log: PathBuf, args: &[&str], rust_log: &str) -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_capf"))
            .arg("--data-dir")
            .arg(data)
            .arg("serve")
            .args(args)
            .env_remove("CAPF_DATA_DIR")
            .env_remove("CAPF_DATABASE_URL")
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = channel();
        let pipe = child.stderr.take().unwrap();
        let mut file = std::fs::File::create(&log).unwrap();
        std::thread::spawn(move || {
            use std::io::Write as _;
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(file, "{line}");
                // The reader may be gone: keep copying to the file.
                let _ = tx.send(line);
            }
        });
        let mut serve = Serve {
            child,
            addr: String::new(),
            lines,
            log,
        };
        let line = serve.wait_for_line("listening on ");
        let at = line.find("listening on ").unwrap() + "listening on ".len();
        serve.addr = line[at..]
            .chars()
            .take_while(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']'))
            .collect();
        assert!(serve.addr.starts_with("127.0.0.1:"), "{line}");
        serve
    }

    /// Waits (bounded) for a log line holding `text`.
    pub fn wait_for_line(&mut self, text: &str) -> String {
        let deadline = Instant::now() + SERVE_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no {text:?} line from capf serve; log:\n{}", self.log())
                }
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "capf serve ended without logging {text:?}; log:\n{}",
                    self.log()
                ),
            }
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + SERVE_LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "capf serve did not exit; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILL (what `Child::kill` sends on Unix), and wait (bounded) until
    /// it is gone. Returns the exit status.
    pub fn sigkill(&mut self) -> ExitStatus {
        let _ = self.child.kill();
        self.wait()
    }

    /// SIGTERM; returns the exit status and every log line after the
    /// start.
    pub fn sigterm(&mut self) -> (ExitStatus, Vec<String>) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let status = self.wait();
        // The process is gone: the reader thread sees EOF and the channel
        // closes after the last line.
        let mut lines = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(SERVE_LIMIT) {
            lines.push(line);
        }
        (status, lines)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The client TLS configuration of a phone whose ITL holds the CAPF
/// certificate in `data`.
pub fn phone_tls(data: &Path) -> Arc<rustls::ClientConfig> {
    let pem = std::fs::read_to_string(data.join(capf_ca::CERT_FILE)).unwrap();
    let capf = CaCertificate::from_pem(&pem, "CAPF certificate").unwrap();
    Arc::new(capf_server::phone_client_config(vec![capf]).unwrap())
}

/// A phone `n` authenticating with the string `string`.
pub fn phone_config(n: &str, string: &str) -> PhoneConfig {
    PhoneConfig::new(
        n,
        Credentials::AuthString(string.parse::<AuthString>().unwrap()),
    )
}

/// Opens the database of the data directory `data`.
pub fn open_store(data: &Path) -> SqliteStore {
    SqliteStore::open(data.join(DATABASE)).unwrap()
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A temporary directory with a data directory `data` in it, and `capf`
/// run on it with both outputs piped (as a script runs it).
pub struct Env {
    dir: TempDir,
}

impl Env {
    /// An empty directory: `data` does not exist yet.
    pub fn empty() -> Env {
        Env {
            dir: TempDir::new().unwrap(),
        }
    }

    /// A data directory initialised with a P-256 CAPF key (fast).
    pub fn initialised() -> Env {
        let env = Env::empty();
        env.ok(&["init", "--key", "p256"]);
        env
    }

    /// The data directory.
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A file beside the data directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `text` to the file `name`; returns its path.
    pub fn write(&self, name: &str, text: &str) -> String {
        let path = self.file(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    }

    /// Runs `capf --data-dir DATA ARGS`, no standard input.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_capf"))
            .arg("--data-dir")
            .arg(self.data())
            .args(args)
            .env_remove("CAPF_DATA_DIR")
            .env_remove("CAPF_DATABASE_URL")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs and expects exit code `code`; returns (stdout, stderr).
    pub fn code(&self, code: i32, args: &[&str]) -> (String, String) {
        let out = self.run(args);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert_eq!(
            out.status.code(),
            Some(code),
            "capf {args:?}:\n{stdout}\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        (stdout, stderr)
    }

    /// Runs, expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.code(0, args).0
    }

    /// Runs, expects success; parses stdout as JSON.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.ok(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("capf {args:?}: {e}:\n{out}"))
    }
}

/// Whether an `openssl` command is there to cross-check with.
pub fn openssl_available() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}
