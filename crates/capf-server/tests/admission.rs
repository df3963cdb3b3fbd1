//! Admission under floods: connections that never speak, or that finish
//! their TLS handshake and then say nothing, never keep a real phone out,
//! and the log stays small while they come by the thousand.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use capf_operations::phone::{FailureCause, PhoneConfig, PhoneOutcome, PhoneStep};
use capf_server::PhoneClient;
use common::*;
use rustls_pki_types::ServerName;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;

/// Bytes the server logged, at the level `capf serve` logs by default.
fn logged() -> &'static AtomicUsize {
    static BYTES: OnceLock<Arc<AtomicUsize>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let bytes = Arc::new(AtomicUsize::new(0));
        let counter = bytes.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter("info")
            .with_writer(move || Counting(counter.clone()))
            .try_init();
        bytes
    })
}

struct Counting(Arc<AtomicUsize>);

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.fetch_add(buf.len(), Ordering::Relaxed);
        if std::env::var_os("CAPF_TEST_SHOW_LOG").is_some() {
            let _ = std::io::stderr().write_all(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

/// A TCP connection from `from` to `server`.
async fn connect_from(from: IpAddr, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(server).await
}

/// Keeps `count` silent TCP connections from `from` open, opening a new one
/// each time the server closes one, until `stop`.
async fn silent_flood(from: IpAddr, server: SocketAddr, count: usize, stop: Arc<AtomicBool>) {
    let mut held = JoinSet::new();
    while !stop.load(Ordering::Relaxed) {
        while held.len() < count {
            let stop = stop.clone();
            held.spawn(async move {
                let Ok(Ok(mut tcp)) =
                    tokio::time::timeout(Duration::from_secs(5), connect_from(from, server)).await
                else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    return;
                };
                let mut byte = [0u8; 1];
                // Never a byte sent: wait for the server to close it.
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(Ok(0) | Err(_)) =
                        tokio::time::timeout(Duration::from_millis(200), tcp.read(&mut byte)).await
                    {
                        return;
                    }
                }
            });
        }
        let _ = held.join_next().await;
    }
    held.shutdown().await;
}

/// 1,500 silent connections from five addresses, and 400 from the phone's
/// own address, held and reopened as the server closes them: real phones
/// still enroll, each within 10 s, and the log stays small.
#[test]
fn a_flood_of_silent_connections_never_keeps_a_phone_out() {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let logged = logged();
    runtime_test(async {
        let tmp = tempfile::tempdir().unwrap();
        let server = Server::start(tmp.path()).await;
        let addr: SocketAddr = server.addr.parse().unwrap();
        let phones: Vec<String> = (0..5).map(|i| format!("SEP0000000044{i:02X}")).collect();
        for n in &phones {
            server.add_install(n, "97531");
        }
        let before = logged.load(Ordering::Relaxed);
        let stop = Arc::new(AtomicBool::new(false));
        let mut floods = JoinSet::new();
        for last in 2..=6 {
            floods.spawn(silent_flood(ip(last), addr, 300, stop.clone()));
        }
        floods.spawn(silent_flood(ip(1), addr, 400, stop.clone()));
        // Let the flood fill every slot.
        tokio::time::sleep(Duration::from_secs(2)).await;

        for n in &phones {
            let started = Instant::now();
            // A phone whose connection is lost before its session starts
            // (refused, or closed before the first AUTH_REQUEST: nothing
            // was said, nothing committed) tries again, as a real one does:
            // on a loaded machine its handshake may be slow enough to be
            // taken for a silent one and evicted.
            let run = tokio::time::timeout(Duration::from_secs(10), async {
                loop {
                    let config = PhoneConfig::new(n, auth_string("97531"));
                    match server.client().run(&server.addr, config).await {
                        Err(e @ capf_server::ServerError::Connect { .. }) => {
                            println!("{n}: {e:?}; trying again");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Ok(run)
                            if matches!(&run.outcome, PhoneOutcome::Failed(f)
                                if f.cause == FailureCause::ConnectionLost
                                    && f.step == PhoneStep::AwaitingAuthRequest) =>
                        {
                            println!(
                                "{n}: connection lost before its session started; trying again"
                            );
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        other => break other,
                    }
                }
            })
            .await
            .unwrap_or_else(|_| panic!("{n} did not enroll within 10 s"))
            .expect("connected");
            assert_installed(&run);
            println!("{n} enrolled in {:?} during the flood", started.elapsed());
        }
        stop.store(true, Ordering::Relaxed);
        while floods.join_next().await.is_some() {}
        let bytes = logged.load(Ordering::Relaxed) - before;
        println!("the server logged {bytes} bytes during the flood");
        assert!(bytes < 1 << 20, "the log grew {bytes} bytes");
        server.stop().await;
    });
}

/// 300 connections from one address that finish their TLS handshake and
/// then say nothing: a phone from another address enrolls, and so does one
/// from the same address, once the idle ones are evicted for it.
#[test]
fn idle_tls_sessions_from_one_address_do_not_keep_phones_out() {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    runtime_test(async {
        let tmp = tempfile::tempdir().unwrap();
        let server = Server::start(tmp.path()).await;
        let addr: SocketAddr = server.addr.parse().unwrap();
        server.add_install("SEP000000004501", "86420");
        server.add_install("SEP000000004502", "86420");
        let tls = TlsConnector::from(server.tls());
        let mut idle = Vec::new();
        let mut closed = 0;
        for _ in 0..300 {
            let tcp = connect_from(ip(2), addr).await.unwrap();
            match tls
                .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
                .await
            {
                Ok(stream) => idle.push(stream),
                Err(_) => closed += 1,
            }
        }
        println!(
            "{} idle TLS sessions opened, {closed} closed at once",
            idle.len()
        );

        // Another address.
        let run = tokio::time::timeout(
            Duration::from_secs(10),
            server.client().run(
                &server.addr,
                PhoneConfig::new("SEP000000004501", auth_string("86420")),
            ),
        )
        .await
        .expect("within 10 s")
        .expect("connected");
        assert_installed(&run);

        // The same address: the idle sessions make room.
        let same = PhoneClient::new((*server.tls()).clone()).with_local_address(ip(2));
        let run = tokio::time::timeout(
            Duration::from_secs(10),
            same.run(
                &server.addr,
                PhoneConfig::new("SEP000000004502", auth_string("86420")),
            ),
        )
        .await
        .expect("within 10 s")
        .expect("connected");
        assert_installed(&run);
        drop(idle);
        server.stop().await;
    });
}
