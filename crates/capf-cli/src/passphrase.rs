//! The passphrase of a backup: from `--passphrase-file`, else the
//! environment variable `CAPF_BACKUP_PASSPHRASE`, else asked on the
//! terminal (twice when making a backup). Never echoed, never logged.

use std::io::IsTerminal;
use std::path::Path;

use age::secrecy::SecretString;

use crate::Failure;

/// The environment variable that may hold the passphrase.
pub(crate) const ENV: &str = "CAPF_BACKUP_PASSPHRASE";

/// Shortest passphrase accepted for a new backup.
const MIN_LEN: usize = 8;

/// Whether the passphrase protects a new backup (checked for length,
/// asked twice) or opens an existing one.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    Seal,
    Open,
}

/// The passphrase, from the first source that has one.
pub(crate) fn get(file: Option<&Path>, purpose: Purpose) -> Result<SecretString, Failure> {
    let text = if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Failure::new(format!("{}: {e}", path.display())))?;
        // The first line, without its line end.
        text.lines().next().unwrap_or_default().to_owned()
    } else if let Ok(text) = std::env::var(ENV) {
        text
    } else if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        let first = rpassword::prompt_password("backup passphrase: ")
            .map_err(|e| Failure::new(format!("reading the passphrase: {e}")))?;
        if purpose == Purpose::Seal {
            let again = rpassword::prompt_password("the same passphrase again: ")
                .map_err(|e| Failure::new(format!("reading the passphrase: {e}")))?;
            if again != first {
                return Err(Failure::usage("the two passphrases differ"));
            }
        }
        first
    } else {
        return Err(Failure::usage(format!(
            "a backup needs a passphrase: give --passphrase-file FILE or set {ENV} \
             (or run on a terminal to be asked)"
        )));
    };
    if text.is_empty() {
        return Err(Failure::usage("the passphrase is empty"));
    }
    if purpose == Purpose::Seal && text.chars().count() < MIN_LEN {
        return Err(Failure::usage(format!(
            "the passphrase is too short: use at least {MIN_LEN} characters"
        )));
    }
    Ok(SecretString::from(text))
}
