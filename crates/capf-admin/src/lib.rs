#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod accounts;
mod auth;
mod body;
mod devices;
mod error;
mod misc;
mod openapi;
mod pages;
mod params;
pub mod password;
mod router;
mod serve;
mod sessions;
mod state;
mod throttle;
use capf_operations::time_text;
pub mod token;
pub mod views;

pub use accounts::{AccountView, CreatedToken, TokenView};
pub use auth::{CSRF_HEADER, Operator, SESSION_COOKIE, Via};
pub use devices::{BulkResult, BulkView, ChangeView, Criteria, DeviceFields, Generate, MAX_BULK};
pub use error::AdminError;
pub use misc::{AuditFilter, CaView, CertificateFormat, Health};
pub use openapi::openapi;
pub use params::{ParameterView, ParametersView};
pub use router::router;
pub use serve::serve;
pub use state::{AdminOptions, AdminState, AdminStore, Clock, MemoryParameters, ParameterStore};
pub use throttle::ThrottleOptions;
