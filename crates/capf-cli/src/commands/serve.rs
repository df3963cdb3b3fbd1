//! `capf serve`: run the CAPF server.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use capf_admin::{AdminOptions, AdminState, AdminStore};
use capf_ca::{
    CapfIdentity, IdentityParams, Issuer, ServerCertProfile, ServerCertificate, ServerNames,
};
use capf_operations::{ServerConfig, time_text};
use capf_server::{CapfServer, ServerOptions};
use clap::{Args, ValueEnum};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::data_dir::DataDir;
use crate::store::Store;
use crate::{Failure, Outcome};

mod settings;

/// Arguments of `capf serve`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    capf serve                                   listen on 0.0.0.0:3804\n  \
    capf serve --listen [::]:3804 --listen 0.0.0.0:3804\n  \
    capf serve --listen 127.0.0.1:0              an ephemeral port (printed at start)\n  \
    capf serve --legacy-listen 0.0.0.0:3805      also TLS 1.0 for 7900-series phones (legacy-tls builds)\n  \
    capf serve --metrics-listen 127.0.0.1:9804   Prometheus metrics and a health check\n  \
    capf serve --log-format json                 one JSON object per log line\n  \
    capf serve --admin-listen 10.0.0.5:8443      the operator console's REST API over HTTPS, with a\n                                                 certificate issued by the CAPF CA for 10.0.0.5\n  \
    capf serve --admin-listen 0.0.0.0:8443 --admin-name capf.example.org --admin-name 10.0.0.5\n                                                 ... for the names and addresses clients use\n  \
    capf serve --admin-listen 0.0.0.0:8443 --admin-cert console.pem\n                                                 ... with a certificate of one's own\n  \
    capf serve --admin-listen 127.0.0.1:8080 --admin-plain-http\n                                                 plain HTTP on the loopback, behind a reverse proxy\n  \
    capf serve --encrypted-config /srv/capf/configs --tftp tftp.pem\n                                                 encrypt phones' configurations for each new LSC\n  \
    RUST_LOG=debug capf serve                    more detail in the log\n  \
    capf serve --print-config                    the settings in effect and where each comes from\n  \
    CAPF_MAX_SESSIONS=512 capf serve --print-config --json\n\n\
    Every flag can also be given as an environment variable (--max-sessions: \
    CAPF_MAX_SESSIONS; a list, e.g. CAPF_LISTEN, separated by commas) or as a key in \
    capf.toml in the data directory (max_sessions = 512; a list as an array). A flag wins \
    over the environment, which wins over the file, which wins over the default. Unknown \
    keys in capf.toml are an error; relative paths in it are relative to the data \
    directory.\n\n\
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
    --admin-listen: the operator console's REST API (under /api/v1/) on its own address, \
    over the same devices and CA; it stops with the server. Create the first account with \
    `capf admin user add NAME --role admin`. Without --admin-cert, the CAPF CA issues the \
    listener a certificate (a P-256 key, one year) for the listen address (or, for \
    0.0.0.0 and [::], the loopback addresses), this host's name and every --admin-name; it \
    is kept in admin-cert.pem and admin-key.pem in the data directory and used again while \
    it is valid for more than 30 days and for the same names. Clients trust it by trusting \
    the CAPF certificate (capf.pem); the log gives its SHA-256 fingerprint. --admin-cert \
    FILE: one PEM file holding the certificate, the certificates above it, and its private \
    key (PKCS#8, SEC1 or PKCS#1). --admin-plain-http: no TLS, only on a loopback address \
    (for a reverse proxy on the same host that does TLS).\n\n\
    Everything is logged on standard error, with timestamps.")]
pub(crate) struct ServeArgs {
    /// Address to listen on (repeat for several; IPv4 and IPv6).
    #[arg(
        long,
        value_name = "ADDR:PORT",
        default_value = "0.0.0.0:3804",
        env = "CAPF_LISTEN",
        value_delimiter = ','
    )]
    listen: Vec<SocketAddr>,
    /// Most CAPF sessions at once; more wait, then are refused.
    #[arg(
        long,
        default_value_t = 256,
        value_name = "N",
        env = "CAPF_MAX_SESSIONS",
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    max_sessions: usize,
    /// Most certificates being signed at once. Default: number of CPUs.
    #[arg(long, value_name = "N", env = "CAPF_MAX_ISSUING")]
    max_issuing: Option<usize>,
    /// Also listen here with legacy TLS (TLS 1.0-1.2, CBC and static-RSA suites)
    /// for 7900-series phones. Needs a build with the legacy-tls feature.
    #[arg(
        long,
        value_name = "ADDR:PORT",
        env = "CAPF_LEGACY_LISTEN",
        value_delimiter = ','
    )]
    legacy_listen: Vec<SocketAddr>,
    /// TLS for the --listen addresses: modern (rustls, TLS 1.2/1.3) or legacy
    /// (OpenSSL, TLS 1.0-1.2, for 7900-series phones; legacy-tls builds only).
    #[arg(
        long,
        value_name = "KIND",
        value_enum,
        default_value_t = TlsKind::Modern,
        env = "CAPF_TLS"
    )]
    tls: TlsKind,
    /// Most connections from one IP address at once (handshaking or in
    /// session); a new one evicts an idle one of the same address, or is
    /// closed. Phones behind one NAT address share it.
    #[arg(
        long,
        default_value_t = 64,
        value_name = "N",
        env = "CAPF_MAX_PER_ADDRESS"
    )]
    max_per_address: usize,
    /// Serve Prometheus metrics (GET /metrics) and a health check
    /// (GET /health: 200, or 503 with the reason) on this address. Off by
    /// default; use a loopback or management address (no authentication).
    #[arg(long, value_name = "ADDR:PORT", env = "CAPF_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Log format: text (for people) or json (one object per line).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "CAPF_LOG_FORMAT")]
    log_format: LogFormat,
    /// Seconds a client has to complete its TLS handshake.
    #[arg(
        long,
        default_value_t = 10,
        value_name = "SECS",
        env = "CAPF_HANDSHAKE_TIMEOUT"
    )]
    handshake_timeout: u64,
    /// Seconds a session holds its device. With several servers on one
    /// database, a device whose server died mid-session can be taken over
    /// by another after this. Default: longer than the longest session the
    /// service parameters allow (key generation included). A session that
    /// outlasts it may lose its device and fail.
    #[arg(
        long,
        value_name = "SECS",
        value_parser = clap::value_parser!(u64).range(1..),
        env = "CAPF_LEASE_TTL"
    )]
    lease_ttl: Option<u64>,
    /// After a phone's LSC is installed or upgraded, encrypt DIR/<device>.cnf.xml
    /// again for it: DIR/<device>.cnf.xml.enc.sgn and its signed stub
    /// DIR/<device>.cnf.xml.sgn, each replaced in one step. Needs --tftp.
    #[arg(long, value_name = "DIR", env = "CAPF_ENCRYPTED_CONFIG")]
    encrypted_config: Option<PathBuf>,
    /// The TFTP key and certificate (one PEM file, RSA) that sign the
    /// --encrypted-config files.
    #[arg(long, value_name = "CERT+KEY", env = "CAPF_TFTP")]
    tftp: Option<PathBuf>,
    /// Serve the operator console's REST API (HTTPS) on this address. Off
    /// by default.
    #[arg(long, value_name = "ADDR:PORT", env = "CAPF_ADMIN_LISTEN")]
    admin_listen: Option<SocketAddr>,
    /// The --admin-listen certificate: one PEM file with the certificate,
    /// the certificates above it and the private key. Default: a
    /// certificate issued by the CAPF CA, kept in the data directory.
    #[arg(long, value_name = "CERT+KEY", env = "CAPF_ADMIN_CERT")]
    admin_cert: Option<PathBuf>,
    /// A DNS name or IP address that clients use to reach --admin-listen,
    /// for the certificate the CAPF CA issues (repeat for several).
    #[arg(
        long,
        value_name = "NAME",
        env = "CAPF_ADMIN_NAME",
        value_delimiter = ','
    )]
    admin_name: Vec<String>,
    /// Serve --admin-listen over plain HTTP, without TLS. Only on a
    /// loopback address (127.0.0.1, ::1), e.g. behind a reverse proxy on
    /// this host.
    #[arg(
        long,
        env = "CAPF_ADMIN_PLAIN_HTTP",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    admin_plain_http: bool,
    /// The address of a reverse proxy in front of --admin-listen (repeat
    /// for several). Requests from it are counted, for login lockouts and
    /// in the log, under the client address it gives in X-Forwarded-For;
    /// without it, every client behind the proxy shares one address. The
    /// session cookie is then marked Secure (browsers reach the proxy over
    /// HTTPS) even with --admin-plain-http.
    #[arg(
        long,
        value_name = "IP",
        env = "CAPF_ADMIN_TRUSTED_PROXY",
        value_delimiter = ','
    )]
    admin_trusted_proxy: Vec<std::net::IpAddr>,
    /// Print the effective configuration, and where each setting comes
    /// from (flag, environment, capf.toml, default), then exit without
    /// serving.
    #[arg(long)]
    print_config: bool,
    /// With --print-config: print it as JSON.
    #[arg(long, requires = "print_config")]
    json: bool,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum LogFormat {
    /// Timestamped lines for people.
    Text,
    /// One JSON object per line, for machines.
    Json,
}

