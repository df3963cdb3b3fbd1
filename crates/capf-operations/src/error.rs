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
    /// A session holds the device (its lease): a second session, or an
    /// operator change that the running session depends on, must wait.
    #[error("device {name} is busy: a session is running, try again")]
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
    /// The policy layer refused an operator change (e.g. a delete for a
    /// device with no LSC on record).
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
        source: Box<capf_ca::CaError>,
    },
    /// An operator edit that cannot be applied to the device as it is.
    #[error("device {name}: {why}")]
    InvalidEdit {
        /// The device name.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// A serial number the store already holds for another certificate.
    #[error("serial {serial} was already issued (to {device})")]
    SerialConflict {
        /// The serial, lower-case hex.
        serial: String,
        /// The device the existing certificate was issued to.
        device: String,
    },
    /// A session's change that names another device than its lease.
    #[error("a change for {change} was committed under the lease of {lease}")]
    WrongDevice {
        /// The device the change names.
        change: String,
        /// The device the lease holds.
        lease: String,
    },
    /// A stored row that does not decode into the model (hand-edited or
    /// damaged).
    #[error("corrupt row in {table} ({key}): {why}")]
    CorruptRow {
        /// The table.
        table: &'static str,
        /// The row's key (device name, serial).
        key: String,
        /// What is wrong.
        why: String,
    },
    /// A time the store cannot represent (a lease expiry far in the future).
    #[error("{what}: time out of range")]
    TimeOutOfRange {
        /// Which time.
        what: &'static str,
    },
    /// Signing an LSC failed.
    #[error("device {name}: issuing its LSC failed: {source}")]
    Issuance {
        /// The device name.
        name: String,
        /// The CA layer's error.
        source: Box<capf_ca::CaError>,
    },
    /// Too many certificates are being signed at once; the session gave up
    /// waiting for its turn.
    #[error("server busy: too many certificates being issued at once")]
    IssuanceBusy,
    /// A session asked for a commit without holding a lease.
    #[error("no lease held on the device")]
    NoLease,
    /// A store dropped a request without answering it (it shut down, or a
    /// task failed).
    #[error("the store dropped a request unanswered")]
    Unanswered,
    /// An account name or role that is not valid.
    #[error("account {name:?}: {reason}")]
    InvalidAccount {
        /// The name (escaped) or the text given.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// An account name or token id that is already taken.
    #[error("{what} {name} already exists")]
    AccountExists {
        /// `account` or `token`.
        what: &'static str,
        /// The name or id.
        name: String,
    },
    /// The change would leave no admin account.
    #[error("account {name} is the last admin: add another admin first")]
    LastAdmin {
        /// The account.
        name: String,
    },
    /// The store's backend does not keep this kind of record (an
    /// application's own backend that implements only the device rows).
    #[error("this store does not keep {what}")]
    Unsupported {
        /// What it does not keep: `operator accounts`, `API tokens`, `a
        /// searchable audit log`.
        what: &'static str,
    },
    /// The store's backend failed (database, disk, network).
    #[error("store failure: {0}")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl OperationsError {
    /// A backend's own error, kept as the source.
    pub fn store(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        OperationsError::Store(source.into())
    }
}
