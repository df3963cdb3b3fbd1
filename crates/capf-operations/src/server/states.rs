//! The server session's states, one type per thing it waits for. Each
//! consumes itself to produce the next, so a stale state cannot be reused.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

use capf_auth::{FailureReason, Grant, Operation};
use capf_ca::KeySpec;
use capf_wire::{
    AuthResponse, FetchCertificateRequest, KeyGenerateRequest, Message, Reason,
    StoreCertificateRequest,
};

use super::authentication;
use super::{IssueRequest, OutcomeKind, ServerConfig, ServerEvent, SessionOutcome};
use crate::{
    CertificateRecord, CompletedWork, Device, DeviceName, IssuedRecord, OperationsError,
    SessionCommit, Transmit,
};

/// What the states share: the session's identity and configuration, what
/// it learnt, and what it queued for the runtime.
#[derive(Debug)]
pub(super) struct Context {
    pub(super) session_id: u32,
    pub(super) config: Arc<ServerConfig>,
    /// The device, once loaded (its lease is held).
    pub(super) device: Option<Device>,
    /// The authorisation, once the phone authenticated.
    pub(super) grant: Option<Grant>,
    pub(super) transmits: VecDeque<Transmit>,
    pub(super) events: VecDeque<ServerEvent>,
    pub(super) outcome: Option<SessionOutcome>,
}

impl Context {
    pub(super) fn new(session_id: u32, config: Arc<ServerConfig>) -> Self {
        Context {
            session_id,
            config,
            device: None,
            grant: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            outcome: None,
        }
    }

    pub(super) fn send(&mut self, message: Message) {
        self.transmits.push_back(Transmit {
            session_id: self.session_id,
            message,
        });
    }

    pub(super) fn device_name(&self) -> Option<DeviceName> {
        self.device.as_ref().map(|d| d.name.clone())
    }

    /// Asks for `change` to be made durable; `then` runs once it is.
    pub(super) fn commit(&mut self, change: SessionCommit, then: AfterCommit) -> State {
        let release_lease = matches!(then, AfterCommit::End { .. });
        self.events.push_back(ServerEvent::Commit {
            change,
            release_lease,
        });
        State::AwaitingCommit(AwaitingCommit { then })
    }

    /// Sends END_SESSION and finishes.
    pub(super) fn end(&mut self, reason: Reason, kind: OutcomeKind) -> State {
        self.send(Message::end_session(reason));
        self.finish(Some(reason), kind)
    }

    /// Ends without END_SESSION: the runtime closes the connection, and
    /// the phone retries as after any lost connection. For a device busy
    /// in another session: END_SESSION would be the answer to a wrong
    /// string too, which a phone must not retry; a device held by a
    /// server that died is free again once its lease lapses, and the
    /// phone's retry (the next server of its list first) then succeeds.
    pub(super) fn hang_up(&mut self, kind: OutcomeKind) -> State {
        self.finish(None, kind)
    }

    fn finish(&mut self, reason: Option<Reason>, kind: OutcomeKind) -> State {
        let outcome = SessionOutcome {
            device: self.device_name(),
            kind,
            end_reason: reason,
        };
        self.outcome = Some(outcome.clone());
        self.events.push_back(ServerEvent::Finished(outcome));
        State::Ended
    }

    /// Ends with a failure, recording it on the device first when there is
    /// one (the operation stays scheduled, failed if `operation_failed`).
    pub(super) fn fail(
        &mut self,
        now: SystemTime,
        reason: Reason,
        kind: OutcomeKind,
        key_generation_failures: Option<u32>,
        operation_failed: Option<FailureReason>,
    ) -> State {
        if self.device.is_none() {
            return self.end(reason, kind);
        }
        self.commit(
            SessionCommit::Failed {
                reason: kind.to_string(),
                key_generation_failures,
                operation_failed,
                at: now,
            },
            AfterCommit::End { reason, kind },
        )
    }

    pub(super) fn protocol_error(&mut self, now: SystemTime, why: String) -> State {
        self.fail(
            now,
            Reason::InvalidElement,
            OutcomeKind::ProtocolError(why),
            None,
            None,
        )
    }

    fn internal(&mut self, now: SystemTime, why: &str) -> State {
        self.fail(
            now,
            Reason::InvalidElement,
            OutcomeKind::ServerError(format!("session misuse: {why}")),
            None,
            None,
        )
    }