/// TLS for the --listen addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum TlsKind {
    /// rustls, TLS 1.2 and 1.3.
    Modern,
    /// OpenSSL, TLS 1.0-1.2, for 7900-series phones (legacy-tls builds).
    Legacy,
}

pub(crate) fn run(
    data: &DataDir,
    args: ServeArgs,
    matches: &clap::ArgMatches,
) -> Result<Outcome, Failure> {
    // Usage mistakes first, before anything is created (capf.toml is
    // only read).
    let settled = settings::settle(data, args, matches)?;
    let args = settled.args;
    let admin_plan = AdminPlan::from_args(&args)?;
    let legacy_wanted = args.tls == TlsKind::Legacy || !args.legacy_listen.is_empty();
    if legacy_wanted && !cfg!(feature = "legacy-tls") {
        return Err(Failure::usage(format!(
            "{}: legacy TLS (TLS 1.0 for 7900-series phones) needs a build with the legacy-tls \
             feature: cargo install --path crates/capf-cli --features legacy-tls",
            if args.tls == TlsKind::Legacy {
                settled.origins.label("tls")
            } else {
                settled.origins.label("legacy_listen")
            }
        )));
    }
    if args.print_config {
        settled.origins.print(data, &args)?;
        return Ok(Outcome::Done);
    }
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
    let admin = match &admin_plan {
        Some(plan) => Some(plan.prepare(data, &identity, &issuer, &store)?),
        None => None,
    };
    let encrypted_config = match (&args.encrypted_config, &args.tftp) {
        (Some(dir), Some(tftp)) => Some(Arc::new(super::config::EncryptedConfigDir::open(
            dir, tftp,
        )?)),
        _ => None,
    };
    // The last hold on the store is given up here, after the runtime:
    // closing a database client blocks.
    let store_after_runtime = store.clone();
    let (listen, mut legacy_listen) = if args.tls == TlsKind::Legacy {
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
        let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
        let admin_task = match admin {
            Some(admin) => Some(
                admin
                    .start(async move {
                        let _ = admin_stopped.await;
                    })
                    .await?,
            ),
            None => None,
        };
        info!(
            "CAPF certificate {} ({})",
            data.path(capf_ca::CERT_FILE).display(),
            identity.certificate().subject()
        );
        let served = server.run(shutdown).await;
        let _ = stop_admin.send(());
        if let Some(task) = admin_task {
            match task.await {
                Ok(Err(e)) => tracing::warn!("operator console: {e}"),
                Err(e) => tracing::warn!("operator console stopped abnormally: {e}"),
                Ok(Ok(())) => {}
            }
        }
        served?;
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

/// The operator console's certificate and key in the data directory, when
/// the CAPF CA issued it.
const ADMIN_CERT_FILE: &str = "admin-cert.pem";
const ADMIN_KEY_FILE: &str = "admin-key.pem";
/// An issued console certificate is replaced when it has less than this
/// left.
const ADMIN_RENEW_BEFORE: Duration = Duration::from_secs(30 * 86_400);

/// How the operator console's listener does TLS.
#[derive(Debug)]
enum AdminTls {
    /// A certificate from the CAPF CA for these names.
    Issued(ServerNames),
    /// The operator's own certificate and key (one PEM file).
    OwnFile(PathBuf),
    /// None: plain HTTP on a loopback address.
    Plain,
}

/// `--admin-listen` and its options, checked.
#[derive(Debug)]
struct AdminPlan {
    addr: SocketAddr,
    tls: AdminTls,
    /// Reverse proxies whose X-Forwarded-For is believed.
    trusted_proxies: Vec<std::net::IpAddr>,
}

/// The console, ready to listen.
struct AdminReady {
    addr: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: AdminState,
}

/// The trusted proxies, each as the listener sees it (an IPv4 address
/// written as IPv6 is the IPv4 address).
fn trusted_proxies(args: &ServeArgs) -> Vec<std::net::IpAddr> {
    args.admin_trusted_proxy
        .iter()
        .map(std::net::IpAddr::to_canonical)
        .collect()
}

impl AdminPlan {
    /// The console the arguments ask for, if any; usage mistakes (exit 2).
    fn from_args(args: &ServeArgs) -> Result<Option<AdminPlan>, Failure> {
        let Some(addr) = args.admin_listen else {
            return Ok(None);
        };
        if args.admin_plain_http {
            if !addr.ip().is_loopback() {
                return Err(Failure::usage(format!(
                    "--admin-plain-http: {addr} is not a loopback address; the operator console \
                     serves plain HTTP only on 127.0.0.1 or [::1] (for a reverse proxy on this \
                     host). Leave out --admin-plain-http to serve HTTPS."
                )));
            }
            return Ok(Some(AdminPlan {
                addr,
                tls: AdminTls::Plain,
                trusted_proxies: trusted_proxies(args),
            }));
        }
        if let Some(path) = &args.admin_cert {
            return Ok(Some(AdminPlan {
                addr,
                tls: AdminTls::OwnFile(path.clone()),
                trusted_proxies: trusted_proxies(args),
            }));
        }
        let mut names = ServerNames::new();
        let ip = addr.ip();
        if ip.is_unspecified() {
            // Any address: the certificate names the loopback; clients
            // elsewhere need --admin-name for the names they use.
            names.add_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
            names.add_ip(IpAddr::V6(Ipv6Addr::LOCALHOST));
        } else {
            names.add_ip(ip);
        }
        if ip.is_loopback() || ip.is_unspecified() {
            names
                .add_dns("localhost")
                .map_err(|e| Failure::new(format!("--admin-listen: {e}")))?;
        }
        if let Some(host) = host_name() {
            // A host name that cannot be a DNS name is left out.
            let _ = names.add_dns(&host);
        }
        for name in &args.admin_name {
            names
                .add(name)
                .map_err(|e| Failure::usage(format!("--admin-name: {e}")))?;
        }
        Ok(Some(AdminPlan {
            addr,
            tls: AdminTls::Issued(names),
            trusted_proxies: trusted_proxies(args),
        }))
    }

    /// The TLS configuration (issuing or loading the certificate) and the
    /// router's state over `store`.
    fn prepare(
        &self,
        data: &DataDir,
        identity: &CapfIdentity,
        issuer: &Issuer,
        store: &Arc<Store>,
    ) -> Result<AdminReady, Failure> {
        let tls = match &self.tls {
            AdminTls::Plain => None,
            AdminTls::OwnFile(path) => Some(own_admin_tls(path)?),
            AdminTls::Issued(names) => Some(issued_admin_tls(data, issuer, names)?),
        };
        let state = AdminState::with_options(
            Arc::clone(store) as Arc<dyn AdminStore>,
            identity.certificate().der(),
            Arc::new(SystemTime::now),
            AdminOptions {
                // Browsers drop a Secure cookie over plain HTTP; behind a
                // trusted proxy they speak HTTPS to the proxy.
                secure_cookie: tls.is_some() || !self.trusted_proxies.is_empty(),
                trusted_proxies: self.trusted_proxies.clone(),
                ..AdminOptions::default()
            },
        )
        .map_err(|e| Failure::new(format!("operator console: {e}")))?
        .with_parameters(Arc::clone(store) as Arc<dyn capf_admin::ParameterStore>);
        Ok(AdminReady {
            addr: self.addr,
            tls,
            state,
        })
    }
}

impl AdminReady {
    /// Binds the address and serves the console until `shutdown`.
    async fn start(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<tokio::task::JoinHandle<Result<(), capf_admin::AdminError>>, Failure> {
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .map_err(|e| {
                Failure::new(format!(
                    "cannot listen on {} (--admin-listen): {e}",
                    self.addr
                ))
            })?;
        let bound = listener.local_addr()?;
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        info!("operator console (REST API) at {scheme}://{bound}/api/v1/");
        Ok(tokio::spawn(capf_admin::serve(
            listener,
            self.tls,
            capf_admin::router(self.state),
            shutdown,
        )))
    }
}

/// This host's name, if the system says.
fn host_name() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .map(|text| text.trim().to_owned())
        .filter(|name| !name.is_empty())
}

/// The console's certificate from the CAPF CA: the one in the data
/// directory while it is valid, from this CA and for these names; else a
/// new one, saved there.
fn issued_admin_tls(
    data: &DataDir,
    issuer: &Issuer,
    names: &ServerNames,
) -> Result<Arc<rustls::ServerConfig>, Failure> {
    let cert_path = data.path(ADMIN_CERT_FILE);
    let key_path = data.path(ADMIN_KEY_FILE);
    let now = SystemTime::now();
    let kept = if cert_path.exists() && key_path.exists() {
        match ServerCertificate::load(&cert_path, &key_path) {
            Ok(kept) => match kept.check(issuer, names, now, ADMIN_RENEW_BEFORE) {
                Ok(()) => Some(kept),
                Err(problem) => {
                    info!(
                        "operator console: replacing the certificate in {}: {problem}",
                        cert_path.display()
                    );
                    None
                }
            },
            Err(e) => {
                tracing::warn!("operator console: replacing an unreadable certificate: {e}");
                None
            }
        }
    } else {
        None
    };
    let (server, state) = match kept {
        Some(kept) => (kept, "kept in"),
        None => {
            let issued =
                ServerCertificate::issue(issuer, names, &ServerCertProfile::default(), now)
                    .map_err(|e| {
                        Failure::new(format!(
                            "cannot issue the operator console's certificate: {e}"
                        ))
                    })?;
            issued.save(&cert_path, &key_path)?;
            (issued, "new, saved in")
        }
    };
    let certificate = server.certificate();
    info!(
        "operator console uses a certificate issued by the CAPF CA ({}) for {}, valid until {} \
         ({state} {}); SHA-256 fingerprint {}",
        issuer.certificate().subject(),
        capf_ca::subject_alt_names(certificate),
        time_text::format(certificate.not_after()),
        cert_path.display(),
        certificate.fingerprint_sha256_hex()
    );
    let chain = server
        .chain_der()
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        server.private_key().to_pkcs8_der()?,
    ));
    admin_tls_config(chain, key)
}

