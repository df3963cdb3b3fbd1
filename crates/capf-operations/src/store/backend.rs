//! The transaction interface a storage backend implements. Everything a
//! store does (sessions' begin and commit, operator edits) is written once
//! over it, in `rules.rs`; a backend only reads and writes rows.

use std::time::SystemTime;

use crate::{
    Account, AccountName, ApiToken, AuditEntry, AuditQuery, CertificateHistory, Device, DeviceName,
    Lease, OperationsError,
};

fn no_accounts() -> OperationsError {
    OperationsError::Unsupported {
        what: "operator accounts",
    }
}

fn no_tokens() -> OperationsError {
    OperationsError::Unsupported { what: "API tokens" }
}

/// Reads inside a transaction (or against the last committed state).
pub trait StoreReads {
    /// The device record, or `None`.
    fn device(&mut self, name: &DeviceName) -> Result<Option<Device>, OperationsError>;

    /// Every device, ordered by name.
    fn devices(&mut self) -> Result<Vec<Device>, OperationsError>;

    /// The lease row of a device, expired or not, or `None`.
    fn lease(&mut self, name: &DeviceName) -> Result<Option<Lease>, OperationsError>;

    /// The device record and its lease row together (what a session's
    /// every change reads first). The default reads one, then the other; a
    /// backend may read both at once (one statement).
    fn device_and_lease(
        &mut self,
        name: &DeviceName,
    ) -> Result<(Option<Device>, Option<Lease>), OperationsError> {
        Ok((self.device(name)?, self.lease(name)?))
    }

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

    /// The entries of the whole audit log that match `query` (see
    /// [`AuditQuery::matches`]), newest first (by time, then the latest
    /// appended first), at most `query.limit`.
    ///
    /// The default refuses ([`OperationsError::Unsupported`]): a backend
    /// that keeps only the device rows need not search its log.
    fn find_audit(&mut self, query: &AuditQuery) -> Result<Vec<AuditEntry>, OperationsError> {
        let _ = query;
        Err(OperationsError::Unsupported {
            what: "a searchable audit log",
        })
    }

    /// An operator account, or `None`. In a write transaction, the first
    /// read or write of accounts or tokens excludes every other process's
    /// account changes until the transaction ends (the last-admin rule
    /// reads all accounts, then writes one).
    ///
    /// This and the other account and token rows default to refusing
    /// ([`OperationsError::Unsupported`]), for backends that keep devices
    /// only; every backend of this workspace keeps them.
    fn account(&mut self, name: &AccountName) -> Result<Option<Account>, OperationsError> {
        let _ = name;
        Err(no_accounts())
    }

    /// Every operator account, by name.
    fn accounts(&mut self) -> Result<Vec<Account>, OperationsError> {
        Err(no_accounts())
    }

    /// An API token by id, or `None`.
    fn token(&mut self, id: &str) -> Result<Option<ApiToken>, OperationsError> {
        let _ = id;
        Err(no_tokens())
    }

    /// Every API token, oldest first (by creation time, then id).
    fn tokens(&mut self) -> Result<Vec<ApiToken>, OperationsError> {
        Err(no_tokens())
    }
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

    /// Inserts an issued certificate unless one with its serial is
    /// recorded already: then nothing is written and that one is returned.
    /// The default reads, then writes; a backend may do both in one
    /// statement.
    fn insert_certificate(
        &mut self,
        certificate: &CertificateHistory,
    ) -> Result<Option<CertificateHistory>, OperationsError> {
        if let Some(existing) = self.certificate(&certificate.record.certificate.serial_hex)? {
            return Ok(Some(existing));
        }
        self.put_certificate(certificate)?;
        Ok(None)
    }

    /// Marks the certificate with serial `serial_hex` delivered, at `at`
    /// unless it was already (the first delivery's time stays), if it was
    /// issued to `device`; returns it as it now is, or `None` (no such
    /// certificate of this device: nothing is written). The default reads,
    /// then writes; a backend may do both in one statement.
    fn mark_delivered(
        &mut self,
        serial_hex: &str,
        device: &DeviceName,
        at: SystemTime,
    ) -> Result<Option<CertificateHistory>, OperationsError> {
        match self.certificate(serial_hex)? {
            Some(mut history) if &history.record.device == device => {
                history.record.delivered = true;
                history.delivered_at.get_or_insert(at);
                self.put_certificate(&history)?;
                Ok(Some(history))
            }
            _ => Ok(None),
        }
    }

    /// Appends to the audit log.
    fn append_audit(&mut self, entry: &AuditEntry) -> Result<(), OperationsError>;

    /// Inserts or replaces an operator account (keyed by name).
    fn put_account(&mut self, account: &Account) -> Result<(), OperationsError> {
        let _ = account;
        Err(no_accounts())
    }

    /// Deletes an operator account; `false` if there was none.
    fn delete_account(&mut self, name: &AccountName) -> Result<bool, OperationsError> {
        let _ = name;
        Err(no_accounts())
    }

    /// Inserts or replaces an API token (keyed by id).
    fn put_token(&mut self, token: &ApiToken) -> Result<(), OperationsError> {
        let _ = token;
        Err(no_tokens())
    }

    /// Deletes an API token; `false` if there was none.
    fn delete_token(&mut self, id: &str) -> Result<bool, OperationsError> {
        let _ = id;
        Err(no_tokens())
    }
}

/// What a change says it will touch: the hint of
/// [`StoreBackend::write_touching`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Touching {
    /// Devices (and their leases) it will read or write.
    pub devices: Vec<DeviceName>,
    /// Issued certificates it will read, by serial (hex, as recorded).
    pub certificates: Vec<String>,
}

impl Touching {
    /// A change on `device`.
    #[must_use]
    pub fn device(device: &DeviceName) -> Self {
        Self {
            devices: vec![device.clone()],
            certificates: Vec::new(),
        }
    }

    /// ... that will also read the certificate with serial `serial_hex`.
    #[must_use]
    pub fn and_certificate(mut self, serial_hex: &str) -> Self {
        self.certificates.push(serial_hex.to_owned());
        self
    }
}

/// A storage backend: runs changes in write transactions and reads.
///
/// Implement this (SQLite, PostgreSQL, an application's own database, the
/// in-memory [`MemoryStore`](crate::MemoryStore)) and the store contract
/// comes with it: [`SessionStore`](crate::SessionStore),
/// [`OperatorStore`](crate::OperatorStore) and
/// [`AccountStore`](crate::AccountStore) are implemented for every
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
///   changes them until it ends. The same holds for the operator accounts
///   and tokens taken as one whole: a change that reads or writes any of
///   them sees every committed account change, and no other process
///   changes accounts or tokens until it ends.
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

    /// [`write`](Self::write) of a change that says what it will touch
    /// (it may touch more). A hint: a backend may hold those devices and
    /// read them and those certificates ahead, together with the other
    /// changes of its batch, in one round trip to its database. The
    /// default ignores it.
    fn write_touching<T, C, D>(&self, touching: &Touching, change: C, done: D)
    where
        T: Send + 'static,
        C: FnOnce(&mut dyn StoreTransaction) -> Result<T, OperationsError> + Send + 'static,
        D: FnOnce(Result<T, OperationsError>) + Send + 'static,
    {
        let _ = touching;
        self.write(change, done);
    }

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
