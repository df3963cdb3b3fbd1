//! The errors of the PostgreSQL store.

use capf_operations::OperationsError;

/// What can go wrong with the PostgreSQL store. Every variant says which
/// database (its address without the password) or what was being done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresError {
    /// The database address does not parse.
    #[error("database address: {reason}")]
    BadAddress {
        /// Why.
        reason: String,
    },
    /// The database could not be reached, or refused the login.
    #[error("connecting to {target}: {source}")]
    Connect {
        /// The database (host, port, name; never the password).
        target: String,
        /// The client's error.
        source: tokio_postgres::Error,
    },
    /// TLS to the database could not be set up.
    #[error("TLS to the database: {reason}")]
    Tls {
        /// Why.
        reason: String,
    },
    /// A statement failed.
    #[error("{context}: {}", describe(source))]
    Query {
        /// What was being done.
        context: String,
        /// The client's error.
        source: tokio_postgres::Error,
    },
    /// The database was written by a newer CAPF.
    #[error(
        "{target} has schema version {found}, newer than this CAPF knows ({supported}): \
         upgrade this node"
    )]
    SchemaTooNew {
        /// The database.
        target: String,
        /// Its version.
        found: u32,
        /// The newest this crate knows.
        supported: u32,
    },
    /// The database holds no CAPF tables yet.
    #[error("{target} holds no CAPF data: run capf init with this database first")]
    NotInitialised {
        /// The database.
        target: String,
    },
    /// The database belongs to a CAPF with another certificate.
    #[error(
        "{target} belongs to the CAPF whose certificate has fingerprint {database}, \
         but this node's certificate has fingerprint {node}: give this node that CAPF's \
         identity (capf restore --identity-only from a backup of the first node) or use \
         another database"
    )]
    IdentityMismatch {
        /// The database.
        target: String,
        /// The fingerprint the database records.
        database: String,
        /// This node's fingerprint.
        node: String,
    },
    /// A stored row does not read back.
    #[error("{table} row {key}: {why}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The row's key.
        key: String,
        /// What is wrong.
        why: String,
    },
    /// A stored service parameter no longer validates.
    #[error("stored service parameter {name}: {source}")]
    StoredParameter {
        /// The parameter.
        name: String,
        /// Why it was refused.
        source: Box<OperationsError>,
    },
    /// The database client's runtime could not start.
    #[error("starting the database client: {0}")]
    Runtime(std::io::Error),
    /// The store's committer thread could not start.
    #[error("starting the store's committer thread: {0}")]
    Thread(std::io::Error),
    /// A rule of the store contract refused the change.
    #[error(transparent)]
    Operations(Box<OperationsError>),
}

/// The database's own message, with its detail and hint when it gave them.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut text = db.message().to_owned();
            if let Some(detail) = db.detail() {
                text.push_str(" (");
                text.push_str(detail);
                text.push(')');
            }
            if let Some(hint) = db.hint() {
                text.push_str("; ");
                text.push_str(hint);
            }
            text
        }
        None => e.to_string(),
    }
}

impl PostgresError {
    /// Whether the connection to the database is gone (it restarted, or
    /// the network failed), rather than one statement refused.
    pub(crate) fn is_connection_lost(&self) -> bool {
        matches!(self, PostgresError::Query { source, .. } if source.is_closed())
    }

    /// A mapper for `map_err`: the statement's error with what was being
    /// done.
    pub(crate) fn query(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Self {
        let context = context.into();
        move |source| PostgresError::Query { context, source }
    }

    pub(crate) fn corrupt(
        table: &'static str,
        key: impl Into<String>,
        why: impl Into<String>,
    ) -> Self {
        PostgresError::Corrupt {
            table,
            key: key.into(),
            why: why.into(),
        }
    }
}

impl From<PostgresError> for OperationsError {
    fn from(e: PostgresError) -> Self {
        match e {
            PostgresError::Operations(inner) => *inner,
            PostgresError::Corrupt { table, key, why } => {
                OperationsError::CorruptRow { table, key, why }
            }
            other => OperationsError::store(other),
        }
    }
}

impl From<OperationsError> for PostgresError {
    fn from(e: OperationsError) -> Self {
        PostgresError::Operations(Box::new(e))
    }
}
