//! `capf backup` and `capf restore`: the database (devices, issued
//! certificates, audit log, parameters) to and from one file. The
//! CAPF key and certificate are files of the data directory: back them up
//! with it.

use std::path::PathBuf;
use std::time::SystemTime;

use capf_operations::{DeviceQuery, OperatorStore};
use capf_store::{ExistingTarget, SqliteStore, StoreError};
use clap::Args;

use super::device::open;
use crate::data_dir::DataDir;
use crate::{Failure, Outcome};

/// Arguments of `capf backup`.
#[derive(Debug, Args)]
#[command(
    after_help = "The copy is one consistent snapshot, safe to take while `capf serve` runs. \
    It is written with mode 0600 (it holds authentication strings). It does not hold the \
    CAPF key and certificate: keep a copy of the data directory's capf-key.pem and capf.pem too.\n\n\
    Examples:\n  \
    capf backup /var/backups/capf-$(date +%F).sqlite3\n  \
    capf --data-dir /srv/capf backup capf.bak"
)]
pub(crate) struct BackupArgs {
    /// The new backup file (must not exist, or be empty).
    file: PathBuf,
}

/// Arguments of `capf restore`.
#[derive(Debug, Args)]
#[command(
    after_help = "Stop `capf serve` first: a running server keeps using the old database. \
    A database that already holds devices, certificates, audit entries or parameters is \
    replaced only with --force; its contents are then saved next to it first \
    (capf.sqlite3.before-restore-<time>).\n\n\
    Examples:\n  \
    capf restore capf.bak                  into a fresh data directory (after `capf init`)\n  \
    capf restore capf.bak --force          replace the current database"
)]
pub(crate) struct RestoreArgs {
    /// The backup file.
    file: PathBuf,
    /// Replace a database that holds data.
    #[arg(long)]
    force: bool,
}

fn device_count(store: &SqliteStore) -> Result<usize, Failure> {
    Ok(store.find(&DeviceQuery::default())?.total)
}

pub(crate) fn run_backup(data: &DataDir, args: BackupArgs) -> Result<Outcome, Failure> {
    let store = open(data)?;
    store.backup_to(&args.file)?;
    println!(
        "backed up {} device(s) to {}",
        device_count(&store)?,
        args.file.display()
    );
    Ok(Outcome::Done)
}

pub(crate) fn run_restore(data: &DataDir, args: RestoreArgs) -> Result<Outcome, Failure> {
    if !data.root().is_dir() {
        return Err(Failure::new(format!(
            "{} does not exist: run `capf init` first (the backup holds the database, not the CAPF key)",
            data.root().display()
        )));
    }
    let target = data.path(DataDir::DATABASE);
    let mut saved = None;
    if args.force && target.exists() {
        let secs = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let copy = data.path(&format!("{}.before-restore-{secs}", DataDir::DATABASE));
        data.open_store()?.backup_to(&copy)?;
        saved = Some(copy);
    }
    let existing = if args.force {
        ExistingTarget::Replace
    } else {
        ExistingTarget::Refuse
    };
    let store = match SqliteStore::restore_from(&args.file, &target, existing) {
        Ok(restored) => {
            for what in &restored.ignored {
                eprintln!("capf: not restored: {what}");
            }
            restored.store
        }
        Err(StoreError::RestoreTargetNotEmpty { path }) => {
            return Err(Failure::new(format!(
                "{} already holds data. Stop `capf serve`, then run `capf restore {} --force` \
                 to replace it (the current contents are saved next to it first).",
                path.display(),
                args.file.display()
            )));
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(copy) = saved {
        println!("the previous database was saved to {}", copy.display());
    }
    println!(
        "restored {} device(s) from {} into {}",
        device_count(&store)?,
        args.file.display(),
        target.display()
    );
    if !data.is_initialised() {
        println!(
            "note: {} has no CAPF key and certificate: restore capf-key.pem and capf.pem too, \
             or phones that trust the old certificate will refuse this server",
            data.root().display()
        );
    }
    Ok(Outcome::Done)
}
