//! What operators (the command line, a web console, an embedding
//! application) need from a store.

use std::time::SystemTime;

use crate::{
    AuditEntry, AuditQuery, CertificateHistory, Device, DeviceEdit, DeviceName, DevicePage,
    DeviceQuery, Edited, IssuedRecord, OperationsError,
};

/// One change of [`OperatorStore::apply_all`].
#[derive(Clone, Debug)]
pub enum DeviceChange {
    /// Adds a device, as [`OperatorStore::insert`] does.
    Insert(Box<Device>),
    /// Edits a device, as [`OperatorStore::modify`] does.
    Modify(DeviceName, DeviceEdit),
}

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

    /// Applies several changes in their order, each as
    /// [`insert`](Self::insert) or [`modify`](Self::modify) alone would
    /// (the same rules, its own audit entries, its own answer: `None` for
    /// an insert, what the edit did for a modify). A change that fails
    /// leaves no trace and the others still apply. Returns one answer per
    /// change, in order, once every change is durable (or failed).
    ///
    /// For bulk work (an import): a store may commit several of them in
    /// one transaction. Every [`StoreBackend`](crate::StoreBackend) hands
    /// them all to its backend before it waits, so that a backend with
    /// group commit (each change in its own savepoint) commits them
    /// together. The default applies them one after the other.
    fn apply_all(
        &self,
        changes: Vec<DeviceChange>,
        at: SystemTime,
    ) -> Vec<Result<Option<Edited>, OperationsError>> {
        changes
            .into_iter()
            .map(|change| match change {
                DeviceChange::Insert(device) => self.insert(&device, at).map(|()| None),
                DeviceChange::Modify(name, edit) => self.modify(&name, &edit, at).map(Some),
            })
            .collect()
    }

    /// Every certificate issued to a device, oldest first.
    fn issued_certificates(&self, name: &DeviceName) -> Result<Vec<IssuedRecord>, OperationsError> {
        Ok(self
            .certificate_history(name)?
            .into_iter()
            .map(|h| h.record)
            .collect())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use std::time::SystemTime;

    use capf_auth::AuthMode;

    use super::{DeviceChange, OperatorStore};
    use crate::{Device, DeviceEdit, DeviceName, MemoryStore, OperationsError};

    /// Each change of a batch gets its own answer; those that fail leave no
    /// trace and do not stop the others.
    #[test]
    fn apply_all_answers_each_change_in_order() {
        let store = MemoryStore::new();
        let now = SystemTime::now();
        let a = DeviceName::parse("SEP000000000001").unwrap();
        let b = DeviceName::parse("SEP000000000002").unwrap();
        let new = |name: &DeviceName| Box::new(Device::new(name.clone(), AuthMode::NullString));
        let described = DeviceEdit {
            description: Some("desk".to_owned()),
            ..DeviceEdit::default()
        };
        let answers = store.apply_all(
            vec![
                DeviceChange::Insert(new(&a)),
                DeviceChange::Insert(new(&a)),
                DeviceChange::Modify(b.clone(), described.clone()),
                DeviceChange::Modify(a.clone(), described),
            ],
            now,
        );
        assert_eq!(answers.len(), 4);
        assert!(matches!(answers[0], Ok(None)));
        assert!(matches!(
            answers[1],
            Err(OperationsError::DeviceExists { .. })
        ));
        assert!(matches!(
            answers[2],
            Err(OperationsError::UnknownDevice { .. })
        ));
        match &answers[3] {
            Ok(Some(edited)) => assert_eq!(edited.device.description, "desk"),
            other => panic!("{other:?}"),
        }
        assert_eq!(store.load(&a).unwrap().unwrap().description, "desk");
        assert!(store.load(&b).unwrap().is_none());
        assert!(store.apply_all(Vec::new(), now).is_empty());
    }
}
