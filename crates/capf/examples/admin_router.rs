//! The operator REST API mounted in an application of one's own: an axum
//! `Router` with the application's own route (`GET /`) and, beside it,
//! `capf::admin::router` over a SQLite store (in memory here; a file with
//! `SqliteStore::open`) and a CAPF certificate. It serves on 127.0.0.1
//! (an ephemeral port), asks itself a few questions as a client would,
//! and stops.
//!
//! ```sh
//! cargo run -p capf --example admin_router
//! ```
//!
//! Plain HTTP on the loopback only for the example: a real application
//! serves it over HTTPS (or behind a TLS reverse proxy) and keeps
//! `AdminOptions::secure_cookie` on.

use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::routing::get;
use capf::admin::{AdminOptions, AdminState, AdminStore, password};
use capf::ca::{CapfIdentity, EcCurve, IdentityParams, KeySpec};
use capf::operations::{Account, AccountName, AccountStore, Role};
use capf::store::SqliteStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Failure = Box<dyn Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Failure> {
    // The embedder's CAPF: its identity (normally loaded from disk, e.g.
    // `CapfIdentity::load`) and its device store.
    let identity = CapfIdentity::generate(
        &IdentityParams {
            key: KeySpec::Ec(EcCurve::P256),
            ..IdentityParams::default()
        },
        SystemTime::now(),
    )?;
    let store = Arc::new(SqliteStore::open_in_memory()?);

    // The first operator account (what `capf admin user add` does).
    let now = SystemTime::now();
    store.add_account(&Account {
        name: AccountName::parse("ada")?,
        role: Role::Admin,
        password_hash: password::hash("example-password")?,
        created_at: now,
        password_changed_at: now,
    })?;

    // The admin API's state and router, merged into the application's.
    let state = AdminState::with_options(
        Arc::clone(&store) as Arc<dyn AdminStore>,
        identity.certificate().der(),
        Arc::new(SystemTime::now),
        AdminOptions {
            secure_cookie: false,
            ..AdminOptions::default()
        },
    )?;
    let app = Router::new()
        .route("/", get(|| async { "the embedder's own page\n" }))
        .merge(capf::admin::router(state));

    // Serve, with the client's address for per-address login throttling.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    println!("serving on http://{addr}/ (the API under /api/v1/)");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = stopped.await;
        })
        .await
    });

    // A client: the application's route, the API's health check, a login
    // and the device list.
    let (status, _, body) = request(addr, "GET", "/", &[], None).await?;
    println!("GET /                 -> {status} {}", body.trim());
    let (status, _, body) = request(addr, "GET", "/api/v1/health", &[], None).await?;
    println!("GET /api/v1/health   -> {status} {body}");
    let (status, _, _) = request(addr, "GET", "/api/v1/devices", &[], None).await?;
    println!("GET /api/v1/devices  -> {status} (no session yet)");
    let login = r#"{"name": "ada", "password": "example-password"}"#;
    let (status, headers, body) = request(addr, "POST", "/api/v1/login", &[], Some(login)).await?;
    println!("POST /api/v1/login   -> {status}");
    let cookie = headers
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("set-cookie").then(|| {
                value
                    .trim()
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
        })
        .ok_or("the login set no cookie")?;
    let reply: serde_json::Value = serde_json::from_str(&body)?;
    let csrf = reply["csrf_token"]
        .as_str()
        .ok_or("the login answered no CSRF token")?
        .to_owned();
    let (status, _, body) = request(
        addr,
        "GET",
        "/api/v1/devices",
        &[("cookie", &cookie), (capf::admin::CSRF_HEADER, &csrf)],
        None,
    )
    .await?;
    println!("GET /api/v1/devices  -> {status} {body}");

    let _ = stop.send(());
    server.await??;
    println!("stopped");
    Ok(())
}

/// One HTTP/1.1 request on a fresh connection; the status, the header
/// block and the body.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<(u16, String, String), Failure> {
    let mut tcp = TcpStream::connect(addr).await?;
    let mut text = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    let body = body.unwrap_or_default();
    if !body.is_empty() {
        text.push_str("content-type: application/json\r\n");
    }
    text.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    tcp.write_all(text.as_bytes()).await?;
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").ok_or("no HTTP answer")?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no HTTP status")?;
    Ok((status, head.to_owned(), body.to_owned()))
}
