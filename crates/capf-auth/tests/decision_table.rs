#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Table-driven test of `DevicePolicy::decide`: mode x presented proof x
//! operation x device state.

use std::time::{Duration, SystemTime};

use capf_auth::{
    AuthMode, AuthenticatedBy, CertificateFailure, CertificateKind, Certificates, DevicePolicy,
    FailureReason, Operation, OperationStatus, Parameters, Presented, PresentedCertificate,
    Refusal, Verdict, Verification,
};

const ARMED: &str = "123456";

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// The device's state before the phone connects.
#[derive(Debug, Clone, Copy)]
enum S {
    /// String armed, counter 0, no certificates on record.
    Armed,
    /// No string armed.
    NotArmed,
    /// String armed, this many wrong strings already (limit 5).
    Counter(u32),
    /// Locked out (the lock disarmed the string).
    Locked,
    /// Deadline one second before now.
    PastDeadline,
    /// Deadline exactly now (still honoured).
    AtDeadline,
    /// An LSC on record.
    Lsc,
    /// A MIC on record.
    Mic,
    /// Both on record.
    LscMic,
}

/// What the phone presented.
#[derive(Debug, Clone, Copy)]
enum P {
    Nothing,
    Empty,
    Nul,
    Right,
    RightNul,
    /// Two trailing NULs: only one is tolerated.
    RightNulNul,
    Wrong,
    Prefix,
    Longer,
    Lsc,
    LscBad(CertificateFailure),
    Mic,
    MicBad(CertificateFailure),
    /// The right string plus a certificate that failed verification.
    RightAndBadLsc,
    /// A wrong string plus a verified LSC.
    WrongAndLsc,
}

