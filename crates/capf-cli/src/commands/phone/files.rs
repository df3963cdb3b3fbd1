//! The phone's files: trusted CAPF certificates, certificate + key PEM
//! files (LSC, MIC, SUDI, and the LSC store), and the persistent state.

use std::fs;
use std::path::{Path, PathBuf};

use capf_ca::{CaCertificate, PrivateKey};
use capf_operations::phone::PersistentState;

use crate::Failure;
use crate::output::{self, Output, Replace};

/// The phone's LSC store (`--cert-out`): its own certificate and private
/// key, rewritten by design (never through a symbolic link, never over a
/// file holding a key and no certificate), mode 0600.
const LSC_STORE: Output = Output {
    secret: true,
    replace: Replace::Always,
};

/// The phone's state file (`--state`): rewritten by design, mode 0600 like
/// the rest of the phone's flash.
const STATE: Output = Output {
    secret: true,
    replace: Replace::Always,
};

/// A certificate and its private key, as `--cert-out` writes them.
pub(super) struct KeyedCertificate {
    pub(super) certificate: CaCertificate,
    pub(super) key: PrivateKey,
}

fn read(path: &Path, what: &str) -> Result<String, Failure> {
    fs::read_to_string(path)
        .map_err(|e| Failure::new(format!("cannot read {what} {}: {e}", path.display())))
}

/// The CAPF certificates in a PEM file, or in every `*.pem` and `<hash>.N`
/// file of a directory.
pub(super) fn load_capf_certificates(path: &Path) -> Result<Vec<CaCertificate>, Failure> {
    let what = "--capf-cert";
    if !path.is_dir() {
        let text = read(path, what)?;
        return CaCertificate::all_from_pem(&text, &path.display().to_string())
            .map_err(|e| Failure::new(format!("{what} {}: {e}", path.display())));
    }
    let entries = fs::read_dir(path)
        .map_err(|e| Failure::new(format!("cannot list {what} {}: {e}", path.display())))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_certificate_file_name(p))
        .collect();
    files.sort();
    let mut certificates: Vec<CaCertificate> = Vec::new();
    for file in &files {
        let text = read(file, what)?;
        if !text.contains("-----BEGIN CERTIFICATE-----") {
            continue; // e.g. a key file next to the certificates
        }
        let found = CaCertificate::all_from_pem(&text, &file.display().to_string())
            .map_err(|e| Failure::new(format!("{what} {}: {e}", file.display())))?;
        for cert in found {
            // capf.pem and its <hash>.0 copy hold the same certificate.
            if !certificates.contains(&cert) {
                certificates.push(cert);
            }
        }
    }
    if certificates.is_empty() {
        return Err(Failure::new(format!(
            "{what} {}: no certificates in the directory's *.pem and <hash>.0 files",
            path.display()
        )));
    }
    Ok(certificates)
}

/// `*.pem`, or a hashed name's `.0` to `.9` suffix.
fn is_certificate_file_name(path: &Path) -> bool {
    match path.extension().and_then(|e| e.to_str()) {
        Some("pem") => true,
        Some(ext) => ext.len() == 1 && ext.bytes().all(|b| b.is_ascii_digit()),
        None => false,
    }
}

/// The PEM blocks of `text` as (label, block text), in order.
fn pem_blocks(text: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            current = Some((label.to_owned(), format!("{line}\n")));
        } else if let Some((label, mut block)) = current.take() {
            block.push_str(line);
            block.push('\n');
            if line.starts_with("-----END ") {
                blocks.push((label, block));
            } else {
                current = Some((label, block));
            }
        }
    }
    blocks
}

/// Reads a PEM file holding a certificate and its PKCS#8 private key (in
/// any order); `what` names the flag in errors.
pub(super) fn load_keyed_certificate(path: &Path, what: &str) -> Result<KeyedCertificate, Failure> {
    let text = read(path, what)?;
    parse_keyed_certificate(&text)
        .map_err(|e| Failure::new(format!("{what} {}: {e}", path.display())))
}

