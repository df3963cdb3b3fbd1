//! `capf serve`: run the CAPF server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use capf_ca::IdentityParams;
use capf_operations::{DeviceStore, ServerConfig};
use capf_server::{CapfServer, ServerOptions};
use clap::Args;

use crate::data_dir::DataDir;
use crate::{Failure, Outcome};

/// Arguments of `capf serve`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    capf serve                                   listen on 0.0.0.0:3804\n  \
    capf serve --listen [::]:3804 --listen 0.0.0.0:3804\n  \
    capf serve --listen 127.0.0.1:0              an ephemeral port (printed at start)\n  \
    capf serve --legacy-listen 0.0.0.0:3805      also TLS 1.0 for 7900-series phones (legacy-tls builds)\n  \
    RUST_LOG=debug capf serve                    more detail in the log\n\n\
    Service parameters (capf params show) are read at start: restart to apply changes.")]
pub(crate) struct ServeArgs {
    /// Address to listen on (repeat for several; IPv4 and IPv6).
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:3804")]
    listen: Vec<SocketAddr>,
    /// Most CAPF sessions at once; more wait, then are refused.
    #[arg(long, default_value_t = 256, value_name = "N")]
    max_sessions: usize,
    /// Most certificates being signed at once. Default: number of CPUs.
    #[arg(long, value_name = "N")]
    max_issuing: Option<usize>,
    /// Also listen here with legacy TLS (TLS 1.0-1.2, CBC and static-RSA suites)
    /// for 7900-series phones. Needs a build with the legacy-tls feature.
    #[arg(long, value_name = "ADDR:PORT")]
    legacy_listen: Vec<SocketAddr>,
    /// TLS for the --listen addresses: modern (rustls, TLS 1.2/1.3) or legacy
    /// (OpenSSL, TLS 1.0-1.2, for 7900-series phones; legacy-tls builds only).
    #[arg(long, value_name = "KIND", default_value = "modern", value_parser = ["modern", "legacy"])]
    tls: String,
    /// Most connections from one IP address at once (handshaking or in
    /// session); more are closed at once. Phones behind one NAT address
    /// share it.
    #[arg(long, default_value_t = 256, value_name = "N")]
    max_per_address: usize,
    /// Seconds a client has to complete its TLS handshake.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    handshake_timeout: u64,
}

pub(crate) fn run(data: &DataDir, args: ServeArgs) -> Result<Outcome, Failure> {
    init_logging();
    if !data.is_initialised() {
        // The first start creates the CAPF identity without operator action.
        let report = data.init(&IdentityParams::default(), SystemTime::now())?;
        println!(
            "initialised {} ({})",
            data.root().display(),
            report.identity.certificate().subject()
        );
    }
    // One server per data directory; then any lease in the database was
    // left by a server that died, and must not keep its devices busy.
    let _lock = data.lock_exclusive()?;
    let identity = data.identity()?;
    let issuer = data.issuer(&identity)?;
    let trust = data.trust_store(&issuer)?;
    let store = data.open_store()?;
    let stale = store.clear_stale_leases()?;
    if stale > 0 {
        tracing::warn!(
            "dropped {stale} device lease(s) left by a server that did not stop cleanly"
        );
    }
    let params = store.load_parameters()?;
    let store: Arc<dyn DeviceStore> = Arc::new(store);
    let (listen, mut legacy_listen) = if args.tls == "legacy" {
        (Vec::new(), args.listen)
    } else {
        (args.listen, Vec::new())
    };
    legacy_listen.extend(args.legacy_listen);
    let mut options = ServerOptions {
        listen,
        legacy_listen,
        max_sessions: args.max_sessions,
        max_per_address: args.max_per_address,
        handshake_timeout: Duration::from_secs(args.handshake_timeout),
        trace_dir: Some(data.path(DataDir::TRACES)),
        ..ServerOptions::default()
    };
    if let Some(n) = args.max_issuing {
        options.max_issuing = n;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // Handlers first: a signal that comes as soon as we say we listen
        // must still stop the server gracefully.
        let shutdown = shutdown_signal()?;
        let server = CapfServer::bind(
            &identity,
            issuer,
            store,
            ServerConfig::new(params, trust),
            options,
        )
        .await?;
        for (addr, legacy) in server.listening() {
            if legacy {
                println!("listening on {addr} (legacy TLS 1.0-1.2)");
            } else {
                println!("listening on {addr}");
            }
        }
        println!(
            "CAPF certificate {} ({})",
            data.path(capf_ca::CERT_FILE).display(),
            identity.certificate().subject()
        );
        server.run(shutdown).await?;
        println!("stopped");
        Ok::<_, Failure>(Outcome::Done)
    })
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Registers the SIGINT and SIGTERM handlers now and returns the future
/// that completes when either arrives.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, Failure> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
