//! Where `capf serve` takes each setting from: a flag wins over its
//! `CAPF_*` environment variable, which wins over `capf.toml` in the data
//! directory, which wins over the default.
//!
//! clap knows the first two (and the default); it says which it used
//! (`ArgMatches::value_source`). When a setting was neither given as a
//! flag nor in the environment and the file has it, the file's value
//! replaces the default.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use clap::ArgMatches;
use clap::parser::ValueSource;
use serde::{Deserialize, Serialize};

use super::{LogFormat, ServeArgs, TlsKind};
use crate::Failure;
use crate::data_dir::DataDir;

/// The configuration file's name in the data directory.
pub(crate) const FILE: &str = "capf.toml";

/// Every setting (a `capf serve` flag, a `CAPF_*` variable, a key of
/// `capf.toml`), in the order `--print-config` shows them. The flag is
/// `--` and the key with `-` for `_`; the variable, `CAPF_` and the key in
/// capitals.
pub(crate) const KEYS: [&str; 17] = [
    "listen",
    "legacy_listen",
    "tls",
    "max_sessions",
    "max_per_address",
    "max_issuing",
    "handshake_timeout",
    "lease_ttl",
    "metrics_listen",
    "log_format",
    "encrypted_config",
    "tftp",
    "admin_listen",
    "admin_cert",
    "admin_name",
    "admin_plain_http",
    "admin_trusted_proxy",
];

/// The flag of a setting: `--max-sessions`.
pub(crate) fn flag(key: &str) -> String {
    format!("--{}", key.replace('_', "-"))
}

/// The environment variable of a setting: `CAPF_MAX_SESSIONS`.
pub(crate) fn env_var(key: &str) -> String {
    format!("CAPF_{}", key.to_ascii_uppercase())
}

/// `capf.toml`: every key optional, none other allowed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<Vec<SocketAddr>>,
    legacy_listen: Option<Vec<SocketAddr>>,
    tls: Option<TlsKind>,
    max_sessions: Option<usize>,
    max_per_address: Option<usize>,
    max_issuing: Option<usize>,
    handshake_timeout: Option<u64>,
    lease_ttl: Option<u64>,
    metrics_listen: Option<SocketAddr>,
    log_format: Option<LogFormat>,
    encrypted_config: Option<PathBuf>,
    tftp: Option<PathBuf>,
    admin_listen: Option<SocketAddr>,
    admin_cert: Option<PathBuf>,
    admin_name: Option<Vec<String>>,
    admin_plain_http: Option<bool>,
    admin_trusted_proxy: Option<Vec<IpAddr>>,
}

/// Where a setting's value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Source {
    /// The command line.
    Flag,
    /// Its `CAPF_*` environment variable.
    Env,
    /// `capf.toml`.
    File,
    /// None of these.
    Default,
}

/// The arguments with capf.toml applied, and where each came from.
#[derive(Debug)]
pub(crate) struct Settled {
    pub(crate) args: ServeArgs,
    pub(crate) origins: Origins,
}

/// Where each setting came from.
#[derive(Debug)]
pub(crate) struct Origins {
    /// `capf.toml` in the data directory.
    file: PathBuf,
    /// Whether there was one.
    file_read: bool,
    sources: Vec<(&'static str, Source)>,
}

impl Origins {
    fn source(&self, key: &str) -> Source {
        self.sources
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(Source::Default, |(_, source)| *source)
    }

    /// What a message calls the setting: the flag, the variable or the
    /// file's key, as the operator gave it.
    pub(crate) fn label(&self, key: &str) -> String {
        match self.source(key) {
            Source::Flag | Source::Default => flag(key),
            Source::Env => env_var(key),
            Source::File => format!("{key} in {}", self.file.display()),
        }
    }

    /// Every way to give the setting.
    fn ways(&self, key: &str) -> String {
        format!(
            "{} (or {}, or {key} in {})",
            flag(key),
            env_var(key),
            self.file.display()
        )
    }

    /// Where the value came from, in words: the flag, the variable, the
    /// file; none for the default.
    fn from(&self, key: &str) -> Option<String> {
        match self.source(key) {
            Source::Flag => Some(flag(key)),
            Source::Env => Some(env_var(key)),
            Source::File => Some(self.file.display().to_string()),
            Source::Default => None,
        }
    }

