//! `capf device import`: add or update devices in bulk from CSV. Each row
//! is validated whole before it is written, and written on its own: a bad
//! row never half-applies and never stops the good ones. The rows go to the
//! store [`BATCH`] at a time ([`OperatorStore::apply_all`]): its group
//! commit writes many of them in one transaction, each in its own
//! savepoint, instead of one transaction (and one fsync) per row.
//!
//! It also reads `capf report` files: the report's column names are
//! accepted, its read-only columns ignored, its labels ("Install/Upgrade",
//! "By Authentication String") read as the names `device set` takes, and
//! the apostrophe it puts before some cells removed. A cell equal to what
//! the device already has changes nothing, so an edited report changes
//! only what was edited.

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use capf_auth::{AuthMode, Operation};
use capf_ca::KeySpec;
use capf_operations::{
    Device, DeviceChange, DeviceEdit, DeviceName, OperatorStore, StoreBackend as _,
};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::device::{FlagEdit, RowFields, open, row_edit};
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

/// Rows handed to the store at once (it commits them in transactions of
/// up to 256 changes, its group-commit bound).
const BATCH: usize = 1000;

/// Without a terminal: a progress line on stderr every this many rows...
const PROGRESS_ROWS: usize = 2000;
/// ... or after this long.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Generated strings printed on a standard output that is not a terminal,
/// at most; more need --strings-out.
const STRINGS_ON_PIPE: usize = 5;

