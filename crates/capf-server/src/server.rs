//! The listener: accepts TCP, admits connections (evicting idle ones when
//! full, see `admission.rs`), spawns one task per connection, shuts down
//! gracefully.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use capf_ca::{CapfIdentity, Issuer};
use capf_operations::{ServerConfig, SessionStore};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tracing::{Instrument, info, info_span, warn};

use crate::admission::{Admission, Limits, Ticket};
use crate::connection::serve_connection;
use crate::metrics::Metrics;
use crate::summary::{HandshakeFailure, Kind, Summary};
use crate::{ServerError, ServerOptions};

/// What every connection task shares.
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn SessionStore>,
    pub(crate) issuer: Arc<Issuer>,
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) options: ServerOptions,
    pub(crate) issuing: Arc<Semaphore>,
    pub(crate) admission: Arc<Admission>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) summary: Arc<Summary>,
    /// Whether the listeners run (for the health check).
    pub(crate) listening: AtomicBool,
}

/// A CAPF server bound to its addresses, ready to run.
pub struct CapfServer {
    listeners: Vec<(TcpListener, Handshaker)>,
    shared: Arc<Shared>,
}

/// How a listener's connections do their TLS handshake.
#[derive(Clone)]
enum Handshaker {
    /// rustls: TLS 1.2 and 1.3, AEAD suites.
    Modern(TlsAcceptor),
    /// OpenSSL at security level 0: TLS 1.0-1.2, CBC and static-RSA suites.
    #[cfg(feature = "legacy-tls")]
    Legacy(Arc<openssl::ssl::SslAcceptor>),
}

impl CapfServer {
    /// Binds every listen address. TLS uses the CAPF identity; LSCs are
    /// signed by `issuer` (the identity itself, or an intermediate).
    pub async fn bind(
        identity: &CapfIdentity,
        issuer: Issuer,
        store: Arc<dyn SessionStore>,
        config: ServerConfig,
        options: ServerOptions,
    ) -> Result<Self, ServerError> {
        let modern = Handshaker::Modern(TlsAcceptor::from(Arc::new(crate::tls::server_config(
            identity,
        )?)));
        let mut listeners = Vec::with_capacity(options.listen.len());
        for addr in &options.listen {
            listeners.push((bind(*addr).await?, modern.clone()));
        }
        if !options.legacy_listen.is_empty() {
            #[cfg(feature = "legacy-tls")]
            {
                let legacy = Handshaker::Legacy(Arc::new(crate::legacy_tls::acceptor(identity)?));
                for addr in &options.legacy_listen {
                    listeners.push((bind(*addr).await?, legacy.clone()));
                }
            }
            #[cfg(not(feature = "legacy-tls"))]
            return Err(ServerError::Tls(
                "legacy TLS (TLS 1.0 for 7900-series phones) needs a build with the \
                 legacy-tls feature: cargo build --release --features legacy-tls"
                    .into(),
            ));
        }
        raise_open_file_limit();
        let metrics = Arc::new(Metrics::new());
        let summary = Arc::new(Summary::new());
        let admission = Arc::new(Admission::new(
            Limits {
                handshakes: options.max_handshakes,
                sessions: options.max_sessions,
                per_address: options.max_per_address,
            },
            metrics.clone(),
            summary.clone(),
        ));
        let shared = Arc::new(Shared {
            store,
            issuer: Arc::new(issuer),
            config: Arc::new(config),
            issuing: Arc::new(Semaphore::new(options.max_issuing.max(1))),
            admission,
            metrics,
            summary,
            listening: AtomicBool::new(false),
            options,
        });
        Ok(CapfServer { listeners, shared })
    }

