//! The data directory: everything a CAPF server keeps on disk.
//!
//! ```text
//! DIR/capf.pem            the CAPF certificate (served over TLS, goes in the phones' ITL)
//! DIR/capf-key.pem        its private key, PKCS#8, mode 0600
//! DIR/<hash>.0            a copy named by OpenSSL subject hash, for ITL tools
//! DIR/capf.sqlite3        devices, issued certificates, audit log, parameters
//! DIR/issuer.pem          optional: a separate issuing CA certificate (+ chain) ...
//! DIR/issuer-key.pem      ... and its key; LSCs are then signed by it
//! DIR/mic-trust/*.pem     manufacturer CA certificates trusted for MIC authentication
//! DIR/traces/             troubleshoot trace files
//! ```

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use capf_ca::{CaCertificate, CaError, CapfIdentity, IdentityParams, Issuer, TrustStore};
use capf_store::{SqliteStore, StoreError};
use capf_store_postgres::{PostgresError, PostgresStore};

use crate::store::{DatabaseAddress, Store};

/// What can go wrong with the data directory.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DataDirError {
    /// [`DataDir::init`] on a directory that already holds a CAPF identity.
    #[error("data directory {}: already initialised (it holds a CAPF identity)", path.display())]
    AlreadyInitialised {
        /// The directory.
        path: PathBuf,
    },
    /// The CAPF identity was asked for before `capf init`.
    #[error("data directory {}: not initialised: run `capf init` first", path.display())]
    NotInitialised {
        /// The directory.
        path: PathBuf,
    },
    /// Another process holds the directory's lock.
    #[error("data directory {}: another capf server is using it (capf.lock is held)", path.display())]
    Locked {
        /// The directory.
        path: PathBuf,
    },
    /// A file or directory could not be read, written or created.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The CAPF identity, the issuer or a trust anchor could not be created
    /// or loaded.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// The database could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The PostgreSQL database could not be opened, or belongs to another
    /// CAPF.
    #[error(transparent)]
    Postgres(#[from] PostgresError),
    /// `capf init` with a database that already belongs to a CAPF: this
    /// node must take that CAPF's identity instead of making one.
    #[error(
        "{database} already belongs to the CAPF whose certificate has fingerprint \
         {fingerprint}: every server of one database must hold that CAPF's key. Copy it \
         here: on a server that has it, `capf backup capf.backup`; here, \
         `capf --data-dir {} --database URL restore --identity-only capf.backup`",
        dir.display()
    )]
    DatabaseHasIdentity {
        /// The database.
        database: String,
        /// The fingerprint it records.
        fingerprint: String,
        /// This node's data directory.
        dir: PathBuf,
    },
}

/// A CAPF data directory.
#[derive(Clone, Debug)]
pub(crate) struct DataDir {
    root: PathBuf,
    /// A PostgreSQL database for the devices instead of the SQLite file.
    database: Option<DatabaseAddress>,
}

/// The data directory's exclusive lock; released when dropped (or when the
/// process dies, however it dies).
#[derive(Debug)]
pub(crate) struct DataDirLock {
    _file: std::fs::File,
}

/// What [`DataDir::init`] created.
#[derive(Debug)]
pub(crate) struct InitReport {
    /// The new CAPF identity.
    pub(crate) identity: CapfIdentity,
    /// The certificate file.
    pub(crate) certificate: PathBuf,
    /// The key file.
    pub(crate) key: PathBuf,
    /// The `<hash>.0` copy.
    pub(crate) hashed_copy: PathBuf,
    /// The database (a file, or a PostgreSQL database).
    pub(crate) database: String,
}

impl DataDir {
    /// The database file name.
    pub(crate) const DATABASE: &'static str = "capf.sqlite3";
    /// Optional issuing certificate (and chain) file name.
    pub(crate) const ISSUER_CERT: &'static str = "issuer.pem";
    /// Optional issuing key file name.
    pub(crate) const ISSUER_KEY: &'static str = "issuer-key.pem";
    /// Directory of manufacturer CA certificates for MIC authentication.
    pub(crate) const MIC_TRUST: &'static str = "mic-trust";
    /// Directory of troubleshoot trace files.
    pub(crate) const TRACES: &'static str = "traces";
    /// The lock file a running server holds.
    pub(crate) const LOCK: &'static str = "capf.lock";

    /// A data directory at `root` (nothing is read or created yet).
    pub(crate) fn new(root: impl Into<PathBuf>) -> Self {
        DataDir {
            root: root.into(),
            database: None,
        }
    }

    /// The same directory, with the devices in a PostgreSQL database.
    pub(crate) fn with_database(mut self, database: Option<DatabaseAddress>) -> Self {
        self.database = database;
        self
    }

    /// The PostgreSQL database the devices are in, if not the SQLite file.
    pub(crate) fn database(&self) -> Option<&DatabaseAddress> {
        self.database.as_ref()
    }

    /// The directory.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// A path inside the directory.
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Whether the CAPF identity exists (the directory was initialised).
    pub(crate) fn is_initialised(&self) -> bool {
        CapfIdentity::exists(&self.root)
    }

