//! [`PhoneSession`]: one CAPF session from the phone's side, sans-IO.

use std::fmt;
use std::mem;
use std::time::SystemTime;

use capf_wire::Message;

use super::config::PhoneConfig;
use super::events::{KeyGenFailure, PhoneEvent};
use super::outcome::{FailureCause, PhoneOutcome, ProtocolViolation};
use super::states::{AwaitingAuthRequest, Io, Next, State};
use super::status::PhoneStatus;
use crate::transmit::Transmit;

/// One CAPF session from the phone's side: one connection, one operation.
///
/// No I/O, no clock, no threads: the runtime passes in what arrives
/// ([`handle_message`](Self::handle_message)), the time
/// ([`handle_timeout`](Self::handle_timeout)) and the results of the slow
/// work it was asked for (key generation, certificate storage), and pulls out
/// what to send ([`poll_transmit`](Self::poll_transmit)), what to do
/// ([`poll_event`](Self::poll_event)) and when to wake up
/// ([`poll_timeout`](Self::poll_timeout)). After every call, drain
/// `poll_transmit` and `poll_event`, then re-read `poll_timeout`.
///
/// The flow: AUTH_REQUEST (its session id is adopted),
/// AUTH_RESPONSE, then exactly one of install (KEY_GENERATE_REQUEST,
/// REQUEST_IN_PROGRESS, KEY_GENERATE_RESPONSE, STORE_CERTIFICATE_REQUEST,
/// STORE_CERTIFICATE_RESPONSE), fetch, delete or nothing, and END_SESSION,
/// which is also accepted at any point. Anything else ends the session as a
/// protocol error, with nothing more sent.
pub struct PhoneSession {
    config: PhoneConfig,
    state: State,
    io: Io,
    deadline: Option<SystemTime>,
    outcome: Option<PhoneOutcome>,
}

