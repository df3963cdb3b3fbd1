//! `capf phone` (being written).
use crate::{Failure, Outcome};
use clap::Subcommand;
/// `capf phone` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum PhoneCommand {
    /// Do whatever the server scheduled.
    Run,
}
pub(crate) fn run(_command: PhoneCommand) -> Result<Outcome, Failure> {
    Err(Failure::new("capf phone is not available yet"))
}
