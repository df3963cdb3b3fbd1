//! `capf device add|set|show|list|remove`.

use std::time::SystemTime;

use capf_auth::{AuthMode, AuthString, Operation, SecurityMode};
use capf_ca::KeySpec;
use capf_operations::{Device, DeviceName, DeviceQuery, DeviceStore};
use capf_server::DataDir;
use capf_store::SqliteStore;
use clap::{Args, Subcommand};

use crate::{Failure, Outcome, device_view, time_text};

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
        flags: DeviceFlags,
    },
    /// Change only the fields named; everything else stays as it is.
    #[command(after_help = "Examples:\n  \
        capf device set SEP001122334455 --operation install --auth-mode auth-string --generate-string\n  \
        capf device set SEP001122334455 --auth-string 4711 --completes-by 2026-12-31T18:00:00Z\n  \
        capf device set SEP001122334455 --operation delete\n  \
        capf device set SEP001122334455 --operation none")]
    Set {
        /// Device name.
        name: String,
        #[command(flatten)]
        flags: DeviceFlags,
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
    },
}

/// The fields `add` and `set` take; `set` changes only those given.
#[derive(Debug, Args, Default)]
pub(crate) struct DeviceFlags {
    /// Certificate operation to schedule: install, delete, troubleshoot or none.
    #[arg(long, value_name = "OP")]
    pub(crate) operation: Option<String>,
    /// Authentication mode: auth-string, null-string, lsc-first or mic-first.
    #[arg(long, value_name = "MODE")]
    pub(crate) auth_mode: Option<String>,
    /// Arm this authentication string (4 to 10 digits, single use).
    #[arg(long, value_name = "DIGITS", conflicts_with = "generate_string")]
    pub(crate) auth_string: Option<String>,
    /// Generate and arm a random string of LEN digits (default 8) and print it.
    #[arg(long, value_name = "LEN", num_args = 0..=1, default_missing_value = "8")]
    pub(crate) generate_string: Option<usize>,
    /// Key the phone generates: rsa1024, rsa2048, rsa3072, rsa4096, p256, p384, p521, or default.
    #[arg(long, value_name = "KEY")]
    pub(crate) key: Option<String>,
    /// Deadline for the operation (RFC 3339, e.g. 2026-12-31T18:00:00Z), or none.
    #[arg(long, value_name = "TIME")]
    pub(crate) completes_by: Option<String>,
    /// Free text.
    #[arg(long)]
    pub(crate) description: Option<String>,
    /// Device security mode: non-secure, authenticated or encrypted.
    #[arg(long, value_name = "MODE")]
    pub(crate) security_mode: Option<String>,
}

/// What applying flags did that the operator must be told.
pub(crate) struct Applied {
    pub(crate) generated: Option<String>,
    pub(crate) changes: Vec<String>,
}

fn usage<E: std::fmt::Display>(e: E) -> Failure {
    Failure::usage(e)
}

/// Parses and validates every flag before anything changes, then applies
/// them to `device`.
pub(crate) fn apply(device: &mut Device, flags: &DeviceFlags) -> Result<Applied, Failure> {
    let operation: Option<Operation> = flags
        .operation
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(usage)?;
    let auth_mode: Option<AuthMode> = flags
        .auth_mode
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(usage)?;
    let security: Option<SecurityMode> = flags
        .security_mode
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(usage)?;
    let key: Option<Option<KeySpec>> = match flags.key.as_deref() {
        None => None,
        Some("default") => Some(None),
        Some(k) => Some(Some(k.parse().map_err(usage)?)),
    };
    let completes_by: Option<Option<SystemTime>> = match flags.completes_by.as_deref() {
        None => None,
        Some("none") => Some(None),
        Some(t) => Some(Some(time_text::parse(t).map_err(usage)?)),
    };
    let string: Option<AuthString> = match (&flags.auth_string, flags.generate_string) {
        (Some(digits), _) => Some(digits.parse().map_err(usage)?),
        (None, Some(len)) => {
            let len =
                u8::try_from(len).map_err(|_| Failure::usage("--generate-string takes 4 to 10"))?;
            Some(AuthString::generate(len.into()).map_err(usage)?)
        }
        (None, None) => None,
    };

    let mut changes = Vec::new();
    if let Some(d) = &flags.description {
        device.description = d.clone();
        changes.push("description".to_owned());
    }
    if let Some(m) = security {
        device.policy.security_mode = m;
        changes.push(format!("security mode {m}"));
    }
    if let Some(k) = key {
        device.key = k;
        changes.push(format!(
            "key {}",
            k.map_or("default".to_owned(), |k| k.to_string())
        ));
    }
    if let Some(m) = auth_mode {
        device.policy.auth_mode = m;
        changes.push(format!("authentication mode {m}"));
    }
    let generated = flags
        .generate_string
        .and(string.as_ref().map(|s| s.expose().to_owned()));
    if let Some(s) = string {
        device.policy.rearm(s);
        changes.push("authentication string armed".to_owned());
    }
    match (operation, completes_by) {
        (Some(op), deadline) => {
            let deadline = deadline.unwrap_or(device.policy.completes_by);
            device.schedule(op, deadline).map_err(Failure::new)?;
            changes.push(format!("operation {}", op.label()));
        }
        (None, Some(deadline)) => {
            device.policy.completes_by = deadline;
            changes.push("completes-by".to_owned());
        }
        (None, None) => {}
    }
    Ok(Applied { generated, changes })
}

