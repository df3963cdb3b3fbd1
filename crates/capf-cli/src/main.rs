//! `capf`: the CAPF server, device administration, a phone simulator and a
//! wire decoder. `capf --help` lists the commands; each has `--help` with
//! examples.

mod cli;
mod commands;
mod device_view;
mod failure;
mod time_text;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;
pub(crate) use crate::failure::{Failure, Outcome};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match commands::run(cli) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::NotDone) => ExitCode::from(1),
        Err(failure) => {
            eprintln!("capf: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}
