#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod commit;
mod device;
mod device_name;
mod driver;
mod edit;
mod error;
mod memory_store;
mod params;
mod query;
mod store;
mod text;
mod transmit;

#[cfg(feature = "testing")]
pub mod testing;

pub mod phone;
pub mod report;
pub mod server;
pub mod time_text;

pub use commit::{CompletedWork, IssuedRecord, SessionCommit};
pub use device::{CertificateRecord, Device, LastError, RetrievedKind, Revocation};
pub use device_name::{DeviceName, OTHER_PREFIXES};
pub use driver::SessionDriver;
pub use edit::{DeviceEdit, Edited};
pub use error::OperationsError;
pub use memory_store::MemoryStore;
pub use params::{ParameterInfo, ServiceParameters};
pub use query::{
    DevicePage, DeviceQuery, SortColumn, StatusFilter, TextCriterion, TextField, TextMatch,
    parse_lsc_status,
};
pub use server::{
    IssueRequest, OutcomeKind, ServerConfig, ServerEvent, ServerSession, SessionOutcome,
    new_session_id,
};
pub use store::rows;
pub use store::{
    Account, AccountName, AccountStore, ApiToken, AuditEntry, AuditQuery, CertificateHistory,
    DeviceChange, DeviceStore, Lease, OperatorStore, Reply, Role, SessionStore, StoreBackend,
    StoreReads, StoreTransaction, Touching,
};
pub use text::escape_text;
pub use transmit::Transmit;

// Re-exported so that users of the sessions need not depend on the layers
// below for the types in this crate's API.
pub use capf_auth;
pub use capf_ca;
pub use capf_wire;
