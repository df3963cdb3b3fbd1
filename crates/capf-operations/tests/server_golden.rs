//! The server session fed the phone's half of each golden transcript
//! answers with the same sequence of messages (certificate bytes aside).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use capf_operations::capf_auth::{AuthMode, Operation};
use capf_operations::capf_ca::{CaCertificate, KeySpec, TrustStore};
use capf_operations::capf_wire::{Command, Message};
use capf_operations::{
    CertificateRecord, OperatorStore, OutcomeKind, ServerSession, ServiceParameters, SessionDriver,
};
use common::*;

/// Replays `file`: the session gets each C>S frame in turn; what it sends
/// must match the S>C frames, byte for byte except certificates.
fn replay(
    file: &str,
    config: std::sync::Arc<capf_operations::ServerConfig>,
    store: &capf_operations::MemoryStore,
    now: std::time::SystemTime,
) -> capf_operations::SessionOutcome {
    let lines = vector(file);
    let session_id = lines[0].frame().session_id;
    let issuer = issuer();
    let mut driver = SessionDriver::new(store, &issuer, Duration::from_secs(3600));
    let mut session = ServerSession::new(session_id, config, now);
    let mut sent = Vec::new();
    let mut outcome = None;
    let (out, o) = pump(&mut session, &mut driver, now);
    sent.extend(out);
    outcome = outcome.or(o);
    for line in lines.iter().filter(|l| !l.from_server) {
        let frame = line.frame();
        session.handle_message(now, frame.session_id, line.message());
        let (out, o) = pump(&mut session, &mut driver, now);
        sent.extend(out);
        outcome = outcome.or(o);
    }
    let expected: Vec<_> = lines.iter().filter(|l| l.from_server).collect();
    let got: Vec<Command> = sent.iter().map(|t| t.message.command()).collect();
    let want: Vec<Command> = expected.iter().map(|l| l.command).collect();
    assert_eq!(got, want, "{file}: command sequence (outcome {outcome:?})");
    for (t, line) in sent.iter().zip(&expected) {
        if line.command != Command::StoreCertificateRequest {
            assert_eq!(
                t.to_bytes().unwrap().as_ref(),
                &line.bytes[..],
                "{file}: {}",
                line.command
            );
        }
    }
    outcome.expect("session finished")
}

#[test]
fn install_by_auth_string_rsa2048() {
    let mut d = device(
        "SEP001122334455",
        AuthMode::AuthString,
        Operation::InstallUpgrade,
        Some("123456"),
    );
    d.key = Some(KeySpec::Rsa { bits: 2048 });
    let store = store_with(&[d]);
    let outcome = replay("install-password.txt", config(), &store, vector_now());
    assert!(outcome.is_success(), "{outcome:?}");
    let d = store.load(&name("SEP001122334455")).unwrap().unwrap();
    assert_eq!(d.operation(), Operation::None);
    assert!(d.policy.auth_string.is_none(), "string consumed");
    let lsc = d.lsc.unwrap();
    assert_eq!(lsc.subject.split(',').next(), Some("CN=SEP001122334455"));
    let issued = store.issued_certificates(&d.name).unwrap();
    assert_eq!(issued.len(), 1);
    assert!(issued[0].delivered);
    assert_eq!(issued[0].certificate.serial_hex, lsc.serial_hex);
}

#[test]
fn install_by_null_string_ec_p384() {
    let mut d = device(
        "SEP0011223344AA",
        AuthMode::NullString,
        Operation::InstallUpgrade,
        None,
    );
    d.key = Some(KeySpec::Ec(capf_operations::capf_ca::EcCurve::P384));
    let store = store_with(&[d]);
    let outcome = replay("install-null-ec.txt", config(), &store, vector_now());
    assert!(outcome.is_success(), "{outcome:?}");
}

#[test]
fn install_authenticated_by_existing_lsc_with_sudi() {
    let mut d = device(
        "SEP001122334455",
        AuthMode::ExistingCertificateLscFirst,
        Operation::InstallUpgrade,
        None,
    );
    d.key = Some(KeySpec::Rsa { bits: 2048 });
    // The LSC the phone presents is the one on record.
    d.lsc = Some(CertificateRecord::from_der(&presented_lsc(), &d.name).unwrap());
    let store = store_with(&[d]);
    let outcome = replay(
        "install-lsc-auth.txt",
        config_with(ServiceParameters::default(), vector_trust()),
        &store,
        vector_now(),
    );
    assert!(outcome.is_success(), "{outcome:?}");
}

/// The certificate the phone presents in `install-lsc-auth.txt`.
fn presented_lsc() -> Vec<u8> {
    vector("install-lsc-auth.txt")
        .iter()
        .find_map(|l| match l.message() {
            Message::AuthResponse(a) => a.certificate.map(|c| c.der.to_vec()),
            _ => None,
        })
        .unwrap()
}

fn vector_trust() -> TrustStore {
    let mut trust = TrustStore::new();
    trust.add_lsc_anchor(CaCertificate::from_pem(vector_issuer_pem(), "vector issuer").unwrap());
    trust
}

