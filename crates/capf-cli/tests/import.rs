#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `capf device import` as a script runs it: standard output and error
//! are pipes (no terminal). Batched writes, progress lines, --dry-run,
//! per-row errors with their line, and where generated strings may go.

use std::os::unix::fs::PermissionsExt as _;

mod common;

use common::Env;

/// The devices, by name, as `capf device list --json` shows them.
fn devices(env: &Env) -> Vec<serde_json::Value> {
    env.json(&["device", "list", "--json"])
        .as_array()
        .unwrap()
        .clone()
}

const HEADER: &str = "name,description,operation,auth_mode,key\n";

fn rows(range: std::ops::Range<usize>, description: &str) -> String {
    range
        .map(|i| format!("SEP{i:012X},{description} {i},install,null-string,p256\n"))
        .collect()
}

#[test]
fn twenty_thousand_rows_through_pipes_show_progress_and_all_land() {
    let env = Env::initialised();
    let csv = env.write(
        "phones.csv",
        &format!("{HEADER}{}", rows(0..20_000, "desk")),
    );
    let (stdout, stderr) = env.code(0, &["device", "import", &csv]);
    assert!(
        stdout.contains("20000 added, 0 updated, 0 failed"),
        "{stdout}"
    );
    // Plain progress lines (no terminal), the last one at the end.
    assert!(stderr.contains("import: 2000 of 20000 rows"), "{stderr}");
    assert!(stderr.contains("import: 20000 of 20000 rows"), "{stderr}");
    assert!(
        !stderr.contains('\r'),
        "no bar without a terminal: {stderr}"
    );

    let devices = devices(&env);
    assert_eq!(devices.len(), 20_000);
    assert_eq!(devices[19_999]["name"], "SEP000000004E1F");
    assert_eq!(devices[19_999]["description"], "desk 19999");
    assert_eq!(devices[19_999]["operation"], "install");

    // The same file again: every row is what the device has.
    let (stdout, _) = env.code(0, &["device", "import", &csv]);
    assert!(
        stdout.contains("0 added, 0 updated, 0 failed; 20000 unchanged"),
        "{stdout}"
    );

    // A dry run of an edit of every row says so, and changes nothing.
    let edited = env.write(
        "edited.csv",
        &format!("{HEADER}{}", rows(0..20_000, "floor")),
    );
    let summary: serde_json::Value =
        serde_json::from_str(&env.ok(&["device", "import", &edited, "--dry-run", "--json"]))
            .unwrap();
    assert_eq!(summary["dry_run"], true);
    assert_eq!(summary["rows"], 20_000);
    assert_eq!(summary["updated"], 20_000);
    assert_eq!(summary["failed"], 0);
    let shown = env.json(&["device", "show", "SEP000000000007", "--json"]);
    assert_eq!(shown["description"], "desk 7");
}

#[test]
fn a_dry_run_reports_what_would_happen_and_changes_nothing() {
    let env = Env::initialised();
    env.ok(&["device", "add", "SEP000000000001", "--description", "old"]);
    let csv = env.write(
        "phones.csv",
        "name,description,generate_string\n\
         SEP000000000001,new,\n\
         SEP000000000002,added,8\n\
         NOTAPHONE,,\n\
         SEP000000000002,then changed,\n\
         SEP000000000001,new,\n",
    );
    let (stdout, stderr) = env.code(1, &["device", "import", &csv, "--dry-run"]);
    assert!(
        stdout.contains("would be 1 added, 2 updated, 1 failed; 1 unchanged"),
        "{stdout}"
    );
    assert!(stderr.contains("row 4 (NOTAPHONE)"), "{stderr}");
    // Nothing armed, so nothing printed.
    assert!(!stdout.contains("generated"), "{stdout}");

    let summary: serde_json::Value = serde_json::from_str(
        &env.code(1, &["device", "import", &csv, "--dry-run", "--json"])
            .0,
    )
    .unwrap();
    assert_eq!(
        (
            &summary["added"],
            &summary["updated"],
            &summary["unchanged"],
            &summary["failed"]
        ),
        (
            &serde_json::json!(1),
            &serde_json::json!(2),
            &serde_json::json!(1),
            &serde_json::json!(1)
        )
    );
    assert_eq!(summary["errors"][0]["line"], 4);
    assert_eq!(summary["errors"][0]["device"], "NOTAPHONE");

    let devices = devices(&env);
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0]["description"], "old");
}

