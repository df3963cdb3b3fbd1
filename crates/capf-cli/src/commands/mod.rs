//! One module per command.

pub(crate) mod admin;
pub(crate) mod audit;
pub(crate) mod backup;
pub(crate) mod bulk;
pub(crate) mod ca;
pub(crate) mod completions;
pub(crate) mod config;
pub(crate) mod device;
pub(crate) mod find;
pub(crate) mod import;
pub(crate) mod init;
pub(crate) mod loadgen;
pub(crate) mod man;
pub(crate) mod params;
pub(crate) mod phone;
pub(crate) mod report;
pub(crate) mod serve;
pub(crate) mod trust_list;
pub(crate) mod wire;

use crate::cli::{Cli, Command};
use crate::data_dir::DataDir;
use crate::{Failure, Outcome};

/// Runs the parsed command; `matches` (what clap parsed) tells where each
/// of `capf serve`'s values came from.
pub(crate) fn run(cli: Cli, matches: &clap::ArgMatches) -> Result<Outcome, Failure> {
    let database = cli.database.map(|url| crate::store::DatabaseAddress {
        url,
        ca_file: cli.database_ca,
    });
    let data = DataDir::new(&cli.data_dir).with_database(database);
    match cli.command {
        Command::Init(args) => init::run(&data, args),
        Command::Serve(args) => {
            let serve_matches = matches
                .subcommand_matches("serve")
                .ok_or_else(|| Failure::new("internal error: no command line for capf serve"))?;
            serve::run(&data, args, serve_matches)
        }
        Command::Device(command) => device::run(&data, command),
        Command::Find(args) => find::run(&data, args),
        Command::Audit(args) => audit::run(&data, args),
        Command::Report(args) => report::run(&data, args),
        Command::Params(command) => params::run(&data, command),
        Command::Ca(command) => ca::run(&data, command),
        Command::Backup(args) => backup::run_backup(&data, args),
        Command::Restore(args) => backup::run_restore(&data, args),
        Command::Phone(command) => phone::run(command),
        Command::Wire(command) => wire::run(command),
        Command::Loadgen(args) => loadgen::run(&data, args),
        Command::TrustList(command) => trust_list::run(&data, command),
        Command::Config(command) => config::run(&data, command),
        Command::Admin(command) => admin::run(&data, command),
        Command::Completions(args) => completions::run(args),
        Command::Man(args) => man::run(args),
    }
}
