#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod auth_string;
mod decision;
mod error;
mod mode;
mod operation;
mod params;
mod policy;
mod presented;
mod refusal;
mod security_mode;

pub use auth_string::AuthString;
pub use decision::{AuthenticatedBy, Decision, Grant, Verdict};
pub use error::AuthError;
pub use mode::AuthMode;
pub use operation::{Certificates, FailureReason, Operation, OperationStatus};
pub use params::Parameters;
pub use policy::{DevicePolicy, PolicyUpdate};
pub use presented::{
    CertificateFailure, CertificateKind, Presented, PresentedCertificate, Verification,
};
pub use refusal::Refusal;
pub use security_mode::{
    CannotRegisterReason, CapfContact, Registration, SecurityMode, capf_contact,
    registration_after_reset,
};
