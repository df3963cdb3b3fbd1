//! Server session flows, driven by hand:
//! refusals, retries, timeouts, commit order, leases.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use capf_operations::capf_auth::{AuthMode, Operation, Refusal};
use capf_operations::capf_ca::{EcCurve, KeySpec, PrivateKey};
use capf_operations::capf_wire::{
    AuthResponse, KeyGenerateResponse, Message, Password, Reason, ReasonOnly,
};
use capf_operations::{
    MemoryStore, OperationsError, OperatorStore, OutcomeKind, ServerEvent, ServerSession,
    ServiceParameters, SessionCommit, SessionDriver,
};
use common::*;

const NAME: &str = "SEP001122334455";

fn auth(password: &str) -> Message {
    Message::AuthResponse(Box::new(AuthResponse::with_password(
        NAME,
        Password::new(password.as_bytes().to_vec()),
    )))
}

fn key_response(spki: Vec<u8>) -> Message {
    Message::KeyGenerateResponse(KeyGenerateResponse {
        reason: None,
        public_key: Some(spki.into()),
    })
}

fn p256_spki() -> Vec<u8> {
    PrivateKey::generate(KeySpec::Ec(EcCurve::P256))
        .unwrap()
        .public_key_der()
        .unwrap()
}

struct Run<'a> {
    session: ServerSession,
    driver: SessionDriver<'a, MemoryStore>,
    now: std::time::SystemTime,
}

impl<'a> Run<'a> {
    fn start(
        store: &'a MemoryStore,
        issuer: &'a capf_operations::capf_ca::Issuer,
        params: ServiceParameters,
    ) -> Self {
        let now = vector_now();
        let config = config_with(
            params,
            capf_operations::capf_ca::TrustStore::for_issuer(issuer),
        );
        let mut run = Run {
            session: ServerSession::new(7, config, now),
            driver: SessionDriver::new(store, issuer, Duration::from_secs(3600)),
            now,
        };
        let sent = run.pump();
        assert!(matches!(sent[..], [Message::AuthRequest(_)]));
        run
    }

    fn pump(&mut self) -> Vec<Message> {
        pump(&mut self.session, &mut self.driver, self.now)
            .0
            .into_iter()
            .map(|t| t.message)
            .collect()
    }

    fn send(&mut self, m: Message) -> Vec<Message> {
        self.session.handle_message(self.now, 7, m);
        self.pump()
    }

    fn outcome(&self) -> &OutcomeKind {
        &self.session.outcome().expect("finished").kind
    }
}

fn end(reason: Reason) -> Message {
    Message::end_session(reason)
}

#[test]
fn nothing_scheduled_ends_with_0() {
    let store = store_with(&[device(NAME, AuthMode::NullString, Operation::None, None)]);
    let issuer = issuer();
    let mut run = Run::start(&store, &issuer, ServiceParameters::default());
    assert_eq!(run.send(auth("")), vec![end(Reason::NoAction)]);
    assert_eq!(run.outcome(), &OutcomeKind::NothingToDo);
}

#[test]
fn unknown_device_ends_with_9() {
    let store = MemoryStore::new();
    let issuer = issuer();
    let mut run = Run::start(&store, &issuer, ServiceParameters::default());
    assert_eq!(run.send(auth("")), vec![end(Reason::UnknownDevice)]);
    assert_eq!(run.outcome(), &OutcomeKind::UnknownDevice);
    // A name Cisco would never configure is unknown too, without a lookup.
    let mut run = Run::start(&store, &issuer, ServiceParameters::default());
    let bad = AuthResponse::with_password("not a phone", Password::empty());
    assert_eq!(
        run.send(Message::AuthResponse(Box::new(bad))),
        vec![end(Reason::UnknownDevice)]
    );
}

