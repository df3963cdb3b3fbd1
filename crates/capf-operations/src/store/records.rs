//! What a store keeps besides devices: leases, certificate history, the
//! audit log.

use std::time::SystemTime;

use crate::{DeviceName, IssuedRecord};

/// An exclusive, expiring hold on one device: at most one session works on
/// a device at a time. Commits must present it; a lease that expired and
/// was taken over, or was released, is refused with
/// [`OperationsError::LeaseLost`](crate::OperationsError::LeaseLost).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The device held.
    pub device: DeviceName,
    /// The store's token for this hold (random, so that a token from an
    /// earlier hold never matches a later one).
    pub token: u64,
    /// When the hold lapses: another session may then take the device.
    /// Make it longer than the longest session.
    pub expires: SystemTime,
}

impl Lease {
    /// Whether the hold still excludes others at `now`.
    pub fn is_held_at(&self, now: SystemTime) -> bool {
        self.expires > now
    }
}

/// An entry of the audit log. Never holds a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// When.
    pub at: SystemTime,
    /// The device.
    pub device: DeviceName,
    /// What happened: `issued`, `delivered`, `completed`, `refused`,
    /// `failed`, `lockout`, `added`, `changed`, `removed`, `revoked`...
    pub event: String,
    /// Details.
    pub detail: String,
}

impl AuditEntry {
    /// An entry.
    pub fn new(
        at: SystemTime,
        device: &DeviceName,
        event: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        AuditEntry {
            at,
            device: device.clone(),
            event: event.into(),
            detail: detail.into(),
        }
    }
}

/// A certificate CAPF issued, with what became of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateHistory {
    /// The certificate as issued (its `delivered` flag follows
    /// `delivered_at`).
    pub record: IssuedRecord,
    /// When the phone confirmed it stored it.
    pub delivered_at: Option<SystemTime>,
    /// When a later certificate replaced it as the device's LSC.
    pub superseded_at: Option<SystemTime>,
    /// When a delete operation removed it from the phone.
    pub deleted_at: Option<SystemTime>,
    /// When the operator revoked it.
    pub revoked_at: Option<SystemTime>,
}

impl CertificateHistory {
    /// A certificate just issued: nothing has happened to it yet.
    pub fn issued(record: IssuedRecord) -> Self {
        let delivered_at = record.delivered.then_some(record.issued_at);
        CertificateHistory {
            record,
            delivered_at,
            superseded_at: None,
            deleted_at: None,
            revoked_at: None,
        }
    }

    /// The serial number, lower-case hex.
    pub fn serial_hex(&self) -> &str {
        &self.record.certificate.serial_hex
    }

    /// Whether it was superseded, deleted or revoked.
    pub fn is_retired(&self) -> bool {
        self.superseded_at.is_some() || self.deleted_at.is_some() || self.revoked_at.is_some()
    }
}
