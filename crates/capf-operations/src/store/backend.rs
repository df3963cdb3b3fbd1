//! The transaction interface a storage backend implements. Everything a
//! store does (sessions' begin and commit, operator edits) is written once
//! over it, in `rules.rs`; a backend only reads and writes rows.

use crate::{AuditEntry, CertificateHistory, Device, DeviceName, Lease, OperationsError};

/// Reads inside a transaction (or against the last committed state).
pub trait StoreReads {
    /// The device record, or `None`.
    fn device(&mut self, name: &DeviceName) -> Result<Option<Device>, OperationsError>;

    /// Every device, ordered by name.
    fn devices(&mut self) -> Result<Vec<Device>, OperationsError>;

    /// The lease row of a device, expired or not, or `None`.
    fn lease(&mut self, name: &DeviceName) -> Result<Option<Lease>, OperationsError>;

    /// An issued certificate by serial (lower-case hex), whatever its
    /// device.
    fn certificate(
        &mut self,
        serial_hex: &str,
    ) -> Result<Option<CertificateHistory>, OperationsError>;

    /// Every certificate issued to a device, oldest first.
    fn certificates(
        &mut self,
        device: &DeviceName,
    ) -> Result<Vec<CertificateHistory>, OperationsError>;

    /// The audit log of a device, oldest first.
    fn audit(&mut self, device: &DeviceName) -> Result<Vec<AuditEntry>, OperationsError>;
}

/// Writes inside a transaction. Nothing is visible to other transactions
/// before the backend commits, and a change whose closure returns an error
/// leaves no trace (the backend rolls it back).
pub trait StoreTransaction: StoreReads {
    /// Inserts or replaces the device row.
    fn put_device(&mut self, device: &Device) -> Result<(), OperationsError>;

    /// Deletes the device row and its lease; `false` if there was none.
    /// Its certificate history and audit log stay.
    fn delete_device(&mut self, name: &DeviceName) -> Result<bool, OperationsError>;

    /// Inserts or replaces the lease row of `lease.device`.
    fn put_lease(&mut self, lease: &Lease) -> Result<(), OperationsError>;

    /// Deletes the lease row of a device, if any.
    fn delete_lease(&mut self, name: &DeviceName) -> Result<(), OperationsError>;

    /// Inserts or replaces an issued certificate (keyed by serial).
    fn put_certificate(&mut self, certificate: &CertificateHistory) -> Result<(), OperationsError>;

    /// Appends to the audit log.
    fn append_audit(&mut self, entry: &AuditEntry) -> Result<(), OperationsError>;
}

/// A storage backend: runs changes in write transactions and reads.
///
/// Implement this (SQLite, PostgreSQL, an application's own database, the
/// in-memory [`MemoryStore`](crate::MemoryStore)) and the store contract
/// comes with it: [`SessionStore`](crate::SessionStore) and
/// [`OperatorStore`](crate::OperatorStore) are implemented for every
/// backend, with the same rules.
///
/// What a backend guarantees:
/// * **Atomic and durable.** `done` gets `Ok` only once the transaction
///   holding the change is committed durably; an `Err` from `change` rolls
///   back that change alone; if the transaction fails, `done` gets the
///   error and nothing of the change stays.
/// * **Serial.** Changes behave as if run one at a time in the order they
///   were submitted (a backend may batch several in one transaction, each
///   in its own savepoint), and a change sees every earlier change, even
///   one whose transaction is not committed yet. Until its transaction
///   ends, what a change wrote excludes conflicting writers (a lease taken
///   in a batch cannot be taken by another process before the batch
///   commits or rolls back). Processes sharing a database are serialised
///   per device: a change that reads a device or its lease sees every
///   committed change of every process to them, and no other process
///   changes them until it ends.
/// * `done` may be called on any thread, and before `write` returns. It
///   must be quick and must not call the store.
pub trait StoreBackend: Send + Sync {
    /// Runs `change` in a write transaction, then hands its result to
    /// `done` once committed (or failed).
    fn write<T, C, D>(&self, change: C, done: D)
    where
        T: Send + 'static,
        C: FnOnce(&mut dyn StoreTransaction) -> Result<T, OperationsError> + Send + 'static,
        D: FnOnce(Result<T, OperationsError>) + Send + 'static;

    /// Runs `read` against the last committed state and returns its result.
    fn read<T, R>(&self, read: R) -> Result<T, OperationsError>
    where
        R: FnOnce(&mut dyn StoreReads) -> Result<T, OperationsError>;

    /// A quick check that changes can be written (for a health check,
    /// before an empty change is tried): e.g. that the database file is
    /// still writable. The default finds nothing wrong.
    fn check_writable(&self) -> Result<(), OperationsError> {
        Ok(())
    }

    /// [`write`](Self::write), waiting for the answer. Must not be called
    /// from a `done` callback.
    fn write_and_wait<T, C>(&self, change: C) -> Result<T, OperationsError>
    where
        T: Send + 'static,
        C: FnOnce(&mut dyn StoreTransaction) -> Result<T, OperationsError> + Send + 'static,
    {
        let (answer, answered) = std::sync::mpsc::sync_channel(1);
        self.write(change, move |result| {
            let _ = answer.send(result);
        });
        answered.recv().unwrap_or(Err(OperationsError::Unanswered))
    }
}
