//! Abuse: slow and idle clients bounded by the timeouts, the per-address
//! connection limit, 10,000 guesses at one device's string, and malformed
//! frames over TLS, each while (or followed by) a real phone enrolling
//! normally. Servers run on 127.0.0.1 (ephemeral port) with short timeouts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{BufMut, BytesMut};
use capf_auth::{AuthMode, AuthString, Operation};
use capf_operations::capf_wire::{
    AuthResponse, Command, Frame, FrameCodec, Message, Password, Reason, Tag,
};
use capf_operations::phone::PhoneConfig;
use capf_operations::{
    DeviceEdit, OperatorStore, OutcomeKind, ServerConfig, ServerSession, ServiceParameters,
    SessionDriver,
};
use capf_server::ServerOptions;
use capf_store::SqliteStore;
use common::{
    P256, Server, assert_installed, auth_string, device, init_data_dir, name, open_store,
    runtime_test, trust_store,
};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Longest wait for anything in these tests.
const LIMIT: Duration = Duration::from_secs(20);

/// Short CAPF timeouts: one second for AUTH_RESPONSE and for any reply.
fn short_params() -> ServiceParameters {
    ServiceParameters {
        auth_timeout: Duration::from_secs(1),
        reply_timeout: Duration::from_secs(1),
        ..ServiceParameters::default()
    }
}

fn short_options(root: &Path) -> ServerOptions {
    ServerOptions {
        handshake_timeout: Duration::from_secs(1),
        shutdown_grace: Duration::from_secs(1),
        ..common::options(root)
    }
}

/// A server like `common::Server::start` but with service parameters
/// chosen here.
async fn start(root: &Path, params: ServiceParameters, options: ServerOptions) -> Server {
    let store = Arc::new(open_store(root));
    Server::start_on(root, store, params, options).await
}

/// A phone that writes whatever bytes the test gives it, over TLS.
struct RawPhone {
    stream: TlsStream<TcpStream>,
    codec: FrameCodec,
    inbound: BytesMut,
}

/// What the server did next.
#[derive(Debug)]
enum Heard {
    Message(u32, Message),
    Closed,
}

impl RawPhone {
    /// Connects to `server` over TLS (bounded by `LIMIT`).
    async fn connect(server: &Server) -> RawPhone {
        let tcp = TcpStream::connect(&server.addr).await.unwrap();
        let stream = tokio::time::timeout(
            LIMIT,
            TlsConnector::from(server.tls())
                .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp),
        )
        .await
        .expect("handshake within the limit")
        .expect("TLS handshake");
        RawPhone {
            stream,
            codec: FrameCodec::new(),
            inbound: BytesMut::new(),
        }
    }

    /// Connects to `server` and authenticates as `n` with `string`, up to
    /// KEY_GENERATE_REQUEST. Returns the phone and its session id.
    async fn authenticated(server: &Server, n: &str, string: &str) -> (RawPhone, u32) {
        let mut phone = RawPhone::connect(server).await;
        let id = phone.auth_request().await;
        phone
            .send(&frame_bytes(&auth_response(n, string), id))
            .await;
        match phone.hear().await {
            Heard::Message(_, Message::KeyGenerateRequest(_)) => {}
            other => panic!("expected KEY_GENERATE_REQUEST, got {other:?}"),
        }
        (phone, id)
    }

    /// The next message, or the close (bounded by `LIMIT`).
    async fn hear(&mut self) -> Heard {
        let deadline = tokio::time::Instant::now() + LIMIT;
        loop {
            if let Some(frame) = self.codec.decode(&mut self.inbound).expect("server frames") {
                let message = Message::from_frame(&frame).expect("server messages");
                return Heard::Message(frame.session_id, message);
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.inbound)).await {
                Err(_) => panic!("the server neither answered nor closed"),
                Ok(Ok(0) | Err(_)) => return Heard::Closed,
                Ok(Ok(_)) => {}
            }
        }
    }

    /// AUTH_REQUEST, with its session id.
    async fn auth_request(&mut self) -> u32 {
        match self.hear().await {
            Heard::Message(id, Message::AuthRequest(_)) => id,
            other => panic!("expected AUTH_REQUEST, got {other:?}"),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        // The server may already have closed: that is one allowed answer.
        let _ = self.stream.write_all(bytes).await;
        let _ = self.stream.flush().await;
    }

    /// The server ends the session: END_SESSION with `reason` (if one comes
    /// at all) and then the close. Returns the reason heard, if any.
    async fn ended(&mut self) -> Option<Reason> {
        match self.hear().await {
            Heard::Closed => None,
            Heard::Message(_, Message::EndSession(r)) => {
                assert!(
                    matches!(self.hear().await, Heard::Closed),
                    "the server closes after END_SESSION"
                );
                Some(r.reason)
            }
            Heard::Message(_, other) => panic!("expected END_SESSION or a close, got {other:?}"),
        }
    }

    /// Ended with END_SESSION(7) or a bare close, nothing else.
    async fn ended_in_error(&mut self) {
        if let Some(reason) = self.ended().await {
            assert_eq!(reason, Reason::InvalidElement);
        }
    }
}

