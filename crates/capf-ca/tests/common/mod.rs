//! Helpers shared by the integration tests: the openssl binary and cached keys.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use capf_ca::{EcCurve, KeySpec, PrivateKey};

/// A fixed "now": 2027-01-15.
pub fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// Runs openssl in `dir`, panicking with its output on failure; returns stdout.
pub fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs openssl and returns (success, stdout + stderr).
pub fn openssl_status(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// One key per spec, generated once per test binary (RSA-4096 is slow).
pub fn key(spec: KeySpec) -> &'static PrivateKey {
    static RSA1024: OnceLock<PrivateKey> = OnceLock::new();
    static RSA2048: OnceLock<PrivateKey> = OnceLock::new();
    static RSA4096: OnceLock<PrivateKey> = OnceLock::new();
    static P256: OnceLock<PrivateKey> = OnceLock::new();
    static P384: OnceLock<PrivateKey> = OnceLock::new();
    let cell = match spec {
        KeySpec::Rsa { bits: 1024 } => &RSA1024,
        KeySpec::Rsa { bits: 2048 } => &RSA2048,
        KeySpec::Rsa { bits: 4096 } => &RSA4096,
        KeySpec::Ec(EcCurve::P256) => &P256,
        KeySpec::Ec(EcCurve::P384) => &P384,
        other => panic!("no cached key for {other}"),
    };
    cell.get_or_init(|| PrivateKey::generate(spec).unwrap())
}

pub const PHONE_KEYS: [KeySpec; 5] = [
    KeySpec::Rsa { bits: 1024 },
    KeySpec::Rsa { bits: 2048 },
    KeySpec::Rsa { bits: 4096 },
    KeySpec::Ec(EcCurve::P256),
    KeySpec::Ec(EcCurve::P384),
];

pub const CAPF_KEYS: [KeySpec; 2] = [KeySpec::Rsa { bits: 2048 }, KeySpec::Ec(EcCurve::P256)];
