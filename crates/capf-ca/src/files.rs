//! The only file I/O of the crate: reading and writing PEM files.

use std::io::Write;
use std::path::Path;

use crate::error::{CaError, Result};

pub(crate) fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| CaError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Writes `contents` to `path` through a temporary file in the same
/// directory, renamed into place. With `secret`, the file is created with
/// mode 0600 from the start (never readable by others, not even briefly).
pub(crate) fn write_atomic(path: &Path, contents: &[u8], secret: bool) -> Result<()> {
    let io = |source| CaError::Io {
        path: path.to_owned(),
        source,
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = secret;
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut file = options.open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}