    /// The operation of the grant begins: the first request to the phone.
    fn start_operation(&mut self, now: SystemTime) -> State {
        let Some(grant) = self.grant else {
            return self.internal(now, "operation without a grant");
        };
        let reply_deadline = now + self.config.params.reply_timeout;
        match grant.operation {
            Operation::InstallUpgrade => {
                let requested = self
                    .device
                    .as_ref()
                    .and_then(|d| d.key)
                    .unwrap_or(self.config.params.default_key);
                self.request_key(now, requested, 1)
            }
            Operation::Troubleshoot => {
                self.send(Message::FetchCertificateRequest(
                    FetchCertificateRequest::default(),
                ));
                State::AwaitingFetchResult(AwaitingFetchResult {
                    deadline: reply_deadline,
                })
            }
            Operation::Delete => {
                self.send(Message::DeleteCertificateRequest);
                State::AwaitingDeleteResult(AwaitingDeleteResult {
                    deadline: reply_deadline,
                })
            }
            Operation::None => self.end(Reason::NoAction, OutcomeKind::NothingToDo),
        }
    }

    fn request_key(&mut self, now: SystemTime, requested: KeySpec, attempt: u32) -> State {
        let request = match requested {
            KeySpec::Rsa { bits } => KeyGenerateRequest::rsa(bits),
            KeySpec::Ec(curve) => KeyGenerateRequest::ec(match curve {
                capf_ca::EcCurve::P256 => capf_wire::Curve::P256,
                capf_ca::EcCurve::P384 => capf_wire::Curve::P384,
                capf_ca::EcCurve::P521 => capf_wire::Curve::P521,
            }),
        };
        self.send(Message::KeyGenerateRequest(request));
        State::AwaitingPublicKey(AwaitingPublicKey {
            requested,
            attempt,
            in_progress: false,
            requested_at: now,
            deadline: now + self.config.params.reply_timeout,
        })
    }

    /// The operation is done on the phone: make it durable, then end.
    fn complete(
        &mut self,
        now: SystemTime,
        work: CompletedWork,
        reason: Reason,
        kind: OutcomeKind,
    ) -> State {
        let Some(grant) = self.grant else {
            return self.internal(now, "completion without a grant");
        };
        self.commit(
            SessionCommit::Completed {
                grant,
                work,
                at: now,
            },
            AfterCommit::End { reason, kind },
        )
    }
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
        /// What was signed, to sign again if the serial turns out taken.
        request: AwaitingIssuance,
    },
}

impl AfterCommit {
    fn what(&self) -> &'static str {
        match self {
            AfterCommit::End { .. } => "the session's result",
            AfterCommit::Start => "the authentication result",
            AfterCommit::SendCertificate { .. } => "the issued certificate",
        }
    }
}

/// The session's current state.
#[derive(Debug)]
pub(super) enum State {
    AwaitingAuthResponse(AwaitingAuthResponse),
    AwaitingDevice(AwaitingDevice),
    AwaitingCommit(AwaitingCommit),
    AwaitingPublicKey(AwaitingPublicKey),
    AwaitingIssuance(AwaitingIssuance),
    AwaitingStoreResult(AwaitingStoreResult),
    AwaitingFetchResult(AwaitingFetchResult),
    AwaitingDeleteResult(AwaitingDeleteResult),
    Ended,
}

impl State {
    pub(super) fn awaiting_auth_response(deadline: SystemTime) -> Self {
        State::AwaitingAuthResponse(AwaitingAuthResponse { deadline })
    }

    pub(super) fn is_ended(&self) -> bool {
        matches!(self, State::Ended)
    }

