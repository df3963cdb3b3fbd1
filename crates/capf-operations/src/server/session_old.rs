//! The server side of a CAPF session, sans-IO.
//!
//! One [`ServerSession`] per connection. It never touches a socket, a clock
//! or the store: the runtime feeds it messages ([`ServerSession::handle_message`]),
//! the time ([`ServerSession::handle_timeout`]) and the answers to its
//! events, and pulls what to send ([`ServerSession::poll_transmit`]), what to
//! do ([`ServerSession::poll_event`]) and when to wake it
//! ([`ServerSession::poll_timeout`]).
//!
//! The commit order of the architecture is built in: the session asks for
//! the issued certificate to be recorded ([`ServerEvent::Commit`] with
//! [`SessionCommit::Issued`]) and sends it only once the runtime reports the
//! record durable ([`ServerSession::committed`]); it asks for the operation
//! to be marked successful only after the phone confirms, and sends
//! END_SESSION(1) only once that is durable. Authentication failures are made
//! durable before the phone hears the answer, so a crash never gives a free
//! guess.

mod outcome;
mod states;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

use capf_auth::{
    CertificateFailure, CertificateKind, Grant, Operation, Presented, PresentedCertificate,
    Verdict, Verification,
};
use capf_ca::{AuthProof, CaError, KeyPolicy, KeySpec, SudiProof, TrustStore};
use capf_wire::{
    AuthRequest, AuthResponse, CertificateType, FetchCertificateRequest, KeyGenerateRequest,
    Message, Reason, WireError,
};

pub use outcome::{OutcomeKind, SessionOutcome};
use states::{AfterCommit, State};

use crate::{
    CertificateRecord, CompletedWork, Device, DeviceName, IssuedRecord, RetrievedKind,
    ServiceParameters, SessionCommit, Transmit,
};

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
    /// Take the device's exclusive lease and load its record; answer with
    /// [`ServerSession::device_loaded`].
    LoadDevice(DeviceName),
    /// Make this change durable under the lease; answer with
    /// [`ServerSession::committed`].
    Commit(SessionCommit),
    /// Sign an LSC for this key (bounded by the runtime's issuance limit,
    /// B25); answer with [`ServerSession::issued`].
    Issue(IssueRequest),
    /// The session is over: send what is queued, release the lease, close.
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

/// The runtime's answer to [`ServerEvent::LoadDevice`].
#[derive(Clone, Debug)]
pub enum DeviceLookup {
    /// The lease is held and this is the record (boxed: it is large).
    Found(Box<Device>),
    /// No such device.
    Unknown,
    /// Another session holds its lease.
    Busy,
    /// The store failed.
    Failed(String),
}

/// The server side of one CAPF session (one TLS connection).
#[derive(Debug)]
pub struct ServerSession {
    session_id: u32,
    config: Arc<ServerConfig>,
    state: State,
    device: Option<Device>,
    grant: Option<Grant>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<ServerEvent>,
    outcome: Option<SessionOutcome>,
}

impl ServerSession {
    /// Starts a session: queues AUTH_REQUEST (VERSION=3, AUTH_TYPE=0, as
    /// capfd) and waits for AUTH_RESPONSE.
    pub fn new(session_id: u32, config: Arc<ServerConfig>, now: SystemTime) -> Self {
        let deadline = now + config.params.auth_timeout;
        let mut session = ServerSession {
            session_id,
            config,
            state: State::AwaitingAuthResponse { deadline },
            device: None,
            grant: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            outcome: None,
        };
        session.send(Message::AuthRequest(AuthRequest::capfd()));
        session
    }

    /// The session id in every frame of this session.
    pub fn session_id(&self) -> u32 {
        self.session_id
    }

    /// The device, once the phone named it and it was loaded.
    pub fn device(&self) -> Option<&Device> {
        self.device.as_ref()
    }

