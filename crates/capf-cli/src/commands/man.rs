//! `capf man DIR`: roff man pages for `capf` and every subcommand
//! (`capf.1`, `capf-serve.1`, `capf-device-add.1`, ...).

use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory};

use crate::cli::Cli;
use crate::{Failure, Outcome};

/// Arguments of `capf man`.
#[derive(Debug, Args)]
pub(crate) struct ManArgs {
    /// The directory to write the pages into (created if missing; pages
    /// already there are replaced).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
}

pub(crate) fn run(args: ManArgs) -> Result<Outcome, Failure> {
    std::fs::create_dir_all(&args.dir)
        .map_err(|e| Failure::new(format!("cannot create {}: {e}", args.dir.display())))?;
    let mut command = Cli::command().disable_help_subcommand(true);
    // Built, every subcommand knows its full name (capf-device-add).
    command.build();
    let mut written = 0usize;
    write_pages(command, &args.dir, &mut written)?;
    println!("wrote {written} man page(s) in {}", args.dir.display());
    Ok(Outcome::Done)
}

/// The page of `command` and those of its subcommands, depth first.
fn write_pages(command: clap::Command, dir: &Path, written: &mut usize) -> Result<(), Failure> {
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        write_pages(sub.clone(), dir, written)?;
    }
    let page = clap_mangen::Man::new(command);
    let path = page
        .generate_to(dir)
        .map_err(|e| Failure::new(format!("cannot write a man page in {}: {e}", dir.display())))?;
    println!("{}", path.display());
    *written += 1;
    Ok(())
}
