#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `capf loadgen` against a `capf serve` the test starts on 127.0.0.1
//! (ephemeral port): phones for the devices of a file, scheduled by the
//! operator (`--devices FILE --no-schedule`, no access to the server's
//! database), and devices loadgen schedules itself, removed at the end
//! unless `--keep`.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Serve, capf};

/// Runs `capf --data-dir DATA loadgen ARGS` with bounded waits (no retry,
/// 20 s per message) and returns its output.
fn loadgen(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_capf"))
        .arg("--data-dir")
        .arg(data)
        .arg("loadgen")
        .args(args)
        .args(["--retries", "0", "--timeout", "20", "--json"])
        .env_remove("CAPF_DATA_DIR")
        .env_remove("CAPF_DATABASE_URL")
        .output()
        .unwrap()
}

fn succeeded(out: &Output) -> serde_json::Value {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "loadgen failed: {}\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn names(data: &Path) -> Vec<String> {
    let list: serde_json::Value =
        serde_json::from_slice(&capf(data, &["device", "list", "--json"]).stdout).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_owned())
        .collect()
}

fn lsc_status(data: &Path, name: &str) -> String {
    let shown: serde_json::Value =
        serde_json::from_slice(&capf(data, &["device", "show", name, "--json"]).stdout).unwrap();
    shown["lsc_status"].as_str().unwrap().to_owned()
}

#[test]
fn devices_of_a_file_enroll_without_loadgen_touching_a_database() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    capf(&data, &["init", "--key", "p256"]);
    let mut file = String::from("name,auth_string\n");
    for i in 1..=4 {
        let name = format!("SEP00000000000{i}");
        capf(
            &data,
            &[
                "device",
                "add",
                &name,
                "--auth-mode",
                "null-string",
                "--operation",
                "install",
            ],
        );
        file.push_str(&format!("{name}\n"));
    }
    // One with an authentication string, written as the report writes a
    // string that begins with 0.
    capf(
        &data,
        &[
            "device",
            "add",
            "SEP000000000005",
            "--auth-mode",
            "auth-string",
            "--auth-string",
            "04711",
            "--operation",
            "install",
        ],
    );
    file.push_str("SEP000000000005,'04711\n");
    let devices = tmp.path().join("devices.csv");
    std::fs::write(&devices, file).unwrap();

    let serve = Serve::start(&data, tmp.path().join("serve.log"));
    // Loadgen's own directory is empty: it has no database to write to.
    let elsewhere = tmp.path().join("elsewhere");
    let capf_cert = data.join("capf.pem");
    let out = loadgen(
        &elsewhere,
        &[
            "--server",
            &serve.addr,
            "--capf-cert",
            capf_cert.to_str().unwrap(),
            "--devices",
            devices.to_str().unwrap(),
            "--no-schedule",
        ],
    );
    let figures = succeeded(&out);
    assert_eq!(figures["phones"], 5);
    assert_eq!(figures["succeeded"], 5);
    assert!(
        !elsewhere.exists(),
        "loadgen created {}",
        elsewhere.display()
    );
    for i in 1..=5 {
        assert_eq!(
            lsc_status(&data, &format!("SEP00000000000{i}")),
            "installed"
        );
    }

    // --no-schedule without --devices needs null-string devices.
    let out = loadgen(
        &elsewhere,
        &["--server", &serve.addr, "--no-schedule", "--phones", "1"],
    );
    assert_eq!(out.status.code(), Some(2));
    // A bad string in the file is refused, without repeating it.
    std::fs::write(&devices, "SEP000000000001,12x45\n").unwrap();
    let out = loadgen(
        &elsewhere,
        &[
            "--server",
            &serve.addr,
            "--capf-cert",
            capf_cert.to_str().unwrap(),
            "--devices",
            devices.to_str().unwrap(),
            "--no-schedule",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 1"), "{stderr}");
    assert!(!stderr.contains("12x45"), "{stderr}");
}

#[test]
fn devices_loadgen_added_are_removed_at_the_end_unless_keep() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    capf(&data, &["init", "--key", "p256"]);
    // A device of the operator among those loadgen schedules: not removed.
    capf(&data, &["device", "add", "SEP000000000100"]);
    let serve = Serve::start(&data, tmp.path().join("serve.log"));

    let out = loadgen(
        &data,
        &[
            "--server",
            &serve.addr,
            "--phones",
            "3",
            "--first-index",
            "256",
        ],
    );
    let figures = succeeded(&out);
    assert_eq!(figures["succeeded"], 3);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("removed the 2 devices loadgen added"),
        "{stderr}"
    );
    assert_eq!(names(&data), ["SEP000000000100"]);
    assert_eq!(lsc_status(&data, "SEP000000000100"), "installed");

    let out = loadgen(
        &data,
        &[
            "--server",
            &serve.addr,
            "--phones",
            "2",
            "--first-index",
            "512",
            "--auth",
            "null-string",
            "--keep",
        ],
    );
    succeeded(&out);
    assert_eq!(
        names(&data),
        ["SEP000000000100", "SEP000000000200", "SEP000000000201"]
    );
    assert_eq!(lsc_status(&data, "SEP000000000201"), "installed");
}