    pub(super) fn waiting_for(&self) -> &'static str {
        match self {
            State::AwaitingAuthResponse(_) => "AUTH_RESPONSE",
            State::AwaitingDevice(_) => "the device record",
            State::AwaitingCommit(_) => "a durable commit",
            State::AwaitingPublicKey(_) => "KEY_GENERATE_RESPONSE",
            State::AwaitingIssuance(_) => "the certificate to be signed",
            State::AwaitingStoreResult(_) => "STORE_CERTIFICATE_RESPONSE",
            State::AwaitingFetchResult(_) => "FETCH_CERTIFICATE_RESPONSE",
            State::AwaitingDeleteResult(_) => "DELETE_CERTIFICATE_RESPONSE",
            State::Ended => "nothing (ended)",
        }
    }

    /// The phone's reply deadline; `None` while the session waits for its
    /// runtime or has ended.
    pub(super) fn deadline(&self) -> Option<SystemTime> {
        match self {
            State::AwaitingAuthResponse(s) => Some(s.deadline),
            State::AwaitingPublicKey(s) => Some(s.deadline),
            State::AwaitingStoreResult(s) => Some(s.deadline),
            State::AwaitingFetchResult(s) => Some(s.deadline),
            State::AwaitingDeleteResult(s) => Some(s.deadline),
            State::AwaitingDevice(_)
            | State::AwaitingCommit(_)
            | State::AwaitingIssuance(_)
            | State::Ended => None,
        }
    }

    /// A message from the phone (session id already checked).
    pub(super) fn handle_message(
        self,
        ctx: &mut Context,
        now: SystemTime,
        message: Message,
    ) -> State {
        match (self, message) {
            (State::AwaitingAuthResponse(_), Message::AuthResponse(auth)) => {
                AwaitingAuthResponse::received(ctx, auth)
            }
            (State::AwaitingPublicKey(s), Message::RequestInProgress) => s.in_progress(&ctx.config),
            (State::AwaitingPublicKey(s), Message::KeyGenerateResponse(r)) => {
                s.received(ctx, now, r)
            }
            (State::AwaitingStoreResult(s), Message::StoreCertificateResponse(r)) => {
                s.received(ctx, now, r.reason)
            }
            (State::AwaitingFetchResult(_), Message::FetchCertificateResponse(r)) => {
                AwaitingFetchResult::received(ctx, now, r)
            }
            (State::AwaitingDeleteResult(_), Message::DeleteCertificateResponse(r)) => {
                AwaitingDeleteResult::received(ctx, now, r.reason)
            }
            (state, message) => {
                let why = format!(
                    "unexpected {} while waiting for {}",
                    message.command(),
                    state.waiting_for()
                );
                ctx.protocol_error(now, why)
            }
        }
    }
}

/// AUTH_RESPONSE: who the phone is and what it proves.
#[derive(Debug)]
pub(super) struct AwaitingAuthResponse {
    deadline: SystemTime,
}

impl AwaitingAuthResponse {
    fn received(ctx: &mut Context, auth: Box<AuthResponse>) -> State {
        let name = match DeviceName::parse(&auth.device_name) {
            Ok(name) => name,
            // A name we would never configure is an unknown device.
            Err(_) => return ctx.end(Reason::UnknownDevice, OutcomeKind::UnknownDevice),
        };
        ctx.events.push_back(ServerEvent::LoadDevice(name));
        State::AwaitingDevice(AwaitingDevice { auth })
    }
}

/// The device record (and its lease) from the runtime.
#[derive(Debug)]
pub(super) struct AwaitingDevice {
    auth: Box<AuthResponse>,
}

impl AwaitingDevice {
    pub(super) fn loaded(
        self,
        ctx: &mut Context,
        now: SystemTime,
        result: Result<Device, OperationsError>,
    ) -> State {
        match result {
            Ok(device) => {
                let (change, then) = authentication::decide(ctx, now, device, &self.auth);
                match change {
                    Some(change) => ctx.commit(change, then),
                    // Nothing to record: go on at once.
                    None => AwaitingCommit { then }.committed(ctx, now, Ok(())),
                }
            }
            Err(OperationsError::UnknownDevice { .. }) => {
                ctx.end(Reason::UnknownDevice, OutcomeKind::UnknownDevice)
            }
            Err(OperationsError::DeviceBusy { .. }) => ctx.hang_up(OutcomeKind::DeviceBusy),
            Err(e) => ctx.end(
                Reason::InvalidElement,
                OutcomeKind::ServerError(format!("loading the device: {e}")),
            ),
        }
    }
}

/// A change being made durable.
#[derive(Debug)]
pub(super) struct AwaitingCommit {
    pub(super) then: AfterCommit,
}

