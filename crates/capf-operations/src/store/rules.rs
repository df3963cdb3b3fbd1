//! The rules of the store, written once over the transaction interface:
//! every [`StoreBackend`] is a [`SessionStore`], an [`OperatorStore`] and
//! an [`AccountStore`] through these functions.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use capf_auth::AuthenticatedBy;

use crate::{
    Account, AccountName, AccountStore, ApiToken, AuditEntry, AuditQuery, CertificateHistory,
    CompletedWork, Device, DeviceChange, DeviceEdit, DeviceName, DevicePage, DeviceQuery, Edited,
    IssuedRecord, Lease, OperationsError, OperatorStore, Reply, RetrievedKind, Role, SessionCommit,
    SessionStore, StoreBackend, StoreTransaction, Touching,
};

fn unknown(name: &DeviceName) -> OperationsError {
    OperationsError::UnknownDevice {
        name: name.to_string(),
    }
}

fn busy(name: &DeviceName) -> OperationsError {
    OperationsError::DeviceBusy {
        name: name.to_string(),
    }
}

/// A lease token: random, below 2^63 (so that it fits a signed 64-bit
/// column), never 0.
fn new_token() -> Result<u64, OperationsError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| OperationsError::store(e.to_string()))?;
    Ok((u64::from_le_bytes(bytes) >> 1).max(1))
}

/// Takes the lease on a device and loads it.
pub(crate) fn begin_in(
    tx: &mut dyn StoreTransaction,
    name: &DeviceName,
    now: SystemTime,
    ttl: Duration,
) -> Result<(Lease, Device), OperationsError> {
    let (device, held) = tx.device_and_lease(name)?;
    let device = device.ok_or_else(|| unknown(name))?;
    if held.is_some_and(|held| held.is_held_at(now)) {
        return Err(busy(name));
    }
    let lease = Lease {
        device: name.clone(),
        token: new_token()?,
        expires: now
            .checked_add(ttl)
            .ok_or(OperationsError::TimeOutOfRange {
                what: "lease expiry",
            })?,
    };
    tx.put_lease(&lease)?;
    Ok((lease, device))
}

/// Whether `lease` is still the device's lease. Only the token counts: a
/// lease past its expiry that nobody took over may still commit (an
/// operator edit that changes what sessions depend on drops an expired
/// lease, so its session can no longer commit).
fn holds(tx: &mut dyn StoreTransaction, lease: &Lease) -> Result<bool, OperationsError> {
    Ok(tx
        .lease(&lease.device)?
        .is_some_and(|held| held.token == lease.token))
}

/// A session's change under its lease.
pub(crate) fn commit_in(
    tx: &mut dyn StoreTransaction,
    lease: &Lease,
    change: &SessionCommit,
    release: bool,
) -> Result<Device, OperationsError> {
    let name = &lease.device;
    // Only the token counts (see `holds`), read with the device.
    let (device, held) = tx.device_and_lease(name)?;
    if held.is_none_or(|held| held.token != lease.token) {
        return Err(OperationsError::LeaseLost {
            name: name.to_string(),
        });
    }
    let mut device = device.ok_or_else(|| unknown(name))?;
    let delivered = match change {
        SessionCommit::Issued(record) => {
            if &record.device != name {
                return Err(OperationsError::WrongDevice {
                    change: record.device.to_string(),
                    lease: name.to_string(),
                });
            }
            let serial = &record.certificate.serial_hex;
            match tx.insert_certificate(&CertificateHistory::issued(record.clone()))? {
                None => {}
                // The same record committed again (a retry after an error
                // that hid a success): accepted once.
                Some(existing)
                    if existing.record.device == record.device
                        && existing.record.certificate.der == record.certificate.der => {}
                Some(existing) => {
                    return Err(OperationsError::SerialConflict {
                        serial: serial.clone(),
                        device: existing.record.device.to_string(),
                    });
                }
            }
            None
        }
        SessionCommit::Completed {
            work: CompletedWork::Installed { serial_hex },
            at,
            ..
        } => tx
            .mark_delivered(serial_hex, name, *at)?
            .map(|history| history.record),
        _ => None,
    };
    let lsc_before = device.lsc.as_ref().map(|c| c.serial_hex.clone());
    device.apply_commit(change, delivered.as_ref());
    if let (Some(old), SessionCommit::Completed { at, .. }) = (lsc_before, change) {
        let now_on_record = device.lsc.as_ref().map(|c| c.serial_hex.as_str());
        if now_on_record != Some(old.as_str())
            && let Some(mut history) = tx.certificate(&old)?
            && &history.record.device == name
            && history.superseded_at.is_none()
            && history.deleted_at.is_none()
        {
            if now_on_record.is_none() {
                history.deleted_at = Some(*at);
            } else {
                history.superseded_at = Some(*at);
            }
            tx.put_certificate(&history)?;
        }
    }
    tx.put_device(&device)?;
    for entry in audit_entries(name, change) {
        tx.append_audit(&entry)?;
    }
    if release {
        tx.delete_lease(name)?;
    }
    Ok(device)
}

