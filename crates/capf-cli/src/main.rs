//! `capf`: the CAPF server, device administration, a phone simulator and a
//! wire decoder. `capf --help` lists the commands; each has `--help` with
//! examples.

mod archive;
mod cli;
mod commands;
mod data_dir;
mod device_view;
mod failure;
mod output;
mod passphrase;
mod store;
mod values;
use capf_operations::time_text;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use crate::cli::Cli;
pub(crate) use crate::failure::{Failure, Outcome};

fn main() -> ExitCode {
    quiet_broken_pipe();
    // What clap parsed is kept: `capf serve` asks it where each value came
    // from (flag, environment or default) to give capf.toml its place.
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.format(&mut Cli::command()).exit(),
    };
    match commands::run(cli, &matches) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::NotDone) => ExitCode::from(1),
        Err(failure) => {
            eprintln!("capf: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

/// `capf find | head` closes the pipe early; `println!` then panics. Leave
/// quietly instead, with the status a process killed by SIGPIPE has.
fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}
