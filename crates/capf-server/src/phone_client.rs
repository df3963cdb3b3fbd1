//! The phone's runtime: drives a `PhoneSession` over TLS to any CAPF
//! server, generating keys off the async threads.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use capf_ca::{KeySpec, PrivateKey};
use capf_operations::phone::{
    FailureCause, KeyGenFailure, LscChange, PhoneConfig, PhoneEvent, PhoneFailure, PhoneOutcome,
    PhoneSession, PhoneStatus, PhoneStep,
};
use capf_wire::{FrameCodec, Message};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::ServerError;
use crate::clock::SessionClock;

/// What one phone session produced.
#[derive(Debug)]
pub struct PhoneRun {
    /// How it ended.
    pub outcome: PhoneOutcome,
    /// The new LSC and its private key, when the server installed one.
    pub installed: Option<(Vec<u8>, PrivateKey)>,
    /// Whether the server had the phone delete its LSC.
    pub deleted: bool,
}

/// A TLS stream of either kind.
trait ClientStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> ClientStream for T {}

/// How the phone does its TLS handshake.
enum Transport {
    /// rustls, TLS 1.2/1.3.
    Modern(TlsConnector),
    /// OpenSSL, TLS 1.0 with AES128-SHA only, as a 7900-series phone.
    #[cfg(feature = "legacy-tls")]
    Legacy(Vec<capf_ca::CaCertificate>),
}

/// Supplies ready-made key pairs instead of generating them (see
/// [`PhoneClient::with_key_source`]).
type KeySource = Arc<dyn Fn(KeySpec) -> Option<PrivateKey> + Send + Sync>;

/// Connects to a CAPF server and runs one session.
pub struct PhoneClient {
    transport: Transport,
    connect_timeout: Duration,
    key_source: Option<KeySource>,
    local_address: Option<std::net::IpAddr>,
}

impl PhoneClient {
    /// A client trusting exactly these CAPF certificates.
    pub fn new(tls: rustls::ClientConfig) -> Self {
        PhoneClient {
            transport: Transport::Modern(TlsConnector::from(Arc::new(tls))),
            connect_timeout: Duration::from_secs(10),
            key_source: None,
            local_address: None,
        }
    }

    /// A client that speaks like a 7900-series phone: TLS 1.0 with
    /// AES128-SHA only (OpenSSL, security level 0), trusting exactly these
    /// CAPF certificates. For testing legacy listeners.
    #[cfg(feature = "legacy-tls")]
    pub fn legacy(trusted: Vec<capf_ca::CaCertificate>) -> Self {
        PhoneClient {
            transport: Transport::Legacy(trusted),
            connect_timeout: Duration::from_secs(10),
            key_source: None,
            local_address: None,
        }
    }

    /// Sets the TCP connect and TLS handshake timeout (default 10 s).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Connects from this local address (e.g. another address of
    /// 127.0.0.0/8, to look like another host in a test).
    pub fn with_local_address(mut self, address: std::net::IpAddr) -> Self {
        self.local_address = Some(address);
        self
    }

    /// Takes the phone's key pairs from `source` instead of generating
    /// them: when the server asks for a key, `source(spec)` is called, and
    /// its key used at once; `None` falls back to generating one. For load
    /// generators and benchmarks, where key generation would dominate (a
    /// pool of keys reused round-robin: the server does not care).
    pub fn with_key_source(
        mut self,
        source: impl Fn(KeySpec) -> Option<PrivateKey> + Send + Sync + 'static,
    ) -> Self {
        self.key_source = Some(Arc::new(source));
        self
    }

    /// Connects to `server` (`host:port`) and runs one session with
    /// `config`. Connection failures before the session starts are errors;
    /// everything after is in the outcome.
    pub async fn run(&self, server: &str, config: PhoneConfig) -> Result<PhoneRun, ServerError> {
        self.run_with(
            server,
            config,
            |_, _| Ok(()),
            Ok,
            |_| {},
            std::future::pending(),
        )
        .await
    }

