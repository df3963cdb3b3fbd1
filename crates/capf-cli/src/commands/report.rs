//! `capf report` (being written).
use crate::{Failure, Outcome};
use capf_server::DataDir;
use clap::Args;
/// Arguments of `capf report`.
#[derive(Debug, Args)]
pub(crate) struct ReportArgs {}
pub(crate) fn run(_data: &DataDir, _args: ReportArgs) -> Result<Outcome, Failure> {
    Err(Failure::new("capf report is not available yet"))
}
