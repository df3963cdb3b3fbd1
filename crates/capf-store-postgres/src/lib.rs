#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod committer;
mod connect;
mod error;
mod rows;
mod schema;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use capf_operations::{
    OperationsError, ServiceParameters, StoreBackend, StoreReads, StoreTransaction, Touching,
};

pub use error::PostgresError;
pub use schema::SCHEMA_VERSION;

use committer::{Change, Committer, Rows};
use connect::{Target, blocking};
use rows::Conn;

/// The CAPF store on a PostgreSQL database. See the [crate] docs.
pub struct PostgresStore {
    target: Target,
    committer: Committer,
    /// The connection reads go through (made again if it breaks).
    reader: Mutex<Option<Conn>>,
}

/// The CAPF certificate a database belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedIdentity {
    /// SHA-256 fingerprint of the CAPF certificate, as the CLI shows it.
    pub fingerprint: String,
    /// The certificate, DER.
    pub certificate: Vec<u8>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("database", &self.target.shown)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Opens the CAPF data in the database at `address` (a
    /// `postgres://user@host:port/dbname` URL or `host=... dbname=...`
    /// pairs), bringing an older schema up to date. TLS when the address
    /// says `sslmode=require`, checked against `ca_file` or the system's
    /// CA bundle.
    ///
    /// # Errors
    /// [`PostgresError::NotInitialised`] if the database holds no CAPF
    /// tables ([`create`](Self::create) makes them);
    /// [`PostgresError::SchemaTooNew`]; [`PostgresError::Connect`].
    pub fn open(address: &str, ca_file: Option<&Path>) -> Result<Self, PostgresError> {
        Self::start(address, ca_file, false)
    }

    /// [`open`](Self::open), creating the CAPF tables in an empty
    /// database (as `capf init` does).
    ///
    /// # Errors
    /// As [`open`](Self::open), but not `NotInitialised`.
    pub fn create(address: &str, ca_file: Option<&Path>) -> Result<Self, PostgresError> {
        Self::start(address, ca_file, true)
    }

    fn start(address: &str, ca_file: Option<&Path>, create: bool) -> Result<Self, PostgresError> {
        let target = Target::parse(address, ca_file)?;
        let mut writer = target.connect()?;
        let prepared = blocking(|| -> Result<(), PostgresError> {
            if !create && schema::version(&mut writer)? == 0 {
                return Err(PostgresError::NotInitialised {
                    target: target.shown.clone(),
                });
            }
            schema::migrate(&mut writer, &target.shown)
        });
        if let Err(e) = prepared {
            // The client blocks on close: not on an async worker.
            blocking(|| drop(writer));
            return Err(e);
        }
        let reader = target.connect()?;
        let committer = Committer::start(writer, target.clone())?;
        Ok(Self {
            target,
            committer,
            reader: Mutex::new(Some(reader)),
        })
    }

    /// The database, for messages: `postgres://host:port/dbname` (never
    /// the password).
    pub fn database(&self) -> &str {
        &self.target.shown
    }

    /// The schema version of the database.
    ///
    /// # Errors
    /// [`PostgresError::Query`].
    pub fn schema_version(&self) -> Result<u32, PostgresError> {
        self.with_reader(schema::version)
    }

    /// Tells `observer` the size of every batch of changes committed.
    pub fn set_batch_observer(&self, observer: Arc<dyn Fn(usize) + Send + Sync>) {
        self.committer.set_observer(observer);
    }

    /// The CAPF certificate this database belongs to, if one was recorded.
    ///
    /// # Errors
    /// [`PostgresError::Query`].
    pub fn identity(&self) -> Result<Option<RecordedIdentity>, PostgresError> {
        self.with_reader(|conn| {
            let rows = conn.query(
                "SELECT fingerprint, certificate FROM capf_identity",
                &[],
                || "reading the CAPF identity of the database".to_owned(),
            )?;
            Ok(rows.first().map(|row| RecordedIdentity {
                fingerprint: row.get(0),
                certificate: row.get(1),
            }))
        })
    }

    /// Records that this database belongs to the CAPF with `certificate`
    /// (fingerprint `fingerprint`), unless it already belongs to one:
    /// then that must be the same certificate.
    ///
    /// # Errors
    /// [`PostgresError::IdentityMismatch`] naming both fingerprints.
    pub fn claim_identity(
        &self,
        fingerprint: &str,
        certificate: &[u8],
        at: SystemTime,
    ) -> Result<(), PostgresError> {
        let at = capf_operations::rows::nanos(at, "identity record time")?;
        let (fingerprint, certificate) = (fingerprint.to_owned(), certificate.to_vec());
        let target = self.target.shown.clone();
        self.with_reader(|conn| {
            conn.execute(
                "INSERT INTO capf_identity (fingerprint, certificate, recorded_at_ns) \
                 VALUES ($1, $2, $3) ON CONFLICT (only_one) DO NOTHING",
                &[&fingerprint, &certificate, &at],
                || "recording the CAPF identity of the database".to_owned(),
            )?;
            let rows = conn.query("SELECT fingerprint FROM capf_identity", &[], || {
                "reading the CAPF identity of the database".to_owned()
            })?;
            let recorded: String = rows.first().map(|r| r.get(0)).unwrap_or_default();
            if recorded != fingerprint {
                return Err(PostgresError::IdentityMismatch {
                    target,
                    database: recorded,
                    node: fingerprint,
                });
            }
            Ok(())
        })
    }

    /// The service parameters: the defaults with the stored values applied.
    ///
    /// # Errors
    /// [`PostgresError::StoredParameter`] if a stored value no longer
    /// validates.
    pub fn load_parameters(&self) -> Result<ServiceParameters, PostgresError> {
        self.with_reader(load_parameters_in)
    }

    /// Validates and stores one parameter, in its normalised form. Returns
    /// the parameters as they now are. Running servers keep the values
    /// they started with.
    ///
    /// # Errors
    /// [`PostgresError::Operations`] with an unknown or invalid parameter;
    /// nothing is stored then.
    pub fn save_parameter(
        &self,
        name: &str,
        value: &str,
    ) -> Result<ServiceParameters, PostgresError> {
        self.with_reader(|conn| {
            let mut params = load_parameters_in(conn)?;
            params.set(name, value)?;
            let normalised = params.get(name).unwrap_or_else(|| value.to_owned());
            conn.execute(
                "INSERT INTO service_parameters (name, value) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                &[&name, &normalised],
                || format!("saving service parameter {name}"),
            )?;
            Ok(params)
        })
    }

    /// Returns one parameter to its default; returns the parameters as
    /// they now are.
    ///
    /// # Errors
    /// [`PostgresError::Operations`] for a name that does not exist.
    pub fn reset_parameter(&self, name: &str) -> Result<ServiceParameters, PostgresError> {
        if ServiceParameters::default().get(name).is_none() {
            return Err(OperationsError::UnknownParameter {
                name: name.to_owned(),
            }
            .into());
        }
        self.with_reader(|conn| {
            conn.execute(
                "DELETE FROM service_parameters WHERE name = $1",
                &[&name],
                || format!("resetting service parameter {name}"),
            )?;
            load_parameters_in(conn)
        })
    }

    /// Runs `f` on the reader connection, connecting again if it broke.
    fn with_reader<T>(
        &self,
        f: impl FnOnce(&mut Conn) -> Result<T, PostgresError>,
    ) -> Result<T, PostgresError> {
        blocking(|| {
            let mut reader = lock(&self.reader);
            if reader.as_ref().is_none_or(Conn::is_closed) {
                *reader = Some(self.target.connect()?);
            }
            let Some(conn) = reader.as_mut() else {
                // Just set above.
                return Err(OperationsError::Unanswered.into());
            };
            f(conn)
        })
    }
}

