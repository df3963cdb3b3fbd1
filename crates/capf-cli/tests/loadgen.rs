#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `capf loadgen`, run as an operator runs it, against a `capf serve` the
//! test starts on 127.0.0.1 (ephemeral port) or one it spawns itself.
//! Behaviour only: counts from loadgen's JSON and what the database then
//! holds, never timings.

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

mod devices {
    //! `capf loadgen` against a `capf serve` the test starts on 127.0.0.1
    //! (ephemeral port): phones for the devices of a file, scheduled by the
    //! operator (`--devices FILE --no-schedule`, no access to the server's
    //! database), and devices loadgen schedules itself, removed at the end
    //! unless `--keep`.

    use super::*;

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
            serde_json::from_slice(&capf(data, &["device", "show", name, "--json"]).stdout)
                .unwrap();
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
}

mod reenroll {
    //! `capf loadgen --auth lsc` (phones re-enroll with the LSC of a first
    //! pass) and `--auth mic` (phones with a MIC of a test manufacturing CA),
    //! with --spawn-server and against a `capf serve` the test starts on
    //! 127.0.0.1 (ephemeral port). Behaviour only: counts from loadgen's JSON
    //! and what the database then holds, never timings.

    use super::*;

    fn json(data: &Path, args: &[&str]) -> serde_json::Value {
        serde_json::from_slice(&capf(data, args).stdout).unwrap()
    }

    /// The devices loadgen made: SEP000000000000.. (six of them).
    fn names() -> Vec<String> {
        (0..6).map(|i| format!("SEP{i:012X}")).collect()
    }