/// Arguments of `capf device import`.
#[derive(Debug, Args)]
#[command(
    after_help = "The first row names the columns, in any order: name (required), description, \
    operation, auth_mode, auth_string, generate_string, key, completes_by, security_mode. \
    Values mean what the `capf device set` flags mean (generate_string is a length, 4 to 10). \
    A row adds the device, or updates an existing one; an empty cell leaves that field unchanged, \
    and so does a cell equal to what the device already has (an unchanged string is not \
    re-armed, an unchanged operation not scheduled again: use `capf device set` for that). \
    A bad row is reported (its line in the file, device, why) and not applied; the others are. \
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
    Rows are written in batches (1,000 handed to the store at once, committed up to 256 \
    per transaction, each row in its own savepoint): a failed row is rolled back alone. \
    Measured on a 2-core VM (release build, SQLite): 20,000 new rows in 0.31-0.39 s, \
    51,000-64,500 rows/s (one transaction per row took 3.7-27 s; see BENCHMARKS.md). \
    A device named twice is applied in file order.\n\n\
    --dry-run reads and checks every row against the devices as they are and reports what \
    would be added, updated, left unchanged or refused (a row is checked against what the rows \
    before it would have done); nothing is written, no string is armed.\n\n\
    Progress: a bar on a terminal; otherwise a line on standard error every 2,000 rows or \
    2 seconds (\"import: 4000 of 20000 rows ...\").\n\n\
    Generated strings (generate_string) are written to --strings-out FILE, or else printed \
    on standard output when it is a terminal or when there are at most 5 of them; more than \
    5 rows generating strings with standard output not a terminal is refused before any row \
    is applied (exit 2): give --strings-out. --json prints a summary (counts, failed rows \
    with their line, generated strings unless written to a file) instead of the text.\n\n\
    Example file:\n  \
    name,description,operation,auth_mode,generate_string,key\n  \
    SEP001122334455,Lobby,install,auth-string,8,p256\n  \
    SEP0011223344AA,Desk 12,install,null-string,,\n\n\
    Examples:\n  \
    capf device import phones.csv\n  \
    capf device import phones.csv --dry-run\n  \
    capf device import phones.csv --strings-out strings.csv\n  \
    capf device import phones.csv --strings-out strings.csv --json > summary.json\n  \
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
    /// Check every row and report what would be added, updated or refused;
    /// change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print a summary as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// What a checked row will do.
enum Plan {
    /// Add this device.
    Insert(Box<Device>),
    /// Apply this edit to the device (as it is then).
    Modify(DeviceEdit),
    /// Nothing: every cell is what the device has.
    Unchanged,
}

/// A checked row.
struct Prepared {
    name: DeviceName,
    plan: Plan,
    /// The string the row generated.
    generated: Option<String>,
    /// The device after the row (only worked out for --dry-run).
    after: Option<Device>,
}

/// A refused row: the device name as written (if any) and why.
type RowFailure = (Option<String>, String);

/// The summary of `--json`.
#[derive(Serialize)]
struct Summary {
    dry_run: bool,
    rows: usize,
    added: usize,
    updated: usize,
    unchanged: usize,
    failed: usize,
    errors: Vec<RowError>,
    generated_strings: usize,
    /// Where the generated strings were written.
    #[serde(skip_serializing_if = "Option::is_none")]
    strings_file: Option<String>,
    /// The generated strings, when not written to a file.
    #[serde(skip_serializing_if = "Option::is_none")]
    strings: Option<Vec<GeneratedString>>,
    seconds: f64,
}

/// A row that was refused.
#[derive(Serialize)]
struct RowError {
    line: usize,
    device: Option<String>,
    error: String,
}

/// A generated authentication string.
#[derive(Serialize)]
struct GeneratedString {
    name: String,
    auth_string: String,
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
fn drop_unchanged(flags: &mut RowFields, device: &Device) {
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

/// The device name a row gives, if it is a valid one.
fn row_name(record: &csv::StringRecord, columns: &[Option<usize>; 9]) -> Option<DeviceName> {
    cell(record, columns[0]).and_then(|n| DeviceName::parse(&n).ok())
}

/// Whether a row asks for a generated string.
fn generates(record: &csv::StringRecord, columns: &[Option<usize>; 9]) -> bool {
    cell(record, columns[5]).is_some()
}

/// Validates the whole row against `current` (the device as it is, or
/// `None`) and works out what it will do. Writes nothing.
fn prepare_row(
    columns: &[Option<usize>; 9],
    record: &csv::StringRecord,
    current: impl FnOnce(&DeviceName) -> Result<Option<Device>, String>,
    now: SystemTime,
    dry_run: bool,
) -> Result<Prepared, RowFailure> {
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
    let mut flags = RowFields {
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
    let current = current(&name).map_err(fail)?;
    if let Some(device) = &current {
        drop_unchanged(&mut flags, device);
    }
    // Every field is parsed and checked before anything is written; the
    // store then applies the row in its own savepoint: as an edit of the
    // device as it is (never a stale copy written back), or as a new
    // device.
    let FlagEdit { edit, generated } = row_edit(&flags, now).map_err(|f| fail(f.message))?;
    let (plan, after) = match current {
        Some(device) if edit.is_empty() => (Plan::Unchanged, Some(device)),
        Some(mut device) => {
            let after = if dry_run {
                // What the store would refuse when it applies the edit.
                edit.apply(&mut device, now)
                    .map_err(|e| fail(e.to_string()))?;
                Some(device)
            } else {
                None
            };
            (Plan::Modify(edit), after)
        }
        None => {
            let mut device = Device::new(name.clone(), AuthMode::AuthString);
            edit.apply(&mut device, now)
                .map_err(|e| fail(e.to_string()))?;
            let after = dry_run.then(|| device.clone());
            (Plan::Insert(Box::new(device)), after)
        }
    };
    Ok(Prepared {
        name,
        plan,
        generated,
        after,
    })
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

/// The counts, the refused rows and the generated strings, as the rows
/// are applied.
#[derive(Default)]
struct Tally {
    added: usize,
    updated: usize,
    unchanged: usize,
    failed: usize,
    errors: Vec<RowError>,
    generated: Vec<(DeviceName, String)>,
}

/// The progress of the rows: a bar on a terminal, else a plain line on
/// stderr now and then.
struct Progress {
    bar: Option<ProgressBar>,
    total: usize,
    done: usize,
    /// The rows done at the last plain line, and when it was printed.
    printed: Option<(usize, Instant)>,
    started: Instant,
    what: &'static str,
}

impl Progress {
    fn new(total: usize, dry_run: bool) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total as u64);
            if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} rows {msg}") {
                bar.set_style(style);
            }
            bar
        });
        Progress {
            bar,
            total,
            done: 0,
            printed: None,
            started: Instant::now(),
            what: if dry_run {
                "import (dry run)"
            } else {
                "import"
            },
        }
    }

    /// Says why a row failed, above the bar if there is one.
    fn note(&self, text: String) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }

    fn advance(&mut self, rows: usize, tally: &Tally) {
        self.done += rows;
        if let Some(bar) = &self.bar {
            bar.set_position(self.done as u64);
            return;
        }
        let (rows_then, at) = self.printed.unwrap_or((0, self.started));
        if self.done - rows_then >= PROGRESS_ROWS || at.elapsed() >= PROGRESS_EVERY {
            self.line(tally);
        }
    }

    fn line(&mut self, tally: &Tally) {
        let seconds = self.started.elapsed().as_secs_f64();
        eprintln!(
            "{}: {} of {} rows ({} added, {} updated, {} failed; {:.0} rows/s)",
            self.what,
            self.done,
            self.total,
            tally.added,
            tally.updated,
            tally.failed,
            self.done as f64 / seconds.max(1e-3)
        );
        self.printed = Some((self.done, Instant::now()));
    }

    /// Clears the bar; without one, a last line if lines were printed.
    fn finish(&mut self, tally: &Tally) {
        match &self.bar {
            Some(bar) => bar.finish_and_clear(),
            None => {
                if self.printed.is_some_and(|(rows, _)| rows != self.done) {
                    self.line(tally);
                }
            }
        }
    }
}

