#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod backup;
mod cached;
mod device_row;
mod error;
mod group;
mod params;
mod schema;
mod store;
mod time;

pub use backup::ExistingTarget;
pub use error::StoreError;
pub use schema::SCHEMA_VERSION;
pub use store::{CertificateHistory, SqliteStore};
