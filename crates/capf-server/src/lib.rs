#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod admission;
mod clock;
mod connection;
mod error;
#[cfg(feature = "legacy-tls")]
mod legacy_tls;
mod metrics;
mod observer;
mod options;
mod phone_client;
mod server;
mod summary;
mod tls;
mod traces;

pub use error::ServerError;
pub use metrics::Metrics;
pub use observer::{Observer, serve_observer};
pub use options::{CAPF_PORT, ServerOptions, SessionHook};
pub use phone_client::{PhoneClient, PhoneRun};
pub use server::CapfServer;
pub use tls::{phone_client_config, pinned_capf_verifier, server_config};