/// Which operations a row covers.
#[derive(Debug, Clone, Copy)]
enum Ops {
    /// Install, delete and troubleshoot; and automatically `none` too,
    /// where a proceed becomes "no pending operation" (END_SESSION 0).
    Pending,
    /// Just this one.
    Only(Operation),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum E {
    Go(AuthenticatedBy),
    No(Refusal),
}

use AuthMode::{
    AuthString as Str, ExistingCertificateLscFirst as LscFirst,
    ExistingCertificateMicFirst as MicFirst, NullString as Null,
};
use CertificateFailure::{
    BadSignature, Expired, NotBoundToDevice, NotOnRecord, Revoked, UntrustedIssuer,
};

const LSC: AuthenticatedBy = AuthenticatedBy::Lsc { fallback: false };
const LSC_FALLBACK: AuthenticatedBy = AuthenticatedBy::Lsc { fallback: true };
const MIC: AuthenticatedBy = AuthenticatedBy::Mic { fallback: false };
const MIC_FALLBACK: AuthenticatedBy = AuthenticatedBy::Mic { fallback: true };

fn wrong(failed_attempts: u32, locked: bool) -> E {
    E::No(Refusal::WrongAuthString {
        failed_attempts,
        locked,
    })
}

fn rejected(kind: CertificateKind, failure: CertificateFailure) -> E {
    E::No(Refusal::CertificateRejected { kind, failure })
}

fn past_deadline() -> E {
    E::No(Refusal::DeadlinePassed {
        deadline: now() - Duration::from_secs(1),
    })
}

/// (mode, state, presented, operations, expected, counter after, locked after)
type Row = (AuthMode, S, P, Ops, E, u32, bool);

#[rustfmt::skip]
fn rows() -> Vec<Row> {
    use CertificateKind::{Lsc as KL, Mic as KM};
    use E::{Go, No};
    use Ops::Pending as All;
    vec![
        // ---- by authentication string ----
        (Str, S::Armed, P::Right, All, Go(AuthenticatedBy::AuthString), 0, false),
        (Str, S::Armed, P::RightNul, All, Go(AuthenticatedBy::AuthString), 0, false),
        (Str, S::Armed, P::RightNulNul, All, wrong(1, false), 1, false),
        (Str, S::Armed, P::Wrong, All, wrong(1, false), 1, false),
        (Str, S::Armed, P::Prefix, All, wrong(1, false), 1, false),
        (Str, S::Armed, P::Longer, All, wrong(1, false), 1, false),
        (Str, S::Armed, P::Nothing, All, No(Refusal::AuthStringMissing), 0, false),
        (Str, S::Armed, P::Empty, All, No(Refusal::AuthStringMissing), 0, false),
        (Str, S::Armed, P::Nul, All, No(Refusal::AuthStringMissing), 0, false),
        // A certificate never replaces the string, nor spoils it.
        (Str, S::Armed, P::Lsc, All, No(Refusal::AuthStringMissing), 0, false),
        (Str, S::Armed, P::WrongAndLsc, All, wrong(1, false), 1, false),
        (Str, S::Armed, P::RightAndBadLsc, All, Go(AuthenticatedBy::AuthString), 0, false),
        (Str, S::NotArmed, P::Right, All, No(Refusal::NoAuthStringArmed), 0, false),
        (Str, S::NotArmed, P::Wrong, All, No(Refusal::NoAuthStringArmed), 0, false),
        // The counter: a correct string resets it; the 5th wrong one locks.
        (Str, S::Counter(3), P::Right, All, Go(AuthenticatedBy::AuthString), 0, false),
        (Str, S::Counter(3), P::Wrong, All, wrong(4, false), 4, false),
        (Str, S::Counter(4), P::Wrong, All, wrong(5, true), 5, true),
        (Str, S::Counter(4), P::Empty, All, No(Refusal::AuthStringMissing), 4, false),
        // Locked: nothing passes, nothing changes.
        (Str, S::Locked, P::Right, All, No(Refusal::LockedOut), 5, true),
        (Str, S::Locked, P::Wrong, All, No(Refusal::LockedOut), 5, true),
        (Null, S::Locked, P::Nothing, All, No(Refusal::LockedOut), 5, true),
        (LscFirst, S::Locked, P::Lsc, All, No(Refusal::LockedOut), 5, true),
        // Deadline: checked before authentication; equal is in time.
        (Str, S::PastDeadline, P::Right, All, past_deadline(), 0, false),
        (Str, S::PastDeadline, P::Wrong, All, past_deadline(), 0, false),
        (Null, S::PastDeadline, P::Nothing, All, past_deadline(), 0, false),
        (LscFirst, S::PastDeadline, P::Lsc, All, past_deadline(), 0, false),
        (MicFirst, S::PastDeadline, P::Mic, All, past_deadline(), 0, false),
        (Str, S::AtDeadline, P::Right, All, Go(AuthenticatedBy::AuthString), 0, false),
        (Null, S::AtDeadline, P::Nothing, All, Go(AuthenticatedBy::NullString), 0, false),
        // A past deadline does not apply when nothing is scheduled.
        (Str, S::PastDeadline, P::Right, Ops::Only(Operation::None), No(Refusal::NoPendingOperation), 0, false),
        (Str, S::PastDeadline, P::Wrong, Ops::Only(Operation::None), wrong(1, false), 1, false),
        // ---- by null string: anything goes ----
        (Null, S::Armed, P::Nothing, All, Go(AuthenticatedBy::NullString), 0, false),
        (Null, S::Armed, P::Nul, All, Go(AuthenticatedBy::NullString), 0, false),
        (Null, S::Armed, P::Wrong, All, Go(AuthenticatedBy::NullString), 0, false),
        (Null, S::Armed, P::LscBad(UntrustedIssuer), All, Go(AuthenticatedBy::NullString), 0, false),
        (Null, S::NotArmed, P::Mic, All, Go(AuthenticatedBy::NullString), 0, false),
        // ---- by existing certificate, precedence to LSC ----
        (LscFirst, S::Lsc, P::Lsc, All, Go(LSC), 0, false),
        (LscFirst, S::LscMic, P::Lsc, All, Go(LSC), 0, false),
        (LscFirst, S::Mic, P::Lsc, All, Go(LSC), 0, false),
        (LscFirst, S::Lsc, P::LscBad(UntrustedIssuer), All, rejected(KL, UntrustedIssuer), 0, false),
        (LscFirst, S::Lsc, P::LscBad(BadSignature), All, rejected(KL, BadSignature), 0, false),
        (LscFirst, S::Lsc, P::LscBad(NotBoundToDevice), All, rejected(KL, NotBoundToDevice), 0, false),
        (LscFirst, S::Lsc, P::LscBad(NotOnRecord), All, rejected(KL, NotOnRecord), 0, false),
        (LscFirst, S::Lsc, P::LscBad(Revoked), All, rejected(KL, Revoked), 0, false),
        (LscFirst, S::Lsc, P::LscBad(Expired), All, rejected(KL, Expired), 0, false),
        // A phone without an LSC falls back to its MIC ("LSC, fallback to
        // MIC"), whatever is on record.
        (LscFirst, S::Lsc, P::Mic, All, Go(MIC_FALLBACK), 0, false),
        (LscFirst, S::LscMic, P::Mic, All, Go(MIC_FALLBACK), 0, false),
        (LscFirst, S::Mic, P::Mic, All, Go(MIC_FALLBACK), 0, false),
        (LscFirst, S::Armed, P::Mic, All, Go(MIC_FALLBACK), 0, false),
        (LscFirst, S::Armed, P::MicBad(UntrustedIssuer), All, rejected(KM, UntrustedIssuer), 0, false),
        // Neither: the operation fails.
        (LscFirst, S::Armed, P::Nothing, All, No(Refusal::NoCertificate), 0, false),
        (LscFirst, S::Lsc, P::Nothing, All, No(Refusal::NoCertificate), 0, false),
        // A password is no certificate.
        (LscFirst, S::Armed, P::Right, All, No(Refusal::NoCertificate), 0, false),
        // ---- by existing certificate, precedence to MIC ----
        (MicFirst, S::Mic, P::Mic, All, Go(MIC), 0, false),
        (MicFirst, S::Armed, P::Mic, All, Go(MIC), 0, false),
        (MicFirst, S::LscMic, P::Mic, All, Go(MIC), 0, false),
        (MicFirst, S::Mic, P::MicBad(UntrustedIssuer), All, rejected(KM, UntrustedIssuer), 0, false),
        (MicFirst, S::Mic, P::MicBad(NotBoundToDevice), All, rejected(KM, NotBoundToDevice), 0, false),
        // A phone without a MIC falls back to its LSC, whatever is on record.
        (MicFirst, S::Mic, P::Lsc, All, Go(LSC_FALLBACK), 0, false),
        (MicFirst, S::LscMic, P::Lsc, All, Go(LSC_FALLBACK), 0, false),
        (MicFirst, S::Lsc, P::Lsc, All, Go(LSC_FALLBACK), 0, false),
        (MicFirst, S::Armed, P::Lsc, All, Go(LSC_FALLBACK), 0, false),
        (MicFirst, S::Lsc, P::LscBad(BadSignature), All, rejected(KL, BadSignature), 0, false),
        (MicFirst, S::Lsc, P::LscBad(NotOnRecord), All, rejected(KL, NotOnRecord), 0, false),
        (MicFirst, S::Mic, P::Nothing, All, No(Refusal::NoCertificate), 0, false),
        (MicFirst, S::Armed, P::Right, All, No(Refusal::NoCertificate), 0, false),
    ]
}

fn device(mode: AuthMode, state: S, op: Operation) -> DevicePolicy {
    let mut d = DevicePolicy::new(mode);
    d.certificates = Certificates {
        lsc: true,
        mic: true,
    };
    d.schedule(op, None).unwrap();
    d.certificates = Certificates::NONE;
    d.auth_string = Some(ARMED.parse().unwrap());
    match state {
        S::Armed => {}
        S::NotArmed => d.auth_string = None,
        S::Counter(n) => d.failed_attempts = n,
        S::Locked => {
            d.failed_attempts = 5;
            d.locked = true;
            d.auth_string = None;
        }
        S::PastDeadline => d.completes_by = Some(now() - Duration::from_secs(1)),
        S::AtDeadline => d.completes_by = Some(now()),
        S::Lsc => d.certificates.lsc = true,
        S::Mic => d.certificates.mic = true,
        S::LscMic => {
            d.certificates = Certificates {
                lsc: true,
                mic: true,
            };
        }
    }
    d
}

fn cert(kind: CertificateKind, verification: Verification) -> Option<PresentedCertificate> {
    Some(PresentedCertificate { kind, verification })
}

fn presented(p: P) -> Presented<'static> {
    use CertificateKind::{Lsc, Mic};
    use Verification::{Failed, VerifiedForDevice as Ok};
    let (password, certificate): (Option<&'static [u8]>, _) = match p {
        P::Nothing => (None, None),
        P::Empty => (Some(b""), None),
        P::Nul => (Some(b"\0"), None),
        P::Right => (Some(b"123456"), None),
        P::RightNul => (Some(b"123456\0"), None),
        P::RightNulNul => (Some(b"123456\0\0"), None),
        P::Wrong => (Some(b"123457"), None),
        P::Prefix => (Some(b"12345"), None),
        P::Longer => (Some(b"1234567"), None),
        P::Lsc => (Some(b""), cert(Lsc, Ok)),
        P::LscBad(f) => (Some(b""), cert(Lsc, Failed(f))),
        P::Mic => (Some(b""), cert(Mic, Ok)),
        P::MicBad(f) => (Some(b""), cert(Mic, Failed(f))),
        P::RightAndBadLsc => (Some(b"123456"), cert(Lsc, Failed(UntrustedIssuer))),
        P::WrongAndLsc => (Some(b"999999"), cert(Lsc, Ok)),
    };
    Presented {
        password,
        certificate,
    }
}

