//! The phone's side of the conversation, one type per thing it waits for
//! Each state consumes itself to produce the next, so a
//! stale state cannot be reused.

use std::collections::VecDeque;

use bytes::Bytes;
use capf_wire::{
    FetchCertificateResponse, KeyGenerateRequest, KeyGenerateResponse, Message, Reason, ReasonOnly,
    WrappedCertificate,
};

use super::auth_response;
use super::config::PhoneConfig;
use super::events::{KeyGenFailure, PhoneEvent, key_spec};
use super::outcome::{
    FailureCause, LscChange, PhoneFailure, PhoneOutcome, PhoneSuccess, ProtocolViolation,
};
use super::status::{PhoneOperation, PhoneStep};
use crate::transmit::Transmit;

/// What the states write to: messages to send, events for the runtime, and
/// what the session has learnt so far.
#[derive(Debug, Default)]
pub(super) struct Io {
    /// The id AUTH_REQUEST set; `None` before it.
    pub(super) session_id: Option<u32>,
    /// Messages waiting for `poll_transmit`.
    pub(super) transmits: VecDeque<Transmit>,
    /// Events waiting for `poll_event`.
    pub(super) events: VecDeque<PhoneEvent>,
    /// How many messages were queued since the session started.
    pub(super) sent: u64,
    /// capfd tolerates at most one REQUEST_IN_PROGRESS per session.
    pub(super) request_in_progress_sent: bool,
    /// The operation the server asked for.
    pub(super) operation: Option<PhoneOperation>,
}

impl Io {
    fn send(&mut self, message: Message) {
        self.transmits.push_back(Transmit {
            session_id: self.session_id.unwrap_or(0),
            message,
        });
        self.sent += 1;
    }
}

/// Where a state goes next.
pub(super) enum Next {
    /// Keep running in this state.
    To(State),
    /// The session is over.
    Finish(PhoneOutcome),
}

/// The session's current state.
pub(super) enum State {
    AwaitingAuthRequest(AwaitingAuthRequest),
    AwaitingInstruction(AwaitingInstruction),
    GeneratingKey(GeneratingKey),
    AwaitingCertificate(AwaitingCertificate),
    StoringCertificate(StoringCertificate),
    DeletingCertificate(DeletingCertificate),
    AwaitingEndSession(AwaitingEndSession),
    Finished,
}

impl State {
    /// The step shown in the status, `None` once finished.
    pub(super) fn step(&self) -> Option<PhoneStep> {
        Some(match self {
            State::AwaitingAuthRequest(_) => PhoneStep::AwaitingAuthRequest,
            State::AwaitingInstruction(_) => PhoneStep::AwaitingInstruction,
            State::GeneratingKey(_) => PhoneStep::GeneratingKey,
            State::AwaitingCertificate(_) => PhoneStep::AwaitingCertificate,
            State::StoringCertificate(_) => PhoneStep::StoringCertificate,
            State::DeletingCertificate(_) => PhoneStep::DeletingCertificate,
            State::AwaitingEndSession(_) => PhoneStep::AwaitingEndSession,
            State::Finished => return None,
        })
    }

    /// Whether the session waits for the server (and so has a deadline)
    /// rather than for its runtime.
    pub(super) fn waits_for_server(&self) -> bool {
        matches!(
            self,
            State::AwaitingAuthRequest(_)
                | State::AwaitingInstruction(_)
                | State::AwaitingCertificate(_)
                | State::AwaitingEndSession(_)
        )
    }

    /// A message from the server. END_SESSION is accepted in every state.
    pub(super) fn handle_message(
        self,
        message: Message,
        config: &PhoneConfig,
        io: &mut Io,
    ) -> Next {
        if let Message::EndSession(ReasonOnly { reason }) = message {
            return self.end_session(reason);
        }
        match self {
            State::AwaitingAuthRequest(s) => s.handle(message, config, io),
            State::AwaitingInstruction(s) => s.handle(message, config, io),
            State::AwaitingCertificate(s) => s.handle(message, io),
            State::StoringCertificate(s) => s.interrupt(unexpected(&message)),
            State::DeletingCertificate(s) => s.interrupt(unexpected(&message)),
            other => other.interrupt(unexpected(&message)),
        }
    }

