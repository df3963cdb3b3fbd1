//! `capf ca` (being written).
use crate::{Failure, Outcome};
use capf_server::DataDir;
use clap::Subcommand;
/// `capf ca` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum CaCommand {
    /// Show the CAPF certificate.
    Show,
}
pub(crate) fn run(_data: &DataDir, _command: CaCommand) -> Result<Outcome, Failure> {
    Err(Failure::new("capf ca is not available yet"))
}
