//! The one error type of this crate.

use std::net::SocketAddr;
use std::path::PathBuf;

/// What can stop the server or the phone client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS configuration could not be built from the CAPF identity.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// The CA layer failed (loading keys or certificates).
    #[error(transparent)]
    Ca(#[from] capf_ca::CaError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] capf_operations::OperationsError),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The phone client could not reach or talk to the server.
    #[error("connecting to {server}: {why}")]
    Connect {
        /// The server as given.
        server: String,
        /// Why.
        why: String,
    },
}
