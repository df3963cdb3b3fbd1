#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Lockout after wrong strings, across restarts and parameter changes.

use std::time::{Duration, SystemTime};

use capf_auth::{
    AuthMode, AuthString, DevicePolicy, FailureReason, Operation, OperationStatus, Parameters,
    Presented, Refusal, Verdict,
};

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn armed(op: Operation, digits: &str) -> DevicePolicy {
    let mut d = DevicePolicy::new(AuthMode::AuthString);
    d.certificates.lsc = true;
    d.schedule(op, None).unwrap();
    d.rearm(digits.parse().unwrap());
    d
}

/// One phone attempt, as the server would run it: decide, apply, persist.
/// "Persisting" is a plain copy of the struct; the next attempt starts from
/// that copy, as after a restart.
fn attempt(
    stored: &DevicePolicy,
    password: &[u8],
    at: SystemTime,
    params: &Parameters,
) -> (DevicePolicy, Verdict) {
    let decision = stored.decide(&Presented::password(password), at, params);
    let mut next = stored.clone();
    next.apply(&decision.update);
    (next, decision.verdict)
}

#[test]
fn lockout_engages_exactly_at_the_limit() {
    for limit in 1..=7 {
        let params = Parameters::with_failure_limit(limit).unwrap();
        let mut stored = armed(Operation::InstallUpgrade, "2468");
        for n in 1..limit {
            let (next, verdict) = attempt(&stored, b"1357", now(), &params);
            assert_eq!(
                verdict,
                Verdict::Refuse(Refusal::WrongAuthString {
                    failed_attempts: n,
                    locked: false
                })
            );
            assert!(!next.locked, "limit {limit}: locked after {n}");
            stored = next;
        }
        let (next, verdict) = attempt(&stored, b"1357", now(), &params);
        assert_eq!(
            verdict,
            Verdict::Refuse(Refusal::WrongAuthString {
                failed_attempts: limit,
                locked: true
            }),
            "limit {limit}"
        );
        assert!(next.locked);
        assert!(next.auth_string.is_none(), "the lock disarms the string");
        assert_eq!(
            next.status,
            OperationStatus::Failed {
                operation: Operation::InstallUpgrade,
                reason: FailureReason::LockedOut,
                at: now()
            }
        );
        assert_eq!(next.status_label(), "Install/Upgrade failed");
        // Even the right string is refused now.
        let (_, verdict) = attempt(&next, b"2468", now(), &params);
        assert_eq!(verdict, Verdict::Refuse(Refusal::LockedOut));
    }
}

#[test]
fn default_limit_is_five() {
    assert_eq!(Parameters::default().failure_limit.get(), 5);
    assert!(Parameters::with_failure_limit(0).is_err());
}

#[test]
fn lock_stays_across_restarts_until_rearmed() {
    let params = Parameters::default();
    let mut stored = armed(Operation::Delete, "0000");
    for _ in 0..5 {
        stored = attempt(&stored, b"1111", now(), &params).0;
    }
    assert!(stored.locked);

    // Many restarts later, with a more lenient limit, days later: still locked.
    let lenient = Parameters::with_failure_limit(100).unwrap();
    let later = now() + Duration::from_secs(86_400 * 30);
    for _ in 0..3 {
        let restarted = stored.clone();
        let (next, verdict) = attempt(&restarted, b"0000", later, &lenient);
        assert_eq!(verdict, Verdict::Refuse(Refusal::LockedOut));
        assert_eq!(next, restarted, "a refused locked attempt changes nothing");
        stored = next;
    }

    // The operator re-arms: counter and lock reset, operation pending again.
    let fresh: AuthString = "97531".parse().unwrap();
    stored.rearm(fresh);
    assert!(!stored.locked);
    assert_eq!(stored.failed_attempts, 0);
    assert_eq!(stored.status, OperationStatus::Pending);
    // The attacked string does not come back.
    let (after_old, verdict) = attempt(&stored, b"0000", later, &params);
    assert!(matches!(
        verdict,
        Verdict::Refuse(Refusal::WrongAuthString {
            failed_attempts: 1,
            ..
        })
    ));
    let (_, verdict) = attempt(&after_old, b"97531", later, &params);
    assert!(matches!(verdict, Verdict::Proceed(_)));
}

