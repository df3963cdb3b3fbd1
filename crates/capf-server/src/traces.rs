//! Troubleshoot trace files: one file per retrieved certificate, named by
//! what verification found it to be (`lsc`, `mic`, `unverified`).

use std::path::Path;
use std::time::SystemTime;

use capf_operations::{CertificateRecord, DeviceName, RetrievedKind, escape_text};
use tracing::{info, warn};

/// Writes `<dir>/<device>-<lsc|mic|unverified>-<unix seconds>-<serial>.pem`
/// for each certificate. Text from the certificate (subject, issuer) is
/// escaped in the comment lines: a name holding a line break or a PEM
/// block can neither forge lines of the file nor a PEM boundary that a
/// reader would stop at (a run of five dashes is written `\u{2d}----`).
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
        let serial: String = cert
            .serial_hex
            .chars()
            .filter(char::is_ascii_hexdigit)
            .take(40)
            .collect();
        let path = dir.join(format!("{device}-{}-{stamp}-{serial}.pem", kind.as_str()));
        let text = format!(
            "# troubleshoot trace: {} of {device}\n# subject: {}\n# issuer: {}\n# serial: {}\n# SHA-256: {}\n{}",
            match kind {
                RetrievedKind::Lsc => "LSC on record",
                RetrievedKind::Mic => "MIC (verified)",
                RetrievedKind::Unverified => "UNVERIFIED certificate (not recorded)",
            },
            comment(&cert.subject),
            comment(&cert.issuer),
            comment(&cert.serial_hex),
            cert.fingerprint_sha256(),
            cert.pem()
        );
        match tokio::fs::write(&path, text).await {
            Ok(()) => info!(file = %path.display(), "troubleshoot trace written"),
            Err(e) => warn!("cannot write {}: {e}", path.display()),
        }
    }
}

/// Certificate text made safe for a comment line of a trace file.
fn comment(text: &str) -> String {
    escape_text(text).replace("-----", "\\u{2d}----")
}