    /// What the session waits for now (for logs).
    pub fn waiting_for(&self) -> &'static str {
        self.state.waiting_for()
    }

    /// The next message to send. Call until `None` after every input.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next thing the runtime must do. Call until `None` after every
    /// input.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// When to call [`ServerSession::handle_timeout`]; `None` while the
    /// session waits for the runtime or has ended.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<SystemTime> {
        self.state.deadline()
    }

    /// Whether the session has ended (END_SESSION queued).
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Ended)
    }

    /// How the session ended, once it has.
    pub fn outcome(&self) -> Option<&SessionOutcome> {
        self.outcome.as_ref()
    }

    /// The time passed; if the current wait's deadline is reached, the
    /// session gives up on the phone.
    pub fn handle_timeout(&mut self, now: SystemTime) {
        if self.state.deadline().is_some_and(|d| now >= d) {
            let waiting_for = self.state.waiting_for();
            self.fail(
                now,
                Reason::InvalidElement,
                OutcomeKind::TimedOut { waiting_for },
                None,
            );
        }
    }

    /// The transport could not decode what the phone sent: END_SESSION(7).
    pub fn handle_malformed(&mut self, now: SystemTime, error: &WireError) {
        if !self.is_finished() {
            let why = format!("malformed frame: {error}");
            self.protocol_error(now, why);
        }
    }

    /// A message from the phone, with the session id of its frame.
    pub fn handle_message(&mut self, now: SystemTime, session_id: u32, message: Message) {
        if self.is_finished() {
            return;
        }
        if session_id != self.session_id {
            let why = format!(
                "{} carries session id {session_id}, this session is {}",
                message.command(),
                self.session_id
            );
            return self.protocol_error(now, why);
        }
        let state = std::mem::replace(&mut self.state, State::Ended);
        match (state, message) {
            (State::AwaitingAuthResponse { .. }, Message::AuthResponse(auth)) => {
                self.on_auth_response(auth)
            }
            (State::AwaitingPublicKey(mut wait), Message::RequestInProgress) => {
                // Tolerated any number of times; the first one switches to
                // the long key-generation deadline (B15).
                if !wait.in_progress {
                    wait.in_progress = true;
                    wait.deadline = wait.requested_at + self.config.params.key_generation_timeout;
                }
                self.state = State::AwaitingPublicKey(wait);
            }
            (State::AwaitingPublicKey(wait), Message::KeyGenerateResponse(resp)) => {
                match resp.public_key {
                    Some(spki) => {
                        match capf_ca::validate_phone_key(
                            &spki,
                            &self.config.key_policy,
                            Some(wait.requested),
                        ) {
                            Ok(key) => {
                                let Some(device) = self.device_name() else {
                                    return self.internal(now, "no device in key generation");
                                };
                                self.state = State::AwaitingIssuance;
                                self.events.push_back(ServerEvent::Issue(IssueRequest {
                                    device,
                                    public_key: spki.to_vec(),
                                    key,
                                }));
                            }
                            Err(e) => self.key_attempt_failed(now, wait, e.to_string()),
                        }
                    }
                    None => {
                        let why = match resp.reason {
                            Some(r) => format!("phone reported {r} and sent no key"),
                            None => "phone sent no key".to_owned(),
                        };
                        self.key_attempt_failed(now, wait, why)
                    }
                }
            }
            (
                State::AwaitingStoreResult {
                    serial_hex,
                    subject,
                    ..
                },
                Message::StoreCertificateResponse(r),
            ) => {
                if r.reason.is_success() {
                    self.complete(
                        now,
                        CompletedWork::Installed {
                            serial_hex: serial_hex.clone(),
                        },
                        Reason::UpdateCertificate,
                        OutcomeKind::Installed {
                            serial_hex,
                            subject,
                        },
                    );
                } else {
                    self.fail(
                        now,
                        Reason::InvalidElement,
                        OutcomeKind::PhoneDidNotStore(r.reason),
                        None,
                    );
                }
            }
            (State::AwaitingFetchResult { .. }, Message::FetchCertificateResponse(r)) => {
                match (r.reason.is_success(), r.certificate) {
                    (true, Some(cert)) => self.on_retrieved(now, cert),
                    _ => self.fail(now, Reason::NoAction, OutcomeKind::NothingRetrieved, None),
                }
            }
            (State::AwaitingDeleteResult { .. }, Message::DeleteCertificateResponse(r)) => {
                // 7 = "nothing to delete": the phone holds no LSC, which is
                // what the operation wants, so it counts as done.
                if r.reason.is_success() || r.reason == Reason::InvalidElement {
                    self.complete(
                        now,
                        CompletedWork::Deleted,
                        Reason::UpdateCertificate,
                        OutcomeKind::Deleted,
                    );
                } else {
                    self.fail(
                        now,
                        Reason::InvalidElement,
                        OutcomeKind::PhoneDidNotDelete(r.reason),
                        None,
                    );
                }
            }
            (state, message) => {
                let why = format!(
                    "unexpected {} while waiting for {}",
                    message.command(),
                    state.waiting_for()
                );
                self.state = state;
                self.protocol_error(now, why);
            }
        }
    }

    /// The runtime's answer to [`ServerEvent::LoadDevice`].
    pub fn device_loaded(&mut self, now: SystemTime, lookup: DeviceLookup) {
        let State::AwaitingDevice { auth } = std::mem::replace(&mut self.state, State::Ended)
        else {
            return self.internal(now, "device_loaded while not waiting for a device");
        };
        match lookup {
            DeviceLookup::Unknown => self.end(Reason::UnknownDevice, OutcomeKind::UnknownDevice),
            DeviceLookup::Busy => self.end(Reason::InvalidElement, OutcomeKind::DeviceBusy),
            DeviceLookup::Failed(why) => {
                self.end(Reason::InvalidElement, OutcomeKind::ServerError(why))
            }
            DeviceLookup::Found(device) => self.authenticate(now, *device, &auth),
        }
    }

    /// Whether the change the session waits for ([`ServerEvent::Commit`]) is
    /// its last: the session ends once it is committed, so the runtime may
    /// give the device lease back in the same step
    /// ([`DeviceStore::commit_and_release`](crate::DeviceStore::commit_and_release)).
    pub fn commit_ends_session(&self) -> bool {
        matches!(self.state, State::AwaitingCommit(AfterCommit::End { .. }))
    }

    /// The runtime's answer to [`ServerEvent::Commit`]: `Ok` once the change
    /// is durable.
    pub fn committed(&mut self, now: SystemTime, result: Result<(), String>) {
        let State::AwaitingCommit(after) = std::mem::replace(&mut self.state, State::Ended) else {
            return self.internal(now, "committed while not waiting for a commit");
        };
        if let Err(why) = result {
            // Nothing more may be sent that depends on the change: in
            // particular no certificate without its record.
            return self.end(
                Reason::InvalidElement,
                OutcomeKind::ServerError(format!("could not record {}: {why}", after.what())),
            );
        }
        match after {
            AfterCommit::End { reason, kind } => self.end(reason, kind),
            AfterCommit::Start => self.start_operation(now),
            AfterCommit::SendCertificate {
                der,
                serial_hex,
                subject,
            } => {
                self.send(Message::StoreCertificateRequest(
                    capf_wire::StoreCertificateRequest::lsc(der),
                ));
                self.state = State::AwaitingStoreResult {
                    serial_hex,
                    subject,
                    deadline: now + self.config.params.reply_timeout,
                };
            }
        }
    }

    /// The runtime's answer to [`ServerEvent::Issue`].
    pub fn issued(&mut self, now: SystemTime, result: Result<capf_ca::IssuedLsc, String>) {
        if !matches!(self.state, State::AwaitingIssuance) {
            return self.internal(now, "issued while not waiting for issuance");
        }
        let issued = match result {
            Ok(issued) => issued,
            Err(why) => {
                return self.fail(
                    now,
                    Reason::InvalidElement,
                    OutcomeKind::ServerError(format!("issuance failed: {why}")),
                    None,
                );
            }
        };
        let Some(device) = self.device_name() else {
            return self.internal(now, "issued without a device");
        };
        // Read the record from the DER like every other certificate record,
        // so its issuer name is filled in too.
        let certificate = match CertificateRecord::from_der(&issued.der, &device) {
            Ok(record) => record,
            Err(e) => {
                return self.fail(
                    now,
                    Reason::InvalidElement,
                    OutcomeKind::ServerError(format!("issued certificate unreadable: {e}")),
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
        self.commit(
            SessionCommit::Issued(record),
            AfterCommit::SendCertificate {
                der: issued.der,
                serial_hex: issued.serial_hex,
                subject: issued.subject,
            },
        );
    }

    fn on_auth_response(&mut self, auth: Box<AuthResponse>) {
        let name = match DeviceName::parse(&auth.device_name) {
            Ok(name) => name,
            // A name we would never configure is an unknown device.
            Err(_) => return self.end(Reason::UnknownDevice, OutcomeKind::UnknownDevice),
        };
        self.events.push_back(ServerEvent::LoadDevice(name));
        self.state = State::AwaitingDevice { auth };
    }

    fn authenticate(&mut self, now: SystemTime, device: Device, auth: &AuthResponse) {
        let certificate = match (
            &auth.certificate,
            device.policy.auth_mode.is_existing_certificate(),
        ) {
            (Some(cert), true) => Some(self.verify_certificate(now, &device, auth, &cert.der)),
            _ => None,
        };
        let presented = Presented {
            password: auth.password.as_ref().map(|p| p.expose()),
            certificate,
        };
        let decision = device
            .policy
            .decide(&presented, now, &self.config.params.auth_parameters());
        self.device = Some(device);
        let refusal = decision.refusal().map(|r| r.to_string());
        let after = match decision.verdict {
            Verdict::Proceed(grant) => {
                self.grant = Some(grant);
                AfterCommit::Start
            }
            Verdict::Refuse(refusal) => {
                let reason = Reason::from(refusal.end_session_reason());
                let kind = if reason == Reason::NoAction {
                    OutcomeKind::NothingToDo
                } else {
                    OutcomeKind::Refused(refusal)
                };
                AfterCommit::End { reason, kind }
            }
        };
        if decision.update.is_empty() {
            self.state = State::AwaitingCommit(after);
            self.committed(now, Ok(()));
        } else {
            self.commit(
                SessionCommit::Policy {
                    update: decision.update,
                    refusal,
                    at: now,
                },
                after,
            );
        }
    }

    fn verify_certificate(
        &self,
        now: SystemTime,
        device: &Device,
        auth: &AuthResponse,
        der: &[u8],
    ) -> PresentedCertificate {
        let sudi = auth.sudi.as_ref().map(|s| SudiProof {
            certificate_der: &s.certificate,
            sha1_signature: Some(&s.sha1_signature),
            sha512_signature: Some(&s.sha512_signature),
        });
        let proof = AuthProof {
            device_name: device.name.as_str(),
            session_id: self.session_id,
            certificate_der: der,
            sha1_signature: auth.signed_data.as_deref(),
            sha512_signature: auth
                .sha2_signed_data
                .as_ref()
                .filter(|s| s.hash == capf_wire::HashId::Sha512)
                .map(|s| s.signature.as_ref()),
            sudi,
        };
        let policy = self.config.params.proof_policy();
        match capf_ca::verify_auth_proof(&proof, &self.config.trust, &policy, now) {
            Ok(verified) => PresentedCertificate {
                kind: match verified.kind {
                    capf_ca::CertificateKind::Lsc => CertificateKind::Lsc,
                    capf_ca::CertificateKind::Mic => CertificateKind::Mic,
                },
                verification: Verification::VerifiedForDevice,
            },
            Err(e) => PresentedCertificate {
                kind: guess_kind(der, &device.name),
                verification: Verification::Failed(certificate_failure(&e)),
            },
        }
    }

    fn start_operation(&mut self, now: SystemTime) {
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
                self.request_key(now, requested, 1);
            }
            Operation::Troubleshoot => {
                self.send(Message::FetchCertificateRequest(
                    FetchCertificateRequest::default(),
                ));
                self.state = State::AwaitingFetchResult {
                    deadline: reply_deadline,
                };
            }
            Operation::Delete => {
                self.send(Message::DeleteCertificateRequest);
                self.state = State::AwaitingDeleteResult {
                    deadline: reply_deadline,
                };
            }
            Operation::None => self.end(Reason::NoAction, OutcomeKind::NothingToDo),
        }
    }

    fn request_key(&mut self, now: SystemTime, requested: KeySpec, attempt: u32) {
        let request = match requested {
            KeySpec::Rsa { bits } => KeyGenerateRequest::rsa(bits),
            KeySpec::Ec(curve) => KeyGenerateRequest::ec(match curve {
                capf_ca::EcCurve::P256 => capf_wire::Curve::P256,
                capf_ca::EcCurve::P384 => capf_wire::Curve::P384,
                capf_ca::EcCurve::P521 => capf_wire::Curve::P521,
            }),
        };
        self.send(Message::KeyGenerateRequest(request));
        self.state = State::AwaitingPublicKey(states::KeyWait {
            requested,
            attempt,
            in_progress: false,
            requested_at: now,
            deadline: now + self.config.params.reply_timeout,
        });
    }

    fn key_attempt_failed(&mut self, now: SystemTime, wait: states::KeyWait, why: String) {
        let failures = self
            .device
            .as_ref()
            .map_or(1, |d| d.key_generation_failures + 1);
        if let Some(d) = self.device.as_mut() {
            d.key_generation_failures = failures;
        }
        if wait.attempt < self.config.params.max_key_generation_attempts {
            self.request_key(now, wait.requested, wait.attempt + 1);
        } else {
            let why = format!(
                "{why} (attempt {} of {})",
                wait.attempt, self.config.params.max_key_generation_attempts
            );
            self.fail(
                now,
                Reason::InvalidElement,
                OutcomeKind::KeyGenerationFailed(why),
                Some(failures),
            );
        }
    }

    fn on_retrieved(&mut self, now: SystemTime, cert: capf_wire::WrappedCertificate) {
        let Some(name) = self.device_name() else {
            return self.internal(now, "retrieved without a device");
        };
        let record = match CertificateRecord::from_der(&cert.der, &name) {
            Ok(record) => record,
            Err(e) => {
                return self.protocol_error(now, format!("the phone's certificate: {e}"));
            }
        };
        let kind = if cert.certificate_type == CertificateType::Mic
            || guess_kind(&cert.der, &name) == CertificateKind::Mic
        {
            RetrievedKind::Mic
        } else {
            RetrievedKind::Lsc
        };
        let retrieved = vec![(kind, record)];
        // capfd ends a troubleshoot with END_SESSION 0 whatever happened.
        self.complete(
            now,
            CompletedWork::Retrieved(retrieved.clone()),
            Reason::NoAction,
            OutcomeKind::Retrieved(retrieved),
        );
    }

    fn complete(
        &mut self,
        now: SystemTime,
        work: CompletedWork,
        reason: Reason,
        kind: OutcomeKind,
    ) {
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
        );
    }

    /// Ends with a failure, recording it on the device first when there is
    /// one (the operation stays scheduled).
    fn fail(
        &mut self,
        now: SystemTime,
        reason: Reason,
        kind: OutcomeKind,
        key_generation_failures: Option<u32>,
    ) {
        if self.device.is_some() {
            self.commit(
                SessionCommit::Failed {
                    reason: kind.to_string(),
                    key_generation_failures,
                    at: now,
                },
                AfterCommit::End { reason, kind },
            );
        } else {
            self.end(reason, kind);
        }
    }

    fn protocol_error(&mut self, now: SystemTime, why: String) {
        self.fail(
            now,
            Reason::InvalidElement,
            OutcomeKind::ProtocolError(why),
            None,
        );
    }

    fn internal(&mut self, now: SystemTime, why: &str) {
        self.fail(
            now,
            Reason::InvalidElement,
            OutcomeKind::ServerError(format!("session misuse: {why}")),
            None,
        );
    }

    fn commit(&mut self, commit: SessionCommit, after: AfterCommit) {
        self.events.push_back(ServerEvent::Commit(commit));
        self.state = State::AwaitingCommit(after);
    }

    fn end(&mut self, reason: Reason, kind: OutcomeKind) {
        self.send(Message::end_session(reason));
        self.state = State::Ended;
        let outcome = SessionOutcome {
            device: self.device_name(),
            kind,
            end_reason: reason,
        };
        self.outcome = Some(outcome.clone());
        self.events.push_back(ServerEvent::Finished(outcome));
    }

    fn send(&mut self, message: Message) {
        self.transmits.push_back(Transmit {
            session_id: self.session_id,
            message,
        });
    }

    fn device_name(&self) -> Option<DeviceName> {
        self.device.as_ref().map(|d| d.name.clone())
    }
}

/// An LSC names the device in its CN; anything else a phone holds is taken
/// for its MIC. Used only where capf-ca could not classify the certificate.
fn guess_kind(der: &[u8], device: &DeviceName) -> CertificateKind {
    match capf_ca::CaCertificate::from_der(der, "presented certificate") {
        Ok(cert) if cert.common_name().as_deref() == Some(device.as_str()) => CertificateKind::Lsc,
        _ => CertificateKind::Mic,
    }
}

fn certificate_failure(e: &CaError) -> CertificateFailure {
    match e {
        CaError::UntrustedIssuer { .. }
        | CaError::PathTooLong { .. }
        | CaError::CertificateNotValid { .. } => CertificateFailure::UntrustedIssuer,
        CaError::DeviceBinding { .. } => CertificateFailure::NotBoundToDevice,
        CaError::BadProofSignature { .. } | CaError::MissingProof { .. } => {
            CertificateFailure::BadSignature
        }
        _ => CertificateFailure::Malformed,
    }
}
