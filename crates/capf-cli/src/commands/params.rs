//! `capf params show|set|reset`: the service parameters. They are
//! stored in the database; `capf serve` reads them when it starts.

use clap::Subcommand;
use serde::Serialize;

use super::device::open;
use crate::data_dir::DataDir;
use crate::output::print_json;
use crate::{Failure, Outcome};

const RESTART: &str = "takes effect when `capf serve` restarts";

/// `capf params` subcommands.
#[derive(Debug, Subcommand)]
#[command(
    after_help = "Examples:\n  capf params show\n  capf params set lsc_validity_years 2\n  capf params reset lsc_validity_years"
)]
pub(crate) enum ParamsCommand {
    /// Show every parameter: value, default and what it does.
    #[command(after_help = "Examples:\n  capf params show\n  capf params show --json")]
    Show {
        /// Print JSON: [{name, value, default, help}].
        #[arg(long)]
        json: bool,
    },
    /// Set a parameter (validated); it takes effect when `capf serve` restarts.
    #[command(after_help = "Examples:\n  \
        capf params set lsc_validity_years 2\n  \
        capf params set default_key p256\n  \
        capf params set auth_failure_limit 3\n\n\
        `capf params show` lists the names, allowed values and defaults.")]
    Set {
        /// Parameter name (see `capf params show`).
        name: String,
        /// New value.
        value: String,
        /// Print JSON: {name, value, previous, default, changed}.
        #[arg(long)]
        json: bool,
    },
    /// Return a parameter to its default; it takes effect when `capf serve` restarts.
    #[command(after_help = "Example:\n  capf params reset lsc_validity_years")]
    Reset {
        /// Parameter name.
        name: String,
        /// Print JSON: {name, value, previous, default, changed}.
        #[arg(long)]
        json: bool,
    },
}

/// A parameter's value in JSON: a number or a boolean when it is one,
/// else its text.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum ValueJson {
    Number(u64),
    Bool(bool),
    Text(String),
}

impl From<String> for ValueJson {
    fn from(text: String) -> Self {
        match (text.as_str(), text.parse::<u64>()) {
            ("true", _) => ValueJson::Bool(true),
            ("false", _) => ValueJson::Bool(false),
            (_, Ok(n)) if !text.starts_with('0') || text == "0" => ValueJson::Number(n),
            _ => ValueJson::Text(text),
        }
    }
}

/// One parameter of `capf params show --json`.
#[derive(Debug, Serialize)]
struct ParamJson {
    name: &'static str,
    value: ValueJson,
    default: ValueJson,
    help: &'static str,
}

/// What `capf params set|reset --json` prints.
#[derive(Debug, Serialize)]
struct ChangedJson {
    name: String,
    value: ValueJson,
    previous: Option<ValueJson>,
    default: Option<ValueJson>,
    changed: bool,
    /// When the change applies.
    note: &'static str,
}

fn default_of(store: &crate::store::Store, name: &str) -> Result<Option<ValueJson>, Failure> {
    Ok(store
        .load_parameters()?
        .describe()
        .into_iter()
        .find(|i| i.name == name)
        .map(|i| i.default.into()))
}

pub(crate) fn run(data: &DataDir, command: ParamsCommand) -> Result<Outcome, Failure> {
    let store = open(data)?;
    match command {
        ParamsCommand::Show { json } => {
            let params = store.load_parameters()?;
            let infos = params.describe();
            if json {
                let list: Vec<ParamJson> = infos
                    .into_iter()
                    .map(|i| ParamJson {
                        name: i.name,
                        value: i.value.into(),
                        default: i.default.into(),
                        help: i.help,
                    })
                    .collect();
                print_json(&list)?;
            } else {
                for i in &infos {
                    let changed = if i.value == i.default {
                        String::new()
                    } else {
                        format!("   (default {})", i.default)
                    };
                    println!("{} = {}{changed}", i.name, i.value);
                    println!("    {}", i.help);
                }
                println!("\nChange with `capf params set NAME VALUE`; a change {RESTART}.");
            }
        }
        ParamsCommand::Set { name, value, json } => {
            let before = store.load_parameters()?.get(&name);
            let params = store.save_parameter(&name, &value)?;
            let now = params.get(&name).unwrap_or(value);
            let changed = before.as_ref() != Some(&now);
            if json {
                print_json(&ChangedJson {
                    default: default_of(&store, &name)?,
                    name,
                    value: now.into(),
                    previous: before.map(Into::into),
                    changed,
                    note: RESTART,
                })?;
            } else {
                match before {
                    Some(before) if changed => {
                        println!("{name} = {now} (was {before}); {RESTART}")
                    }
                    _ => println!("{name} = {now} (unchanged)"),
                }
            }
        }
        ParamsCommand::Reset { name, json } => {
            let before = store.load_parameters()?.get(&name);
            let params = store.reset_parameter(&name)?;
            let now = params.get(&name).unwrap_or_default();
            if json {
                print_json(&ChangedJson {
                    default: default_of(&store, &name)?,
                    changed: before.as_ref() != Some(&now),
                    name,
                    value: now.into(),
                    previous: before.map(Into::into),
                    note: RESTART,
                })?;
            } else {
                println!("{name} = {now} (default); {RESTART}");
            }
        }
    }
    Ok(Outcome::Done)
}
