//! `capf params show|set|reset`: the service parameters. They are
//! stored in the database; `capf serve` reads them when it starts.

use clap::Subcommand;
use serde_json::json;

use super::device::open;
use crate::data_dir::DataDir;
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
    },
    /// Return a parameter to its default; it takes effect when `capf serve` restarts.
    #[command(after_help = "Example:\n  capf params reset lsc_validity_years")]
    Reset {
        /// Parameter name.
        name: String,
    },
}

pub(crate) fn run(data: &DataDir, command: ParamsCommand) -> Result<Outcome, Failure> {
    let store = open(data)?;
    match command {
        ParamsCommand::Show { json } => {
            let params = store.load_parameters()?;
            let infos = params.describe();
            if json {
                let list: Vec<_> = infos
                    .iter()
                    .map(|i| {
                        json!({
                            "name": i.name,
                            "value": i.value,
                            "default": i.default,
                            "help": i.help,
                        })
                    })
                    .collect();
                println!("{:#}", serde_json::Value::Array(list));
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
        ParamsCommand::Set { name, value } => {
            let before = store.load_parameters()?.get(&name);
            let params = store.save_parameter(&name, &value)?;
            let now = params.get(&name).unwrap_or(value);
            match before {
                Some(before) if before != now => {
                    println!("{name} = {now} (was {before}); {RESTART}")
                }
                _ => println!("{name} = {now} (unchanged)"),
            }
        }
        ParamsCommand::Reset { name } => {
            let params = store.reset_parameter(&name)?;
            let now = params.get(&name).unwrap_or_default();
            println!("{name} = {now} (default); {RESTART}");
        }
    }
    Ok(Outcome::Done)
}