impl Tally {
    fn fail(&mut self, progress: &Progress, line: usize, device: Option<String>, why: String) {
        self.failed += 1;
        progress.note(format!(
            "row {line} ({}): {why}",
            device.as_deref().unwrap_or("-")
        ));
        self.errors.push(RowError {
            line,
            device,
            error: why,
        });
    }

    /// A row the store applied.
    fn done(&mut self, name: DeviceName, generated: Option<String>, added: bool) {
        if added {
            self.added += 1;
        } else {
            self.updated += 1;
        }
        self.generated.extend(generated.map(|s| (name, s)));
    }
}

/// Rows checked and waiting for the store, with their lines.
#[derive(Default)]
struct Pending {
    rows: Vec<(usize, Prepared)>,
    names: HashSet<DeviceName>,
}

impl Pending {
    /// Hands the rows to the store (one call: see
    /// [`OperatorStore::apply_all`]) and counts what each did.
    fn flush(&mut self, store: &crate::store::Store, tally: &mut Tally, progress: &mut Progress) {
        self.names.clear();
        let rows = std::mem::take(&mut self.rows);
        if rows.is_empty() {
            return;
        }
        let count = rows.len();
        let mut kept = Vec::with_capacity(count);
        let mut changes = Vec::with_capacity(count);
        for (line, prepared) in rows {
            let Prepared {
                name,
                plan,
                generated,
                ..
            } = prepared;
            let (change, added) = match plan {
                Plan::Insert(device) => (DeviceChange::Insert(device), true),
                Plan::Modify(edit) => (DeviceChange::Modify(name.clone(), edit), false),
                Plan::Unchanged => continue,
            };
            changes.push(change);
            kept.push((line, added, name, generated));
        }
        let answers = store.apply_all(changes, SystemTime::now());
        for ((line, added, name, generated), answer) in kept.into_iter().zip(answers) {
            match answer {
                Ok(_) => tally.done(name, generated, added),
                Err(e) => tally.fail(progress, line, Some(name.to_string()), e.to_string()),
            }
        }
        progress.advance(count, tally);
    }
}

/// The device as it is: from the rows already checked in a dry run, else
/// from the store.
fn current_device(
    store: &crate::store::Store,
    simulated: &HashMap<DeviceName, Device>,
    name: &DeviceName,
) -> Result<Option<Device>, String> {
    if let Some(device) = simulated.get(name) {
        return Ok(Some(device.clone()));
    }
    store.load(name).map_err(|e| e.to_string())
}