fn auth_response(device: &str, password: &str) -> Message {
    Message::AuthResponse(Box::new(AuthResponse::with_password(
        device,
        Password::new(password.as_bytes().to_vec()),
    )))
}

fn frame_bytes(message: &Message, session_id: u32) -> Vec<u8> {
    let mut out = BytesMut::new();
    message.encode(session_id, &mut out).unwrap();
    out.to_vec()
}

/// A raw frame: header (with any declared length) and body bytes.
fn raw_frame(command: u8, session_id: u32, declared: u16, body: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    out.put_u8(0x55);
    out.put_u8(command);
    out.put_u32(session_id);
    out.put_u16(declared);
    out.put_slice(body);
    out.to_vec()
}

/// A byte-every-200-ms ClientHello is closed at the handshake timeout; a
/// client idle after TLS gets END_SESSION at the AUTH_RESPONSE timeout; a
/// client that stalls before its public key gets END_SESSION at the reply
/// timeout, and the operation stays pending with its string armed. A real
/// phone enrolls meanwhile, and the stalled device enrolls afterwards.
#[test]
fn slow_and_idle_clients_are_ended_by_the_timeouts_while_a_phone_enrolls() {
    runtime_test(async {
        let tmp = tempfile::tempdir().unwrap();
        let server = start(tmp.path(), short_params(), short_options(tmp.path())).await;
        server.add_install("SEP000000000001", "11111111");
        server.add_install("SEP000000000002", "22222222");

        // Slowloris: a TLS handshake record trickled one byte at a time.
        // 200 bytes would take 40 s; the server closes long before.
        let slowloris = {
            let addr = server.addr.clone();
            tokio::spawn(async move {
                let mut tcp = TcpStream::connect(&addr).await.unwrap();
                let mut hello = vec![0x16, 0x03, 0x01, 0x00, 0xc4, 0x01, 0x00, 0x00, 0xc0];
                hello.resize(200, 0x03);
                let mut sent = 0;
                let mut buf = [0u8; 64];
                for b in &hello {
                    if tcp.write_all(&[*b]).await.is_err() {
                        return sent;
                    }
                    sent += 1;
                    match tokio::time::timeout(Duration::from_millis(200), tcp.read(&mut buf)).await
                    {
                        Err(_) => {}                       // still open
                        Ok(Ok(0) | Err(_)) => return sent, // closed
                        Ok(Ok(_)) => {}                    // an alert: read on to the close
                    }
                }
                sent
            })
        };

        // Idle after TLS: AUTH_REQUEST, then nothing.
        let mut idle = RawPhone::connect(&server).await;
        idle.auth_request().await;

        // Stalls before its public key: authenticated, then silent.
        let (mut stall, _) = RawPhone::authenticated(&server, "SEP000000000002", "22222222").await;

        // Meanwhile a real phone enrolls.
        server.enroll("SEP000000000001", "11111111").await;

        assert_eq!(idle.ended().await, Some(Reason::InvalidElement));
        assert_eq!(stall.ended().await, Some(Reason::InvalidElement));
        let sent = slowloris.await.unwrap();
        assert!(sent < 200, "the trickled hello was cut off (sent {sent})");

        // The stalled install is still pending, its string still armed, and
        // the reason recorded; the phone's retry completes it.
        common::wait_lease_free(&server.store, "SEP000000000002").await;
        let d = server
            .store
            .load(&name("SEP000000000002"))
            .unwrap()
            .unwrap();
        assert_eq!(d.status_label(), "Install/Upgrade pending");
        assert!(d.policy.auth_string.is_some());
        assert!(
            d.last_error
                .as_ref()
                .is_some_and(|e| e.reason.contains("timed out") || e.reason.contains("waiting")),
            "{:?}",
            d.last_error
        );
        server.enroll("SEP000000000002", "22222222").await;
        server.stop().await;
    });
}

