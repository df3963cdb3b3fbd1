//! `capf loadgen --auth mic`: a test manufacturing CA, the MICs it issues
//! to the simulated phones, and its certificate in the server's MIC trust
//! (`DIR/mic-trust`, read by the server when it starts).
//!
//! With `--spawn-server` loadgen makes the CA in memory (its key is never
//! written anywhere) or takes `--mic-ca FILE`, writes the certificate into
//! the trust folder before the server starts, and removes that file again
//! at the end. Against a `--server` it cannot add trust to a running
//! server: the operator gives `--mic-ca FILE` whose certificate is in the
//! server's trust already, or loadgen refuses.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::Bytes;
use capf_ca::{
    CaCertificate, CapfIdentity, CertificateKind, EcCurve, IdentityParams, Issuer, KeySpec,
    LscProfile, PrivateKey,
};
use capf_operations::phone::CertificateCredentials;

use super::Target;
use crate::Failure;
use crate::data_dir::DataDir;

/// The file loadgen writes into the MIC trust folder.
pub(super) const TRUST_FILE: &str = "capf-loadgen-mic-ca.pem";

/// The manufacturing CA of a run.
pub(super) struct MicCa {
    issuer: Issuer,
    /// The trust file loadgen wrote (removed by [`MicCa::finish`]).
    written: Option<PathBuf>,
}

impl MicCa {
    /// With --spawn-server: the CA of `given`, else a fresh P-256 CA held in
    /// memory; its certificate is written into the trust folder unless it
    /// is there already. The server must be started after this.
    pub(super) fn for_spawned_server(
        data: &DataDir,
        given: Option<&Path>,
    ) -> Result<Self, Failure> {
        let issuer = match given {
            Some(path) => load(path)?,
            None => fresh()?,
        };
        let written = if trusted(data, issuer.certificate())? {
            None
        } else {
            data.create_subdir(DataDir::MIC_TRUST)?;
            let path = data.path(DataDir::MIC_TRUST).join(TRUST_FILE);
            std::fs::write(&path, issuer.certificate().pem())
                .map_err(|e| Failure::new(format!("{}: {e}", path.display())))?;
            Some(path)
        };
        Ok(MicCa { issuer, written })
    }

    /// Against a running --server: `--mic-ca FILE`, whose certificate must
    /// be in the server's MIC trust already (it reads the trust when it
    /// starts; loadgen does not change a running server's trust).
    pub(super) fn for_running_server(
        data: &DataDir,
        given: Option<&Path>,
    ) -> Result<Self, Failure> {
        let trust = data.path(DataDir::MIC_TRUST);
        let Some(path) = given else {
            return Err(Failure::usage(format!(
                "--auth mic against a running --server needs --mic-ca FILE: a manufacturing CA \
                 (certificate and private key, PEM) whose certificate is in {} and was there \
                 when the server started. Or use --spawn-server: loadgen then makes its own CA.",
                trust.display()
            )));
        };
        let issuer = load(path)?;
        if !trusted(data, issuer.certificate())? {
            return Err(Failure::new(format!(
                "the CA of --mic-ca {} is not in the server's MIC trust {}: copy its certificate \
                 there and restart the server (it reads its MIC trust when it starts)",
                path.display(),
                trust.display()
            )));
        }
        Ok(MicCa {
            issuer,
            written: None,
        })
    }

    /// Issues each target a MIC (CN = its device name) for the pool key it
    /// will use, round-robin, and makes it the target's credentials.
    pub(super) fn issue(&self, targets: &mut [Target], pool: &[PrivateKey]) -> Result<(), Failure> {
        let now = SystemTime::now();
        let profile = LscProfile::default();
        for (i, target) in targets.iter_mut().enumerate() {
            let key = pool
                .get(i % pool.len().max(1))
                .ok_or_else(|| Failure::new("no phone keys"))?;
            let public = key.public_key_der().map_err(Failure::new)?;
            let mic = self
                .issuer
                .issue_lsc(target.name.as_str(), &public, &profile, now)
                .map_err(|e| Failure::new(format!("issuing the MIC of {}: {e}", target.name)))?;
            target.certificate = Some(CertificateCredentials {
                kind: CertificateKind::Mic,
                certificate_der: Bytes::from(mic.der),
                key: key.clone(),
                sudi: None,
            });
        }
        Ok(())
    }

    /// Removes the trust file loadgen wrote (the server that read it has
    /// stopped).
    pub(super) fn finish(self) {
        if let Some(path) = self.written
            && let Err(e) = std::fs::remove_file(&path)
        {
            eprintln!("warning: {} not removed: {e}", path.display());
        }
    }
}

/// A fresh manufacturing CA (P-256), in memory only.
fn fresh() -> Result<Issuer, Failure> {
    let ca = CapfIdentity::generate(
        &IdentityParams {
            key: KeySpec::Ec(EcCurve::P256),
            common_name: Some("capf loadgen test manufacturing CA".into()),
            organization: Some("capf loadgen".into()),
            ..IdentityParams::default()
        },
        SystemTime::now(),
    )
    .map_err(Failure::new)?;
    ca.issuer().map_err(Failure::new)
}

/// A CA certificate (optionally followed by its chain) and its PKCS#8 key
/// from one PEM file.
fn load(path: &Path) -> Result<Issuer, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::new(format!("--mic-ca {}: {e}", path.display())))?;
    let certificates = pem_blocks(&text, "CERTIFICATE").concat();
    let key = pem_blocks(&text, "PRIVATE KEY").concat();
    if certificates.is_empty() || key.is_empty() {
        return Err(Failure::usage(format!(
            "--mic-ca {}: give the CA certificate and its PKCS#8 private key \
             (-----BEGIN PRIVATE KEY-----) in one PEM file",
            path.display()
        )));
    }
    // Errors name the file, never the key's text.
    Issuer::from_pem(&certificates, &key)
        .map_err(|e| Failure::new(format!("--mic-ca {}: {e}", path.display())))
}

/// The PEM blocks of one label, each with its boundaries and a newline.
fn pem_blocks(text: &str, label: &str) -> Vec<String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&begin) {
        let Some(tail) = rest.get(start..) else { break };
        let Some(stop) = tail.find(&end) else { break };
        let block_end = stop + end.len();
        if let Some(block) = tail.get(..block_end) {
            blocks.push(format!("{block}\n"));
        }
        rest = tail.get(block_end..).unwrap_or_default();
    }
    blocks
}

/// Whether `ca` is among the certificates of the MIC trust folder.
fn trusted(data: &DataDir, ca: &CaCertificate) -> Result<bool, Failure> {
    let dir = data.path(DataDir::MIC_TRUST);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(false);
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "pem") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let certs =
            CaCertificate::all_from_pem(&text, &path.display().to_string()).unwrap_or_default();
        if certs.iter().any(|c| c.der() == ca.der()) {
            return Ok(true);
        }
    }
    Ok(false)
}
