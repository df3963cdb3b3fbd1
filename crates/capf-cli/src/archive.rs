//! The backup file: a tar archive encrypted with a passphrase by age
//! (scrypt), holding a manifest, the database and the CA identity.
//!
//! ```text
//! manifest.json                 format, version, date, whether keys are in, CAPF fingerprint
//! database.sqlite3              a consistent copy of the database
//! identity/capf.pem             the CAPF certificate
//! identity/capf-key.pem         its key                       (not with --no-keys)
//! identity/issuer.pem           a separate issuing CA, if any
//! identity/issuer-key.pem       its key                       (not with --no-keys)
//! identity/mic-trust/NAME.pem   the manufacturer CAs trusted for MICs
//! ```
//!
//! Nothing is ever written in clear outside the data directory: the
//! archive is built in memory and encrypted before it reaches a file, and
//! decrypted and checked whole before anything of it is written.

use std::collections::BTreeMap;
use std::io::{Cursor, Read};

use age::secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::Failure;

/// What the archive says about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Manifest {
    /// Always `capf-backup`.
    pub(crate) format: String,
    /// The archive layout's version (this code writes 1).
    pub(crate) version: u32,
    /// When the backup was made (RFC 3339, UTC).
    pub(crate) created: String,
    /// Whether the private keys are in it.
    pub(crate) keys: bool,
    /// SHA-256 of the CAPF certificate, lower-case hex.
    pub(crate) capf_sha256: String,
    /// The database's schema version.
    pub(crate) schema_version: u32,
    /// How many devices the database holds.
    pub(crate) devices: usize,
}

pub(crate) const FORMAT: &str = "capf-backup";
pub(crate) const VERSION: u32 = 1;
pub(crate) const MANIFEST: &str = "manifest.json";
pub(crate) const DATABASE: &str = "database.sqlite3";
/// Identity files live under this folder of the archive.
pub(crate) const IDENTITY: &str = "identity/";

/// The most an archive may unpack to: a backup far larger than any
/// database of phones is refused rather than exhaust memory.
const MAX_UNPACKED: u64 = 4 << 30;

/// The files of an archive, by their path in it.
#[derive(Debug, Default)]
pub(crate) struct Contents {
    pub(crate) files: BTreeMap<String, Vec<u8>>,
}

impl Contents {
    /// The manifest, checked.
    pub(crate) fn manifest(&self) -> Result<Manifest, Failure> {
        let bytes = self
            .files
            .get(MANIFEST)
            .ok_or_else(|| Failure::new("not a capf backup: it has no manifest"))?;
        let manifest: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| Failure::new(format!("not a capf backup: its manifest: {e}")))?;
        if manifest.format != FORMAT {
            return Err(Failure::new(format!(
                "not a capf backup (format {:?})",
                manifest.format
            )));
        }
        if manifest.version > VERSION {
            return Err(Failure::new(format!(
                "this backup was written by a newer capf (layout version {}): upgrade capf to restore it",
                manifest.version
            )));
        }
        Ok(manifest)
    }

    /// An identity file (`capf.pem`, `mic-trust/x.pem`...), if present.
    pub(crate) fn identity_file(&self, name: &str) -> Option<&[u8]> {
        self.files
            .get(&format!("{IDENTITY}{name}"))
            .map(Vec::as_slice)
    }

    /// Every identity file, by its path below `identity/`.
    pub(crate) fn identity_files(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.files
            .iter()
            .filter_map(|(path, bytes)| Some((path.strip_prefix(IDENTITY)?, bytes.as_slice())))
    }
}

/// Packs `files` (path in the archive, contents) and encrypts them.
pub(crate) fn seal(
    files: &[(String, Vec<u8>)],
    passphrase: SecretString,
) -> Result<Vec<u8>, Failure> {
    let failed = |e: std::io::Error| Failure::new(format!("writing the backup: {e}"));
    let mut builder = tar::Builder::new(Vec::new());
    for (path, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o600);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, path, bytes.as_slice())
            .map_err(failed)?;
    }
    let plain = builder.into_inner().map_err(failed)?;
    let mut sealed = Vec::with_capacity(plain.len() + 1024);
    let encryptor = age::Encryptor::with_user_passphrase(passphrase);
    let mut writer = encryptor.wrap_output(&mut sealed).map_err(failed)?;
    std::io::Write::write_all(&mut writer, &plain).map_err(failed)?;
    writer.finish().map_err(failed)?;
    Ok(sealed)
}

