//! Installing `capf` as a service: shell completions, man pages, the
//! settings of `capf serve` (flag > CAPF_* variable > capf.toml >
//! default, `--print-config`), the example capf.toml and the systemd unit
//! in contrib/.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// `capf`, with no `CAPF_*` variable of the test's own environment.
fn capf() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_capf"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("CAPF_") {
            command.env_remove(name);
        }
    }
    command.stdin(Stdio::null());
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn succeeded(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {:?}\n{}\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The repository's contrib/ directory.
fn contrib(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../contrib")
        .join(name)
}

/// `capf --data-dir DATA serve ARGS --print-config --json`, with these
/// environment variables.
fn print_config(data: &Path, env: &[(&str, &str)], args: &[&str]) -> serde_json::Value {
    let mut command = capf();
    command
        .arg("--data-dir")
        .arg(data)
        .arg("serve")
        .args(args)
        .args(["--print-config", "--json"]);
    for (name, value) in env {
        command.env(name, value);
    }
    let out = command.output().unwrap();
    let stdout = succeeded(&out, &format!("serve --print-config {args:?} {env:?}"));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// A setting's value and source in `--print-config --json`.
fn setting(config: &serde_json::Value, key: &str) -> (serde_json::Value, String) {
    let setting = &config["settings"][key];
    assert!(setting.is_object(), "{key} missing in {config}");
    (
        setting["value"].clone(),
        setting["source"].as_str().unwrap_or_default().to_owned(),
    )
}

#[test]
fn completions_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = capf().args(["completions", shell]).output().unwrap();
        let script = succeeded(&out, shell);
        assert!(script.len() > 1000, "{shell}: {script}");
        for word in ["capf", "device", "serve", "print-config"] {
            assert!(script.contains(word), "{shell}: no {word} in the script");
        }
    }
    let out = capf().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn man_pages_for_capf_and_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let pages = dir.path().join("man1");
    let out = capf().arg("man").arg(&pages).output().unwrap();
    let stdout = succeeded(&out, "capf man");
    for (page, title) in [
        ("capf.1", ".TH capf 1"),
        ("capf-serve.1", ".TH capf-serve 1"),
        ("capf-device.1", ".TH capf-device 1"),
        ("capf-device-add.1", ".TH capf-device-add 1"),
        ("capf-admin-user-add.1", ".TH capf-admin-user-add 1"),
        ("capf-completions.1", ".TH capf-completions 1"),
    ] {
        let path = pages.join(page);
        let roff = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}\n{stdout}", path.display()));
        // The roff header: .TH, after clap_mangen's quote definitions.
        let header = roff.lines().take(5).find(|line| line.starts_with(".TH"));
        assert!(
            header.is_some_and(|line| line.starts_with(title)),
            "{page}: {}",
            &roff[..roff.len().min(300)]
        );
        assert!(stdout.contains(page), "{stdout}");
    }
    let serve = std::fs::read_to_string(pages.join("capf-serve.1")).unwrap();
    assert!(serve.contains("print\\-config"), "{serve}");
}

#[test]
fn version_names_the_optional_features() {
    let out = capf().arg("--version").output().unwrap();
    let version = succeeded(&out, "--version");
    assert!(version.starts_with("capf "), "{version}");
    let expected = if cfg!(feature = "legacy-tls") {
        "(features: legacy-tls)"
    } else {
        "(features: none)"
    };
    assert!(version.contains(expected), "{version}");
}

