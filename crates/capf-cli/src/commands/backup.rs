//! `capf backup` and `capf restore`: the whole CAPF (database and CA
//! identity) to and from one file encrypted with a passphrase, so that a
//! lost server is rebuilt on a new host with the same CAPF certificate and
//! every phone's LSC still authenticates.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use capf_ca::{CaCertificate, CapfIdentity, Issuer};
use capf_operations::{DeviceQuery, OperatorStore};
use capf_store::{ExistingTarget, SqliteStore};

use clap::Args;

use super::device::open;
use crate::archive::{self, Contents};
use crate::data_dir::DataDir;
use crate::output::print_json;
use crate::output::{self, Output, Replace};
use crate::passphrase::{self, Purpose};
use crate::{Failure, Outcome, time_text};

/// Arguments of `capf backup`.
#[derive(Debug, Args)]
#[command(
    after_help = "The backup is one file holding the database (devices, issued \
    certificates, audit log, service parameters, operator accounts and API tokens) and the \
    CA identity (CAPF key and \
    certificate, a separate issuer's key and certificate if any, the manufacturer CAs \
    trusted for MICs), encrypted with a passphrase (age, scrypt). It is a consistent \
    snapshot, safe to take while `capf serve` runs. It is created new (an existing file is \
    never replaced), mode 0600.\n\n\
    The passphrase comes from --passphrase-file, else the environment variable \
    CAPF_BACKUP_PASSPHRASE, else it is asked on the terminal. Without it the backup cannot \
    be opened: keep it apart from the backup.\n\n\
    Examples:\n  \
    capf backup /var/backups/capf-$(date +%F).capf-backup\n  \
    capf backup capf.bak --passphrase-file /root/capf-backup.pass\n  \
    capf backup devices-only.bak --no-keys      the database only, no keys"
)]
pub(crate) struct BackupArgs {
    /// The new backup file (must not exist).
    file: PathBuf,
    /// Leave the private keys out: a database-only backup, which cannot
    /// recreate the CAPF on its own.
    #[arg(long)]
    no_keys: bool,
    /// Read the passphrase from the first line of FILE.
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
    /// Print JSON: what the backup holds.
    #[arg(long)]
    json: bool,
}

/// What `capf backup --json` prints.
#[derive(Debug, serde::Serialize)]
struct BackupJson {
    file: String,
    created: String,
    capf_sha256: String,
    /// Devices in the database at the time.
    devices: usize,
    /// Whether the private keys are in it (encrypted).
    keys: bool,
    /// Whether the database is in it (not when the devices are in PostgreSQL).
    database: bool,
}

/// Arguments of `capf restore`.
#[derive(Debug, Args)]
#[command(
    after_help = "Restores into the data directory (--data-dir): a missing or empty \
    one becomes the whole CAPF of the backup (same CAPF certificate, same devices and \
    certificates), so phones keep working. Stop `capf serve` first.\n\n\
    A directory whose CAPF certificate is not the backup's is refused unless --force (the \
    message names both fingerprints; the replaced identity files are kept as \
    NAME.before-restore). A database that holds data is replaced only with --force; the \
    replaced one is kept as capf.sqlite3.before-restore (the latest only, mode 0600).\n\n\
    The restore copies the rows of the known tables into a fresh database; anything else \
    in the backup (triggers, views, other tables) is left behind and named.\n\n\
    Examples:\n  \
    capf --data-dir /srv/capf restore capf.bak          on a new host\n  \
    capf restore capf.bak --force                       replace what is here\n  \
    capf restore capf.bak --identity-only               only the CA identity (a second server)"
)]
pub(crate) struct RestoreArgs {
    /// The backup file.
    file: PathBuf,
    /// Replace a database that holds data, or a different CAPF identity.
    #[arg(long)]
    force: bool,
    /// Take only the CA identity from the backup (keys, certificates, MIC
    /// trust), not the database.
    #[arg(long)]
    identity_only: bool,
    /// Read the passphrase from the first line of FILE.
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
    /// Print JSON: what was restored, and what was kept aside.
    #[arg(long)]
    json: bool,
}

/// What `capf restore --json` prints.
#[derive(Debug, Default, serde::Serialize)]
struct RestoreJson {
    /// `restored` (the backup's identity was written), `unchanged` (it was
    /// already here) or `none` (a backup without keys, and none here).
    identity: &'static str,
    capf_sha256: String,
    /// Files replaced, each kept under a new name.
    kept: Vec<String>,
    /// The database restored (null with --identity-only).
    database: Option<RestoredDatabaseJson>,
    /// What the backup held that is not part of a CAPF database.
    ignored: Vec<String>,
}

