//! `capf completions SHELL`: a shell completion script on standard output.

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::cli::Cli;
use crate::{Failure, Outcome};

/// Arguments of `capf completions`.
#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell the script is for.
    #[arg(value_enum, value_name = "SHELL")]
    shell: Shell,
}

pub(crate) fn run(args: CompletionsArgs) -> Result<Outcome, Failure> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "capf", &mut script);
    let mut stdout = std::io::stdout().lock();
    std::io::Write::write_all(&mut stdout, &script)?;
    std::io::Write::flush(&mut stdout)?;
    Ok(Outcome::Done)
}
