//! Contention through the real server: one session per device, and idle
//! clients that never start TLS.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use capf_operations::phone::{Credentials, PhoneConfig, PhoneOutcome, PhoneSuccess};
use common::handset::{Ending, Script, run_scripted};
use common::*;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_phones_with_one_name_only_one_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let n = "SEP000000004001";
    server.add_install(n, "123456");

    // The first phone authenticates and then pauses before generating its
    // key: its session holds the device.
    let (key_requested, requested) = oneshot::channel();
    let (go, generate_when) = oneshot::channel();
    let script = Script {
        key_requested: Some(key_requested),
        generate_when: Some(generate_when),
        ..Script::default()
    };
    let first = tokio::spawn(run_scripted(
        server.addr.clone(),
        server.tls(),
        PhoneConfig::new(n, auth_string("123456")),
        script,
    ));
    tokio::time::timeout(PHONE_LIMIT, requested)
        .await
        .expect("the first phone is asked for its key")
        .unwrap();

    // The second phone, same name, same (right) string: the server hangs
    // up (no END_SESSION, which would also answer a wrong string: the
    // phone retries as after a lost connection), and it costs nothing (no
    // wrong guess, string not spent).
    let run = tokio::time::timeout(
        PHONE_LIMIT,
        server
            .client()
            .run(&server.addr, PhoneConfig::new(n, auth_string("123456"))),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(hung_up(&run.outcome), "{:?}", run.outcome);
    assert!(run.installed.is_none());
    let d = server.load(n);
    assert_eq!(d.policy.failed_attempts, 0);
    assert!(d.policy.auth_string.is_some());
    assert_eq!(d.status_label(), "Install/Upgrade pending");

    // The first completes.
    go.send(()).unwrap();
    let ending = tokio::time::timeout(PHONE_LIMIT, first)
        .await
        .unwrap()
        .unwrap();
    let Ending::Finished { outcome, installed } = ending else {
        panic!("{ending:?}")
    };
    assert!(
        matches!(
            outcome,
            PhoneOutcome::Succeeded(PhoneSuccess::Installed { .. })
        ),
        "{outcome:?}"
    );
    let d = server.load(n);
    assert_eq!(d.status_label(), "Install/Upgrade successful");
    assert_eq!(d.lsc.as_ref().unwrap().der, installed.unwrap().0);
    assert_eq!(server.issued(n).len(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_phones_with_one_name_at_once_exactly_one_installs() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let n = "SEP000000004002";
    server.add_null_string_install(n);
    let client = std::sync::Arc::new(server.client());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let client = client.clone();
        let addr = server.addr.clone();
        tasks.spawn(async move {
            tokio::time::timeout(
                PHONE_LIMIT,
                client.run(&addr, PhoneConfig::new(n, Credentials::NullString)),
            )
            .await
            .unwrap()
            .unwrap()
        });
    }
    let mut installs = 0;
    while let Some(run) = tasks.join_next().await {
        let run = run.unwrap();
        match &run.outcome {
            PhoneOutcome::Succeeded(PhoneSuccess::Installed { .. }) => installs += 1,
            // Too late (the install is done: nothing scheduled any more).
            PhoneOutcome::Succeeded(PhoneSuccess::NothingScheduled { .. }) => {}
            // Busy: hung up (the phone would retry).
            other if hung_up(other) => {}
            // The string was spent by the install.
            other => assert_eq!(refused_reason(other), 7, "{other:?}"),
        }
    }
    assert_eq!(installs, 1);
    assert_eq!(server.issued(n).len(), 1);
    assert_eq!(server.load(n).status_label(), "Install/Upgrade successful");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_do_not_delay_an_enrollment_and_are_closed_after_the_handshake_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let handshake_timeout = Duration::from_secs(2);
    let server = Server::start_with(
        dir.path(),
        capf_server::ServerOptions {
            handshake_timeout,
            // Room for them all: this is about timeouts, not eviction
            // (admission.rs has that).
            max_per_address: 256,
            ..options(dir.path())
        },
    )
    .await;
    let n = "SEP000000005001";
    server.add_install(n, "123456");

    // 200 clients connect and never send a byte.
    let mut idle = Vec::with_capacity(200);
    for _ in 0..200 {
        idle.push(TcpStream::connect(&server.addr).await.unwrap());
    }

    // A real enrollment while they are open.
    let run = server
        .phone(PhoneConfig::new(n, auth_string("123456")))
        .await;
    assert_installed(&run);
    assert_eq!(server.load(n).status_label(), "Install/Upgrade successful");

    // It completed before the server gave up on any idle client: every one
    // is still open (nothing to read, no EOF).
    let mut buf = [0u8; 1];
    for (i, socket) in idle.iter().enumerate() {
        match socket.try_read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!(
                "idle connection {i} was closed before the enrollment completed \
                 (or the enrollment outlasted the {handshake_timeout:?} handshake timeout): {other:?}"
            ),
        }
    }

    // Then each one is closed by the server once its handshake times out.
    let bound = handshake_timeout + Duration::from_secs(15);
    let closed = tokio::time::timeout(bound, async {
        for mut socket in idle {
            let mut rest = Vec::new();
            match socket.read_to_end(&mut rest).await {
                Ok(_) => assert!(rest.is_empty(), "the server sent bytes to an idle client"),
                // A reset is a close too.
                Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "idle connections still open {bound:?} after connecting"
    );
    server.stop().await;
}