/// `max_per_address` bounds the connections one IP address holds
/// (handshaking or in session). A new connection from a full address
/// evicts its oldest one still in its handshake, then the one waiting
/// longest in session without saying who it is; one whose phone is being
/// served is never evicted, and when all are, the newcomer is closed.
#[test]
fn a_full_address_evicts_idle_connections_never_served_phones() {
    runtime_test(async {
        let tmp = tempfile::tempdir().unwrap();
        let options = ServerOptions {
            max_per_address: 3,
            handshake_timeout: Duration::from_secs(30),
            ..short_options(tmp.path())
        };
        let params = ServiceParameters {
            auth_timeout: Duration::from_secs(30),
            reply_timeout: Duration::from_secs(30),
            ..short_params()
        };
        let server = start(tmp.path(), params, options).await;
        for (n, s) in [
            ("SEP000000000003", "33333333"),
            ("SEP000000000004", "44444444"),
            ("SEP000000000005", "55555555"),
            ("SEP000000000006", "66666666"),
        ] {
            server.add_install(n, s);
        }

        // Two idle TCP connections (in their handshake) and one idle in
        // session (heard AUTH_REQUEST, said nothing): the address is full.
        let mut idle_tcp = Vec::new();
        for _ in 0..2 {
            idle_tcp.push(TcpStream::connect(&server.addr).await.unwrap());
        }
        let mut idle_session = RawPhone::connect(&server).await;
        idle_session.auth_request().await;

        // A phone from the same address enrolls: the idle ones make room.
        let run = tokio::time::timeout(
            LIMIT,
            server.client().run(
                &server.addr,
                PhoneConfig::new("SEP000000000003", auth_string("33333333")),
            ),
        )
        .await
        .expect("within the limit")
        .expect("connected");
        assert_installed(&run);
        // The oldest handshake went first.
        let mut first = idle_tcp.remove(0);
        let mut byte = [0u8; 1];
        let closed = tokio::time::timeout(LIMIT, first.read(&mut byte))
            .await
            .expect("the evicted connection is closed within the limit");
        assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");

        // Three phones being served (waiting for their keys) fill the
        // address: never evicted, so a fourth connection is closed at once.
        drop(idle_tcp);
        drop(idle_session);
        let mut served = Vec::new();
        for (n, s) in [
            ("SEP000000000004", "44444444"),
            ("SEP000000000005", "55555555"),
            ("SEP000000000006", "66666666"),
        ] {
            served.push(RawPhone::authenticated(&server, n, s).await);
        }
        for _ in 0..3 {
            let tcp = TcpStream::connect(&server.addr).await.unwrap();
            let refused = tokio::time::timeout(
                LIMIT,
                TlsConnector::from(server.tls())
                    .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp),
            )
            .await
            .expect("refused within the limit");
            assert!(refused.is_err(), "a fourth connection was served");
        }
        // The served phones were not disturbed.
        for (phone, _) in &mut served {
            phone.send(&[]).await;
        }
        drop(served);
        server.stop().await;
    });
}