    /// [`run`](Self::run) with the phone's LSC storage, a status display
    /// and a stop button.
    ///
    /// * `store(certificate_der, key)` keeps a new LSC before the phone
    ///   answers STORE_CERTIFICATE_RESPONSE; an error (logged) makes it
    ///   answer REASON=7, so the server never thinks a lost certificate was
    ///   stored.
    /// * `delete(configured)` deletes the phone's LSC and says whether there
    ///   was one (`configured`: whether `config` has an LSC).
    /// * `on_status` sees the status when the session starts and each time
    ///   it changes.
    /// * When `stop` completes the session is aborted: nothing more is
    ///   sent and the outcome is a failure caused by
    ///   [`FailureCause::Aborted`], also while connecting.
    pub async fn run_with<S, D, P, C>(
        &self,
        server: &str,
        config: PhoneConfig,
        mut store: S,
        mut delete: D,
        mut on_status: P,
        stop: C,
    ) -> Result<PhoneRun, ServerError>
    where
        S: FnMut(&[u8], &PrivateKey) -> Result<(), String>,
        D: FnMut(bool) -> Result<bool, String>,
        P: FnMut(&PhoneStatus),
        C: Future<Output = ()>,
    {
        let mut stop = std::pin::pin!(stop);
        let connected = tokio::select! {
            biased;
            () = &mut stop => None,
            tls = self.connect(server) => Some(tls?),
        };
        let Some(mut tls) = connected else {
            return Ok(PhoneRun {
                outcome: PhoneOutcome::Failed(PhoneFailure {
                    cause: FailureCause::Aborted,
                    step: PhoneStep::AwaitingAuthRequest,
                    lsc_change: LscChange::Unchanged,
                }),
                installed: None,
                deleted: false,
            });
        };

        let clock = SessionClock::start();
        let mut session = PhoneSession::new(config, clock.now());
        let mut codec = FrameCodec::new();
        let mut inbound = BytesMut::with_capacity(4096);
        let mut outbound = BytesMut::with_capacity(4096);
        let mut pending_key: Option<PrivateKey> = None;
        let mut installed = None;
        let mut deleted = false;
        let mut stopped = false;
        let mut last_status = session.status();
        on_status(&last_status);
        loop {
            while let Some(t) = session.poll_transmit() {
                outbound.clear();
                if t.encode(&mut outbound).is_err() || tls.write_all(&outbound).await.is_err() {
                    session.connection_lost(clock.now());
                    break;
                }
            }
            let _ = tls.flush().await;
            let status = session.status();
            if status != last_status {
                on_status(&status);
                last_status = status;
            }
            if let Some(event) = session.poll_event() {
                match event {
                    PhoneEvent::GenerateKey(spec) => {
                        if let Some(key) = self.key_source.as_ref().and_then(|source| source(spec))
                        {
                            let result = match key.public_key_der() {
                                Ok(spki) => {
                                    pending_key = Some(key);
                                    Ok(spki)
                                }
                                Err(e) => Err(KeyGenFailure::new(e.to_string())),
                            };
                            session.key_generated(clock.now(), result);
                            continue;
                        }
                        let generated = tokio::select! {
                            biased;
                            () = &mut stop, if !stopped => None,
                            g = tokio::task::spawn_blocking(move || PrivateKey::generate(spec)) => Some(g),
                        };
                        let Some(generated) = generated else {
                            stopped = true;
                            session.abort(clock.now());
                            continue;
                        };
                        let result = match generated {
                            Ok(Ok(key)) => match key.public_key_der() {
                                Ok(spki) => {
                                    pending_key = Some(key);
                                    Ok(spki)
                                }
                                Err(e) => Err(KeyGenFailure::new(e.to_string())),
                            },
                            Ok(Err(e)) => Err(KeyGenFailure::new(e.to_string())),
                            Err(e) => Err(KeyGenFailure::new(e.to_string())),
                        };
                        session.key_generated(clock.now(), result);
                    }
                    PhoneEvent::StoreCertificate { certificate_der } => {
                        let stored = match pending_key.take() {
                            Some(key) => {
                                let kept = match store(&certificate_der, &key) {
                                    Ok(()) => true,
                                    Err(e) => {
                                        tracing::warn!("could not store the new LSC: {e}");
                                        false
                                    }
                                };
                                if kept {
                                    installed = Some((certificate_der.to_vec(), key));
                                }
                                kept
                            }
                            None => false,
                        };
                        session.certificate_stored(clock.now(), stored);
                    }
                    PhoneEvent::DeleteCertificate => {
                        let had = match delete(session.config().lsc_der.is_some()) {
                            Ok(had) => had,
                            Err(e) => {
                                tracing::warn!("could not delete the LSC: {e}");
                                false
                            }
                        };
                        deleted = true;
                        session.certificate_deleted(clock.now(), had);
                    }
                    PhoneEvent::Finished => {}
                }
                continue;
            }
            if session.is_finished() {
                break;
            }
            match codec.decode(&mut inbound) {
                Ok(Some(frame)) => {
                    match Message::from_frame(&frame) {
                        Ok(m) => session.handle_message(clock.now(), frame.session_id, m),
                        Err(e) => session.handle_malformed(clock.now(), &e),
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    session.handle_malformed(clock.now(), &e);
                    continue;
                }
            }
            let sleep = session
                .poll_timeout()
                .map(|d| d.duration_since(clock.now()).unwrap_or(Duration::ZERO))
                .unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                biased;
                () = &mut stop, if !stopped => {
                    stopped = true;
                    session.abort(clock.now());
                }
                read = tls.read_buf(&mut inbound) => match read {
                    Ok(0) | Err(_) => session.connection_lost(clock.now()),
                    Ok(_) => {}
                },
                () = tokio::time::sleep(sleep) => session.handle_timeout(clock.now()),
            }
        }
        let status = session.status();
        if status != last_status {
            on_status(&status);
        }
        if !stopped {
            let _ = tokio::time::timeout(Duration::from_secs(1), tls.shutdown()).await;
        }
        let outcome = session
            .outcome()
            .cloned()
            .ok_or_else(|| ServerError::Connect {
                server: server.to_owned(),
                why: "session ended without an outcome".into(),
            })?;
        Ok(PhoneRun {
            outcome,
            installed,
            deleted,
        })
    }

