//! The server session's states, each named after what it waits for.

use std::time::SystemTime;

use capf_ca::KeySpec;
use capf_wire::{AuthResponse, Reason};

use super::OutcomeKind;

/// Waiting for the phone's key (KEY_GENERATE_RESPONSE).
#[derive(Debug)]
pub(super) struct KeyWait {
    /// What KEY_GENERATE_REQUEST asked for.
    pub(super) requested: KeySpec,
    /// Which attempt this is, from 1.
    pub(super) attempt: u32,
    /// Whether REQUEST_IN_PROGRESS came.
    pub(super) in_progress: bool,
    /// When KEY_GENERATE_REQUEST was sent.
    pub(super) requested_at: SystemTime,
    /// Reply deadline, then the key-generation deadline.
    pub(super) deadline: SystemTime,
}

/// What to do once a commit is durable.
#[derive(Debug)]
pub(super) enum AfterCommit {
    /// Send END_SESSION with this reason and finish.
    End { reason: Reason, kind: OutcomeKind },
    /// Authentication passed: start the operation.
    Start,
    /// The issued certificate is recorded: send it.
    SendCertificate {
        der: Vec<u8>,
        serial_hex: String,
        subject: String,
    },
}

impl AfterCommit {
    pub(super) fn what(&self) -> &'static str {
        match self {
            AfterCommit::End { .. } => "the session's result",
            AfterCommit::Start => "the authentication result",
            AfterCommit::SendCertificate { .. } => "the issued certificate",
        }
    }
}

#[derive(Debug)]
pub(super) enum State {
    AwaitingAuthResponse {
        deadline: SystemTime,
    },
    AwaitingDevice {
        auth: Box<AuthResponse>,
    },
    AwaitingCommit(AfterCommit),
    AwaitingPublicKey(KeyWait),
    AwaitingIssuance,
    AwaitingStoreResult {
        serial_hex: String,
        subject: String,
        deadline: SystemTime,
    },
    AwaitingFetchResult {
        deadline: SystemTime,
    },
    AwaitingDeleteResult {
        deadline: SystemTime,
    },
    Ended,
}

impl State {
    pub(super) fn waiting_for(&self) -> &'static str {
        match self {
            State::AwaitingAuthResponse { .. } => "AUTH_RESPONSE",
            State::AwaitingDevice { .. } => "the device record",
            State::AwaitingCommit(_) => "a durable commit",
            State::AwaitingPublicKey(_) => "KEY_GENERATE_RESPONSE",
            State::AwaitingIssuance => "the certificate to be signed",
            State::AwaitingStoreResult { .. } => "STORE_CERTIFICATE_RESPONSE",
            State::AwaitingFetchResult { .. } => "FETCH_CERTIFICATE_RESPONSE",
            State::AwaitingDeleteResult { .. } => "DELETE_CERTIFICATE_RESPONSE",
            State::Ended => "nothing (ended)",
        }
    }

    pub(super) fn deadline(&self) -> Option<SystemTime> {
        match self {
            State::AwaitingAuthResponse { deadline }
            | State::AwaitingStoreResult { deadline, .. }
            | State::AwaitingFetchResult { deadline }
            | State::AwaitingDeleteResult { deadline } => Some(*deadline),
            State::AwaitingPublicKey(wait) => Some(wait.deadline),
            State::AwaitingDevice { .. }
            | State::AwaitingCommit(_)
            | State::AwaitingIssuance
            | State::Ended => None,
        }
    }
}
