//! A server session and a phone session paired in memory (no sockets): every
//! flow (install, fetch, delete, nothing scheduled) end to end, and interruption at every
//! step.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use capf_operations::capf_auth::{AuthMode, AuthString, Operation};
use capf_operations::capf_ca::{EcCurve, KeySpec, PrivateKey};
use capf_operations::capf_wire::FrameCodec;
use capf_operations::phone::{
    CertificateCredentials, Credentials, PhoneConfig, PhoneEvent, PhoneOutcome, PhoneSession,
    PhoneSuccess,
};
use capf_operations::{
    DeviceEdit, MemoryStore, OperatorStore, OutcomeKind, ServerSession, SessionDriver,
    SessionOutcome, Transmit,
};
use common::*;

const NAME: &str = "SEP001122334455";

/// The phone's side of the world: its key and LSC.
#[derive(Default)]
struct Handset {
    pending_key: Option<PrivateKey>,
    lsc: Option<(Vec<u8>, PrivateKey)>,
}

struct Pair<'a> {
    server: ServerSession,
    driver: SessionDriver<'a, MemoryStore>,
    phone: PhoneSession,
    handset: Handset,
    now: SystemTime,
    delivered: usize,
}

fn wire(t: &Transmit) -> (u32, capf_operations::capf_wire::Message) {
    // Through the codec, as bytes travel.
    let mut buf = BytesMut::new();
    t.encode(&mut buf).unwrap();
    let frame = FrameCodec::new().decode(&mut buf).unwrap().unwrap();
    assert!(buf.is_empty());
    (
        frame.session_id,
        capf_operations::capf_wire::Message::from_frame(&frame).unwrap(),
    )
}

impl<'a> Pair<'a> {
    fn new(
        store: &'a MemoryStore,
        issuer: &'a capf_operations::capf_ca::Issuer,
        handset: Handset,
        credentials: Credentials,
    ) -> Self {
        Self::with_config(store, issuer, config_for(issuer), handset, credentials)
    }

    fn with_config(
        store: &'a MemoryStore,
        issuer: &'a capf_operations::capf_ca::Issuer,
        server_config: std::sync::Arc<capf_operations::ServerConfig>,
        handset: Handset,
        credentials: Credentials,
    ) -> Self {
        let now = vector_now();
        let mut config = PhoneConfig::new(NAME, credentials);
        if let Some((der, _)) = &handset.lsc {
            config = config.with_lsc(der.clone());
        }
        Pair {
            server: ServerSession::new(42, server_config, now),
            driver: SessionDriver::new(store, issuer, Duration::from_secs(3600)),
            phone: PhoneSession::new(config, now),
            handset,
            now,
            delivered: 0,
        }
    }

    /// Runs until both ends are finished or `max_messages` were delivered;
    /// returns whether it ran to the end.
    fn drive(&mut self, max_messages: usize) -> bool {
        loop {
            self.driver.service(&mut self.server, self.now);
            self.service_phone();
            let mut moved = false;
            while let Some(t) = self.server.poll_transmit() {
                if self.delivered == max_messages {
                    return false;
                }
                let (sid, m) = wire(&t);
                self.phone.handle_message(self.now, sid, m);
                self.delivered += 1;
                moved = true;
            }
            self.service_phone();
            while let Some(t) = self.phone.poll_transmit() {
                if self.delivered == max_messages {
                    return false;
                }
                let (sid, m) = wire(&t);
                self.server.handle_message(self.now, sid, m);
                self.delivered += 1;
                moved = true;
            }
            if !moved && self.server.is_finished() && self.phone.is_finished() {
                return true;
            }
            if !moved {
                self.driver.service(&mut self.server, self.now);
                if self.server.poll_transmit().is_none() && self.phone.poll_transmit().is_none() {
                    // Nobody has anything to say: the connection is over.
                    if !self.phone.is_finished() {
                        self.phone.connection_lost(self.now);
                    }
                    return self.server.is_finished();
                }
            }
        }
    }