fn parse_keyed_certificate(text: &str) -> Result<KeyedCertificate, String> {
    let mut certificate = None;
    let mut key = None;
    for (label, block) in pem_blocks(text) {
        match label.as_str() {
            "CERTIFICATE" if certificate.is_none() => {
                certificate = Some(
                    CaCertificate::from_pem(&block, "certificate").map_err(|e| e.to_string())?,
                );
            }
            "PRIVATE KEY" if key.is_none() => {
                key = Some(PrivateKey::from_pkcs8_pem(&block).map_err(|e| e.to_string())?);
            }
            "RSA PRIVATE KEY" | "EC PRIVATE KEY" => {
                return Err(format!(
                    "the key is {label}; convert it to PKCS#8 (openssl pkcs8 -topk8 -nocrypt)"
                ));
            }
            _ => {}
        }
    }
    match (certificate, key) {
        (Some(certificate), Some(key)) => {
            let matches = certificate
                .spki_der()
                .ok()
                .zip(key.public_key_der().ok())
                .is_some_and(|(a, b)| a == b);
            if !matches {
                return Err("the private key does not belong to the certificate".into());
            }
            Ok(KeyedCertificate { certificate, key })
        }
        (None, _) => Err("no CERTIFICATE block".into()),
        (Some(_), None) => Err("no PKCS#8 PRIVATE KEY block".into()),
    }
}

/// The phone's current LSC from its LSC store, if the file exists. A path
/// the new LSC could not be written to is refused now, before the session.
pub(super) fn read_lsc_store(path: &Path) -> Result<Option<KeyedCertificate>, Failure> {
    output::check(path, &LSC_STORE)
        .map_err(|f| Failure::new(format!("--cert-out: {}", f.message)))?;
    if !path.exists() {
        return Ok(None);
    }
    let text = read(path, "--cert-out")?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    parse_keyed_certificate(&text)
        .map(Some)
        .map_err(|e| Failure::new(format!("--cert-out {}: {e}", path.display())))
}

/// Stores a new LSC: certificate PEM then PKCS#8 key PEM, mode 0600.
pub(super) fn write_lsc_store(
    path: &Path,
    certificate_der: &[u8],
    key: &PrivateKey,
) -> Result<(), String> {
    let certificate =
        CaCertificate::from_der(certificate_der, "the new LSC").map_err(|e| e.to_string())?;
    let key_pem = key.to_pkcs8_pem().map_err(|e| e.to_string())?;
    let mut contents = certificate.pem();
    if !contents.ends_with('\n') {
        contents.push('\n');
    }
    contents.push_str(&key_pem);
    output::write_file(path, contents.as_bytes(), &LSC_STORE).map_err(|f| f.message)
}

/// Deletes the LSC store; whether there was an LSC in it.
pub(super) fn delete_lsc_store(path: &Path) -> Result<bool, String> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(format!("cannot remove {}: {e}", path.display())),
    }
}

/// The state file's contents; `None` when it does not exist yet. A path
/// the state could not be written to is refused now, before the session.
pub(super) fn read_state(path: &Path) -> Result<Option<PersistentState>, Failure> {
    output::check(path, &STATE).map_err(|f| Failure::new(format!("--state: {}", f.message)))?;
    if !path.exists() {
        return Ok(None);
    }
    let text = read(path, "--state")?;
    PersistentState::from_text(&text)
        .map(Some)
        .map_err(|e| Failure::new(format!("--state {}: {e}", path.display())))
}

/// Saves the state file (atomically: a power loss leaves the old or the new
/// state, never half of one).
pub(super) fn write_state(path: &Path, state: &PersistentState) -> Result<(), Failure> {
    output::write_file(path, state.to_text().as_bytes(), &STATE)
        .map_err(|f| Failure::new(format!("--state: {}", f.message)))
}

#[cfg(test)]
mod tests {
    use super::{is_certificate_file_name, pem_blocks};
    use std::path::Path;

    #[test]
    fn certificate_file_names() {
        assert!(is_certificate_file_name(Path::new("d/1a2b3c4d.0")));
        assert!(is_certificate_file_name(Path::new("d/capf.pem")));
        assert!(!is_certificate_file_name(Path::new("d/capf-key.der")));
        assert!(!is_certificate_file_name(Path::new("d/capf.sqlite3")));
    }

    #[test]
    fn pem_blocks_are_split_by_label() {
        let text = "junk\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n\
                    -----BEGIN PRIVATE KEY-----\nBBBB\n-----END PRIVATE KEY-----\n";
        let blocks = pem_blocks(text);
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].0, "CERTIFICATE");
        assert!(blocks[1].1.contains("BBBB"));
    }
}
