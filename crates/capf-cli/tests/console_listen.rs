//! `capf serve --admin-listen`: the operator console's REST API beside the
//! CAPF listener, on the same devices and accounts, over HTTPS with a
//! certificate the CAPF CA issues (trusted through capf.pem alone, for
//! 127.0.0.1), kept for the next start; plain HTTP only on a loopback
//! address; stopping with the server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use capf_ca::{
    CaCertificate, CapfIdentity, EcCurve, IdentityParams, KeySpec, ServerCertProfile,
    ServerCertificate, ServerNames,
};
use common::{Serve, capf};
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use hyper::header::HeaderMap;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const PHONE: &str = "SEP001122334455";
const PASSWORD: &str = "console-pass-0815";
/// Longest any one request may take.
const REQUEST_LIMIT: Duration = Duration::from_secs(30);

/// Runs `capf --data-dir DATA ARGS` with `stdin` as standard input.
fn capf_with_stdin(data: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_capf"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("CAPF_DATA_DIR")
        .env_remove("CAPF_DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that exits before reading its input closes the pipe; its
    // exit status and stderr say why, so a broken pipe is not the failure.
    match child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other.unwrap(),
    }
    child.wait_with_output().unwrap()
}

/// The console's address, from the line `capf serve` logs.
fn console_address(serve: &mut Serve, scheme: &str) -> SocketAddr {
    let marker = format!("operator console (REST API) at {scheme}://");
    let line = serve.wait_for_line(&marker);
    let at = line.find(&marker).unwrap() + marker.len();
    let addr: String = line[at..].chars().take_while(|c| *c != '/').collect();
    addr.parse()
        .unwrap_or_else(|e| panic!("{addr:?} in {line:?}: {e}"))
}

/// The log line that names the console's certificate.
fn certificate_line(log: &str) -> String {
    log.lines()
        .find(|l| l.contains("operator console uses a certificate issued by the CAPF CA"))
        .unwrap_or_else(|| panic!("no certificate line in the log:\n{log}"))
        .to_owned()
}

/// A client that trusts the CAPF certificate (capf.pem) as its only root
/// and checks the console's name as usual (here the IP address
/// 127.0.0.1), or none for plain HTTP.
struct Client {
    addr: SocketAddr,
    tls: Option<TlsConnector>,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

impl Client {
    fn https(addr: SocketAddr, data: &Path) -> Client {
        let pem = std::fs::read_to_string(data.join(capf_ca::CERT_FILE)).unwrap();
        let capf = CaCertificate::from_pem(&pem, "CAPF certificate").unwrap();
        Self::https_trusting(addr, &capf)
    }

    /// A client whose only root is `root`.
    fn https_trusting(addr: SocketAddr, root: &CaCertificate) -> Client {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(root.der().to_vec()))
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Client {
            addr,
            tls: Some(TlsConnector::from(Arc::new(config))),
        }
    }

    fn plain(addr: SocketAddr) -> Client {
        Client { addr, tls: None }
    }

    async fn request(
        &self,
        method: hyper::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<serde_json::Value>,
    ) -> Reply {
        tokio::time::timeout(REQUEST_LIMIT, self.request_now(method, path, headers, body))
            .await
            .expect("the console did not answer in time")
    }

