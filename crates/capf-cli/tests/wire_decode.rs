#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `capf wire decode` on the golden exchanges (testdata/vectors), hex
//! snippets and garbage.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn capf() -> Command {
    Command::new(env!("CARGO_BIN_EXE_capf"))
}

fn vector(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/vectors")
        .join(name)
}

fn run(args: &[&str]) -> Output {
    capf().args(args).output().unwrap()
}

fn decode_file(name: &str) -> String {
    let path = vector(name);
    let out = run(&["wire", "decode", "--file", path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name}: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn decode_hex(hex: &str) -> Output {
    run(&["wire", "decode", hex])
}

/// Asserts every expected line (trimmed) is a line of the output.
fn has_lines(out: &str, expected: &[&str]) {
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    for e in expected {
        assert!(lines.contains(e), "missing line {e:?} in\n{out}");
    }
}

fn frame_headers(out: &str) -> Vec<&str> {
    out.lines().filter(|l| l.starts_with("frame ")).collect()
}

#[test]
fn install_password() {
    let out = decode_file("install-password.txt");
    let headers = frame_headers(&out);
    assert_eq!(headers.len(), 8, "{out}");
    assert!(headers[0].contains("S>C AUTH_REQUEST (1), session 1, body 8 bytes"));
    assert!(headers[1].contains("C>S AUTH_RESPONSE (2), session 1"));
    assert!(headers[3].contains("C>S REQUEST_IN_PROGRESS (17), session 1, body 0 bytes"));
    assert!(headers[7].contains("S>C END_SESSION (15)"));
    has_lines(
        &out,
        &[
            "VERSION 3",
            "AUTH_TYPE NONE (0)",
            "REASON 1 (UPDATE_CERTIFICATE)",
            "DEVICE_NAME SEP001122334455",
            "PASSWORD <redacted, 6 bytes>",
            "KEY_SIZE 2048",
            "KEY_TYPE RSA (0)",
            "PUBLIC_KEY RSA 2048 (294-byte SPKI)",
            "CERTIFICATE_TYPE LSC (1)",
            "CERTIFICATE LSC (1), 856-byte DER",
            "issuer    CN=CAPF, O=CAPF, OU=CAPF",
        ],
    );
    assert!(
        out.lines()
            .any(|l| l.trim().starts_with("subject") && l.contains("CN=SEP001122334455")),
        "{out}"
    );
    assert!(out.contains("serial    "), "{out}");
    assert!(out.contains("validity  2026-11-27T"), "{out}");
    assert!(!out.contains("123456"), "the password leaked:\n{out}");

    // --show-secrets reveals it.
    let path = vector("install-password.txt");
    let shown = run(&[
        "wire",
        "decode",
        "--show-secrets",
        "--file",
        path.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("PASSWORD \"123456\""));
}

#[test]
fn install_null_ec() {
    let out = decode_file("install-null-ec.txt");
    assert_eq!(frame_headers(&out).len(), 8, "{out}");
    has_lines(
        &out,
        &[
            "DEVICE_NAME SEP0011223344AA",
            "PASSWORD <empty>",
            "KEY_TYPE EC (1)",
            "CURVE P-384 (1)",
            "PUBLIC_KEY EC P-384 (120-byte SPKI)",
            "key       EC P-384",
        ],
    );
    assert!(out.contains("CURVE P-384"));
    assert!(out.contains("CN=SEP0011223344AA"), "{out}");
}

#[test]
fn install_lsc_auth() {
    let out = decode_file("install-lsc-auth.txt");
    assert_eq!(frame_headers(&out).len(), 8, "{out}");
    has_lines(
        &out,
        &[
            "SIGNED_DATA 256-byte signature",
            "SHA2_SIGNED_DATA SHA-512 (hash 3), 256-byte signature",
            "SUDI_DATA certificate 856 bytes, SHA-1 signature 256 bytes, SHA-512 signature 256 bytes",
            "PASSWORD <empty>",
            "KEY_SIZE 2048",
        ],
    );
    assert!(
        out.lines()
            .any(|l| l.trim().starts_with("SUDI subject") && l.contains("CN=SEP001122334455")),
        "{out}"
    );
    // The AUTH_RESPONSE body is 2796 bytes (the LSC-authenticated install).
    assert!(frame_headers(&out)[1].contains("body 2796 bytes"), "{out}");
}

#[test]
fn fetch() {
    let out = decode_file("fetch.txt");
    let headers = frame_headers(&out);
    assert_eq!(headers.len(), 5, "{out}");
    assert!(headers[2].contains("FETCH_CERTIFICATE_REQUEST (11), session 4, body 0 bytes"));
    assert!(headers[3].contains("C>S FETCH_CERTIFICATE_RESPONSE (12)"));
    has_lines(
        &out,
        &["REASON 0 (NO_ACTION)", "CERTIFICATE LSC (1), 856-byte DER"],
    );
    assert!(out.contains("CN=SEP001122334455"), "{out}");
}

#[test]
fn delete() {
    let out = decode_file("delete.txt");
    let headers = frame_headers(&out);
    assert_eq!(headers.len(), 5, "{out}");
    assert!(headers[2].contains("DELETE_CERTIFICATE_REQUEST (13), session 5"));
    assert!(headers[3].contains("DELETE_CERTIFICATE_RESPONSE (14)"));
    has_lines(&out, &["REASON 1 (UPDATE_CERTIFICATE)"]);
}

#[test]
fn hex_snippets() {
    // AUTH_REQUEST, with `|` between header and body.
    let out = decode_hex("55 01 00000001 0008 | 07 0001 03  08 0001 00");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    has_lines(&text, &["VERSION 3", "AUTH_TYPE NONE (0)"]);

    // The whole password AUTH_RESPONSE line, direction label included.
    let out = decode_hex(
        "C→S 55 02 00000001 0025 | 01 0001 01  07 0001 03  0b 0007 31323334353600  \
         0d 0010 53455030303131323233333434353500",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("C>S AUTH_RESPONSE"), "{text}");
    has_lines(
        &text,
        &[
            "REASON 1 (UPDATE_CERTIFICATE)",
            "PASSWORD <redacted, 6 bytes>",
            "DEVICE_NAME SEP001122334455",
        ],
    );

    // The EC key request.
    let out = decode_hex("S→C 55 03 00000002 0008 | 11 0001 01  12 0001 01");
    has_lines(
        &String::from_utf8_lossy(&out.stdout),
        &["KEY_TYPE EC (1)", "CURVE P-384 (1)"],
    );

    // END_SESSION: none, install done, unknown device, bad password.
    for (hex, line) in [
        ("55 0f 00000004 0004 | 01 0001 00", "REASON 0 (NO_ACTION)"),
        (
            "55 0f 00000005 0004 | 01 0001 01",
            "REASON 1 (UPDATE_CERTIFICATE)",
        ),
        (
            "55 0f 00000009 0004 | 01 0001 09",
            "REASON 9 (UNKNOWN_DEVICE)",
        ),
        (
            "55 0f 00000009 0004 | 01 0001 07",
            "REASON 7 (INVALID_ELEMENT)",
        ),
    ] {
        let out = decode_hex(hex);
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("END_SESSION (15)"), "{text}");
        has_lines(&text, &[line]);
    }

    // Both directions in one dump, several frames per line, no labels.
    let out = decode_hex("550d000000050000 550e00000005000401000101 550f00000005000401000101");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(frame_headers(&text).len(), 3, "{text}");
    assert!(frame_headers(&text)[2].contains("at offset 20:"), "{text}");
}

#[test]
fn json_output() {
    let path = vector("install-null-ec.txt");
    let out = run(&["wire", "decode", "--json", "--file", path.to_str().unwrap()]);
    assert!(out.status.success());
    let frames: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let frames = frames.as_array().unwrap();
    assert_eq!(frames.len(), 8);
    assert_eq!(frames[0]["command"], "AUTH_REQUEST");
    assert_eq!(frames[0]["direction"], "S>C");
    assert_eq!(frames[0]["session_id"], 2);
    let key_request = &frames[2]["elements"];
    assert_eq!(key_request[1]["name"], "CURVE");
    assert_eq!(key_request[1]["meaning"], "P-384");
    let store = &frames[5]["elements"][1];
    assert_eq!(store["name"], "CERTIFICATE");
    assert_eq!(store["certificate"]["key"], "EC P-384");
    assert!(
        store["certificate"]["subject"]
            .as_str()
            .unwrap()
            .contains("CN=SEP0011223344AA")
    );
}

#[test]
fn standard_input() {
    let text = std::fs::read_to_string(vector("delete.txt")).unwrap();
    let mut child = capf()
        .args(["wire", "decode", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        frame_headers(&String::from_utf8_lossy(&out.stdout)).len(),
        5
    );
}

fn fails_with(hex: &str, needles: &[&str]) {
    let out = decode_hex(hex);
    assert_eq!(out.status.code(), Some(1), "{hex}");
    let err = String::from_utf8_lossy(&out.stderr);
    for n in needles {
        assert!(err.contains(n), "{hex}: {n:?} not in {err}");
    }
}

#[test]
fn garbage_is_rejected_with_its_position() {
    fails_with("55 01 0", &["odd number of hex digits", "line 1, column 7"]);
    fails_with("55 zz", &["not hex", "column 4"]);
    // A truncated frame: the header says 8 body bytes, 3 are there.
    fails_with(
        "55 01 00000001 0008 | 07 0001",
        &["offset 0", "input ends inside a frame", "5 more bytes"],
    );
    // A second frame that is not CAPF: offset 12 (after the first frame).
    fails_with(
        "55 0f 00000001 0004 01000101 42 00",
        &["offset 12", "protocol id 0x42"],
    );
    // An element running past the body: named with its offset.
    fails_with("55 0f 00000001 0004 01 0005 01", &["offset 8", "REASON"]);
    // No bytes at all.
    fails_with("# nothing", &["no CAPF bytes"]);
}
