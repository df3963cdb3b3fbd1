//! `capf find` (being written).
use crate::{Failure, Outcome};
use capf_server::DataDir;
use clap::Args;
/// Arguments of `capf find`.
#[derive(Debug, Args)]
pub(crate) struct FindArgs {}
pub(crate) fn run(_data: &DataDir, _args: FindArgs) -> Result<Outcome, Failure> {
    Err(Failure::new("capf find is not available yet"))
}