fn load_parameters_in(conn: &mut Conn) -> Result<ServiceParameters, PostgresError> {
    let rows = conn.query(
        "SELECT name, value FROM service_parameters ORDER BY name",
        &[],
        || "reading the service parameters".to_owned(),
    )?;
    let mut params = ServiceParameters::default();
    for row in rows {
        let name: String = row.get(0);
        let value: String = row.get(1);
        params
            .set(&name, &value)
            .map_err(|source| PostgresError::StoredParameter {
                name,
                source: Box::new(source),
            })?;
    }
    Ok(params)
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // The client blocks on close: not on an async worker.
        let reader = lock(&self.reader).take();
        blocking(|| drop(reader));
    }
}

/// Changes go to the node's committer thread (group commit: those queued
/// at the same moment share one transaction and one `COMMIT`, each in its
/// own savepoint) and are answered after the `COMMIT`. Each change holds
/// the devices it touches until then, against every node. Reads see the
/// last committed state, in one snapshot.
impl StoreBackend for PostgresStore {
    fn write<T, C, D>(&self, change: C, done: D)
    where
        T: Send + 'static,
        C: FnOnce(&mut dyn StoreTransaction) -> Result<T, OperationsError> + Send + 'static,
        D: FnOnce(Result<T, OperationsError>) + Send + 'static,
    {
        self.committer.submit(Box::new(Change::new(change, done)));
    }

    fn write_touching<T, C, D>(&self, touching: &Touching, change: C, done: D)
    where
        T: Send + 'static,
        C: FnOnce(&mut dyn StoreTransaction) -> Result<T, OperationsError> + Send + 'static,
        D: FnOnce(Result<T, OperationsError>) + Send + 'static,
    {
        self.committer
            .submit(Box::new(Change::new(change, done).touching(touching)));
    }

    fn read<T, R>(&self, read: R) -> Result<T, OperationsError>
    where
        R: FnOnce(&mut dyn StoreReads) -> Result<T, OperationsError>,
    {
        let result = self.with_reader(|conn| {
            // Sent with the read's first statement.
            conn.defer_simple("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
            let result = read(&mut Rows::reading(conn));
            conn.batch_execute("COMMIT")?;
            Ok(result)
        });
        result.map_err(OperationsError::from)?
    }
}
