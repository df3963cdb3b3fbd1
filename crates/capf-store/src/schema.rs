//! Versioned schema: an ordered list of SQL scripts; `PRAGMA user_version`
//! is the number applied. Each runs in its own transaction, so a crash
//! leaves the database at the previous version, never half-migrated.
//!
//! Never edit a published script: append a new one.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use crate::StoreError;

/// The schema version this crate writes: the number of migrations.
pub const SCHEMA_VERSION: u32 = 3;

/// Migration `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[V1, V2, V3];

/// Version 1. Times: `*_ns` nanoseconds since 1970, `*_secs` seconds.
const V1: &str = r#"
CREATE TABLE devices (
    name                    TEXT PRIMARY KEY NOT NULL,
    description             TEXT NOT NULL DEFAULT '',
    key_spec                TEXT,
    auth_mode               TEXT NOT NULL,
    -- Clear text on purpose: the operator's report shows it. The
    -- file is created mode 0600 for this reason.
    auth_string             TEXT,
    failed_attempts         INTEGER NOT NULL DEFAULT 0,
    locked                  INTEGER NOT NULL DEFAULT 0 CHECK (locked IN (0, 1)),
    operation               TEXT NOT NULL DEFAULT 'none',
    completes_by_ns         INTEGER,
    status_kind             TEXT NOT NULL DEFAULT 'idle'
                            CHECK (status_kind IN ('idle', 'pending', 'succeeded', 'failed')),
    status_operation        TEXT,
    status_reason           TEXT,
    status_at_ns            INTEGER,
    security_mode           TEXT NOT NULL DEFAULT 'non-secure',
    has_lsc                 INTEGER NOT NULL DEFAULT 0 CHECK (has_lsc IN (0, 1)),
    has_mic                 INTEGER NOT NULL DEFAULT 0 CHECK (has_mic IN (0, 1)),
    lsc_der                 BLOB,
    lsc_subject             TEXT,
    lsc_issuer              TEXT,
    lsc_serial              TEXT,
    lsc_not_before_secs     INTEGER,
    lsc_not_after_secs      INTEGER,
    mic_der                 BLOB,
    mic_subject             TEXT,
    mic_issuer              TEXT,
    mic_serial              TEXT,
    mic_not_before_secs     INTEGER,
    mic_not_after_secs      INTEGER,
    key_generation_failures INTEGER NOT NULL DEFAULT 0,
    last_error              TEXT,
    last_error_at_ns        INTEGER
) STRICT;

-- Every certificate CAPF issued, kept after its device is removed.
CREATE TABLE issued_certificates (
    id                  INTEGER PRIMARY KEY,
    device              TEXT NOT NULL,
    serial              TEXT NOT NULL UNIQUE,
    der                 BLOB NOT NULL,
    subject             TEXT NOT NULL,
    issuer              TEXT NOT NULL,
    not_before_secs     INTEGER NOT NULL,
    not_after_secs      INTEGER NOT NULL,
    issued_at_ns        INTEGER NOT NULL,
    delivered           INTEGER NOT NULL DEFAULT 0 CHECK (delivered IN (0, 1)),
    delivered_at_ns     INTEGER,
    superseded_at_ns    INTEGER,
    deleted_at_ns       INTEGER
) STRICT;
CREATE INDEX issued_certificates_by_device ON issued_certificates (device, id);

-- Never a secret in here. Kept after the device is removed.
CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY,
    at_ns   INTEGER NOT NULL,
    device  TEXT NOT NULL,
    event   TEXT NOT NULL,
    detail  TEXT NOT NULL
) STRICT;
CREATE INDEX audit_log_by_device ON audit_log (device, id);

-- In the database, so that two processes on one file exclude each other.
CREATE TABLE leases (
    device      TEXT PRIMARY KEY NOT NULL REFERENCES devices (name) ON DELETE CASCADE,
    token       INTEGER NOT NULL,
    expires_ns  INTEGER NOT NULL
) STRICT;

CREATE TABLE counters (
    name    TEXT PRIMARY KEY NOT NULL,
    value   INTEGER NOT NULL
) STRICT;
INSERT INTO counters (name, value) VALUES ('lease_token', 0);

