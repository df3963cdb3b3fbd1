//! Files the operator names on the command line (`--out`, `--output`,
//! `--hashed-dir`, `--strings-out`, the phone's `--cert-out` and `--state`):
//! every command writes them through [`write_file`], with the same rules.
//!
//! * The bytes go to a new temporary file in the same directory (mode 0600
//!   for secrets, else 0644 less the umask), flushed to disk, then put in
//!   place in one step, and the directory is flushed too: a crash leaves
//!   the old file or the new one, never half of one. A secret file is a new
//!   file, so it is 0600 whatever stood at the path before.
//! * A symbolic link at the path is refused, whether it points somewhere or
//!   nowhere: nothing is written through it, and a dangling link's target
//!   is never created. So are directories and special files.
//! * An existing file is replaced only when [`Replace`] allows it (the
//!   command's `--force`); without it the file is left as it is, even if
//!   another process creates it while we write (the new file is linked in,
//!   which fails on an existing name).
//! * A file that holds a PEM private key is never replaced, not even with
//!   `--force`: this protects the data directory's `capf-key.pem` and
//!   `issuer-key.pem`. The phone simulator's LSC store, which holds the
//!   phone's own certificate and key by design, is the one exception.
//!
//! [`check`] runs the same checks without writing: commands call it before
//! work that cannot be undone (issuing a certificate, arming strings), so
//! that a path that would be refused is refused first.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read as _, Write as _};
use std::path::{Path, PathBuf};

use crate::Failure;

/// How a file is written.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Output {
    /// Holds a secret (a key, authentication strings): mode 0600.
    pub(crate) secret: bool,
    /// Whether an existing file may be replaced.
    pub(crate) replace: Replace,
}

/// Whether an existing file at the path may be replaced. Never a symbolic
/// link, a directory or a file holding a private key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Replace {
    /// Never: the file must not exist.
    Refuse,
    /// Only when the command's `--force` was given (the value).
    IfForced(bool),
    /// Always: files meant to be rewritten (the phone simulator's LSC store
    /// and state). A file holding a private key and no certificate is still
    /// refused.
    Always,
}

impl Output {
    /// A public file (mode 0644) that `--force` may replace.
    pub(crate) fn public(force: bool) -> Self {
        Output {
            secret: false,
            replace: Replace::IfForced(force),
        }
    }

    /// A secret file (mode 0600) that `--force` may replace.
    pub(crate) fn secret(force: bool) -> Self {
        Output {
            secret: true,
            replace: Replace::IfForced(force),
        }
    }
}

/// Writes `bytes` to `path` (see the module documentation for the rules).
pub(crate) fn write_file(path: &Path, bytes: &[u8], how: &Output) -> Result<(), Failure> {
    check(path, how)?;
    let dir = parent(path);
    let (temp, file) = create_temp(&dir, path, how)?;
    let written = fill(file, bytes, how).map_err(|e| cannot_write(path, &e));
    let may_replace = matches!(how.replace, Replace::IfForced(true) | Replace::Always);
    let placed = written.and_then(|()| {
        if may_replace {
            // Rename replaces the name itself: a symbolic link put there
            // since the check is replaced, not followed.
            fs::rename(&temp, path).map_err(|e| cannot_write(path, &e))
        } else {
            link_new(&temp, path)
        }
    });
    if placed.is_err() {
        let _ = fs::remove_file(&temp);
    }
    placed?;
    sync_dir(&dir).map_err(|e| {
        Failure::new(format!(
            "{}: written, but its directory could not be flushed to disk: {e}",
            path.display()
        ))
    })
}

/// Checks that `path` may be written as `how` says, without writing; the
/// reason it may not, in words, as a failure (exit 1).
pub(crate) fn check(path: &Path, how: &Output) -> Result<(), Failure> {
    let shown = path.display();
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Failure::new(format!("{shown}: {e}"))),
    };
    let kind = meta.file_type();
    if kind.is_symlink() {
        let target = match fs::metadata(path) {
            Ok(_) => "",
            Err(_) => " (it points nowhere)",
        };
        return Err(Failure::new(format!(
            "{shown} is a symbolic link{target}: capf does not write through links; \
             give the path of a real file"
        )));
    }
    if kind.is_dir() {
        return Err(Failure::new(format!(
            "{shown} is a directory: give a file name"
        )));
    }
    if !kind.is_file() {
        return Err(Failure::new(format!(
            "{shown} is not a regular file (a device, pipe or socket): capf does not replace it"
        )));
    }
    let (key, certificate) = pem_contents(path).map_err(|e| {
        Failure::new(format!(
            "{shown} exists and cannot be read to check that it holds no private key: {e}"
        ))
    })?;
    let protected = match how.replace {
        Replace::Always => key && !certificate,
        Replace::Refuse | Replace::IfForced(_) => key,
    };
    if protected {
        return Err(Failure::new(format!(
            "{shown} holds a private key: capf never replaces a key file, not even with \
             --force; choose another file name"
        )));
    }
    match how.replace {
        Replace::Refuse => Err(Failure::new(format!(
            "{shown} already exists: capf does not replace it; choose another file name"
        ))),
        Replace::IfForced(false) => Err(Failure::new(format!(
            "{shown} already exists: add --force to replace it"
        ))),
        Replace::IfForced(true) | Replace::Always => Ok(()),
    }
}

/// The most of an existing file looked at for PEM blocks: key files are a
/// few kilobytes.
const PEM_SCAN_LIMIT: u64 = 1 << 20;

