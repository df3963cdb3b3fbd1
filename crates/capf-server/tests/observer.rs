//! What operators see: Prometheus metrics that move with what the server
//! does, a health check that notices an unwritable database, and a log
//! line that explains a failed TLS handshake.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use capf_operations::phone::PhoneConfig;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Everything the server logged, at the default level.
fn log() -> &'static Mutex<Vec<u8>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(std::env::var("CAPF_TEST_LOG").unwrap_or_else(|_| "info".into()))
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .try_init();
        log
    })
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `GET path` over plain HTTP/1.1: (status, body).
async fn get(addr: &str, path: &str) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: capf\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_string(&mut response))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Checks the Prometheus text format line by line, and returns the
/// samples as `name{labels}` -> value.
fn parse_metrics(text: &str) -> std::collections::HashMap<String, f64> {
    let mut samples = std::collections::HashMap::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line == "# EOF" {
            assert!(lines.peek().is_none(), "# EOF is the last line");
            return samples;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            let kind = comment.split_whitespace().next().unwrap_or("");
            assert!(
                matches!(kind, "HELP" | "TYPE" | "UNIT"),
                "unknown comment: {line}"
            );
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {line}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':'),
            "bad metric name: {line}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "bad labels: {line}");
        }
        samples.insert(series.to_owned(), value);
    }
    panic!("no # EOF line");
}

async fn start_observer(server: &Server) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(capf_server::serve_observer(
        listener,
        server.observer(),
        async move {
            let _ = stopped.await;
        },
    ));
    (addr, stop)
}

#[test]
fn metrics_move_with_what_the_server_does_and_health_sees_the_database() {
    runtime_test(async {
        let tmp = tempfile::tempdir().unwrap();
        let server = Server::start(tmp.path()).await;
        let (observer, _stop) = start_observer(&server).await;
        let (status, body) = get(&observer, "/health").await;
        assert_eq!((status, body.as_str()), (200, "ok\n"));
        let before = parse_metrics(&get(&observer, "/metrics").await.1);
        assert_eq!(before.get("capf_connections_open"), Some(&0.0));

        // A real enrollment, a refusal, a failed handshake.
        server.add_install("SEP000000005501", "13579");
        server.add_install("SEP000000005502", "13579");
        server.enroll("SEP000000005501", "13579").await;
        let refused = server
            .phone(PhoneConfig::new("SEP000000005502", auth_string("24680")))
            .await;
        assert!(!refused.outcome.is_success());
        let mut garbage = TcpStream::connect(&server.addr).await.unwrap();
        garbage.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), garbage.read_to_end(&mut sink)).await;

        let after = parse_metrics(&get(&observer, "/metrics").await.1);
        let value = |key: &str| after.get(key).copied().unwrap_or(0.0);
        assert_eq!(
            value("capf_sessions_total{operation=\"install\",outcome=\"installed\"}"),
            1.0,
            "{after:?}"
        );
        assert_eq!(value("capf_refusals_total{reason=\"wrong-string\"}"), 1.0);
        assert_eq!(value("capf_lscs_issued_total{key=\"p256\"}"), 1.0);
        assert!(value("capf_tls_handshakes_total{outcome=\"ok\",version=\"TLSv1_3\"}") >= 2.0);
        assert!(
            value("capf_tls_handshakes_total{outcome=\"other\",version=\"-\"}") >= 1.0,
            "{after:?}"
        );
        assert!(value("capf_enrollment_seconds_count") >= 1.0);
        assert!(value("capf_store_commit_seconds_count") >= 2.0);

        // The database made unwritable: unhealthy, and says why.
        let db = tmp.path().join(DATABASE);
        let mut mode = std::fs::metadata(&db).unwrap().permissions();
        mode.set_readonly(true);
        std::fs::set_permissions(&db, mode.clone()).unwrap();
        let (status, body) = get(&observer, "/health").await;
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("not writable"), "{body}");
        #[allow(clippy::permissions_set_readonly_false)]
        mode.set_readonly(false);
        std::fs::set_permissions(&db, mode).unwrap();
        assert_eq!(get(&observer, "/health").await.0, 200);

        // Stopped: unhealthy.
        let observer_after = server.observer();
        server.stop().await;
        assert!(observer_after.health().await.is_err());
    });
}

/// A ClientHello of a client that speaks only TLS 1.0 (as 7900-series
/// phones do): record and handshake version 3.1, AES128-SHA, no
/// extensions.
fn tls10_client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x01];
    body.extend_from_slice(&[0x42; 32]); // random
    body.push(0); // no session id
    body.extend_from_slice(&[0x00, 0x02, 0x00, 0x2f]); // AES128-SHA
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    let mut handshake = vec![0x01, 0x00, 0x00, body.len() as u8];
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01, 0x00, handshake.len() as u8];
    record.extend_from_slice(&handshake);
    record
}

#[test]
fn a_tls_1_0_client_is_explained_in_one_line() {
    let log = log();
    runtime_test(async {
        let tmp = tempfile::tempdir().unwrap();
        let server = Server::start(tmp.path()).await;
        let start = log.lock().unwrap().len();
        let mut old = TcpStream::connect(&server.addr).await.unwrap();
        // Other tests log too: this client's lines name its port.
        let peer = format!("peer={}", old.local_addr().unwrap());
        old.write_all(&tls10_client_hello()).await.unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), old.read_to_end(&mut answer)).await;
        // An alert, then the close.
        assert_eq!(answer.first(), Some(&0x15), "{answer:?}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let text = String::from_utf8_lossy(&log.lock().unwrap()[start..]).into_owned();
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| l.contains(&peer) && l.contains("TLS handshake"))
                .collect();
            if let Some(line) = lines.first() {
                assert_eq!(lines.len(), 1, "{text}");
                assert!(line.contains("no protocol version in common"), "{line}");
                assert!(line.contains("--legacy-listen"), "{line}");
                assert!(line.contains("127.0.0.1"), "the peer address: {line}");
                assert!(line.contains("WARN") || line.contains("INFO"), "{line}");
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no line explains the failed handshake:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server.stop().await;
    });
}

/// The same with a real TLS 1.0 stack (OpenSSL, as a 7900-series phone).
#[cfg(feature = "legacy-tls")]
#[test]
fn an_openssl_tls_1_0_phone_is_explained_too() {
    let log = log();
    runtime_test(async {
        let tmp = tempfile::tempdir().unwrap();
        let server = Server::start(tmp.path()).await;
        let start = log.lock().unwrap().len();
        let phone = capf_server::PhoneClient::legacy(vec![server.capf_certificate.clone()]);
        let run = phone
            .run(
                &server.addr,
                PhoneConfig::new("SEP000000005601", auth_string("1234")),
            )
            .await;
        assert!(
            run.is_err(),
            "a TLS 1.0 phone cannot connect to the default listener"
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let text = String::from_utf8_lossy(&log.lock().unwrap()[start..]).into_owned();
            if text.contains("no protocol version in common") {
                assert!(text.contains("--legacy-listen"), "{text}");
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{text}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server.stop().await;
    });
}
