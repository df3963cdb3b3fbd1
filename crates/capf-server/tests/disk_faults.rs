//! Disk faults: a store wrapper around the SQLite store whose
//! commits fail on demand (as on a full or failing disk). The phone gets
//! END_SESSION with an error, no certificate leaves without its durable
//! record, the server stays up, and once the fault clears the next attempt
//! enrolls.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use capf_operations::phone::{FailureCause, PhoneConfig, PhoneOutcome};
use capf_operations::{
    AuditEntry, CertificateHistory, Device, DeviceEdit, DeviceName, DevicePage, DeviceQuery,
    Edited, IssuedRecord, Lease, OperationsError, OperatorStore, Reply, SessionCommit,
    SessionStore,
};
use capf_store::SqliteStore;
use common::handset::{Ending, Script, run_scripted};
use common::{Server, auth_string, open_store, runtime_test, wait_lease_free};
use tokio::sync::oneshot;

const LIMIT: Duration = Duration::from_secs(30);

/// Which commits fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Fault {
    None = 0,
    /// `SessionCommit::Issued`: the record of a freshly signed LSC.
    Issued = 1,
    /// `SessionCommit::Completed`: the phone's confirmation.
    Completed = 2,
    /// Every commit (policy, issued, completed, failed).
    All = 3,
}

/// The SQLite store, with commits that fail while a fault is set.
struct FailingStore {
    inner: SqliteStore,
    fault: AtomicU8,
    injected: AtomicU32,
}

impl FailingStore {
    fn set(&self, fault: Fault) {
        self.fault.store(fault as u8, Ordering::SeqCst);
    }

    fn fails(&self, commit: &SessionCommit) -> bool {
        let fault = self.fault.load(Ordering::SeqCst);
        fault == Fault::All as u8
            || (fault == Fault::Issued as u8 && matches!(commit, SessionCommit::Issued(_)))
            || (fault == Fault::Completed as u8
                && matches!(commit, SessionCommit::Completed { .. }))
    }
}

/// What the sessions see: commits fail while a fault is set.
impl SessionStore for FailingStore {
    fn begin(&self, n: &DeviceName, now: SystemTime, ttl: Duration, reply: Reply<(Lease, Device)>) {
        self.inner.begin(n, now, ttl, reply);
    }
    fn commit(&self, lease: &Lease, change: &SessionCommit, release: bool, reply: Reply<Device>) {
        if self.fails(change) {
            self.injected.fetch_add(1, Ordering::SeqCst);
            return reply(Err(OperationsError::store(
                "disk I/O error (injected): database or disk is full",
            )));
        }
        self.inner.commit(lease, change, release, reply);
    }
    fn release(&self, lease: &Lease, reply: Reply<()>) {
        self.inner.release(lease, reply);
    }
}

/// What the operator sees: the SQLite store as it is.
impl OperatorStore for FailingStore {
    fn load(&self, n: &DeviceName) -> Result<Option<Device>, OperationsError> {
        self.inner.load(n)
    }
    fn find(&self, q: &DeviceQuery) -> Result<DevicePage, OperationsError> {
        self.inner.find(q)
    }
    fn insert(&self, d: &Device, at: SystemTime) -> Result<(), OperationsError> {
        self.inner.insert(d, at)
    }
    fn modify(
        &self,
        n: &DeviceName,
        e: &DeviceEdit,
        at: SystemTime,
    ) -> Result<Edited, OperationsError> {
        self.inner.modify(n, e, at)
    }
    fn remove(&self, n: &DeviceName, at: SystemTime) -> Result<bool, OperationsError> {
        self.inner.remove(n, at)
    }
    fn certificate_history(
        &self,
        n: &DeviceName,
    ) -> Result<Vec<CertificateHistory>, OperationsError> {
        self.inner.certificate_history(n)
    }
    fn audit_log(&self, n: &DeviceName) -> Result<Vec<AuditEntry>, OperationsError> {
        self.inner.audit_log(n)
    }
    fn record_issued(&self, r: &IssuedRecord, at: SystemTime) -> Result<(), OperationsError> {
        self.inner.record_issued(r, at)
    }
    fn record_event(&self, e: &AuditEntry) -> Result<(), OperationsError> {
        self.inner.record_event(e)
    }
}

/// A server over a `FailingStore` (no fault set) on the data directory
/// `root`, with the service parameters stored there.
async fn start(root: &Path) -> Server<FailingStore> {
    let inner = open_store(root);
    let params = inner.load_parameters().unwrap();
    let store = Arc::new(FailingStore {
        inner,
        fault: AtomicU8::new(Fault::None as u8),
        injected: AtomicU32::new(0),
    });
    Server::start_on(root, store, params, common::options(root)).await
}

/// A phone that reports any certificate it is sent (and stops there).
/// Returns the certificate, if one came, and how the session ended.
async fn watched_phone(
    server: &Server<FailingStore>,
    n: &str,
    string: &str,
) -> (Option<Vec<u8>>, Ending) {
    let (cert_tx, mut cert_rx) = oneshot::channel();
    let (_release, held) = oneshot::channel::<()>();
    let ending = tokio::time::timeout(
        LIMIT,
        run_scripted(
            server.addr.clone(),
            server.tls(),
            PhoneConfig::new(n, auth_string(string)),
            Script {
                hold_at_store: Some((cert_tx, held)),
                ..Script::default()
            },
        ),
    )
    .await
    .expect("phone within the limit");
    (cert_rx.try_recv().ok(), ending)
}