impl fmt::Debug for PhoneSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PhoneSession")
            .field("device_name", &self.config.device_name)
            .field("session_id", &self.io.session_id)
            .field("status", &self.status())
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl PhoneSession {
    /// A session that has just connected (the TLS handshake is done) at
    /// `now`, waiting for AUTH_REQUEST.
    pub fn new(config: PhoneConfig, now: SystemTime) -> Self {
        let deadline = now.checked_add(config.reply_timeout);
        PhoneSession {
            config,
            state: State::AwaitingAuthRequest(AwaitingAuthRequest),
            io: Io::default(),
            deadline,
            outcome: None,
        }
    }

    /// The configuration the session runs with.
    #[must_use]
    pub fn config(&self) -> &PhoneConfig {
        &self.config
    }

    /// The session id AUTH_REQUEST set, once it has come.
    #[must_use]
    pub fn session_id(&self) -> Option<u32> {
        self.io.session_id
    }

    /// A message from the server, with the session id of its frame. Ignored
    /// once the session is finished.
    pub fn handle_message(&mut self, now: SystemTime, session_id: u32, message: Message) {
        if self.is_finished() {
            return;
        }
        match self.io.session_id {
            None if matches!(message, Message::AuthRequest(_)) => {
                self.io.session_id = Some(session_id);
            }
            Some(expected) if expected != session_id => {
                let violation = ProtocolViolation::SessionIdMismatch {
                    expected,
                    found: session_id,
                };
                self.interrupt(now, FailureCause::ProtocolError(violation));
                return;
            }
            _ => {}
        }
        let sent = self.io.sent;
        let state = mem::replace(&mut self.state, State::Finished);
        let next = state.handle_message(message, &self.config, &mut self.io);
        self.advance(now, next, sent);
    }

    /// A frame the runtime could not decode: the session ends as a
    /// protocol error (`error` is kept as text in the outcome).
    pub fn handle_malformed(&mut self, now: SystemTime, error: impl fmt::Display) {
        let violation = ProtocolViolation::Malformed(error.to_string());
        self.interrupt(now, FailureCause::ProtocolError(violation));
    }

    /// Time has passed: at or past [`poll_timeout`](Self::poll_timeout) the
    /// session ends as timed out at its current step.
    pub fn handle_timeout(&mut self, now: SystemTime) {
        if self.deadline.is_some_and(|deadline| now >= deadline) {
            self.interrupt(now, FailureCause::TimedOut);
        }
    }

    /// The next message to send: encode it and write the whole frame in one
    /// write.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.io.transmits.pop_front()
    }

    /// The next piece of work for the runtime.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<PhoneEvent> {
        self.io.events.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout): the deadline
    /// of the current wait for the server. `None` while the runtime works
    /// (key generation may take 30 minutes or more) and once finished.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<SystemTime> {
        self.deadline
    }

    /// The runtime's answer to [`PhoneEvent::GenerateKey`]: the DER
    /// SubjectPublicKeyInfo of the new key, or why there is none. Ignored
    /// when no key was asked for (e.g. the session ended meanwhile).
    pub fn key_generated(&mut self, now: SystemTime, result: Result<Vec<u8>, KeyGenFailure>) {
        let sent = self.io.sent;
        match mem::replace(&mut self.state, State::Finished) {
            State::GeneratingKey(s) => {
                let next = s.key_generated(result, &mut self.io);
                self.advance(now, next, sent);
            }
            other => self.state = other,
        }
    }

    /// The runtime's answer to [`PhoneEvent::StoreCertificate`]. Ignored
    /// when nothing is being stored.
    pub fn certificate_stored(&mut self, now: SystemTime, stored: bool) {
        let sent = self.io.sent;
        match mem::replace(&mut self.state, State::Finished) {
            State::StoringCertificate(s) => {
                let next = s.stored(stored, &mut self.io);
                self.advance(now, next, sent);
            }
            other => self.state = other,
        }
    }

    /// The runtime's answer to [`PhoneEvent::DeleteCertificate`]: whether
    /// there was an LSC to delete. Ignored when nothing is being deleted.
    pub fn certificate_deleted(&mut self, now: SystemTime, had_one: bool) {
        let sent = self.io.sent;
        match mem::replace(&mut self.state, State::Finished) {
            State::DeletingCertificate(s) => {
                let next = s.deleted(had_one, &mut self.io);
                self.advance(now, next, sent);
            }
            other => self.state = other,
        }
    }

    /// The user stops the operation: nothing more is sent (messages
    /// not yet polled are dropped) and the session ends as aborted. When the
    /// runtime is storing or deleting the certificate, the session ends when
    /// it answers, so the outcome says what changed.
    pub fn abort(&mut self, now: SystemTime) {
        self.io.transmits.clear();
        self.interrupt(now, FailureCause::Aborted);
    }

    /// The runtime lost the connection (or the server closed it) before
    /// END_SESSION: a communication failure. Harmless once finished.
    pub fn connection_lost(&mut self, now: SystemTime) {
        if !self.is_finished() {
            self.io.transmits.clear();
        }
        self.interrupt(now, FailureCause::ConnectionLost);
    }

    /// What the phone shows: pending (at which step, which operation), or
    /// how it ended.
    #[must_use]
    pub fn status(&self) -> PhoneStatus {
        match (&self.outcome, self.state.step()) {
            (Some(PhoneOutcome::Succeeded(s)), _) => PhoneStatus::Succeeded(s.clone()),
            (Some(PhoneOutcome::Failed(f)), _) => PhoneStatus::Failed(f.clone()),
            (None, step) => PhoneStatus::Pending {
                step: step.unwrap_or(super::status::PhoneStep::AwaitingAuthRequest),
                operation: self.io.operation,
            },
        }
    }

    /// Whether the session is over.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.outcome.is_some()
    }

    /// How the session ended, once it has.
    #[must_use]
    pub fn outcome(&self) -> Option<&PhoneOutcome> {
        self.outcome.as_ref()
    }

    fn interrupt(&mut self, now: SystemTime, cause: FailureCause) {
        if self.is_finished() {
            return;
        }
        let sent = self.io.sent;
        let state = mem::replace(&mut self.state, State::Finished);
        let next = state.interrupt(cause);
        self.advance(now, next, sent);
    }

    /// Installs the next state. A wait for the server gets a new deadline
    /// when the phone has just sent something; a wait for the runtime has
    /// none.
    fn advance(&mut self, now: SystemTime, next: Next, sent_before: u64) {
        match next {
            Next::To(state) => {
                if !state.waits_for_server() {
                    self.deadline = None;
                } else if self.io.sent != sent_before {
                    self.deadline = now.checked_add(self.config.reply_timeout);
                }
                self.state = state;
            }
            Next::Finish(outcome) => {
                self.state = State::Finished;
                self.deadline = None;
                self.outcome = Some(outcome);
                self.io.events.push_back(PhoneEvent::Finished);
            }
        }
    }
}