/// Whether the file holds a PEM private key block (`PRIVATE KEY`,
/// `ENCRYPTED PRIVATE KEY`, `RSA PRIVATE KEY`, `EC PRIVATE KEY`, ...) and
/// whether it holds a `CERTIFICATE` block.
fn pem_contents(path: &Path) -> std::io::Result<(bool, bool)> {
    let mut bytes = Vec::new();
    File::open(path)?
        .take(PEM_SCAN_LIMIT)
        .read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let (mut key, mut certificate) = (false, false);
    for line in text.lines() {
        let Some(label) = line
            .trim()
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        key |= label.ends_with("PRIVATE KEY");
        certificate |= label == "CERTIFICATE";
    }
    Ok((key, certificate))
}

/// The directory `path` is in (`.` for a bare file name).
fn parent(path: &Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn cannot_write(path: &Path, e: &std::io::Error) -> Failure {
    Failure::new(format!("cannot write {}: {e}", path.display()))
}

/// Creates a new temporary file next to `path`: `.NAME.PID.N.tmp`.
fn create_temp(dir: &Path, path: &Path, how: &Output) -> Result<(PathBuf, File), Failure> {
    let name: String = path
        .file_name()
        .map_or_else(|| "capf".into(), |n| n.to_string_lossy().into_owned())
        .chars()
        .take(100)
        .collect();
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(if how.secret { 0o600 } else { 0o644 });
    }
    for n in 0..100u32 {
        let temp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
        match options.open(&temp) {
            Ok(file) => return Ok((temp, file)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(cannot_write(path, &e)),
        }
    }
    Err(Failure::new(format!(
        "cannot write {}: no free temporary file name in {}",
        path.display(),
        dir.display()
    )))
}

/// Writes and flushes the temporary file; a secret one is made exactly
/// 0600 first (whatever the umask).
fn fill(mut file: File, bytes: &[u8], how: &Output) -> std::io::Result<()> {
    #[cfg(unix)]
    if how.secret {
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = how;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Gives the temporary file its final name only if that name is free: a
/// hard link fails on any existing name, a dangling symbolic link included.
/// Where hard links are not supported, checks and renames.
fn link_new(temp: &Path, path: &Path) -> Result<(), Failure> {
    match fs::hard_link(temp, path) {
        Ok(()) => {
            if let Err(e) = fs::remove_file(temp) {
                eprintln!(
                    "capf: note: could not remove the temporary file {}: {e}",
                    temp.display()
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Err(Failure::new(format!(
            "{} appeared while it was being written: left as it is",
            path.display()
        ))),
        Err(_) => match fs::symlink_metadata(path) {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                fs::rename(temp, path).map_err(|e| cannot_write(path, &e))
            }
            _ => Err(Failure::new(format!(
                "{} appeared while it was being written: left as it is",
                path.display()
            ))),
        },
    }
}

/// Flushes a directory, so that a rename in it survives a crash.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Prints a typed value as indented JSON on stdout: every `--json` output
/// goes through here, built from a `Serialize` type.
pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Failure::new(format!("cannot write JSON: {e}")))?;
    println!("{text}");
    Ok(())
}

/// A table for people: a header and left-aligned columns as wide as their
/// widest cell, no borders (lines stay easy to `grep` and `cut`).
pub(crate) fn print_table<const N: usize>(header: [&str; N], rows: Vec<[String; N]>) {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    table.set_header(header);
    for row in rows {
        table.add_row(row);
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    for line in table.lines() {
        println!("{}", line.trim_end());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("capf-output-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn new_file_then_refused_then_forced() {
        let dir = temp_dir("force");
        let path = dir.join("out.pem");
        write_file(&path, b"one", &Output::public(false)).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one");
        let refused = write_file(&path, b"two", &Output::public(false)).unwrap_err();
        assert!(refused.message.contains("--force"), "{}", refused.message);
        assert_eq!(fs::read(&path).unwrap(), b"one");
        write_file(&path, b"two", &Output::public(true)).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn key_files_are_never_replaced() {
        let dir = temp_dir("key");
        let key = dir.join("capf-key.pem");
        let text = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        fs::write(&key, text).unwrap();
        for how in [
            Output::public(true),
            Output::secret(true),
            Output {
                secret: true,
                replace: Replace::Always,
            },
        ] {
            let refused = write_file(&key, b"x", &how).unwrap_err();
            assert!(
                refused.message.contains("private key"),
                "{}",
                refused.message
            );
        }
        assert_eq!(fs::read_to_string(&key).unwrap(), text);
        // The phone's LSC store (certificate and key) is rewritten by design.
        let store = dir.join("lsc.pem");
        fs::write(
            &store,
            format!("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n{text}"),
        )
        .unwrap();
        let always = Output {
            secret: true,
            replace: Replace::Always,
        };
        write_file(&store, b"new", &always).unwrap();
        assert!(write_file(&store, b"x", &Output::secret(true)).is_ok());
        let _ = fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[test]
    fn links_are_not_followed_and_secrets_are_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = temp_dir("link");
        let target = dir.join("target");
        fs::write(&target, "keep").unwrap();
        let link = dir.join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let dangling = dir.join("dangling");
        let nowhere = dir.join("nowhere");
        std::os::unix::fs::symlink(&nowhere, &dangling).unwrap();
        for path in [&link, &dangling] {
            let refused = write_file(path, b"x", &Output::secret(true)).unwrap_err();
            assert!(
                refused.message.contains("symbolic link"),
                "{}",
                refused.message
            );
        }
        assert_eq!(fs::read_to_string(&target).unwrap(), "keep");
        assert!(!nowhere.exists());

        let open = dir.join("open");
        fs::write(&open, "old").unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o666)).unwrap();
        write_file(&open, b"secret", &Output::secret(true)).unwrap();
        let mode = fs::metadata(&open).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let _ = fs::remove_dir_all(&dir);
    }
}