/// In a dry run: whether a session holds the device now (an edit that
/// touches the session would be refused).
fn held_now(store: &crate::store::Store, name: &DeviceName, now: SystemTime) -> bool {
    store
        .read(|r| r.lease(name))
        .ok()
        .flatten()
        .is_some_and(|lease| lease.is_held_at(now))
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
    // Each record with the line it starts on (the header is line 1).
    let records: Vec<(usize, Result<csv::StringRecord, csv::Error>)> = reader
        .records()
        .enumerate()
        .map(|(i, r)| {
            let line = match &r {
                Ok(r) => r.position().map(|p| p.line()),
                Err(e) => e.position().map(|p| p.line()),
            };
            let line = line.and_then(|l| usize::try_from(l).ok()).unwrap_or(i + 2);
            (line, r)
        })
        .collect();
    // Strings that would go nowhere safe are refused before any is armed.
    let generating = records
        .iter()
        .filter(|(_, r)| r.as_ref().is_ok_and(|r| generates(r, &columns)))
        .count();
    if !args.dry_run
        && args.strings_out.is_none()
        && generating > STRINGS_ON_PIPE
        && !std::io::stdout().is_terminal()
    {
        return Err(Failure::usage(format!(
            "{generating} rows generate authentication strings, and standard output is not a \
             terminal: give --strings-out FILE (written with mode 0600); at most \
             {STRINGS_ON_PIPE} are printed on a pipe or file. Nothing was changed"
        )));
    }
    let store = open(data)?;

    let mut progress = Progress::new(records.len(), args.dry_run);
    let mut tally = Tally::default();
    let mut pending = Pending::default();
    // --dry-run: the devices as the rows already checked left them.
    let mut simulated: HashMap<DeviceName, Device> = HashMap::new();
    for (line, record) in records {
        let record = match record {
            Err(e) => {
                tally.fail(&progress, line, None, format!("unreadable: {e}"));
                progress.advance(1, &tally);
                continue;
            }
            Ok(r) if r.len() > headers.len() => {
                let device = r.get(columns[0].unwrap_or(0)).map(str::to_owned);
                let why = format!("{} cells for {} columns", r.len(), headers.len());
                tally.fail(&progress, line, device, why);
                progress.advance(1, &tally);
                continue;
            }
            Ok(r) if r.iter().all(|c| c.trim().is_empty()) => {
                progress.advance(1, &tally);
                continue;
            }
            Ok(r) => r,
        };
        // A device named again is checked against what the rows before
        // did: those go to the store first.
        if !args.dry_run
            && (pending.rows.len() >= BATCH
                || row_name(&record, &columns).is_some_and(|n| pending.names.contains(&n)))
        {
            pending.flush(&store, &mut tally, &mut progress);
        }
        let now = SystemTime::now();
        let prepared = prepare_row(
            &columns,
            &record,
            |name| current_device(&store, &simulated, name),
            now,
            args.dry_run,
        );
        let mut prepared = match prepared {
            Ok(p) => p,
            Err((device, why)) => {
                tally.fail(&progress, line, device, why);
                progress.advance(1, &tally);
                continue;
            }
        };
        if args.dry_run {
            let busy = matches!(&prepared.plan, Plan::Modify(edit) if edit.touches_session())
                && held_now(&store, &prepared.name, now);
            match (&prepared.plan, busy) {
                (_, true) => {
                    let why = format!("{} is busy in a session now", prepared.name);
                    tally.fail(&progress, line, Some(prepared.name.to_string()), why);
                }
                (Plan::Unchanged, _) => tally.unchanged += 1,
                (Plan::Insert(_), _) => tally.added += 1,
                (Plan::Modify(_), _) => tally.updated += 1,
            }
            if !busy && let Some(after) = prepared.after.take() {
                simulated.insert(prepared.name, after);
            }
            progress.advance(1, &tally);
            continue;
        }
        if matches!(prepared.plan, Plan::Unchanged) {
            tally.unchanged += 1;
            progress.advance(1, &tally);
            continue;
        }
        pending.names.insert(prepared.name.clone());
        pending.rows.push((line, prepared));
    }
    pending.flush(&store, &mut tally, &mut progress);
    progress.finish(&tally);
    // A row refused by the store is known after those of its batch that
    // were refused before it reached the store.
    tally.errors.sort_by_key(|e| e.line);
    let seconds = progress.started.elapsed().as_secs_f64();

    let mut strings_file_written = None;
    if !tally.generated.is_empty()
        && let Some(path) = &args.strings_out
    {
        output::write_file(
            path,
            strings_csv(&tally.generated).as_bytes(),
            &strings_file,
        )
        .map_err(|f| {
            Failure::new(format!(
                "{}; the {} generated string(s) are armed but written nowhere: \
                     generate new ones with `capf device set NAME --generate-string`",
                f.message,
                tally.generated.len()
            ))
        })?;
        strings_file_written = Some(path.display().to_string());
    }
    let outcome = if tally.failed == 0 {
        Outcome::Done
    } else {
        Outcome::NotDone
    };
    if args.json {
        let summary = Summary {
            dry_run: args.dry_run,
            rows: progress.total,
            added: tally.added,
            updated: tally.updated,
            unchanged: tally.unchanged,
            failed: tally.failed,
            generated_strings: tally.generated.len(),
            strings: strings_file_written.is_none().then(|| {
                tally
                    .generated
                    .iter()
                    .map(|(name, digits)| GeneratedString {
                        name: name.to_string(),
                        auth_string: digits.clone(),
                    })
                    .collect()
            }),
            strings_file: strings_file_written,
            errors: tally.errors,
            seconds,
        };
        let text = serde_json::to_string_pretty(&summary).map_err(Failure::new)?;
        println!("{text}");
        return Ok(outcome);
    }
    match &strings_file_written {
        Some(path) => println!(
            "{} generated authentication string(s) written to {path} (mode 0600)",
            tally.generated.len()
        ),
        None if !tally.generated.is_empty() => {
            println!("generated authentication strings:");
            for (name, digits) in &tally.generated {
                println!("  {name}  {digits}");
            }
        }
        None => {}
    }
    let (added, updated, failed, unchanged) =
        (tally.added, tally.updated, tally.failed, tally.unchanged);
    let would = if args.dry_run {
        "dry run, nothing changed: would be "
    } else {
        ""
    };
    if unchanged == 0 {
        println!("{would}{added} added, {updated} updated, {failed} failed");
    } else {
        println!("{would}{added} added, {updated} updated, {failed} failed; {unchanged} unchanged");
    }
    Ok(outcome)
}
