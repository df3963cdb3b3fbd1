//! An in-memory store backend: for tests, examples and embedders who keep
//! devices elsewhere. Not durable.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

use crate::{
    AuditEntry, CertificateHistory, Device, DeviceName, Lease, OperationsError, StoreBackend,
    StoreReads, StoreTransaction,
};

#[derive(Default)]
struct Tables {
    devices: BTreeMap<DeviceName, Device>,
    leases: HashMap<DeviceName, Lease>,
    /// Issued certificates by serial.
    certificates: HashMap<String, CertificateHistory>,
    /// Per device, serials in issue order (looked up on every commit: a
    /// scan of every certificate made each enrollment cost O(all issued)).
    issued_to: HashMap<DeviceName, Vec<String>>,
    /// Per device, in order.
    audit: HashMap<DeviceName, Vec<AuditEntry>>,
}

/// How to undo one write of a change that failed.
enum Undo {
    Device(DeviceName, Option<Box<Device>>),
    Lease(DeviceName, Option<Lease>),
    Certificate(String, Option<CertificateHistory>),
    IssuedTo(DeviceName),
    Audit(DeviceName),
}

/// A [`StoreBackend`] in memory: each change runs under one lock, and a
/// change that fails is undone.
#[derive(Default)]
pub struct MemoryStore {
    tables: Mutex<Tables>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }
}

/// A change in progress: writes go straight to the tables, with a log to
/// undo them. Dropped without [`keep`](Self::keep) (an error, or a panic
/// in the change), it undoes them.
struct Transaction<'a> {
    tables: &'a mut Tables,
    undo: Vec<Undo>,
}

impl Transaction<'_> {
    /// The change succeeded: its writes stay.
    fn keep(mut self) {
        self.undo.clear();
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        while let Some(undo) = self.undo.pop() {
            let t = &mut *self.tables;
            match undo {
                Undo::Device(name, Some(d)) => {
                    t.devices.insert(name, *d);
                }
                Undo::Device(name, None) => {
                    t.devices.remove(&name);
                }
                Undo::Lease(name, Some(l)) => {
                    t.leases.insert(name, l);
                }
                Undo::Lease(name, None) => {
                    t.leases.remove(&name);
                }
                Undo::Certificate(serial, Some(c)) => {
                    t.certificates.insert(serial, c);
                }
                Undo::Certificate(serial, None) => {
                    t.certificates.remove(&serial);
                }
                Undo::IssuedTo(name) => {
                    if let Some(list) = t.issued_to.get_mut(&name) {
                        list.pop();
                    }
                }
                Undo::Audit(name) => {
                    if let Some(list) = t.audit.get_mut(&name) {
                        list.pop();
                    }
                }
            }
        }
    }
}

impl StoreReads for Tables {
    fn device(&mut self, name: &DeviceName) -> Result<Option<Device>, OperationsError> {
        Ok(self.devices.get(name).cloned())
    }

    fn devices(&mut self) -> Result<Vec<Device>, OperationsError> {
        Ok(self.devices.values().cloned().collect())
    }

    fn lease(&mut self, name: &DeviceName) -> Result<Option<Lease>, OperationsError> {
        Ok(self.leases.get(name).cloned())
    }

    fn certificate(
        &mut self,
        serial_hex: &str,
    ) -> Result<Option<CertificateHistory>, OperationsError> {
        Ok(self.certificates.get(serial_hex).cloned())
    }

    fn certificates(
        &mut self,
        device: &DeviceName,
    ) -> Result<Vec<CertificateHistory>, OperationsError> {
        Ok(self
            .issued_to
            .get(device)
            .into_iter()
            .flatten()
            .filter_map(|serial| self.certificates.get(serial).cloned())
            .collect())
    }

    fn audit(&mut self, device: &DeviceName) -> Result<Vec<AuditEntry>, OperationsError> {
        Ok(self.audit.get(device).cloned().unwrap_or_default())
    }
}

