#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The phone session alone: driven by the server half of the golden
//! transcripts and by hand-written server messages.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use capf_auth::{AuthMode, AuthString};
use capf_ca::{
    AuthProof, CapfIdentity, CertificateKind, EcCurve, IdentityParams, KeySpec, LscProfile,
    PrivateKey, ProofPolicy, SudiProof, TrustStore, verify_auth_proof,
};
use capf_operations::phone::{
    CertificateCredentials, Credentials, FailureCause, KeyGenFailure, LscChange, PendingOperation,
    PersistentState, PhoneConfig, PhoneEvent, PhoneFailure, PhoneOperation, PhoneOutcome,
    PhoneSession, PhoneStatus, PhoneStep, PhoneSuccess, ProtocolViolation, RetryPolicy,
    StateFileError, SudiCredentials,
};
use capf_wire::{
    AuthRequest, Command, Curve, FetchCertificateRequest, Frame, KeyGenerateRequest, KeyType,
    Message, Reason, ReasonOnly, StoreCertificateRequest, Tag,
};

const INSTALL_PASSWORD: &str = include_str!("../../../testdata/vectors/install-password.txt");
const INSTALL_NULL_EC: &str = include_str!("../../../testdata/vectors/install-null-ec.txt");
const INSTALL_LSC_AUTH: &str = include_str!("../../../testdata/vectors/install-lsc-auth.txt");
const FETCH: &str = include_str!("../../../testdata/vectors/fetch.txt");
const DELETE: &str = include_str!("../../../testdata/vectors/delete.txt");

const SID: u32 = 7;

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

// ---------------------------------------------------------------------------
// Transcripts

struct Line {
    from_server: bool,
    name: String,
    bytes: Vec<u8>,
    frame: Frame,
}

fn transcript(text: &str) -> Vec<Line> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut parts = l.split_whitespace();
            let dir = parts.next().unwrap();
            let name = parts.next().unwrap().to_owned();
            let bytes = hex::decode(parts.next().unwrap()).unwrap();
            let frame = Frame::decode_exact(&bytes).unwrap();
            Line {
                from_server: dir == "S>C",
                name,
                bytes,
                frame,
            }
        })
        .collect()
}

/// The DER SPKI the phone sent in a transcript (to answer GenerateKey with
/// the same key, so that KEY_GENERATE_RESPONSE is byte-equal).
fn transcript_spki(lines: &[Line]) -> Vec<u8> {
    let line = lines
        .iter()
        .find(|l| l.name == "KEY_GENERATE_RESPONSE")
        .unwrap();
    line.frame.element(Tag::PublicKey).unwrap().value.to_vec()
}

/// What the phone's runtime answers.
#[derive(Clone)]
struct Runtime {
    key: Result<Vec<u8>, KeyGenFailure>,
    store_ok: bool,
    had_lsc: bool,
    generated: Vec<KeySpec>,
    stored: Vec<Bytes>,
}

impl Runtime {
    fn new(spki: Vec<u8>) -> Self {
        Runtime {
            key: Ok(spki),
            store_ok: true,
            had_lsc: true,
            generated: Vec::new(),
            stored: Vec::new(),
        }
    }

    /// Answers every event at once; returns the frames the phone sent.
    fn drain(&mut self, phone: &mut PhoneSession, now: SystemTime) -> Vec<Frame> {
        let mut sent = Vec::new();
        loop {
            if let Some(t) = phone.poll_transmit() {
                // Through the wire, as the transport would.
                let bytes = t.to_bytes().unwrap();
                sent.push(Frame::decode_exact(&bytes).unwrap());
                continue;
            }
            match phone.poll_event() {
                Some(PhoneEvent::GenerateKey(spec)) => {
                    self.generated.push(spec);
                    phone.key_generated(now, self.key.clone());
                }
                Some(PhoneEvent::StoreCertificate { certificate_der }) => {
                    self.stored.push(certificate_der);
                    phone.certificate_stored(now, self.store_ok);
                }
                Some(PhoneEvent::DeleteCertificate) => phone.certificate_deleted(now, self.had_lsc),
                Some(PhoneEvent::Finished) => {}
                None => return sent,
            }
        }
    }
}

/// Feeds the S>C frames; returns the phone's frames as bytes.
fn replay(lines: &[Line], phone: &mut PhoneSession, runtime: &mut Runtime) -> Vec<Frame> {
    let mut sent = Vec::new();
    for line in lines.iter().filter(|l| l.from_server) {
        let message = Message::from_frame(&line.frame).unwrap();
        phone.handle_message(t0(), line.frame.session_id, message);
        sent.extend(runtime.drain(phone, t0()));
    }
    sent
}

fn client_lines(lines: &[Line]) -> Vec<&Line> {
    lines.iter().filter(|l| !l.from_server).collect()
}

fn commands(frames: &[Frame]) -> Vec<String> {
    frames
        .iter()
        .map(|f| f.command.wire_name().unwrap().to_owned())
        .collect()
}

fn password(digits: &str) -> Credentials {
    Credentials::AuthString(AuthString::from_digits(digits.as_bytes()).unwrap())
}

