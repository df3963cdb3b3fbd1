//! `capf device add|set|show|list|remove|revoke-lsc`. Changes are
//! field-level edits applied by the store inside its transaction: a change
//! never undoes what a phone's session committed, and a change that a
//! running session depends on is refused ("busy, try again").

use std::time::SystemTime;

use crate::store::Store;
use capf_auth::{AuthMode, AuthString, Operation, SecurityMode};
use capf_operations::{Device, DeviceEdit, DeviceName, DeviceQuery, OperatorStore};
use clap::{Args, Subcommand};

use crate::data_dir::DataDir;
use crate::device_view::DeviceJson;
use crate::output::print_json;
use crate::values::{self, DeadlineText, KeyChoice};
use crate::{Failure, Outcome, device_view};
use serde::Serialize;

#[derive(Debug, Subcommand)]
pub(crate) enum DeviceCommand {
    /// Add a device (same flags as `set`).
    #[command(after_help = "Examples:\n  \
        capf device add SEP001122334455 --operation install --generate-string\n  \
        capf device add SEP0011223344AA --auth-mode null-string --operation install --key p256\n  \
        capf device add CSFJSMITH --description \"Jabber, J. Smith\"")]
    Add {
        /// Device name: SEP + 12 hex digits (phones), or CSF/BOT/TCT/TAB... names.
        name: String,
        #[command(flatten)]
        flags: EditArgs,
        /// Print JSON: the device, the changes, and the generated string.
        #[arg(long)]
        json: bool,
    },
    /// Change only the fields named; everything else stays as it is.
    #[command(after_help = "Examples:\n  \
        capf device set SEP001122334455 --operation install --auth-mode auth-string --generate-string\n  \
        capf device set SEP001122334455 --auth-string 4711 --completes-by 2026-12-31T18:00:00Z\n  \
        capf device set SEP001122334455 --operation delete\n  \
        capf device set SEP001122334455 --operation none\n  \
        capf device set SEP001122334455 --clear-lockout\n  \
        capf device set SEP001122334455 --completes-by +7d --generate-string --json\n  \
        capf device set --where lsc-status=not-installed --where name=SEP0011 --operation install --dry-run\n  \
        capf device set --where status=failed --operation install --auth-mode null-string --yes\n\n\
        --where takes the criteria of `capf find`, as FLAG=VALUE without the dashes (repeat it: \
        every criterion must hold); --dry-run lists the devices it would change.\n\n\
        While a phone's session runs, changes of what it depends on (operation, \
        authentication mode or string, key, deadline, lockout) are refused: try again \
        when it ends. The description and the security mode change at any time.")]
    Set {
        /// Device name (or --where to change every device a search finds).
        #[arg(required_unless_present = "criteria", conflicts_with = "criteria")]
        name: Option<String>,
        #[command(flatten)]
        flags: EditArgs,
        #[command(flatten)]
        bulk: super::bulk::BulkArgs,
        /// Print JSON: the device, the changes, and the generated string.
        #[arg(long)]
        json: bool,
    },
    /// Show a device: operation status, LSC status, what the phone does after reset.
    #[command(
        after_help = "Examples:\n  capf device show SEP001122334455\n  capf device show SEP001122334455 --json"
    )]
    Show {
        /// Device name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List every device.
    #[command(
        after_help = "Examples:\n  capf device list\n  capf device list --json\n\nUse `capf find` to search."
    )]
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add or update devices in bulk from a CSV file, with a per-row error report.
    Import(super::import::ImportArgs),
    /// Remove a device (its issued certificates stay in the audit trail).
    #[command(after_help = "Example:\n  capf device remove SEP001122334455")]
    Remove {
        /// Device name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke the device's LSC: it no longer authenticates the phone, which
    /// then needs a string, the null string or its MIC to enroll again.
    #[command(
        name = "revoke-lsc",
        after_help = "Examples:\n  \
        capf device revoke-lsc SEP001122334455 --reason \"phone stolen\"\n  \
        capf device set SEP001122334455 --operation install --generate-string   # then re-enroll"
    )]
    RevokeLsc {
        /// Device name.
        name: String,
        /// Why (kept in the audit log).
        #[arg(long, default_value = "")]
        reason: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a device's LSC (or MIC) certificate to a file or stdout, as PEM or DER.
    #[command(
        name = "export-cert",
        after_help = "Examples:\n  \
        capf device export-cert SEP001122334455 --out SEP001122334455-lsc.pem\n  \
        capf device export-cert SEP001122334455 --mic --format der --out mic.der\n  \
        capf device export-cert SEP001122334455 | openssl x509 -noout -text\n\n\
        Only the certificate: the private key never leaves the phone."
    )]
    ExportCert {
        /// Device name.
        name: String,
        /// The manufacturer-installed certificate on record instead of the LSC.
        #[arg(long)]
        mic: bool,
        /// Output format.
        #[arg(long, value_name = "FORMAT", default_value = "pem", value_parser = ["pem", "der"])]
        format: String,
        /// Write to this file (refused if it exists, unless --force); default: stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
        /// Replace --out if it exists.
        #[arg(long, requires = "out")]
        force: bool,
    },
}