    fn service_phone(&mut self) {
        while let Some(event) = self.phone.poll_event() {
            match event {
                PhoneEvent::GenerateKey(spec) => {
                    let key = PrivateKey::generate(spec).unwrap();
                    let spki = key.public_key_der().unwrap();
                    self.handset.pending_key = Some(key);
                    self.phone.key_generated(self.now, Ok(spki));
                }
                PhoneEvent::StoreCertificate { certificate_der } => {
                    let key = self.handset.pending_key.take().unwrap();
                    self.handset.lsc = Some((certificate_der.to_vec(), key));
                    self.phone.certificate_stored(self.now, true);
                }
                PhoneEvent::DeleteCertificate => {
                    let had = self.handset.lsc.take().is_some();
                    self.phone.certificate_deleted(self.now, had);
                }
                PhoneEvent::Finished => {}
            }
        }
    }

    fn outcomes(&self) -> (SessionOutcome, PhoneOutcome) {
        (
            self.server.outcome().cloned().expect("server finished"),
            self.phone.outcome().cloned().expect("phone finished"),
        )
    }
}

fn config_for(
    issuer: &capf_operations::capf_ca::Issuer,
) -> std::sync::Arc<capf_operations::ServerConfig> {
    config_with(
        capf_operations::ServiceParameters::default(),
        capf_operations::capf_ca::TrustStore::for_issuer(issuer),
    )
}

fn auth_string(s: &str) -> Credentials {
    Credentials::AuthString(s.parse::<AuthString>().unwrap())
}

fn install(key: KeySpec) {
    let mut d = device(
        NAME,
        AuthMode::AuthString,
        Operation::InstallUpgrade,
        Some("123456"),
    );
    d.key = Some(key);
    let store = store_with(&[d]);
    let issuer = issuer();
    let mut pair = Pair::new(&store, &issuer, Handset::default(), auth_string("123456"));
    assert!(pair.drive(usize::MAX));
    let (server, phone) = pair.outcomes();
    assert!(
        matches!(server.kind, OutcomeKind::Installed { .. }),
        "{server:?}"
    );
    assert!(
        matches!(
            phone,
            PhoneOutcome::Succeeded(PhoneSuccess::Installed { .. })
        ),
        "{phone:?}"
    );
    let (der, private) = pair.handset.lsc.as_ref().unwrap();
    // The certificate certifies the key the phone generated.
    let cert = capf_operations::capf_ca::CaCertificate::from_der(der, "lsc").unwrap();
    assert_eq!(cert.spki_der().unwrap(), private.public_key_der().unwrap());
    assert_eq!(cert.common_name().as_deref(), Some(NAME));
    let d = store.load(&name(NAME)).unwrap().unwrap();
    assert_eq!(d.status_label(), "Install/Upgrade successful");
    assert_eq!(d.lsc.unwrap().der, *der);
    assert!(d.policy.auth_string.is_none());
}

fn schedule(store: &MemoryStore, operation: Operation) {
    let edit = DeviceEdit {
        operation: Some(operation),
        ..DeviceEdit::default()
    };
    store.modify(&name(NAME), &edit, vector_now()).unwrap();
}

#[test]
fn install_rsa_by_auth_string() {
    install(KeySpec::Rsa { bits: 1024 });
}

#[test]
fn install_ec_p256_and_p384_by_auth_string() {
    install(KeySpec::Ec(EcCurve::P256));
    install(KeySpec::Ec(EcCurve::P384));
}

