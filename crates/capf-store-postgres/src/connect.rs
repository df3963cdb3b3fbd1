//! Reaching the database: the address (a `postgres://` URL or key=value
//! pairs), TLS through rustls when the address asks for it, and a safe
//! way to block on the client from inside an async runtime.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Config, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::PostgresError;
use crate::rows::Conn;

/// How to reach the database.
#[derive(Clone)]
pub(crate) struct Target {
    config: Config,
    tls: Option<MakeRustlsConnect>,
    /// Host, port and database name, for messages (never the password).
    pub(crate) shown: String,
}

/// Where trusted CA certificates are read from when the address asks for
/// TLS and no file is given: the system's bundle.
const SYSTEM_ROOTS: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

impl Target {
    /// Parses `address`. With `sslmode=require` the connection uses TLS,
    /// the server's certificate checked against `ca_file` (PEM) or else
    /// the system's CA bundle (`SSL_CERT_FILE` first).
    pub(crate) fn parse(address: &str, ca_file: Option<&Path>) -> Result<Self, PostgresError> {
        let mut config: Config =
            address
                .parse()
                .map_err(|e: tokio_postgres::Error| PostgresError::BadAddress {
                    reason: e.to_string(),
                })?;
        if config.get_application_name().is_none() {
            config.application_name("capf");
        }
        let shown = show(&config);
        // Only `require` means TLS, and then the server's certificate is
        // always checked (libpq's `require` does not check it; a TLS that
        // accepts any certificate protects nothing). `prefer`, the
        // default, connects in clear.
        let tls = match config.get_ssl_mode() {
            SslMode::Require => Some(rustls_connector(ca_file)?),
            _ => {
                config.ssl_mode(SslMode::Disable);
                None
            }
        };
        Ok(Self { config, tls, shown })
    }

    /// A new connection, with the small runtime that drives it.
    pub(crate) fn connect(&self) -> Result<Conn, PostgresError> {
        blocking(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(PostgresError::Runtime)?;
            let failed = |source| PostgresError::Connect {
                target: self.shown.clone(),
                source,
            };
            // The connection runs as a task of the runtime, driven while a
            // statement is waited for; it ends when the client is dropped.
            let client = match &self.tls {
                None => {
                    let (client, connection) = runtime
                        .block_on(self.config.connect(NoTls))
                        .map_err(failed)?;
                    runtime.spawn(connection);
                    client
                }
                Some(tls) => {
                    let (client, connection) = runtime
                        .block_on(self.config.connect(tls.clone()))
                        .map_err(failed)?;
                    runtime.spawn(connection);
                    client
                }
            };
            Ok(Conn::new(runtime, client))
        })
    }
}

/// `host:port/dbname`, for messages.
fn show(config: &Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".to_owned());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("postgres://{host}:{port}/{db}")
}

fn rustls_connector(ca_file: Option<&Path>) -> Result<MakeRustlsConnect, PostgresError> {
    let env_file = std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from);
    let candidates: Vec<&Path> = match ca_file {
        Some(file) => vec![file],
        None => env_file
            .as_deref()
            .into_iter()
            .chain(SYSTEM_ROOTS.iter().map(Path::new))
            .collect(),
    };
    let file = candidates
        .iter()
        .find(|p| p.exists())
        .ok_or_else(|| PostgresError::Tls {
            reason: match ca_file {
                Some(f) => format!("{} does not exist", f.display()),
                None => "no CA certificate file found: give one (--database-ca)".to_owned(),
            },
        })?;
    let mut roots = rustls::RootCertStore::empty();
    let certificates = CertificateDer::pem_file_iter(file).map_err(|e| PostgresError::Tls {
        reason: format!("{}: {e}", file.display()),
    })?;
    for certificate in certificates {
        let certificate = certificate.map_err(|e| PostgresError::Tls {
            reason: format!("{}: {e}", file.display()),
        })?;
        // A bundle may hold certificates rustls cannot use: skip those.
        let _ = roots.add(certificate);
    }
    if roots.is_empty() {
        return Err(PostgresError::Tls {
            reason: format!("{} holds no usable CA certificate", file.display()),
        });
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PostgresError::Tls {
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// Runs `f`, which blocks on the database client (it drives its own
/// small runtime), so that it also works when called from a task of a
/// multi-threaded tokio runtime: there the worker hands its other tasks
/// on first. On a thread without a runtime, `f` simply runs.
///
/// From a current-thread runtime this cannot be done without stalling
/// every other task; the client would panic there, so call the store
/// through `spawn_blocking` instead.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}
