//! The listener: accepts TCP, bounds handshakes and sessions, spawns one
//! task per connection, shuts down gracefully.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use capf_ca::{CapfIdentity, Issuer};
use capf_operations::{ServerConfig, SessionStore};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::connection::serve_connection;
use crate::{ServerError, ServerOptions};

/// What every connection task shares.
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn SessionStore>,
    pub(crate) issuer: Arc<Issuer>,
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) options: ServerOptions,
    pub(crate) sessions: Arc<Semaphore>,
    pub(crate) issuing: Arc<Semaphore>,
    pub(crate) handshakes: Arc<Semaphore>,
    per_address: PerAddress,
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
        let shared = Arc::new(Shared {
            store,
            issuer: Arc::new(issuer),
            config: Arc::new(config),
            sessions: Arc::new(Semaphore::new(options.max_sessions.max(1))),
            issuing: Arc::new(Semaphore::new(options.max_issuing.max(1))),
            handshakes: Arc::new(Semaphore::new(options.max_handshakes.max(1))),
            per_address: PerAddress::new(options.max_per_address),
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
        shutdown.await;
        info!("shutting down: no new connections");
        let _ = stop_tx.send(true);
        while accept_tasks.join_next().await.is_some() {}
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
                    let Some(address_slot) = shared.per_address.try_take(peer.ip()) else {
                        warn!(%peer, "too many connections from this address: closed");
                        continue;
                    };
                    let Ok(slot) = shared.handshakes.clone().try_acquire_owned() else {
                        warn!(%peer, "too many connections in their handshake: closed");
                        continue;
                    };
                    let acceptor = acceptor.clone();
                    let shared = shared.clone();
                    let span = info_span!("conn", %peer, session = tracing::field::Empty, device = tracing::field::Empty);
                    connections.spawn(
                        async move {
                            handle(tcp, peer, acceptor, shared, slot).await;
                            drop(address_slot);
                        }
                        .instrument(span),
                    );
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

async fn handle(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: Handshaker,
    shared: Arc<Shared>,
    handshake_slot: tokio::sync::OwnedSemaphorePermit,
) {
    let _ = tcp.set_nodelay(true);
    let timeout = shared.options.handshake_timeout;
    match acceptor {
        Handshaker::Modern(acceptor) => {
            let handshake = tokio::time::timeout(timeout, acceptor.accept(tcp)).await;
            drop(handshake_slot);
            match handshake {
                Ok(Ok(tls)) => admit(tls, peer, shared).await,
                Ok(Err(e)) => debug!("TLS handshake failed: {e}"),
                Err(_) => debug!("TLS handshake timed out"),
            }
        }
        #[cfg(feature = "legacy-tls")]
        Handshaker::Legacy(acceptor) => {
            let handshake =
                tokio::time::timeout(timeout, crate::legacy_tls::accept(&acceptor, tcp)).await;
            drop(handshake_slot);
            match handshake {
                Ok(Ok(tls)) => admit(tls, peer, shared).await,
                Ok(Err(e)) => debug!("legacy TLS handshake failed: {e}"),
                Err(_) => debug!("legacy TLS handshake timed out"),
            }
        }
    }
}

/// Waits (bounded) for a session slot, then runs the session.
async fn admit<S>(stream: S, peer: SocketAddr, shared: Arc<Shared>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let permit = match tokio::time::timeout(
        shared.options.queue_timeout,
        shared.sessions.clone().acquire_owned(),
    )
    .await
    {
        Ok(Ok(permit)) => permit,
        _ => {
            warn!(%peer, "server busy: session refused");
            return;
        }
    };
    serve_connection(stream, shared).await;
    drop(permit);
}

/// Connections per peer IP address (handshaking or in session), bounded.
struct PerAddress {
    max: usize,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One connection's place in its address's count; given back on drop.
struct AddressSlot {
    ip: IpAddr,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerAddress {
    fn new(max: usize) -> Self {
        PerAddress {
            max: max.max(1),
            counts: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A slot for one more connection from `ip`, or `None` if it already
    /// holds the maximum.
    fn try_take(&self, ip: IpAddr) -> Option<AddressSlot> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(ip).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            ip,
            counts: self.counts.clone(),
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}
