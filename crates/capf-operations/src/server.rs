//! The server side of a CAPF session, sans-IO.
//!
//! One [`ServerSession`] per connection. It never touches a socket, a clock
//! or the store: the runtime feeds it messages ([`ServerSession::handle_message`]),
//! the time ([`ServerSession::handle_timeout`]) and the answers to its
//! events, and pulls what to send ([`ServerSession::poll_transmit`]), what to
//! do ([`ServerSession::poll_event`]) and when to wake it
//! ([`ServerSession::poll_timeout`]).
//!
//! The commit order is built in: the session asks for the issued
//! certificate to be recorded ([`ServerEvent::Commit`] with
//! [`SessionCommit::Issued`](crate::SessionCommit::Issued)) and sends it
//! only once the runtime reports the record durable
//! ([`ServerSession::committed`]); it asks for the operation to be marked
//! successful only after the phone confirms, and sends END_SESSION(1) only
//! once that is durable. Authentication results, refusals included, are
//! made durable before the phone hears the answer, so a crash never gives a
//! free guess.

mod authentication;
mod outcome;
mod session;
mod states;

use std::sync::Arc;

use capf_ca::{KeyPolicy, KeySpec, TrustStore};

pub use outcome::{OutcomeKind, SessionOutcome};
pub use session::{ServerSession, new_session_id};

use crate::{DeviceName, ServiceParameters, SessionCommit};

/// What a server session needs besides its messages: service parameters,
/// the trust anchors for certificate authentication, the phone-key policy.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Service parameters (timeouts, attempts, default key...).
    pub params: ServiceParameters,
    /// Trust anchors for "existing certificate" authentication: our issuer
    /// for LSCs, the manufacturer CAs for MICs.
    pub trust: Arc<TrustStore>,
    /// Which phone keys are acceptable.
    pub key_policy: KeyPolicy,
}

impl ServerConfig {
    /// A configuration with these parameters and trust anchors, and the
    /// default key policy.
    pub fn new(params: ServiceParameters, trust: TrustStore) -> Self {
        ServerConfig {
            params,
            trust: Arc::new(trust),
            key_policy: KeyPolicy::default(),
        }
    }
}

/// Something the runtime must do for the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerEvent {
    /// Take the device's exclusive lease and load its record
    /// ([`SessionStore::begin`](crate::SessionStore::begin)); answer with
    /// [`ServerSession::device_loaded`].
    LoadDevice(DeviceName),
    /// Make this change durable under the lease
    /// ([`SessionStore::commit`](crate::SessionStore::commit)); answer
    /// with [`ServerSession::committed`].
    Commit {
        /// The change.
        change: SessionCommit,
        /// The session ends once this is durable: give the lease back in
        /// the same transaction.
        release_lease: bool,
    },
    /// Sign an LSC for this key (the runtime bounds how many are signed at
    /// once); answer with [`ServerSession::issued`].
    Issue(IssueRequest),
    /// The session is over: send what is queued, release the lease (if the
    /// last commit did not), close.
    Finished(SessionOutcome),
}

/// A request to sign an LSC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssueRequest {
    /// The device (the certificate's CN).
    pub device: DeviceName,
    /// The phone's public key, DER SubjectPublicKeyInfo, already validated.
    pub public_key: Vec<u8>,
    /// The key's kind and size.
    pub key: KeySpec,
}
