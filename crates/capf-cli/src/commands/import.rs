//! `capf device import` (being written).
use crate::{Failure, Outcome};
use capf_server::DataDir;
use clap::Args;
/// Arguments of `capf device import`.
#[derive(Debug, Args)]
pub(crate) struct ImportArgs {}
pub(crate) fn run(_data: &DataDir, _args: ImportArgs) -> Result<Outcome, Failure> {
    Err(Failure::new("capf device import is not available yet"))
}
