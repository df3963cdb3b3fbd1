//! The `DeviceStore` contract: what the server needs from a device
//! database, shaped so that SQLite (embedded) and a networked database
//! (PostgreSQL) can both implement it.

use std::time::{Duration, SystemTime};

use crate::{
    Device, DeviceName, DevicePage, DeviceQuery, IssuedRecord, OperationsError, SessionCommit,
};

/// An exclusive, expiring hold on one device: at most one session works on
/// a device at a time. Commits must present it; a lease that expired or was
/// released is refused with [`OperationsError::LeaseLost`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The device held.
    pub device: DeviceName,
    /// The store's token for this hold.
    pub token: u64,
    /// When the hold lapses: another session may then take the device.
    /// Make it longer than the longest session.
    pub expires: SystemTime,
}

/// An entry of the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// When.
    pub at: SystemTime,
    /// The device.
    pub device: DeviceName,
    /// What happened: `issued`, `delivered`, `completed`, `policy`,
    /// `failed`, `operator`...
    pub event: String,
    /// Details (never a secret).
    pub detail: String,
}

/// A device database.
///
/// Methods are synchronous: the server calls them off its async threads
/// (e.g. `spawn_blocking`), and an embedder can back them with anything.
/// Every method that changes state is atomic: it either happens entirely,
/// durably, or not at all.
pub trait DeviceStore: Send + Sync {
    /// The device record, or `None` if it is not configured.
    fn load(&self, name: &DeviceName) -> Result<Option<Device>, OperationsError>;

    /// Adds a device; fails with [`OperationsError::DeviceExists`] if one
    /// with the same name exists.
    fn insert(&self, device: &Device) -> Result<(), OperationsError>;

    /// Replaces a device record (operator edits); fails with
    /// [`OperationsError::UnknownDevice`] if it does not exist.
    fn update(&self, device: &Device) -> Result<(), OperationsError>;

    /// Removes a device; `false` if it did not exist.
    fn remove(&self, name: &DeviceName) -> Result<bool, OperationsError>;

    /// Devices matching a query, one page of them (B36).
    fn find(&self, query: &DeviceQuery) -> Result<DevicePage, OperationsError>;

    /// Takes the exclusive lease on a device for `ttl`. Fails with
    /// [`OperationsError::DeviceBusy`] while another unexpired lease is
    /// held, and [`OperationsError::UnknownDevice`] for an unknown device.
    fn acquire_lease(
        &self,
        name: &DeviceName,
        now: SystemTime,
        ttl: Duration,
    ) -> Result<Lease, OperationsError>;

    /// Gives the lease back (a no-op if it already lapsed).
    fn release_lease(&self, lease: &Lease) -> Result<(), OperationsError>;

    /// Makes a session's change durable, atomically, under its lease, and
    /// returns the device as it now is. Implementations load the current
    /// record, call [`Device::apply_commit`], save it, and keep the issued
    /// certificates and the audit log, in one transaction.
    fn commit(&self, lease: &Lease, commit: &SessionCommit) -> Result<Device, OperationsError>;

    /// [`commit`](Self::commit), then gives the lease back: for a session's
    /// last change ([`ServerSession::commit_ends_session`](crate::ServerSession::commit_ends_session)),
    /// so that the device is free as soon as the change is durable. The
    /// default does the two calls, the release best-effort (a lease that
    /// could not be given back lapses); a store may do both in one
    /// transaction (SQLite does: one write fewer per enrollment). On an
    /// error the lease is still held.
    fn commit_and_release(
        &self,
        lease: &Lease,
        commit: &SessionCommit,
    ) -> Result<Device, OperationsError> {
        let device = self.commit(lease, commit)?;
        let _ = self.release_lease(lease);
        Ok(device)
    }

    /// Takes the lease on a device and loads it: what a session does
    /// first. The default calls [`acquire_lease`](Self::acquire_lease) then
    /// [`load`](Self::load), and gives the lease back if the load fails; a
    /// store may do both at once (SQLite does, in one transaction).
    fn lease_and_load(
        &self,
        name: &DeviceName,
        now: SystemTime,
        ttl: Duration,
    ) -> Result<(Lease, Device), OperationsError> {
        let lease = self.acquire_lease(name, now, ttl)?;
        let loaded = self.load(name).and_then(|device| {
            device.ok_or_else(|| OperationsError::UnknownDevice {
                name: name.to_string(),
            })
        });
        match loaded {
            Ok(device) => Ok((lease, device)),
            Err(e) => {
                let _ = self.release_lease(&lease);
                Err(e)
            }
        }
    }

