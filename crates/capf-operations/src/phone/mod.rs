//! The phone's side of CAPF: a [`PhoneSession`] for a phone simulator and
//! for talking to other CAPF servers, and the phone's rules as types.
//!
//! * [`PhoneSession`]: one connection, sans-IO.
//!   Configured by [`PhoneConfig`] with [`Credentials`]; asks its runtime for
//!   slow work through [`PhoneEvent`]s; ends with a [`PhoneOutcome`]; shows
//!   a [`PhoneStatus`] at any time.
//! * [`RetryPolicy`]: 3 more attempts, 30 s apart, after a communication
//!   failure.
//! * [`PersistentState`]: the authentication mode kept across a power loss
//!   and cleared when the operation completes, with a line-based text
//!   format.
//!
//! Decisions a reader may look for:
//! * One REQUEST_IN_PROGRESS per session, sent before the first key is
//!   asked for (as capfc does; capfd tolerates at most one). When the key
//!   cannot be made the phone answers KEY_GENERATE_RESPONSE with REASON=7
//!   and no key, and accepts another KEY_GENERATE_REQUEST, without a second
//!   REQUEST_IN_PROGRESS.
//! * KEY_TYPE absent means RSA, KEY_SIZE absent 2048 (CUCM omits KEY_TYPE).
//! * AUTH_REQUEST's VERSION and AUTH_TYPE are not checked: the phone follows
//!   its own configuration.
//! * END_SESSION is accepted everywhere. Reason 0 or 1 after the phone's
//!   part is a success; right after authentication it means "nothing
//!   scheduled"; 9 there means "unknown device", anything else "refused".
//! * No deadline while the runtime works; each wait for the server has its
//!   own [`PhoneConfig::reply_timeout`], counted from the phone's last
//!   message.
//! * While the runtime stores or deletes the certificate, END_SESSION, a
//!   lost connection, a protocol error or an abort take effect when it
//!   answers, so the outcome says whether the LSC changed.

mod auth_response;
mod config;
mod events;
mod outcome;
mod persistent_state;
mod retry;
mod session;
mod states;
mod status;

pub use config::{CertificateCredentials, Credentials, PhoneConfig, SudiCredentials};
pub use events::{KeyGenFailure, PhoneEvent};
pub use outcome::{
    FailureCause, LscChange, PhoneFailure, PhoneOutcome, PhoneSuccess, ProtocolViolation,
};
pub use persistent_state::{PendingOperation, PersistentState, StateFileError};
pub use retry::RetryPolicy;
pub use session::PhoneSession;
pub use status::{PhoneOperation, PhoneStatus, PhoneStep};