fn check(
    i: usize,
    (mode, state, proof, op, expected, counter, locked): (AuthMode, S, P, Operation, E, u32, bool),
    params: &Parameters,
) {
    let mut d = device(mode, state, op);
    let ctx = format!("row {i}: {mode} {state:?} {proof:?} {op}");
    let decision = d.decide(&presented(proof), now(), params);
    let got = match decision.verdict {
        Verdict::Proceed(grant) => {
            assert_eq!(grant.operation, op, "{ctx}");
            E::Go(grant.authenticated_by)
        }
        Verdict::Refuse(refusal) => E::No(refusal),
    };
    assert_eq!(got, expected, "{ctx}");
    let reason = decision.end_session_reason();
    match expected {
        E::Go(_) => assert_eq!(reason, None, "{ctx}"),
        E::No(Refusal::NoPendingOperation) => assert_eq!(reason, Some(0), "{ctx}"),
        E::No(_) => assert_eq!(reason, Some(7), "{ctx}"),
    }
    d.apply(&decision.update);
    assert_eq!(d.failed_attempts, counter, "{ctx}: counter");
    assert_eq!(d.locked, locked, "{ctx}: locked");
    if locked {
        assert!(d.auth_string.is_none(), "{ctx}: a lock disarms the string");
    }
    // Nothing is consumed by a decision: only success consumes.
    if !locked && !matches!(state, S::NotArmed) {
        assert!(d.auth_string.is_some(), "{ctx}: string still armed");
    }
}

