//! What operators (the command line, a web console, an embedding
//! application) need from a store.

use std::time::SystemTime;

use crate::{
    AuditEntry, AuditQuery, CertificateHistory, Device, DeviceEdit, DeviceName, DevicePage,
    DeviceQuery, Edited, IssuedRecord, OperationsError,
};

/// The store as an operator sees it. Every
/// [`StoreBackend`](crate::StoreBackend) implements it with the shared
/// rules. Calls block until the change is durable.
pub trait OperatorStore: Send + Sync {
    /// The device record, or `None` if it is not configured.
    fn load(&self, name: &DeviceName) -> Result<Option<Device>, OperationsError>;

    /// Devices matching a query, one page of them.
    fn find(&self, query: &DeviceQuery) -> Result<DevicePage, OperationsError>;

    /// Adds a device (and an `added` audit entry); fails with
    /// [`OperationsError::DeviceExists`] if one with the same name exists.
    fn insert(&self, device: &Device, at: SystemTime) -> Result<(), OperationsError>;

    /// Applies `edit` to the device as it is inside one transaction, and
    /// records what changed in the audit log. An edit that changes what a
    /// running session depends on is refused with
    /// [`OperationsError::DeviceBusy`] while a session holds the device
    /// (see [`DeviceEdit`]).
    fn modify(
        &self,
        name: &DeviceName,
        edit: &DeviceEdit,
        at: SystemTime,
    ) -> Result<Edited, OperationsError>;

    /// Removes a device; `false` if it did not exist. Refused with
    /// [`OperationsError::DeviceBusy`] while a session holds it. Its
    /// issued certificates and audit log stay.
    fn remove(&self, name: &DeviceName, at: SystemTime) -> Result<bool, OperationsError>;

    /// Every certificate issued to a device, oldest first, with what
    /// became of it.
    fn certificate_history(
        &self,
        name: &DeviceName,
    ) -> Result<Vec<CertificateHistory>, OperationsError>;

    /// The audit log of a device, oldest first.
    fn audit_log(&self, name: &DeviceName) -> Result<Vec<AuditEntry>, OperationsError>;

    /// Searches the whole audit log, every device's entries and those
    /// about no device (operator accounts and tokens): the entries that
    /// match every criterion of `query`, newest first (by time, then the
    /// latest recorded first), at most `query.limit` of them. Refused with
    /// [`OperationsError::InvalidQuery`] when `since` is after `until`.
    ///
    /// Every [`StoreBackend`](crate::StoreBackend) implements it; the
    /// default, for a store that wraps another, refuses with
    /// [`OperationsError::Unsupported`] (forward it to the inner store).
    fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, OperationsError> {
        let _ = query;
        Err(OperationsError::Unsupported {
            what: "a searchable audit log",
        })
    }

    /// Records a certificate issued outside a session (offline issuance):
    /// kept in the history like every certificate this CAPF issued, never
    /// delivered, never the device's LSC on record. Refused with
    /// [`OperationsError::SerialConflict`] for a serial already recorded.
    fn record_issued(&self, record: &IssuedRecord, at: SystemTime) -> Result<(), OperationsError>;

    /// Appends an entry to the audit log (the device need not exist; an
    /// entry may be about no device, and may name who did it: see
    /// [`AuditEntry::by`]). The detail must never hold a secret.
    ///
    /// The store records no entry for changes to accounts and tokens
    /// ([`AccountStore`](crate::AccountStore) calls carry neither a time
    /// nor an actor): whoever changes them records it here, with
    /// [`AuditEntry::account_added`] and its siblings, so that the web
    /// console and the command line spell these entries alike.
    fn record_event(&self, entry: &AuditEntry) -> Result<(), OperationsError>;

    /// Every certificate issued to a device, oldest first.
    fn issued_certificates(&self, name: &DeviceName) -> Result<Vec<IssuedRecord>, OperationsError> {
        Ok(self
            .certificate_history(name)?
            .into_iter()
            .map(|h| h.record)
            .collect())
    }
}
