//! Shared helpers for the capf-server integration tests: a real
//! `CapfServer` on 127.0.0.1 (ephemeral port) over a real data directory
//! (P-256 CAPF identity, SQLite file) in a temporary directory, and phones.
#![allow(dead_code, unreachable_pub)]

pub mod handset;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use capf_auth::{AuthMode, AuthString, Operation};
use capf_ca::{CaCertificate, CapfIdentity, EcCurve, IdentityParams, Issuer, KeySpec, TrustStore};
use capf_operations::phone::{
    CertificateCredentials, Credentials, FailureCause, PhoneConfig, PhoneOutcome, PhoneSuccess,
};
use capf_operations::{
    Device, DeviceEdit, DeviceName, DeviceStore, IssuedRecord, OperationsError, ServerConfig,
    ServiceParameters, SessionStore,
};
use capf_server::{CapfServer, PhoneClient, PhoneRun, ServerError, ServerOptions};
use capf_store::SqliteStore;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Longest any single phone session may take in these tests.
pub const PHONE_LIMIT: Duration = Duration::from_secs(60);

pub fn name(s: &str) -> DeviceName {
    DeviceName::parse(s).unwrap()
}

pub fn auth_string(s: &str) -> Credentials {
    Credentials::AuthString(s.parse::<AuthString>().unwrap())
}

/// LSC credentials from an installed certificate and its key.
pub fn lsc_credentials(installed: &(Vec<u8>, capf_ca::PrivateKey)) -> Credentials {
    Credentials::Certificate(Box::new(CertificateCredentials {
        kind: capf_ca::CertificateKind::Lsc,
        certificate_der: installed.0.clone().into(),
        key: installed.1.clone(),
        sudi: None,
    }))
}

pub const P256: KeySpec = KeySpec::Ec(EcCurve::P256);
pub const RSA1024: KeySpec = KeySpec::Rsa { bits: 1024 };
pub const RSA2048: KeySpec = KeySpec::Rsa { bits: 2048 };

/// A device scheduled for `operation`, authenticated by `mode`, with
/// `string` armed and `key` requested.
pub fn device(
    n: &str,
    mode: AuthMode,
    operation: Operation,
    string: Option<&str>,
    key: KeySpec,
) -> Device {
    let mut d = Device::new(name(n), mode);
    if let Some(s) = string {
        d.policy.rearm(s.parse::<AuthString>().unwrap());
    }
    d.key = Some(key);
    d.schedule(operation, None).unwrap();
    d
}

/// The database file of a data directory, as `capf init` names it.
pub const DATABASE: &str = "capf.sqlite3";
/// The directory of manufacturer CA certificates (`*.pem`) that `capf
/// serve` trusts for MIC authentication.
pub const MIC_TRUST: &str = "mic-trust";
/// The directory of troubleshoot trace files.
pub const TRACES: &str = "traces";

/// Creates the data directory as `capf init --key p256` does (a P-256 CAPF
/// identity, its `<hash>.0` copy, the database) unless it holds a CAPF
/// identity already. Returns the CAPF identity.
pub fn init_data_dir(root: &Path) -> CapfIdentity {
    if CapfIdentity::exists(root) {
        return CapfIdentity::load(root).unwrap();
    }
    std::fs::create_dir_all(root).unwrap();
    let identity = CapfIdentity::generate(
        &IdentityParams {
            key: KeySpec::Ec(EcCurve::P256),
            ..IdentityParams::default()
        },
        SystemTime::now(),
    )
    .unwrap();
    identity.save(root).unwrap();
    identity.write_hashed_copy(root).unwrap();
    SqliteStore::open(root.join(DATABASE)).unwrap();
    identity
}

/// Opens the database of the data directory `root` (initialised first if
/// needed).
pub fn open_store(root: &Path) -> SqliteStore {
    init_data_dir(root);
    SqliteStore::open(root.join(DATABASE)).unwrap()
}