#[derive(Debug, serde::Serialize)]
struct RestoredDatabaseJson {
    devices: usize,
    file: String,
    made: String,
    into: String,
}

fn device_count(store: &impl OperatorStore) -> Result<usize, Failure> {
    Ok(store.find(&DeviceQuery::default())?.total)
}

fn read(path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| Failure::new(format!("{}: {e}", path.display())))
}

/// The identity files of the data directory, by their name in the
/// archive's `identity/` folder.
fn identity_files(data: &DataDir, keys: bool) -> Result<Vec<(String, Vec<u8>)>, Failure> {
    let mut files = vec![(
        capf_ca::CERT_FILE.to_owned(),
        read(&data.path(capf_ca::CERT_FILE))?,
    )];
    if keys {
        files.push((
            capf_ca::KEY_FILE.to_owned(),
            read(&data.path(capf_ca::KEY_FILE))?,
        ));
    }
    let optional = [(DataDir::ISSUER_CERT, true), (DataDir::ISSUER_KEY, keys)];
    for (name, wanted) in optional {
        let path = data.path(name);
        if wanted && path.exists() {
            files.push((name.to_owned(), read(&path)?));
        }
    }
    let trust = data.path(DataDir::MIC_TRUST);
    if let Ok(entries) = std::fs::read_dir(&trust) {
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.ends_with(".pem"))
            .collect();
        names.sort();
        for name in names {
            let bytes = read(&trust.join(&name))?;
            files.push((format!("{}/{name}", DataDir::MIC_TRUST), bytes));
        }
    }
    Ok(files)
}

pub(crate) fn run_backup(data: &DataDir, args: BackupArgs) -> Result<Outcome, Failure> {
    let store = open(data)?;
    let identity = data.identity()?;
    let out = Output {
        secret: true,
        replace: Replace::Refuse,
    };
    // Refused paths and a missing passphrase are refused before any work.
    output::check(&args.file, &out)?;
    let passphrase = passphrase::get(args.passphrase_file.as_deref(), Purpose::Seal)?;

    // A consistent snapshot of the database, through a private file of
    // the data directory that is removed at once. A PostgreSQL database
    // is backed up with PostgreSQL's own tools.
    let database = match store.sqlite() {
        Some(sqlite) => {
            let snapshot = data.path(&format!(".backup-{}.sqlite3", std::process::id()));
            let _ = std::fs::remove_file(&snapshot);
            let database = sqlite
                .backup_to(&snapshot)
                .map_err(Failure::new)
                .and_then(|()| read(&snapshot));
            let _ = std::fs::remove_file(&snapshot);
            Some((database?, sqlite.schema_version()?))
        }
        None => None,
    };

    let keys = !args.no_keys;
    let manifest = archive::Manifest {
        format: archive::FORMAT.to_owned(),
        version: archive::VERSION,
        created: time_text::format(SystemTime::now()),
        keys,
        capf_sha256: identity.certificate().fingerprint_sha256_hex(),
        schema_version: database.as_ref().map_or(0, |(_, version)| *version),
        devices: device_count(&store)?,
    };
    let mut files = vec![(
        archive::MANIFEST.to_owned(),
        serde_json::to_vec_pretty(&manifest).map_err(Failure::new)?,
    )];
    let in_postgres = database.is_none();
    if let Some((bytes, _)) = database {
        files.push((archive::DATABASE.to_owned(), bytes));
    }
    for (name, bytes) in identity_files(data, keys)? {
        files.push((format!("{}{name}", archive::IDENTITY), bytes));
    }
    let sealed = archive::seal(&files, passphrase)?;
    output::write_file(&args.file, &sealed, &out)?;
    if args.json {
        print_json(&BackupJson {
            file: args.file.display().to_string(),
            created: manifest.created.clone(),
            capf_sha256: manifest.capf_sha256.clone(),
            devices: manifest.devices,
            keys,
            database: !in_postgres,
        })?;
        return Ok(Outcome::Done);
    }
    if in_postgres {
        println!(
            "backed up the CAPF identity (certificate SHA-256 {}) to {}",
            manifest.capf_sha256,
            args.file.display()
        );
        println!(
            "  IDENTITY ONLY: the {} are in the PostgreSQL database {}; back that up \
             with pg_dump",
            super::device::count_text(manifest.devices),
            store.location()
        );
    } else {
        println!(
            "backed up {} and the CAPF identity (certificate SHA-256 {}) to {}",
            super::device::count_text(manifest.devices),
            manifest.capf_sha256,
            args.file.display()
        );
    }
    if keys {
        println!(
            "  the private keys are in it, encrypted: keep the passphrase apart from the file"
        );
    } else {
        println!(
            "  DATABASE ONLY: no private keys; it cannot recreate the CAPF on its own \
             (a whole backup can: capf backup without --no-keys)"
        );
    }
    Ok(Outcome::Done)
}

