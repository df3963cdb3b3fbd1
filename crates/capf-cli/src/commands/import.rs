//! `capf device import`: add or update devices in bulk from CSV. Each row
//! is validated whole before it is written, and written on its own: a bad
//! row never half-applies and never stops the good ones.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::SystemTime;

use capf_auth::AuthMode;
use capf_operations::{Device, DeviceName, OperationsError, OperatorStore};
use capf_store::SqliteStore;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::device::{DeviceFlags, FlagEdit, edit_from_flags, open};
use super::report::write_private;
use crate::data_dir::DataDir;
use crate::{Failure, Outcome};

/// The columns a CSV file may have (`name` is required).
const COLUMNS: [&str; 9] = [
    "name",
    "description",
    "operation",
    "auth_mode",
    "auth_string",
    "generate_string",
    "key",
    "completes_by",
    "security_mode",
];

/// Arguments of `capf device import`.
#[derive(Debug, Args)]
#[command(
    after_help = "The first row names the columns, in any order: name (required), description, \
    operation, auth_mode, auth_string, generate_string, key, completes_by, security_mode. \
    Values mean what the `capf device set` flags mean (generate_string is a length, 4 to 10). \
    A row adds the device, or updates an existing one; an empty cell leaves that field unchanged. \
    A bad row is reported (row number, device, why) and not applied; the others are. \
    Exit status 1 if any row failed.\n\n\
    Example file:\n  \
    name,description,operation,auth_mode,generate_string,key\n  \
    SEP001122334455,Lobby,install,auth-string,8,p256\n  \
    SEP0011223344AA,Desk 12,install,null-string,,\n\n\
    Examples:\n  \
    capf device import phones.csv\n  \
    capf device import phones.csv --strings-out strings.csv"
)]
pub(crate) struct ImportArgs {
    /// The CSV file.
    file: PathBuf,
    /// Write generated authentication strings to FILE (CSV, mode 0600)
    /// instead of printing them.
    #[arg(long, value_name = "FILE")]
    strings_out: Option<PathBuf>,
}

/// What one good row did.
enum RowResult {
    Added(Option<String>),
    Updated(Option<String>),
}

