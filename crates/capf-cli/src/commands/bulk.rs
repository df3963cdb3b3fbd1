//! `capf device set --where ...`: one change applied to every device a
//! search finds. The search is `capf find`'s own (its flags, written
//! `FLAG=VALUE`), so `--dry-run` lists exactly the devices `find` lists.
//! Each device is changed by the same edit rules as `device set NAME`: a
//! device whose phone is in a session is refused (and reported), the others
//! are changed.

use std::io::{BufRead, IsTerminal, Write};
use std::time::SystemTime;

use capf_operations::{DeviceChange, DeviceName, OperationsError, OperatorStore};
use clap::{Args, Parser};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::device::{EditArgs, FlagEdit, count_text, open};
use super::find::Criteria;
use crate::data_dir::DataDir;
use crate::output::print_json;
use crate::{Failure, Outcome};

/// The flags of a change by query.
#[derive(Debug, Args, Default)]
pub(crate) struct BulkArgs {
    /// Change every device this search finds instead of one by name: a
    /// criterion of `capf find` as FLAG=VALUE (name=SEP0011,
    /// lsc-status=not-installed, status=failed, match=begins-with...);
    /// repeat it: every criterion must hold.
    #[arg(long = "where", id = "criteria", value_name = "FLAG=VALUE")]
    pub(crate) criteria: Vec<String>,
    /// With --where: list the devices that would change, change nothing.
    #[arg(long, requires = "criteria")]
    pub(crate) dry_run: bool,
    /// With --where: do not ask for confirmation (needed without a terminal).
    #[arg(long, requires = "criteria")]
    pub(crate) yes: bool,
}

/// `capf find`'s criteria, parsed by clap from `--where` pairs.
#[derive(Debug, Parser)]
#[command(name = "--where", no_binary_name = true, disable_help_flag = true)]
struct WhereParser {
    #[command(flatten)]
    criteria: Criteria,
}

/// The `find` criteria that `--where` pairs describe.
fn criteria(pairs: &[String]) -> Result<Criteria, Failure> {
    let mut args = Vec::with_capacity(pairs.len() * 2);
    for pair in pairs {
        let (flag, value) = pair.split_once('=').ok_or_else(|| {
            Failure::usage(format!(
                "--where {pair:?}: write a criterion as FLAG=VALUE, e.g. lsc-status=not-installed"
            ))
        })?;
        let flag = flag.trim().trim_start_matches("--");
        if matches!(flag, "sort" | "desc" | "help") {
            return Err(Failure::usage(format!(
                "--where {pair:?}: {flag} orders a listing; it selects nothing"
            )));
        }
        args.push(format!("--{flag}"));
        args.push(value.to_owned());
    }
    WhereParser::try_parse_from(args)
        .map(|p| p.criteria)
        .map_err(|e| {
            let text = e.to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ");
            Failure::usage(format!(
                "--where: {first} (the criteria are those of `capf find --help`)"
            ))
        })
}

/// What `--json` prints.
#[derive(Debug, Serialize)]
struct BulkJson {
    /// `dry-run` or `changed`.
    result: &'static str,
    /// How many devices the search found.
    matched: usize,
    /// The devices changed (for a dry run: that would change).
    changed: Vec<String>,
    /// The devices that were refused, with why.
    refused: Vec<RefusedJson>,
}

#[derive(Debug, Serialize)]
struct RefusedJson {
    name: String,
    why: String,
}

pub(crate) fn run(
    data: &DataDir,
    flags: &EditArgs,
    bulk: &BulkArgs,
    json: bool,
) -> Result<Outcome, Failure> {
    if flags.auth_string.is_some() || flags.generate_string {
        return Err(Failure::usage(
            "--where cannot arm strings: one string for many phones is a shared secret. \
             Use `capf device import` with a generate_string column (each device its own \
             string), or set each device by name",
        ));
    }
    let query = criteria(&bulk.criteria)?.query()?;
    let now = SystemTime::now();
    let FlagEdit { edit, .. } = flags.edit(now)?;
    if edit.is_empty() {
        return Err(Failure::usage(
            "nothing to change: give the fields to set (--operation, --auth-mode, ...)",
        ));
    }
    let store = open(data)?;
    let names: Vec<DeviceName> = store
        .find(&query)?
        .devices
        .into_iter()
        .map(|d| d.name)
        .collect();
    if bulk.dry_run {
        if json {
            print_json(&BulkJson {
                result: "dry-run",
                matched: names.len(),
                changed: names.iter().map(ToString::to_string).collect(),
                refused: Vec::new(),
            })?;
        } else {
            for name in &names {
                println!("{name}");
            }
            println!(
                "{} would change (dry run: nothing changed)",
                count_text(names.len())
            );
        }
        return Ok(Outcome::Done);
    }
    if names.is_empty() {
        if json {
            print_json(&BulkJson {
                result: "changed",
                matched: 0,
                changed: Vec::new(),
                refused: Vec::new(),
            })?;
        } else {
            println!("no device matches: nothing changed");
        }
        return Ok(Outcome::Done);
    }
    if !bulk.yes && !confirm(names.len())? {
        eprintln!("nothing changed");
        return Ok(Outcome::NotDone);
    }

    let progress = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(names.len() as u64);
        if let Ok(style) =
            ProgressStyle::with_template("{bar:40} {pos}/{len} devices changed ({eta} left)")
        {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut changed = Vec::new();
    let mut refused = Vec::new();
    // A thousand devices at a time go to the store together (it commits
    // them in few transactions, each change in its own savepoint); each is
    // edited as it is when its turn comes, under the rules of
    // `device set NAME`, and one that is refused leaves the others be.
    for chunk in names.chunks(1000) {
        let changes = chunk
            .iter()
            .map(|name| DeviceChange::Modify(name.clone(), edit.clone()))
            .collect();
        let answers = store.apply_all(changes, SystemTime::now());
        for (name, answer) in chunk.iter().zip(answers) {
            match answer {
                Ok(_) => changed.push(name.to_string()),
                Err(OperationsError::UnknownDevice { .. }) => refused.push(RefusedJson {
                    name: name.to_string(),
                    why: "removed since the search".into(),
                }),
                Err(e) => refused.push(RefusedJson {
                    name: name.to_string(),
                    why: e.to_string(),
                }),
            }
        }
        progress.inc(chunk.len() as u64);
    }
    progress.finish_and_clear();
    let all_done = refused.is_empty();
    if json {
        print_json(&BulkJson {
            result: "changed",
            matched: names.len(),
            changed,
            refused,
        })?;
    } else {
        println!("{} changed", count_text(changed.len()));
        for r in &refused {
            println!("refused {}: {}", r.name, r.why);
        }
        if !all_done {
            println!(
                "{} refused: run the same command again to retry them",
                count_text(refused.len())
            );
        }
    }
    Ok(if all_done {
        Outcome::Done
    } else {
        Outcome::NotDone
    })
}

/// Asks on the terminal; without one, --yes is needed.
fn confirm(count: usize) -> Result<bool, Failure> {
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Err(Failure::usage(format!(
            "this changes {}: add --yes to confirm without a terminal (or --dry-run to list them)",
            count_text(count)
        )));
    }
    eprint!("change {}? [y/N] ", count_text(count));
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::new(format!("reading the answer: {e}")))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}