/// Decrypts and unpacks a backup, whole, before anything is written: a
/// wrong passphrase, a damaged or truncated file fails here.
pub(crate) fn open(sealed: &[u8], passphrase: SecretString) -> Result<Contents, Failure> {
    let not_ours = |why: String| {
        Failure::new(format!(
            "cannot open the backup: {why} (wrong passphrase, or not a capf backup)"
        ))
    };
    let decryptor = age::Decryptor::new(sealed).map_err(|e| not_ours(e.to_string()))?;
    if !decryptor.is_scrypt() {
        return Err(not_ours("it is not encrypted with a passphrase".into()));
    }
    let identity = age::scrypt::Identity::new(passphrase);
    let mut reader = decryptor
        .decrypt(std::iter::once(&identity as &dyn age::Identity))
        .map_err(|e| not_ours(e.to_string()))?;
    let mut plain = Vec::new();
    reader
        .by_ref()
        .take(MAX_UNPACKED)
        .read_to_end(&mut plain)
        .map_err(|e| not_ours(e.to_string()))?;
    let mut archive = tar::Archive::new(Cursor::new(plain));
    let mut contents = Contents::default();
    let entries = archive.entries().map_err(|e| not_ours(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| not_ours(e.to_string()))?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = entry
            .path()
            .map_err(|e| not_ours(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        if !safe_path(&path) {
            return Err(not_ours(format!("it names a file {path:?}")));
        }
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| not_ours(e.to_string()))?;
        contents.files.insert(path, bytes);
    }
    Ok(contents)
}

/// A path the archive may hold: the manifest, the database, or a file
/// directly in `identity/` or `identity/mic-trust/`, with a plain name.
fn safe_path(path: &str) -> bool {
    let plain = |name: &str| {
        !name.is_empty()
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    };
    match path {
        MANIFEST | DATABASE => true,
        _ => match path.strip_prefix(IDENTITY) {
            Some(rest) => match rest.strip_prefix("mic-trust/") {
                Some(name) => plain(name),
                None => plain(rest),
            },
            None => false,
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn paths_are_plain_names_in_known_places() {
        for ok in [
            "manifest.json",
            "database.sqlite3",
            "identity/capf-key.pem",
            "identity/mic-trust/cisco_mfg.pem",
        ] {
            assert!(safe_path(ok), "{ok}");
        }
        for bad in [
            "../capf-key.pem",
            "identity/../../x",
            "identity/mic-trust/../capf-key.pem",
            "/etc/passwd",
            "identity/.hidden",
            "identity/a/b.pem",
            "other.txt",
        ] {
            assert!(!safe_path(bad), "{bad}");
        }
    }

    #[test]
    fn sealed_contents_open_only_with_the_passphrase() {
        // Long enough that random ciphertext never holds it by chance (a
        // three-byte marker did, once in CI).
        let secret: &[u8] = b"-----BEGIN PRIVATE KEY----- the CAPF key itself";
        let files = vec![
            (MANIFEST.to_owned(), b"{}".to_vec()),
            ("identity/capf.pem".to_owned(), secret.to_vec()),
        ];
        let sealed = seal(&files, SecretString::from("correct horse".to_owned())).unwrap();
        assert!(
            !sealed.windows(secret.len()).any(|w| w == secret),
            "encrypted"
        );
        let contents = open(&sealed, SecretString::from("correct horse".to_owned())).unwrap();
        assert_eq!(contents.identity_file("capf.pem"), Some(secret));
        let wrong = open(&sealed, SecretString::from("wrong".to_owned())).unwrap_err();
        assert!(
            wrong.message.contains("wrong passphrase"),
            "{}",
            wrong.message
        );
    }
}