/// The trust anchors `capf serve` builds from the data directory `root`:
/// `issuer` for LSCs, every certificate in `mic-trust/*.pem` for MICs.
pub fn trust_store(root: &Path, issuer: &Issuer) -> TrustStore {
    let mut trust = TrustStore::for_issuer(issuer);
    if let Ok(entries) = std::fs::read_dir(root.join(MIC_TRUST)) {
        let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
        files.sort();
        for file in files
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "pem"))
        {
            trust
                .add_mic_anchors_pem(&std::fs::read_to_string(file).unwrap())
                .unwrap();
        }
    }
    trust
}

/// Test server options: 127.0.0.1, ephemeral port, traces in the data
/// directory, short shutdown grace.
pub fn options(root: &Path) -> ServerOptions {
    ServerOptions {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        trace_dir: Some(root.join(TRACES)),
        shutdown_grace: Duration::from_secs(2),
        ..ServerOptions::default()
    }
}

/// A running server, as `capf serve` composes it from a data directory,
/// over a SQLite store or (for fault injection) any other `DeviceStore`.
pub struct Server<S: DeviceStore + 'static = SqliteStore> {
    pub root: PathBuf,
    pub store: Arc<S>,
    pub addr: String,
    pub capf_certificate: CaCertificate,
    observer: capf_server::Observer,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServerError>>>,
}

impl Server {
    /// Starts a server on the data directory `root` (initialised if
    /// needed) with the default test options.
    pub async fn start(root: &Path) -> Server {
        Self::start_with(root, options(root)).await
    }

    /// Starts a server on `root` with the service parameters stored there.
    pub async fn start_with(root: &Path, options: ServerOptions) -> Server {
        let store = Arc::new(open_store(root));
        let params = store.load_parameters().unwrap();
        Self::start_on(root, store, params, options).await
    }
}

impl<S: DeviceStore + 'static> Server<S> {
    /// Starts a server on the data directory `root` (initialised if
    /// needed) that keeps its records in `store` and runs with `params`.
    pub async fn start_on(
        root: &Path,
        store: Arc<S>,
        params: ServiceParameters,
        options: ServerOptions,
    ) -> Server<S> {
        let identity = init_data_dir(root);
        let issuer = identity.issuer().unwrap();
        let trust = trust_store(root, &issuer);
        let dyn_store: Arc<dyn SessionStore> = store.clone();
        let server = CapfServer::bind(
            &identity,
            issuer,
            dyn_store,
            ServerConfig::new(params, trust),
            options,
        )
        .await
        .unwrap();
        let observer = server.observer();
        let addrs = server.local_addrs();
        assert_eq!(addrs.len(), 1);
        assert!(addrs[0].ip().is_loopback());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Server {
            root: root.to_path_buf(),
            store,
            addr: addrs[0].to_string(),
            capf_certificate: identity.certificate().clone(),
            observer,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the server gracefully and waits (bounded) until it has; the
    /// store is dropped with it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .expect("server stops within its grace period")
                .expect("server task")
                .expect("server ran");
        }
    }

    /// The client TLS configuration of a phone whose ITL holds this
    /// server's CAPF certificate.
    /// The server's metrics and health.
    pub fn observer(&self) -> capf_server::Observer {
        self.observer.clone()
    }

    pub fn tls(&self) -> Arc<rustls::ClientConfig> {
        Arc::new(capf_server::phone_client_config(vec![self.capf_certificate.clone()]).unwrap())
    }

    pub fn client(&self) -> PhoneClient {
        PhoneClient::new(
            capf_server::phone_client_config(vec![self.capf_certificate.clone()]).unwrap(),
        )
    }

    /// Runs one phone session to its end (bounded), then waits until the
    /// server has released the device's lease.
    pub async fn phone(&self, config: PhoneConfig) -> PhoneRun {
        let device = config.device_name.clone();
        let run = tokio::time::timeout(PHONE_LIMIT, self.client().run(&self.addr, config))
            .await
            .expect("phone session within the limit")
            .expect("phone connected");
        wait_lease_free(&self.store, &device).await;
        run
    }

    pub fn add(&self, device: &Device) {
        self.store.insert(device, SystemTime::now()).unwrap();
    }

    /// Schedules an install of a P-256 LSC on `n`, authenticated by `string`.
    pub fn add_install(&self, n: &str, string: &str) {
        self.add(&device(
            n,
            AuthMode::AuthString,
            Operation::InstallUpgrade,
            Some(string),
            P256,
        ));
    }

    /// Schedules an install of a P-256 LSC on `n`, authenticated by the
    /// null string.
    pub fn add_null_string_install(&self, n: &str) {
        self.add(&device(
            n,
            AuthMode::NullString,
            Operation::InstallUpgrade,
            None,
            P256,
        ));
    }

    pub fn load(&self, n: &str) -> Device {
        self.store.load(&name(n)).unwrap().unwrap()
    }

    /// Every certificate issued to `n`, delivered or not.
    pub fn issued(&self, n: &str) -> Vec<IssuedRecord> {
        self.store.issued_certificates(&name(n)).unwrap()
    }

    /// Changes a device as an operator would: an edit applied inside the
    /// store's transaction.
    pub fn edit(&self, n: &str, edit: DeviceEdit) {
        self.store
            .modify(&name(n), &edit, SystemTime::now())
            .unwrap();
    }

    /// A real phone enrolls `n` with `string`, and the record says so.
    /// Returns the LSC.
    pub async fn enroll(&self, n: &str, string: &str) -> Vec<u8> {
        let run = self.phone(PhoneConfig::new(n, auth_string(string))).await;
        let (der, _) = assert_installed(&run);
        assert_eq!(self.load(n).status_label(), "Install/Upgrade successful");
        der
    }
}