fn cell(record: &csv::StringRecord, index: Option<usize>) -> Option<String> {
    let value = record.get(index?)?.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

/// Validates the whole row, then inserts or updates the device.
fn import_row(
    store: &SqliteStore,
    columns: &[Option<usize>; 9],
    record: &csv::StringRecord,
) -> Result<(DeviceName, RowResult), (Option<String>, String)> {
    let raw_name = cell(record, columns[0]);
    let fail = |why: String| (raw_name.clone(), why);
    let name_text = raw_name
        .clone()
        .ok_or_else(|| fail("no device name".into()))?;
    let name = DeviceName::parse(&name_text).map_err(|e| fail(e.to_string()))?;
    let generate_string = match cell(record, columns[5]) {
        None => None,
        Some(len) => Some(len.parse::<usize>().map_err(|_| {
            fail(format!(
                "generate_string {len:?}: give a length (4 to 10) or leave it empty"
            ))
        })?),
    };
    let flags = DeviceFlags {
        description: cell(record, columns[1]),
        operation: cell(record, columns[2]),
        auth_mode: cell(record, columns[3]),
        auth_string: cell(record, columns[4]),
        generate_string,
        key: cell(record, columns[6]),
        completes_by: cell(record, columns[7]),
        security_mode: cell(record, columns[8]),
        clear_lockout: false,
    };
    if flags.auth_string.is_some() && flags.generate_string.is_some() {
        return Err(fail("give auth_string or generate_string, not both".into()));
    }
    // Every field is parsed and checked before anything is written; the
    // store then applies the row in one transaction: as an edit of the
    // device as it is (never a stale copy written back), or as a new
    // device.
    let now = SystemTime::now();
    let FlagEdit { edit, generated } = edit_from_flags(&flags, now).map_err(|f| fail(f.message))?;
    let result = match store.modify(&name, &edit, now) {
        Ok(_) => RowResult::Updated(generated),
        Err(OperationsError::UnknownDevice { .. }) => {
            let mut device = Device::new(name.clone(), AuthMode::AuthString);
            edit.apply(&mut device, now)
                .map_err(|e| fail(e.to_string()))?;
            store
                .insert(&device, now)
                .map_err(|e| fail(e.to_string()))?;
            RowResult::Added(generated)
        }
        Err(e) => return Err(fail(e.to_string())),
    };
    Ok((name, result))
}

fn column_map(headers: &csv::StringRecord) -> Result<[Option<usize>; 9], Failure> {
    let mut columns = [None; 9];
    for (index, header) in headers.iter().enumerate() {
        let key = header.trim().to_ascii_lowercase().replace(['-', ' '], "_");
        let Some(slot) = COLUMNS.iter().position(|c| *c == key) else {
            return Err(Failure::usage(format!(
                "unknown column {header:?}: columns are {}",
                COLUMNS.join(", ")
            )));
        };
        if columns[slot].is_some() {
            return Err(Failure::usage(format!("column {header:?} appears twice")));
        }
        columns[slot] = Some(index);
    }
    if columns[0].is_none() {
        return Err(Failure::usage(
            "the first row must name the columns, including `name`",
        ));
    }
    Ok(columns)
}

pub(crate) fn run(data: &DataDir, args: ImportArgs) -> Result<Outcome, Failure> {
    let text = std::fs::read(&args.file)
        .map_err(|e| Failure::new(format!("{}: {e}", args.file.display())))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_slice());
    let headers = reader
        .headers()
        .map_err(|e| Failure::usage(format!("{}: {e}", args.file.display())))?
        .clone();
    let columns = column_map(&headers)?;
    let records: Vec<(usize, Result<csv::StringRecord, csv::Error>)> = reader
        .records()
        .enumerate()
        .map(|(i, r)| (i + 2, r))
        .collect();
    let store = open(data)?;

    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new(records.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} rows {msg}") {
        bar.set_style(style);
    }
    let (mut added, mut updated, mut failed) = (0usize, 0usize, 0usize);
    let mut generated: Vec<(DeviceName, String)> = Vec::new();
    for (row, record) in records {
        let outcome = match record {
            Err(e) => Err((None, format!("unreadable: {e}"))),
            Ok(r) if r.len() > headers.len() => Err((
                r.get(columns[0].unwrap_or(0)).map(str::to_owned),
                format!("{} cells for {} columns", r.len(), headers.len()),
            )),
            Ok(r) if r.iter().all(|c| c.trim().is_empty()) => {
                bar.inc(1);
                continue;
            }
            Ok(r) => import_row(&store, &columns, &r),
        };
        match outcome {
            Ok((name, RowResult::Added(string))) => {
                added += 1;
                generated.extend(string.map(|s| (name, s)));
            }
            Ok((name, RowResult::Updated(string))) => {
                updated += 1;
                generated.extend(string.map(|s| (name, s)));
            }
            Err((device, why)) => {
                failed += 1;
                let device = device.unwrap_or_else(|| "-".to_owned());
                bar.suspend(|| eprintln!("row {row} ({device}): {why}"));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();

    if !generated.is_empty() {
        match &args.strings_out {
            Some(path) => {
                let mut out = String::from("name,auth_string\n");
                for (name, digits) in &generated {
                    out.push_str(&format!("{name},{digits}\n"));
                }
                write_private(path, out.as_bytes())?;
                println!(
                    "{} generated authentication string(s) written to {} (mode 0600)",
                    generated.len(),
                    path.display()
                );
            }
            None => {
                println!("generated authentication strings:");
                for (name, digits) in &generated {
                    println!("  {name}  {digits}");
                }
            }
        }
    }
    println!("{added} added, {updated} updated, {failed} failed");
    Ok(if failed == 0 {
        Outcome::Done
    } else {
        Outcome::NotDone
    })
}