/// Replays a transcript and checks every C>S frame byte for byte.
fn check_byte_equal(text: &str, config: PhoneConfig) -> PhoneSession {
    let lines = transcript(text);
    let has_key = lines.iter().any(|l| l.name == "KEY_GENERATE_RESPONSE");
    let spki = if has_key {
        transcript_spki(&lines)
    } else {
        Vec::new()
    };
    let mut phone = PhoneSession::new(config, t0());
    let mut runtime = Runtime::new(spki);
    let sent = replay(&lines, &mut phone, &mut runtime);
    let expected = client_lines(&lines);
    assert_eq!(
        commands(&sent),
        expected.iter().map(|l| l.name.clone()).collect::<Vec<_>>()
    );
    for (frame, line) in sent.iter().zip(&expected) {
        assert_eq!(
            hex::encode(frame.to_bytes().unwrap()),
            hex::encode(&line.bytes),
            "{}",
            line.name
        );
    }
    assert!(phone.is_finished());
    phone
}

#[test]
fn install_password_transcript_byte_for_byte() {
    let config = PhoneConfig::new("SEP001122334455", password("123456"));
    let phone = check_byte_equal(INSTALL_PASSWORD, config);
    let lines = transcript(INSTALL_PASSWORD);
    let store = lines
        .iter()
        .find(|l| l.name == "STORE_CERTIFICATE_REQUEST")
        .unwrap();
    let Message::StoreCertificateRequest(req) = Message::from_frame(&store.frame).unwrap() else {
        panic!()
    };
    assert_eq!(
        phone.outcome(),
        Some(&PhoneOutcome::Succeeded(PhoneSuccess::Installed {
            certificate_der: req.certificate.der
        }))
    );
    assert!(phone.outcome().unwrap().lsc_installed_after(false));
}

#[test]
fn install_null_ec_transcript_byte_for_byte() {
    let config = PhoneConfig::new("SEP0011223344AA", Credentials::NullString);
    let lines = transcript(INSTALL_NULL_EC);
    let mut phone = PhoneSession::new(config.clone(), t0());
    let mut runtime = Runtime::new(transcript_spki(&lines));
    replay(&lines, &mut phone, &mut runtime);
    assert_eq!(runtime.generated, vec![KeySpec::Ec(EcCurve::P384)]);
    check_byte_equal(INSTALL_NULL_EC, config);
}

#[test]
fn fetch_transcript_byte_for_byte() {
    let lines = transcript(FETCH);
    let response = lines
        .iter()
        .find(|l| l.name == "FETCH_CERTIFICATE_RESPONSE")
        .unwrap();
    let Message::FetchCertificateResponse(r) = Message::from_frame(&response.frame).unwrap() else {
        panic!()
    };
    let lsc = r.certificate.unwrap().der;
    let config = PhoneConfig::new("SEP001122334455", password("123456")).with_lsc(lsc.clone());
    let phone = check_byte_equal(FETCH, config);
    assert_eq!(
        phone.outcome(),
        Some(&PhoneOutcome::Succeeded(PhoneSuccess::Fetched {
            returned: Some(lsc)
        }))
    );
    assert!(phone.outcome().unwrap().lsc_installed_after(true));
}

#[test]
fn delete_transcript_byte_for_byte() {
    let config = PhoneConfig::new("SEP001122334455", password("123456"));
    let phone = check_byte_equal(DELETE, config);
    let outcome = phone.outcome().unwrap();
    assert_eq!(
        outcome,
        &PhoneOutcome::Succeeded(PhoneSuccess::Deleted { had_one: true })
    );
    assert_eq!(outcome.lsc_change(), LscChange::Deleted);
    assert!(!outcome.lsc_installed_after(true));
}

/// A throwaway issuer and an RSA LSC with its key for `device`.
fn lsc_credentials(device: &str) -> (CapfIdentity, Bytes, PrivateKey) {
    let params = IdentityParams {
        key: KeySpec::Ec(EcCurve::P256),
        ..IdentityParams::default()
    };
    let identity = CapfIdentity::generate(&params, t0()).unwrap();
    let phone_key = PrivateKey::generate(KeySpec::Rsa { bits: 2048 }).unwrap();
    let lsc = identity
        .issuer()
        .unwrap()
        .issue_lsc(
            device,
            &phone_key.public_key_der().unwrap(),
            &LscProfile::default(),
            t0(),
        )
        .unwrap();
    (identity, Bytes::from(lsc.der), phone_key)
}

