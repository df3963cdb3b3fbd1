//! How the server runs: addresses, limits, timeouts.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use capf_operations::SessionOutcome;

/// The TCP port phones use for CAPF.
pub const CAPF_PORT: u16 = 3804;

/// Server settings that are not CAPF service parameters.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Where to listen (IPv4 and IPv6). Default `0.0.0.0:3804`.
    pub listen: Vec<SocketAddr>,
    /// Where to listen with legacy TLS (TLS 1.0-1.2 with CBC and static-RSA
    /// suites, OpenSSL at security level 0) for 7900-series phones. Needs
    /// the `legacy-tls` feature. Default: none.
    pub legacy_listen: Vec<SocketAddr>,
    /// Sessions (TLS done, CAPF running) at once. When all are taken, a
    /// new one evicts the session that has waited longest without saying
    /// who it is, else waits (`queue_timeout`). Default 256.
    pub max_sessions: usize,
    /// Certificates being signed at once. Default: the number of CPUs.
    pub max_issuing: usize,
    /// Connections still in their TLS handshake at once; a new one evicts
    /// the oldest. Default 1024.
    pub max_handshakes: usize,
    /// Connections from one IP address at once, handshaking or in session;
    /// a new one evicts the oldest of that address still in its handshake,
    /// else the one waiting longest before authenticating, else is closed.
    /// Bounds what one client (a slowloris, a script guessing strings) can
    /// hold. Default 64, a quarter of `max_sessions`: phones behind one NAT
    /// address share it, so raise it for a large site behind one address.
    pub max_per_address: usize,
    /// Longest TLS handshake. Default 10 s.
    pub handshake_timeout: Duration,
    /// How long a connection that finished its handshake waits for a
    /// session slot, and a session waits for an issuance slot, before it is
    /// refused. Default 10 s.
    pub queue_timeout: Duration,
    /// Largest frame body accepted from a phone. Default 16 KiB (real
    /// messages are far smaller).
    pub max_frame_body: usize,
    /// Where troubleshoot writes one trace file per retrieved certificate.
    /// `None`: no files.
    pub trace_dir: Option<PathBuf>,
    /// How long in-flight sessions may finish after shutdown is asked.
    /// Default 10 s.
    pub shutdown_grace: Duration,
    /// How long a session's hold on its device lasts. When a server dies
    /// mid-session, another server sharing its database can take the
    /// device over only after this. `None` (the default): longer than the
    /// longest session the service parameters allow (key generation, the
    /// authentication wait and a few replies, plus a minute). A shorter
    /// value lets another server take over sooner, but a session that
    /// outlasts it may lose its device to another server and fail.
    pub lease_ttl: Option<Duration>,
    /// Called once for every session that ended with an outcome, after
    /// its last change is durable in the store (an `Installed` outcome
    /// means the new LSC is the device's LSC on record). `None` (the
    /// default): nothing is called. See [`SessionHook`].
    pub on_session_done: Option<SessionHook>,
}

/// A function the server calls when a session has ended (for example to
/// rebuild a phone's encrypted configuration after its LSC changed).
///
/// It runs on the connection's task, after the "session done" log line:
/// it must return quickly, never block and never panic. Work that takes
/// time (files, databases) goes elsewhere, e.g. to
/// `tokio::task::spawn_blocking`. A connection closed before its session
/// ended has no outcome and calls nothing.
#[derive(Clone)]
pub struct SessionHook(Arc<dyn Fn(&SessionOutcome) + Send + Sync>);

impl SessionHook {
    /// Wraps `hook`.
    pub fn new(hook: impl Fn(&SessionOutcome) + Send + Sync + 'static) -> Self {
        SessionHook(Arc::new(hook))
    }

    /// Calls the hook with a session's outcome.
    pub fn call(&self, outcome: &SessionOutcome) {
        (self.0)(outcome)
    }
}

impl fmt::Debug for SessionHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionHook").finish_non_exhaustive()
    }
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            listen: vec![SocketAddr::from(([0, 0, 0, 0], CAPF_PORT))],
            legacy_listen: Vec::new(),
            max_sessions: 256,
            max_issuing: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_handshakes: 1024,
            max_per_address: 64,
            handshake_timeout: Duration::from_secs(10),
            queue_timeout: Duration::from_secs(10),
            max_frame_body: 16 * 1024,
            trace_dir: None,
            shutdown_grace: Duration::from_secs(10),
            lease_ttl: None,
            on_session_done: None,
        }
    }
}
