//! The SQLite store as a [`StoreBackend`]: its transaction interface over
//! the row modules. The store's rules (leases, commits, operator edits)
//! come from capf-operations, the same for every backend.

use capf_operations::{
    Account, AccountName, ApiToken, AuditEntry, AuditQuery, CertificateHistory, Device, DeviceName,
    Lease, OperationsError, StoreBackend, StoreReads, StoreTransaction,
};
use std::time::SystemTime;

use rusqlite::Connection;

use crate::device_row;
use crate::{SqliteStore, StoreError, account_row, audit_row, certificate_row, lease_row};

/// A connection inside a transaction (or, for reads, the reader
/// connection).
struct Rows<'a>(&'a Connection);

impl StoreReads for Rows<'_> {
    fn device(&mut self, name: &DeviceName) -> Result<Option<Device>, OperationsError> {
        Ok(device_row::load(self.0, name)?)
    }

    fn devices(&mut self) -> Result<Vec<Device>, OperationsError> {
        Ok(device_row::load_all(self.0)?)
    }

    fn lease(&mut self, name: &DeviceName) -> Result<Option<Lease>, OperationsError> {
        Ok(lease_row::load(self.0, name)?)
    }

    fn device_and_lease(
        &mut self,
        name: &DeviceName,
    ) -> Result<(Option<Device>, Option<Lease>), OperationsError> {
        Ok(device_row::load_with_lease(self.0, name)?)
    }

    fn certificate(
        &mut self,
        serial_hex: &str,
    ) -> Result<Option<CertificateHistory>, OperationsError> {
        Ok(certificate_row::load(self.0, serial_hex)?)
    }

    fn certificates(
        &mut self,
        device: &DeviceName,
    ) -> Result<Vec<CertificateHistory>, OperationsError> {
        Ok(certificate_row::load_for(self.0, device)?)
    }

    fn audit(&mut self, device: &DeviceName) -> Result<Vec<AuditEntry>, OperationsError> {
        Ok(audit_row::load(self.0, device)?)
    }

    fn find_audit(&mut self, query: &AuditQuery) -> Result<Vec<AuditEntry>, OperationsError> {
        Ok(audit_row::find(self.0, query)?)
    }

    // Accounts need no lock of their own: every change holds the
    // database's write lock (BEGIN IMMEDIATE) until it commits.
    fn account(&mut self, name: &AccountName) -> Result<Option<Account>, OperationsError> {
        Ok(account_row::load(self.0, name)?)
    }

    fn accounts(&mut self) -> Result<Vec<Account>, OperationsError> {
        Ok(account_row::load_all(self.0)?)
    }

    fn token(&mut self, id: &str) -> Result<Option<ApiToken>, OperationsError> {
        Ok(account_row::load_token(self.0, id)?)
    }

    fn tokens(&mut self) -> Result<Vec<ApiToken>, OperationsError> {
        Ok(account_row::load_tokens(self.0)?)
    }
}

impl StoreTransaction for Rows<'_> {
    fn put_device(&mut self, device: &Device) -> Result<(), OperationsError> {
        Ok(device_row::save(self.0, device)?)
    }

    fn delete_device(&mut self, name: &DeviceName) -> Result<bool, OperationsError> {
        // The lease goes with it (ON DELETE CASCADE).
        Ok(crate::cached::execute(
            self.0,
            "DELETE FROM devices WHERE name = ?1",
            [name.as_str()],
        )
        .map(|n| n > 0)
        .map_err(StoreError::sqlite(format!("removing device {name}")))?)
    }

    fn put_lease(&mut self, lease: &Lease) -> Result<(), OperationsError> {
        Ok(lease_row::save(self.0, lease)?)
    }

    fn delete_lease(&mut self, name: &DeviceName) -> Result<(), OperationsError> {
        Ok(lease_row::delete(self.0, name)?)
    }

    fn put_certificate(&mut self, certificate: &CertificateHistory) -> Result<(), OperationsError> {
        Ok(certificate_row::save(self.0, certificate)?)
    }

    fn insert_certificate(
        &mut self,
        certificate: &CertificateHistory,
    ) -> Result<Option<CertificateHistory>, OperationsError> {
        Ok(certificate_row::insert(self.0, certificate)?)
    }

    fn mark_delivered(
        &mut self,
        serial_hex: &str,
        device: &DeviceName,
        at: SystemTime,
    ) -> Result<Option<CertificateHistory>, OperationsError> {
        Ok(certificate_row::mark_delivered(
            self.0, serial_hex, device, at,
        )?)
    }

    fn append_audit(&mut self, entry: &AuditEntry) -> Result<(), OperationsError> {
        Ok(audit_row::append(self.0, entry)?)
    }

    fn put_account(&mut self, account: &Account) -> Result<(), OperationsError> {
        Ok(account_row::save(self.0, account)?)
    }

    fn delete_account(&mut self, name: &AccountName) -> Result<bool, OperationsError> {
        Ok(account_row::delete(self.0, name)?)
    }

    fn put_token(&mut self, token: &ApiToken) -> Result<(), OperationsError> {
        Ok(account_row::save_token(self.0, token)?)
    }

    fn delete_token(&mut self, id: &str) -> Result<bool, OperationsError> {
        Ok(account_row::delete_token(self.0, id)?)
    }
}

/// Changes go to the store's committer thread (group commit: those queued
/// at the same moment share one transaction and one fsync, each in its own
/// savepoint) and are answered after the `COMMIT`; reads of a database
/// file go through a second connection and never wait for a batch.
impl StoreBackend for SqliteStore {
    fn write<T, C, D>(&self, change: C, done: D)
    where
        T: Send + 'static,
        C: FnOnce(&mut dyn StoreTransaction) -> Result<T, OperationsError> + Send + 'static,
        D: FnOnce(Result<T, OperationsError>) + Send + 'static,
    {
        self.with_transaction_then(
            move |conn| change(&mut Rows(conn)).map_err(StoreError::from),
            move |result| done(result.map_err(OperationsError::from)),
        );
    }

    fn read<T, R>(&self, read: R) -> Result<T, OperationsError>
    where
        R: FnOnce(&mut dyn StoreReads) -> Result<T, OperationsError>,
    {
        let conn = self.read()?;
        read(&mut Rows(&conn))
    }

    /// The database file must still exist and be writable by its mode
    /// (an open connection keeps writing to a file whose permissions were
    /// taken away, but the next start would fail: say so now).
    fn check_writable(&self) -> Result<(), OperationsError> {
        let Some(path) = self.path() else {
            return Ok(());
        };
        let meta = std::fs::metadata(path).map_err(|source| {
            OperationsError::from(StoreError::Io {
                path: path.to_path_buf(),
                source,
            })
        })?;
        if meta.permissions().readonly() {
            return Err(OperationsError::store(format!(
                "{} is not writable",
                path.display()
            )));
        }
        Ok(())
    }
}