#[test]
fn install_lsc_auth_transcript_same_commands_and_verifiable_proofs() {
    let device = "SEP001122334455";
    let (identity, lsc, key) = lsc_credentials(device);
    let credentials = Credentials::Certificate(Box::new(CertificateCredentials {
        kind: CertificateKind::Lsc,
        certificate_der: lsc.clone(),
        key: key.clone(),
        sudi: Some(SudiCredentials {
            certificate_der: lsc.clone(),
            key,
        }),
    }));
    assert_eq!(
        credentials.auth_mode(),
        AuthMode::ExistingCertificateLscFirst
    );
    let lines = transcript(INSTALL_LSC_AUTH);
    let mut phone = PhoneSession::new(PhoneConfig::new(device, credentials), t0());
    let mut runtime = Runtime::new(transcript_spki(&lines));
    let sent = replay(&lines, &mut phone, &mut runtime);
    let expected = client_lines(&lines);
    assert_eq!(
        commands(&sent),
        expected.iter().map(|l| l.name.clone()).collect::<Vec<_>>()
    );
    // Everything but AUTH_RESPONSE (other key) is byte-equal.
    for (frame, line) in sent.iter().zip(&expected).skip(1) {
        assert_eq!(
            frame.to_bytes().unwrap().to_vec(),
            line.bytes,
            "{}",
            line.name
        );
    }
    assert!(phone.outcome().unwrap().is_success());

    // capfc's element order and only tags servers accept.
    let auth = &sent[0];
    let tags: Vec<u8> = auth.elements.iter().map(|e| e.tag.to_u8()).collect();
    assert_eq!(tags, vec![1, 4, 6, 7, 11, 13, 16, 20]);
    let reference = &expected[0].frame;
    let reference_tags: Vec<u8> = reference.elements.iter().map(|e| e.tag.to_u8()).collect();
    assert_eq!(tags, reference_tags);

    // The proofs verify.
    let Message::AuthResponse(r) = Message::from_frame(auth).unwrap() else {
        panic!()
    };
    assert_eq!(r.password.as_ref().map(|p| p.is_empty()), Some(true));
    let sudi = r.sudi.as_ref().unwrap();
    let sha2 = r.sha2_signed_data.as_ref().unwrap();
    assert_eq!(sha2.hash, capf_wire::HashId::Sha512);
    let proof = AuthProof {
        device_name: &r.device_name,
        session_id: auth.session_id,
        certificate_der: &r.certificate.as_ref().unwrap().der,
        sha1_signature: r.signed_data.as_deref(),
        sha512_signature: Some(&sha2.signature),
        sudi: Some(SudiProof {
            certificate_der: &sudi.certificate,
            sha1_signature: Some(&sudi.sha1_signature),
            sha512_signature: Some(&sudi.sha512_signature),
        }),
    };
    let trust = TrustStore::for_issuer(&identity.issuer().unwrap());
    let verified = verify_auth_proof(&proof, &trust, &ProofPolicy::default(), t0()).unwrap();
    assert_eq!(verified.kind, CertificateKind::Lsc);
    assert!(verified.sudi_subject.is_some());

    // The SUDI signature covers the session id: another id fails.
    let wrong = AuthProof {
        session_id: auth.session_id + 1,
        ..proof
    };
    assert!(verify_auth_proof(&wrong, &trust, &ProofPolicy::default(), t0()).is_err());
}

// ---------------------------------------------------------------------------
// Hand-written servers

fn phone_with(credentials: Credentials) -> PhoneSession {
    PhoneSession::new(PhoneConfig::new("SEP001122334455", credentials), t0())
}

fn authenticated() -> (PhoneSession, Runtime) {
    let mut phone = phone_with(password("123456"));
    let mut runtime = Runtime::new(vec![0x30, 0x00]);
    phone.handle_message(t0(), SID, Message::AuthRequest(AuthRequest::capfd()));
    let sent = runtime.drain(&mut phone, t0());
    assert_eq!(commands(&sent), vec!["AUTH_RESPONSE"]);
    assert_eq!(sent[0].session_id, SID);
    (phone, runtime)
}

fn send(phone: &mut PhoneSession, runtime: &mut Runtime, message: Message) -> Vec<String> {
    send_at(phone, runtime, message, t0())
}

fn send_at(
    phone: &mut PhoneSession,
    runtime: &mut Runtime,
    message: Message,
    now: SystemTime,
) -> Vec<String> {
    phone.handle_message(now, SID, message);
    commands(&runtime.drain(phone, now))
}

fn end(reason: Reason) -> Message {
    Message::end_session(reason)
}