/// The phone heard END_SESSION(7) (the server's error), nothing else.
fn assert_ended_in_error(ending: &Ending) {
    match ending {
        Ending::Finished {
            outcome: PhoneOutcome::Failed(f),
            installed: None,
        } => match &f.cause {
            FailureCause::Refused(r) | FailureCause::EndedByServer(r) => {
                assert_eq!(u8::from(*r), 7, "{f:?}")
            }
            other => panic!("expected END_SESSION(7), got {other:?}"),
        },
        other => panic!("expected a failed session without a certificate, got {other:?}"),
    }
}

/// The record of a signed LSC cannot be written: the certificate is never
/// sent, the phone hears END_SESSION(7), nothing is recorded as issued, the
/// operation stays pending with its string armed; the server keeps serving,
/// and once the disk is back the next attempt enrolls.
#[test]
fn failing_issued_record_sends_no_certificate_and_the_retry_enrolls() {
    runtime_test(async {
        let tmp = tempfile::tempdir().unwrap();
        let server = start(tmp.path()).await;
        server.add_install("SEP00000000D001", "12121212");
        server.store.set(Fault::Issued);
        for _ in 0..3 {
            let (cert, ending) = watched_phone(&server, "SEP00000000D001", "12121212").await;
            assert!(cert.is_none(), "a certificate left without its record");
            assert_ended_in_error(&ending);
            wait_lease_free(&server.store, "SEP00000000D001").await;
        }
        assert_eq!(server.store.injected.load(Ordering::SeqCst), 3);
        assert!(server.issued("SEP00000000D001").is_empty());
        let d = server.load("SEP00000000D001");
        assert_eq!(d.status_label(), "Install/Upgrade pending");
        assert!(d.policy.auth_string.is_some());
        assert!(d.lsc.is_none());

        server.store.set(Fault::None);
        let der = server.enroll("SEP00000000D001", "12121212").await;
        let issued = server.issued("SEP00000000D001");
        assert_eq!(issued.len(), 1);
        assert_eq!(issued[0].certificate.der, der);
        assert!(issued[0].delivered);
        server.stop().await;
    });
}

/// Every commit fails (policy counters included): every phone hears
/// END_SESSION(7) and none gets a certificate, whether its string is right
/// or wrong; nothing changes on disk; then the disk comes back and the
/// device enrolls.
#[test]
fn failing_every_commit_ends_sessions_in_error_and_changes_nothing() {
    runtime_test(async {
        let tmp = tempfile::tempdir().unwrap();
        let server = start(tmp.path()).await;
        server.add_install("SEP00000000D002", "34343434");
        let before = server.load("SEP00000000D002");
        server.store.set(Fault::All);
        for string in ["34343434", "99999999", "34343434"] {
            let (cert, ending) = watched_phone(&server, "SEP00000000D002", string).await;
            assert!(cert.is_none(), "a certificate left without its record");
            assert_ended_in_error(&ending);
            wait_lease_free(&server.store, "SEP00000000D002").await;
        }
        assert!(server.store.injected.load(Ordering::SeqCst) >= 3);
        let after = server.load("SEP00000000D002");
        assert_eq!(after.policy, before.policy, "nothing was committed");
        assert!(server.issued("SEP00000000D002").is_empty());

        server.store.set(Fault::None);
        server.enroll("SEP00000000D002", "34343434").await;
        server.stop().await;
    });
}

/// The phone's confirmation cannot be recorded: the operation is not
/// marked successful (END_SESSION(7), string still armed, the certificate
/// recorded but not delivered); the retry issues a new one and completes.
#[test]
fn failing_completion_marks_nothing_successful_and_the_retry_completes() {
    runtime_test(async {
        let tmp = tempfile::tempdir().unwrap();
        let server = start(tmp.path()).await;
        server.add_install("SEP00000000D003", "56565656");
        server.store.set(Fault::Completed);
        let client = server.client();
        let run = tokio::time::timeout(
            LIMIT,
            client.run(
                &server.addr,
                PhoneConfig::new("SEP00000000D003", auth_string("56565656")),
            ),
        )
        .await
        .unwrap()
        .unwrap();
        assert!(!run.outcome.is_success(), "{:?}", run.outcome);
        wait_lease_free(&server.store, "SEP00000000D003").await;
        assert_eq!(server.store.injected.load(Ordering::SeqCst), 1);
        let d = server.load("SEP00000000D003");
        assert_eq!(d.status_label(), "Install/Upgrade pending");
        assert!(d.policy.auth_string.is_some());
        assert!(d.lsc.is_none());
        let issued = server.issued("SEP00000000D003");
        assert_eq!(issued.len(), 1);
        assert!(!issued[0].delivered);

        server.store.set(Fault::None);
        let der = server.enroll("SEP00000000D003", "56565656").await;
        let issued = server.issued("SEP00000000D003");
        assert_eq!(issued.len(), 2);
        assert_ne!(
            issued[0].certificate.serial_hex,
            issued[1].certificate.serial_hex
        );
        assert_eq!(issued.iter().filter(|r| r.delivered).count(), 1);
        assert_eq!(issued[1].certificate.der, der);
        server.stop().await;
    });
}
