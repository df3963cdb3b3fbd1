//! What the router needs: the store, the CAPF certificate, a clock and
//! options; and the in-memory sessions and login counts it keeps.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use capf_ca::CaCertificate;
use capf_operations::{AccountStore, OperationsError, OperatorStore, ServiceParameters};

use crate::AdminError;
use crate::sessions::SessionTable;
use crate::throttle::{LoginThrottle, ThrottleOptions};

/// A store the admin API can work on: devices and audit log
/// ([`OperatorStore`]) and operators ([`AccountStore`]). Implemented for
/// every type that has both.
pub trait AdminStore: OperatorStore + AccountStore {}

impl<T: OperatorStore + AccountStore + ?Sized> AdminStore for T {}

/// The wall clock the router reads (sessions, lockouts, audit times).
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Choices an embedder makes for the router.
#[derive(Clone, Debug)]
pub struct AdminOptions {
    /// A session with no request for this long ends. Default 15 minutes.
    pub idle_timeout: Duration,
    /// Login throttling.
    pub throttle: ThrottleOptions,
    /// Mark the session cookie `Secure` (sent over HTTPS only). Default
    /// true; turn it off only for a plain-HTTP listener on a loopback
    /// address, where browsers would otherwise drop the cookie.
    pub secure_cookie: bool,
    /// Reverse proxies in front of the listener (their addresses as the
    /// listener sees them). A request from one of them is counted, for
    /// login throttling and in the log, under the client address the
    /// proxy gives in `X-Forwarded-For`; a request from anywhere else
    /// under its own address, whatever it says. Default none.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl Default for AdminOptions {
    fn default() -> Self {
        AdminOptions {
            idle_timeout: Duration::from_secs(15 * 60),
            throttle: ThrottleOptions::default(),
            secure_cookie: true,
            trusted_proxies: Vec::new(),
        }
    }
}

/// Everything the router's handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AdminState {
    pub(crate) inner: Arc<Inner>,
}

/// Where the service parameters are kept (the SQLite file's or the
/// PostgreSQL database's table; an embedder's own). Give it to
/// [`AdminState::with_parameters`] for `/api/v1/parameters`.
pub trait ParameterStore: Send + Sync {
    /// The parameters: the defaults with the stored values applied.
    fn load_parameters(&self) -> Result<ServiceParameters, OperationsError>;
    /// Validates and stores one parameter; the parameters as they now are.
    /// An unknown name or a value it does not take is
    /// [`OperationsError::UnknownParameter`] or
    /// [`OperationsError::InvalidParameter`], and nothing changes.
    fn save_parameter(&self, name: &str, value: &str)
    -> Result<ServiceParameters, OperationsError>;
    /// Returns one parameter to its default; the parameters as they now are.
    fn reset_parameter(&self, name: &str) -> Result<ServiceParameters, OperationsError>;
}

/// Service parameters kept in memory (tests, examples; the SQLite and
/// PostgreSQL stores keep them in a table).
#[derive(Default)]
pub struct MemoryParameters(std::sync::Mutex<ServiceParameters>);

impl MemoryParameters {
    fn params(&self) -> std::sync::MutexGuard<'_, ServiceParameters> {
        // Plain values: a panic elsewhere leaves nothing half-changed.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl ParameterStore for MemoryParameters {
    fn load_parameters(&self) -> Result<ServiceParameters, OperationsError> {
        Ok(self.params().clone())
    }

    fn save_parameter(
        &self,
        name: &str,
        value: &str,
    ) -> Result<ServiceParameters, OperationsError> {
        let mut params = self.params();
        params.set(name, value)?;
        Ok(params.clone())
    }

    fn reset_parameter(&self, name: &str) -> Result<ServiceParameters, OperationsError> {
        let default = ServiceParameters::default().get(name).ok_or_else(|| {
            OperationsError::UnknownParameter {
                name: name.to_owned(),
            }
        })?;
        let mut params = self.params();
        params.set(name, &default)?;
        Ok(params.clone())
    }
}

pub(crate) struct Inner {
    pub(crate) parameters: std::sync::OnceLock<Arc<dyn ParameterStore>>,
    pub(crate) store: Arc<dyn AdminStore>,
    pub(crate) ca: CaCertificate,
    pub(crate) clock: Clock,
    pub(crate) options: AdminOptions,
    pub(crate) sessions: SessionTable,
    pub(crate) throttle: LoginThrottle,
}

impl AdminState {
    /// State over `store`, serving `ca_der` (the CAPF certificate, DER) at
    /// `/api/v1/ca/certificate`, with the system clock and default options.
    pub fn new(store: Arc<dyn AdminStore>, ca_der: &[u8]) -> Result<Self, AdminError> {
        Self::with_options(
            store,
            ca_der,
            Arc::new(SystemTime::now),
            AdminOptions::default(),
        )
    }

    /// State with a clock and options of one's own (tests advance the
    /// clock to see sessions idle out and lockouts end).
    pub fn with_options(
        store: Arc<dyn AdminStore>,
        ca_der: &[u8],
        clock: Clock,
        options: AdminOptions,
    ) -> Result<Self, AdminError> {
        let ca =
            CaCertificate::from_der(ca_der, "CAPF certificate").map_err(AdminError::Certificate)?;
        Ok(AdminState {
            inner: Arc::new(Inner {
                parameters: std::sync::OnceLock::new(),
                store,
                ca,
                clock,
                options,
                sessions: SessionTable::default(),
                throttle: LoginThrottle::default(),
            }),
        })
    }

    /// Serves the service parameters from `parameters` at
    /// `/api/v1/parameters` (without it, that answers 404). Set once: a
    /// second call changes nothing.
    #[must_use]
    pub fn with_parameters(self, parameters: Arc<dyn ParameterStore>) -> Self {
        let _ = self.inner.parameters.set(parameters);
        self
    }

    /// The current time.
    pub(crate) fn now(&self) -> SystemTime {
        (self.inner.clock)()
    }

    /// The options.
    pub fn options(&self) -> &AdminOptions {
        &self.inner.options
    }

    /// Runs a blocking store call off the async runtime.
    pub(crate) async fn store<T, F>(&self, call: F) -> Result<T, AdminError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn AdminStore) -> Result<T, AdminError> + Send + 'static,
    {
        let store = Arc::clone(&self.inner.store);
        tokio::task::spawn_blocking(move || call(store.as_ref()))
            .await
            .map_err(|e| AdminError::Task(e.to_string()))?
    }
}