#[test]
fn upgrade_authenticated_by_the_existing_lsc() {
    let issuer = issuer();
    // First install by null string, then upgrade by LSC.
    let mut d = device(NAME, AuthMode::NullString, Operation::InstallUpgrade, None);
    d.key = Some(KeySpec::Ec(EcCurve::P256));
    let store = store_with(&[d]);
    let mut pair = Pair::new(&store, &issuer, Handset::default(), Credentials::NullString);
    assert!(pair.drive(usize::MAX));
    let handset = std::mem::take(&mut pair.handset);
    drop(pair);
    let first = handset.lsc.as_ref().unwrap().0.clone();

    let edit = DeviceEdit {
        auth_mode: Some(AuthMode::ExistingCertificateLscFirst),
        operation: Some(Operation::InstallUpgrade),
        ..DeviceEdit::default()
    };
    store.modify(&name(NAME), &edit, vector_now()).unwrap();
    let (der, key) = handset.lsc.clone().unwrap();
    let creds = Credentials::Certificate(Box::new(CertificateCredentials {
        kind: capf_operations::capf_ca::CertificateKind::Lsc,
        certificate_der: der.into(),
        key,
        sudi: None,
    }));
    let mut pair = Pair::new(&store, &issuer, handset, creds);
    assert!(pair.drive(usize::MAX));
    let (server, _) = pair.outcomes();
    assert!(
        matches!(server.kind, OutcomeKind::Installed { .. }),
        "{server:?}"
    );
    assert_ne!(
        pair.handset.lsc.as_ref().unwrap().0,
        first,
        "a new LSC replaced the old one"
    );
    assert_eq!(store.issued_certificates(&name(NAME)).unwrap().len(), 2);
}

#[test]
fn troubleshoot_then_delete() {
    let issuer = issuer();
    let mut d = device(NAME, AuthMode::NullString, Operation::InstallUpgrade, None);
    d.key = Some(KeySpec::Ec(EcCurve::P256));
    let store = store_with(&[d]);
    let mut pair = Pair::new(&store, &issuer, Handset::default(), Credentials::NullString);
    assert!(pair.drive(usize::MAX));
    let handset = std::mem::take(&mut pair.handset);
    drop(pair);

    schedule(&store, Operation::Troubleshoot);
    let mut pair = Pair::new(&store, &issuer, handset, Credentials::NullString);
    assert!(pair.drive(usize::MAX));
    let (server, phone) = pair.outcomes();
    let OutcomeKind::Retrieved(certs) = &server.kind else {
        panic!("{server:?}")
    };
    assert_eq!(certs.len(), 1);
    assert_eq!(certs[0].1.der, pair.handset.lsc.as_ref().unwrap().0);
    assert!(phone.is_success());
    let handset = std::mem::take(&mut pair.handset);
    drop(pair);

    schedule(&store, Operation::Delete);
    let mut pair = Pair::new(&store, &issuer, handset, Credentials::NullString);
    assert!(pair.drive(usize::MAX));
    let (server, _) = pair.outcomes();
    assert_eq!(server.kind, OutcomeKind::Deleted);
    assert!(pair.handset.lsc.is_none());
    let d = store.load(&name(NAME)).unwrap().unwrap();
    assert_eq!(d.lsc_status(), "Not Installed");
    assert_eq!(d.status_label(), "Delete successful");
}

#[test]
fn none_unknown_and_wrong_string() {
    let issuer = issuer();
    let store = store_with(&[device(
        NAME,
        AuthMode::AuthString,
        Operation::None,
        Some("123456"),
    )]);
    let mut pair = Pair::new(&store, &issuer, Handset::default(), auth_string("123456"));
    assert!(pair.drive(usize::MAX));
    let (server, phone) = pair.outcomes();
    assert_eq!(server.kind, OutcomeKind::NothingToDo);
    assert!(matches!(
        phone,
        PhoneOutcome::Succeeded(PhoneSuccess::NothingScheduled { .. })
    ));

    let empty = MemoryStore::new();
    let mut pair = Pair::new(&empty, &issuer, Handset::default(), auth_string("123456"));
    assert!(pair.drive(usize::MAX));
    let (server, phone) = pair.outcomes();
    assert_eq!(server.kind, OutcomeKind::UnknownDevice);
    assert!(!phone.is_success());

    let store = store_with(&[device(
        NAME,
        AuthMode::AuthString,
        Operation::InstallUpgrade,
        Some("123456"),
    )]);
    let mut pair = Pair::new(&store, &issuer, Handset::default(), auth_string("654321"));
    assert!(pair.drive(usize::MAX));
    let (server, phone) = pair.outcomes();
    assert!(matches!(server.kind, OutcomeKind::Refused(_)));
    assert!(!phone.is_success());
    assert_eq!(
        store
            .load(&name(NAME))
            .unwrap()
            .unwrap()
            .policy
            .failed_attempts,
        1
    );
}

