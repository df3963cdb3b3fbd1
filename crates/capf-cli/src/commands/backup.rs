//! `capf backup` and `capf restore` (being written).
use crate::{Failure, Outcome};
use capf_server::DataDir;
use clap::Args;
/// Arguments of `capf backup`.
#[derive(Debug, Args)]
pub(crate) struct BackupArgs {}
/// Arguments of `capf restore`.
#[derive(Debug, Args)]
pub(crate) struct RestoreArgs {}
pub(crate) fn run_backup(_data: &DataDir, _args: BackupArgs) -> Result<Outcome, Failure> {
    Err(Failure::new("capf backup is not available yet"))
}
pub(crate) fn run_restore(_data: &DataDir, _args: RestoreArgs) -> Result<Outcome, Failure> {
    Err(Failure::new("capf restore is not available yet"))
}