    /// The session cannot go on (timeout, lost connection, abort, protocol
    /// error). While the runtime stores or deletes a certificate the session
    /// waits for its answer first, so the outcome says what it changed.
    pub(super) fn interrupt(self, cause: FailureCause) -> Next {
        match self {
            State::StoringCertificate(s) => s.interrupt(cause),
            State::DeletingCertificate(s) => s.interrupt(cause),
            State::AwaitingCertificate(s) => fail(
                s.failed.unwrap_or(cause),
                PhoneStep::AwaitingCertificate,
                LscChange::Unchanged,
            ),
            State::AwaitingEndSession(s) => s.interrupt(cause),
            other => match other.step() {
                Some(step) => fail(cause, step, LscChange::Unchanged),
                None => Next::To(State::Finished),
            },
        }
    }

    fn end_session(self, reason: Reason) -> Next {
        match self {
            State::AwaitingInstruction(_) => AwaitingInstruction::end_session(reason),
            State::AwaitingEndSession(s) => s.end_session(reason),
            other => other.interrupt(FailureCause::EndedByServer(reason)),
        }
    }
}

fn fail(cause: FailureCause, step: PhoneStep, lsc_change: LscChange) -> Next {
    Next::Finish(PhoneOutcome::Failed(PhoneFailure {
        cause,
        step,
        lsc_change,
    }))
}

fn unexpected(message: &Message) -> FailureCause {
    FailureCause::ProtocolError(ProtocolViolation::UnexpectedMessage(message.command()))
}

/// Whether an END_SESSION reason closes a session normally (0 or 1).
fn is_normal_end(reason: Reason) -> bool {
    matches!(reason, Reason::NoAction | Reason::UpdateCertificate)
}

/// Waiting for AUTH_REQUEST, the server's first message.
pub(super) struct AwaitingAuthRequest;

impl AwaitingAuthRequest {
    fn handle(self, message: Message, config: &PhoneConfig, io: &mut Io) -> Next {
        if !matches!(message, Message::AuthRequest(_)) {
            return State::AwaitingAuthRequest(self).interrupt(unexpected(&message));
        }
        // AUTH_TYPE is ignored: the phone follows its own capfAuthMode
        // (capfd always sends 0).
        let session_id = io.session_id.unwrap_or(0);
        match auth_response::build(config, session_id) {
            Ok(response) => {
                io.send(Message::AuthResponse(Box::new(response)));
                Next::To(State::AwaitingInstruction(AwaitingInstruction))
            }
            Err(e) => fail(
                FailureCause::CredentialsUnusable(e),
                PhoneStep::AwaitingAuthRequest,
                LscChange::Unchanged,
            ),
        }
    }
}

/// AUTH_RESPONSE sent: waiting for one of KEY_GENERATE_REQUEST,
/// FETCH_CERTIFICATE_REQUEST, DELETE_CERTIFICATE_REQUEST or END_SESSION.
pub(super) struct AwaitingInstruction;

impl AwaitingInstruction {
    fn handle(self, message: Message, config: &PhoneConfig, io: &mut Io) -> Next {
        match message {
            Message::KeyGenerateRequest(request) => {
                io.operation = Some(PhoneOperation::InstallUpgrade);
                start_key_generation(request, io)
            }
            Message::FetchCertificateRequest(_) => {
                // The request's CERTIFICATE_TYPE is ignored: how CUCM asks
                // for the MIC is unknown, and capfc returns its LSC.
                io.operation = Some(PhoneOperation::Troubleshoot);
                let returned = config.lsc_der.clone();
                io.send(Message::FetchCertificateResponse(
                    FetchCertificateResponse {
                        reason: if returned.is_some() {
                            Reason::SUCCESS
                        } else {
                            Reason::InvalidElement
                        },
                        certificate: returned.clone().map(WrappedCertificate::lsc),
                    },
                ));
                AwaitingEndSession::after(PhoneSuccess::Fetched { returned })
            }
            Message::DeleteCertificateRequest => {
                io.operation = Some(PhoneOperation::Delete);
                io.events.push_back(PhoneEvent::DeleteCertificate);
                Next::To(State::DeletingCertificate(DeletingCertificate {
                    interrupted: None,
                }))
            }
            other => State::AwaitingInstruction(self).interrupt(unexpected(&other)),
        }
    }