#[test]
fn wrong_string_is_durable_before_the_answer_and_locks_at_the_limit() {
    let store = store_with(&[device(
        NAME,
        AuthMode::AuthString,
        Operation::InstallUpgrade,
        Some("123456"),
    )]);
    let issuer = issuer();
    let params = ServiceParameters {
        auth_failure_limit: 3,
        ..ServiceParameters::default()
    };
    for attempt in 1..=3 {
        let mut run = Run::start(&store, &issuer, params.clone());
        run.session.handle_message(run.now, 7, auth("999999"));
        // The session waits for the failure to be durable before answering.
        assert!(run.session.poll_transmit().is_none());
        let sent = run.pump();
        assert_eq!(sent, vec![end(Reason::InvalidElement)]);
        assert!(matches!(
            run.outcome(),
            OutcomeKind::Refused(Refusal::WrongAuthString { .. })
        ));
        let d = store.load(&name(NAME)).unwrap().unwrap();
        assert_eq!(d.policy.locked, attempt == 3, "attempt {attempt}");
    }
    // Locked: even the right string fails now, and the status says so.
    let mut run = Run::start(&store, &issuer, params);
    assert_eq!(run.send(auth("123456")), vec![end(Reason::InvalidElement)]);
    assert_eq!(run.outcome(), &OutcomeKind::Refused(Refusal::LockedOut));
    let d = store.load(&name(NAME)).unwrap().unwrap();
    assert_eq!(d.status_label(), "Install/Upgrade failed");
}

#[test]
fn passed_deadline_refuses_and_marks_the_operation_failed() {
    let mut d = device(NAME, AuthMode::NullString, Operation::InstallUpgrade, None);
    d.policy.completes_by = Some(vector_now() - Duration::from_secs(1));
    let store = store_with(&[d]);
    let issuer = issuer();
    let mut run = Run::start(&store, &issuer, ServiceParameters::default());
    assert_eq!(run.send(auth("")), vec![end(Reason::InvalidElement)]);
    assert!(matches!(
        run.outcome(),
        OutcomeKind::Refused(Refusal::DeadlinePassed { .. })
    ));
    let d = store.load(&name(NAME)).unwrap().unwrap();
    assert_eq!(d.status_label(), "Install/Upgrade failed");
}

#[test]
fn key_generation_failure_then_retry_succeeds() {
    let mut d = device(NAME, AuthMode::NullString, Operation::InstallUpgrade, None);
    d.key = Some(KeySpec::Ec(EcCurve::P256));
    let store = store_with(&[d]);
    let issuer = issuer();
    let mut run = Run::start(&store, &issuer, ServiceParameters::default());
    let sent = run.send(auth(""));
    assert!(matches!(sent[..], [Message::KeyGenerateRequest(_)]));
    assert!(run.send(Message::RequestInProgress).is_empty());
    // Attempt 1: no key.
    let failure = Message::KeyGenerateResponse(KeyGenerateResponse {
        reason: Some(Reason::InvalidElement),
        public_key: None,
    });
    assert!(matches!(
        run.send(failure)[..],
        [Message::KeyGenerateRequest(_)]
    ));
    // Attempt 2: the wrong kind of key (RSA when P-256 was asked).
    let rsa = PrivateKey::generate(KeySpec::Rsa { bits: 1024 })
        .unwrap()
        .public_key_der()
        .unwrap();
    assert!(matches!(
        run.send(key_response(rsa))[..],
        [Message::KeyGenerateRequest(_)]
    ));
    // Attempt 3: right.
    let sent = run.send(key_response(p256_spki()));
    assert!(matches!(sent[..], [Message::StoreCertificateRequest(_)]));
    let sent = run.send(Message::StoreCertificateResponse(ReasonOnly {
        reason: Reason::SUCCESS,
    }));
    assert_eq!(sent, vec![end(Reason::UpdateCertificate)]);
    assert!(matches!(run.outcome(), OutcomeKind::Installed { .. }));
}

#[test]
fn key_generation_gives_up_after_the_attempt_limit_and_the_operation_stays() {
    let store = store_with(&[device(
        NAME,
        AuthMode::NullString,
        Operation::InstallUpgrade,
        None,
    )]);
    let issuer = issuer();
    let params = ServiceParameters {
        max_key_generation_attempts: 2,
        ..ServiceParameters::default()
    };
    let mut run = Run::start(&store, &issuer, params);
    run.send(auth(""));
    let failure = Message::KeyGenerateResponse(KeyGenerateResponse::default());
    assert!(matches!(
        run.send(failure.clone())[..],
        [Message::KeyGenerateRequest(_)]
    ));
    assert_eq!(run.send(failure), vec![end(Reason::InvalidElement)]);
    assert!(matches!(run.outcome(), OutcomeKind::KeyGenerationFailed(_)));
    let d = store.load(&name(NAME)).unwrap().unwrap();
    assert_eq!(d.operation(), Operation::InstallUpgrade);
    assert_eq!(d.key_generation_failures, 2);
    assert!(d.last_error.is_some());
}

