//! `capf wire` (being written).
use crate::{Failure, Outcome};
use clap::Subcommand;
/// `capf wire` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum WireCommand {
    /// Decode CAPF bytes.
    Decode,
}
pub(crate) fn run(_command: WireCommand) -> Result<Outcome, Failure> {
    Err(Failure::new("capf wire is not available yet"))
}