    /// END_SESSION right after authentication: nothing scheduled (0 or 1),
    /// unknown device (9), or refused (anything else).
    fn end_session(reason: Reason) -> Next {
        let step = PhoneStep::AwaitingInstruction;
        match reason {
            r if is_normal_end(r) => {
                Next::Finish(PhoneOutcome::Succeeded(PhoneSuccess::NothingScheduled {
                    reason: r,
                }))
            }
            Reason::UnknownDevice => fail(FailureCause::UnknownDevice, step, LscChange::Unchanged),
            r => fail(FailureCause::Refused(r), step, LscChange::Unchanged),
        }
    }
}

/// Asks the runtime for a key, after one REQUEST_IN_PROGRESS per session;
/// answers REASON=7 at once to a key the phone cannot make.
fn start_key_generation(request: KeyGenerateRequest, io: &mut Io) -> Next {
    // KEY_TYPE absent means RSA (CUCM omits it), KEY_SIZE absent 2048.
    let Some(spec) = request.requested().and_then(key_spec) else {
        io.send(Message::KeyGenerateResponse(KeyGenerateResponse {
            reason: Some(Reason::InvalidElement),
            public_key: None,
        }));
        return Next::To(State::AwaitingCertificate(AwaitingCertificate {
            failed: Some(FailureCause::UnsupportedKeyRequest(request)),
        }));
    };
    if !io.request_in_progress_sent {
        io.request_in_progress_sent = true;
        io.send(Message::RequestInProgress);
    }
    io.events.push_back(PhoneEvent::GenerateKey(spec));
    Next::To(State::GeneratingKey(GeneratingKey))
}

/// Waiting for the runtime's new key pair. Only END_SESSION may come from
/// the server meanwhile.
pub(super) struct GeneratingKey;

impl GeneratingKey {
    /// The runtime's answer: the public key, or REASON=7 without one.
    pub(super) fn key_generated(self, result: Result<Vec<u8>, KeyGenFailure>, io: &mut Io) -> Next {
        let (response, failed) = match result {
            Ok(spki) => (
                KeyGenerateResponse {
                    reason: None,
                    public_key: Some(Bytes::from(spki)),
                },
                None,
            ),
            Err(failure) => (
                KeyGenerateResponse {
                    reason: Some(Reason::InvalidElement),
                    public_key: None,
                },
                Some(FailureCause::KeyGenerationFailed(failure)),
            ),
        };
        io.send(Message::KeyGenerateResponse(response));
        Next::To(State::AwaitingCertificate(AwaitingCertificate { failed }))
    }
}

/// KEY_GENERATE_RESPONSE sent: waiting for STORE_CERTIFICATE_REQUEST, or,
/// when the key could not be made, for the server to ask again.
pub(super) struct AwaitingCertificate {
    /// Why the last KEY_GENERATE_RESPONSE carried no key.
    failed: Option<FailureCause>,
}

impl AwaitingCertificate {
    fn handle(self, message: Message, io: &mut Io) -> Next {
        match message {
            // The server may ask again after a failure or a key it refused;
            // no second REQUEST_IN_PROGRESS.
            Message::KeyGenerateRequest(request) => start_key_generation(request, io),
            Message::StoreCertificateRequest(request) if self.failed.is_none() => {
                let certificate_der = request.certificate.der;
                io.events.push_back(PhoneEvent::StoreCertificate {
                    certificate_der: certificate_der.clone(),
                });
                Next::To(State::StoringCertificate(StoringCertificate {
                    certificate_der,
                    interrupted: None,
                }))
            }
            other => State::AwaitingCertificate(self).interrupt(unexpected(&other)),
        }
    }
}

