#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod commit;
mod device;
mod device_name;
mod driver;
mod error;
mod memory_store;
mod params;
mod query;
mod store;
mod transmit;

pub mod phone;
pub mod server;

pub use commit::{CompletedWork, IssuedRecord, SessionCommit};
pub use device::{CertificateRecord, Device, LastError, RetrievedKind};
pub use device_name::{DeviceName, OTHER_PREFIXES};
pub use driver::SessionDriver;
pub use error::OperationsError;
pub use memory_store::MemoryStore;
pub use params::{ParameterInfo, ServiceParameters};
pub use query::{
    DevicePage, DeviceQuery, SortColumn, StatusFilter, TextCriterion, TextField, TextMatch,
};
pub use server::{
    DeviceLookup, IssueRequest, OutcomeKind, ServerConfig, ServerEvent, ServerSession,
    SessionOutcome,
};
pub use store::{AuditEntry, Deferred, DeviceStore, Lease, audit_entries};
pub use transmit::Transmit;

// Re-exported so that users of the sessions need not depend on the layers
// below for the types in this crate's API.
pub use capf_auth;
pub use capf_ca;
pub use capf_wire;
