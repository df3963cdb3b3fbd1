//! The device database a command works on: the SQLite file in the data
//! directory (the default), or a PostgreSQL database shared by several
//! servers (`--database postgres://...`). Both give the same store
//! contract; this enum hands each call to the one in use.

use std::path::PathBuf;
use std::sync::Arc;

use capf_operations::{
    OperationsError, ServiceParameters, StoreBackend, StoreReads, StoreTransaction, Touching,
};
use capf_store::SqliteStore;
use capf_store_postgres::PostgresStore;

use crate::Failure;

/// Where the devices are: `--database` and `--database-ca`.
#[derive(Clone, Debug)]
pub(crate) struct DatabaseAddress {
    /// `postgres://user@host:port/dbname` (or `host=... dbname=...`).
    pub(crate) url: String,
    /// CA certificates (PEM) that the database server's certificate is
    /// checked against with `sslmode=require`.
    pub(crate) ca_file: Option<PathBuf>,
}

/// The device database.
pub(crate) enum Store {
    /// The data directory's SQLite file.
    Sqlite(SqliteStore),
    /// A PostgreSQL database.
    Postgres(Box<PostgresStore>),
}

impl Store {
    /// Where the devices are, for messages.
    pub(crate) fn location(&self) -> String {
        match self {
            Store::Sqlite(s) => s
                .path()
                .map_or_else(|| "memory".to_owned(), |p| p.display().to_string()),
            Store::Postgres(p) => p.database().to_owned(),
        }
    }

    /// The SQLite store, for what only a file can do (online backup,
    /// clearing a dead server's leases).
    pub(crate) fn sqlite(&self) -> Option<&SqliteStore> {
        match self {
            Store::Sqlite(s) => Some(s),
            Store::Postgres(_) => None,
        }
    }

    pub(crate) fn load_parameters(&self) -> Result<ServiceParameters, Failure> {
        Ok(match self {
            Store::Sqlite(s) => s.load_parameters()?,
            Store::Postgres(p) => p.load_parameters()?,
        })
    }

    /// Saves one parameter; an unknown name or an invalid value is the
    /// operator's mistake (exit 2).
    pub(crate) fn save_parameter(
        &self,
        name: &str,
        value: &str,
    ) -> Result<ServiceParameters, Failure> {
        match self {
            Store::Sqlite(s) => s.save_parameter(name, value).map_err(sqlite_refusal),
            Store::Postgres(p) => p.save_parameter(name, value).map_err(postgres_refusal),
        }
    }

    /// Returns one parameter to its default.
    pub(crate) fn reset_parameter(&self, name: &str) -> Result<ServiceParameters, Failure> {
        match self {
            Store::Sqlite(s) => s.reset_parameter(name).map_err(sqlite_refusal),
            Store::Postgres(p) => p.reset_parameter(name).map_err(postgres_refusal),
        }
    }

    pub(crate) fn set_batch_observer(&self, observer: Arc<dyn Fn(usize) + Send + Sync>) {
        match self {
            Store::Sqlite(s) => s.set_batch_observer(observer),
            Store::Postgres(p) => p.set_batch_observer(observer),
        }
    }
}

fn refused(inner: &OperationsError) -> Failure {
    Failure::usage(format!("{inner} (see `capf params show`)"))
}

fn sqlite_refusal(e: capf_store::StoreError) -> Failure {
    match e {
        capf_store::StoreError::Operations(inner) => refused(&inner),
        other => Failure::new(other),
    }
}

fn postgres_refusal(e: capf_store_postgres::PostgresError) -> Failure {
    match e {
        capf_store_postgres::PostgresError::Operations(inner) => refused(&inner),
        other => Failure::new(other),
    }
}

impl StoreBackend for Store {
    fn write<T, C, D>(&self, change: C, done: D)
    where
        T: Send + 'static,
        C: FnOnce(&mut dyn StoreTransaction) -> Result<T, OperationsError> + Send + 'static,
        D: FnOnce(Result<T, OperationsError>) + Send + 'static,
    {
        match self {
            Store::Sqlite(s) => s.write(change, done),
            Store::Postgres(p) => p.write(change, done),
        }
    }

    fn write_touching<T, C, D>(&self, touching: &Touching, change: C, done: D)
    where
        T: Send + 'static,
        C: FnOnce(&mut dyn StoreTransaction) -> Result<T, OperationsError> + Send + 'static,
        D: FnOnce(Result<T, OperationsError>) + Send + 'static,
    {
        match self {
            Store::Sqlite(s) => s.write_touching(touching, change, done),
            Store::Postgres(p) => p.write_touching(touching, change, done),
        }
    }

    fn read<T, R>(&self, read: R) -> Result<T, OperationsError>
    where
        R: FnOnce(&mut dyn StoreReads) -> Result<T, OperationsError>,
    {
        match self {
            Store::Sqlite(s) => s.read(read),
            Store::Postgres(p) => p.read(read),
        }
    }

    fn check_writable(&self) -> Result<(), OperationsError> {
        match self {
            Store::Sqlite(s) => s.check_writable(),
            Store::Postgres(p) => p.check_writable(),
        }
    }
}

/// The console's `/api/v1/parameters` reads and writes the same table as
/// `capf params`.
impl capf_admin::ParameterStore for Store {
    fn load_parameters(&self) -> Result<ServiceParameters, OperationsError> {
        Ok(match self {
            Store::Sqlite(s) => s.load_parameters()?,
            Store::Postgres(p) => p.load_parameters()?,
        })
    }

    fn save_parameter(
        &self,
        name: &str,
        value: &str,
    ) -> Result<ServiceParameters, OperationsError> {
        Ok(match self {
            Store::Sqlite(s) => s.save_parameter(name, value)?,
            Store::Postgres(p) => p.save_parameter(name, value)?,
        })
    }

    fn reset_parameter(&self, name: &str) -> Result<ServiceParameters, OperationsError> {
        Ok(match self {
            Store::Sqlite(s) => s.reset_parameter(name)?,
            Store::Postgres(p) => p.reset_parameter(name)?,
        })
    }
}