#[test]
fn a_correct_string_resets_the_counter() {
    let params = Parameters::default();
    let mut stored = armed(Operation::InstallUpgrade, "4321");
    for _ in 0..4 {
        stored = attempt(&stored, b"9999", now(), &params).0;
    }
    assert_eq!(stored.failed_attempts, 4);
    let (stored, verdict) = attempt(&stored, b"4321", now(), &params);
    assert!(matches!(verdict, Verdict::Proceed(_)));
    assert_eq!(stored.failed_attempts, 0);
    // The phone's session was interrupted: no success, the string stays.
    // Four more wrong strings do not lock.
    let mut stored = stored;
    for _ in 0..4 {
        stored = attempt(&stored, b"9999", now(), &params).0;
    }
    assert!(!stored.locked);
}

#[test]
fn lowering_the_limit_locks_on_the_next_wrong_string() {
    let mut stored = armed(Operation::InstallUpgrade, "4321");
    let ten = Parameters::with_failure_limit(10).unwrap();
    for _ in 0..6 {
        stored = attempt(&stored, b"9999", now(), &ten).0;
    }
    assert!(!stored.locked);
    let three = Parameters::with_failure_limit(3).unwrap();
    // Not locked just because the limit changed: the right string works.
    let (_, verdict) = attempt(&stored, b"4321", now(), &three);
    assert!(matches!(verdict, Verdict::Proceed(_)));
    // The next wrong string locks.
    let (stored, verdict) = attempt(&stored, b"9999", now(), &three);
    assert_eq!(
        verdict,
        Verdict::Refuse(Refusal::WrongAuthString {
            failed_attempts: 7,
            locked: true
        })
    );
    assert!(stored.locked);
}

#[test]
fn guessing_is_not_free_without_an_operation() {
    let params = Parameters::default();
    let mut stored = armed(Operation::None, "8642");
    for _ in 0..5 {
        stored = attempt(&stored, b"1111", now(), &params).0;
    }
    assert!(stored.locked);
    assert_eq!(stored.status, OperationStatus::Idle, "no operation to fail");
    // Scheduling later does not lift the lock; the attempt records the failure.
    stored.schedule(Operation::InstallUpgrade, None).unwrap();
    let decision = stored.decide(&Presented::password(b"8642"), now(), &params);
    assert_eq!(decision.refusal(), Some(&Refusal::LockedOut));
    stored.apply(&decision.update);
    assert!(matches!(
        stored.status,
        OperationStatus::Failed {
            reason: FailureReason::LockedOut,
            ..
        }
    ));
    // Recorded once: the next attempt has nothing new to persist.
    let decision = stored.decide(&Presented::password(b"8642"), now(), &params);
    assert!(decision.update.is_empty());
}

#[test]
fn clear_lockout_without_a_string() {
    let params = Parameters::default();
    let mut stored = armed(Operation::InstallUpgrade, "8642");
    for _ in 0..5 {
        stored = attempt(&stored, b"1111", now(), &params).0;
    }
    stored.auth_mode = AuthMode::NullString;
    assert_eq!(
        stored.decide(&Presented::NOTHING, now(), &params).refusal(),
        Some(&Refusal::LockedOut)
    );
    stored.clear_lockout();
    assert_eq!(stored.status, OperationStatus::Pending);
    assert!(
        stored
            .decide(&Presented::NOTHING, now(), &params)
            .grant()
            .is_some()
    );
    // Back to auth-string mode: the attacked string is gone.
    stored.auth_mode = AuthMode::AuthString;
    assert_eq!(
        stored
            .decide(&Presented::password(b"8642"), now(), &params)
            .refusal(),
        Some(&Refusal::NoAuthStringArmed)
    );
}
