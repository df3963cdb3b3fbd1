//! Troubleshoot trace files (B30): one file per retrieved certificate type.

use std::path::Path;
use std::time::SystemTime;

use capf_operations::{CertificateRecord, DeviceName, RetrievedKind};
use tracing::{info, warn};

/// Writes `<dir>/<device>-<lsc|mic>-<unix seconds>.pem` for each
/// certificate.
pub(crate) async fn write(
    dir: &Path,
    device: &DeviceName,
    certs: &[(RetrievedKind, CertificateRecord)],
) {
    let stamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if let Err(e) = tokio::fs::create_dir_all(dir).await {
        warn!("cannot create trace directory {}: {e}", dir.display());
        return;
    }
    for (kind, cert) in certs {
        let path = dir.join(format!("{device}-{}-{stamp}.pem", kind.as_str()));
        let text = format!(
            "# troubleshoot trace: {} of {device}\n# subject: {}\n# issuer: {}\n# serial: {}\n{}",
            kind.as_str().to_uppercase(),
            cert.subject,
            cert.issuer,
            cert.serial_hex,
            cert.pem()
        );
        match tokio::fs::write(&path, text).await {
            Ok(()) => info!(file = %path.display(), "troubleshoot trace written"),
            Err(e) => warn!("cannot write {}: {e}", path.display()),
        }
    }
}