#[test]
fn expired_deadline_refuses() {
    let issuer = issuer();
    let mut d = device(NAME, AuthMode::NullString, Operation::InstallUpgrade, None);
    d.policy.completes_by = Some(vector_now() - Duration::from_secs(60));
    let store = store_with(&[d]);
    let mut pair = Pair::new(&store, &issuer, Handset::default(), Credentials::NullString);
    assert!(pair.drive(usize::MAX));
    let (server, _) = pair.outcomes();
    assert!(matches!(server.kind, OutcomeKind::Refused(_)));
    assert_eq!(
        store.load(&name(NAME)).unwrap().unwrap().status_label(),
        "Install/Upgrade failed"
    );
}

/// Cuts the connection after `k` delivered messages, for every `k`, then
/// lets a fresh session run: the operation completes exactly once.
fn interrupted_everywhere(operation: Operation) {
    let issuer = issuer();
    for k in 0.. {
        let mut d = device(NAME, AuthMode::AuthString, operation, Some("123456"));
        d.key = Some(KeySpec::Ec(EcCurve::P256));
        let store = store_with(&[d]);
        let mut handset = Handset::default();
        if operation != Operation::InstallUpgrade {
            let key = PrivateKey::generate(KeySpec::Ec(EcCurve::P256)).unwrap();
            let lsc = issuer
                .issue_lsc(
                    NAME,
                    &key.public_key_der().unwrap(),
                    &Default::default(),
                    vector_now(),
                )
                .unwrap();
            handset.lsc = Some((lsc.der, key));
        }
        let (finished, handset) = {
            let mut pair = Pair::new(&store, &issuer, handset, auth_string("123456"));
            (pair.drive(k), std::mem::take(&mut pair.handset))
        }; // the connection drops here: the driver releases the lease
        if finished {
            assert!(k > 3, "ran to the end after {k} messages");
            break;
        }
        let d = store.load(&name(NAME)).unwrap().unwrap();
        // A retry completes it (or finds it complete).
        let mut pair = Pair::new(&store, &issuer, handset, auth_string("123456"));
        assert!(pair.drive(usize::MAX), "retry after cut at {k}");
        let (server, _) = pair.outcomes();
        let after = store.load(&name(NAME)).unwrap().unwrap();
        assert_eq!(after.operation(), Operation::None, "cut at {k}: {server:?}");
        if d.operation() == Operation::None {
            // The first session had already committed; the string is spent
            // (single use), so the retry is refused and changes nothing.
            assert_eq!(
                server.kind,
                OutcomeKind::Refused(capf_operations::capf_auth::Refusal::NoAuthStringArmed),
                "cut at {k}"
            );
        } else {
            assert!(server.is_success(), "cut at {k}: {server:?}");
        }
        // Exactly one certificate delivered for an install; the string was
        // used for one successful operation only.
        if operation == Operation::InstallUpgrade {
            let issued = store.issued_certificates(&name(NAME)).unwrap();
            assert_eq!(
                issued.iter().filter(|r| r.delivered).count(),
                1,
                "cut at {k}"
            );
            assert_eq!(
                after.lsc.as_ref().unwrap().der,
                pair.handset.lsc.as_ref().unwrap().0,
                "cut at {k}"
            );
            let serials: std::collections::HashSet<_> = issued
                .iter()
                .map(|r| r.certificate.serial_hex.clone())
                .collect();
            assert_eq!(serials.len(), issued.len(), "no serial twice");
        }
        assert!(after.policy.auth_string.is_none(), "cut at {k}");
    }
}

#[test]
fn install_interrupted_at_every_step_completes_exactly_once() {
    interrupted_everywhere(Operation::InstallUpgrade);
}

