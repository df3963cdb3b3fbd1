//! `capf params` (being written).
use crate::{Failure, Outcome};
use capf_server::DataDir;
use clap::Subcommand;
/// `capf params` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum ParamsCommand {
    /// Show the parameters.
    Show,
}
pub(crate) fn run(_data: &DataDir, _command: ParamsCommand) -> Result<Outcome, Failure> {
    Err(Failure::new("capf params is not available yet"))
}
