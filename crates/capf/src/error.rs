//! The facade's error.

/// What building or serving a [`Capf`](crate::Capf) can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CapfError {
    /// The builder was not given something it needs.
    #[error("the CAPF builder needs {what}: call .{what}(..)")]
    Missing {
        /// The builder method to call.
        what: &'static str,
    },
    /// The CA layer failed (e.g. the identity cannot sign).
    #[error(transparent)]
    Ca(#[from] capf_ca::CaError),
    /// The server failed (binding, TLS configuration).
    #[cfg(feature = "server")]
    #[error(transparent)]
    Server(#[from] capf_server::ServerError),
}