/// The fields `add` and `set` take, each parsed into its type; `set`
/// changes only those given.
#[derive(Debug, Args, Default)]
pub(crate) struct EditArgs {
    /// Certificate operation to schedule.
    #[arg(long, value_name = "OP", value_parser = values::operation())]
    pub(crate) operation: Option<Operation>,
    /// Authentication mode.
    #[arg(long, value_name = "MODE", value_parser = values::auth_mode())]
    pub(crate) auth_mode: Option<AuthMode>,
    /// Arm this authentication string (4 to 10 digits, single use).
    #[arg(long, value_name = "DIGITS", conflicts_with = "generate_string")]
    pub(crate) auth_string: Option<AuthString>,
    /// Generate and arm a random string (--string-length digits) and print it.
    #[arg(long)]
    pub(crate) generate_string: bool,
    /// Digits of a generated string.
    #[arg(long, value_name = "LEN", default_value_t = 8, requires = "generate_string",
          value_parser = clap::value_parser!(u8).range(4..=10))]
    pub(crate) string_length: u8,
    /// Key the phone generates (default: the service parameter's key).
    #[arg(long, value_name = "KEY", value_parser = values::key_choice())]
    pub(crate) key: Option<KeyChoice>,
    /// Deadline for the operation: RFC 3339 (2026-12-31T18:00:00Z), a time
    /// from now (+12h, +7d, +2w), or none.
    #[arg(long, value_name = "TIME")]
    pub(crate) completes_by: Option<DeadlineText>,
    /// Free text.
    #[arg(long)]
    pub(crate) description: Option<String>,
    /// Device security mode.
    #[arg(long, value_name = "MODE", value_parser = values::security_mode())]
    pub(crate) security_mode: Option<SecurityMode>,
    /// Lift a lockout after wrong strings without arming a new string.
    #[arg(long)]
    pub(crate) clear_lockout: bool,
}

impl EditArgs {
    /// The edit these flags ask for, checked against `now` (a deadline must
    /// lie ahead), with the generated string if one was asked for.
    pub(crate) fn edit(&self, now: SystemTime) -> Result<FlagEdit, Failure> {
        let completes_by = match &self.completes_by {
            None => None,
            Some(text) => {
                let deadline = text.at(now).map_err(Failure::usage)?;
                if deadline.is_some_and(|d| d <= now) {
                    return Err(Failure::usage(
                        "--completes-by is in the past: give a later time, or none",
                    ));
                }
                Some(deadline)
            }
        };
        let auth_string = match (&self.auth_string, self.generate_string) {
            (Some(digits), _) => Some(digits.clone()),
            (None, true) => Some(AuthString::generate(self.string_length.into()).map_err(usage)?),
            (None, false) => None,
        };
        let generated = auth_string
            .as_ref()
            .filter(|_| self.generate_string)
            .map(|s| s.expose().to_owned());
        Ok(FlagEdit {
            edit: DeviceEdit {
                description: self.description.clone(),
                security_mode: self.security_mode,
                auth_mode: self.auth_mode,
                key: self.key.map(KeyChoice::key),
                operation: self.operation,
                completes_by,
                auth_string,
                clear_lockout: self.clear_lockout,
                revoke_lsc: None,
            },
            generated,
        })
    }
}

/// The fields of a row of `capf device import`, as text (checked by
/// [`row_edit`]); only those given change.
#[derive(Debug, Default)]
pub(crate) struct RowFields {
    /// Certificate operation to schedule: install, delete, troubleshoot or none.
    pub(crate) operation: Option<String>,
    /// Authentication mode: auth-string, null-string, lsc-first or mic-first.
    pub(crate) auth_mode: Option<String>,
    /// Arm this authentication string (4 to 10 digits, single use).
    pub(crate) auth_string: Option<String>,
    /// Generate and arm a random string of LEN digits (default 8) and print it.
    pub(crate) generate_string: Option<usize>,
    /// Key the phone generates: rsa1024, rsa2048, rsa3072, rsa4096, p256, p384, p521, or default.
    pub(crate) key: Option<String>,
    /// Deadline for the operation (RFC 3339, e.g. 2026-12-31T18:00:00Z), or none.
    pub(crate) completes_by: Option<String>,
    /// Free text.
    pub(crate) description: Option<String>,
    /// Device security mode: non-secure, authenticated or encrypted.
    pub(crate) security_mode: Option<String>,
    /// Lift a lockout after wrong strings without arming a new string.
    pub(crate) clear_lockout: bool,
}