/// The console's certificate from `--admin-cert FILE`.
fn own_admin_tls(path: &std::path::Path) -> Result<Arc<rustls::ServerConfig>, Failure> {
    let named = |what: &str| format!("--admin-cert {}: {what}", path.display());
    let pem = std::fs::read(path).map_err(|e| Failure::new(named(&e.to_string())))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| Failure::new(named(&format!("not a readable PEM file ({e})"))))?;
    let Some(first) = chain.first() else {
        return Err(Failure::new(named("no CERTIFICATE in the file")));
    };
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|_| {
        Failure::new(named(
            "no private key in the file (PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY)",
        ))
    })?;
    let certificate = capf_ca::CaCertificate::from_der(first, "--admin-cert certificate")?;
    if certificate.not_after() <= SystemTime::now() {
        tracing::warn!(
            "operator console: the certificate {} expired at {}",
            certificate.subject(),
            time_text::format(certificate.not_after())
        );
    }
    info!(
        "operator console uses the certificate {} ({}), valid until {}; SHA-256 fingerprint {}",
        path.display(),
        certificate.subject(),
        time_text::format(certificate.not_after()),
        certificate.fingerprint_sha256_hex()
    );
    admin_tls_config(chain, key).map_err(|e| Failure::new(named(&e.message)))
}

/// TLS 1.2 and 1.3 (ring), HTTP/1.1, no client certificates.
fn admin_tls_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, Failure> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Failure::new(format!("operator console TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            Failure::new(format!(
                "operator console TLS: the certificate and key cannot be used: {e}"
            ))
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