/// Waits (bounded) until no session holds `n`'s lease: the server releases
/// it just after END_SESSION, so a phone that reconnects at once could
/// otherwise be refused as busy.
pub async fn wait_lease_free<S: DeviceStore + 'static>(store: &Arc<S>, n: &str) {
    let device = name(n);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let store2 = store.clone();
        let device2 = device.clone();
        let taken = tokio::task::spawn_blocking(move || {
            store2
                .begin_blocking(&device2, SystemTime::now(), Duration::from_secs(5))
                .map(|(lease, _)| lease)
        })
        .await
        .unwrap();
        match taken {
            Ok(lease) => {
                store.release_blocking(&lease).unwrap();
                return;
            }
            Err(OperationsError::DeviceBusy { .. }) => {}
            Err(OperationsError::UnknownDevice { .. }) => return,
            Err(e) => panic!("taking the lease on {n}: {e}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lease on {n} was not released"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn assert_installed(run: &PhoneRun) -> (Vec<u8>, capf_ca::PrivateKey) {
    assert!(
        matches!(
            run.outcome,
            PhoneOutcome::Succeeded(PhoneSuccess::Installed { .. })
        ),
        "expected an install, got {:?}",
        run.outcome
    );
    let installed = run.installed.clone().expect("the phone stored an LSC");
    if let PhoneOutcome::Succeeded(PhoneSuccess::Installed { certificate_der }) = &run.outcome {
        assert_eq!(certificate_der.as_ref(), installed.0.as_slice());
    }
    installed
}

/// The END_SESSION reason of a refusal right after authentication.
pub fn refused_reason(outcome: &PhoneOutcome) -> u8 {
    match outcome {
        PhoneOutcome::Failed(f) => match &f.cause {
            FailureCause::Refused(r) => u8::from(*r),
            other => panic!("expected a refusal, got {other:?}"),
        },
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Whether the server hung up right after authentication, without
/// END_SESSION (a device busy in another session): the phone takes it as a
/// lost connection, and retries.
pub fn hung_up(outcome: &PhoneOutcome) -> bool {
    matches!(
        outcome,
        PhoneOutcome::Failed(f) if matches!(f.cause, FailureCause::ConnectionLost)
    )
}

/// Runs `f` on a two-thread runtime, bounded to a minute.
pub fn runtime_test<F: std::future::Future<Output = ()>>(f: F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(60), f)
                .await
                .expect("test within its bound");
        });
}

/// An edit that schedules `operation`.
pub fn schedule(operation: Operation) -> DeviceEdit {
    DeviceEdit {
        operation: Some(operation),
        ..DeviceEdit::default()
    }
}