/// The edit the flags ask for, every value parsed and checked before
/// anything changes, and the generated string (to print) if any.
pub(crate) struct FlagEdit {
    pub(crate) edit: DeviceEdit,
    pub(crate) generated: Option<String>,
}

fn usage<E: std::fmt::Display>(e: E) -> Failure {
    Failure::usage(e)
}

/// Parses and validates the text fields of an import row into a
/// [`DeviceEdit`], by the same rules as the flags of `add` and `set`.
pub(crate) fn row_edit(flags: &RowFields, now: SystemTime) -> Result<FlagEdit, Failure> {
    fn parsed<T: std::str::FromStr>(text: &Option<String>) -> Result<Option<T>, Failure>
    where
        T::Err: std::fmt::Display,
    {
        text.as_deref()
            .map(|t| t.trim().parse::<T>())
            .transpose()
            .map_err(usage)
    }
    let string_length = match flags.generate_string {
        None => 8,
        Some(len) => u8::try_from(len)
            .ok()
            .filter(|l| (4..=10).contains(l))
            .ok_or_else(|| {
                Failure::usage(format!("a generated string has 4 to 10 digits, not {len}"))
            })?,
    };
    EditArgs {
        operation: parsed(&flags.operation)?,
        auth_mode: parsed(&flags.auth_mode)?,
        auth_string: parsed(&flags.auth_string)?,
        generate_string: flags.generate_string.is_some(),
        string_length,
        key: parsed(&flags.key)?,
        completes_by: parsed(&flags.completes_by)?,
        description: flags.description.clone(),
        security_mode: parsed(&flags.security_mode)?,
        clear_lockout: flags.clear_lockout,
    }
    .edit(now)
}

pub(crate) fn open(data: &DataDir) -> Result<Store, Failure> {
    if !data.is_initialised() {
        return Err(Failure::new(format!(
            "{} is not initialised: run `capf init` (or `capf serve`) first",
            data.root().display()
        )));
    }
    Ok(data.open_database()?)
}

fn name(text: &str) -> Result<DeviceName, Failure> {
    DeviceName::parse(text).map_err(Failure::usage)
}

/// What `add`, `set` and `revoke-lsc` print with `--json`.
#[derive(Debug, Serialize)]
pub(crate) struct ChangeJson {
    /// `added` or `updated`.
    pub(crate) result: &'static str,
    /// The fields that changed, in words.
    pub(crate) changes: Vec<String>,
    /// The string `--generate-string` drew (shown only here, once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) auth_string: Option<String>,
    /// The device after the change.
    pub(crate) device: DeviceJson,
}

/// What `remove` prints with `--json`.
#[derive(Debug, Serialize)]
struct RemovedJson<'a> {
    result: &'static str,
    name: &'a str,
}

/// Tells the operator what changed, and the generated string once.
fn report(
    device: &Device,
    verb: &'static str,
    changes: Vec<String>,
    generated: Option<String>,
    json: bool,
) -> Result<(), Failure> {
    if json {
        return print_json(&ChangeJson {
            result: verb,
            changes,
            auth_string: generated,
            device: DeviceJson::of(device),
        });
    }
    let detail = if changes.is_empty() {
        "no change".to_owned()
    } else {
        changes.join(", ")
    };
    println!("{verb} {}: {detail}", device.name);
    let status = device.status_label();
    if status.is_empty() {
        println!("  status: no pending operation");
    } else {
        println!("  status: {status}");
    }
    if let Some(digits) = generated {
        println!("  authentication string: {digits}");
        println!("  (enter it on the phone: Settings > Security Configuration > LSC > Update)");
    }
    Ok(())
}