/// 10,000 wrong guesses at one device's string (the right one among them,
/// after the lockout) authenticate nothing; the device is locked after the
/// limit and stays locked after the store is closed and reopened, until the
/// operator re-arms it. Sessions run in memory (`SessionDriver`) over a
/// SQLite file, so every counter goes through the real store.
#[test]
fn ten_thousand_guesses_get_nothing_and_the_lockout_survives_a_restart() {
    const GUESSES: u32 = 10_000;
    const DEVICE: &str = "SEP0000000000AA";
    const RIGHT: &str = "31415926";
    let tmp = tempfile::tempdir().unwrap();
    let identity = init_data_dir(tmp.path());
    let issuer = identity.issuer().unwrap();
    let trust = trust_store(tmp.path(), &issuer);
    let params = ServiceParameters::default();
    let limit = params.auth_failure_limit;
    let config = Arc::new(ServerConfig::new(params, trust));

    // One session: AUTH_RESPONSE with `guess`. Returns whether the server
    // asked for a key (authenticated) and how the session ended.
    let attempt = |store: &SqliteStore, id: u32, guess: &str| -> (bool, Option<OutcomeKind>) {
        let now = SystemTime::now();
        let mut session = ServerSession::new(id, config.clone(), now);
        let mut driver = SessionDriver::new(store, &issuer, Duration::from_secs(60));
        let mut authenticated = false;
        let mut drain = |session: &mut ServerSession| {
            while let Some(t) = session.poll_transmit() {
                if matches!(t.message, Message::KeyGenerateRequest(_)) {
                    authenticated = true;
                }
            }
        };
        drain(&mut session);
        session.handle_message(now, id, auth_response(DEVICE, guess));
        let outcome = driver.service(&mut session, now);
        drain(&mut session);
        (authenticated, outcome.map(|o| o.kind))
    };

    let db = tmp.path().join("guesses.db");
    {
        let store = SqliteStore::open(&db).unwrap();
        store
            .insert(
                &device(
                    DEVICE,
                    AuthMode::AuthString,
                    Operation::InstallUpgrade,
                    Some(RIGHT),
                    P256,
                ),
                std::time::SystemTime::now(),
            )
            .unwrap();
        let mut refused = 0;
        for i in 0..GUESSES {
            // Every 8-digit guess but the right one; the right one is tried
            // too, half-way, long after the lockout.
            let guess = if i == GUESSES / 2 {
                RIGHT.to_owned()
            } else {
                let g = format!("{:08}", 10_000_000 + i);
                assert_ne!(g, RIGHT);
                g
            };
            let (authenticated, outcome) = attempt(&store, i + 1, &guess);
            assert!(!authenticated, "guess {i} ({guess}) authenticated");
            assert!(
                matches!(outcome, Some(OutcomeKind::Refused(_))),
                "guess {i}: {outcome:?}"
            );
            refused += 1;
            if i + 1 == limit {
                let d = store.load(&name(DEVICE)).unwrap().unwrap();
                assert!(d.policy.locked, "locked after {limit} wrong strings");
            }
        }
        assert_eq!(refused, GUESSES);
        let d = store.load(&name(DEVICE)).unwrap().unwrap();
        assert!(d.policy.locked);
        assert!(d.lsc.is_none());
        assert!(store.issued_certificates(&name(DEVICE)).unwrap().is_empty());
        let audit = store.audit_log(&name(DEVICE)).unwrap();
        assert_eq!(audit.iter().filter(|e| e.event == "lockout").count(), 1);
    }

    // "Restart": a new store on the same file. Still locked; the right
    // string still gets nothing.
    let store = SqliteStore::open(&db).unwrap();
    let d = store.load(&name(DEVICE)).unwrap().unwrap();
    assert!(d.policy.locked, "the lockout survives a restart");
    let (authenticated, outcome) = attempt(&store, GUESSES + 1, RIGHT);
    assert!(!authenticated);
    assert!(
        matches!(outcome, Some(OutcomeKind::Refused(_))),
        "{outcome:?}"
    );

    // The operator re-arms with a new string: that one authenticates.
    let rearm = DeviceEdit {
        auth_string: Some("27182818".parse::<AuthString>().unwrap()),
        ..DeviceEdit::default()
    };
    store
        .modify(&name(DEVICE), &rearm, std::time::SystemTime::now())
        .unwrap();
    let (authenticated, _) = attempt(&store, GUESSES + 2, "27182818");
    assert!(authenticated, "a re-armed device authenticates");
}

