//! A throwaway admin API to try the OpenAPI document against by hand:
//! plain HTTP on 127.0.0.1 (an ephemeral port, or the one given), a SQLite
//! store in a temporary directory, a fresh CAPF certificate and an admin
//! API token, both printed at start. Ctrl-C stops it and removes the
//! directory. (`cargo test` runs the same with schemathesis in
//! `tests/schemathesis.rs`.)
//!
//! ```sh
//! cargo run -p capf-admin --example openapi_server -- [PORT]
//! st run http://127.0.0.1:PORT/api/v1/openapi.json -H "Authorization: Bearer TOKEN"
//! ```

use std::sync::Arc;
use std::time::SystemTime;

use capf_admin::{AdminOptions, AdminState};
use capf_ca::{CapfIdentity, EcCurve, IdentityParams, KeySpec};
use capf_operations::{AccountStore, Role};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = match std::env::args().nth(1) {
        Some(p) => p.parse()?,
        None => 0,
    };
    let dir = tempfile::tempdir()?;
    let store = capf_store::SqliteStore::open(dir.path().join("capf.sqlite3"))?;
    let now = SystemTime::now();
    let minted = capf_admin::token::mint("openapi example", Role::Admin, None, now)?;
    store.add_token(&minted.record)?;
    let identity = CapfIdentity::generate(
        &IdentityParams {
            key: KeySpec::Ec(EcCurve::P256),
            ..IdentityParams::default()
        },
        now,
    )?;
    let state = AdminState::with_options(
        Arc::new(store),
        identity.certificate().der(),
        Arc::new(SystemTime::now),
        AdminOptions {
            // Plain HTTP on the loopback: a browser would drop a Secure
            // cookie.
            secure_cookie: false,
            ..AdminOptions::default()
        },
    )?;
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    println!("document: http://{addr}/api/v1/openapi.json");
    println!("port: {}", addr.port());
    println!("admin token: {}", minted.presented);
    capf_admin::serve(listener, None, capf_admin::router(state), async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
