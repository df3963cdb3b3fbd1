//! A real admin API over HTTPS on 127.0.0.1 (ephemeral port): a server
//! certificate for `localhost` issued by a fresh CAPF identity, a
//! MemoryStore with one account per role and a token per role, a clock
//! the test moves, and a small HTTPS client pinned to that certificate.
//! Every log line the crate writes is captured, to check that no secret
//! reaches it.
#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use axum::http::{HeaderMap, Method, StatusCode, header};
use capf_admin::{AdminOptions, AdminState, AdminStore, ThrottleOptions, password, token};
use capf_ca::{
    CaCertificate, CapfIdentity, EcCurve, IdentityParams, KeySpec, LscProfile, PrivateKey,
};
use capf_operations::{Account, AccountName, MemoryStore, Role};
use http_body_util::{BodyExt, Full};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_rustls::TlsConnector;

/// Longest one test may run.
pub const TEST_LIMIT: Duration = Duration::from_secs(120);

/// Passwords of the three accounts.
pub const ADMIN_PASSWORD: &str = "admin-pass-0815";
pub const HELPDESK_PASSWORD: &str = "helpdesk-pass-4711";
pub const READER_PASSWORD: &str = "reader-pass-1234";

/// Everything the crate logged, across the tests of this binary.
static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = Capture(Arc::clone(&buffer));
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init();
        buffer
    });
}

/// The captured log so far.
pub fn logs() -> String {
    LOGS.get()
        .map(|b| String::from_utf8_lossy(&b.lock().unwrap()).into_owned())
        .unwrap_or_default()
}

/// A running admin API.
pub struct Api {
    pub addr: SocketAddr,
    pub store: Arc<dyn AdminStore>,
    pub ca: CaCertificate,
    connector: TlsConnector,
    clock: Arc<AtomicU64>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// Token per role: read-only, helpdesk, admin.
    pub tokens: Vec<String>,
    /// Plain HTTP (loopback only) instead of HTTPS.
    plain: bool,
}

/// Start of the test clock (seconds after the epoch): 2026-12-01.
const T0: u64 = 1_796_083_200;

impl Api {
    /// Starts a server with these throttle limits and a 10-minute idle
    /// timeout.
    pub async fn start(throttle: ThrottleOptions) -> Api {
        Self::start_with(Arc::new(MemoryStore::new()), throttle, false).await
    }

    /// Starts a server over a store of one's own.
    pub async fn start_on(store: Arc<dyn AdminStore>) -> Api {
        Self::start_with(store, ThrottleOptions::default(), false).await
    }

    /// Starts a server over plain HTTP on the loopback, its cookie without
    /// `Secure` (as a browser on the same host needs it).
    pub async fn start_plain() -> Api {
        Self::start_with(
            Arc::new(MemoryStore::new()),
            ThrottleOptions::default(),
            true,
        )
        .await
    }

    /// Starts a server over plain HTTP on the loopback over a store of
    /// one's own (the OpenAPI tests: schemathesis talks plain HTTP).
    pub async fn start_plain_on(store: Arc<dyn AdminStore>) -> Api {
        Self::start_with(store, ThrottleOptions::default(), true).await
    }

    /// Starts a server behind a reverse proxy at 127.0.0.1 (where every
    /// test client connects from): it trusts that address's
    /// `X-Forwarded-For`.
    pub async fn start_behind_proxy(throttle: ThrottleOptions) -> Api {
        let proxy = std::net::IpAddr::from([127, 0, 0, 1]);
        Self::start_with_proxies(Arc::new(MemoryStore::new()), throttle, false, vec![proxy]).await
    }

    async fn start_with(store: Arc<dyn AdminStore>, throttle: ThrottleOptions, plain: bool) -> Api {
        Self::start_with_proxies(store, throttle, plain, Vec::new()).await
    }