/// The CA identity a backup holds, checked: the key matches the
/// certificate, the issuer's key its certificate, every MIC trust file
/// holds certificates.
struct BackupIdentity<'a> {
    certificate: CaCertificate,
    /// `None` in a backup made with `--no-keys`.
    identity: Option<CapfIdentity>,
    files: Vec<(&'a str, &'a [u8])>,
}

fn backup_identity(contents: &Contents) -> Result<BackupIdentity<'_>, Failure> {
    let text = |name: &str| -> Result<Option<&str>, Failure> {
        contents
            .identity_file(name)
            .map(|bytes| {
                std::str::from_utf8(bytes)
                    .map_err(|_| Failure::new(format!("the backup's {name} is not text")))
            })
            .transpose()
    };
    let cert_pem = text(capf_ca::CERT_FILE)?
        .ok_or_else(|| Failure::new("the backup holds no CAPF certificate"))?;
    let certificate = CaCertificate::from_pem(cert_pem, "the backup's CAPF certificate")?;
    let identity = match text(capf_ca::KEY_FILE)? {
        Some(key_pem) => Some(CapfIdentity::from_pem(cert_pem, key_pem)?),
        None => None,
    };
    if let (Some(cert), Some(key)) = (text(DataDir::ISSUER_CERT)?, text(DataDir::ISSUER_KEY)?) {
        Issuer::from_pem(cert, key)?;
    }
    for (name, bytes) in contents.identity_files() {
        if name.starts_with(DataDir::MIC_TRUST) {
            let pem = std::str::from_utf8(bytes)
                .map_err(|_| Failure::new(format!("the backup's {name} is not text")))?;
            CaCertificate::all_from_pem(pem, name)?;
        }
    }
    Ok(BackupIdentity {
        certificate,
        identity,
        files: contents.identity_files().collect(),
    })
}

/// Writes a new file `path` of the data directory (a file it replaces was
/// moved aside first) through a temporary file renamed into place.
fn put(path: &Path, bytes: &[u8], secret: bool) -> Result<(), Failure> {
    output::write_file(
        path,
        bytes,
        &Output {
            secret,
            replace: Replace::Refuse,
        },
    )
}

/// Keeps the current file at `path` as `path.before-restore` (the latest
/// only), if there is one.
fn keep_previous(path: &Path) -> Result<Option<PathBuf>, Failure> {
    if !path.exists() {
        return Ok(None);
    }
    let mut name = path.as_os_str().to_owned();
    name.push(".before-restore");
    let kept = PathBuf::from(name);
    std::fs::rename(path, &kept).map_err(|e| Failure::new(format!("{}: {e}", path.display())))?;
    Ok(Some(kept))
}

fn is_empty_dir(path: &Path) -> bool {
    std::fs::read_dir(path).is_ok_and(|mut entries| entries.next().is_none())
}

