//! `capf serve`: run the CAPF server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use capf_ca::IdentityParams;
use capf_operations::ServerConfig;
use capf_server::{CapfServer, ServerOptions};
use clap::{Args, ValueEnum};
use tracing::info;

use crate::data_dir::DataDir;
use crate::{Failure, Outcome};

/// Arguments of `capf serve`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    capf serve                                   listen on 0.0.0.0:3804\n  \
    capf serve --listen [::]:3804 --listen 0.0.0.0:3804\n  \
    capf serve --listen 127.0.0.1:0              an ephemeral port (printed at start)\n  \
    capf serve --legacy-listen 0.0.0.0:3805      also TLS 1.0 for 7900-series phones (legacy-tls builds)\n  \
    capf serve --metrics-listen 127.0.0.1:9804   Prometheus metrics and a health check\n  \
    capf serve --log-format json                 one JSON object per log line\n  \
    capf serve --encrypted-config /srv/capf/configs --tftp tftp.pem\n                                                 encrypt phones' configurations for each new LSC\n  \
    RUST_LOG=debug capf serve                    more detail in the log\n\n\
    Service parameters (capf params show) are read at start: restart to apply changes.\n\n\
    When full, the server makes room for new phones: a new connection evicts the oldest one \
    still in its TLS handshake (of its own address first), then the one that has waited \
    longest in session without saying who it is; a phone that authenticated is never \
    evicted. Phones behind one NAT address share --max-per-address: raise it for a large \
    site behind one address.\n\n\
    --encrypted-config DIR: after each install or upgrade, DIR/<device>.cnf.xml (if there \
    is one) is encrypted for the phone's new LSC, as `capf config encrypt --device` does, \
    into DIR/<device>.cnf.xml.enc.sgn and the stub DIR/<device>.cnf.xml.sgn; the log says \
    what was rewritten, or why not. Serve only those two files to phones, never the plain \
    <device>.cnf.xml.\n\n\
    Everything is logged on standard error, with timestamps.")]
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
    /// session); a new one evicts an idle one of the same address, or is
    /// closed. Phones behind one NAT address share it.
    #[arg(long, default_value_t = 64, value_name = "N")]
    max_per_address: usize,
    /// Serve Prometheus metrics (GET /metrics) and a health check
    /// (GET /health: 200, or 503 with the reason) on this address. Off by
    /// default; use a loopback or management address (no authentication).
    #[arg(long, value_name = "ADDR:PORT")]
    metrics_listen: Option<SocketAddr>,
    /// Log format: text (for people) or json (one object per line).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Seconds a client has to complete its TLS handshake.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    handshake_timeout: u64,
    /// Seconds a session holds its device. With several servers on one
    /// database, a device whose server died mid-session can be taken over
    /// by another after this. Default: longer than the longest session the
    /// service parameters allow (key generation included). A session that
    /// outlasts it may lose its device and fail.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    lease_ttl: Option<u64>,
    /// After a phone's LSC is installed or upgraded, encrypt DIR/<device>.cnf.xml
    /// again for it: DIR/<device>.cnf.xml.enc.sgn and its signed stub
    /// DIR/<device>.cnf.xml.sgn, each replaced in one step. Needs --tftp.
    #[arg(long, value_name = "DIR", requires = "tftp")]
    encrypted_config: Option<PathBuf>,
    /// The TFTP key and certificate (one PEM file, RSA) that sign the
    /// --encrypted-config files.
    #[arg(long, value_name = "CERT+KEY", requires = "encrypted_config")]
    tftp: Option<PathBuf>,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Timestamped lines for people.
    Text,
    /// One JSON object per line, for machines.
    Json,
}

pub(crate) fn run(data: &DataDir, args: ServeArgs) -> Result<Outcome, Failure> {
    init_logging(args.log_format);
    if !data.is_initialised() {
        // The first start creates the CAPF identity without operator action.
        let report = data.init(&IdentityParams::default(), SystemTime::now())?;
        info!(
            "initialised {} ({})",
            data.root().display(),
            report.identity.certificate().subject()
        );
    }
    // One server per data directory. With the SQLite file, any lease in
    // the database was left by a server that died, and must not keep its
    // devices busy; a shared database's leases may be other servers'
    // sessions, and lapse on their own.
    let _lock = data.lock_exclusive()?;
    let identity = data.identity()?;
    let issuer = data.issuer(&identity)?;
    let trust = data.trust_store(&issuer)?;
    let store = data.open_database()?;
    if let Some(sqlite) = store.sqlite() {
        let stale = sqlite.clear_stale_leases()?;
        if stale > 0 {
            tracing::warn!(
                "dropped {stale} device lease(s) left by a server that did not stop cleanly"
            );
        }
    } else {
        info!(
            "devices in {} (shared with other servers)",
            store.location()
        );
    }
    let params = store.load_parameters()?;
    let store = Arc::new(store);
    let encrypted_config = match (&args.encrypted_config, &args.tftp) {
        (Some(dir), Some(tftp)) => Some(Arc::new(super::config::EncryptedConfigDir::open(
            dir, tftp,
        )?)),
        _ => None,
    };
    // The last hold on the store is given up here, after the runtime:
    // closing a database client blocks.
    let store_after_runtime = store.clone();
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
    options.lease_ttl = args.lease_ttl.map(Duration::from_secs);
    if let Some(configs) = &encrypted_config {
        info!(
            "encrypting the configuration in {} for each new LSC (signed by TFTP {})",
            configs.dir().display(),
            configs.signer_subject()
        );
        options.on_session_done = Some(configs.clone().hook(store.clone()));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(async move {
        // Handlers first: a signal that comes as soon as we say we listen
        // must still stop the server gracefully.
        let shutdown = shutdown_signal()?;
        let server = CapfServer::bind(
            &identity,
            issuer,
            store.clone() as Arc<dyn capf_operations::SessionStore>,
            ServerConfig::new(params, trust),
            options,
        )
        .await?;
        let observer = server.observer();
        {
            let metrics = observer.metrics();
            store.set_batch_observer(Arc::new(move |size| metrics.store_batch(size)));
        }
        let (stop_observer, observer_stopped) = tokio::sync::oneshot::channel::<()>();
        let mut metrics_at = None;
        let observer_task = match args.metrics_listen {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| Failure::new(format!("cannot listen on {addr}: {e}")))?;
                let bound = listener.local_addr()?;
                metrics_at = Some(bound);
                Some(tokio::spawn(capf_server::serve_observer(
                    listener,
                    observer,
                    async move {
                        let _ = observer_stopped.await;
                    },
                )))
            }
            None => None,
        };
        for (addr, legacy) in server.listening() {
            if legacy {
                info!("listening on {addr} (legacy TLS 1.0-1.2)");
            } else {
                info!("listening on {addr}");
            }
        }
        if let Some(bound) = metrics_at {
            info!("metrics on http://{bound}/metrics, health on http://{bound}/health");
        }
        info!(
            "CAPF certificate {} ({})",
            data.path(capf_ca::CERT_FILE).display(),
            identity.certificate().subject()
        );
        server.run(shutdown).await?;
        let _ = stop_observer.send(());
        if let Some(task) = observer_task {
            let _ = task.await;
        }
        info!("stopped");
        Ok::<_, Failure>(Outcome::Done)
    });
    drop(runtime);
    drop(store_after_runtime);
    outcome
}

/// Everything on standard error, timestamped; `RUST_LOG` chooses what.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
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