#[test]
fn key_of_the_right_kind_but_wrong_size_is_refused() {
    let mut d = device(NAME, AuthMode::NullString, Operation::InstallUpgrade, None);
    d.key = Some(KeySpec::Ec(EcCurve::P384));
    let store = store_with(&[d]);
    let issuer = issuer();
    let params = ServiceParameters {
        max_key_generation_attempts: 1,
        ..ServiceParameters::default()
    };
    let mut run = Run::start(&store, &issuer, params);
    run.send(auth(""));
    assert_eq!(
        run.send(key_response(p256_spki())),
        vec![end(Reason::InvalidElement)]
    );
}

#[test]
fn phone_silent_past_each_timeout() {
    let params = ServiceParameters::default();
    let issuer = issuer();
    // (messages before going silent, expected wait)
    let cases: Vec<(Vec<Message>, &str, Duration)> = vec![
        (vec![], "AUTH_RESPONSE", params.auth_timeout),
        (
            vec![auth("")],
            "KEY_GENERATE_RESPONSE",
            params.reply_timeout,
        ),
        (
            vec![auth(""), Message::RequestInProgress],
            "KEY_GENERATE_RESPONSE",
            params.key_generation_timeout,
        ),
        (
            vec![auth(""), key_response(p256_spki())],
            "STORE_CERTIFICATE_RESPONSE",
            params.reply_timeout,
        ),
    ];
    for (before, waiting_for, wait) in cases {
        let mut d = device(NAME, AuthMode::NullString, Operation::InstallUpgrade, None);
        d.key = Some(KeySpec::Ec(EcCurve::P256));
        let store = store_with(&[d]);
        let mut run = Run::start(&store, &issuer, params.clone());
        for m in before {
            run.send(m);
        }
        let deadline = run.session.poll_timeout().expect("a deadline");
        assert_eq!(deadline, run.now + wait, "{waiting_for}");
        // Not yet.
        run.session
            .handle_timeout(deadline - Duration::from_secs(1));
        assert!(!run.session.is_finished());
        run.now = deadline;
        run.session.handle_timeout(deadline);
        let sent = run.pump();
        assert_eq!(sent, vec![end(Reason::InvalidElement)], "{waiting_for}");
        assert_eq!(run.outcome(), &OutcomeKind::TimedOut { waiting_for });
        // The operation is still scheduled for the phone's next try.
        let d = store.load(&name(NAME)).unwrap().unwrap();
        assert_eq!(d.operation(), Operation::InstallUpgrade);
    }
    // Troubleshoot and delete wait for their responses too.
    for op in [Operation::Troubleshoot, Operation::Delete] {
        let store = store_with(&[device(NAME, AuthMode::NullString, op, None)]);
        let mut run = Run::start(&store, &issuer, params.clone());
        run.send(auth(""));
        let deadline = run.session.poll_timeout().unwrap();
        run.session.handle_timeout(deadline);
        assert_eq!(run.pump(), vec![end(Reason::InvalidElement)]);
        assert!(run.session.is_finished());
    }
}

#[test]
fn phone_refusing_the_certificate_leaves_the_operation_pending() {
    let mut d = device(
        NAME,
        AuthMode::AuthString,
        Operation::InstallUpgrade,
        Some("123456"),
    );
    d.key = Some(KeySpec::Ec(EcCurve::P256));
    let store = store_with(&[d]);
    let issuer = issuer();
    let mut run = Run::start(&store, &issuer, ServiceParameters::default());
    run.send(auth("123456"));
    run.send(key_response(p256_spki()));
    let sent = run.send(Message::StoreCertificateResponse(ReasonOnly {
        reason: Reason::InvalidElement,
    }));
    assert_eq!(sent, vec![end(Reason::InvalidElement)]);
    let d = store.load(&name(NAME)).unwrap().unwrap();
    assert_eq!(d.operation(), Operation::InstallUpgrade);
    assert!(
        d.policy.auth_string.is_some(),
        "string not consumed by a failed operation"
    );
    let issued = store.issued_certificates(&d.name).unwrap();
    assert_eq!(issued.len(), 1);
    assert!(!issued[0].delivered);
}