    /// The serials of the device's "issued" audit entries, newest first.
    fn issued_serials(data: &Path, name: &str) -> Vec<String> {
        let audit = json(
            data,
            &["audit", "--device", name, "--event", "issued", "--json"],
        );
        audit
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let detail = e["detail"].as_str().unwrap();
                detail
                    .strip_prefix("serial ")
                    .and_then(|rest| rest.split_whitespace().next())
                    .unwrap_or_else(|| panic!("issued entry without a serial: {detail}"))
                    .to_owned()
            })
            .collect()
    }

    /// Loadgen's arguments for the six phones of these tests, three at a
    /// time, against `server` (`--spawn-server`, or `--server ADDR`).
    fn six_phones<'a>(server: &[&'a str], auth: &'a str, key: &'a str) -> Vec<&'a str> {
        let mut args = server.to_vec();
        args.extend([
            "--phones",
            "6",
            "--concurrency",
            "3",
            "--auth",
            auth,
            "--key",
            key,
        ]);
        args
    }

    fn assert_counts(figures: &serde_json::Value, auth: &str) {
        assert_eq!(figures["auth"], auth, "{figures:#}");
        assert_eq!(figures["phones"], 6, "{figures:#}");
        assert_eq!(figures["succeeded"], 6, "{figures:#}");
        assert_eq!(figures["failed"], 0, "{figures:#}");
    }

    #[test]
    fn lsc_phones_re_enroll_with_the_lsc_of_a_first_pass() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let out = loadgen(&data, &six_phones(&["--spawn-server"], "lsc", "p256"));
        let figures = succeeded(&out);
        assert_counts(&figures, "lsc");
        assert_eq!(figures["first_pass"]["succeeded"], 6, "{figures:#}");
        assert_eq!(figures["first_pass"]["failed"], 0, "{figures:#}");
        assert!(
            figures["timed"].as_str().unwrap().contains("LSC"),
            "{figures:#}"
        );

        for name in names() {
            let shown = json(&data, &["device", "show", &name, "--json"]);
            assert_eq!(shown["lsc_status"], "installed", "{shown:#}");
            assert_eq!(shown["auth_mode"], "lsc-first", "{shown:#}");
            assert_eq!(shown["status"], "successful", "{shown:#}");
            assert_eq!(shown["key"], "p256", "{shown:#}");
            // Two certificates issued: the LSC on record is the second one.
            let serials = issued_serials(&data, &name);
            assert_eq!(serials.len(), 2, "{name}: {serials:?}");
            assert_ne!(serials[0], serials[1], "{name}: {serials:?}");
            assert_eq!(shown["lsc"]["serial"], serials[0].as_str(), "{shown:#}");
            // The second install was authenticated by the first LSC.
            let completed = json(
                &data,
                &["audit", "--device", &name, "--event", "completed", "--json"],
            );
            let details: Vec<&str> = completed
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["detail"].as_str().unwrap())
                .collect();
            assert_eq!(details.len(), 2, "{details:?}");
            assert!(details[0].contains("LSC"), "{details:?}");
            assert!(details[1].contains("null string"), "{details:?}");
        }
    }

    /// --auth mic with --spawn-server, for each phone key type: every device is
    /// installed, authenticated by a MIC of loadgen's CA, which is gone from the
    /// trust folder afterwards.
    fn mic_run(key: &str) {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let out = loadgen(&data, &six_phones(&["--spawn-server"], "mic", key));
        let figures = succeeded(&out);
        assert_counts(&figures, "mic");
        assert_eq!(figures["phone_key"], key);
        assert!(figures.get("first_pass").is_none(), "{figures:#}");
        assert_mic_installed(&data, key);
        let trust = std::fs::read_dir(data.join("mic-trust")).unwrap().count();
        assert_eq!(trust, 0, "loadgen left its CA in the MIC trust");
    }

    fn assert_mic_installed(data: &Path, key: &str) {
        for name in names() {
            let shown = json(data, &["device", "show", &name, "--json"]);
            assert_eq!(shown["lsc_status"], "installed", "{shown:#}");
            assert_eq!(shown["auth_mode"], "mic-first", "{shown:#}");
            assert_eq!(shown["key"], key, "{shown:#}");
            assert_eq!(
                shown["mic"]["subject"].as_str().unwrap().split(',').next(),
                Some(format!("CN={name}").as_str()),
                "{shown:#}"
            );
            assert_eq!(issued_serials(data, &name).len(), 1, "{name}");
            let completed = json(
                data,
                &["audit", "--device", &name, "--event", "completed", "--json"],
            );
            assert_eq!(
                completed[0]["detail"], "install/upgrade, authenticated by MIC",
                "{completed:#}"
            );
        }
    }

    #[test]
    fn mic_phones_enroll_with_p256_mics() {
        mic_run("p256");
    }

    #[test]
    fn mic_phones_enroll_with_rsa2048_mics() {
        mic_run("rsa2048");
    }

    /// Against a running server loadgen cannot add MIC trust: without
    /// --mic-ca, or with a CA the server does not trust, it refuses before
    /// scheduling anything; with one in the server's trust, the phones enroll.
    #[test]
    fn mic_against_a_running_server_needs_a_trusted_mic_ca() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        capf(&data, &["init", "--key", "p256"]);
        let args = [
            "--server",
            "127.0.0.1:1",
            "--phones",
            "6",
            "--concurrency",
            "3",
            "--auth",
            "mic",
        ];
        let out = loadgen(&data, &args);
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--mic-ca FILE"), "{stderr}");

        // A manufacturing CA, certificate and PKCS#8 key in one file.
        let openssl = Command::new("openssl")
            .current_dir(tmp.path())
            .args([
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
            ])
            .output()
            .unwrap();
        assert!(openssl.status.success(), "{openssl:?}");
        let ca_pem = std::fs::read_to_string(tmp.path().join("ca.pem")).unwrap();
        let both =
            ca_pem.clone() + &std::fs::read_to_string(tmp.path().join("ca-key.pem")).unwrap();
        let mic_ca = tmp.path().join("mic-ca.pem");
        std::fs::write(&mic_ca, both).unwrap();
        let with_ca: Vec<&str> = args
            .iter()
            .copied()
            .chain(["--mic-ca", mic_ca.to_str().unwrap()])
            .collect();

        let out = loadgen(&data, &with_ca);
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("not in the server's MIC trust"), "{stderr}");
        assert_eq!(
            json(&data, &["device", "list", "--json"])
                .as_array()
                .unwrap()
                .len(),
            0,
            "devices scheduled before the refusal"
        );

        // The operator puts the CA into the trust, then starts the server.
        std::fs::create_dir_all(data.join("mic-trust")).unwrap();
        std::fs::write(data.join("mic-trust/manufacturer.pem"), ca_pem).unwrap();
        let serve = Serve::start(&data, tmp.path().join("serve.log"));
        let mut with_server = with_ca.clone();
        with_server[1] = &serve.addr;
        let figures = succeeded(&loadgen(
            &data,
            &[with_server.as_slice(), &["--keep", "--key", "p256"]].concat(),
        ));
        assert_counts(&figures, "mic");
        assert_mic_installed(&data, "p256");
        // The operator's trust is left as it was.
        assert!(data.join("mic-trust/manufacturer.pem").exists());
        drop(serve);
    }

    /// --auth lsc against a `capf serve` the test started on the same data
    /// directory: both passes go through the running server's database.
    #[test]
    fn lsc_against_a_running_server() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        capf(&data, &["init", "--key", "p256"]);
        let serve = Serve::start(&data, tmp.path().join("serve.log"));
        let mut args = six_phones(&["--server", &serve.addr], "lsc", "rsa2048");
        args.push("--keep");
        let figures = succeeded(&loadgen(&data, &args));
        assert_counts(&figures, "lsc");
        assert_eq!(figures["first_pass"]["succeeded"], 6, "{figures:#}");
        for name in names() {
            let shown = json(&data, &["device", "show", &name, "--json"]);
            assert_eq!(shown["lsc_status"], "installed", "{shown:#}");
            assert_eq!(shown["key"], "rsa2048", "{shown:#}");
            let serials = issued_serials(&data, &name);
            assert_eq!(serials.len(), 2, "{name}: {serials:?}");
            assert_eq!(shown["lsc"]["serial"], serials[0].as_str(), "{shown:#}");
        }
        drop(serve);
    }
}
