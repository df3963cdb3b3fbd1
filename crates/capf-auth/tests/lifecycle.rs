#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Single use of strings, success and failure, the "operation completes by"
//! deadline, scheduling.

use std::time::{Duration, SystemTime};

use capf_auth::{
    AuthError, AuthMode, AuthenticatedBy, CertificateKind, Certificates, DevicePolicy,
    FailureReason, Operation, OperationStatus, Parameters, Presented, Refusal, Verification,
};

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

#[test]
fn string_consumed_only_on_success() {
    let params = Parameters::default();
    let mut d = DevicePolicy::new(AuthMode::AuthString);
    d.schedule(Operation::InstallUpgrade, None).unwrap();
    d.rearm("5555".parse().unwrap());

    // Authenticated, then the session fails (key generation, disconnect):
    // nothing to call, the string stays armed and works again.
    for _ in 0..3 {
        let decision = d.decide(&Presented::password(b"5555"), now(), &params);
        assert!(decision.grant().is_some());
        d.apply(&decision.update);
    }
    assert!(d.auth_string.is_some());
    assert_eq!(d.status_label(), "Install/Upgrade pending");

    let decision = d.decide(&Presented::password(b"5555"), now(), &params);
    let grant = *decision.grant().unwrap();
    assert!(grant.consumes_auth_string());
    d.apply(&decision.update);
    d.on_operation_succeeded(&grant, now());
    assert!(d.auth_string.is_none());
    assert_eq!(d.operation, Operation::None);
    assert!(d.certificates.lsc);
    assert_eq!(d.status_label(), "Install/Upgrade successful");

    // Scheduled again, the used string does not come back.
    d.schedule(Operation::InstallUpgrade, None).unwrap();
    let decision = d.decide(&Presented::password(b"5555"), now(), &params);
    assert_eq!(decision.refusal(), Some(&Refusal::NoAuthStringArmed));
}

#[test]
fn success_in_other_modes_leaves_an_armed_string_alone() {
    let params = Parameters::default();
    let mut d = DevicePolicy::new(AuthMode::ExistingCertificateMicFirst);
    d.certificates.mic = true;
    d.certificates.lsc = true;
    d.schedule(Operation::Delete, None).unwrap();
    d.rearm("5555".parse().unwrap());
    let decision = d.decide(
        &Presented::certificate(CertificateKind::Mic, Verification::VerifiedForDevice),
        now(),
        &params,
    );
    let grant = *decision.grant().unwrap();
    assert_eq!(
        grant.authenticated_by,
        AuthenticatedBy::Mic { fallback: false }
    );
    assert!(!grant.consumes_auth_string());
    d.on_operation_succeeded(&grant, now());
    assert!(d.auth_string.is_some());
    assert!(
        !d.certificates.lsc,
        "delete removes the LSC from the record"
    );
    assert_eq!(d.operation, Operation::None);
}

#[test]
fn a_stale_success_does_not_clobber_a_new_schedule() {
    let params = Parameters::default();
    let mut d = DevicePolicy::new(AuthMode::NullString);
    d.schedule(Operation::InstallUpgrade, None).unwrap();
    let grant = *d
        .decide(&Presented::NOTHING, now(), &params)
        .grant()
        .unwrap();
    d.certificates.mic = true;
    d.schedule(Operation::Troubleshoot, None).unwrap();
    d.on_operation_succeeded(&grant, now());
    assert_eq!(d.operation, Operation::Troubleshoot);
    assert_eq!(d.status, OperationStatus::Pending);
}

#[test]
fn deadline_passed_fails_the_operation_once() {
    let params = Parameters::default();
    let deadline = now();
    let mut d = DevicePolicy::new(AuthMode::NullString);
    d.schedule(Operation::InstallUpgrade, Some(deadline))
        .unwrap();

    assert!(!d.deadline_passed(deadline));
    let decision = d.decide(&Presented::NOTHING, deadline, &params);
    assert!(
        decision.grant().is_some(),
        "at the deadline is still in time"
    );

    let late = deadline + Duration::from_secs(1);
    assert!(d.deadline_passed(late));
    let decision = d.decide(&Presented::NOTHING, late, &params);
    assert_eq!(
        decision.refusal(),
        Some(&Refusal::DeadlinePassed { deadline })
    );
    assert_eq!(decision.end_session_reason(), Some(7));
    d.apply(&decision.update);
    assert_eq!(
        d.status,
        OperationStatus::Failed {
            operation: Operation::InstallUpgrade,
            reason: FailureReason::DeadlinePassed,
            at: late
        }
    );
    assert_eq!(d.status_label(), "Install/Upgrade failed");

    // Later attempts: still refused, nothing new to record.
    let decision = d.decide(&Presented::NOTHING, late + Duration::from_secs(60), &params);
    assert_eq!(
        decision.refusal(),
        Some(&Refusal::DeadlinePassed { deadline })
    );
    assert!(decision.update.is_empty());

    // The operator sets a new deadline: pending and honoured again.
    d.schedule(
        Operation::InstallUpgrade,
        Some(late + Duration::from_secs(3600)),
    )
    .unwrap();
    assert_eq!(d.status, OperationStatus::Pending);
    assert!(
        d.decide(&Presented::NOTHING, late, &params)
            .grant()
            .is_some()
    );
}

#[test]
fn scheduling_needs_a_certificate_for_delete_and_troubleshoot() {
    let mut d = DevicePolicy::new(AuthMode::NullString);
    assert!(matches!(
        d.schedule(Operation::Delete, None),
        Err(AuthError::OperationNeedsCertificate {
            operation: Operation::Delete,
            ..
        })
    ));
    assert!(d.schedule(Operation::Troubleshoot, None).is_err());
    assert_eq!(
        d.operation,
        Operation::None,
        "a refused schedule changes nothing"
    );
    d.certificates = Certificates {
        lsc: false,
        mic: true,
    };
    assert!(d.schedule(Operation::Delete, None).is_err());
    d.schedule(Operation::Troubleshoot, None).unwrap();
    d.certificates.lsc = true;
    d.schedule(Operation::Delete, None).unwrap();
    assert_eq!(d.status_label(), "Delete pending");
    d.schedule(Operation::None, None).unwrap();
    assert_eq!(d.status, OperationStatus::Idle);
}

#[test]
fn errors_read_well() {
    let err = "12a".parse::<capf_auth::AuthString>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "authentication string has 3 characters; it must have 4 to 10 digits"
    );
    let err = "12a45".parse::<capf_auth::AuthString>().unwrap_err();
    assert!(err.to_string().contains("position 2"));
    let err = "x".parse::<capf_auth::SecurityMode>().unwrap_err();
    assert!(
        err.to_string()
            .contains("non-secure, authenticated, encrypted")
    );
}
