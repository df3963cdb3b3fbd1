//! Operators editing devices while phones enroll, end to end: `capf serve`
//! as its own process, phones over TLS, and two threads looping `capf
//! device set` on the same devices. No used string is accepted again, the
//! lockout comes after exactly the configured number of wrong strings, and
//! no install issues two LSCs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use capf_operations::phone::{PhoneOutcome, PhoneSuccess};
use capf_operations::{DeviceName, OperatorStore};
use capf_server::PhoneClient;
use common::{Serve, capf, open_store, phone_config, phone_tls, runtime};

const LIMIT: Duration = Duration::from_secs(60);
const WRONG_LIMIT: u32 = 3;
/// Phones keep trying (used strings, locked devices) until the operators
/// have made this many edits, so that edits and sessions overlap.
const EDITS: usize = 60;

/// `capf device set NAME ARGS`: exit 0 (applied) or 1 (refused: a session
/// held the device); anything else fails the test.
fn operator_set(data: &Path, name: &str, args: &[&str]) -> bool {
    let out = Command::new(env!("CARGO_BIN_EXE_capf"))
        .arg("--data-dir")
        .arg(data)
        .args(["device", "set", name])
        .args(args)
        .env_remove("CAPF_DATA_DIR")
        .output()
        .unwrap();
    match out.status.code() {
        Some(0) => true,
        Some(1) => {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("busy") && err.contains("try again"), "{err}");
            false
        }
        other => panic!(
            "capf device set {name} {args:?} ended with {other:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

#[test]
fn operator_edits_while_phones_enroll_never_undo_a_session() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    capf(&data, &["init", "--key", "p256"]);
    capf(
        &data,
        &[
            "params",
            "set",
            "auth_failure_limit",
            &WRONG_LIMIT.to_string(),
        ],
    );
    let enrolling: Vec<(String, String)> = (0..4)
        .map(|i| (format!("SEP0000000031{i:02X}"), format!("5500{i:02}")))
        .collect();
    let guessing: Vec<String> = (0..2).map(|i| format!("SEP0000000032{i:02X}")).collect();
    for (n, digits) in &enrolling {
        capf(
            &data,
            &[
                "device",
                "add",
                n,
                "--operation",
                "install",
                "--auth-string",
                digits,
                "--key",
                "p256",
            ],
        );
    }
    for n in &guessing {
        capf(
            &data,
            &[
                "device",
                "add",
                n,
                "--operation",
                "install",
                "--auth-string",
                "97531",
                "--key",
                "p256",
            ],
        );
    }
    let all: Vec<String> = enrolling
        .iter()
        .map(|(n, _)| n.clone())
        .chain(guessing.iter().cloned())
        .collect();

    let serve = Serve::start(&data, tmp.path().join("serve.log"));
    let client = std::sync::Arc::new(PhoneClient::new((*phone_tls(&data)).clone()));
    let rt = runtime();
    let stop = AtomicBool::new(false);
    let (applied, refused) = (AtomicUsize::new(0), AtomicUsize::new(0));
    // Edits made so far, for the phones to read; usize::MAX once an
    // editor has stopped (a failed edit panics it: the phones must not
    // wait for edits that will never come, and the test fails with it).
    let made = std::sync::Arc::new(AtomicUsize::new(0));
    struct EditorGone(std::sync::Arc<AtomicUsize>);
    impl Drop for EditorGone {
        fn drop(&mut self) {
            self.0.store(usize::MAX, Ordering::Relaxed);
        }
    }
    std::thread::scope(|scope| {
        // Two operators: one edits descriptions (always allowed), the other
        // also reschedules the install (refused while a phone's session
        // holds the device).
        for editor in 0..2 {
            let (all, stop, data) = (&all, &stop, &data);
            let (applied, refused, made) = (&applied, &refused, made.clone());
            scope.spawn(move || {
                let _gone = EditorGone(made.clone());
                let mut round = 0;
                while !stop.load(Ordering::Relaxed) {
                    for n in all {
                        round += 1;
                        let description = format!("editor {editor} round {round}");
                        let mut args = vec!["--description", description.as_str()];
                        if editor == 1 {
                            args.extend(["--operation", "install"]);
                        }
                        if operator_set(data, n, &args) {
                            applied.fetch_add(1, Ordering::Relaxed);
                        } else {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                        let _ = made.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |m| {
                            m.checked_add(1)
                        });
                    }
                }
            });
        }

        // Every device's phone at once, each one session after another.
        let addr = serve.addr.clone();

        let flows = async {
            let mut tasks = tokio::task::JoinSet::new();
            for (n, digits) in enrolling.clone() {
                let (client, addr, made) = (client.clone(), addr.clone(), made.clone());
                let edits = move || made.load(Ordering::Relaxed);
                tasks.spawn(async move {
                    let phone = |digits: String| {
                        let (client, addr, n) = (client.clone(), addr.clone(), n.clone());
                        async move {
                            tokio::time::timeout(
                                LIMIT,
                                client.run(&addr, phone_config(&n, &digits)),
                            )
                            .await
                            .expect("phone within the limit")
                            .expect("phone connected")
                        }
                    };
                    let run = phone(digits.clone()).await;
                    assert!(
                        matches!(
                            run.outcome,
                            PhoneOutcome::Succeeded(PhoneSuccess::Installed { .. })
                        ),
                        "{n}: {:?}",
                        run.outcome
                    );
                    // The editor reschedules installs all the time: the
                    // used string must never work again.
                    let mut tries = 0;
                    while tries < 5 || edits() < EDITS {
                        tries += 1;
                        let again = phone(digits.clone()).await;
                        assert!(
                            !again.outcome.is_success() && again.installed.is_none(),
                            "{n}: a used string was accepted again: {:?}",
                            again.outcome
                        );
                    }
                });
            }
            for n in guessing.clone() {
                let (client, addr, made) = (client.clone(), addr.clone(), made.clone());
                let edits = move || made.load(Ordering::Relaxed);
                tasks.spawn(async move {
                    let phone = |digits: &'static str| {
                        let (client, addr, n) = (client.clone(), addr.clone(), n.clone());
                        async move {
                            tokio::time::timeout(LIMIT, client.run(&addr, phone_config(&n, digits)))
                                .await
                                .expect("phone within the limit")
                                .expect("phone connected")
                        }
                    };
                    for _ in 0..WRONG_LIMIT + 2 {
                        let run = phone("13579").await;
                        assert!(!run.outcome.is_success(), "{n}: {:?}", run.outcome);
                    }
                    // Locked: even the right string fails now.
                    let mut tries = 0;
                    while tries < 1 || edits() < EDITS {
                        tries += 1;
                        let run = phone("97531").await;
                        assert!(!run.outcome.is_success(), "{n}: {:?}", run.outcome);
                    }
                });
            }
            while let Some(done) = tasks.join_next().await {
                if let Err(e) = done {
                    std::panic::resume_unwind(e.into_panic());
                }
            }
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(flows)));
        stop.store(true, Ordering::Relaxed);
        if let Err(panic) = result {
            eprintln!("{}", serve.log());
            std::panic::resume_unwind(panic);
        }
    });

    let store = open_store(&data);
    for (n, _) in &enrolling {
        let name = DeviceName::parse(n).unwrap();
        let history = store.certificate_history(&name).unwrap();
        assert_eq!(history.len(), 1, "{n}: one LSC for one install");
        assert!(history[0].record.delivered, "{n}");
        let d = store.load(&name).unwrap().unwrap();
        assert!(d.policy.auth_string.is_none(), "{n}: the string stays used");
    }
    for n in &guessing {
        let d = store.load(&DeviceName::parse(n).unwrap()).unwrap().unwrap();
        assert!(d.policy.locked, "{n}");
        assert_eq!(
            d.policy.failed_attempts, WRONG_LIMIT,
            "{n}: exactly the limit"
        );
        let audit = store.audit_log(&d.name).unwrap();
        let wrong = audit
            .iter()
            .filter(|e| e.event == "refused" && e.detail.starts_with("wrong authentication string"))
            .count();
        assert_eq!(wrong, WRONG_LIMIT as usize, "{n}: {audit:?}");
    }
    assert!(applied.load(Ordering::Relaxed) > 0);
    println!(
        "operator edits applied: {}, refused while a session ran: {}",
        applied.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed)
    );
}