-- Only values that differ from the defaults, as `capf params set` wrote them.
CREATE TABLE service_parameters (
    name    TEXT PRIMARY KEY NOT NULL,
    value   TEXT NOT NULL
) STRICT;
"#;

/// Version 2: the operator can revoke an LSC; the MIC-fallback parameter
/// is gone (a phone without an LSC always falls back to its MIC).
const V2: &str = r#"
ALTER TABLE devices ADD COLUMN lsc_revoked_at_ns INTEGER;
ALTER TABLE devices ADD COLUMN lsc_revoked_reason TEXT;
ALTER TABLE issued_certificates ADD COLUMN revoked_at_ns INTEGER;
DELETE FROM service_parameters WHERE name = 'lsc_first_mic_fallback';
"#;

/// Version 3: operator accounts and API tokens (hashes only); the audit
/// log says who did what (`actor`, `NULL` for the CAPF itself) and may be
/// about no device (`device` `NULL`: account and token changes), and is
/// searched by time and by actor. The audit log is rebuilt to let
/// `device` be `NULL` (SQLite cannot drop a `NOT NULL`), keeping every
/// entry and its id.
const V3: &str = r#"
CREATE TABLE accounts (
    name                    TEXT PRIMARY KEY NOT NULL,
    role                    TEXT NOT NULL CHECK (role IN ('read-only', 'helpdesk', 'admin')),
    -- A PHC string ($argon2id$...), never a password.
    password_hash           TEXT NOT NULL,
    created_at_ns           INTEGER NOT NULL,
    password_changed_at_ns  INTEGER NOT NULL
) STRICT;

CREATE TABLE api_tokens (
    id              TEXT PRIMARY KEY NOT NULL,
    label           TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('read-only', 'helpdesk', 'admin')),
    -- SHA-256 of the secret, never the secret.
    secret_sha256   TEXT NOT NULL,
    created_at_ns   INTEGER NOT NULL,
    created_by      TEXT
) STRICT;

CREATE TABLE audit_log_v3 (
    id      INTEGER PRIMARY KEY,
    at_ns   INTEGER NOT NULL,
    device  TEXT,
    event   TEXT NOT NULL,
    detail  TEXT NOT NULL,
    actor   TEXT
) STRICT;
INSERT INTO audit_log_v3 (id, at_ns, device, event, detail)
    SELECT id, at_ns, device, event, detail FROM audit_log;
DROP TABLE audit_log;
ALTER TABLE audit_log_v3 RENAME TO audit_log;
CREATE INDEX audit_log_by_device ON audit_log (device, id);
CREATE INDEX audit_log_by_time ON audit_log (at_ns);
-- Sessions' entries have no actor: only operators' entries are indexed.
CREATE INDEX audit_log_by_actor ON audit_log (actor, at_ns) WHERE actor IS NOT NULL;
"#;

/// The database's schema version.
pub(crate) fn version(conn: &Connection) -> Result<u32, StoreError> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(StoreError::sqlite("reading the schema version"))
}

/// Refuses a newer schema; applies the missing migrations in order.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let too_new = |found| StoreError::SchemaTooNew {
        path: path.to_path_buf(),
        found,
        supported: SCHEMA_VERSION,
    };
    let found = version(conn)?;
    if found > SCHEMA_VERSION {
        return Err(too_new(found));
    }
    for (from, script) in (0u32..).zip(MIGRATIONS) {
        if from < found {
            continue;
        }
        let to = from + 1;
        let context = || format!("migrating the schema from version {from} to {to}");
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::sqlite_with(context))?;
        // Another process may have migrated while we waited for the lock.
        let now = version(&tx)?;
        if now > SCHEMA_VERSION {
            return Err(too_new(now));
        }
        if now > from {
            continue;
        }
        tx.execute_batch(script)
            .map_err(StoreError::sqlite_with(context))?;
        tx.pragma_update(None, "user_version", to)
            .map_err(StoreError::sqlite_with(context))?;
        tx.commit().map_err(StoreError::sqlite_with(context))?;
    }
    Ok(())
}
