//! The data directory: everything a CAPF server keeps on disk.
//!
//! ```text
//! DIR/capf.pem            the CAPF certificate (served over TLS, goes in the phones' ITL)
//! DIR/capf-key.pem        its private key, PKCS#8, mode 0600
//! DIR/<hash>.0            a copy named by OpenSSL subject hash (B7)
//! DIR/capf.sqlite3        devices, issued certificates, audit log, parameters
//! DIR/issuer.pem          optional: a separate issuing CA certificate (+ chain) ...
//! DIR/issuer-key.pem      ... and its key; LSCs are then signed by it
//! DIR/mic-trust/*.pem     manufacturer CA certificates trusted for MIC authentication
//! DIR/traces/             troubleshoot trace files (B30)
//! ```

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use capf_ca::{CaCertificate, CapfIdentity, IdentityParams, Issuer, TrustStore};
use capf_store::SqliteStore;

use crate::ServerError;

/// A CAPF data directory.
#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

/// The data directory's exclusive lock; released when dropped (or when the
/// process dies, however it dies).
#[derive(Debug)]
pub struct DataDirLock {
    _file: std::fs::File,
}

/// What [`DataDir::init`] created.
#[derive(Debug)]
pub struct InitReport {
    /// The new CAPF identity.
    pub identity: CapfIdentity,
    /// The certificate file.
    pub certificate: PathBuf,
    /// The key file.
    pub key: PathBuf,
    /// The `<hash>.0` copy.
    pub hashed_copy: PathBuf,
    /// The database.
    pub database: PathBuf,
}

impl DataDir {
    /// The database file name.
    pub const DATABASE: &'static str = "capf.sqlite3";
    /// Optional issuing certificate (and chain) file name.
    pub const ISSUER_CERT: &'static str = "issuer.pem";
    /// Optional issuing key file name.
    pub const ISSUER_KEY: &'static str = "issuer-key.pem";
    /// Directory of manufacturer CA certificates for MIC authentication.
    pub const MIC_TRUST: &'static str = "mic-trust";
    /// Directory of troubleshoot trace files.
    pub const TRACES: &'static str = "traces";
    /// The lock file a running server holds.
    pub const LOCK: &'static str = "capf.lock";

    /// A data directory at `root` (nothing is read or created yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A path inside the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Whether the CAPF identity exists (the directory was initialised).
    pub fn is_initialised(&self) -> bool {
        CapfIdentity::exists(&self.root)
    }

    /// Creates the CAPF key (mode 0600), certificate, its `<hash>.0` copy
    /// and the database. Refuses an already initialised directory.
    pub fn init(
        &self,
        params: &IdentityParams,
        now: SystemTime,
    ) -> Result<InitReport, ServerError> {
        if self.is_initialised() {
            return Err(ServerError::DataDir {
                path: self.root.clone(),
                why: "already initialised (it holds a CAPF identity)".into(),
            });
        }
        create_private_dir(&self.root)?;
        let identity = CapfIdentity::generate(params, now)?;
        identity.save(&self.root)?;
        let hashed_copy = identity.write_hashed_copy(&self.root)?;
        let database = self.path(Self::DATABASE);
        SqliteStore::open(&database)?;
        Ok(InitReport {
            identity,
            certificate: self.path(capf_ca::CERT_FILE),
            key: self.path(capf_ca::KEY_FILE),
            hashed_copy,
            database,
        })
    }

    /// The CAPF identity (TLS certificate and key).
    pub fn identity(&self) -> Result<CapfIdentity, ServerError> {
        if !self.is_initialised() {
            return Err(ServerError::DataDir {
                path: self.root.clone(),
                why: "not initialised: run `capf init` first".into(),
            });
        }
        Ok(CapfIdentity::load(&self.root)?)
    }

    /// The issuer of LSCs: `issuer.pem` + `issuer-key.pem` if present, else
    /// the CAPF identity itself.
    pub fn issuer(&self, identity: &CapfIdentity) -> Result<Issuer, ServerError> {
        let cert = self.path(Self::ISSUER_CERT);
        let key = self.path(Self::ISSUER_KEY);
        if cert.exists() || key.exists() {
            return Ok(Issuer::load(&cert, &key)?);
        }
        Ok(identity.issuer()?)
    }

    /// Trust anchors for certificate authentication: the issuer for LSCs,
    /// and every certificate in `mic-trust/*.pem` for MICs.
    pub fn trust_store(&self, issuer: &Issuer) -> Result<TrustStore, ServerError> {
        let mut trust = TrustStore::for_issuer(issuer);
        let dir = self.path(Self::MIC_TRUST);
        if let Ok(entries) = std::fs::read_dir(&dir) {
            let mut files: Vec<PathBuf> =
                entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            files.sort();
            for file in files
                .iter()
                .filter(|p| p.extension().is_some_and(|e| e == "pem"))
            {
                let pem = std::fs::read_to_string(file).map_err(|source| ServerError::Io {
                    path: file.clone(),
                    source,
                })?;
                for cert in CaCertificate::all_from_pem(&pem, &file.display().to_string())? {
                    trust.add_mic_anchor(cert);
                }
            }
        }
        Ok(trust)
    }

    /// Takes the data directory's exclusive lock (`DIR/capf.lock`), held
    /// while the returned guard lives: one server per data directory. Fails
    /// if another process holds it.
    pub fn lock_exclusive(&self) -> Result<DataDirLock, ServerError> {
        let path = self.path(Self::LOCK);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| ServerError::Io {
                path: path.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => Ok(DataDirLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(ServerError::DataDir {
                path: self.root.clone(),
                why: "another capf server is using it (capf.lock is held)".into(),
            }),
            Err(std::fs::TryLockError::Error(source)) => Err(ServerError::Io { path, source }),
        }
    }

    /// Opens the database (creating it if missing).
    pub fn open_store(&self) -> Result<SqliteStore, ServerError> {
        Ok(SqliteStore::open(self.path(Self::DATABASE))?)
    }
}

fn create_private_dir(dir: &Path) -> Result<(), ServerError> {
    let io = |source| ServerError::Io {
        path: dir.to_path_buf(),
        source,
    };
    if dir.exists() {
        return Ok(());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_server_per_data_directory() {
        let dir = std::env::temp_dir().join(format!("capf-lock-test-{}", std::process::id()));
        let data = DataDir::new(&dir);
        create_private_dir(&dir).unwrap();
        let held = data.lock_exclusive().unwrap();
        assert!(matches!(
            data.lock_exclusive(),
            Err(ServerError::DataDir { .. })
        ));
        drop(held);
        assert!(data.lock_exclusive().is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