impl StoreReads for Transaction<'_> {
    fn device(&mut self, name: &DeviceName) -> Result<Option<Device>, OperationsError> {
        self.tables.device(name)
    }

    fn devices(&mut self) -> Result<Vec<Device>, OperationsError> {
        self.tables.devices()
    }

    fn lease(&mut self, name: &DeviceName) -> Result<Option<Lease>, OperationsError> {
        self.tables.lease(name)
    }

    fn certificate(
        &mut self,
        serial_hex: &str,
    ) -> Result<Option<CertificateHistory>, OperationsError> {
        self.tables.certificate(serial_hex)
    }

    fn certificates(
        &mut self,
        device: &DeviceName,
    ) -> Result<Vec<CertificateHistory>, OperationsError> {
        self.tables.certificates(device)
    }

    fn audit(&mut self, device: &DeviceName) -> Result<Vec<AuditEntry>, OperationsError> {
        self.tables.audit(device)
    }
}

impl StoreTransaction for Transaction<'_> {
    fn put_device(&mut self, device: &Device) -> Result<(), OperationsError> {
        let old = self
            .tables
            .devices
            .insert(device.name.clone(), device.clone());
        self.undo
            .push(Undo::Device(device.name.clone(), old.map(Box::new)));
        Ok(())
    }

    fn delete_device(&mut self, name: &DeviceName) -> Result<bool, OperationsError> {
        self.delete_lease(name)?;
        let old = self.tables.devices.remove(name);
        let existed = old.is_some();
        self.undo
            .push(Undo::Device(name.clone(), old.map(Box::new)));
        Ok(existed)
    }

    fn put_lease(&mut self, lease: &Lease) -> Result<(), OperationsError> {
        let old = self
            .tables
            .leases
            .insert(lease.device.clone(), lease.clone());
        self.undo.push(Undo::Lease(lease.device.clone(), old));
        Ok(())
    }

    fn delete_lease(&mut self, name: &DeviceName) -> Result<(), OperationsError> {
        let old = self.tables.leases.remove(name);
        self.undo.push(Undo::Lease(name.clone(), old));
        Ok(())
    }

    fn put_certificate(&mut self, certificate: &CertificateHistory) -> Result<(), OperationsError> {
        let serial = certificate.serial_hex().to_owned();
        let old = self
            .tables
            .certificates
            .insert(serial.clone(), certificate.clone());
        if old.is_none() {
            let device = certificate.record.device.clone();
            self.tables
                .issued_to
                .entry(device.clone())
                .or_default()
                .push(serial.clone());
            self.undo.push(Undo::IssuedTo(device));
        }
        self.undo.push(Undo::Certificate(serial, old));
        Ok(())
    }

    fn append_audit(&mut self, entry: &AuditEntry) -> Result<(), OperationsError> {
        self.tables
            .audit
            .entry(entry.device.clone())
            .or_default()
            .push(entry.clone());
        self.undo.push(Undo::Audit(entry.device.clone()));
        Ok(())
    }
}

impl StoreBackend for MemoryStore {
    fn write<T, C, D>(&self, change: C, done: D)
    where
        T: Send + 'static,
        C: FnOnce(&mut dyn StoreTransaction) -> Result<T, OperationsError> + Send + 'static,
        D: FnOnce(Result<T, OperationsError>) + Send + 'static,
    {
        let result = {
            // A change that panicked was undone as the panic dropped its
            // transaction: the tables are whole, so a poisoned lock is
            // taken over.
            let mut tables = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
            let mut tx = Transaction {
                tables: &mut tables,
                undo: Vec::new(),
            };
            let result = change(&mut tx);
            if result.is_ok() {
                tx.keep();
            }
            result
        };
        done(result);
    }

    fn read<T, R>(&self, read: R) -> Result<T, OperationsError>
    where
        R: FnOnce(&mut dyn StoreReads) -> Result<T, OperationsError>,
    {
        let mut tables = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        read(&mut *tables)
    }
}