/// Gives a lease back if it is still held.
pub(crate) fn release_in(
    tx: &mut dyn StoreTransaction,
    lease: &Lease,
) -> Result<(), OperationsError> {
    if holds(tx, lease)? {
        tx.delete_lease(&lease.device)?;
    }
    Ok(())
}

pub(crate) fn insert_in(
    tx: &mut dyn StoreTransaction,
    device: &Device,
    at: SystemTime,
) -> Result<(), OperationsError> {
    if tx.device(&device.name)?.is_some() {
        return Err(OperationsError::DeviceExists {
            name: device.name.to_string(),
        });
    }
    let mut device = device.clone();
    device.sync_certificate_flags();
    tx.put_device(&device)?;
    let mut detail = format!("authentication mode {}", device.policy.auth_mode);
    if device.policy.operation.is_pending() {
        detail.push_str(&format!(", operation {}", device.policy.operation.label()));
    }
    tx.append_audit(&AuditEntry::new(at, &device.name, "added", detail))
}

pub(crate) fn modify_in(
    tx: &mut dyn StoreTransaction,
    name: &DeviceName,
    edit: &DeviceEdit,
    at: SystemTime,
) -> Result<Edited, OperationsError> {
    let (device, held) = tx.device_and_lease(name)?;
    let mut device = device.ok_or_else(|| unknown(name))?;
    if edit.touches_session() {
        match held {
            Some(held) if held.is_held_at(at) => return Err(busy(name)),
            // The session that held it ran out of time: it must not commit
            // over what the operator now changes.
            Some(_) => tx.delete_lease(name)?,
            None => {}
        }
    }
    let revoked_serial = match (&edit.revoke_lsc, &device.lsc) {
        (Some(_), Some(lsc)) => Some(lsc.serial_hex.clone()),
        _ => None,
    };
    let changes = edit.apply(&mut device, at)?;
    if let Some(serial) = revoked_serial
        && let Some(mut history) = tx.certificate(&serial)?
        && &history.record.device == name
    {
        history.revoked_at.get_or_insert(at);
        tx.put_certificate(&history)?;
    }
    tx.put_device(&device)?;
    let detail = if changes.is_empty() {
        "no change".to_owned()
    } else {
        changes.join(", ")
    };
    tx.append_audit(&AuditEntry::new(at, name, "changed", detail))?;
    Ok(Edited { device, changes })
}

pub(crate) fn remove_in(
    tx: &mut dyn StoreTransaction,
    name: &DeviceName,
    at: SystemTime,
) -> Result<bool, OperationsError> {
    if tx.lease(name)?.is_some_and(|held| held.is_held_at(at)) {
        return Err(busy(name));
    }
    let existed = tx.delete_device(name)?;
    if existed {
        tx.append_audit(&AuditEntry::new(at, name, "removed", "device removed"))?;
    }
    Ok(existed)
}

pub(crate) fn record_issued_in(
    tx: &mut dyn StoreTransaction,
    record: &IssuedRecord,
    at: SystemTime,
) -> Result<(), OperationsError> {
    let serial = &record.certificate.serial_hex;
    if let Some(existing) = tx.certificate(serial)? {
        return Err(OperationsError::SerialConflict {
            serial: serial.clone(),
            device: existing.record.device.to_string(),
        });
    }
    let mut record = record.clone();
    record.delivered = false;
    tx.put_certificate(&CertificateHistory::issued(record.clone()))?;
    tx.append_audit(&AuditEntry::new(
        at,
        &record.device,
        "issued-offline",
        format!(
            "serial {} subject {}, issued outside a session (not the LSC on record)",
            serial, record.certificate.subject
        ),
    ))
}

