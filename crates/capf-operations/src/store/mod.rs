//! The store contract: what the server's sessions and the operators need
//! from a device database, and the small transaction interface a backend
//! implements to provide both.
//!
//! * [`SessionStore`]: begin (lease + load), commit (optionally releasing
//!   the lease in the same transaction), release. One calling convention:
//!   every call answers through a [`Reply`].
//! * [`OperatorStore`]: load, find, insert, modify (a [`DeviceEdit`](crate::DeviceEdit)
//!   applied inside the transaction), remove, certificate history, audit
//!   (a device's log, and a search of the whole log); `apply_all`, many
//!   inserts and edits handed to the backend at once (bulk import).
//! * [`StoreBackend`] with [`StoreTransaction`]: rows in, rows out. Both
//!   faces above are implemented for every backend, with the rules of a
//!   commit written once (`rules.rs`).
//! * [`AccountStore`]: operator accounts and API tokens (hashes only).
//! * [`DeviceStore`]: both faces, for those who need both (the facade).

mod account_store;
mod backend;
mod operator_store;
mod records;
pub mod rows;
mod rules;
mod session_store;

pub use account_store::{Account, AccountName, AccountStore, ApiToken, Role};
pub use backend::{StoreBackend, StoreReads, StoreTransaction, Touching};
pub use operator_store::{DeviceChange, OperatorStore};
pub use records::{AuditEntry, AuditQuery, CertificateHistory, Lease};
pub use session_store::{Reply, SessionStore};

/// A store with both faces: what sessions need and what operators need.
/// Implemented for every type that has both (every [`StoreBackend`]).
pub trait DeviceStore: SessionStore + OperatorStore {}

impl<T: SessionStore + OperatorStore + ?Sized> DeviceStore for T {}