    async fn start_with_proxies(
        store: Arc<dyn AdminStore>,
        throttle: ThrottleOptions,
        plain: bool,
        trusted_proxies: Vec<std::net::IpAddr>,
    ) -> Api {
        capture_logs();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(T0);
        let identity = CapfIdentity::generate(
            &IdentityParams {
                key: KeySpec::Ec(EcCurve::P256),
                ..IdentityParams::default()
            },
            SystemTime::now(),
        )
        .unwrap();
        let issuer = identity.issuer().unwrap();
        let server_key = PrivateKey::generate(KeySpec::Ec(EcCurve::P256)).unwrap();
        let leaf = issuer
            .issue_lsc(
                "localhost",
                &server_key.public_key_der().unwrap(),
                &LscProfile::default(),
                SystemTime::now(),
            )
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server_config = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![
                    CertificateDer::from(leaf.der.clone()),
                    CertificateDer::from(identity.certificate().der().to_vec()),
                ],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.to_pkcs8_der().unwrap())),
            )
            .unwrap();
        let pinned = CaCertificate::from_der(&leaf.der, "admin server").unwrap();
        let client_config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(capf_server::pinned_capf_verifier(
                &[pinned],
                &provider,
            ))
            .with_no_client_auth();

        for (name, role, pw) in [
            ("ada", Role::Admin, ADMIN_PASSWORD),
            ("hal", Role::Helpdesk, HELPDESK_PASSWORD),
            ("rob", Role::ReadOnly, READER_PASSWORD),
        ] {
            store
                .add_account(&Account {
                    name: AccountName::parse(name).unwrap(),
                    role,
                    password_hash: password::hash(pw).unwrap(),
                    created_at: now,
                    password_changed_at: now,
                })
                .unwrap();
        }
        let mut tokens = Vec::new();
        for role in Role::ALL {
            let minted = token::mint(&format!("{role} script"), role, None, now).unwrap();
            store.add_token(&minted.record).unwrap();
            tokens.push(minted.presented);
        }

        let clock = Arc::new(AtomicU64::new(T0));
        let reading = Arc::clone(&clock);
        let state = AdminState::with_options(
            Arc::clone(&store),
            identity.certificate().der(),
            Arc::new(move || {
                SystemTime::UNIX_EPOCH + Duration::from_secs(reading.load(Ordering::SeqCst))
            }),
            AdminOptions {
                idle_timeout: Duration::from_secs(600),
                throttle,
                secure_cookie: !plain,
                trusted_proxies,
            },
        )
        .unwrap()
        .with_parameters(Arc::new(capf_admin::MemoryParameters::default()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            capf_admin::serve(
                listener,
                (!plain).then(|| Arc::new(server_config)),
                capf_admin::router(state),
                async {
                    let _ = stopped.await;
                },
            )
            .await
            .unwrap();
        });
        Api {
            addr,
            store,
            ca: identity.certificate().clone(),
            connector: TlsConnector::from(Arc::new(client_config)),
            clock,
            stop: Some(stop),
            task: Some(task),
            tokens,
            plain,
        }
    }

    /// Moves the server's clock forward.
    pub fn advance(&self, by: Duration) {
        self.clock.fetch_add(by.as_secs(), Ordering::SeqCst);
    }

    /// The server's current time.
    pub fn now(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(self.clock.load(Ordering::SeqCst))
    }

    /// The token of a role.
    pub fn token(&self, role: Role) -> &str {
        let i = Role::ALL.iter().position(|r| *r == role).unwrap();
        &self.tokens[i]
    }

    /// One request over a fresh HTTPS connection.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<serde_json::Value>,
    ) -> Reply {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        let mut sender = if self.plain {
            let (sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                    .await
                    .unwrap();
            tokio::spawn(conn);
            sender
        } else {
            let tls = self
                .connector
                .connect(ServerName::try_from("localhost").unwrap(), tcp)
                .await
                .unwrap();
            let (sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                    .await
                    .unwrap();
            tokio::spawn(conn);
            sender
        };
        let mut builder = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "localhost");
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let bytes = match &body {
            Some(v) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
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

    /// Logs in; the session's cookie and CSRF token, or the refusal.
    pub async fn login(&self, name: &str, password: &str) -> Result<Session, Reply> {
        let reply = self
            .request(
                Method::POST,
                "/api/v1/login",
                &[],
                Some(serde_json::json!({"name": name, "password": password})),
            )
            .await;
        if reply.status != StatusCode::OK {
            return Err(reply);
        }
        let set_cookie = reply.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .to_owned();
        let cookie = set_cookie.split(';').next().unwrap().to_owned();
        let csrf = reply.json()["csrf_token"].as_str().unwrap().to_owned();
        Ok(Session {
            cookie,
            csrf,
            set_cookie,
        })
    }

    /// Logs in as the account of a role.
    pub async fn login_as(&self, role: Role) -> Session {
        let (name, pw) = match role {
            Role::Admin => ("ada", ADMIN_PASSWORD),
            Role::Helpdesk => ("hal", HELPDESK_PASSWORD),
            Role::ReadOnly => ("rob", READER_PASSWORD),
        };
        self.login(name, pw).await.unwrap()
    }

    /// Stops the server.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .unwrap()
                .unwrap();
        }
    }
}

/// A logged-in browser.
#[derive(Clone, Debug)]
pub struct Session {
    /// `capf_session=<id>`.
    pub cookie: String,
    /// The CSRF token.
    pub csrf: String,
    /// The whole Set-Cookie header of the login.
    pub set_cookie: String,
}

impl Session {
    /// The session id alone.
    pub fn id(&self) -> &str {
        self.cookie.split_once('=').unwrap().1
    }
}

/// An answer.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}
