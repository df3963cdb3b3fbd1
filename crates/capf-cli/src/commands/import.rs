//! `capf device import`: add or update devices in bulk from CSV. Each row
//! is validated whole before it is written, and written on its own: a bad
//! row never half-applies and never stops the good ones.
//!
//! It also reads `capf report` files: the report's column names are
//! accepted, its read-only columns ignored, its labels ("Install/Upgrade",
//! "By Authentication String") read as the names `device set` takes, and
//! the apostrophe it puts before some cells removed. A cell equal to what
//! the device already has changes nothing, so an edited report changes
//! only what was edited.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::SystemTime;

use capf_auth::{AuthMode, Operation};
use capf_ca::KeySpec;
use capf_operations::{Device, DeviceName, OperatorStore};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::device::{DeviceFlags, FlagEdit, edit_from_flags, open};
use crate::data_dir::DataDir;
use crate::output::{self, Output};
use crate::{Failure, Outcome, time_text};
use capf_operations::report::{from_spreadsheet_cell, spreadsheet_cell};

/// The columns a CSV file may have (`name` is required), each with the
/// name `capf report` gives it, if the report has it.
const COLUMNS: [(&str, Option<&str>); 9] = [
    ("name", Some("Device Name")),
    ("description", Some("Description")),
    ("operation", Some("Certificate Operation")),
    ("auth_mode", Some("Authentication Mode")),
    ("auth_string", Some("Authentication String")),
    ("generate_string", None),
    ("key", None),
    ("completes_by", Some("Completes By")),
    ("security_mode", Some("Security Mode")),
];

/// The report's columns that show what the phones did: ignored.
const READ_ONLY: [&str; 2] = ["LSC Status", "Operation Status"];

/// Arguments of `capf device import`.
#[derive(Debug, Args)]
#[command(
    after_help = "The first row names the columns, in any order: name (required), description, \
    operation, auth_mode, auth_string, generate_string, key, completes_by, security_mode. \
    Values mean what the `capf device set` flags mean (generate_string is a length, 4 to 10). \
    A row adds the device, or updates an existing one; an empty cell leaves that field unchanged, \
    and so does a cell equal to what the device already has (an unchanged string is not \
    re-armed, an unchanged operation not scheduled again: use `capf device set` for that). \
    A bad row is reported (row number, device, why) and not applied; the others are. \
    Exit status 1 if any row failed.\n\n\
    A `capf report` file is accepted as it is: its columns Device Name, Description, Security \
    Mode, Authentication String, Authentication Mode, Certificate Operation and Completes By \
    are read (labels such as \"Install/Upgrade\" or \"By Null String\" too); LSC Status and \
    Operation Status show what the phones did and are ignored, with a note. One leading \
    apostrophe is removed from every cell: the report adds it so that spreadsheets keep \
    cells as text (write two to keep one).\n\n\
    --strings-out FILE is written with mode 0600; an existing FILE is replaced only with \
    --force (never a file holding a private key, never through a symbolic link), and it is \
    checked before any row is applied. An authentication string that begins with 0 is \
    written with a leading apostrophe, as in the report.\n\n\
    Example file:\n  \
    name,description,operation,auth_mode,generate_string,key\n  \
    SEP001122334455,Lobby,install,auth-string,8,p256\n  \
    SEP0011223344AA,Desk 12,install,null-string,,\n\n\
    Examples:\n  \
    capf device import phones.csv\n  \
    capf device import phones.csv --strings-out strings.csv\n  \
    capf report --output report.csv; (edit it); capf device import report.csv"
)]
pub(crate) struct ImportArgs {
    /// The CSV file.
    file: PathBuf,
    /// Write generated authentication strings to FILE (CSV, mode 0600)
    /// instead of printing them.
    #[arg(long, value_name = "FILE")]
    strings_out: Option<PathBuf>,
    /// Replace the --strings-out FILE if it exists.
    #[arg(long, requires = "strings_out")]
    force: bool,
}

/// What one good row did.
enum RowResult {
    Added(Option<String>),
    Updated(Option<String>),
    Unchanged,
}

/// A cell's value: trimmed, one leading apostrophe removed (see
/// [`from_spreadsheet_cell`]); `None` when empty.
fn cell(record: &csv::StringRecord, index: Option<usize>) -> Option<String> {
    let value = from_spreadsheet_cell(record.get(index?)?.trim());
    (!value.is_empty()).then(|| value.to_owned())
}

/// The `device set` name for a report label ("Install/Upgrade" is
/// `install`), or the value as it is.
fn name_for_label(
    value: String,
    labels: impl IntoIterator<Item = (&'static str, &'static str)>,
) -> String {
    labels
        .into_iter()
        .find(|(label, _)| label.eq_ignore_ascii_case(value.trim()))
        .map_or(value, |(_, name)| name.to_owned())
}