fn failure(phone: &PhoneSession) -> &PhoneFailure {
    match phone.outcome() {
        Some(PhoneOutcome::Failed(f)) => f,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn end_session_right_after_auth() {
    for (reason, expected) in [
        (
            Reason::NoAction,
            PhoneOutcome::Succeeded(PhoneSuccess::NothingScheduled {
                reason: Reason::NoAction,
            }),
        ),
        (
            Reason::UpdateCertificate,
            PhoneOutcome::Succeeded(PhoneSuccess::NothingScheduled {
                reason: Reason::UpdateCertificate,
            }),
        ),
        (
            Reason::UnknownDevice,
            PhoneOutcome::Failed(PhoneFailure {
                cause: FailureCause::UnknownDevice,
                step: PhoneStep::AwaitingInstruction,
                lsc_change: LscChange::Unchanged,
            }),
        ),
        (
            Reason::InvalidElement,
            PhoneOutcome::Failed(PhoneFailure {
                cause: FailureCause::Refused(Reason::InvalidElement),
                step: PhoneStep::AwaitingInstruction,
                lsc_change: LscChange::Unchanged,
            }),
        ),
    ] {
        let (mut phone, mut runtime) = authenticated();
        assert!(send(&mut phone, &mut runtime, end(reason)).is_empty());
        assert_eq!(phone.outcome(), Some(&expected));
        assert_eq!(phone.poll_timeout(), None);
        assert!(!phone.outcome().unwrap().is_communication_failure());
    }
}

#[test]
fn end_session_accepted_at_every_step() {
    // Before AUTH_REQUEST.
    let mut phone = phone_with(Credentials::NullString);
    phone.handle_message(t0(), 99, end(Reason::InvalidElement));
    assert_eq!(failure(&phone).step, PhoneStep::AwaitingAuthRequest);

    // While the key is being generated (the runtime answers late).
    let (mut phone, mut runtime) = authenticated();
    phone.handle_message(
        t0(),
        SID,
        Message::KeyGenerateRequest(KeyGenerateRequest::rsa(2048)),
    );
    assert_eq!(
        phone.poll_transmit().unwrap().message,
        Message::RequestInProgress
    );
    assert!(matches!(
        phone.poll_event(),
        Some(PhoneEvent::GenerateKey(_))
    ));
    phone.handle_message(t0(), SID, end(Reason::InvalidElement));
    assert_eq!(
        failure(&phone).cause,
        FailureCause::EndedByServer(Reason::InvalidElement)
    );
    assert_eq!(failure(&phone).step, PhoneStep::GeneratingKey);
    phone.key_generated(t0(), Ok(vec![1, 2, 3]));
    assert!(runtime.drain(&mut phone, t0()).is_empty());

    // Waiting for the certificate.
    let (mut phone, mut runtime) = authenticated();
    send(
        &mut phone,
        &mut runtime,
        Message::KeyGenerateRequest(KeyGenerateRequest::rsa(2048)),
    );
    send(&mut phone, &mut runtime, end(Reason::InvalidElement));
    assert_eq!(failure(&phone).step, PhoneStep::AwaitingCertificate);
    assert_eq!(failure(&phone).lsc_change, LscChange::Unchanged);

    // After the certificate was stored: a failure reason still leaves the
    // LSC installed.
    let (mut phone, mut runtime) = authenticated();
    send(
        &mut phone,
        &mut runtime,
        Message::KeyGenerateRequest(KeyGenerateRequest::rsa(2048)),
    );
    send(
        &mut phone,
        &mut runtime,
        Message::StoreCertificateRequest(StoreCertificateRequest::lsc(vec![0x30, 1, 2])),
    );
    send(&mut phone, &mut runtime, end(Reason::InvalidElement));
    let f = failure(&phone);
    assert_eq!(f.cause, FailureCause::EndedByServer(Reason::InvalidElement));
    assert_eq!(f.step, PhoneStep::AwaitingEndSession);
    assert!(phone.outcome().unwrap().lsc_installed_after(false));
}

#[test]
fn end_session_while_storing_waits_for_the_runtime() {
    let (mut phone, mut runtime) = authenticated();
    send(
        &mut phone,
        &mut runtime,
        Message::KeyGenerateRequest(KeyGenerateRequest::rsa(2048)),
    );
    phone.handle_message(
        t0(),
        SID,
        Message::StoreCertificateRequest(StoreCertificateRequest::lsc(vec![0x30, 9])),
    );
    assert!(matches!(
        phone.poll_event(),
        Some(PhoneEvent::StoreCertificate { .. })
    ));
    phone.handle_message(t0(), SID, end(Reason::InvalidElement));
    assert!(!phone.is_finished());
    assert_eq!(phone.poll_timeout(), None);
    phone.certificate_stored(t0(), true);
    assert!(
        phone.poll_transmit().is_none(),
        "no STORE response after END_SESSION"
    );
    let f = failure(&phone);
    assert_eq!(f.step, PhoneStep::StoringCertificate);
    assert_eq!(
        f.lsc_change,
        LscChange::Installed {
            certificate_der: Bytes::from_static(&[0x30, 9])
        }
    );
}

#[test]
fn unknown_or_unexpected_command_is_a_protocol_error() {
    let (mut phone, mut runtime) = authenticated();
    let other = Message::Other(Frame::new(Command::from(99), SID));
    assert!(send(&mut phone, &mut runtime, other).is_empty());
    assert_eq!(
        failure(&phone).cause,
        FailureCause::ProtocolError(ProtocolViolation::UnexpectedMessage(Command::from(99)))
    );
    assert_eq!(failure(&phone).step, PhoneStep::AwaitingInstruction);
    assert!(phone.status().to_string().contains("protocol error"));

    // A command nobody uses.
    let (mut phone, mut runtime) = authenticated();
    let status = Message::Other(Frame::new(Command::StatusRequest, SID));
    assert!(send(&mut phone, &mut runtime, status).is_empty());
    assert!(matches!(
        failure(&phone).cause,
        FailureCause::ProtocolError(_)
    ));

    // A STORE before any key, a second AUTH_REQUEST, a phone-side message.
    for message in [
        Message::StoreCertificateRequest(StoreCertificateRequest::lsc(vec![0x30])),
        Message::AuthRequest(AuthRequest::capfd()),
        Message::RequestInProgress,
    ] {
        let (mut phone, mut runtime) = authenticated();
        let command = message.command();
        assert!(send(&mut phone, &mut runtime, message).is_empty());
        assert_eq!(
            failure(&phone).cause,
            FailureCause::ProtocolError(ProtocolViolation::UnexpectedMessage(command))
        );
    }

    // Something other than AUTH_REQUEST first.
    let mut phone = phone_with(Credentials::NullString);
    phone.handle_message(t0(), SID, Message::DeleteCertificateRequest);
    assert_eq!(failure(&phone).step, PhoneStep::AwaitingAuthRequest);
    assert!(phone.poll_transmit().is_none());

    // Messages after the end are ignored.
    let before = phone.outcome().cloned();
    phone.handle_message(t0(), SID, Message::AuthRequest(AuthRequest::capfd()));
    assert_eq!(phone.outcome().cloned(), before);
    assert!(phone.poll_transmit().is_none());
}

#[test]
fn malformed_frame_reported_by_the_runtime() {
    let (mut phone, _) = authenticated();
    phone.handle_malformed(t0(), "truncated element");
    assert!(matches!(
        failure(&phone).cause,
        FailureCause::ProtocolError(ProtocolViolation::Malformed(ref e)) if e == "truncated element"
    ));
}

#[test]
fn session_id_mismatch_is_a_protocol_error() {
    let (mut phone, mut runtime) = authenticated();
    assert_eq!(phone.session_id(), Some(SID));
    phone.handle_message(t0(), SID + 1, Message::DeleteCertificateRequest);
    assert!(runtime.drain(&mut phone, t0()).is_empty());
    assert_eq!(
        failure(&phone).cause,
        FailureCause::ProtocolError(ProtocolViolation::SessionIdMismatch {
            expected: SID,
            found: SID + 1
        })
    );
    // Even for END_SESSION.
    let (mut phone, _) = authenticated();
    phone.handle_message(t0(), SID + 1, end(Reason::NoAction));
    assert!(!phone.outcome().unwrap().is_success());
}

#[test]
fn key_failure_then_retry_sends_one_request_in_progress() {
    let (mut phone, mut runtime) = authenticated();
    runtime.key = Err(KeyGenFailure::new("no entropy"));
    let sent = send(
        &mut phone,
        &mut runtime,
        Message::KeyGenerateRequest(KeyGenerateRequest::rsa(2048)),
    );
    assert_eq!(sent, vec!["REQUEST_IN_PROGRESS", "KEY_GENERATE_RESPONSE"]);
    runtime.key = Ok(vec![0x30, 0x01]);
    phone.handle_message(
        t0(),
        SID,
        Message::KeyGenerateRequest(KeyGenerateRequest::rsa(2048)),
    );
    let frames = runtime.drain(&mut phone, t0());
    assert_eq!(commands(&frames), vec!["KEY_GENERATE_RESPONSE"]);
    assert_eq!(
        frames[0].element(Tag::PublicKey).unwrap().value.as_ref(),
        &[0x30, 0x01]
    );
    assert_eq!(
        send(
            &mut phone,
            &mut runtime,
            Message::StoreCertificateRequest(StoreCertificateRequest::lsc(vec![0x30])),
        ),
        vec!["STORE_CERTIFICATE_RESPONSE"]
    );
    send(&mut phone, &mut runtime, end(Reason::SUCCESS));
    assert!(phone.outcome().unwrap().is_success());
    assert_eq!(runtime.generated.len(), 2);
}

#[test]
fn key_failure_answer_and_end() {
    let (mut phone, mut runtime) = authenticated();
    runtime.key = Err(KeyGenFailure::new("unsupported size"));
    phone.handle_message(
        t0(),
        SID,
        Message::KeyGenerateRequest(KeyGenerateRequest::rsa(2048)),
    );
    let frames = runtime.drain(&mut phone, t0());
    let Message::KeyGenerateResponse(r) = Message::from_frame(&frames[1]).unwrap() else {
        panic!()
    };
    assert_eq!(r.reason, Some(Reason::InvalidElement));
    assert_eq!(r.public_key, None);
    send(&mut phone, &mut runtime, end(Reason::InvalidElement));
    assert_eq!(
        failure(&phone).cause,
        FailureCause::KeyGenerationFailed(KeyGenFailure::new("unsupported size"))
    );
}

#[test]
fn key_type_absent_means_rsa() {
    for (request, spec) in [
        (
            KeyGenerateRequest {
                key_size: Some(2048),
                key_type: None,
                curve: None,
            },
            KeySpec::Rsa { bits: 2048 },
        ),
        (
            KeyGenerateRequest {
                key_size: Some(1024),
                key_type: None,
                curve: None,
            },
            KeySpec::Rsa { bits: 1024 },
        ),
        (KeyGenerateRequest::default(), KeySpec::Rsa { bits: 2048 }),
        (
            KeyGenerateRequest::ec(Curve::P256),
            KeySpec::Ec(EcCurve::P256),
        ),
        (
            KeyGenerateRequest::ec(Curve::P521),
            KeySpec::Ec(EcCurve::P521),
        ),
    ] {
        let (mut phone, mut runtime) = authenticated();
        send(
            &mut phone,
            &mut runtime,
            Message::KeyGenerateRequest(request),
        );
        assert_eq!(runtime.generated, vec![spec]);
        assert_eq!(
            phone.status(),
            PhoneStatus::Pending {
                step: PhoneStep::AwaitingCertificate,
                operation: Some(PhoneOperation::InstallUpgrade)
            }
        );
    }
}

#[test]
fn unsupported_key_request_is_answered_with_reason_7() {
    for request in [
        KeyGenerateRequest::ec(Curve::from(9)),
        KeyGenerateRequest {
            key_size: None,
            key_type: Some(KeyType::Ec),
            curve: None,
        },
        KeyGenerateRequest {
            key_size: None,
            key_type: Some(KeyType::from(5)),
            curve: None,
        },
    ] {
        let (mut phone, mut runtime) = authenticated();
        phone.handle_message(t0(), SID, Message::KeyGenerateRequest(request.clone()));
        let frames = runtime.drain(&mut phone, t0());
        assert_eq!(commands(&frames), vec!["KEY_GENERATE_RESPONSE"]);
        assert!(runtime.generated.is_empty());
        send(&mut phone, &mut runtime, end(Reason::InvalidElement));
        assert_eq!(
            failure(&phone).cause,
            FailureCause::UnsupportedKeyRequest(request)
        );
    }
}

#[test]
fn store_failure_answers_reason_7() {
    let (mut phone, mut runtime) = authenticated();
    runtime.store_ok = false;
    send(
        &mut phone,
        &mut runtime,
        Message::KeyGenerateRequest(KeyGenerateRequest::rsa(2048)),
    );
    phone.handle_message(
        t0(),
        SID,
        Message::StoreCertificateRequest(StoreCertificateRequest::lsc(vec![0x30])),
    );
    let frames = runtime.drain(&mut phone, t0());
    assert_eq!(
        Message::from_frame(&frames[0]).unwrap(),
        Message::StoreCertificateResponse(ReasonOnly {
            reason: Reason::InvalidElement
        })
    );
    send(&mut phone, &mut runtime, end(Reason::SUCCESS));
    assert_eq!(failure(&phone).cause, FailureCause::StoreFailed);
    assert!(!phone.outcome().unwrap().lsc_installed_after(false));
}

#[test]
fn fetch_without_lsc_and_delete_without_lsc_answer_reason_7() {
    let (mut phone, mut runtime) = authenticated();
    phone.handle_message(
        t0(),
        SID,
        Message::FetchCertificateRequest(FetchCertificateRequest::default()),
    );
    let frames = runtime.drain(&mut phone, t0());
    assert_eq!(
        frames[0].to_bytes().unwrap().as_ref(),
        &[0x55, 0x0c, 0, 0, 0, 7, 0, 4, 1, 0, 1, 7]
    );
    send(&mut phone, &mut runtime, end(Reason::NoAction));
    assert_eq!(
        phone.outcome(),
        Some(&PhoneOutcome::Succeeded(PhoneSuccess::Fetched {
            returned: None
        }))
    );

    let (mut phone, mut runtime) = authenticated();
    runtime.had_lsc = false;
    phone.handle_message(t0(), SID, Message::DeleteCertificateRequest);
    let frames = runtime.drain(&mut phone, t0());
    assert_eq!(
        frames[0].to_bytes().unwrap().as_ref(),
        &[0x55, 0x0e, 0, 0, 0, 7, 0, 4, 1, 0, 1, 7]
    );
    send(&mut phone, &mut runtime, end(Reason::SUCCESS));
    assert_eq!(
        phone.outcome(),
        Some(&PhoneOutcome::Succeeded(PhoneSuccess::Deleted {
            had_one: false
        }))
    );
    assert!(!phone.outcome().unwrap().lsc_installed_after(false));
}

#[test]
fn abort_stops_cleanly() {
    let (mut phone, mut runtime) = authenticated();
    phone.handle_message(
        t0(),
        SID,
        Message::KeyGenerateRequest(KeyGenerateRequest::rsa(2048)),
    );
    // The user stops before the runtime polled REQUEST_IN_PROGRESS.
    phone.abort(t0());
    assert!(phone.poll_transmit().is_none());
    assert_eq!(failure(&phone).cause, FailureCause::Aborted);
    assert_eq!(failure(&phone).step, PhoneStep::GeneratingKey);
    // The late key is ignored, nothing is sent.
    phone.key_generated(t0(), Ok(vec![0x30]));
    assert!(runtime.drain(&mut phone, t0()).is_empty());
    assert!(
        phone
            .status()
            .to_string()
            .starts_with("Failed: stopped by the user")
    );
    assert!(!phone.outcome().unwrap().is_communication_failure());
    assert!(!RetryPolicy::PHONE.should_retry(phone.outcome().unwrap()));

    // While the runtime deletes: ends when it answers, says what changed.
    let (mut phone, _) = authenticated();
    phone.handle_message(t0(), SID, Message::DeleteCertificateRequest);
    assert_eq!(phone.poll_event(), Some(PhoneEvent::DeleteCertificate));
    phone.abort(t0());
    assert!(!phone.is_finished());
    phone.certificate_deleted(t0(), true);
    assert!(phone.poll_transmit().is_none());
    let f = failure(&phone);
    assert_eq!(f.cause, FailureCause::Aborted);
    assert_eq!(f.lsc_change, LscChange::Deleted);
}

#[test]
fn timeouts_per_step() {
    // Waiting for AUTH_REQUEST.
    let mut phone = phone_with(Credentials::NullString);
    assert_eq!(phone.poll_timeout(), Some(t0() + secs(30)));
    phone.handle_timeout(t0() + secs(29));
    assert!(!phone.is_finished());
    phone.handle_timeout(t0() + secs(30));
    assert_eq!(failure(&phone).cause, FailureCause::TimedOut);
    assert_eq!(failure(&phone).step, PhoneStep::AwaitingAuthRequest);
    assert!(phone.outcome().unwrap().is_communication_failure());
    assert_eq!(phone.poll_event(), Some(PhoneEvent::Finished));

    // Each wait counts from the phone's last message; none while the
    // runtime generates the key.
    let config = PhoneConfig::new("SEP001122334455", password("1234")).with_reply_timeout(secs(10));
    let mut phone = PhoneSession::new(config, t0());
    let mut runtime = Runtime::new(vec![0x30]);
    send_at(
        &mut phone,
        &mut runtime,
        Message::AuthRequest(AuthRequest::capfd()),
        t0() + secs(5),
    );
    assert_eq!(phone.poll_timeout(), Some(t0() + secs(15)));
    phone.handle_message(
        t0() + secs(6),
        SID,
        Message::KeyGenerateRequest(KeyGenerateRequest::rsa(2048)),
    );
    assert_eq!(phone.poll_timeout(), None);
    phone.handle_timeout(t0() + secs(3600));
    assert!(!phone.is_finished());
    // Key ready after an hour (a slow phone).
    let later = t0() + secs(3600);
    let _ = phone.poll_transmit();
    let _ = phone.poll_event();
    phone.key_generated(later, Ok(vec![0x30]));
    assert_eq!(phone.poll_timeout(), Some(later + secs(10)));
    phone.handle_timeout(later + secs(10));
    let f = failure(&phone);
    assert_eq!(f.cause, FailureCause::TimedOut);
    assert_eq!(f.step, PhoneStep::AwaitingCertificate);
    assert_eq!(phone.poll_timeout(), None);
}

#[test]
fn connection_lost_is_a_communication_failure() {
    let (mut phone, mut runtime) = authenticated();
    send(
        &mut phone,
        &mut runtime,
        Message::KeyGenerateRequest(KeyGenerateRequest::rsa(2048)),
    );
    phone.connection_lost(t0());
    let outcome = phone.outcome().unwrap();
    assert_eq!(failure(&phone).cause, FailureCause::ConnectionLost);
    assert!(outcome.is_communication_failure());
    assert!(RetryPolicy::PHONE.should_retry(outcome));
    // After the end, a closed connection changes nothing.
    let (mut phone, mut runtime) = authenticated();
    send(&mut phone, &mut runtime, end(Reason::NoAction));
    phone.connection_lost(t0());
    assert!(phone.outcome().unwrap().is_success());
}

#[test]
fn status_goes_from_pending_to_success() {
    let mut phone = phone_with(password("123456"));
    let mut runtime = Runtime::new(vec![0x30]);
    assert_eq!(phone.status().to_string(), "Pending");
    assert!(phone.status().is_pending());
    send(
        &mut phone,
        &mut runtime,
        Message::AuthRequest(AuthRequest::capfd()),
    );
    assert_eq!(
        phone.status(),
        PhoneStatus::Pending {
            step: PhoneStep::AwaitingInstruction,
            operation: None
        }
    );
    send(
        &mut phone,
        &mut runtime,
        Message::KeyGenerateRequest(KeyGenerateRequest::rsa(2048)),
    );
    assert_eq!(phone.status().to_string(), "Install/Upgrade pending");
    send(
        &mut phone,
        &mut runtime,
        Message::StoreCertificateRequest(StoreCertificateRequest::lsc(vec![0x30])),
    );
    assert_eq!(
        phone.status(),
        PhoneStatus::Pending {
            step: PhoneStep::AwaitingEndSession,
            operation: Some(PhoneOperation::InstallUpgrade)
        }
    );
    send(&mut phone, &mut runtime, end(Reason::SUCCESS));
    assert_eq!(phone.status().to_string(), "Succeeded: LSC installed");
    assert_eq!(runtime.stored, vec![Bytes::from_static(&[0x30])]);
}

#[test]
fn auth_response_for_each_credential_kind() {
    // Raw password (capfd allows letters) and the null string.
    for (credentials, password) in [
        (
            Credentials::RawPassword(capf_wire::Password::new(&b"abcd12345"[..])),
            &b"abcd12345"[..],
        ),
        (Credentials::NullString, &b""[..]),
    ] {
        let mut phone = phone_with(credentials);
        phone.handle_message(t0(), 3, Message::AuthRequest(AuthRequest::default()));
        let t = phone.poll_transmit().unwrap();
        let Message::AuthResponse(r) = t.message else {
            panic!()
        };
        assert_eq!(r.password.unwrap().expose(), password);
        assert_eq!(r.version, Some(3));
        assert_eq!(r.reason, Some(Reason::SUCCESS));
        assert!(r.certificate.is_none() && r.sudi.is_none());
    }
    // The configured version.
    let config = PhoneConfig::new("CSFUSER", Credentials::NullString).with_version(2);
    let mut phone = PhoneSession::new(config, t0());
    phone.handle_message(t0(), 3, Message::AuthRequest(AuthRequest::capfd()));
    let Message::AuthResponse(r) = phone.poll_transmit().unwrap().message else {
        panic!()
    };
    assert_eq!(r.version, Some(2));
    assert_eq!(r.device_name, "CSFUSER");
}

#[test]
fn credentials_name_their_auth_mode() {
    assert_eq!(password("1234").auth_mode(), AuthMode::AuthString);
    assert_eq!(Credentials::NullString.auth_mode(), AuthMode::NullString);
    let key = PrivateKey::generate(KeySpec::Ec(EcCurve::P256)).unwrap();
    let mic = Credentials::Certificate(Box::new(CertificateCredentials {
        kind: CertificateKind::Mic,
        certificate_der: Bytes::new(),
        key,
        sudi: None,
    }));
    assert_eq!(mic.auth_mode(), AuthMode::ExistingCertificateMicFirst);
    // Debug never shows the digits.
    assert!(!format!("{:?}", password("987654")).contains("987654"));
}

// ---------------------------------------------------------------------------
// Retries

#[test]
fn retry_policy_arithmetic() {
    let policy = RetryPolicy::default();
    assert_eq!(policy, RetryPolicy::PHONE);
    assert_eq!(policy.retries, 3);
    assert_eq!(policy.interval, secs(30));
    let failed = t0();
    assert_eq!(policy.next_attempt(1, failed), Some(failed + secs(30)));
    assert_eq!(policy.next_attempt(2, failed), Some(failed + secs(30)));
    assert_eq!(policy.next_attempt(3, failed), Some(failed + secs(30)));
    assert_eq!(policy.next_attempt(4, failed), None);
    assert_eq!(RetryPolicy::NEVER.next_attempt(1, failed), None);

    let fast = RetryPolicy {
        retries: 1,
        interval: secs(2),
    };
    assert_eq!(fast.next_attempt(1, failed), Some(failed + secs(2)));
    assert_eq!(fast.next_attempt(2, failed), None);

    // Four attempts in all, 30 s apart.
    let timed_out = PhoneOutcome::Failed(PhoneFailure {
        cause: FailureCause::TimedOut,
        step: PhoneStep::AwaitingCertificate,
        lsc_change: LscChange::Unchanged,
    });
    let mut at = t0();
    let mut attempts = 1;
    while let Some(next) = policy.after(&timed_out, attempts, at) {
        assert_eq!(next, at + secs(30));
        at = next;
        attempts += 1;
    }
    assert_eq!(attempts, 4);

    // Final answers are not retried.
    for cause in [
        FailureCause::Refused(Reason::InvalidElement),
        FailureCause::UnknownDevice,
        FailureCause::Aborted,
        FailureCause::StoreFailed,
        FailureCause::ProtocolError(ProtocolViolation::UnexpectedMessage(Command::from(99))),
    ] {
        let outcome = PhoneOutcome::Failed(PhoneFailure {
            cause,
            step: PhoneStep::AwaitingInstruction,
            lsc_change: LscChange::Unchanged,
        });
        assert_eq!(policy.after(&outcome, 1, t0()), None);
    }
    let nothing = PhoneOutcome::Succeeded(PhoneSuccess::NothingScheduled {
        reason: Reason::NoAction,
    });
    assert!(!policy.should_retry(&nothing));
}

// ---------------------------------------------------------------------------
// Persistent state

#[test]
fn persistent_state_round_trip() {
    let states = [
        PersistentState::new(false),
        PersistentState::new(true),
        PersistentState {
            pending: Some(PendingOperation {
                auth_mode: AuthMode::AuthString,
                attempts: 2,
                next_attempt: Some(t0() + secs(30)),
            }),
            lsc_installed: true,
        },
        PersistentState {
            pending: Some(PendingOperation {
                auth_mode: AuthMode::ExistingCertificateMicFirst,
                attempts: 0,
                next_attempt: None,
            }),
            lsc_installed: false,
        },
    ];
    for state in states {
        let text = state.to_text();
        assert_eq!(PersistentState::from_text(&text).unwrap(), state, "{text}");
    }
    let text =
        "  # comment\n\nlsc_installed = no\nformat=capf-phone-state/1\nauth_mode=null-string\n";
    let state = PersistentState::from_text(text).unwrap();
    assert_eq!(state.auth_mode(), Some(AuthMode::NullString));
    assert!(!state.lsc_installed);
}

#[test]
fn persistent_state_rejects_garbage() {
    let ok = "format=capf-phone-state/1\nlsc_installed=yes\n";
    assert!(PersistentState::from_text(ok).is_ok());
    let bad_line = |text: &str, line: usize| match PersistentState::from_text(text) {
        Err(StateFileError::BadLine { line: l, problem }) => {
            assert_eq!(l, line, "{problem}");
            assert!(!problem.is_empty());
        }
        other => panic!("{text:?}: {other:?}"),
    };
    bad_line("format=capf-phone-state/2\nlsc_installed=yes\n", 1);
    bad_line(&format!("{ok}lsc_installed=no\n"), 3);
    bad_line(&format!("{ok}lsc_installed\n"), 3);
    bad_line("format=capf-phone-state/1\nlsc_installed=maybe\n", 2);
    bad_line(&format!("{ok}auth_mode=by-magic\n"), 3);
    bad_line(&format!("{ok}auth_mode=auth-string\nattempts=-1\n"), 4);
    bad_line(
        &format!("{ok}auth_mode=auth-string\nnext_attempt=soon\n"),
        4,
    );
    bad_line(&format!("{ok}auth_string=123456\n"), 3);
    bad_line("\u{0}\u{1}garbage", 1);
    assert_eq!(
        PersistentState::from_text("lsc_installed=yes\n"),
        Err(StateFileError::Missing { key: "format" })
    );
    assert_eq!(
        PersistentState::from_text("format=capf-phone-state/1\n"),
        Err(StateFileError::Missing {
            key: "lsc_installed"
        })
    );
    assert_eq!(
        PersistentState::from_text(&format!("{ok}attempts=1\n")),
        Err(StateFileError::WithoutPendingOperation { key: "attempts" })
    );
    assert!(
        PersistentState::from_text("")
            .unwrap_err()
            .to_string()
            .contains("format")
    );
}

#[test]
fn persistent_state_follows_the_operation() {
    let policy = RetryPolicy::PHONE;
    let mut state = PersistentState::new(false);
    assert_eq!(state.start_attempt(AuthMode::AuthString), 1);
    let text = state.to_text();
    assert!(text.contains("auth_mode=auth-string"));
    assert!(!text.contains("123456"));

    // A timeout: the mode stays, the next attempt is planned.
    let timed_out = PhoneOutcome::Failed(PhoneFailure {
        cause: FailureCause::TimedOut,
        step: PhoneStep::AwaitingEndSession,
        lsc_change: LscChange::Unchanged,
    });
    assert_eq!(
        state.record_outcome(&timed_out, &policy, t0()),
        Some(t0() + secs(30))
    );
    // Power loss: read back from flash.
    let mut state = PersistentState::from_text(&state.to_text()).unwrap();
    assert_eq!(state.auth_mode(), Some(AuthMode::AuthString));
    assert_eq!(state.pending.unwrap().next_attempt, Some(t0() + secs(30)));
    assert_eq!(state.start_attempt(AuthMode::NullString), 2);
    assert_eq!(
        state.auth_mode(),
        Some(AuthMode::AuthString),
        "kept mode wins"
    );

    // Completion clears it and records the LSC.
    let installed = PhoneOutcome::Succeeded(PhoneSuccess::Installed {
        certificate_der: Bytes::from_static(&[0x30]),
    });
    assert_eq!(state.record_outcome(&installed, &policy, t0()), None);
    assert_eq!(state, PersistentState::new(true));

    // Retries used up also complete the operation.
    let mut state = PersistentState::new(true);
    for _ in 0..4 {
        state.start_attempt(AuthMode::NullString);
        state.record_outcome(&timed_out, &policy, t0());
    }
    assert_eq!(state, PersistentState::new(true));
}