#[test]
fn no_certificate_is_sent_without_its_record() {
    let mut d = device(NAME, AuthMode::NullString, Operation::InstallUpgrade, None);
    d.key = Some(KeySpec::Ec(EcCurve::P256));
    let issuer = issuer();
    let config = config();
    let mut session = ServerSession::new(3, config, vector_now());
    let _ = session.poll_transmit();
    session.handle_message(vector_now(), 3, auth(""));
    let Some(ServerEvent::LoadDevice(_)) = session.poll_event() else {
        panic!()
    };
    session.device_loaded(vector_now(), Ok(d));
    // Null string: nothing for the policy to record, so no commit here.
    assert!(session.poll_event().is_none());
    let Some(t) = session.poll_transmit() else {
        panic!()
    };
    assert!(matches!(t.message, Message::KeyGenerateRequest(_)));
    session.handle_message(vector_now(), 3, key_response(p256_spki()));
    let Some(ServerEvent::Issue(req)) = session.poll_event() else {
        panic!()
    };
    let lsc = issuer
        .issue_lsc(
            req.device.as_str(),
            &req.public_key,
            &Default::default(),
            vector_now(),
        )
        .unwrap();
    session.issued(vector_now(), Ok(lsc));
    let Some(ServerEvent::Commit {
        change: SessionCommit::Issued(_),
        release_lease: false,
    }) = session.poll_event()
    else {
        panic!()
    };
    assert!(
        session.poll_transmit().is_none(),
        "nothing sent before the record is durable"
    );
    // The disk is full.
    session.committed(vector_now(), Err(OperationsError::store("disk full")));
    let t = session.poll_transmit().unwrap();
    assert_eq!(t.message, end(Reason::InvalidElement));
    assert!(session.poll_transmit().is_none());
    assert!(matches!(
        session.outcome().unwrap().kind,
        OutcomeKind::ServerError(_)
    ));
}

/// A null-string install session that has the phone's key and asks for
/// it to be signed.
fn session_asking_to_sign() -> ServerSession {
    let mut d = device(NAME, AuthMode::NullString, Operation::InstallUpgrade, None);
    d.key = Some(KeySpec::Ec(EcCurve::P256));
    let mut session = ServerSession::new(3, config(), vector_now());
    let _ = session.poll_transmit();
    session.handle_message(vector_now(), 3, auth(""));
    let Some(ServerEvent::LoadDevice(_)) = session.poll_event() else {
        panic!()
    };
    session.device_loaded(vector_now(), Ok(d));
    let _ = session.poll_transmit();
    session.handle_message(vector_now(), 3, key_response(p256_spki()));
    session
}

/// A serial that another server recorded first is signed again with a
/// new one (a few times at most); the phone only ever gets a recorded
/// certificate.
#[test]
fn a_taken_serial_is_signed_again() {
    let issuer = issuer();
    let mut session = session_asking_to_sign();
    let conflict = || OperationsError::SerialConflict {
        serial: "01".into(),
        device: "SEP0000000000FF".into(),
    };
    let mut signed = Vec::new();
    for signing in 1..=3 {
        let Some(ServerEvent::Issue(req)) = session.poll_event() else {
            panic!("signing {signing} not asked for")
        };
        let lsc = issuer
            .issue_lsc(
                req.device.as_str(),
                &req.public_key,
                &Default::default(),
                vector_now(),
            )
            .unwrap();
        signed.push(lsc.serial_hex.clone());
        session.issued(vector_now(), Ok(lsc));
        let Some(ServerEvent::Commit {
            change: SessionCommit::Issued(record),
            ..
        }) = session.poll_event()
        else {
            panic!()
        };
        assert_eq!(&record.certificate.serial_hex, signed.last().unwrap());
        assert!(session.poll_transmit().is_none());
        session.committed(vector_now(), Err(conflict()));
    }
    // The third taken serial in a row: give up, send nothing unrecorded.
    assert!(!matches!(session.poll_event(), Some(ServerEvent::Issue(_))));
    assert_eq!(
        session.poll_transmit().unwrap().message,
        end(Reason::InvalidElement)
    );
    assert!(matches!(
        session.outcome().unwrap().kind,
        OutcomeKind::ServerError(_)
    ));
    signed.dedup();
    assert_eq!(signed.len(), 3, "each signing has a new serial");
}