pub(crate) fn run_restore(data: &DataDir, args: RestoreArgs) -> Result<Outcome, Failure> {
    // Everything is decrypted, read and checked before anything is written.
    let passphrase = passphrase::get(args.passphrase_file.as_deref(), Purpose::Open)?;
    let contents = archive::open(&read(&args.file)?, passphrase)?;
    let manifest = contents.manifest()?;
    let backup = backup_identity(&contents)?;
    let theirs = backup.certificate.fingerprint_sha256_hex();
    if theirs != manifest.capf_sha256 {
        return Err(Failure::new(
            "the backup's CAPF certificate is not the one its manifest names: the backup is damaged",
        ));
    }
    if data.database().is_some() && !args.identity_only {
        return Err(Failure::usage(
            "with --database the devices are in PostgreSQL: restore them with PostgreSQL's \
             tools (pg_restore), and only the CAPF identity here (--identity-only)",
        ));
    }
    let database = if args.identity_only {
        None
    } else {
        Some(contents.files.get(archive::DATABASE).ok_or_else(|| {
            Failure::new(
                "the backup holds no database (it was made by a server whose devices are \
                 in PostgreSQL): restore its identity with --identity-only",
            )
        })?)
    };

    let root = data.root();
    let fresh = !root.exists() || is_empty_dir(root);
    let ours = if data.is_initialised() {
        Some(data.identity()?.certificate().fingerprint_sha256_hex())
    } else {
        None
    };
    let replace_identity = match &ours {
        Some(ours) if *ours == theirs => false,
        Some(ours) if !args.force => {
            return Err(Failure::new(format!(
                "{} holds another CAPF (certificate SHA-256 {ours}) than the backup \
                 (SHA-256 {theirs}); phones trust the one they enrolled with. \
                 Use --force to replace it (its files are kept as NAME.before-restore).",
                root.display()
            )));
        }
        Some(_) => true,
        None => true,
    };
    if replace_identity && backup.identity.is_none() && args.identity_only {
        return Err(Failure::new(
            "this backup holds no private keys (made with --no-keys): it has no identity to restore",
        ));
    }
    let target = data.path(DataDir::DATABASE);
    if database.is_some() && !args.force && SqliteStore::holds_data(&target)? {
        return Err(Failure::new(format!(
            "{} already holds data. Stop `capf serve`, then run `capf restore {} --force` \
             to replace it (the current database is kept as {}.before-restore).",
            target.display(),
            args.file.display(),
            DataDir::DATABASE
        )));
    }

    if fresh {
        data.create_dir()?;
    }
    let _lock = data.lock_exclusive()?;

    let mut report = RestoreJson {
        identity: "unchanged",
        capf_sha256: theirs.clone(),
        ..RestoreJson::default()
    };
    // The identity.
    if replace_identity {
        match &backup.identity {
            Some(identity) => {
                let mut kept = Vec::new();
                for (name, bytes) in &backup.files {
                    let path = data.path(name);
                    if name.starts_with(DataDir::MIC_TRUST) {
                        data.create_subdir(DataDir::MIC_TRUST)?;
                    }
                    kept.extend(keep_previous(&path)?);
                    put(&path, bytes, name.ends_with("-key.pem"))?;
                }
                identity.write_hashed_copy(root)?;
                report.identity = "restored";
                report.kept = kept.iter().map(|p| p.display().to_string()).collect();
            }
            None if args.json => report.identity = "none",
            None => println!(
                "note: this backup holds no private keys: {} has no CAPF identity. Restore one \
                 from a whole backup (capf restore WHOLE --identity-only), or `capf init` a new \
                 CAPF (phones must then trust its certificate).",
                root.display()
            ),
        }
    }
    if !args.json {
        match report.identity {
            "restored" => {
                println!("restored the CAPF identity: certificate SHA-256 {theirs}");
                for path in &report.kept {
                    println!("  the replaced file is kept as {path}");
                }
            }
            "unchanged" => {
                println!("the CAPF identity here is the backup's (certificate SHA-256 {theirs})")
            }
            _ => {}
        }
    }
    // A shared database must belong to this CAPF (the first server to use
    // it recorded its certificate).
    if data.database().is_some() && data.is_initialised() {
        let store = data.open_database()?;
        if !args.json {
            println!(
                "  {} belongs to this CAPF: this server can serve it",
                store.location()
            );
        }
    }

    // The database.
    if let Some(database) = database {
        let staged = data.path(&format!(".restore-{}.sqlite3", std::process::id()));
        let _ = std::fs::remove_file(&staged);
        put(&staged, database, true)?;
        let previous = if SqliteStore::holds_data(&target)? {
            let copy = data.path(&format!("{}.before-restore", DataDir::DATABASE));
            let temp = data.path(&format!(".before-restore-{}.sqlite3", std::process::id()));
            let _ = std::fs::remove_file(&temp);
            data.open_store()?.backup_to(&temp)?;
            std::fs::rename(&temp, &copy)
                .map_err(|e| Failure::new(format!("{}: {e}", copy.display())))?;
            Some(copy)
        } else {
            None
        };
        let restored = SqliteStore::restore_from(&staged, &target, ExistingTarget::Replace);
        let _ = std::fs::remove_file(&staged);
        let restored = restored?;
        for what in &restored.ignored {
            eprintln!("capf: not restored (not part of a CAPF database): {what}");
        }
        let devices = device_count(&restored.store)?;
        report.ignored = restored.ignored.iter().map(ToString::to_string).collect();
        if let Some(copy) = &previous {
            report.kept.push(copy.display().to_string());
        }
        report.database = Some(RestoredDatabaseJson {
            devices,
            file: args.file.display().to_string(),
            made: manifest.created.clone(),
            into: target.display().to_string(),
        });
        if !args.json {
            println!(
                "restored {} from {} (made {}) into {}",
                super::device::count_text(devices),
                args.file.display(),
                manifest.created,
                target.display()
            );
            if let Some(copy) = previous {
                println!("  the replaced database is kept as {}", copy.display());
            }
        }
    }
    if args.json {
        print_json(&report)?;
    }
    Ok(Outcome::Done)
}