    /// `--print-config`: the settings in effect, as commented TOML (or
    /// JSON), on standard output.
    pub(crate) fn print(&self, data: &DataDir, args: &ServeArgs) -> Result<(), Failure> {
        let effective = self.effective(data, args)?;
        if args.json {
            let text = serde_json::to_string_pretty(&effective)
                .map_err(|e| Failure::new(format!("cannot write the configuration: {e}")))?;
            println!("{text}");
            return Ok(());
        }
        println!(
            "# capf serve: the settings in effect. A flag wins over its CAPF_* environment\n\
             # variable, which wins over the file, which wins over the default."
        );
        println!("# data directory: {}", effective.data_dir);
        println!(
            "# file: {} ({})",
            effective.file,
            if effective.file_read {
                "read"
            } else {
                "none there"
            }
        );
        let table = serde_json::to_value(&effective.settings)
            .map_err(|e| Failure::new(format!("cannot write the configuration: {e}")))?;
        for key in KEYS {
            let Some(setting) = table.get(key) else {
                continue;
            };
            let value = setting.get("value").unwrap_or(&serde_json::Value::Null);
            let line = if value.is_null() {
                format!("# {key} = (not set{})", unset_means(key))
            } else {
                // JSON strings, numbers, booleans and arrays of them are
                // TOML too: the line can go into capf.toml as it is.
                format!("{key} = {value}")
            };
            let from = match self.source(key) {
                Source::Flag => format!("flag {}", flag(key)),
                Source::Env => format!("env {}", env_var(key)),
                Source::File => format!("file {}", self.file.display()),
                Source::Default => "default".to_owned(),
            };
            println!("{line:<44} # {from}");
        }
        Ok(())
    }

    fn effective(&self, data: &DataDir, args: &ServeArgs) -> Result<Effective, Failure> {
        let setting = |key: &str, value: Result<serde_json::Value, serde_json::Error>| {
            let value = value.map_err(|e| Failure::new(format!("{}: {e}", flag(key))))?;
            Ok::<_, Failure>(Setting {
                value,
                source: self.source(key),
                from: self.from(key),
            })
        };
        macro_rules! settings {
            ($($key:ident),* $(,)?) => {
                EffectiveSettings {
                    $($key: setting(stringify!($key), serde_json::to_value(&args.$key))?,)*
                }
            };
        }
        Ok(Effective {
            data_dir: data.root().display().to_string(),
            file: self.file.display().to_string(),
            file_read: self.file_read,
            settings: settings!(
                listen,
                legacy_listen,
                tls,
                max_sessions,
                max_per_address,
                max_issuing,
                handshake_timeout,
                lease_ttl,
                metrics_listen,
                log_format,
                encrypted_config,
                tftp,
                admin_listen,
                admin_cert,
                admin_name,
                admin_plain_http,
                admin_trusted_proxy,
            ),
        })
    }
}

/// What an unset setting means.
fn unset_means(key: &str) -> &'static str {
    match key {
        "max_issuing" => ": the number of CPUs",
        "lease_ttl" => ": longer than the longest session",
        "metrics_listen" | "admin_listen" => ": off",
        _ => "",
    }
}

/// `capf serve --print-config --json`.
#[derive(Debug, Serialize)]
struct Effective {
    data_dir: String,
    /// `capf.toml`'s path, whether or not there is one.
    file: String,
    file_read: bool,
    settings: EffectiveSettings,
}

/// Every setting, its value and where it came from.
#[derive(Debug, Serialize)]
struct EffectiveSettings {
    listen: Setting,
    legacy_listen: Setting,
    tls: Setting,
    max_sessions: Setting,
    max_per_address: Setting,
    max_issuing: Setting,
    handshake_timeout: Setting,
    lease_ttl: Setting,
    metrics_listen: Setting,
    log_format: Setting,
    encrypted_config: Setting,
    tftp: Setting,
    admin_listen: Setting,
    admin_cert: Setting,
    admin_name: Setting,
    admin_plain_http: Setting,
    admin_trusted_proxy: Setting,
}

/// One setting: its value (null when unset), its source, and the flag,
/// variable or file it came from (null for the default).
#[derive(Debug, Serialize)]
struct Setting {
    value: serde_json::Value,
    source: Source,
    from: Option<String>,
}

/// Reads `capf.toml` if there is one.
fn read_file(path: &Path) -> Result<Option<FileSettings>, Failure> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Failure::new(format!("cannot read {}: {e}", path.display()))),
    };
    toml::from_str(&text)
        .map(Some)
        .map_err(|e| Failure::usage(format!("{}: {}", path.display(), e.to_string().trim_end())))
}