/// A password hash must look like one: a PHC string (`$argon2id$...`),
/// never a password by mistake.
fn check_password_hash(name: &AccountName, hash: &str) -> Result<(), OperationsError> {
    if hash.starts_with('$') && hash.len() > 1 && !hash.chars().any(char::is_whitespace) {
        Ok(())
    } else {
        Err(OperationsError::InvalidAccount {
            name: name.to_string(),
            reason: "a password hash is a PHC string ($argon2id$...), never a password".into(),
        })
    }
}

/// A token's id: 1 to 64 characters from `A-Z a-z 0-9 . _ -`; its secret
/// hash: SHA-256 as 64 lower-case hex digits; its label: at most 200
/// characters.
fn check_token(token: &ApiToken) -> Result<(), OperationsError> {
    let invalid = |reason: &str| OperationsError::InvalidAccount {
        name: crate::escape_text(&token.id).into_owned(),
        reason: reason.to_owned(),
    };
    let id_ok = !token.id.is_empty()
        && token.id.len() <= 64
        && token
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !id_ok {
        return Err(invalid(
            "a token id has 1 to 64 characters from A-Z, a-z, 0-9, '.', '_', '-'",
        ));
    }
    let hash_ok = token.secret_sha256.len() == 64
        && token
            .secret_sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !hash_ok {
        return Err(invalid(
            "a token's secret is kept as its SHA-256, 64 lower-case hex digits, never in clear",
        ));
    }
    if token.label.chars().count() > 200 {
        return Err(invalid("a token label has at most 200 characters"));
    }
    Ok(())
}

/// Refuses to take the admin role away from `account` if no other account
/// is an admin.
fn keep_an_admin(tx: &mut dyn StoreTransaction, account: &Account) -> Result<(), OperationsError> {
    if account.role != Role::Admin {
        return Ok(());
    }
    let another = tx
        .accounts()?
        .iter()
        .any(|a| a.role == Role::Admin && a.name != account.name);
    if another {
        Ok(())
    } else {
        Err(OperationsError::LastAdmin {
            name: account.name.to_string(),
        })
    }
}

pub(crate) fn add_account_in(
    tx: &mut dyn StoreTransaction,
    account: &Account,
) -> Result<(), OperationsError> {
    check_password_hash(&account.name, &account.password_hash)?;
    if tx.account(&account.name)?.is_some() {
        return Err(OperationsError::AccountExists {
            what: "account",
            name: account.name.to_string(),
        });
    }
    tx.put_account(account)
}

pub(crate) fn set_password_in(
    tx: &mut dyn StoreTransaction,
    name: &AccountName,
    password_hash: &str,
    at: SystemTime,
) -> Result<bool, OperationsError> {
    check_password_hash(name, password_hash)?;
    let Some(mut account) = tx.account(name)? else {
        return Ok(false);
    };
    password_hash.clone_into(&mut account.password_hash);
    account.password_changed_at = at;
    tx.put_account(&account)?;
    Ok(true)
}

pub(crate) fn set_role_in(
    tx: &mut dyn StoreTransaction,
    name: &AccountName,
    role: Role,
) -> Result<bool, OperationsError> {
    let Some(mut account) = tx.account(name)? else {
        return Ok(false);
    };
    if role != Role::Admin {
        keep_an_admin(tx, &account)?;
    }
    account.role = role;
    tx.put_account(&account)?;
    Ok(true)
}

pub(crate) fn remove_account_in(
    tx: &mut dyn StoreTransaction,
    name: &AccountName,
) -> Result<bool, OperationsError> {
    let Some(account) = tx.account(name)? else {
        return Ok(false);
    };
    keep_an_admin(tx, &account)?;
    tx.delete_account(name)
}

pub(crate) fn add_token_in(
    tx: &mut dyn StoreTransaction,
    token: &ApiToken,
) -> Result<(), OperationsError> {
    check_token(token)?;
    if tx.token(&token.id)?.is_some() {
        return Err(OperationsError::AccountExists {
            what: "token",
            name: token.id.clone(),
        });
    }
    tx.put_token(token)
}

