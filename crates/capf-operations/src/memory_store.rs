//! An in-memory store backend: for tests, examples and embedders who keep
//! devices elsewhere. Not durable.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

use crate::{
    Account, AccountName, ApiToken, AuditEntry, AuditQuery, CertificateHistory, Device, DeviceName,
    Lease, OperationsError, StoreBackend, StoreReads, StoreTransaction,
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
    /// The whole audit log, in the order appended.
    audit: Vec<AuditEntry>,
    /// Per device, the positions of its entries in `audit`.
    audit_of: HashMap<DeviceName, Vec<usize>>,
    accounts: BTreeMap<AccountName, Account>,
    tokens: HashMap<String, ApiToken>,
}

/// How to undo one write of a change that failed.
enum Undo {
    Device(DeviceName, Option<Box<Device>>),
    Lease(DeviceName, Option<Lease>),
    Certificate(String, Option<CertificateHistory>),
    IssuedTo(DeviceName),
    /// The last entry appended (and its device's index entry, if any).
    Audit(Option<DeviceName>),
    Account(AccountName, Option<Account>),
    Token(String, Option<ApiToken>),
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
                Undo::Audit(device) => {
                    t.audit.pop();
                    if let Some(list) = device.and_then(|d| t.audit_of.get_mut(&d)) {
                        list.pop();
                    }
                }
                Undo::Account(name, Some(a)) => {
                    t.accounts.insert(name, a);
                }
                Undo::Account(name, None) => {
                    t.accounts.remove(&name);
                }
                Undo::Token(id, Some(token)) => {
                    t.tokens.insert(id, token);
                }
                Undo::Token(id, None) => {
                    t.tokens.remove(&id);
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
        Ok(self
            .audit_of
            .get(device)
            .into_iter()
            .flatten()
            .filter_map(|&i| self.audit.get(i).cloned())
            .collect())
    }

    fn find_audit(&mut self, query: &AuditQuery) -> Result<Vec<AuditEntry>, OperationsError> {
        let candidates: Box<dyn Iterator<Item = &AuditEntry>> = match &query.device {
            Some(device) => Box::new(
                self.audit_of
                    .get(device)
                    .into_iter()
                    .flatten()
                    .filter_map(|&i| self.audit.get(i)),
            ),
            None => Box::new(self.audit.iter()),
        };
        // Appended order, so that a stable sort by time keeps the latest
        // appended first among equal times once reversed.
        let mut found: Vec<&AuditEntry> = candidates.filter(|e| query.matches(e)).collect();
        found.sort_by_key(|e| e.at);
        Ok(found.into_iter().rev().take(query.limit).cloned().collect())
    }

    fn account(&mut self, name: &AccountName) -> Result<Option<Account>, OperationsError> {
        Ok(self.accounts.get(name).cloned())
    }

    fn accounts(&mut self) -> Result<Vec<Account>, OperationsError> {
        Ok(self.accounts.values().cloned().collect())
    }

    fn token(&mut self, id: &str) -> Result<Option<ApiToken>, OperationsError> {
        Ok(self.tokens.get(id).cloned())
    }

    fn tokens(&mut self) -> Result<Vec<ApiToken>, OperationsError> {
        let mut all: Vec<ApiToken> = self.tokens.values().cloned().collect();
        all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(all)
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

    fn find_audit(&mut self, query: &AuditQuery) -> Result<Vec<AuditEntry>, OperationsError> {
        self.tables.find_audit(query)
    }

    fn account(&mut self, name: &AccountName) -> Result<Option<Account>, OperationsError> {
        self.tables.account(name)
    }

    fn accounts(&mut self) -> Result<Vec<Account>, OperationsError> {
        self.tables.accounts()
    }

    fn token(&mut self, id: &str) -> Result<Option<ApiToken>, OperationsError> {
        self.tables.token(id)
    }

    fn tokens(&mut self) -> Result<Vec<ApiToken>, OperationsError> {
        self.tables.tokens()
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
        let at = self.tables.audit.len();
        self.tables.audit.push(entry.clone());
        if let Some(device) = &entry.device {
            self.tables
                .audit_of
                .entry(device.clone())
                .or_default()
                .push(at);
        }
        self.undo.push(Undo::Audit(entry.device.clone()));
        Ok(())
    }

    fn put_account(&mut self, account: &Account) -> Result<(), OperationsError> {
        let old = self
            .tables
            .accounts
            .insert(account.name.clone(), account.clone());
        self.undo.push(Undo::Account(account.name.clone(), old));
        Ok(())
    }

    fn delete_account(&mut self, name: &AccountName) -> Result<bool, OperationsError> {
        let old = self.tables.accounts.remove(name);
        let existed = old.is_some();
        self.undo.push(Undo::Account(name.clone(), old));
        Ok(existed)
    }

    fn put_token(&mut self, token: &ApiToken) -> Result<(), OperationsError> {
        let old = self.tables.tokens.insert(token.id.clone(), token.clone());
        self.undo.push(Undo::Token(token.id.clone(), old));
        Ok(())
    }

    fn delete_token(&mut self, id: &str) -> Result<bool, OperationsError> {
        let old = self.tables.tokens.remove(id);
        let existed = old.is_some();
        self.undo.push(Undo::Token(id.to_owned(), old));
        Ok(existed)
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
