#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod account_row;
mod audit_row;
mod backend;
mod backup;
mod cached;
mod certificate_row;
mod device_row;
mod error;
mod group;
mod lease_row;
mod params;
mod schema;
mod store;

pub use backup::{ExistingTarget, Restored};
pub use error::StoreError;
pub use schema::SCHEMA_VERSION;
pub use store::SqliteStore;