/// The audit entries a session's change produces.
pub(crate) fn audit_entries(device: &DeviceName, change: &SessionCommit) -> Vec<AuditEntry> {
    let entry = |at, event: &str, detail: String| AuditEntry::new(at, device, event, detail);
    match change {
        SessionCommit::Policy {
            update,
            refusal,
            mic,
            at,
        } => {
            let mut out = Vec::new();
            if let Some(mic) = mic {
                out.push(entry(
                    *at,
                    "mic-recorded",
                    format!(
                        "subject {} issuer {} serial {} SHA-256 {}",
                        mic.subject,
                        mic.issuer,
                        mic.serial_hex,
                        mic.fingerprint_sha256()
                    ),
                ));
            }
            if let Some(reason) = refusal {
                out.push(entry(*at, "refused", reason.clone()));
            }
            if update.lock {
                out.push(entry(
                    *at,
                    "lockout",
                    "too many wrong authentication strings".into(),
                ));
            }
            if let Some((reason, _)) = update.operation_failed {
                out.push(entry(*at, "operation-failed", reason.to_string()));
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
                AuthenticatedBy::Lsc { .. } => "LSC on record",
                AuthenticatedBy::Mic { .. } => "MIC",
            };
            let what = match work {
                CompletedWork::Installed { serial_hex } => {
                    return vec![
                        entry(*at, "delivered", format!("serial {serial_hex}")),
                        entry(
                            *at,
                            "completed",
                            format!("install/upgrade, authenticated by {by}"),
                        ),
                    ];
                }
                CompletedWork::Retrieved(certs) => format!(
                    "troubleshoot: fetched {}",
                    certs
                        .iter()
                        .map(|(k, c)| match k {
                            RetrievedKind::Unverified => format!(
                                "an unverified certificate (subject {}, issuer {}, serial {}), not recorded",
                                c.subject, c.issuer, c.serial_hex
                            ),
                            _ => format!("{} serial {}", k.as_str(), c.serial_hex),
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                CompletedWork::Deleted => "delete".to_owned(),
            };
            vec![entry(
                *at,
                "completed",
                format!("{what}, authenticated by {by}"),
            )]
        }
        SessionCommit::Failed {
            reason,
            operation_failed,
            at,
            ..
        } => {
            let mut out = vec![entry(*at, "failed", reason.clone())];
            if let Some(failure) = operation_failed {
                out.push(entry(*at, "operation-failed", failure.to_string()));
            }
            out
        }
    }
}

impl<B: StoreBackend> SessionStore for B {
    fn begin(
        &self,
        name: &DeviceName,
        now: SystemTime,
        ttl: Duration,
        reply: Reply<(Lease, Device)>,
    ) {
        // Answered as soon as the change ran, before it is durable (see
        // `SessionStore::begin`); if it never ran or failed, when the
        // backend reports.
        let early = Arc::new(Mutex::new(Some(reply)));
        let late = early.clone();
        let name = name.clone();
        self.write_touching(
            &Touching::device(&name),
            move |tx| {
                let begun = begin_in(tx, &name, now, ttl)?;
                if let Some(reply) = early.lock().unwrap_or_else(PoisonError::into_inner).take() {
                    reply(Ok(begun));
                }
                Ok(())
            },
            move |result: Result<(), OperationsError>| {
                if let Some(reply) = late.lock().unwrap_or_else(PoisonError::into_inner).take() {
                    reply(result.and(Err(OperationsError::Unanswered)));
                }
            },
        );
    }

    fn commit(&self, lease: &Lease, change: &SessionCommit, release: bool, reply: Reply<Device>) {
        let touching = match change {
            SessionCommit::Issued(record) => {
                Touching::device(&lease.device).and_certificate(&record.certificate.serial_hex)
            }
            SessionCommit::Completed {
                work: CompletedWork::Installed { serial_hex },
                ..
            } => Touching::device(&lease.device).and_certificate(serial_hex),
            _ => Touching::device(&lease.device),
        };
        let (lease, change) = (lease.clone(), change.clone());
        self.write_touching(
            &touching,
            move |tx| commit_in(tx, &lease, &change, release),
            reply,
        );
    }

    fn release(&self, lease: &Lease, reply: Reply<()>) {
        let touching = Touching::device(&lease.device);
        let lease = lease.clone();
        self.write_touching(&touching, move |tx| release_in(tx, &lease), reply);
    }

    fn health(&self, reply: Reply<()>) {
        match self.check_writable() {
            Ok(()) => self.write(|_| Ok(()), reply),
            Err(e) => reply(Err(e)),
        }
    }
}

impl<B: StoreBackend> OperatorStore for B {
    fn load(&self, name: &DeviceName) -> Result<Option<Device>, OperationsError> {
        self.read(|r| r.device(name))
    }

    fn find(&self, query: &DeviceQuery) -> Result<DevicePage, OperationsError> {
        query.run(self.read(|r| r.devices())?)
    }

    fn insert(&self, device: &Device, at: SystemTime) -> Result<(), OperationsError> {
        let device = device.clone();
        self.write_and_wait(move |tx| insert_in(tx, &device, at))
    }

    fn modify(
        &self,
        name: &DeviceName,
        edit: &DeviceEdit,
        at: SystemTime,
    ) -> Result<Edited, OperationsError> {
        let (name, edit) = (name.clone(), edit.clone());
        self.write_and_wait(move |tx| modify_in(tx, &name, &edit, at))
    }

    fn remove(&self, name: &DeviceName, at: SystemTime) -> Result<bool, OperationsError> {
        let name = name.clone();
        self.write_and_wait(move |tx| remove_in(tx, &name, at))
    }

    /// Every change is queued with the backend before the first answer is
    /// awaited: a backend with group commit takes them together.
    fn apply_all(
        &self,
        changes: Vec<DeviceChange>,
        at: SystemTime,
    ) -> Vec<Result<Option<Edited>, OperationsError>> {
        let answers: Vec<_> = changes
            .into_iter()
            .map(|change| {
                let (answer, answered) = std::sync::mpsc::sync_channel(1);
                let done = move |result| {
                    let _ = answer.send(result);
                };
                match change {
                    DeviceChange::Insert(device) => self.write_touching(
                        &Touching::device(&device.name),
                        move |tx| insert_in(tx, &device, at).map(|()| None),
                        done,
                    ),
                    DeviceChange::Modify(name, edit) => self.write_touching(
                        &Touching::device(&name),
                        move |tx| modify_in(tx, &name, &edit, at).map(Some),
                        done,
                    ),
                }
                answered
            })
            .collect();
        answers
            .into_iter()
            .map(|answered| answered.recv().unwrap_or(Err(OperationsError::Unanswered)))
            .collect()
    }

    fn certificate_history(
        &self,
        name: &DeviceName,
    ) -> Result<Vec<CertificateHistory>, OperationsError> {
        self.read(|r| r.certificates(name))
    }

    fn audit_log(&self, name: &DeviceName) -> Result<Vec<AuditEntry>, OperationsError> {
        self.read(|r| r.audit(name))
    }

    fn record_issued(&self, record: &IssuedRecord, at: SystemTime) -> Result<(), OperationsError> {
        let record = record.clone();
        self.write_and_wait(move |tx| record_issued_in(tx, &record, at))
    }

    fn record_event(&self, entry: &AuditEntry) -> Result<(), OperationsError> {
        let entry = entry.clone();
        self.write_and_wait(move |tx| tx.append_audit(&entry))
    }

    fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, OperationsError> {
        query.check()?;
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        self.read(|r| r.find_audit(query))
    }
}

impl<B: StoreBackend> AccountStore for B {
    fn account(&self, name: &AccountName) -> Result<Option<Account>, OperationsError> {
        self.read(|r| r.account(name))
    }

    fn accounts(&self) -> Result<Vec<Account>, OperationsError> {
        self.read(|r| r.accounts())
    }

    fn add_account(&self, account: &Account) -> Result<(), OperationsError> {
        let account = account.clone();
        self.write_and_wait(move |tx| add_account_in(tx, &account))
    }

    fn set_password(
        &self,
        name: &AccountName,
        password_hash: &str,
        at: SystemTime,
    ) -> Result<bool, OperationsError> {
        let (name, hash) = (name.clone(), password_hash.to_owned());
        self.write_and_wait(move |tx| set_password_in(tx, &name, &hash, at))
    }

    fn set_role(&self, name: &AccountName, role: Role) -> Result<bool, OperationsError> {
        let name = name.clone();
        self.write_and_wait(move |tx| set_role_in(tx, &name, role))
    }

    fn remove_account(&self, name: &AccountName) -> Result<bool, OperationsError> {
        let name = name.clone();
        self.write_and_wait(move |tx| remove_account_in(tx, &name))
    }

    fn token(&self, id: &str) -> Result<Option<ApiToken>, OperationsError> {
        self.read(|r| r.token(id))
    }

    fn tokens(&self) -> Result<Vec<ApiToken>, OperationsError> {
        self.read(|r| r.tokens())
    }

    fn add_token(&self, token: &ApiToken) -> Result<(), OperationsError> {
        let token = token.clone();
        self.write_and_wait(move |tx| add_token_in(tx, &token))
    }

    fn remove_token(&self, id: &str) -> Result<bool, OperationsError> {
        let id = id.to_owned();
        self.write_and_wait(move |tx| tx.delete_token(&id))
    }
}
