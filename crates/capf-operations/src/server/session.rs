//! [`ServerSession`]: the public face of the server's state machine.

use std::sync::Arc;
use std::time::SystemTime;

use capf_wire::{AuthRequest, Message, Reason};

use super::states::{Context, State};
use super::{OutcomeKind, ServerConfig, ServerEvent, SessionOutcome};
use crate::{Device, OperationsError, Transmit};

/// A session id for a new session: random, never 0, so that ids do not
/// repeat from one server start to the next and cannot be predicted.
pub fn new_session_id() -> u32 {
    let mut bytes = [0u8; 4];
    // Without the OS generator, fall back to the time: ids need only
    // differ between concurrent sessions.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(1, |d| d.subsec_nanos());
        bytes = nanos.to_le_bytes();
    }
    u32::from_le_bytes(bytes).max(1)
}

/// The server side of one CAPF session (one TLS connection).
#[derive(Debug)]
pub struct ServerSession {
    state: State,
    ctx: Context,
}

impl ServerSession {
    /// Starts a session: queues AUTH_REQUEST (VERSION=3, AUTH_TYPE=0, as
    /// capfd) and waits for AUTH_RESPONSE. Give each session its own id
    /// ([`new_session_id`]).
    pub fn new(session_id: u32, config: Arc<ServerConfig>, now: SystemTime) -> Self {
        let deadline = now + config.params.auth_timeout;
        let mut ctx = Context::new(session_id, config);
        ctx.send(Message::AuthRequest(AuthRequest::capfd()));
        ServerSession {
            state: State::awaiting_auth_response(deadline),
            ctx,
        }
    }

    /// The session id in every frame of this session.
    pub fn session_id(&self) -> u32 {
        self.ctx.session_id
    }

    /// The device, once the phone named it and it was loaded.
    pub fn device(&self) -> Option<&Device> {
        self.ctx.device.as_ref()
    }

    /// What the session waits for now (for logs).
    pub fn waiting_for(&self) -> &'static str {
        self.state.waiting_for()
    }

    /// The next message to send. Call until `None` after every input.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.ctx.transmits.pop_front()
    }

    /// The next thing the runtime must do. Call until `None` after every
    /// input.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.ctx.events.pop_front()
    }

    /// When to call [`ServerSession::handle_timeout`]; `None` while the
    /// session waits for the runtime or has ended.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<SystemTime> {
        self.state.deadline()
    }

    /// Whether the session has ended (END_SESSION queued).
    pub fn is_finished(&self) -> bool {
        self.state.is_ended()
    }

    /// How the session ended, once it has.
    pub fn outcome(&self) -> Option<&SessionOutcome> {
        self.ctx.outcome.as_ref()
    }

    /// A message from the phone, with the session id of its frame.
    pub fn handle_message(&mut self, now: SystemTime, session_id: u32, message: Message) {
        if self.is_finished() {
            return;
        }
        let state = self.take_state();
        self.state = if session_id == self.ctx.session_id {
            state.handle_message(&mut self.ctx, now, message)
        } else {
            let why = format!(
                "{} carries session id {session_id}, this session is {}",
                message.command(),
                self.ctx.session_id
            );
            self.ctx.protocol_error(now, why)
        };
    }

    /// The transport could not decode what the phone sent: the session
    /// ends with a protocol error.
    pub fn handle_malformed(&mut self, now: SystemTime, error: impl std::fmt::Display) {
        if !self.is_finished() {
            self.take_state();
            self.state = self
                .ctx
                .protocol_error(now, format!("malformed frame: {error}"));
        }
    }

    /// The time passed; if the current wait's deadline is reached, the
    /// session gives up on the phone.
    pub fn handle_timeout(&mut self, now: SystemTime) {
        if self.state.deadline().is_some_and(|d| now >= d) {
            let waiting_for = self.state.waiting_for();
            self.take_state();
            self.state = self.ctx.fail(
                now,
                Reason::InvalidElement,
                OutcomeKind::TimedOut { waiting_for },
                None,
                None,
            );
        }
    }

    /// The runtime's answer to [`ServerEvent::LoadDevice`]: the device
    /// (its lease is held), or why not
    /// ([`OperationsError::UnknownDevice`], [`OperationsError::DeviceBusy`],
    /// a store failure).
    pub fn device_loaded(&mut self, now: SystemTime, result: Result<Device, OperationsError>) {
        let state = self.take_state();
        self.state = match state {
            State::AwaitingDevice(s) => s.loaded(&mut self.ctx, now, result),
            other => self.misuse(now, other, "device_loaded"),
        };
    }

    /// The runtime's answer to [`ServerEvent::Commit`]: `Ok` once the
    /// change is durable.
    pub fn committed(&mut self, now: SystemTime, result: Result<(), OperationsError>) {
        let state = self.take_state();
        self.state = match state {
            State::AwaitingCommit(s) => s.committed(&mut self.ctx, now, result),
            other => self.misuse(now, other, "committed"),
        };
    }

    /// The runtime's answer to [`ServerEvent::Issue`].
    pub fn issued(&mut self, now: SystemTime, result: Result<capf_ca::IssuedLsc, OperationsError>) {
        let state = self.take_state();
        self.state = match state {
            State::AwaitingIssuance(s) => s.issued(&mut self.ctx, now, result),
            other => self.misuse(now, other, "issued"),
        };
    }

    fn take_state(&mut self) -> State {
        std::mem::replace(&mut self.state, State::Ended)
    }

    /// An answer the session did not ask for: a bug in the runtime. An
    /// ended session stays ended.
    fn misuse(&mut self, now: SystemTime, state: State, call: &str) -> State {
        if state.is_ended() {
            return state;
        }
        let why = format!("{call} while waiting for {}", state.waiting_for());
        self.ctx.fail(
            now,
            Reason::InvalidElement,
            OutcomeKind::ServerError(format!("session misuse: {why}")),
            None,
            None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::new_session_id;

    #[test]
    fn session_ids_are_random_and_never_zero() {
        let ids: std::collections::HashSet<u32> = (0..64).map(|_| new_session_id()).collect();
        assert!(!ids.contains(&0));
        // A counter from 1 would give 1..=64; random ids almost never
        // repeat among 64 (the chance is below one in a million).
        assert!(ids.len() >= 63, "{ids:?}");
        assert!(ids.iter().any(|&id| id > 1_000), "{ids:?}");
    }
}
