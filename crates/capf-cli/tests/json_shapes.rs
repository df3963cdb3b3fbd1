#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! What scripts rely on: the JSON of every command has the shape
//! docs/json.md documents; `device add --generate-string --json` carries
//! the string; `device set --where --dry-run` lists exactly what `find`
//! lists; `audit` filters; `device export-cert` writes the certificate the
//! CAPF issued (it verifies against the CAPF certificate); the fetch of
//! `capf phone fetch --help` works as shown.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Env, Serve, openssl_available};
use serde_json::Value;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The documented examples: heading (the command, in backticks) -> JSON.
fn documented() -> BTreeMap<String, Value> {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/json.md"))
            .unwrap();
    let mut examples = BTreeMap::new();
    let mut heading = None;
    let mut block: Option<String> = None;
    for line in doc.lines() {
        if let Some(body) = &mut block {
            if line.trim_start() == "```" {
                let name: String = heading.clone().expect("a JSON block under a heading");
                let value = serde_json::from_str(body)
                    .unwrap_or_else(|e| panic!("docs/json.md, {name}: {e}"));
                assert!(
                    examples.insert(name.clone(), value).is_none(),
                    "two examples under {name}"
                );
                block = None;
            } else {
                body.push_str(line);
                body.push('\n');
            }
        } else if let Some(h) = line.strip_prefix("## ") {
            heading = Some(h.trim_matches('`').to_owned());
        } else if line.trim_start() == "```json" {
            block = Some(String::new());
        }
    }
    examples
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Compares shapes: objects have the same keys (for the elements of an
/// array: no key outside the documented ones, and every key the documented
/// elements all have), values the same kind; `null` on either side stands
/// for any value (an optional field); an empty array for any array.
fn same_shape(at: &str, doc: &Value, out: &Value, problems: &mut Vec<String>) {
    match (doc, out) {
        (Value::Null, _) | (_, Value::Null) => {}
        (Value::Object(d), Value::Object(o)) => {
            let dk: BTreeSet<_> = d.keys().collect();
            let ok: BTreeSet<_> = o.keys().collect();
            if dk != ok {
                problems.push(format!("{at}: documented keys {dk:?}, printed {ok:?}"));
            }
            for (k, dv) in d {
                if let Some(ov) = o.get(k) {
                    same_shape(&format!("{at}.{k}"), dv, ov, problems);
                }
            }
        }
        (Value::Array(d), Value::Array(o)) => {
            if d.is_empty() || o.is_empty() {
                return;
            }
            if d.iter().chain(o).all(Value::is_object) {
                let keys = |v: &Value| -> BTreeSet<String> {
                    v.as_object().unwrap().keys().cloned().collect()
                };
                let documented: BTreeSet<String> = d.iter().flat_map(keys).collect();
                let always: BTreeSet<String> = d
                    .iter()
                    .map(keys)
                    .reduce(|a, b| a.intersection(&b).cloned().collect())
                    .unwrap_or_default();
                for (i, element) in o.iter().enumerate() {
                    let k = keys(element);
                    if !k.is_subset(&documented) || !always.is_subset(&k) {
                        problems.push(format!(
                            "{at}[{i}]: printed keys {k:?}; documented {documented:?}, \
                             each with {always:?}"
                        ));
                    }
                    // A key's value may differ in kind between elements
                    // (a parameter's value is a number, a word or a
                    // boolean): it must match one documented element's.
                    for (key, value) in element.as_object().unwrap() {
                        let mut best: Option<Vec<String>> = None;
                        for dv in d.iter().filter_map(|e| e.get(key)) {
                            let mut found = Vec::new();
                            same_shape(&format!("{at}[{i}].{key}"), dv, value, &mut found);
                            if best.as_ref().is_none_or(|b| found.len() < b.len()) {
                                best = Some(found);
                            }
                        }
                        problems.extend(best.unwrap_or_default());
                    }
                }
            } else {
                for (i, element) in o.iter().enumerate() {
                    same_shape(&format!("{at}[{i}]"), &d[0], element, problems);
                }
            }
        }
        (d, o) if kind(d) != kind(o) => {
            problems.push(format!("{at}: documented a {}, printed {o}", kind(d)));
        }
        _ => {}
    }
}

/// A P-256 public key file made with openssl, for `capf ca issue`.
fn public_key(env: &Env) -> PathBuf {
    let key = env.file("phone.key");
    let public = env.file("phone.pub");
    let run = |args: &[&str]| {
        let status = Command::new("openssl").args(args).status().unwrap();
        assert!(status.success(), "openssl {args:?}");
    };
    run(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        key.to_str().unwrap(),
    ]);
    run(&[
        "ec",
        "-in",
        key.to_str().unwrap(),
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    public
}

/// Every documented command is run here, and each one's output has the
/// documented shape.
#[test]
fn every_command_prints_the_documented_shape() {
    let env = Env::empty();
    let mut printed: BTreeMap<&str, Value> = BTreeMap::new();
    printed.insert(
        "capf init --json",
        env.json(&["init", "--key", "p256", "--json"]),
    );
    printed.insert(
        "capf device add NAME ... --json",
        env.json(&[
            "device",
            "add",
            "SEP001122334455",
            "--description",
            "Lobby",
            "--operation",
            "install",
            "--auth-mode",
            "null-string",
            "--key",
            "p256",
            "--generate-string",
            "--json",
        ]),
    );
    env.ok(&["device", "add", "SEP0011223344AA", "--description", "spare"]);

    // A real enrollment, so that the device has an LSC on record.
    let serve = Serve::start(&env.data(), env.file("serve.log"));
    let phone = Command::new(env!("CARGO_BIN_EXE_capf"))
        .args(["phone", "install", "--server", &serve.addr, "--device"])
        .arg("SEP001122334455")
        .arg("--capf-cert")
        .arg(env.data().join("capf.pem"))
        .arg("--cert-out")
        .arg(env.file("lsc.pem"))
        .args(["--retries", "0", "--timeout", "20", "--json"])
        .output()
        .unwrap();
    assert!(phone.status.success(), "{}", text(&phone.stderr));
    // Loadgen against that server: it adds its devices to the database,
    // and removes them at the end.
    printed.insert(
        "capf loadgen ... --json",
        env.json(&[
            "loadgen",
            "--server",
            &serve.addr,
            "--capf-cert",
            env.data().join("capf.pem").to_str().unwrap(),
            "--phones",
            "2",
            "--concurrency",
            "2",
            "--auth",
            "null-string",
            "--retries",
            "0",
            "--json",
        ]),
    );
    drop(serve);
    printed.insert(
        "capf phone install ... --json",
        serde_json::from_slice(&phone.stdout).unwrap(),
    );

    printed.insert(
        "capf device show NAME --json",
        env.json(&["device", "show", "SEP001122334455", "--json"]),
    );
    assert!(printed["capf device show NAME --json"]["lsc"].is_object());
    printed.insert(
        "capf device list --json",
        env.json(&["device", "list", "--json"]),
    );
    printed.insert(
        "capf find ... --json",
        env.json(&["find", "--per-page", "1", "--json"]),
    );
    printed.insert(
        "capf device set --where FLAG=VALUE ... --json",
        env.json(&[
            "device",
            "set",
            "--where",
            "name=SEP0011",
            "--where",
            "match=begins-with",
            "--description",
            "second floor",
            "--yes",
            "--json",
        ]),
    );
    printed.insert(
        "capf params show --json",
        env.json(&["params", "show", "--json"]),
    );
    printed.insert(
        "capf params set NAME VALUE --json",
        env.json(&["params", "set", "lsc_validity_years", "2", "--json"]),
    );
    let reset = env.json(&["params", "reset", "lsc_validity_years", "--json"]);
    let mut problems = Vec::new();
    same_shape(
        "params reset",
        &documented()["capf params set NAME VALUE --json"],
        &reset,
        &mut problems,
    );
    std::fs::write(env.file("pass"), "correct horse battery\n").unwrap();
    printed.insert(
        "capf backup FILE --json",
        env.json(&[
            "backup",
            env.file("capf.bak").to_str().unwrap(),
            "--passphrase-file",
            env.file("pass").to_str().unwrap(),
            "--json",
        ]),
    );
    let restored = Command::new(env!("CARGO_BIN_EXE_capf"))
        .arg("--data-dir")
        .arg(env.file("restored"))
        .arg("restore")
        .arg(env.file("capf.bak"))
        .arg("--passphrase-file")
        .arg(env.file("pass"))
        .arg("--json")
        .env_remove("CAPF_DATA_DIR")
        .env_remove("CAPF_DATABASE_URL")
        .output()
        .unwrap();
    assert!(restored.status.success(), "{}", text(&restored.stderr));
    let restored: Value = serde_json::from_slice(&restored.stdout).unwrap();
    assert_eq!(restored["identity"], "restored");
    assert_eq!(restored["database"]["devices"], 2);
    printed.insert("capf restore FILE --json", restored);
    if openssl_available() {
        let public = public_key(&env);
        printed.insert(
            "capf ca issue --device NAME --public-key FILE --json",
            env.json(&[
                "ca",
                "issue",
                "--device",
                "SEP0011223344AA",
                "--public-key",
                public.to_str().unwrap(),
                "--json",
            ]),
        );
    } else {
        eprintln!("openssl not found: `capf ca issue --json` not checked");
    }
    let account = Command::new(env!("CARGO_BIN_EXE_capf"))
        .arg("--data-dir")
        .arg(env.data())
        .args([
            "admin",
            "user",
            "add",
            "alice",
            "--role",
            "admin",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(b"correct horse battery\n")?;
            child.wait()
        })
        .unwrap();
    assert!(account.success());
    printed.insert(
        "capf admin user list --json",
        env.json(&["admin", "user", "list", "--json"]),
    );
    printed.insert(
        "capf admin token create --name LABEL --role ROLE --json",
        env.json(&[
            "admin",
            "token",
            "create",
            "--name",
            "nightly",
            "--role",
            "read-only",
            "--json",
        ]),
    );
    printed.insert(
        "capf device remove NAME --json",
        env.json(&["device", "remove", "SEP0011223344AA", "--json"]),
    );
    printed.insert("capf audit ... --json", env.json(&["audit", "--json"]));
    let sast =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/trust-list/keys/sast.pem");
    let itl = env.file("ITLFile.tlv");
    env.ok(&[
        "trust-list",
        "build",
        "--out",
        itl.to_str().unwrap(),
        "--sast",
        sast.to_str().unwrap(),
        "--signer-version",
        "1.1",
    ]);
    printed.insert(
        "capf trust-list show FILE --json",
        env.json(&["trust-list", "show", itl.to_str().unwrap(), "--json"]),
    );
    printed.insert(
        "capf trust-list verify FILE --trust CERT --json",
        env.json(&[
            "trust-list",
            "verify",
            itl.to_str().unwrap(),
            "--trust",
            sast.to_str().unwrap(),
            "--json",
        ]),
    );
    std::fs::write(
        env.file("rows.csv"),
        "name,description,operation,auth_mode,generate_string\n\
         SEP00000000AB01,a,install,null-string,\n\
         SEP00000000AB02,b,install,auth-string,8\n\
         BAD,c,,,\n",
    )
    .unwrap();
    let import = env.run(&[
        "device",
        "import",
        env.file("rows.csv").to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(import.status.code(), Some(1), "a row failed");
    printed.insert(
        "capf device import FILE --json",
        serde_json::from_slice(&import.stdout).unwrap(),
    );
    printed.insert(
        "capf serve --print-config --json",
        env.json(&["serve", "--print-config", "--json"]),
    );

    let documented = documented();
    let documented_names: BTreeSet<&str> = documented.keys().map(String::as_str).collect();
    let mut run_names: BTreeSet<&str> = printed.keys().copied().collect();
    if !openssl_available() {
        run_names.insert("capf ca issue --device NAME --public-key FILE --json");
    }
    assert_eq!(
        documented_names, run_names,
        "docs/json.md and this test must name the same commands"
    );
    for (name, out) in &printed {
        same_shape(name, &documented[*name], out, &mut problems);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_generated_string_is_in_the_json_and_arms_the_device() {
    let env = Env::empty();
    env.ok(&["init", "--key", "p256"]);
    let added = env.json(&[
        "device",
        "add",
        "--generate-string",
        "SEP001122334455",
        "--string-length",
        "6",
        "--operation",
        "install",
        "--json",
    ]);
    let string = added["auth_string"].as_str().unwrap().to_owned();
    assert_eq!(string.len(), 6, "{added}");
    assert!(string.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(added["device"]["auth_string_state"], "armed");
    // The armed string is the one printed (found by it: only the digits
    // the device holds match exactly).
    let found = env.json(&[
        "find",
        "--auth-string",
        &string,
        "--match",
        "exact",
        "--json",
    ]);
    assert_eq!(found["total"], 1, "{found}");
    // Without --generate-string, no string field at all.
    let set = env.json(&[
        "device",
        "set",
        "SEP001122334455",
        "--description",
        "x",
        "--json",
    ]);
    assert!(set.get("auth_string").is_none(), "{set}");
    // A length is a flag of its own: out of range is a usage error.
    let out = env.run(&[
        "device",
        "set",
        "SEP001122334455",
        "--generate-string",
        "--string-length",
        "20",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    // Words the flag does not take are refused, naming the ones it does.
    let out = env.run(&["device", "set", "SEP001122334455", "--operation", "instal"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("install"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_dry_run_lists_exactly_what_find_lists_and_changes_nothing() {
    let env = Env::empty();
    env.ok(&["init", "--key", "p256"]);
    for (name, description) in [
        ("SEP000000000001", "lobby east"),
        ("SEP000000000002", "Lobby west"),
        ("SEP000000000003", "office"),
        ("SEP0000000000A4", "lobby"),
    ] {
        env.ok(&["device", "add", name, "--description", description]);
    }
    env.ok(&["device", "set", "SEP000000000002", "--operation", "install"]);
    let names = |v: &Value, key: &str| -> Vec<String> {
        v[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                d.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| d["name"].as_str().unwrap().to_owned())
            })
            .collect()
    };
    for criteria in [
        vec!["description=lobby"],
        vec!["description=lobby", "operation=none"],
        vec!["name=A4", "name-match=ends-with"],
        vec!["lsc-status=not-installed", "status=pending"],
        vec!["description=nothing-like-this"],
    ] {
        let mut find = vec!["find", "--per-page", "0", "--json"];
        let mut set = vec![
            "device",
            "set",
            "--operation",
            "install",
            "--dry-run",
            "--json",
        ];
        for c in &criteria {
            let (flag, value) = c.split_once('=').unwrap();
            find.push(Box::leak(format!("--{flag}").into_boxed_str()));
            find.push(value);
            set.push("--where");
            set.push(c);
        }
        let found = names(&env.json(&find), "devices");
        let dry = env.json(&set);
        assert_eq!(dry["result"], "dry-run");
        assert_eq!(names(&dry, "changed"), found, "{criteria:?}");
        assert_eq!(dry["matched"], found.len());
    }
    // Nothing changed.
    let all = env.json(&["find", "--operation", "install", "--json"]);
    assert_eq!(names(&all, "devices"), ["SEP000000000002"]);
    // Without a terminal, a change needs --yes.
    let out = env.run(&[
        "device",
        "set",
        "--where",
        "description=lobby",
        "--operation",
        "install",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--yes"), "{}", text(&out.stderr));
    // A wrong criterion is a usage error naming find's flag.
    let out = env.run(&[
        "device",
        "set",
        "--where",
        "lsc-status=maybe",
        "--operation",
        "none",
        "--dry-run",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--lsc-status"),
        "{}",
        text(&out.stderr)
    );
    // With --yes, exactly the devices found change.
    let changed = env.json(&[
        "device",
        "set",
        "--where",
        "description=lobby",
        "--security-mode",
        "encrypted",
        "--yes",
        "--json",
    ]);
    assert_eq!(
        names(&changed, "changed"),
        ["SEP000000000001", "SEP000000000002", "SEP0000000000A4"]
    );
    let office = env.json(&["device", "show", "SEP000000000003", "--json"]);
    assert_eq!(office["security_mode"], "non-secure");
    let lobby = env.json(&["device", "show", "SEP0000000000A4", "--json"]);
    assert_eq!(lobby["security_mode"], "encrypted");
    // One string for many phones is refused.
    let out = env.run(&[
        "device",
        "set",
        "--where",
        "description=lobby",
        "--generate-string",
        "--yes",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn audit_filters_by_device_event_and_time() {
    let env = Env::empty();
    env.ok(&["init", "--key", "p256"]);
    env.ok(&["device", "add", "SEP000000000001"]);
    env.ok(&["device", "add", "SEP000000000002"]);
    env.ok(&["device", "set", "SEP000000000001", "--description", "moved"]);
    env.ok(&["device", "remove", "SEP000000000002"]);
    let entries = |args: &[&str]| -> Vec<(String, String)> {
        let mut all = vec!["audit", "--json"];
        all.extend_from_slice(args);
        env.json(&all)
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["device"].as_str().unwrap_or("-").to_owned(),
                    e["event"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let one = entries(&["--device", "SEP000000000001"]);
    assert_eq!(
        one,
        [
            ("SEP000000000001".to_owned(), "changed".to_owned()),
            ("SEP000000000001".to_owned(), "added".to_owned())
        ],
        "newest first"
    );
    assert_eq!(
        entries(&["--event", "removed"]),
        [("SEP000000000002".to_owned(), "removed".to_owned())]
    );
    assert_eq!(entries(&["--event", "added"]).len(), 2);
    assert_eq!(entries(&["--last", "1h"]).len(), 4);
    assert_eq!(entries(&["--since", "2099-01-01T00:00:00Z"]).len(), 0);
    assert_eq!(entries(&["--until", "2000-01-01"]).len(), 0);
    assert_eq!(entries(&["--limit", "1"]).len(), 1);
    let out = env.run(&["audit", "--since", "yesterday"]);
    assert_eq!(out.status.code(), Some(2));
    let out = env.run(&[
        "audit",
        "--since",
        "2026-12-02T00:00:00Z",
        "--until",
        "2026-12-01T00:00:00Z",
    ]);
    assert_eq!(out.status.code(), Some(2), "since after until");
    let table = env.ok(&["audit", "--device", "SEP000000000002"]);
    assert!(
        table.contains("removed") && table.contains("2 entries"),
        "{table}"
    );
}

/// The exported LSC is the one the phone holds, and it verifies against the
/// CAPF certificate; the phone then fetches as `capf phone fetch --help`
/// shows it.
#[test]
fn an_exported_lsc_verifies_and_the_fetch_of_the_help_works() {
    let env = Env::empty();
    env.ok(&["init", "--key", "p256"]);
    env.ok(&[
        "device",
        "add",
        "SEP001122334455",
        "--operation",
        "install",
        "--auth-mode",
        "null-string",
    ]);
    let serve = Serve::start(&env.data(), env.file("serve.log"));
    let phone = |op: &str, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_capf"))
            .args(["phone", op, "--server", &serve.addr, "--device"])
            .arg("SEP001122334455")
            .arg("--capf-cert")
            .arg(env.data().join("capf.pem"))
            .arg("--cert-out")
            .arg(env.file("lsc.pem"))
            .args(["--retries", "0", "--timeout", "20"])
            .args(args)
            .output()
            .unwrap()
    };
    let out = phone("install", &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let pem_file = env.file("exported.pem");
    env.ok(&[
        "device",
        "export-cert",
        "SEP001122334455",
        "--out",
        pem_file.to_str().unwrap(),
    ]);
    let exported = std::fs::read_to_string(&pem_file).unwrap();
    let held = std::fs::read_to_string(env.file("lsc.pem")).unwrap();
    assert!(
        held.starts_with(exported.trim_end()),
        "the exported certificate is the phone's:\n{exported}\n{held}"
    );
    // Never replaced without --force.
    let again = env.run(&[
        "device",
        "export-cert",
        "SEP001122334455",
        "--out",
        pem_file.to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(1));
    // DER on stdout is the same certificate.
    let der = env.run(&[
        "device",
        "export-cert",
        "SEP001122334455",
        "--format",
        "der",
    ]);
    assert!(der.status.success());
    let from_pem = capf_ca::CaCertificate::from_pem(&exported, "exported").unwrap();
    assert_eq!(der.stdout, from_pem.der());
    // It verifies against the CAPF certificate.
    if openssl_available() {
        let verify = Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(env.data().join("capf.pem"))
            .arg(&pem_file)
            .output()
            .unwrap();
        assert!(verify.status.success(), "{}", text(&verify.stdout));
    } else {
        eprintln!("openssl not found: the chain check is the Rust one only");
    }
    let capf = capf_ca::CaCertificate::from_pem(
        &std::fs::read_to_string(env.data().join("capf.pem")).unwrap(),
        "capf",
    )
    .unwrap();
    assert_eq!(from_pem.issuer(), capf.subject());
    // No MIC on record: said plainly.
    let mic = env.run(&["device", "export-cert", "SEP001122334455", "--mic"]);
    assert_eq!(mic.status.code(), Some(1));
    assert!(
        text(&mic.stderr).contains("no MIC"),
        "{}",
        text(&mic.stderr)
    );

    // Fetch, as `capf phone fetch --help` shows it: authenticated by the
    // LSC the phone holds, the device wanting its LSC first.
    env.ok(&[
        "device",
        "set",
        "SEP001122334455",
        "--auth-mode",
        "lsc-first",
        "--operation",
        "troubleshoot",
    ]);
    let lsc = env.file("lsc.pem");
    let out = phone("fetch", &["--lsc", lsc.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let shown = env.json(&["device", "show", "SEP001122334455", "--json"]);
    assert_eq!(shown["status_label"], "Troubleshoot successful", "{shown}");
}
