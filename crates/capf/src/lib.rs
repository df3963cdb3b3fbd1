#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod builder;
mod error;

pub use builder::{Capf, CapfBuilder};
pub use error::CapfError;

/// CAPF messages and their bytes (`capf-wire`).
pub use capf_wire as wire;

/// The CAPF identity, LSC issuance, proof and chain verification (`capf-ca`).
pub use capf_ca as ca;

/// Authentication-mode policy (`capf-auth`).
pub use capf_auth as auth;

/// Sans-IO server and phone sessions, the `DeviceStore` contract (`capf-operations`).
pub use capf_operations as operations;

/// The SQLite `DeviceStore` (`capf-store`).
pub use capf_store as store;

/// The tokio TLS server and phone client (`capf-server`).
#[cfg(feature = "server")]
pub use capf_server as server;
