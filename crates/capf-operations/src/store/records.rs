//! What a store keeps besides devices: leases, certificate history, the
//! audit log.

use std::time::SystemTime;

use crate::{Account, AccountName, ApiToken, DeviceName, IssuedRecord, OperationsError, Role};

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
///
/// Most entries are about a device (`device` is `Some`): what its sessions
/// and the operators did to it. Changes to operator accounts and API
/// tokens are about no device (`device` is `None`) and have events of
/// their own, `account-*` and `token-*` (see [`AuditEntry::account_added`]
/// and its siblings). Every store keeps both kinds in one log;
/// [`OperatorStore::audit`](crate::OperatorStore::audit) searches it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// When.
    pub at: SystemTime,
    /// The device, or `None` for an entry about no device (operator
    /// accounts and tokens).
    pub device: Option<DeviceName>,
    /// What happened: `issued`, `delivered`, `completed`, `refused`,
    /// `failed`, `lockout`, `added`, `changed`, `removed`, `revoked`...;
    /// without a device: `account-added`, `account-removed`,
    /// `account-role`, `account-password`, `token-created`,
    /// `token-revoked`.
    pub event: String,
    /// Details.
    pub detail: String,
    /// Who did it: an operator account's name (`alice`), or `token:<id>`
    /// for a script's API token. `None` for the CAPF itself: a phone's
    /// session, the server, the command line on the CAPF host.
    pub actor: Option<String>,
}

impl AuditEntry {
    /// An entry about a device, by the CAPF itself (see [`by`](Self::by)).
    pub fn new(
        at: SystemTime,
        device: &DeviceName,
        event: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        AuditEntry {
            at,
            device: Some(device.clone()),
            event: event.into(),
            detail: detail.into(),
            actor: None,
        }
    }

    /// An entry about no device (operator accounts, tokens), by the CAPF
    /// itself (see [`by`](Self::by)).
    pub fn without_device(
        at: SystemTime,
        event: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        AuditEntry {
            at,
            device: None,
            event: event.into(),
            detail: detail.into(),
            actor: None,
        }
    }

    /// The same entry, done by `actor`: an operator account's name, or
    /// `token:<id>` for an API token.
    #[must_use]
    pub fn by(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    /// `account-added`: `account alice, role admin`.
    pub fn account_added(at: SystemTime, account: &Account) -> Self {
        Self::without_device(
            at,
            "account-added",
            format!("account {}, role {}", account.name, account.role),
        )
    }

    /// `account-removed`: `account alice`.
    pub fn account_removed(at: SystemTime, name: &AccountName) -> Self {
        Self::without_device(at, "account-removed", format!("account {name}"))
    }

    /// `account-role`: `account alice, role helpdesk` (the new role).
    pub fn account_role_set(at: SystemTime, name: &AccountName, role: Role) -> Self {
        Self::without_device(at, "account-role", format!("account {name}, role {role}"))
    }

    /// `account-password`: `account alice, password set` (never the
    /// password or its hash).
    pub fn account_password_set(at: SystemTime, name: &AccountName) -> Self {
        Self::without_device(
            at,
            "account-password",
            format!("account {name}, password set"),
        )
    }

    /// `token-created`: `token <id> "<label>", role read-only` (never the
    /// secret or its hash; the label escaped).
    pub fn token_created(at: SystemTime, token: &ApiToken) -> Self {
        Self::without_device(
            at,
            "token-created",
            format!(
                "token {} \"{}\", role {}",
                crate::escape_text(&token.id),
                crate::escape_text(&token.label),
                token.role
            ),
        )
    }

    /// `token-revoked`: `token <id>`.
    pub fn token_revoked(at: SystemTime, id: &str) -> Self {
        Self::without_device(
            at,
            "token-revoked",
            format!("token {}", crate::escape_text(id)),
        )
    }
}

/// A search of the whole audit log
/// ([`OperatorStore::audit`](crate::OperatorStore::audit)): the entries
/// that match every criterion given, newest first (by time, then latest
/// recorded first), at most `limit` of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only this device's entries (`None`: every entry, those about no
    /// device included).
    pub device: Option<DeviceName>,
    /// Only this event (exact: `refused`, `account-added`...).
    pub event: Option<String>,
    /// Only entries by this actor (exact: `alice`, `token:<id>`); entries
    /// by the CAPF itself have no actor and never match.
    pub actor: Option<String>,
    /// Only entries at or after this time.
    pub since: Option<SystemTime>,
    /// Only entries before this time (not at it).
    pub until: Option<SystemTime>,
    /// At most this many entries (the newest). Default 1000.
    pub limit: usize,
}

impl AuditQuery {
    /// The default limit.
    pub const DEFAULT_LIMIT: usize = 1000;

    /// Whether `entry` matches every criterion (the limit aside).
    pub fn matches(&self, entry: &AuditEntry) -> bool {
        self.device
            .as_ref()
            .is_none_or(|d| entry.device.as_ref() == Some(d))
            && self.event.as_ref().is_none_or(|e| &entry.event == e)
            && self
                .actor
                .as_ref()
                .is_none_or(|a| entry.actor.as_ref() == Some(a))
            && self.since.is_none_or(|t| entry.at >= t)
            && self.until.is_none_or(|t| entry.at < t)
    }

    /// Refuses a query that cannot match by mistake: `since` after
    /// `until`.
    ///
    /// # Errors
    /// [`OperationsError::InvalidQuery`].
    pub fn check(&self) -> Result<(), OperationsError> {
        match (self.since, self.until) {
            (Some(since), Some(until)) if since > until => Err(OperationsError::InvalidQuery {
                why: "the audit query's since is after its until".into(),
            }),
            _ => Ok(()),
        }
    }
}

impl Default for AuditQuery {
    fn default() -> Self {
        AuditQuery {
            device: None,
            event: None,
            actor: None,
            since: None,
            until: None,
            limit: Self::DEFAULT_LIMIT,
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