    /// [`lease_and_load`](Self::lease_and_load) without blocking: `done` gets the answer later, possibly on another
    /// thread, so an async runtime may call this from its workers. A store
    /// that cannot answer that way (the default) hands `done` back; the
    /// caller then makes the blocking calls on a thread that may block.
    ///
    /// The store may answer before the lease is durable, provided that no
    /// other session can take the device meanwhile and that, should the
    /// lease be lost, the session's next [`commit`](Self::commit) fails
    /// with [`OperationsError::LeaseLost`]: nothing durable depends on a
    /// lease alone.
    ///
    /// `done` must return quickly and must not call the store.
    fn lease_and_load_deferred(
        &self,
        name: &DeviceName,
        now: SystemTime,
        ttl: Duration,
        done: Deferred<(Lease, Device)>,
    ) -> Result<(), Deferred<(Lease, Device)>> {
        let _ = (name, now, ttl);
        Err(done)
    }

    /// [`commit`](Self::commit), or [`commit_and_release`](Self::commit_and_release)
    /// when `release`, answered through `done` like
    /// [`lease_and_load_deferred`](Self::lease_and_load_deferred) (the
    /// default hands `done` back).
    fn commit_deferred(
        &self,
        lease: &Lease,
        commit: &SessionCommit,
        release: bool,
        done: Deferred<Device>,
    ) -> Result<(), Deferred<Device>> {
        let _ = (lease, commit, release);
        Err(done)
    }

    /// Every certificate issued to a device, oldest first.
    fn issued_certificates(&self, name: &DeviceName) -> Result<Vec<IssuedRecord>, OperationsError>;

    /// The audit log of a device, oldest first.
    fn audit_log(&self, name: &DeviceName) -> Result<Vec<AuditEntry>, OperationsError>;
}

/// Where a deferred store call
/// ([`DeviceStore::lease_and_load_deferred`], [`DeviceStore::commit_deferred`])
/// delivers its answer.
pub type Deferred<T> = Box<dyn FnOnce(Result<T, OperationsError>) + Send>;

/// The audit entries a commit produces (shared by every store).
pub fn audit_entries(device: &DeviceName, commit: &SessionCommit) -> Vec<AuditEntry> {
    use capf_auth::AuthenticatedBy;
    let entry = |at, event: &str, detail: String| AuditEntry {
        at,
        device: device.clone(),
        event: event.to_owned(),
        detail,
    };
    match commit {
        SessionCommit::Policy {
            update,
            refusal,
            at,
        } => {
            let mut out = Vec::new();
            if let Some(reason) = refusal {
                out.push(entry(*at, "auth-failure", reason.clone()));
            }
            if update.lock {
                out.push(entry(
                    *at,
                    "lockout",
                    "too many wrong authentication strings".into(),
                ));
            }
            out
        }
        SessionCommit::Issued(r) => vec![entry(
            r.issued_at,
            "issued",
            format!(
                "serial {} subject {}",
                r.certificate.serial_hex, r.certificate.subject
            ),
        )],
        SessionCommit::Completed { grant, work, at } => {
            let by = match grant.authenticated_by {
                AuthenticatedBy::AuthString => "authentication string",
                AuthenticatedBy::NullString => "null string",
                AuthenticatedBy::Lsc { .. } => "existing LSC",
                AuthenticatedBy::Mic { .. } => "MIC",
            };
            let what = match work {
                crate::CompletedWork::Installed { serial_hex } => {
                    return vec![
                        entry(*at, "delivered", format!("serial {serial_hex}")),
                        entry(
                            *at,
                            "completed",
                            format!("install/upgrade, authenticated by {by}"),
                        ),
                    ];
                }
                crate::CompletedWork::Retrieved(certs) => format!(
                    "troubleshoot: fetched {}",
                    certs
                        .iter()
                        .map(|(k, c)| format!("{} serial {}", k.as_str(), c.serial_hex))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                crate::CompletedWork::Deleted => "delete".to_owned(),
            };
            vec![entry(
                *at,
                "completed",
                format!("{what}, authenticated by {by}"),
            )]
        }
        SessionCommit::Failed { reason, at, .. } => vec![entry(*at, "failed", reason.clone())],
    }
}