#[test]
fn troubleshoot_and_delete_interrupted_at_every_step() {
    interrupted_everywhere(Operation::Troubleshoot);
    interrupted_everywhere(Operation::Delete);
}

#[test]
fn two_phones_with_one_name_only_one_proceeds() {
    let issuer = issuer();
    let mut d = device(NAME, AuthMode::NullString, Operation::InstallUpgrade, None);
    d.key = Some(KeySpec::Ec(EcCurve::P256));
    let store = store_with(&[d]);
    let mut first = Pair::new(&store, &issuer, Handset::default(), Credentials::NullString);
    // First phone stops after the key request is delivered: it holds the lease.
    assert!(!first.drive(3));
    let mut second = Pair::new(&store, &issuer, Handset::default(), Credentials::NullString);
    assert!(second.drive(usize::MAX));
    assert_eq!(second.outcomes().0.kind, OutcomeKind::DeviceBusy);
    assert!(first.drive(usize::MAX));
    assert!(first.outcomes().0.is_success());
}

// ---- Trust decisions over the in-memory store ----

fn lsc_credentials(lsc: &(Vec<u8>, PrivateKey)) -> Credentials {
    Credentials::Certificate(Box::new(CertificateCredentials {
        kind: capf_operations::capf_ca::CertificateKind::Lsc,
        certificate_der: lsc.0.clone().into(),
        key: lsc.1.clone(),
        sudi: None,
    }))
}

/// Runs one session of a phone holding `lsc` and presenting it.
fn present(
    store: &MemoryStore,
    issuer: &capf_operations::capf_ca::Issuer,
    lsc: &(Vec<u8>, PrivateKey),
) -> (SessionOutcome, Option<Vec<u8>>) {
    let handset = Handset {
        pending_key: None,
        lsc: Some(lsc.clone()),
    };
    let mut pair = Pair::new(store, issuer, handset, lsc_credentials(lsc));
    assert!(pair.drive(usize::MAX));
    let (server, _) = pair.outcomes();
    let new = pair
        .handset
        .lsc
        .as_ref()
        .map(|l| l.0.clone())
        .filter(|der| *der != lsc.0);
    (server, new)
}

fn lsc_first_install() -> DeviceEdit {
    DeviceEdit {
        auth_mode: Some(AuthMode::ExistingCertificateLscFirst),
        operation: Some(Operation::InstallUpgrade),
        ..DeviceEdit::default()
    }
}

fn assert_refused_as(
    store: &MemoryStore,
    outcome: &SessionOutcome,
    failure: capf_operations::capf_auth::CertificateFailure,
) {
    assert_eq!(
        outcome.kind,
        OutcomeKind::Refused(capf_operations::capf_auth::Refusal::CertificateRejected {
            kind: capf_operations::capf_auth::CertificateKind::Lsc,
            failure,
        }),
        "{outcome:?}"
    );
    let d = store.load(&name(NAME)).unwrap().unwrap();
    assert!(d.last_error.is_some(), "a refusal leaves a last error");
    assert_eq!(d.status_label(), "Install/Upgrade pending");
    let audit = store.audit_log(&name(NAME)).unwrap();
    assert_eq!(
        audit.last().map(|e| e.event.as_str()),
        Some("refused"),
        "{audit:?}"
    );
}