#[test]
fn print_config_flag_beats_env_beats_file_beats_default() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    // Nothing given: every setting is its default; nothing is created.
    let config = print_config(&data, &[], &[]);
    assert_eq!(config["file_read"], false, "{config}");
    assert_eq!(
        config["file"],
        data.join("capf.toml").display().to_string(),
        "{config}"
    );
    let settings = config["settings"].as_object().unwrap();
    assert_eq!(settings.len(), 17, "{config}");
    for (key, value) in settings {
        assert_eq!(value["source"], "default", "{key}: {config}");
        assert!(value["from"].is_null(), "{key}: {config}");
    }
    assert_eq!(setting(&config, "max_sessions").0, 256);
    assert_eq!(setting(&config, "log_format").0, "text");
    assert_eq!(setting(&config, "tls").0, "modern");
    assert_eq!(
        setting(&config, "listen").0,
        serde_json::json!(["0.0.0.0:3804"])
    );
    assert!(setting(&config, "max_issuing").0.is_null());
    assert!(!data.exists(), "--print-config created the data directory");

    // The file sets them.
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("capf.toml"),
        "max_sessions = 100\nlog_format = \"json\"\nlisten = [\"127.0.0.1:3900\", \"[::1]:3900\"]\n\
         max_per_address = 32\nencrypted_config = \"configs\"\ntftp = \"/etc/capf/tftp.pem\"\n",
    )
    .unwrap();
    let config = print_config(&data, &[], &[]);
    assert_eq!(config["file_read"], true, "{config}");
    for key in ["max_sessions", "log_format", "listen", "max_per_address"] {
        assert_eq!(setting(&config, key).1, "file", "{key}: {config}");
        assert_eq!(
            config["settings"][key]["from"],
            data.join("capf.toml").display().to_string()
        );
    }
    assert_eq!(setting(&config, "max_sessions").0, 100);
    assert_eq!(setting(&config, "log_format").0, "json");
    assert_eq!(setting(&config, "max_per_address").0, 32);
    assert_eq!(
        setting(&config, "listen").0,
        serde_json::json!(["127.0.0.1:3900", "[::1]:3900"])
    );
    // A relative path in the file is relative to the data directory.
    assert_eq!(
        setting(&config, "encrypted_config").0,
        data.join("configs").display().to_string()
    );
    assert_eq!(setting(&config, "handshake_timeout").1, "default");

    // The environment overrides the file.
    let env = [
        ("CAPF_MAX_SESSIONS", "50"),
        ("CAPF_LOG_FORMAT", "text"),
        ("CAPF_LISTEN", "127.0.0.1:3901,127.0.0.1:3902"),
    ];
    let config = print_config(&data, &env, &[]);
    for key in ["max_sessions", "log_format", "listen"] {
        assert_eq!(setting(&config, key).1, "env", "{key}: {config}");
    }
    assert_eq!(
        config["settings"]["max_sessions"]["from"],
        "CAPF_MAX_SESSIONS"
    );
    assert_eq!(setting(&config, "max_sessions").0, 50);
    assert_eq!(setting(&config, "log_format").0, "text");
    assert_eq!(
        setting(&config, "listen").0,
        serde_json::json!(["127.0.0.1:3901", "127.0.0.1:3902"])
    );
    assert_eq!(setting(&config, "max_per_address").1, "file");

    // A flag overrides the environment.
    let config = print_config(
        &data,
        &env,
        &[
            "--max-sessions",
            "7",
            "--log-format",
            "json",
            "--max-per-address",
            "9",
        ],
    );
    for key in ["max_sessions", "log_format", "max_per_address"] {
        assert_eq!(setting(&config, key).1, "flag", "{key}: {config}");
    }
    assert_eq!(config["settings"]["max_sessions"]["from"], "--max-sessions");
    assert_eq!(setting(&config, "max_sessions").0, 7);
    assert_eq!(setting(&config, "log_format").0, "json");
    assert_eq!(setting(&config, "max_per_address").0, 9);
    assert_eq!(setting(&config, "listen").1, "env");
    assert_eq!(setting(&config, "encrypted_config").1, "file");

    // The text form says the same, a line per setting.
    let out = capf()
        .arg("--data-dir")
        .arg(&data)
        .args(["serve", "--print-config", "--max-sessions", "7"])
        .env("CAPF_LOG_FORMAT", "text")
        .output()
        .unwrap();
    let printed = succeeded(&out, "--print-config");
    for line in [
        "max_sessions = 7",
        "# flag --max-sessions",
        "log_format = \"text\"",
        "# env CAPF_LOG_FORMAT",
        "max_per_address = 32",
        "handshake_timeout = 10",
    ] {
        assert!(printed.contains(line), "no {line:?} in\n{printed}");
    }
    assert!(printed.contains(&format!("# file {}", data.join("capf.toml").display())));
    // Nothing was created beside the file.
    let entries: Vec<_> = std::fs::read_dir(&data).unwrap().collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
}

#[test]
fn unknown_keys_and_bad_values_in_capf_toml_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let file = data.join("capf.toml");
    for (contents, expected) in [
        ("max_sessions = 10\nmax_sesions = 20\n", "max_sesions"),
        ("tls = \"ancient\"\n", "ancient"),
        ("max_sessions = 0\n", "max_sessions"),
        ("listen = [\"not an address\"]\n", "listen"),
        ("tftp = \"tftp.pem\"\n", "encrypted_config"),
    ] {
        std::fs::write(&file, contents).unwrap();
        let out = capf()
            .arg("--data-dir")
            .arg(&data)
            .args(["serve", "--print-config"])
            .output()
            .unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{contents}: {stderr}");
        assert!(stderr.contains(expected), "{contents}: {stderr}");
        assert!(
            stderr.contains(&file.display().to_string()),
            "{contents}: {stderr}"
        );
    }
    // Nothing was created for a refused start.
    assert!(!data.join("capf.pem").exists());
}