    /// TCP connect and TLS handshake, each within the connect timeout.
    /// A TCP connection to `server`, from the local address if one is set.
    async fn tcp(&self, server: &str) -> std::io::Result<TcpStream> {
        let Some(local) = self.local_address else {
            return TcpStream::connect(server).await;
        };
        let mut last = None;
        for addr in tokio::net::lookup_host(server).await? {
            let socket = if addr.is_ipv4() {
                tokio::net::TcpSocket::new_v4()?
            } else {
                tokio::net::TcpSocket::new_v6()?
            };
            socket.bind(std::net::SocketAddr::new(local, 0))?;
            match socket.connect(addr).await {
                Ok(tcp) => return Ok(tcp),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "no address to connect to")
        }))
    }

    async fn connect(&self, server: &str) -> Result<Box<dyn ClientStream>, ServerError> {
        let connect_err = |why: String| ServerError::Connect {
            server: server.to_owned(),
            why,
        };
        let tcp = tokio::time::timeout(self.connect_timeout, self.tcp(server))
            .await
            .map_err(|_| connect_err("timed out".into()))?
            .map_err(|e| connect_err(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let host = server
            .rsplit_once(':')
            .map_or(server, |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']');
        let name = ServerName::try_from(host.to_owned()).unwrap_or_else(|_| {
            ServerName::try_from("capf")
                .unwrap_or(ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()))
        });
        match &self.transport {
            Transport::Modern(connector) => {
                let tls = tokio::time::timeout(self.connect_timeout, connector.connect(name, tcp))
                    .await
                    .map_err(|_| connect_err("TLS handshake timed out".into()))?
                    .map_err(|e| connect_err(format!("TLS handshake: {e}")))?;
                Ok(Box::new(tls))
            }
            #[cfg(feature = "legacy-tls")]
            Transport::Legacy(trusted) => {
                let tls = tokio::time::timeout(
                    self.connect_timeout,
                    crate::legacy_tls::connect(trusted, tcp),
                )
                .await
                .map_err(|_| connect_err("TLS handshake timed out".into()))?
                .map_err(|e| connect_err(format!("legacy TLS handshake: {e}")))?;
                tracing::debug!(tls = %crate::legacy_tls::describe(&tls), "legacy TLS connected");
                Ok(Box::new(tls))
            }
        }
    }
}