impl AwaitingCommit {
    pub(super) fn committed(
        self,
        ctx: &mut Context,
        now: SystemTime,
        result: Result<(), OperationsError>,
    ) -> State {
        if let Err(e) = result {
            // A serial another server recorded a moment before (a random
            // 128-bit collision, or a second server with this CA): sign
            // again, with a new serial, a few times.
            if let (
                OperationsError::SerialConflict { .. },
                AfterCommit::SendCertificate { request, .. },
            ) = (&e, &self.then)
                && request.signings < AwaitingIssuance::MAX_SIGNINGS
            {
                return request.clone().sign_again(ctx);
            }
            // Nothing more may be sent that depends on the change: in
            // particular no certificate without its record.
            return ctx.end(
                Reason::InvalidElement,
                OutcomeKind::ServerError(format!("could not record {}: {e}", self.then.what())),
            );
        }
        match self.then {
            AfterCommit::End { reason, kind } => ctx.end(reason, kind),
            AfterCommit::Start => ctx.start_operation(now),
            AfterCommit::SendCertificate {
                der,
                serial_hex,
                subject,
                request: _,
            } => {
                ctx.send(Message::StoreCertificateRequest(
                    StoreCertificateRequest::lsc(der),
                ));
                State::AwaitingStoreResult(AwaitingStoreResult {
                    serial_hex,
                    subject,
                    deadline: now + ctx.config.params.reply_timeout,
                })
            }
        }
    }
}

/// KEY_GENERATE_RESPONSE with the phone's public key (after any number of
/// REQUEST_IN_PROGRESS).
#[derive(Debug)]
pub(super) struct AwaitingPublicKey {
    /// What KEY_GENERATE_REQUEST asked for.
    requested: KeySpec,
    /// Which attempt this is, from 1.
    attempt: u32,
    /// Whether REQUEST_IN_PROGRESS came.
    in_progress: bool,
    /// When KEY_GENERATE_REQUEST was sent.
    requested_at: SystemTime,
    /// Reply deadline, then the key-generation deadline.
    deadline: SystemTime,
}

impl AwaitingPublicKey {
    /// The first REQUEST_IN_PROGRESS switches to the long key-generation
    /// deadline (a phone may generate at low priority).
    fn in_progress(mut self, config: &ServerConfig) -> State {
        if !self.in_progress {
            self.in_progress = true;
            self.deadline = self.requested_at + config.params.key_generation_timeout;
        }
        State::AwaitingPublicKey(self)
    }

    fn received(
        self,
        ctx: &mut Context,
        now: SystemTime,
        response: capf_wire::KeyGenerateResponse,
    ) -> State {
        let Some(spki) = response.public_key else {
            let why = match response.reason {
                Some(r) => format!("phone reported {r} and sent no key"),
                None => "phone sent no key".to_owned(),
            };
            return self.attempt_failed(ctx, now, why);
        };
        match capf_ca::validate_phone_key(&spki, &ctx.config.key_policy, Some(self.requested)) {
            Ok(key) => {
                let Some(device) = ctx.device_name() else {
                    return ctx.internal(now, "no device in key generation");
                };
                let request = IssueRequest {
                    device,
                    public_key: spki.to_vec(),
                    key,
                };
                ctx.events.push_back(ServerEvent::Issue(request.clone()));
                State::AwaitingIssuance(AwaitingIssuance {
                    request,
                    signings: 1,
                })
            }
            Err(e) => self.attempt_failed(ctx, now, e.to_string()),
        }
    }

    fn attempt_failed(self, ctx: &mut Context, now: SystemTime, why: String) -> State {
        let failures = ctx.device.as_mut().map_or(1, |d| {
            d.key_generation_failures += 1;
            d.key_generation_failures
        });
        let max = ctx.config.params.max_key_generation_attempts;
        if self.attempt < max {
            return ctx.request_key(now, self.requested, self.attempt + 1);
        }
        let why = format!("{why} (attempt {} of {max})", self.attempt);
        ctx.fail(
            now,
            Reason::InvalidElement,
            OutcomeKind::KeyGenerationFailed(why),
            Some(failures),
            Some(FailureReason::KeyGenerationFailed),
        )
    }
}

/// The signed LSC from the runtime.
#[derive(Clone, Debug)]
pub(super) struct AwaitingIssuance {
    /// What was asked to be signed.
    request: IssueRequest,
    /// How many times it was asked (a serial already recorded is signed
    /// again).
    signings: u32,
}

impl AwaitingIssuance {
    /// Most signings for one key: a serial is 128 random bits, so a second
    /// collision in a row means something else is wrong.
    const MAX_SIGNINGS: u32 = 3;