pub(crate) fn open(data: &DataDir) -> Result<SqliteStore, Failure> {
    if !data.is_initialised() {
        return Err(Failure::new(format!(
            "{} is not initialised: run `capf init` (or `capf serve`) first",
            data.root().display()
        )));
    }
    Ok(data.open_store()?)
}

fn name(text: &str) -> Result<DeviceName, Failure> {
    DeviceName::parse(text).map_err(Failure::usage)
}

fn report(
    store: &SqliteStore,
    device: &Device,
    verb: &str,
    applied: &Applied,
) -> Result<(), Failure> {
    let detail = if applied.changes.is_empty() {
        "no change".to_owned()
    } else {
        applied.changes.join(", ")
    };
    store.record_operator_event(&device.name, verb, &detail, SystemTime::now())?;
    println!("{verb} {}: {detail}", device.name);
    let status = device.status_label();
    if status.is_empty() {
        println!("  status: no pending operation");
    } else {
        println!("  status: {status}");
    }
    if let Some(digits) = &applied.generated {
        println!("  authentication string: {digits}");
        println!("  (enter it on the phone: Settings > Security Configuration > LSC > Update)");
    }
    Ok(())
}

pub(crate) fn run(data: &DataDir, command: DeviceCommand) -> Result<Outcome, Failure> {
    match command {
        DeviceCommand::Add { name: n, flags } => {
            let name = name(&n)?;
            let store = open(data)?;
            let mode = match flags.auth_mode.as_deref() {
                Some(m) => m.parse().map_err(usage)?,
                None => AuthMode::AuthString,
            };
            let mut device = Device::new(name, mode);
            let applied = apply(&mut device, &flags)?;
            store.insert(&device)?;
            report(&store, &device, "added", &applied)?;
        }
        DeviceCommand::Set { name: n, flags } => {
            let name = name(&n)?;
            let store = open(data)?;
            let mut device = store.load(&name)?.ok_or_else(|| {
                Failure::new(format!(
                    "device {name} is not configured (capf device add {name})"
                ))
            })?;
            let applied = apply(&mut device, &flags)?;
            store.update(&device)?;
            report(&store, &device, "updated", &applied)?;
        }
        DeviceCommand::Show { name: n, json } => {
            let name = name(&n)?;
            let store = open(data)?;
            let device = store
                .load(&name)?
                .ok_or_else(|| Failure::new(format!("device {name} is not configured")))?;
            if json {
                println!("{:#}", device_view::to_json(&device));
            } else {
                let params = store.load_parameters()?;
                device_view::print_text(&device, &params.default_key);
            }
        }
        DeviceCommand::List { json } => {
            let store = open(data)?;
            let page = store.find(&DeviceQuery::default())?;
            if json {
                let list: Vec<_> = page.devices.iter().map(device_view::to_json).collect();
                println!("{:#}", serde_json::Value::Array(list));
            } else {
                print_table(&page.devices);
            }
        }
        DeviceCommand::Import(args) => return super::import::run(data, args),
        DeviceCommand::Remove { name: n } => {
            let name = name(&n)?;
            let store = open(data)?;
            if !store.remove(&name)? {
                return Err(Failure::new(format!("device {name} is not configured")));
            }
            store.record_operator_event(&name, "removed", "device removed", SystemTime::now())?;
            println!("removed {name}");
        }
    }
    Ok(Outcome::Done)
}

/// A table of devices, one line each.
pub(crate) fn print_table(devices: &[Device]) {
    println!(
        "{:<16} {:<14} {:<30} {:<14} DESCRIPTION",
        "DEVICE", "AUTH MODE", "STATUS", "LSC"
    );
    for d in devices {
        println!(
            "{:<16} {:<14} {:<30} {:<14} {}",
            d.name.as_str(),
            d.policy.auth_mode.name(),
            d.status_label(),
            d.lsc_status(),
            d.description
        );
    }
    println!("{} device(s)", devices.len());
}