#[test]
fn a_bad_row_is_reported_with_its_line_and_the_others_land() {
    let env = Env::initialised();
    // A device that has no LSC: deleting its LSC is refused by the store,
    // when the row is applied in its batch.
    env.ok(&["device", "add", "SEP00000000FFFF"]);
    let mut text = format!("{HEADER}{}", rows(0..1500, "desk"));
    text.push_str("NOTAPHONE,bad,install,null-string,p256\n"); // line 1502
    text.push_str(&rows(1500..2500, "desk"));
    text.push_str("SEP00000000FFFF,,delete,,\n"); // line 2503
    text.push_str("SEP000000000005,moved,,,\n"); // line 2504: a second row for one device
    text.push_str("SEP000000000006,x,install,null-string,rsa999\n"); // line 2505
    let csv = env.write("phones.csv", &text);
    let (stdout, stderr) = env.code(1, &["device", "import", &csv, "--json"]);
    assert!(stderr.contains("row 1502 (NOTAPHONE)"), "{stderr}");
    assert!(stderr.contains("row 2503 (SEP00000000FFFF)"), "{stderr}");
    assert!(stderr.contains("row 2505 (SEP000000000006)"), "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["added"], 2500);
    assert_eq!(summary["updated"], 1);
    assert_eq!(summary["failed"], 3);
    let lines: Vec<u64> = summary["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [1502, 2503, 2505]);

    let devices = devices(&env);
    assert_eq!(devices.len(), 2501);
    let d5 = env.json(&["device", "show", "SEP000000000005", "--json"]);
    assert_eq!(d5["description"], "moved");
    let d6 = env.json(&["device", "show", "SEP000000000006", "--json"]);
    assert_eq!(d6["description"], "desk 6");
}

#[test]
fn generated_strings_go_to_a_private_file_or_a_terminal_not_a_pipe() {
    let env = Env::initialised();
    let six: String = (1..=6).map(|i| format!("SEP00000000000{i},8\n")).collect();
    let csv = env.write("six.csv", &format!("name,generate_string\n{six}"));
    // Refused before any row: stdout is a pipe and there are more than 5.
    let (_, stderr) = env.code(2, &["device", "import", &csv]);
    assert!(stderr.contains("--strings-out"), "{stderr}");
    env.code(2, &["device", "import", &csv, "--json"]);
    assert!(devices(&env).is_empty());

    // To a file: mode 0600, one line per device.
    let strings = env.file("strings.csv");
    let summary: serde_json::Value = serde_json::from_str(&env.ok(&[
        "device",
        "import",
        &csv,
        "--strings-out",
        strings.to_str().unwrap(),
        "--json",
    ]))
    .unwrap();
    assert_eq!(summary["added"], 6);
    assert_eq!(summary["generated_strings"], 6);
    assert_eq!(summary["strings_file"], strings.to_str().unwrap());
    assert!(summary.get("strings").is_none(), "{summary}");
    let mode = std::fs::metadata(&strings).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let written = std::fs::read_to_string(&strings).unwrap();
    assert_eq!(written.lines().count(), 7, "{written}");
    assert!(written.starts_with("name,auth_string\n"), "header");

    // Five or fewer may be printed on a pipe.
    let five: String = (1..=5).map(|i| format!("SEP00000000001{i},8\n")).collect();
    let csv = env.write("five.csv", &format!("name,generate_string\n{five}"));
    let summary: serde_json::Value =
        serde_json::from_str(&env.ok(&["device", "import", &csv, "--json"])).unwrap();
    let printed = summary["strings"].as_array().unwrap();
    assert_eq!(printed.len(), 5);
    assert_eq!(printed[0]["name"], "SEP000000000011");
    assert_eq!(printed[0]["auth_string"].as_str().unwrap().len(), 8);
}