#[test]
fn only_the_lsc_on_record_authenticates() {
    use capf_operations::capf_auth::CertificateFailure::{Expired, NotOnRecord};
    let issuer = issuer();
    let mut d = device(NAME, AuthMode::NullString, Operation::InstallUpgrade, None);
    d.key = Some(KeySpec::Ec(EcCurve::P256));
    let store = store_with(&[d]);
    // LSC1 by null string, then LSC2 by LSC1.
    let mut pair = Pair::new(&store, &issuer, Handset::default(), Credentials::NullString);
    assert!(pair.drive(usize::MAX));
    let lsc1 = pair.handset.lsc.take().unwrap();
    drop(pair);
    store
        .modify(&name(NAME), &lsc_first_install(), vector_now())
        .unwrap();
    let (outcome, lsc2) = present(&store, &issuer, &lsc1);
    assert!(
        outcome.is_success(),
        "the LSC on record authenticates: {outcome:?}"
    );
    let lsc2 = lsc2.expect("a new LSC");

    // A superseded LSC: an install is scheduled again and the phone
    // presents LSC1, which LSC2 replaced.
    schedule(&store, Operation::InstallUpgrade);
    let (outcome, issued) = present(&store, &issuer, &lsc1);
    assert!(issued.is_none());
    assert_refused_as(&store, &outcome, NotOnRecord);

    // A foreign LSC: issued by our CA to this name, never delivered
    // through CAPF.
    let key = PrivateKey::generate(KeySpec::Ec(EcCurve::P256)).unwrap();
    let foreign = issuer
        .issue_lsc(
            NAME,
            &key.public_key_der().unwrap(),
            &Default::default(),
            vector_now(),
        )
        .unwrap();
    let (outcome, _) = present(&store, &issuer, &(foreign.der, key));
    assert_refused_as(&store, &outcome, NotOnRecord);

    let on_record = store.load(&name(NAME)).unwrap().unwrap().lsc.unwrap();
    assert_eq!(on_record.der, lsc2, "refusals never change the record");

    // An expired LSC on record (issued two days before, valid one day).
    let key = PrivateKey::generate(KeySpec::Ec(EcCurve::P256)).unwrap();
    let short = capf_operations::capf_ca::LscProfile {
        validity: capf_operations::capf_ca::CertValidity::Days(1),
        ..Default::default()
    };
    let expired = issuer
        .issue_lsc(
            NAME,
            &key.public_key_der().unwrap(),
            &short,
            vector_now() - Duration::from_secs(2 * 86_400),
        )
        .unwrap();
    let expired_store = {
        let mut d = device(
            NAME,
            AuthMode::ExistingCertificateLscFirst,
            Operation::InstallUpgrade,
            None,
        );
        d.lsc =
            Some(capf_operations::CertificateRecord::from_der(&expired.der, &name(NAME)).unwrap());
        store_with(&[d])
    };
    let (outcome, _) = present(&expired_store, &issuer, &(expired.der, key));
    assert_refused_as(&expired_store, &outcome, Expired);
}

#[test]
fn revoked_and_deleted_lscs_no_longer_authenticate() {
    use capf_operations::capf_auth::CertificateFailure::{NotOnRecord, Revoked};
    let issuer = issuer();
    for deleted in [false, true] {
        let mut d = device(NAME, AuthMode::NullString, Operation::InstallUpgrade, None);
        d.key = Some(KeySpec::Ec(EcCurve::P256));
        let store = store_with(&[d]);
        let mut pair = Pair::new(&store, &issuer, Handset::default(), Credentials::NullString);
        assert!(pair.drive(usize::MAX));
        let lsc = pair.handset.lsc.take().unwrap();
        drop(pair);
        if deleted {
            // The phone deletes its LSC (a delete operation); it kept a copy.
            schedule(&store, Operation::Delete);
            let handset = Handset {
                pending_key: None,
                lsc: Some((lsc.0.clone(), lsc.1.clone())),
            };
            let mut pair = Pair::new(&store, &issuer, handset, Credentials::NullString);
            assert!(pair.drive(usize::MAX));
            assert_eq!(pair.outcomes().0.kind, OutcomeKind::Deleted);
        } else {
            let revoke = DeviceEdit {
                revoke_lsc: Some("phone stolen".into()),
                ..DeviceEdit::default()
            };
            store.modify(&name(NAME), &revoke, vector_now()).unwrap();
        }
        store
            .modify(&name(NAME), &lsc_first_install(), vector_now())
            .unwrap();
        let (outcome, issued) = present(&store, &issuer, &lsc);
        assert!(issued.is_none());
        assert_refused_as(
            &store,
            &outcome,
            if deleted { NotOnRecord } else { Revoked },
        );
    }
}