/// Waiting for the runtime to store the new LSC.
pub(super) struct StoringCertificate {
    certificate_der: Bytes,
    /// Why the session cannot go on, noted until the runtime answers.
    interrupted: Option<FailureCause>,
}

impl StoringCertificate {
    fn interrupt(mut self, cause: FailureCause) -> Next {
        self.interrupted.get_or_insert(cause);
        Next::To(State::StoringCertificate(self))
    }

    /// The runtime's answer: STORE_CERTIFICATE_RESPONSE 1 or 7, unless the
    /// session was interrupted meanwhile.
    pub(super) fn stored(self, stored: bool, io: &mut Io) -> Next {
        let lsc_change = if stored {
            LscChange::Installed {
                certificate_der: self.certificate_der.clone(),
            }
        } else {
            LscChange::Unchanged
        };
        if let Some(cause) = self.interrupted {
            let cause = if stored {
                cause
            } else {
                FailureCause::StoreFailed
            };
            return fail(cause, PhoneStep::StoringCertificate, lsc_change);
        }
        let reason = if stored {
            Reason::SUCCESS
        } else {
            Reason::InvalidElement
        };
        io.send(Message::StoreCertificateResponse(ReasonOnly { reason }));
        if stored {
            AwaitingEndSession::after(PhoneSuccess::Installed {
                certificate_der: self.certificate_der,
            })
        } else {
            Next::To(State::AwaitingEndSession(AwaitingEndSession {
                done: Done::Failed(FailureCause::StoreFailed, lsc_change),
            }))
        }
    }
}

/// Waiting for the runtime to delete the LSC.
pub(super) struct DeletingCertificate {
    /// Why the session cannot go on, noted until the runtime answers.
    interrupted: Option<FailureCause>,
}

impl DeletingCertificate {
    fn interrupt(mut self, cause: FailureCause) -> Next {
        self.interrupted.get_or_insert(cause);
        Next::To(State::DeletingCertificate(self))
    }

    /// The runtime's answer: DELETE_CERTIFICATE_RESPONSE 1 (deleted) or 7
    /// (there was none), unless the session was interrupted meanwhile.
    pub(super) fn deleted(self, had_one: bool, io: &mut Io) -> Next {
        if let Some(cause) = self.interrupted {
            let lsc_change = if had_one {
                LscChange::Deleted
            } else {
                LscChange::Unchanged
            };
            return fail(cause, PhoneStep::DeletingCertificate, lsc_change);
        }
        let reason = if had_one {
            Reason::SUCCESS
        } else {
            Reason::InvalidElement
        };
        io.send(Message::DeleteCertificateResponse(ReasonOnly { reason }));
        AwaitingEndSession::after(PhoneSuccess::Deleted { had_one })
    }
}

/// What the phone did before waiting for END_SESSION.
enum Done {
    /// Its part went well; END_SESSION 0 or 1 confirms it.
    Succeeded(PhoneSuccess),
    /// Its part failed; END_SESSION only closes.
    Failed(FailureCause, LscChange),
}

/// The phone has answered; waiting for END_SESSION.
pub(super) struct AwaitingEndSession {
    done: Done,
}

impl AwaitingEndSession {
    fn after(success: PhoneSuccess) -> Next {
        Next::To(State::AwaitingEndSession(AwaitingEndSession {
            done: Done::Succeeded(success),
        }))
    }

    fn end_session(self, reason: Reason) -> Next {
        match self.done {
            Done::Succeeded(success) if is_normal_end(reason) => {
                Next::Finish(PhoneOutcome::Succeeded(success))
            }
            _ => self.interrupt(FailureCause::EndedByServer(reason)),
        }
    }

    /// The first failure wins: a phone whose own part failed reports that,
    /// not the timeout or the END_SESSION that followed.
    fn interrupt(self, cause: FailureCause) -> Next {
        let step = PhoneStep::AwaitingEndSession;
        match self.done {
            Done::Succeeded(success) => {
                let lsc_change = PhoneOutcome::Succeeded(success).lsc_change();
                fail(cause, step, lsc_change)
            }
            Done::Failed(first, lsc_change) => fail(first, step, lsc_change),
        }
    }
}