#[test]
fn max_sessions_zero_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for (args, env) in [
        (vec!["--max-sessions", "0"], None),
        (vec![], Some(("CAPF_MAX_SESSIONS", "0"))),
    ] {
        let mut command = capf();
        command
            .arg("--data-dir")
            .arg(&data)
            .arg("serve")
            .args(&args)
            .args(["--listen", "127.0.0.1:0"]);
        if let Some((name, value)) = env {
            command.env(name, value);
        }
        let out = command.output().unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains("max-sessions"), "{stderr}");
        assert!(!data.exists(), "nothing is created for a refused start");
    }
}

/// A build without the legacy-tls feature refuses legacy TLS, however
/// asked for, before it creates anything.
#[cfg(not(feature = "legacy-tls"))]
#[test]
fn legacy_tls_without_the_feature_is_refused_before_anything_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for (args, env) in [
        (vec!["--legacy-listen", "127.0.0.1:0"], None),
        (vec!["--tls", "legacy"], None),
        (vec![], Some(("CAPF_TLS", "legacy"))),
    ] {
        let mut command = capf();
        command
            .arg("--data-dir")
            .arg(&data)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(&args);
        if let Some((name, value)) = env {
            command.env(name, value);
        }
        let out = command.output().unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains("legacy-tls feature"), "{stderr}");
        assert!(
            !data.exists(),
            "{args:?} {env:?}: the data directory was created"
        );
    }
}

/// Every `# key = value` line of contrib/capf.toml, uncommented (the first
/// of each key).
fn example_settings() -> BTreeMap<String, String> {
    let example = std::fs::read_to_string(contrib("capf.toml")).unwrap();
    let mut settings = BTreeMap::new();
    for line in example.lines() {
        let Some(line) = line.strip_prefix("# ") else {
            continue;
        };
        let Some((key, value)) = line.split_once(" = ") else {
            continue;
        };
        if key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            settings
                .entry(key.to_owned())
                .or_insert_with(|| value.to_owned());
        }
    }
    settings
}

#[test]
fn the_example_capf_toml_has_every_setting_and_each_parses() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let example = example_settings();
    let defaults = print_config(&data, &[], &[]);
    let every: BTreeSet<&String> = defaults["settings"].as_object().unwrap().keys().collect();
    assert_eq!(
        example.keys().collect::<BTreeSet<_>>(),
        every,
        "contrib/capf.toml documents every setting, and only those"
    );
    // Each value as written parses, alone (some need others: together
    // with them).
    let needs: BTreeMap<&str, &[&str]> = BTreeMap::from([
        ("encrypted_config", &["tftp"][..]),
        ("tftp", &["encrypted_config"][..]),
        ("admin_cert", &["admin_listen"][..]),
        ("admin_name", &["admin_listen"][..]),
        ("admin_plain_http", &["admin_listen"][..]),
        ("admin_trusted_proxy", &["admin_listen"][..]),
    ]);
    for (key, value) in &example {
        if key == "legacy_listen" && !cfg!(feature = "legacy-tls") {
            // Refused by this build (see the test above).
            continue;
        }
        let mut file = format!("{key} = {value}\n");
        for other in needs.get(key.as_str()).copied().unwrap_or_default() {
            file.push_str(&format!("{other} = {}\n", example[*other]));
        }
        std::fs::write(data.join("capf.toml"), &file).unwrap();
        let config = print_config(&data, &[], &[]);
        assert_eq!(setting(&config, key).1, "file", "{file}: {config}");
    }
}

/// A unit file's sections, each a list of (key, value).
type Unit = BTreeMap<String, Vec<(String, String)>>;

fn parse_unit(text: &str) -> Unit {
    let mut unit = Unit::new();
    let mut section: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            assert!(!unit.contains_key(name), "line {}: [{name}] twice", n + 1);
            unit.insert(name.to_owned(), Vec::new());
            section = Some(name.to_owned());
            continue;
        }
        assert!(
            !line.ends_with('\\'),
            "line {}: no continuation lines",
            n + 1
        );
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: not key=value: {line}", n + 1));
        let section = section
            .as_ref()
            .unwrap_or_else(|| panic!("line {}: before any section", n + 1));
        unit.get_mut(section)
            .unwrap()
            .push((key.trim().to_owned(), value.trim().to_owned()));
    }
    unit
}

