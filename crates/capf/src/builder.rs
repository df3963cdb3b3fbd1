//! [`Capf`]: CA + auth policy + operations + a device store, composed.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use capf_ca::{CaCertificate, CapfIdentity, Issuer, KeyPolicy, TrustStore};
use capf_operations::{DeviceStore, ServerConfig, ServerSession, ServiceParameters, SessionDriver};

use crate::CapfError;

/// The default device lease: longer than the longest session (a phone may
/// take 30 minutes to generate its key).
const DEFAULT_LEASE: Duration = Duration::from_secs(2 * 60 * 60);

/// Builds a [`Capf`]. Needs an identity and a store; everything else has a
/// default.
#[derive(Default)]
#[must_use]
pub struct CapfBuilder {
    identity: Option<CapfIdentity>,
    issuer: Option<Issuer>,
    store: Option<Arc<dyn DeviceStore>>,
    params: ServiceParameters,
    mic_anchors: Vec<CaCertificate>,
    key_policy: KeyPolicy,
    lease_ttl: Option<Duration>,
}

impl CapfBuilder {
    /// The CAPF identity: the TLS server certificate and key, and the LSC
    /// issuer unless [`issuer`](Self::issuer) names another. Required.
    pub fn identity(mut self, identity: CapfIdentity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// A separate issuing CA for LSCs (default: the identity itself).
    pub fn issuer(mut self, issuer: Issuer) -> Self {
        self.issuer = Some(issuer);
        self
    }

    /// The device database: any [`DeviceStore`] (every
    /// [`StoreBackend`](capf_operations::StoreBackend) is one: SQLite,
    /// the in-memory store, your own). Required.
    pub fn store(mut self, store: Arc<dyn DeviceStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Service parameters (default: [`ServiceParameters::default`]).
    pub fn params(mut self, params: ServiceParameters) -> Self {
        self.params = params;
        self
    }

    /// Trusts a manufacturer CA for MIC authentication (may be repeated).
    pub fn mic_anchor(mut self, certificate: CaCertificate) -> Self {
        self.mic_anchors.push(certificate);
        self
    }

    /// Which phone keys are certified (default: [`KeyPolicy::default`]).
    pub fn key_policy(mut self, policy: KeyPolicy) -> Self {
        self.key_policy = policy;
        self
    }

    /// How long a session holds its device's lease (default 2 hours).
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = Some(ttl);
        self
    }

    /// Composes the parts.
    ///
    /// # Errors
    /// [`CapfError::Missing`] without an identity or a store;
    /// [`CapfError::Ca`] if the identity cannot be used as the issuer.
    pub fn build(self) -> Result<Capf, CapfError> {
        let identity = self
            .identity
            .ok_or(CapfError::Missing { what: "identity" })?;
        let store = self.store.ok_or(CapfError::Missing { what: "store" })?;
        let issuer = match self.issuer {
            Some(issuer) => issuer,
            None => identity.issuer()?,
        };
        let mut trust = TrustStore::for_issuer(&issuer);
        for anchor in self.mic_anchors {
            trust.add_mic_anchor(anchor);
        }
        let mut config = ServerConfig::new(self.params, trust);
        config.key_policy = self.key_policy;
        Ok(Capf {
            identity,
            issuer,
            store,
            config: Arc::new(config),
            lease_ttl: self.lease_ttl.unwrap_or(DEFAULT_LEASE),
        })
    }
}

/// A composed CAPF: start sessions and drive them yourself (sans-IO), or
/// serve phones over TLS (feature `server`).
pub struct Capf {
    identity: CapfIdentity,
    issuer: Issuer,
    store: Arc<dyn DeviceStore>,
    config: Arc<ServerConfig>,
    lease_ttl: Duration,
}

impl std::fmt::Debug for Capf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capf")
            .field("subject", &self.identity.certificate().subject())
            .field("issuer", &self.issuer.certificate().subject())
            .field("params", &self.config.params)
            .finish_non_exhaustive()
    }
}

impl Capf {
    /// Starts building.
    pub fn builder() -> CapfBuilder {
        CapfBuilder::default()
    }

    /// A new server session (one per phone connection). It has already
    /// queued AUTH_REQUEST: pull it with [`ServerSession::poll_transmit`].
    #[must_use]
    pub fn new_session(&self, session_id: u32, now: SystemTime) -> ServerSession {
        ServerSession::new(session_id, self.config.clone(), now)
    }

    /// A session id for a new session: random, never 0, so that ids
    /// neither repeat across restarts nor can be predicted.
    #[must_use]
    pub fn next_session_id(&self) -> u32 {
        capf_operations::new_session_id()
    }

    /// A driver that services a session's events against the store and the
    /// issuer, with the LSC profile of the service parameters. Use one per
    /// session.
    #[must_use]
    pub fn driver(&self) -> SessionDriver<'_, dyn DeviceStore> {
        SessionDriver::new(&*self.store, &self.issuer, self.lease_ttl)
            .with_lsc_profile(self.config.params.lsc_profile())
    }

    /// The device store.
    pub fn store(&self) -> &Arc<dyn DeviceStore> {
        &self.store
    }

    /// The CAPF identity (its certificate goes in the phones' trust list).
    pub fn identity(&self) -> &CapfIdentity {
        &self.identity
    }

    /// The LSC issuer.
    pub fn issuer(&self) -> &Issuer {
        &self.issuer
    }

    /// The session configuration: parameters, trust anchors, key policy.
    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }

    /// Binds the TLS server (use port 0 and
    /// [`CapfServer::local_addrs`](capf_server::CapfServer::local_addrs) in
    /// tests); run it with [`CapfServer::run`](capf_server::CapfServer::run).
    ///
    /// # Errors
    /// [`CapfError::Server`] if an address cannot be bound or TLS cannot be
    /// configured.
    #[cfg(feature = "server")]
    pub async fn bind(
        &self,
        options: capf_server::ServerOptions,
    ) -> Result<capf_server::CapfServer, CapfError> {
        Ok(capf_server::CapfServer::bind(
            &self.identity,
            self.issuer.clone(),
            self.store.clone(),
            (*self.config).clone(),
            options,
        )
        .await?)
    }

    /// Binds and serves phones until `shutdown` completes.
    ///
    /// # Errors
    /// As [`bind`](Self::bind), and whatever the server fails with.
    #[cfg(feature = "server")]
    pub async fn serve(
        &self,
        options: capf_server::ServerOptions,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), CapfError> {
        self.bind(options).await?.run(shutdown).await?;
        Ok(())
    }
}