/// Forgets the fields whose value the device already has: importing them
/// again would re-arm its string (resetting the count of wrong guesses),
/// schedule its operation again (resetting its status) or, for a deadline
/// now past, be refused.
fn drop_unchanged(flags: &mut DeviceFlags, device: &Device) {
    let p = &device.policy;
    fn same<T: std::str::FromStr + PartialEq>(field: &mut Option<String>, current: &T) {
        if field.as_deref().and_then(|v| v.parse::<T>().ok()).as_ref() == Some(current) {
            *field = None;
        }
    }
    if flags.description.as_deref() == Some(device.description.as_str()) {
        flags.description = None;
    }
    same(&mut flags.operation, &p.operation);
    same(&mut flags.auth_mode, &p.auth_mode);
    same(&mut flags.security_mode, &p.security_mode);
    let key = match flags.key.as_deref() {
        Some("default") => Some(None),
        Some(k) => k.parse::<KeySpec>().ok().map(Some),
        None => None,
    };
    if key.is_some() && key == Some(device.key) {
        flags.key = None;
    }
    let deadline = match flags.completes_by.as_deref() {
        Some("none") => Some(None),
        Some(t) => time_text::parse(t).ok().map(|t| Some(time_text::format(t))),
        None => None,
    };
    if deadline.is_some() && deadline == Some(p.completes_by.map(time_text::format)) {
        flags.completes_by = None;
    }
    if flags.auth_string.is_some()
        && flags.auth_string.as_deref() == p.auth_string.as_ref().map(|s| s.expose())
    {
        flags.auth_string = None;
    }
}

/// Validates the whole row, then inserts or updates the device.
fn import_row(
    store: &crate::store::Store,
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
    let mut flags = DeviceFlags {
        description: cell(record, columns[1]),
        operation: cell(record, columns[2])
            .map(|v| name_for_label(v, Operation::ALL.map(|o| (o.label(), o.name())))),
        auth_mode: cell(record, columns[3])
            .map(|v| name_for_label(v, AuthMode::ALL.map(|m| (m.label(), m.name())))),
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
    let current = store.load(&name).map_err(|e| fail(e.to_string()))?;
    if let Some(device) = &current {
        drop_unchanged(&mut flags, device);
    }
    // Every field is parsed and checked before anything is written; the
    // store then applies the row in one transaction: as an edit of the
    // device as it is (never a stale copy written back), or as a new
    // device.
    let now = SystemTime::now();
    let FlagEdit { edit, generated } = edit_from_flags(&flags, now).map_err(|f| fail(f.message))?;
    let result = match current {
        Some(_) if edit.is_empty() => RowResult::Unchanged,
        Some(_) => {
            store
                .modify(&name, &edit, now)
                .map_err(|e| fail(e.to_string()))?;
            RowResult::Updated(generated)
        }
        None => {
            let mut device = Device::new(name.clone(), AuthMode::AuthString);
            edit.apply(&mut device, now)
                .map_err(|e| fail(e.to_string()))?;
            store
                .insert(&device, now)
                .map_err(|e| fail(e.to_string()))?;
            RowResult::Added(generated)
        }
    };
    Ok((name, result))
}

/// A column name as compared: trimmed, lower case, `-` and spaces as `_`.
fn column_key(header: &str) -> String {
    header
        .trim()
        .trim_start_matches('\u{feff}')
        .to_ascii_lowercase()
        .replace(['-', ' '], "_")
}

/// Where each column is, and the read-only report columns found.
fn column_map(headers: &csv::StringRecord) -> Result<([Option<usize>; 9], Vec<String>), Failure> {
    let mut columns = [None; 9];
    let mut ignored = Vec::new();
    for (index, header) in headers.iter().enumerate() {
        let key = column_key(header);
        if READ_ONLY.iter().any(|c| column_key(c) == key) {
            ignored.push(header.trim().to_owned());
            continue;
        }
        let Some(slot) = COLUMNS
            .iter()
            .position(|(c, report)| *c == key || report.is_some_and(|r| column_key(r) == key))
        else {
            let names: Vec<&str> = COLUMNS.iter().map(|(c, _)| *c).collect();
            return Err(Failure::usage(format!(
                "unknown column {header:?}: columns are {}, or those of `capf report`",
                names.join(", ")
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
    Ok((columns, ignored))
}

/// The generated strings as CSV, each cell as the report writes it.
fn strings_csv(generated: &[(DeviceName, String)]) -> String {
    let mut out = String::from("name,auth_string\n");
    for (name, digits) in generated {
        out.push_str(&format!("{name},{}\n", spreadsheet_cell(digits, true)));
    }
    out
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
    let (columns, ignored) = column_map(&headers)?;
    if !ignored.is_empty() {
        eprintln!(
            "note: ignoring the column(s) {}: they show what the phones did, and only phones change them",
            ignored.join(", ")
        );
    }
    // A --strings-out file that would be refused is refused before any
    // string is armed.
    let strings_file = Output::secret(args.force);
    if let Some(path) = &args.strings_out {
        output::check(path, &strings_file)?;
    }
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
    let (mut added, mut updated, mut unchanged, mut failed) = (0usize, 0usize, 0usize, 0usize);
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
            Ok((_, RowResult::Unchanged)) => unchanged += 1,
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
                output::write_file(path, strings_csv(&generated).as_bytes(), &strings_file)
                    .map_err(|f| {
                        Failure::new(format!(
                            "{}; the {} generated string(s) are armed but written nowhere: \
                             generate new ones with `capf device set NAME --generate-string`",
                            f.message,
                            generated.len()
                        ))
                    })?;
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
    if unchanged == 0 {
        println!("{added} added, {updated} updated, {failed} failed");
    } else {
        println!("{added} added, {updated} updated, {failed} failed; {unchanged} unchanged");
    }
    Ok(if failed == 0 {
        Outcome::Done
    } else {
        Outcome::NotDone
    })
}