fn value<'a>(unit: &'a Unit, section: &str, key: &str) -> &'a str {
    unit[section]
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key}= in [{section}]"))
}

#[test]
fn the_systemd_unit_is_hardened_and_runs_capf_serve() {
    let path = contrib("capf.service");
    let written = std::fs::read_to_string(&path).unwrap();
    let unit = parse_unit(&written);
    assert_eq!(
        unit.keys().map(String::as_str).collect::<Vec<_>>(),
        ["Install", "Service", "Unit"]
    );
    let known: BTreeMap<&str, &[&str]> = BTreeMap::from([
        (
            "Unit",
            &["Description", "Documentation", "After", "Wants", "Requires"][..],
        ),
        (
            "Service",
            &[
                "Type",
                "User",
                "Group",
                "DynamicUser",
                "ExecStart",
                "EnvironmentFile",
                "Environment",
                "KillSignal",
                "TimeoutStopSec",
                "Restart",
                "RestartSec",
                "LimitNOFILE",
                "StateDirectory",
                "StateDirectoryMode",
                "UMask",
                "CapabilityBoundingSet",
                "AmbientCapabilities",
                "NoNewPrivileges",
                "ProtectSystem",
                "ProtectHome",
                "PrivateTmp",
                "PrivateDevices",
                "ProtectKernelTunables",
                "ProtectKernelModules",
                "ProtectKernelLogs",
                "ProtectControlGroups",
                "ProtectClock",
                "ProtectHostname",
                "ProtectProc",
                "RestrictAddressFamilies",
                "RestrictNamespaces",
                "RestrictRealtime",
                "RestrictSUIDSGID",
                "LockPersonality",
                "MemoryDenyWriteExecute",
                "RemoveIPC",
                "SystemCallArchitectures",
                "SystemCallFilter",
                "SystemCallErrorNumber",
                "ReadWritePaths",
            ][..],
        ),
        ("Install", &["WantedBy"][..]),
    ]);
    for (section, entries) in &unit {
        for (key, _) in entries {
            assert!(
                known[section.as_str()].contains(&key.as_str()),
                "[{section}] {key}="
            );
        }
    }
    for (key, expected) in [
        ("StateDirectory", "capf"),
        ("StateDirectoryMode", "0700"),
        ("UMask", "0077"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("Restart", "on-failure"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallFilter", "@system-service"),
        ("KillSignal", "SIGTERM"),
        ("User", "capf"),
    ] {
        assert_eq!(value(&unit, "Service", key), expected, "{key}=");
    }
    assert_eq!(value(&unit, "Install", "WantedBy"), "multi-user.target");

    // ExecStart: an absolute path to capf, and arguments capf takes.
    let exec: Vec<&str> = value(&unit, "Service", "ExecStart")
        .split_whitespace()
        .collect();
    let (binary, args) = exec.split_first().unwrap();
    assert!(
        binary.starts_with('/') && binary.ends_with("/capf"),
        "{binary}"
    );
    assert_eq!(args, ["--data-dir", "/var/lib/capf", "serve"]);
    // StateDirectory=capf is /var/lib/capf.
    assert_eq!(
        format!("/var/lib/{}", value(&unit, "Service", "StateDirectory")),
        args[1]
    );
    // The same arguments, on a data directory of the test's own, are what
    // capf serve takes: --print-config parses them and serves nothing.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("capf");
    let mut real: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    real[1] = data.display().to_string();
    let out = capf()
        .args(&real)
        .args(["--print-config", "--json"])
        .output()
        .unwrap();
    let config: serde_json::Value = serde_json::from_str(&succeeded(&out, "ExecStart")).unwrap();
    assert_eq!(config["data_dir"], data.display().to_string());

    // systemd's own check, where systemd is installed, with ExecStart on
    // this build's capf (the unit's path need not exist here).
    let analyze = Command::new("systemd-analyze").arg("--version").output();
    if !analyze.is_ok_and(|out| out.status.success()) {
        println!("systemd-analyze not found: skipped `systemd-analyze verify`");
        return;
    }
    let unit_dir = dir.path().join("units");
    std::fs::create_dir_all(&unit_dir).unwrap();
    let copy = unit_dir.join("capf.service");
    std::fs::write(
        &copy,
        written.replace(
            &format!("ExecStart={binary} "),
            &format!("ExecStart={} ", env!("CARGO_BIN_EXE_capf")),
        ),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&copy)
        .output()
        .unwrap();
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success() && !said.contains("capf.service:"),
        "systemd-analyze verify: {:?}\n{said}",
        out.status
    );
    println!("systemd-analyze verify: the unit is valid");
}