#[test]
fn every_mode_proof_operation_and_state() {
    let params = Parameters::default();
    let mut cases = 0;
    for (i, (mode, state, proof, ops, expected, counter, locked)) in rows().into_iter().enumerate()
    {
        match ops {
            Ops::Only(op) => {
                check(
                    i,
                    (mode, state, proof, op, expected, counter, locked),
                    &params,
                );
                cases += 1;
            }
            Ops::Pending => {
                for op in [
                    Operation::InstallUpgrade,
                    Operation::Delete,
                    Operation::Troubleshoot,
                ] {
                    check(
                        i,
                        (mode, state, proof, op, expected, counter, locked),
                        &params,
                    );
                    cases += 1;
                }
                // Same row with nothing scheduled: authentication still
                // runs first (and wrong strings still count), and what
                // would have proceeded ends with END_SESSION 0.
                if !matches!(state, S::PastDeadline) {
                    let expected = match expected {
                        E::Go(_) => E::No(Refusal::NoPendingOperation),
                        refused => refused,
                    };
                    check(
                        i,
                        (
                            mode,
                            state,
                            proof,
                            Operation::None,
                            expected,
                            counter,
                            locked,
                        ),
                        &params,
                    );
                    cases += 1;
                }
            }
        }
    }
    assert!(cases > 200, "{cases} cases");
}

#[test]
fn existing_certificate_without_a_certificate_fails_the_operation() {
    let params = Parameters::default();
    for mode in [LscFirst, MicFirst] {
        for proof in [P::Nothing, P::Nul, P::Right] {
            let mut d = device(mode, S::Armed, Operation::InstallUpgrade);
            let decision = d.decide(&presented(proof), now(), &params);
            assert_eq!(
                decision.refusal(),
                Some(&Refusal::NoCertificate),
                "{proof:?}"
            );
            assert!(
                decision
                    .refusal()
                    .is_some_and(|r| r.to_string().contains("neither its LSC nor a MIC"))
            );
            assert_eq!(decision.end_session_reason(), Some(7));
            // Only the operator can change this: the operation is failed.
            d.apply(&decision.update);
            assert!(matches!(
                d.status,
                OperationStatus::Failed {
                    reason: FailureReason::NoCertificate,
                    ..
                }
            ));
            // Recorded once: a second refusal changes nothing more.
            let again = d.decide(&presented(proof), now(), &params);
            assert!(again.update.is_empty());
        }
    }
}

#[test]
fn a_rejected_certificate_leaves_the_operation_pending() {
    let params = Parameters::default();
    let d = device(LscFirst, S::Lsc, Operation::InstallUpgrade);
    let decision = d.decide(&presented(P::LscBad(NotOnRecord)), now(), &params);
    assert!(decision.update.is_empty());
    assert_eq!(d.status, OperationStatus::Pending);
}

#[test]
fn no_string_armed_fails_the_operation() {
    let params = Parameters::default();
    let mut d = device(Str, S::NotArmed, Operation::InstallUpgrade);
    let decision = d.decide(&presented(P::Right), now(), &params);
    d.apply(&decision.update);
    assert!(matches!(
        d.status,
        OperationStatus::Failed {
            reason: FailureReason::NoAuthString,
            ..
        }
    ));
}

#[test]
fn unknown_device_is_reason_9() {
    let decision = capf_auth::Decision::unknown_device();
    assert_eq!(decision.end_session_reason(), Some(9));
    assert_eq!(decision.refusal(), Some(&Refusal::UnknownDevice));
    assert!(decision.update.is_empty());
    assert!(!Refusal::UnknownDevice.is_authentication_failure());
    assert!(Refusal::NoCertificate.is_authentication_failure());
}