pub(crate) fn run(data: &DataDir, command: DeviceCommand) -> Result<Outcome, Failure> {
    match command {
        DeviceCommand::Add {
            name: n,
            flags,
            json,
        } => {
            let name = name(&n)?;
            let now = SystemTime::now();
            let FlagEdit { edit, generated } = flags.edit(now)?;
            let store = open(data)?;
            let mut device = Device::new(name, AuthMode::AuthString);
            let changes = edit.apply(&mut device, now)?;
            store.insert(&device, now)?;
            report(&device, "added", changes, generated, json)?;
        }
        DeviceCommand::Set {
            name: Some(n),
            flags,
            bulk: _,
            json,
        } => {
            let name = name(&n)?;
            let now = SystemTime::now();
            let FlagEdit { edit, generated } = flags.edit(now)?;
            let store = open(data)?;
            let edited = store.modify(&name, &edit, now).map_err(|e| match e {
                capf_operations::OperationsError::UnknownDevice { .. } => Failure::new(format!(
                    "device {name} is not configured (capf device add {name})"
                )),
                other => Failure::new(other),
            })?;
            report(&edited.device, "updated", edited.changes, generated, json)?;
        }
        DeviceCommand::Set {
            name: None,
            flags,
            bulk,
            json,
        } => return super::bulk::run(data, &flags, &bulk, json),
        DeviceCommand::RevokeLsc {
            name: n,
            reason,
            json,
        } => {
            let name = name(&n)?;
            let store = open(data)?;
            let edit = DeviceEdit {
                revoke_lsc: Some(reason),
                ..DeviceEdit::default()
            };
            let edited = store.modify(&name, &edit, SystemTime::now())?;
            report(&edited.device, "updated", edited.changes, None, json)?;
            if !json {
                println!(
                    "  the phone now needs an authentication string, the null string or its MIC to enroll again"
                );
            }
        }
        DeviceCommand::Show { name: n, json } => {
            let name = name(&n)?;
            let store = open(data)?;
            let device = store
                .load(&name)?
                .ok_or_else(|| Failure::new(format!("device {name} is not configured")))?;
            if json {
                print_json(&DeviceJson::of(&device))?;
            } else {
                let params = store.load_parameters()?;
                device_view::print_text(&device, &params.default_key);
            }
        }
        DeviceCommand::List { json } => {
            let store = open(data)?;
            let page = store.find(&DeviceQuery::default())?;
            if json {
                let list: Vec<_> = page.devices.iter().map(DeviceJson::of).collect();
                print_json(&list)?;
            } else {
                print_table(&page.devices);
                println!("{}", count_text(page.devices.len()));
            }
        }
        DeviceCommand::Import(args) => return super::import::run(data, args),
        DeviceCommand::Remove { name: n, json } => {
            let name = name(&n)?;
            let store = open(data)?;
            if !store.remove(&name, SystemTime::now())? {
                return Err(Failure::new(format!("device {name} is not configured")));
            }
            if json {
                print_json(&RemovedJson {
                    result: "removed",
                    name: name.as_str(),
                })?;
            } else {
                println!("removed {name}");
            }
        }
        DeviceCommand::ExportCert {
            name: n,
            mic,
            format,
            out,
            force,
        } => export_cert(data, &n, mic, &format, out.as_deref(), force)?,
    }
    Ok(Outcome::Done)
}

/// `capf device export-cert`: the certificate on record, exactly as stored.
fn export_cert(
    data: &DataDir,
    name_text: &str,
    mic: bool,
    format: &str,
    out: Option<&std::path::Path>,
    force: bool,
) -> Result<(), Failure> {
    let name = name(name_text)?;
    let store = open(data)?;
    let device = store
        .load(&name)?
        .ok_or_else(|| Failure::new(format!("device {name} is not configured")))?;
    let (record, what) = if mic {
        (device.mic.as_ref(), "MIC")
    } else {
        (device.lsc.as_ref(), "LSC")
    };
    let Some(record) = record else {
        return Err(Failure::new(format!(
            "device {name} has no {what} on record"
        )));
    };
    if !mic && device.lsc_revoked.is_some() {
        eprintln!("note: the LSC of {name} is revoked: it no longer authenticates the phone");
    }
    let bytes = match format {
        "der" => record.der.clone(),
        _ => record.pem().into_bytes(),
    };
    match out {
        Some(path) => {
            crate::output::write_file(path, &bytes, &crate::output::Output::public(force))?;
            eprintln!("wrote the {what} of {name} to {}", path.display());
        }
        None => {
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(&bytes)
                .and_then(|()| stdout.flush())
                .map_err(|e| Failure::new(format!("writing to standard output: {e}")))?;
        }
    }
    Ok(())
}

/// `N devices` (or `1 device`).
pub(crate) fn count_text(n: usize) -> String {
    if n == 1 {
        "1 device".to_owned()
    } else {
        format!("{n} devices")
    }
}

/// A table of devices, one line each. Text that came from outside
/// (descriptions) is escaped, so that it cannot move the terminal's cursor.
pub(crate) fn print_table(devices: &[Device]) {
    crate::output::print_table(
        ["DEVICE", "AUTH MODE", "STATUS", "LSC", "DESCRIPTION"],
        devices
            .iter()
            .map(|d| {
                [
                    d.name.to_string(),
                    d.policy.auth_mode.name().to_owned(),
                    d.status_label(),
                    d.lsc_status().to_owned(),
                    capf_operations::escape_text(&d.description).into_owned(),
                ]
            })
            .collect(),
    );
}