/// One taken serial, then a free one: the phone gets the second.
#[test]
fn a_signing_after_a_taken_serial_is_delivered() {
    let issuer = issuer();
    let mut session = session_asking_to_sign();
    let sign = |session: &mut ServerSession| {
        let Some(ServerEvent::Issue(req)) = session.poll_event() else {
            panic!()
        };
        let lsc = issuer
            .issue_lsc(
                req.device.as_str(),
                &req.public_key,
                &Default::default(),
                vector_now(),
            )
            .unwrap();
        let der = lsc.der.clone();
        session.issued(vector_now(), Ok(lsc));
        let Some(ServerEvent::Commit { .. }) = session.poll_event() else {
            panic!()
        };
        der
    };
    sign(&mut session);
    session.committed(
        vector_now(),
        Err(OperationsError::SerialConflict {
            serial: "01".into(),
            device: "SEP0000000000FF".into(),
        }),
    );
    let second = sign(&mut session);
    session.committed(vector_now(), Ok(()));
    let Message::StoreCertificateRequest(request) = session.poll_transmit().unwrap().message else {
        panic!()
    };
    assert_eq!(request, capf_wire::StoreCertificateRequest::lsc(second));
}

#[test]
fn two_sessions_for_one_device_only_one_holds_the_lease() {
    let store = store_with(&[device(
        NAME,
        AuthMode::NullString,
        Operation::InstallUpgrade,
        None,
    )]);
    let issuer = issuer();
    let mut first = Run::start(&store, &issuer, ServiceParameters::default());
    assert!(matches!(
        first.send(auth(""))[..],
        [Message::KeyGenerateRequest(_)]
    ));
    let mut second = Run::start(&store, &issuer, ServiceParameters::default());
    // No END_SESSION (the answer to a wrong string too): the server hangs
    // up, and the phone tries again later, as after a lost connection.
    assert_eq!(second.send(auth("")), vec![]);
    assert!(second.session.is_finished());
    assert_eq!(second.outcome(), &OutcomeKind::DeviceBusy);
    // The first session ends (phone silent); the lease is released.
    let deadline = first.session.poll_timeout().unwrap();
    first.now = deadline;
    first.session.handle_timeout(deadline);
    first.pump();
    let mut third = Run::start(&store, &issuer, ServiceParameters::default());
    assert!(matches!(
        third.send(auth(""))[..],
        [Message::KeyGenerateRequest(_)]
    ));
}

#[test]
fn wrong_session_id_and_unexpected_messages_end_the_session() {
    let store = store_with(&[device(
        NAME,
        AuthMode::NullString,
        Operation::InstallUpgrade,
        None,
    )]);
    let issuer = issuer();
    let mut run = Run::start(&store, &issuer, ServiceParameters::default());
    run.session.handle_message(run.now, 8, auth(""));
    assert_eq!(run.pump(), vec![end(Reason::InvalidElement)]);
    assert!(matches!(run.outcome(), OutcomeKind::ProtocolError(_)));

    let mut run = Run::start(&store, &issuer, ServiceParameters::default());
    assert_eq!(
        run.send(Message::RequestInProgress),
        vec![end(Reason::InvalidElement)]
    );

    let mut run = Run::start(&store, &issuer, ServiceParameters::default());
    run.send(auth(""));
    let sent = run.send(Message::StoreCertificateResponse(ReasonOnly {
        reason: Reason::SUCCESS,
    }));
    assert_eq!(sent, vec![end(Reason::InvalidElement)]);
    // Nothing after the end.
    assert!(run.send(auth("")).is_empty());
}