#[test]
fn an_lsc_that_is_not_the_one_on_record_is_refused() {
    // The same exchange, but the record holds no LSC (it was deleted), or
    // another one (it was replaced): the phone's valid, chaining LSC does
    // not authenticate it.
    let other = {
        let fetch = vector("fetch.txt");
        let Message::FetchCertificateResponse(r) = fetch[3].message() else {
            panic!()
        };
        r.certificate.unwrap().der.to_vec()
    };
    for on_record in [None, Some(other)] {
        let mut d = device(
            "SEP001122334455",
            AuthMode::ExistingCertificateLscFirst,
            Operation::InstallUpgrade,
            None,
        );
        d.lsc = on_record.map(|der| CertificateRecord::from_der(&der, &d.name).unwrap());
        let store = store_with(&[d]);
        let config = config_with(ServiceParameters::default(), vector_trust());
        let lines = vector("install-lsc-auth.txt");
        let mut session = ServerSession::new(lines[0].frame().session_id, config, vector_now());
        let issuer = identity().issuer().unwrap();
        let mut driver = SessionDriver::new(&store, &issuer, Duration::from_secs(3600));
        let _ = session.poll_transmit();
        let auth = lines
            .iter()
            .find(|l| l.command == Command::AuthResponse)
            .unwrap();
        session.handle_message(vector_now(), auth.frame().session_id, auth.message());
        let outcome = driver.service(&mut session, vector_now()).unwrap();
        assert!(
            matches!(
                outcome.kind,
                OutcomeKind::Refused(capf_operations::capf_auth::Refusal::CertificateRejected {
                    failure: capf_operations::capf_auth::CertificateFailure::NotOnRecord,
                    ..
                })
            ),
            "{outcome:?}"
        );
        let d = store.load(&name("SEP001122334455")).unwrap().unwrap();
        let last = d.last_error.clone().unwrap().reason;
        assert!(last.contains("not the device's LSC on record"), "{last}");
        let audit = store.audit_log(&d.name).unwrap();
        assert!(audit.iter().any(|e| e.event == "refused"), "{audit:?}");
        assert_eq!(d.status_label(), "Install/Upgrade pending");
    }
}

#[test]
fn troubleshoot_fetches_the_lsc() {
    let lines = vector("fetch.txt");
    let Message::FetchCertificateResponse(r) = lines[3].message() else {
        panic!()
    };
    let mut d = device(
        "SEP001122334455",
        AuthMode::AuthString,
        Operation::Troubleshoot,
        Some("123456"),
    );
    d.lsc = Some(CertificateRecord::from_der(&r.certificate.unwrap().der, &d.name).unwrap());
    let store = store_with(&[d]);
    let outcome = replay("fetch.txt", config(), &store, vector_now());
    assert!(outcome.is_success(), "{outcome:?}");
    let d = store.load(&name("SEP001122334455")).unwrap().unwrap();
    assert_eq!(d.operation(), Operation::None);
    assert_eq!(d.status_label(), "Troubleshoot successful");
}

#[test]
fn delete_the_lsc() {
    let d = device(
        "SEP001122334455",
        AuthMode::AuthString,
        Operation::Delete,
        Some("123456"),
    );
    let store = store_with(&[d]);
    let outcome = replay("delete.txt", config(), &store, vector_now());
    assert!(outcome.is_success(), "{outcome:?}");
    let d = store.load(&name("SEP001122334455")).unwrap().unwrap();
    assert!(d.lsc.is_none());
    assert_eq!(d.lsc_status(), "Not Installed");
}

/// The real phone's AUTH_RESPONSE with its SHA-2 proof's hash id changed:
/// a proof the server cannot check is refused, never skipped (skipping it
/// would let a phone choose to be checked by its SHA-1 proof alone).
#[test]
fn a_sha2_proof_with_another_hash_is_refused() {
    use capf_operations::capf_wire::HashId;
    for hash in [HashId::Sha1, HashId::Sha256, HashId::from(9)] {
        let mut d = device(
            "SEP001122334455",
            AuthMode::ExistingCertificateLscFirst,
            Operation::InstallUpgrade,
            None,
        );
        d.lsc = Some(CertificateRecord::from_der(&presented_lsc(), &d.name).unwrap());
        let store = store_with(&[d]);
        let config = config_with(ServiceParameters::default(), vector_trust());
        let lines = vector("install-lsc-auth.txt");
        let mut session = ServerSession::new(lines[0].frame().session_id, config, vector_now());
        let issuer = identity().issuer().unwrap();
        let mut driver = SessionDriver::new(&store, &issuer, Duration::from_secs(3600));
        let _ = session.poll_transmit();
        let auth = lines
            .iter()
            .find(|l| l.command == Command::AuthResponse)
            .unwrap();
        let Message::AuthResponse(mut response) = auth.message() else {
            panic!()
        };
        response.sha2_signed_data.as_mut().unwrap().hash = hash;
        session.handle_message(
            vector_now(),
            auth.frame().session_id,
            Message::AuthResponse(response),
        );
        let outcome = driver.service(&mut session, vector_now()).unwrap();
        assert!(
            matches!(
                outcome.kind,
                OutcomeKind::Refused(capf_operations::capf_auth::Refusal::CertificateRejected {
                    failure: capf_operations::capf_auth::CertificateFailure::Malformed,
                    ..
                })
            ),
            "{hash:?}: {outcome:?}"
        );
        let d = store.load(&name("SEP001122334455")).unwrap().unwrap();
        assert!(
            d.last_error.unwrap().reason.contains("not SHA-512"),
            "{hash:?}"
        );
    }
}