    async fn request_now(
        &self,
        method: hyper::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<serde_json::Value>,
    ) -> Reply {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        let mut sender = match &self.tls {
            Some(connector) => {
                // The name checked against the certificate: its IP address.
                let name = ServerName::IpAddress(self.addr.ip().into());
                let tls = connector.connect(name, tcp).await.unwrap();
                let (sender, conn) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                        .await
                        .unwrap();
                tokio::spawn(conn);
                sender
            }
            None => {
                let (sender, conn) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                        .await
                        .unwrap();
                tokio::spawn(conn);
                sender
            }
        };
        let mut builder = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, self.addr.to_string());
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let bytes = match &body {
            Some(v) => {
                builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
                serde_json::to_vec(v).unwrap()
            }
            None => Vec::new(),
        };
        let request = builder.body(Full::new(bytes::Bytes::from(bytes))).unwrap();
        let response = sender.send_request(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// Logs in: the session cookie (`capf_session=...`) and CSRF token.
    async fn login(&self, name: &str, password: &str) -> (String, String) {
        let reply = self
            .request(
                hyper::Method::POST,
                "/api/v1/login",
                &[],
                Some(serde_json::json!({"name": name, "password": password})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let set_cookie = reply.headers[hyper::header::SET_COOKIE]
            .to_str()
            .unwrap()
            .to_owned();
        let cookie = set_cookie.split(';').next().unwrap().to_owned();
        assert!(
            cookie.starts_with(&format!("{}=", capf_admin::SESSION_COOKIE)),
            "{set_cookie}"
        );
        let csrf = reply.json()["csrf_token"].as_str().unwrap().to_owned();
        (cookie, csrf)
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn console_over_https_with_a_certificate_from_the_capf_ca() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--admin-name",
        "capf.example.org",
    ];
    let mut serve = Serve::start_with(&data, dir.path().join("serve.log"), &args);
    let addr = console_address(&mut serve, "https");
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 0);

    // The certificate: issued by the CAPF CA for 127.0.0.1 and the
    // names asked for, its key private, its fingerprint in the log.
    let issued = CaCertificate::from_pem(
        &std::fs::read_to_string(data.join("admin-cert.pem")).unwrap(),
        "console certificate",
    )
    .unwrap();
    let capf_pem = std::fs::read_to_string(data.join(capf_ca::CERT_FILE)).unwrap();
    let capf_cert = CaCertificate::from_pem(&capf_pem, "CAPF").unwrap();
    assert_eq!(issued.issuer(), capf_cert.subject());
    let names = capf_ca::subject_alt_names(&issued);
    assert!(
        names.ip_addresses().contains(&"127.0.0.1".parse().unwrap()),
        "{names}"
    );
    assert!(
        names.dns_names().iter().any(|n| n == "capf.example.org"),
        "{names}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("admin-key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let line = certificate_line(&serve.log());
    assert!(line.contains(" INFO "), "{line}");
    assert!(
        line.contains(&issued.fingerprint_sha256_hex()),
        "fingerprint in {line}"
    );
    assert!(line.contains("new, saved in"), "{line}");

    // The first admin, a device and a token, from the command line while
    // the server runs: the console sees the same database.
    let out = capf_with_stdin(
        &data,
        &[
            "admin",
            "user",
            "add",
            "ada",
            "--role",
            "admin",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    capf(&data, &["device", "add", PHONE, "--description", "lobby"]);
    let out = capf(
        &data,
        &[
            "admin",
            "token",
            "create",
            "--name",
            "nightly",
            "--role",
            "read-only",
            "--json",
        ],
    );
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = created["token"].as_str().unwrap().to_owned();

    let client = Client::https(addr, &data);
    runtime().block_on(async {
        let health = client
            .request(hyper::Method::GET, "/api/v1/health", &[], None)
            .await;
        assert_eq!(health.status, StatusCode::OK, "{}", health.body);
        assert_eq!(health.json()["status"], "ok");

        let anonymous = client
            .request(hyper::Method::GET, "/api/v1/devices", &[], None)
            .await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

        let (cookie, csrf) = client.login("ada", PASSWORD).await;
        let devices = client
            .request(
                hyper::Method::GET,
                "/api/v1/devices",
                &[("cookie", &cookie), (capf_admin::CSRF_HEADER, &csrf)],
                None,
            )
            .await;
        assert_eq!(devices.status, StatusCode::OK, "{}", devices.body);
        let page = devices.json();
        assert_eq!(page["total"], 1, "{page}");
        assert_eq!(page["devices"][0]["name"], PHONE, "{page}");

        let bearer = format!("Bearer {token}");
        let with_token = client
            .request(
                hyper::Method::GET,
                &format!("/api/v1/devices/{PHONE}"),
                &[("authorization", &bearer)],
                None,
            )
            .await;
        assert_eq!(with_token.status, StatusCode::OK, "{}", with_token.body);
        assert_eq!(with_token.json()["name"], PHONE);
    });

    // The password and the token never reach the log.
    let log = serve.log();
    assert!(!log.contains(PASSWORD));
    assert!(!log.contains(&token));

    // It stops with the server.
    let (status, lines) = serve.sigterm();
    assert!(status.success(), "{status:?}: {lines:?}");
    assert!(lines.iter().any(|l| l.contains("stopped")), "{lines:?}");
    assert!(
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err(),
        "the console still accepts connections after the server stopped"
    );

    // The next start keeps the certificate (same names, still valid).
    let mut again = Serve::start_with(&data, dir.path().join("again.log"), &args);
    let addr = console_address(&mut again, "https");
    let line = certificate_line(&again.log());
    assert!(line.contains("kept in"), "{line}");
    assert!(line.contains(&issued.fingerprint_sha256_hex()), "{line}");
    let client = Client::https(addr, &data);
    runtime().block_on(async {
        let health = client
            .request(hyper::Method::GET, "/api/v1/health", &[], None)
            .await;
        assert_eq!(health.status, StatusCode::OK);
    });
    let (status, _) = again.sigterm();
    assert!(status.success());

    // Other names: a new certificate.
    let mut other = Serve::start_with(
        &data,
        dir.path().join("other.log"),
        &["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"],
    );
    console_address(&mut other, "https");
    let line = certificate_line(&other.log());
    assert!(line.contains("new, saved in"), "{line}");
    assert!(!line.contains(&issued.fingerprint_sha256_hex()), "{line}");
    assert!(
        other.log().contains("it is for other names"),
        "{}",
        other.log()
    );
    other.sigterm();
}

#[test]
fn plain_http_only_on_a_loopback_address() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for addr in ["0.0.0.0:0", "192.0.2.10:8080", "[::]:0"] {
        let out = Command::new(env!("CARGO_BIN_EXE_capf"))
            .arg("--data-dir")
            .arg(&data)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                addr,
                "--admin-plain-http",
            ])
            .env_remove("CAPF_DATA_DIR")
            .env_remove("CAPF_DATABASE_URL")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{addr}: {stderr}");
        assert!(stderr.contains("not a loopback address"), "{stderr}");
        assert!(!data.exists(), "nothing is created for a refused start");
    }

    // On the loopback, plain HTTP works (and no certificate is made).
    let mut serve = Serve::start_with(
        &data,
        dir.path().join("serve.log"),
        &[
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--admin-plain-http",
        ],
    );
    let addr = console_address(&mut serve, "http");
    let client = Client::plain(addr);
    runtime().block_on(async {
        let health = client
            .request(hyper::Method::GET, "/api/v1/health", &[], None)
            .await;
        assert_eq!(health.status, StatusCode::OK, "{}", health.body);
        let anonymous = client
            .request(hyper::Method::GET, "/api/v1/devices", &[], None)
            .await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    });
    assert!(!data.join("admin-cert.pem").exists());
    let (status, _) = serve.sigterm();
    assert!(status.success());
}

#[test]
fn behind_a_trusted_proxy_clients_are_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut serve = Serve::start_with(
        &data,
        dir.path().join("serve.log"),
        &[
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--admin-plain-http",
            "--admin-trusted-proxy",
            "127.0.0.1",
        ],
    );
    let addr = console_address(&mut serve, "http");
    let out = capf_with_stdin(
        &data,
        &[
            "admin",
            "user",
            "add",
            "ada",
            "--role",
            "admin",
            "--password-stdin",
        ],
        "ada-password-1234\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let client = Client::plain(addr);
    runtime().block_on(async {
        let login = |from: &'static str, password: &'static str| {
            let client = &client;
            async move {
                client
                    .request(
                        hyper::Method::POST,
                        "/api/v1/login",
                        &[("x-forwarded-for", from)],
                        Some(serde_json::json!({"name": "ada", "password": password})),
                    )
                    .await
            }
        };
        // Five failed logins (the default limit) from one client behind
        // the proxy, for an unknown name: they lock that client's address.
        for _ in 0..5 {
            let r = client
                .request(
                    hyper::Method::POST,
                    "/api/v1/login",
                    &[("x-forwarded-for", "192.0.2.1")],
                    Some(serde_json::json!({"name": "nobody", "password": "wrong-password"})),
                )
                .await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
        }
        let locked = login("192.0.2.1", "ada-password-1234").await;
        assert_eq!(
            locked.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{}",
            locked.body
        );
        // Another client behind the same proxy logs in; its cookie is
        // Secure (browsers reach the proxy over HTTPS).
        let other = login("192.0.2.2", "ada-password-1234").await;
        assert_eq!(other.status, StatusCode::OK, "{}", other.body);
        let cookie = other.headers[hyper::header::SET_COOKIE].to_str().unwrap();
        assert!(cookie.contains("Secure"), "{cookie}");
        // The console serves the data directory's service parameters.
        let session = cookie.split(';').next().unwrap();
        let params = client
            .request(
                hyper::Method::GET,
                "/api/v1/parameters",
                &[("cookie", session)],
                None,
            )
            .await;
        assert_eq!(params.status, StatusCode::OK, "{}", params.body);
        assert!(
            params.body.contains("lsc_validity_years"),
            "{}",
            params.body
        );
    });
    let log = serve.sigterm().1.join("\n");
    assert!(
        log.contains("192.0.2.1"),
        "the log names the client, not the proxy: {log}"
    );
}

#[test]
fn console_with_a_certificate_of_ones_own() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The operator's own CA and a certificate for 127.0.0.1, in one PEM
    // file: the key first, then the certificate and the CA above it.
    let own_ca = CapfIdentity::generate(
        &IdentityParams {
            key: KeySpec::Ec(EcCurve::P256),
            ..IdentityParams::default()
        },
        SystemTime::now(),
    )
    .unwrap();
    let mut names = ServerNames::new();
    names.add("127.0.0.1").unwrap();
    let own = ServerCertificate::issue(
        &own_ca.issuer().unwrap(),
        &names,
        &ServerCertProfile::default(),
        SystemTime::now(),
    )
    .unwrap();
    let file = dir.path().join("console.pem");
    std::fs::write(
        &file,
        format!(
            "{}{}",
            own.private_key().to_pkcs8_pem().unwrap(),
            own.chain_pem()
        ),
    )
    .unwrap();

    let file_arg = file.to_str().unwrap();
    let mut serve = Serve::start_with(
        &data,
        dir.path().join("serve.log"),
        &[
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--admin-cert",
            file_arg,
        ],
    );
    let addr = console_address(&mut serve, "https");
    let log = serve.log();
    assert!(
        log.contains(&format!("operator console uses the certificate {file_arg}")),
        "{log}"
    );
    assert!(
        log.contains(&own.certificate().fingerprint_sha256_hex()),
        "{log}"
    );
    assert!(!data.join("admin-cert.pem").exists(), "nothing issued");
    runtime().block_on(async {
        // Trusted through the operator's CA...
        let client = Client::https_trusting(addr, own_ca.certificate());
        let health = client
            .request(hyper::Method::GET, "/api/v1/health", &[], None)
            .await;
        assert_eq!(health.status, StatusCode::OK, "{}", health.body);
        // ... and not through the CAPF certificate.
        let capf = Client::https(addr, &data);
        let tcp = TcpStream::connect(addr).await.unwrap();
        let refused = capf
            .tls
            .as_ref()
            .unwrap()
            .connect(ServerName::IpAddress(addr.ip().into()), tcp)
            .await;
        assert!(refused.is_err(), "a certificate the CAPF CA did not issue");
    });
    let (status, _) = serve.sigterm();
    assert!(status.success());

    // A file without a key: the server does not start, and says why.
    std::fs::write(&file, own.chain_pem()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_capf"))
        .arg("--data-dir")
        .arg(&data)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--admin-cert",
            file_arg,
        ])
        .env_remove("CAPF_DATA_DIR")
        .env_remove("CAPF_DATABASE_URL")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(file_arg) && stderr.contains("no private key"),
        "{stderr}"
    );
}