/// Malformed input over TLS: each case gets END_SESSION(7) or a close, and
/// the server then serves a real phone normally.
#[test]
fn malformed_frames_end_the_session_and_the_next_phone_is_served() {
    runtime_test(async {
        let tmp = tempfile::tempdir().unwrap();
        let server = start(tmp.path(), short_params(), short_options(tmp.path())).await;
        server.add_install("SEP000000000004", "44444444");

        // Each case: what to send after AUTH_REQUEST (given its session id).
        type Case = (&'static str, Box<dyn Fn(u32) -> Vec<u8>>);
        let cases: Vec<Case> = vec![
            (
                "declared body larger than the server accepts",
                Box::new(|id| raw_frame(2, id, 0xffff, &[0u8; 64])),
            ),
            (
                "element longer than its frame",
                Box::new(|id| raw_frame(2, id, 6, &[13, 0x01, 0x00, b'S', b'E', b'P'])),
            ),
            (
                "element header cut by the frame end",
                Box::new(|id| raw_frame(2, id, 2, &[13, 0x00])),
            ),
            (
                "a known tag twice",
                Box::new(|id| {
                    let mut body = Vec::new();
                    for _ in 0..2 {
                        body.extend_from_slice(&[13, 0, 16]);
                        body.extend_from_slice(b"SEP000000000004\0");
                    }
                    raw_frame(2, id, u16::try_from(body.len()).unwrap(), &body)
                }),
            ),
            (
                "wrong protocol id",
                Box::new(|id| {
                    let mut f = frame_bytes(&auth_response("SEP000000000004", "44444444"), id);
                    f[0] = 0x54;
                    f
                }),
            ),
            (
                "unknown command",
                Box::new(|id| raw_frame(0x63, id, 4, &[0x63, 0, 1, 0])),
            ),
            (
                "a command phones never send",
                Box::new(|id| frame_bytes(&Message::end_session(Reason::SUCCESS), id)),
            ),
            (
                "wrong session id",
                Box::new(|id| {
                    frame_bytes(
                        &auth_response("SEP000000000004", "44444444"),
                        id.wrapping_add(1),
                    )
                }),
            ),
            (
                "STORE_CERTIFICATE_RESPONSE before authenticating",
                Box::new(|id| {
                    raw_frame(
                        Command::StoreCertificateResponse.to_u8(),
                        id,
                        4,
                        &[1, 0, 1, 1],
                    )
                }),
            ),
            (
                "KEY_GENERATE_RESPONSE before authenticating",
                Box::new(|id| {
                    Frame::new(Command::KeyGenerateResponse, id)
                        .with(Tag::Reason, vec![1u8])
                        .to_bytes()
                        .unwrap()
                        .to_vec()
                }),
            ),
            (
                "REQUEST_IN_PROGRESS before authenticating",
                Box::new(|id| raw_frame(Command::RequestInProgress.to_u8(), id, 0, &[])),
            ),
            (
                "a truncated frame, then silence",
                Box::new(|id| raw_frame(2, id, 40, &[13, 0, 16])),
            ),
        ];
        for (what, bytes) in &cases {
            let mut phone = RawPhone::connect(&server).await;
            let id = phone.auth_request().await;
            phone.send(&bytes(id)).await;
            let heard = phone.ended().await;
            assert!(
                heard.is_none() || heard == Some(Reason::InvalidElement),
                "{what}: {heard:?}"
            );
        }

        // Unknown tags are skipped, never fatal: an AUTH_RESPONSE with one
        // for an unknown device is answered UNKNOWN_DEVICE (9).
        let mut phone = RawPhone::connect(&server).await;
        let id = phone.auth_request().await;
        let mut frame = auth_response("SEP0000000000FF", "12345678")
            .to_frame(id)
            .unwrap();
        frame = frame.with(Tag::from(0x77), vec![1u8, 2, 3]);
        phone.send(&frame.to_bytes().unwrap()).await;
        assert_eq!(phone.ended().await, Some(Reason::UnknownDevice));

        // Out of order after authenticating: STORE_CERTIFICATE_RESPONSE
        // instead of the key. The session ends in error; the operation stays
        // pending and its string armed.
        let (mut phone, id) = RawPhone::authenticated(&server, "SEP000000000004", "44444444").await;
        phone
            .send(&raw_frame(
                Command::StoreCertificateResponse.to_u8(),
                id,
                4,
                &[1, 0, 1, 1],
            ))
            .await;
        phone.ended_in_error().await;
        common::wait_lease_free(&server.store, "SEP000000000004").await;
        let d = server
            .store
            .load(&name("SEP000000000004"))
            .unwrap()
            .unwrap();
        assert_eq!(d.status_label(), "Install/Upgrade pending");
        assert!(d.policy.auth_string.is_some());
        assert!(server.issued("SEP000000000004").is_empty());

        // The next phone is served normally.
        server.enroll("SEP000000000004", "44444444").await;
        server.stop().await;
    });
}
