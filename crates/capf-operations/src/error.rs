//! The one error type of this crate.

/// What can go wrong in the device model, the service parameters and the
/// stores.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OperationsError {
    /// A device name that Cisco call control would not accept.
    #[error("invalid device name {name:?}: {why}")]
    InvalidDeviceName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A service parameter that does not exist.
    #[error("unknown service parameter {name:?} (see `capf params show`)")]
    UnknownParameter {
        /// The name as given.
        name: String,
    },
    /// A service parameter value out of range or unparsable.
    #[error("invalid value {value:?} for service parameter {name}: {why}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// The value as given.
        value: String,
        /// What is wrong with it.
        why: String,
    },
    /// The device is not in the store.
    #[error("device {name} is not configured")]
    UnknownDevice {
        /// The device name.
        name: String,
    },
    /// A device with this name already exists.
    #[error("device {name} already exists")]
    DeviceExists {
        /// The device name.
        name: String,
    },
    /// Another session holds the device's lease.
    #[error("device {name} is busy: another session holds its lease")]
    DeviceBusy {
        /// The device name.
        name: String,
    },
    /// A commit came with a lease that is no longer held.
    #[error("lease on device {name} was lost (expired or released) before the commit")]
    LeaseLost {
        /// The device name.
        name: String,
    },
    /// A query that cannot be run.
    #[error("invalid query: {why}")]
    InvalidQuery {
        /// What is wrong with it.
        why: String,
    },
    /// The policy layer refused an operator change (e.g. B29).
    #[error("device {name}: {source}")]
    Policy {
        /// The device name.
        name: String,
        /// The policy error.
        source: capf_auth::AuthError,
    },
    /// A certificate or key could not be read.
    #[error("device {name}: {source}")]
    Certificate {
        /// The device name.
        name: String,
        /// The CA layer's error.
        source: capf_ca::CaError,
    },
    /// The store's backend failed (database, disk, network).
    #[error("store failure: {0}")]
    Store(String),
}