/// A manufacturer CA and a MIC it issued for `NAME` (CN model-name).
fn manufacturer_mic() -> (
    capf_operations::capf_ca::CaCertificate,
    (Vec<u8>, PrivateKey),
) {
    use capf_operations::capf_ca::{CapfIdentity, IdentityParams};
    let maker = CapfIdentity::generate(
        &IdentityParams {
            key: KeySpec::Ec(EcCurve::P256),
            ..Default::default()
        },
        vector_now() - Duration::from_secs(86_400),
    )
    .unwrap();
    let key = PrivateKey::generate(KeySpec::Ec(EcCurve::P256)).unwrap();
    let mic = maker
        .issuer()
        .unwrap()
        .issue_lsc(
            &format!("CP-7945G-{NAME}"),
            &key.public_key_der().unwrap(),
            &Default::default(),
            vector_now(),
        )
        .unwrap();
    (maker.certificate().clone(), (mic.der, key))
}

#[test]
fn precedence_falls_back_and_a_mic_that_authenticated_is_on_record() {
    let issuer = issuer();
    let (maker, mic) = manufacturer_mic();
    let mut trust = capf_operations::capf_ca::TrustStore::for_issuer(&issuer);
    trust.add_mic_anchor(maker);
    let config = config_with(capf_operations::ServiceParameters::default(), trust);
    let mic_credentials = || {
        Credentials::Certificate(Box::new(CertificateCredentials {
            kind: capf_operations::capf_ca::CertificateKind::Mic,
            certificate_der: mic.0.clone().into(),
            key: mic.1.clone(),
            sudi: None,
        }))
    };
    // Precedence to LSC, and the phone has none: it falls back to its MIC.
    let mut d = device(
        NAME,
        AuthMode::ExistingCertificateLscFirst,
        Operation::InstallUpgrade,
        None,
    );
    d.key = Some(KeySpec::Ec(EcCurve::P256));
    let store = store_with(&[d]);
    let mut pair = Pair::with_config(
        &store,
        &issuer,
        config.clone(),
        Handset::default(),
        mic_credentials(),
    );
    assert!(pair.drive(usize::MAX));
    let (server, _) = pair.outcomes();
    assert!(server.is_success(), "{server:?}");
    drop(pair);
    let d = store.load(&name(NAME)).unwrap().unwrap();
    assert_eq!(d.mic.as_ref().unwrap().der, mic.0, "the MIC is on record");
    let audit = store.audit_log(&name(NAME)).unwrap();
    assert!(audit.iter().any(|e| e.event == "mic-recorded"), "{audit:?}");
    assert!(
        audit
            .iter()
            .any(|e| e.event == "completed" && e.detail.contains("MIC"))
    );

    // Precedence to MIC then uses it.
    let edit = DeviceEdit {
        auth_mode: Some(AuthMode::ExistingCertificateMicFirst),
        operation: Some(Operation::InstallUpgrade),
        ..DeviceEdit::default()
    };
    store.modify(&name(NAME), &edit, vector_now()).unwrap();
    let mut pair = Pair::with_config(
        &store,
        &issuer,
        config.clone(),
        Handset::default(),
        mic_credentials(),
    );
    assert!(pair.drive(usize::MAX));
    assert!(pair.outcomes().0.is_success());
    drop(pair);

    // A phone with neither: refused, naming both, and the operation fails.
    store.modify(&name(NAME), &edit, vector_now()).unwrap();
    let mut pair = Pair::with_config(
        &store,
        &issuer,
        config,
        Handset::default(),
        Credentials::NullString,
    );
    assert!(pair.drive(usize::MAX));
    assert_eq!(
        pair.outcomes().0.kind,
        OutcomeKind::Refused(capf_operations::capf_auth::Refusal::NoCertificate)
    );
    drop(pair);
    let d = store.load(&name(NAME)).unwrap().unwrap();
    let last = d.last_error.clone().unwrap().reason;
    assert!(last.contains("neither its LSC nor a MIC"), "{last}");
    assert_eq!(d.status_label(), "Install/Upgrade failed");
}
