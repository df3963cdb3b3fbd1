//! How commands end: done, not done (exit 1, already reported), or a
//! failure with a message (exit 1) or a usage error (exit 2).

use std::fmt::Display;

/// A command that did not do what was asked.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) message: String,
    pub(crate) code: u8,
}

impl Failure {
    /// A failure (exit 1).
    pub(crate) fn new(message: impl Display) -> Self {
        Failure {
            message: message.to_string(),
            code: 1,
        }
    }

    /// A usage error (exit 2).
    pub(crate) fn usage(message: impl Display) -> Self {
        Failure {
            message: message.to_string(),
            code: 2,
        }
    }
}

macro_rules! failure_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Failure {
            fn from(e: $t) -> Self {
                Failure::new(e)
            }
        }
    )*};
}

failure_from!(
    capf_server::ServerError,
    crate::data_dir::DataDirError,
    capf_store::StoreError,
    capf_store_postgres::PostgresError,
    capf_operations::OperationsError,
    capf_ca::CaError,
    capf_auth::AuthError,
    std::io::Error
);

/// A command's result when it ran.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Did what was asked: exit 0.
    Done,
    /// Ran, but what was asked did not happen (e.g. the server refused the
    /// phone); the reason was printed: exit 1.
    NotDone,
}