/// Applies `capf.toml` (in `data`) to the arguments clap parsed, and
/// checks what clap could not (the file's values, and the settings that
/// need or exclude others).
pub(crate) fn settle(
    data: &DataDir,
    mut args: ServeArgs,
    matches: &ArgMatches,
) -> Result<Settled, Failure> {
    let path = data.path(FILE);
    let file = read_file(&path)?;
    let file_read = file.is_some();
    let mut file = file.unwrap_or_default();
    // A relative path in the file is relative to the file's directory.
    let dir = data.root().to_path_buf();
    let resolve = |p: PathBuf| Some(if p.is_relative() { dir.join(p) } else { p });
    let given = |id: &str| match matches.value_source(id) {
        Some(ValueSource::CommandLine) => Some(Source::Flag),
        Some(ValueSource::EnvVariable) => Some(Source::Env),
        _ => None,
    };
    let mut sources = Vec::with_capacity(KEYS.len());
    macro_rules! settle {
        ($key:ident) => {
            settle!($key, |v| v)
        };
        ($key:ident, $wrap:expr) => {{
            let source = match given(stringify!($key)) {
                Some(source) => source,
                None => match file.$key.take() {
                    Some(value) => {
                        args.$key = ($wrap)(value);
                        Source::File
                    }
                    None => Source::Default,
                },
            };
            sources.push((stringify!($key), source));
        }};
    }
    settle!(listen);
    settle!(legacy_listen);
    settle!(tls);
    settle!(max_sessions);
    settle!(max_per_address);
    settle!(max_issuing, Some);
    settle!(handshake_timeout);
    settle!(lease_ttl, Some);
    settle!(metrics_listen, Some);
    settle!(log_format);
    settle!(encrypted_config, resolve);
    settle!(tftp, resolve);
    settle!(admin_listen, Some);
    settle!(admin_cert, resolve);
    settle!(admin_name);
    settle!(admin_plain_http);
    settle!(admin_trusted_proxy);
    let origins = Origins {
        file: path,
        file_read,
        sources,
    };
    check(&args, &origins)?;
    Ok(Settled { args, origins })
}

/// What clap checks on the command line, checked again with the file's
/// values: ranges, and the settings that need or exclude others.
fn check(args: &ServeArgs, origins: &Origins) -> Result<(), Failure> {
    if args.max_sessions == 0 {
        return Err(Failure::usage(format!(
            "{}: 0 is not in 1..",
            origins.label("max_sessions")
        )));
    }
    if args.lease_ttl == Some(0) {
        return Err(Failure::usage(format!(
            "{}: 0 is not in 1..",
            origins.label("lease_ttl")
        )));
    }
    let needs = |given: bool, key: &str, present: bool, other: &str| {
        if given && !present {
            Err(Failure::usage(format!(
                "{} needs {}",
                origins.label(key),
                origins.ways(other)
            )))
        } else {
            Ok(())
        }
    };
    let excludes = |given: bool, key: &str, other_given: bool, other: &str| {
        if given && other_given {
            Err(Failure::usage(format!(
                "{} cannot be used with {}",
                origins.label(key),
                origins.label(other)
            )))
        } else {
            Ok(())
        }
    };
    let admin = args.admin_listen.is_some();
    needs(
        args.encrypted_config.is_some(),
        "encrypted_config",
        args.tftp.is_some(),
        "tftp",
    )?;
    needs(
        args.tftp.is_some(),
        "tftp",
        args.encrypted_config.is_some(),
        "encrypted_config",
    )?;
    needs(
        args.admin_cert.is_some(),
        "admin_cert",
        admin,
        "admin_listen",
    )?;
    needs(
        !args.admin_name.is_empty(),
        "admin_name",
        admin,
        "admin_listen",
    )?;
    needs(
        args.admin_plain_http,
        "admin_plain_http",
        admin,
        "admin_listen",
    )?;
    needs(
        !args.admin_trusted_proxy.is_empty(),
        "admin_trusted_proxy",
        admin,
        "admin_listen",
    )?;
    excludes(
        args.admin_cert.is_some(),
        "admin_cert",
        args.admin_plain_http,
        "admin_plain_http",
    )?;
    excludes(
        !args.admin_name.is_empty(),
        "admin_name",
        args.admin_cert.is_some(),
        "admin_cert",
    )?;
    excludes(
        !args.admin_name.is_empty(),
        "admin_name",
        args.admin_plain_http,
        "admin_plain_http",
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::{Args, Command};

    use super::*;

    /// Every setting is a flag of `capf serve` with its variable, and
    /// every flag of `capf serve` (but those that only ask what to print)
    /// is a setting.
    #[test]
    fn every_flag_is_a_setting_with_its_variable() {
        let command = ServeArgs::augment_args(Command::new("serve"));
        let mut seen = Vec::new();
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if ["print_config", "json", "help"].contains(&id) {
                assert!(arg.get_env().is_none(), "{id}");
                continue;
            }
            assert!(KEYS.contains(&id), "{id} is not in KEYS");
            assert_eq!(arg.get_long(), Some(&flag(id)[2..]), "{id}");
            assert_eq!(
                arg.get_env().and_then(|e| e.to_str()),
                Some(env_var(id).as_str()),
                "{id}"
            );
            seen.push(id.to_owned());
        }
        assert_eq!(seen.len(), KEYS.len(), "{seen:?}");
    }

    /// An unknown key in capf.toml is an error naming it.
    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<FileSettings>("max_session = 3\n").unwrap_err();
        assert!(err.to_string().contains("max_session"), "{err}");
        let file: FileSettings =
            toml::from_str("listen = [\"[::]:3804\"]\ntls = \"legacy\"\nlog_format = \"json\"\n")
                .unwrap();
        assert_eq!(file.tls, Some(TlsKind::Legacy));
        assert_eq!(file.log_format, Some(LogFormat::Json));
    }
}
