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

/// The operator REST API (`capf-admin`): [`admin::router`] is an axum
/// router to mount in an application of one's own, over any store that
/// keeps devices and operator accounts (e.g. [`store::SqliteStore`]);
/// [`admin::serve`] serves it on its own. See `examples/admin_router.rs`.
#[cfg(feature = "admin")]
pub use capf_admin as admin;