    fn sign_again(mut self, ctx: &mut Context) -> State {
        self.signings += 1;
        ctx.events
            .push_back(ServerEvent::Issue(self.request.clone()));
        State::AwaitingIssuance(self)
    }

    pub(super) fn issued(
        self,
        ctx: &mut Context,
        now: SystemTime,
        result: Result<capf_ca::IssuedLsc, OperationsError>,
    ) -> State {
        let issued = match result {
            Ok(issued) => issued,
            Err(e) => {
                return ctx.fail(
                    now,
                    Reason::InvalidElement,
                    OutcomeKind::ServerError(format!("issuance failed: {e}")),
                    None,
                    None,
                );
            }
        };
        let Some(device) = ctx.device_name() else {
            return ctx.internal(now, "issued without a device");
        };
        // Read the record from the DER like every other certificate
        // record, so its issuer name is filled in too.
        let certificate = match CertificateRecord::from_der(&issued.der, &device) {
            Ok(record) => record,
            Err(e) => {
                return ctx.fail(
                    now,
                    Reason::InvalidElement,
                    OutcomeKind::ServerError(format!("issued certificate unreadable: {e}")),
                    None,
                    None,
                );
            }
        };
        let record = IssuedRecord {
            device,
            certificate,
            issued_at: now,
            delivered: false,
        };
        ctx.commit(
            SessionCommit::Issued(record),
            AfterCommit::SendCertificate {
                der: issued.der,
                serial_hex: issued.serial_hex,
                subject: issued.subject,
                request: self,
            },
        )
    }
}

/// STORE_CERTIFICATE_RESPONSE: did the phone store its new LSC?
#[derive(Debug)]
pub(super) struct AwaitingStoreResult {
    serial_hex: String,
    subject: String,
    deadline: SystemTime,
}

impl AwaitingStoreResult {
    fn received(self, ctx: &mut Context, now: SystemTime, reason: Reason) -> State {
        if reason.is_success() {
            ctx.complete(
                now,
                CompletedWork::Installed {
                    serial_hex: self.serial_hex.clone(),
                },
                Reason::UpdateCertificate,
                OutcomeKind::Installed {
                    serial_hex: self.serial_hex,
                    subject: self.subject,
                },
            )
        } else {
            ctx.fail(
                now,
                Reason::InvalidElement,
                OutcomeKind::PhoneDidNotStore(reason),
                None,
                None,
            )
        }
    }
}

/// FETCH_CERTIFICATE_RESPONSE: the certificate a troubleshoot retrieves.
#[derive(Debug)]
pub(super) struct AwaitingFetchResult {
    deadline: SystemTime,
}

impl AwaitingFetchResult {
    fn received(
        ctx: &mut Context,
        now: SystemTime,
        response: capf_wire::FetchCertificateResponse,
    ) -> State {
        let certificate = match (response.reason.is_success(), response.certificate) {
            (true, Some(certificate)) => certificate,
            _ => {
                return ctx.fail(
                    now,
                    Reason::NoAction,
                    OutcomeKind::NothingRetrieved,
                    None,
                    None,
                );
            }
        };
        let retrieved = match authentication::classify_retrieved(ctx, now, &certificate.der) {
            Ok(retrieved) => vec![retrieved],
            Err(why) => return ctx.protocol_error(now, why),
        };
        // capfd ends a troubleshoot with END_SESSION 0 whatever happened.
        ctx.complete(
            now,
            CompletedWork::Retrieved(retrieved.clone()),
            Reason::NoAction,
            OutcomeKind::Retrieved(retrieved),
        )
    }
}

/// DELETE_CERTIFICATE_RESPONSE: did the phone delete its LSC?
#[derive(Debug)]
pub(super) struct AwaitingDeleteResult {
    deadline: SystemTime,
}

impl AwaitingDeleteResult {
    fn received(ctx: &mut Context, now: SystemTime, reason: Reason) -> State {
        // 7 = "nothing to delete": the phone holds no LSC, which is what
        // the operation wants, so it counts as done.
        if reason.is_success() || reason == Reason::InvalidElement {
            ctx.complete(
                now,
                CompletedWork::Deleted,
                Reason::UpdateCertificate,
                OutcomeKind::Deleted,
            )
        } else {
            ctx.fail(
                now,
                Reason::InvalidElement,
                OutcomeKind::PhoneDidNotDelete(reason),
                None,
                None,
            )
        }
    }
}