    /// Creates the CAPF key (mode 0600), certificate, its `<hash>.0` copy
    /// and the database. Refuses an already initialised directory.
    pub(crate) fn init(
        &self,
        params: &IdentityParams,
        now: SystemTime,
    ) -> Result<InitReport, DataDirError> {
        if self.is_initialised() {
            return Err(DataDirError::AlreadyInitialised {
                path: self.root.clone(),
            });
        }
        // A shared database that already belongs to a CAPF: this node
        // takes that identity, it does not make a new one.
        let postgres = match &self.database {
            Some(address) => {
                let store = PostgresStore::create(&address.url, address.ca_file.as_deref())?;
                if let Some(recorded) = store.identity()? {
                    return Err(DataDirError::DatabaseHasIdentity {
                        database: store.database().to_owned(),
                        fingerprint: recorded.fingerprint,
                        dir: self.root.clone(),
                    });
                }
                Some(store)
            }
            None => None,
        };
        create_private_dir(&self.root)?;
        let identity = CapfIdentity::generate(params, now)?;
        identity.save(&self.root)?;
        let hashed_copy = identity.write_hashed_copy(&self.root)?;
        let database = match postgres {
            Some(store) => {
                claim(&store, &identity, now)?;
                store.database().to_owned()
            }
            None => {
                let database = self.path(Self::DATABASE);
                SqliteStore::open(&database)?;
                database.display().to_string()
            }
        };
        Ok(InitReport {
            identity,
            certificate: self.path(capf_ca::CERT_FILE),
            key: self.path(capf_ca::KEY_FILE),
            hashed_copy,
            database,
        })
    }

    /// The CAPF identity (TLS certificate and key).
    pub(crate) fn identity(&self) -> Result<CapfIdentity, DataDirError> {
        if !self.is_initialised() {
            return Err(DataDirError::NotInitialised {
                path: self.root.clone(),
            });
        }
        Ok(CapfIdentity::load(&self.root)?)
    }

    /// The issuer of LSCs: `issuer.pem` + `issuer-key.pem` if present, else
    /// the CAPF identity itself.
    pub(crate) fn issuer(&self, identity: &CapfIdentity) -> Result<Issuer, DataDirError> {
        let cert = self.path(Self::ISSUER_CERT);
        let key = self.path(Self::ISSUER_KEY);
        if cert.exists() || key.exists() {
            return Ok(Issuer::load(&cert, &key)?);
        }
        Ok(identity.issuer()?)
    }

    /// Trust anchors for certificate authentication: the issuer for LSCs,
    /// and every certificate in `mic-trust/*.pem` for MICs.
    pub(crate) fn trust_store(&self, issuer: &Issuer) -> Result<TrustStore, DataDirError> {
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
                let pem = std::fs::read_to_string(file).map_err(|source| DataDirError::Io {
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
    pub(crate) fn lock_exclusive(&self) -> Result<DataDirLock, DataDirError> {
        let path = self.path(Self::LOCK);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| DataDirError::Io {
                path: path.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => Ok(DataDirLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(DataDirError::Locked {
                path: self.root.clone(),
            }),
            Err(std::fs::TryLockError::Error(source)) => Err(DataDirError::Io { path, source }),
        }
    }

    /// Creates the directory (mode 0700) if it does not exist.
    pub(crate) fn create_dir(&self) -> Result<(), DataDirError> {
        create_private_dir(&self.root)
    }

    /// Creates a folder of the directory (mode 0700) if it does not exist.
    pub(crate) fn create_subdir(&self, name: &str) -> Result<(), DataDirError> {
        create_private_dir(&self.path(name))
    }

    /// Opens the database (creating it if missing).
    pub(crate) fn open_store(&self) -> Result<SqliteStore, DataDirError> {
        Ok(SqliteStore::open(self.path(Self::DATABASE))?)
    }

    /// Opens the device database: the SQLite file (created if missing), or
    /// the PostgreSQL database given. A PostgreSQL database must have been
    /// set up (`capf init --database`) and must belong to this directory's
    /// CAPF (it records the certificate's fingerprint; the first node to
    /// open it records its own).
    pub(crate) fn open_database(&self) -> Result<Store, DataDirError> {
        let Some(address) = &self.database else {
            return Ok(Store::Sqlite(self.open_store()?));
        };
        let store = PostgresStore::open(&address.url, address.ca_file.as_deref())?;
        if self.is_initialised() {
            claim(&store, &self.identity()?, SystemTime::now())?;
        }
        Ok(Store::Postgres(Box::new(store)))
    }
}

/// Records `identity` as the CAPF of the database, or checks that it is.
fn claim(
    store: &PostgresStore,
    identity: &CapfIdentity,
    now: SystemTime,
) -> Result<(), DataDirError> {
    let certificate = identity.certificate();
    Ok(store.claim_identity(
        &certificate.fingerprint_sha256_hex(),
        certificate.der(),
        now,
    )?)
}

fn create_private_dir(dir: &Path) -> Result<(), DataDirError> {
    let io = |source| DataDirError::Io {
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
            Err(DataDirError::Locked { .. })
        ));
        drop(held);
        assert!(data.lock_exclusive().is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
