#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Property tests: only the armed string passes, and only once.

use std::time::{Duration, SystemTime};

use capf_auth::{AuthMode, AuthString, DevicePolicy, Operation, Parameters, Presented, Verdict};
use proptest::prelude::*;

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn armed_digits() -> impl Strategy<Value = String> {
    "[0-9]{4,10}"
}

/// Mostly digit strings near the armed one, plus arbitrary bytes.
fn guesses() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[0-9]{0,12}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..16),
    ]
}

fn device(digits: &str, op: Operation) -> DevicePolicy {
    let mut d = DevicePolicy::new(AuthMode::AuthString);
    d.certificates.lsc = true;
    d.certificates.mic = true;
    d.schedule(op, None).unwrap();
    d.rearm(digits.parse().unwrap());
    d
}

fn strip_nul(bytes: &[u8]) -> &[u8] {
    bytes.strip_suffix(&[0]).unwrap_or(bytes)
}

proptest! {
    #[test]
    fn no_other_string_ever_passes(
        digits in armed_digits(),
        guesses in proptest::collection::vec(guesses(), 1..12),
        limit in 1u32..20,
    ) {
        let params = Parameters::with_failure_limit(limit).unwrap();
        let mut d = device(&digits, Operation::InstallUpgrade);
        for guess in &guesses {
            let decision = d.decide(&Presented::password(guess), now(), &params);
            let is_armed = strip_nul(guess) == digits.as_bytes();
            if decision.grant().is_some() {
                prop_assert!(is_armed, "{:?} passed for {:?}", guess, digits);
            }
            d.apply(&decision.update);
        }
    }

    #[test]
    fn the_armed_string_passes_and_never_again_after_success(
        digits in armed_digits(),
        op in prop_oneof![
            Just(Operation::InstallUpgrade),
            Just(Operation::Delete),
            Just(Operation::Troubleshoot),
        ],
        wrong_before in 0u32..4,
    ) {
        let params = Parameters::default();
        let mut d = device(&digits, op);
        for _ in 0..wrong_before {
            let decision = d.decide(&Presented::password(b"x"), now(), &params);
            d.apply(&decision.update);
        }
        let decision = d.decide(&Presented::password(digits.as_bytes()), now(), &params);
        let grant = match decision.verdict {
            Verdict::Proceed(grant) => grant,
            Verdict::Refuse(r) => return Err(TestCaseError::fail(format!("refused: {r}"))),
        };
        d.apply(&decision.update);
        prop_assert_eq!(d.failed_attempts, 0);
        d.on_operation_succeeded(&grant, now());

        // Used: never again, even with the operation scheduled again and
        // across a "restart" (a copy of the stored state).
        let mut restarted = d.clone();
        restarted.certificates.lsc = true; // e.g. a delete, then a new install
        restarted.schedule(op, None).unwrap();
        for _ in 0..3 {
            let decision = restarted.decide(&Presented::password(digits.as_bytes()), now(), &params);
            prop_assert!(decision.grant().is_none());
            restarted.apply(&decision.update);
        }
        // Re-arming with the same digits is an explicit operator act, and then
        // it works once more.
        restarted.rearm(digits.parse::<AuthString>().unwrap());
        let decision = restarted.decide(&Presented::password(digits.as_bytes()), now(), &params);
        prop_assert!(decision.grant().is_some());
    }

    #[test]
    fn matches_is_exact_equality(digits in armed_digits(), guess in guesses()) {
        let s: AuthString = digits.parse().unwrap();
        prop_assert_eq!(s.matches(&guess), strip_nul(&guess) == digits.as_bytes());
    }

    #[test]
    fn parse_accepts_exactly_4_to_10_ascii_digits(input in "\\PC{0,12}") {
        let ok = (4..=10).contains(&input.len()) && input.bytes().all(|b| b.is_ascii_digit());
        let parsed = input.parse::<AuthString>();
        prop_assert_eq!(parsed.is_ok(), ok);
        if let Ok(s) = parsed {
            prop_assert_eq!(s.expose(), input.as_str());
            let shown = format!("{s:?}{s}");
            prop_assert!(!shown.contains(&input));
        }
    }
}