    /// The addresses actually bound (useful with port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|(l, _)| l.local_addr().ok())
            .collect()
    }

    /// Each bound address with whether it speaks legacy TLS.
    pub fn listening(&self) -> Vec<(SocketAddr, bool)> {
        self.listeners
            .iter()
            .filter_map(|(l, h)| {
                let legacy = match h {
                    Handshaker::Modern(_) => false,
                    #[cfg(feature = "legacy-tls")]
                    Handshaker::Legacy(_) => true,
                };
                l.local_addr().ok().map(|a| (a, legacy))
            })
            .collect()
    }

    /// The server's metrics and health, for an operator's probe (see
    /// [`serve_observer`](crate::serve_observer)).
    pub fn observer(&self) -> crate::Observer {
        crate::Observer::new(self.shared.clone())
    }

    /// Serves until `shutdown` completes, then stops accepting and lets
    /// in-flight sessions finish within the grace period.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut accept_tasks = JoinSet::new();
        for (listener, acceptor) in self.listeners {
            let shared = self.shared.clone();
            let stop = stop_rx.clone();
            accept_tasks.spawn(accept_loop(listener, acceptor, shared, stop));
        }
        self.shared.listening.store(true, Ordering::SeqCst);
        let summaries = {
            let summary = self.shared.summary.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(crate::summary::PERIOD / 2);
                loop {
                    tick.tick().await;
                    summary.flush(false);
                }
            })
        };
        shutdown.await;
        info!("shutting down: no new connections");
        self.shared.listening.store(false, Ordering::SeqCst);
        let _ = stop_tx.send(true);
        while accept_tasks.join_next().await.is_some() {}
        summaries.abort();
        self.shared.summary.flush(true);
        Ok(())
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: Handshaker,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    // Full? The oldest idle connection makes room; only when
                    // there is none is this one closed (counted, summarised).
                    let Ok(ticket) = shared.admission.admit(peer.ip()) else {
                        continue;
                    };
                    let acceptor = acceptor.clone();
                    let shared = shared.clone();
                    let span = info_span!("conn", %peer, session = tracing::field::Empty, device = tracing::field::Empty);
                    connections.spawn(handle(tcp, peer, acceptor, shared, ticket).instrument(span));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly.
                    warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    let grace = shared.options.shutdown_grace;
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, drain).await.is_err() {
        warn!("sessions still running after the grace period: closing them");
        connections.shutdown().await;
    }
}

/// A handshake that failed: counted, summarised.
fn handshake_failed(shared: &Shared, peer: SocketAddr, failure: HandshakeFailure) {
    shared.metrics.handshake(failure.name(), "-");
    shared.summary.note(Kind::Handshake(failure), peer.ip());
}

async fn handle(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: Handshaker,
    shared: Arc<Shared>,
    ticket: Ticket,
) {
    let _ = tcp.set_nodelay(true);
    let timeout = shared.options.handshake_timeout;
    // Until the client sends its first bytes it is evicted before anyone
    // who has started a handshake.
    let deadline = tokio::time::Instant::now() + timeout;
    let mut first = [0u8; 1];
    tokio::select! {
        spoke = tokio::time::timeout_at(deadline, tcp.peek(&mut first)) => match spoke {
            Ok(Ok(n)) if n > 0 => ticket.spoke(),
            Ok(_) => return handshake_failed(&shared, peer, HandshakeFailure::NoClientHello),
            Err(_) => return handshake_failed(&shared, peer, HandshakeFailure::TimedOut),
        },
        () = ticket.evicted() => return,
    }
    let timeout = deadline.saturating_duration_since(tokio::time::Instant::now());
    match acceptor {
        Handshaker::Modern(acceptor) => {
            let handshake = tokio::select! {
                h = tokio::time::timeout(timeout, acceptor.accept(tcp)) => h,
                () = ticket.evicted() => return,
            };
            match handshake {
                Ok(Ok(tls)) => {
                    let version = tls
                        .get_ref()
                        .1
                        .protocol_version()
                        .map_or_else(|| "-".to_owned(), |v| format!("{v:?}"));
                    shared.metrics.handshake("ok", &version);
                    admit(tls, peer, shared, ticket).await;
                }
                Ok(Err(e)) => {
                    tracing::debug!("TLS handshake failed: {e:?}");
                    handshake_failed(&shared, peer, HandshakeFailure::of(&e))
                }
                Err(_) => handshake_failed(&shared, peer, HandshakeFailure::TimedOut),
            }
        }
        #[cfg(feature = "legacy-tls")]
        Handshaker::Legacy(acceptor) => {
            let handshake = tokio::select! {
                h = tokio::time::timeout(timeout, crate::legacy_tls::accept(&acceptor, tcp)) => h,
                () = ticket.evicted() => return,
            };
            match handshake {
                Ok(Ok(tls)) => {
                    shared.metrics.handshake("ok", "legacy");
                    admit(tls, peer, shared, ticket).await;
                }
                Ok(Err(_)) => handshake_failed(&shared, peer, HandshakeFailure::Other),
                Err(_) => handshake_failed(&shared, peer, HandshakeFailure::TimedOut),
            }
        }
    }
}

/// Takes a session slot (evicting a connection that never said who it is
/// if all are taken, else waiting a bounded time), then runs the session.
async fn admit<S>(stream: S, peer: SocketAddr, shared: Arc<Shared>, ticket: Ticket)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if ticket
        .enter_session(shared.options.queue_timeout)
        .await
        .is_err()
    {
        tracing::debug!(%peer, "no session slot: closed");
        return;
    }
    serve_connection(stream, shared, &ticket).await;
}

/// Raises the open-file soft limit to the hard limit: each connection is a
/// file descriptor, and a flood should meet the admission policy, not the
/// process's limit.
fn raise_open_file_limit() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => info!(limit, "open-file limit"),
        Err(e) => warn!("cannot raise the open-file limit: {e}"),
    });
}
