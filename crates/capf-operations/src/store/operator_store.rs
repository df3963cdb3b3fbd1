//! What operators (the command line, a web console, an embedding
//! application) need from a store.

use std::time::SystemTime;

use crate::{
    AuditEntry, CertificateHistory, Device, DeviceEdit, DeviceName, DevicePage, DeviceQuery,
    Edited, IssuedRecord, OperationsError,
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

    /// Records a certificate issued outside a session (offline issuance):
    /// kept in the history like every certificate this CAPF issued, never
    /// delivered, never the device's LSC on record. Refused with
    /// [`OperationsError::SerialConflict`] for a serial already recorded.
    fn record_issued(&self, record: &IssuedRecord, at: SystemTime) -> Result<(), OperationsError>;

    /// Appends an entry to the audit log (the device need not exist). The
    /// detail must never hold a secret.
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
