//! The golden files of `testdata/trust-list/` and helpers shared by the tests.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::path::Path;
use std::process::Command;

use capf_ca::{CaCertificate, PrivateKey};
use capf_provisioning::FileSigner;

macro_rules! testdata {
    ($name:literal) => {
        include_bytes!(concat!("../../../../testdata/trust-list/", $name))
    };
}

pub const ITL_V10_SHA1: &[u8] = testdata!("itl-v1.0-sha1.tlv");
pub const ITL_V10_SHA512: &[u8] = testdata!("itl-v1.0-sha512.tlv");
pub const ITL_V11_EC: &[u8] = testdata!("itl-v1.1-sha1-ec.tlv");
pub const CTL_PADDED: &[u8] = testdata!("ctl-v1.0-sha1-padded.tlv");
pub const ITL_TAMPERED: &[u8] = testdata!("itl-v1.0-sha1-tampered.tlv");
pub const CONFIG: &[u8] = testdata!("sgn/SEP001122334455.cnf.xml");
pub const CONFIG_SGN: &[u8] = testdata!("sgn/SEP001122334455.cnf.xml.sgn");
pub const ENC_SGN: &[u8] = testdata!("enc/SEP001122334455.cnf.xml.enc.sgn");
pub const ENC_STUB: &[u8] = testdata!("enc/SEP001122334455.cnf.xml.sgn");

pub const SAST_PEM: &str = include_str!("../../../../testdata/trust-list/keys/sast.pem");
pub const SAST2_PEM: &str = include_str!("../../../../testdata/trust-list/keys/sast2.pem");
pub const SAST_EC_PEM: &str = include_str!("../../../../testdata/trust-list/keys/sast-ec.pem");
pub const CAPF_PEM: &str = include_str!("../../../../testdata/trust-list/keys/capf.pem");
pub const CAPF_EC_PEM: &str = include_str!("../../../../testdata/trust-list/keys/capf-ec.pem");
pub const TFTP_PEM: &str = include_str!("../../../../testdata/trust-list/keys/tftp.pem");
pub const PHONE_LSC_PEM: &str = include_str!("../../../../testdata/trust-list/keys/phone-lsc.pem");
pub const PHONE_KEY_PEM: &str =
    include_str!("../../../../testdata/trust-list/keys/phone-lsc-key.pem");

/// The timestamps read from the vectors (README table).
pub const TS_ITL_V10_SHA1: u32 = 1_796_159_478;
pub const TS_ITL_V10_SHA512: u32 = 1_796_159_479;
pub const TS_ITL_V11_EC: u32 = 1_796_159_479;
pub const TS_CTL_PADDED: u32 = 1_796_159_499;
pub const TS_SGN: u32 = 1_796_159_517;
pub const TS_ENC: u32 = 1_796_159_522;

pub fn signer(pem: &str) -> FileSigner {
    FileSigner::from_pem(pem, "test key").unwrap()
}

pub fn cert(pem: &str) -> CaCertificate {
    capf_provisioning::certificate_from_pem(pem, "test certificate").unwrap()
}

/// The `PRIVATE KEY` block of a key+certificate PEM file.
pub fn private_key(pem: &str) -> PrivateKey {
    let start = pem.find("-----BEGIN PRIVATE KEY-----").unwrap();
    let end_marker = "-----END PRIVATE KEY-----";
    let end = pem.find(end_marker).unwrap() + end_marker.len();
    PrivateKey::from_pkcs8_pem(&pem[start..end]).unwrap()
}

pub fn phone_key() -> PrivateKey {
    PrivateKey::from_pkcs8_pem(PHONE_KEY_PEM).unwrap()
}

/// Runs openssl in `dir`; returns (success, stdout + stderr).
pub fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
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
