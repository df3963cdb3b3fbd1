//! Versioned schema: an ordered list of SQL scripts, recorded one row per
//! version in `capf_schema_migrations`. Each runs in its own transaction
//! under an advisory lock, so two nodes starting at once migrate once,
//! and a crash leaves the database at the previous version.
//!
//! Never edit a published script: append a new one.

use crate::rows::Conn;

use crate::PostgresError;

/// The schema version this crate writes: the number of migrations.
pub const SCHEMA_VERSION: u32 = 2;

/// Migration `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[V1, V2];

/// The advisory lock that serialises migrations ('CAPF', 0).
pub(crate) const LOCK_CLASS: i32 = 0x4341_5046;

/// The advisory lock a change holds, from its first read or write of
/// operator accounts or API tokens until it commits ('CAPA', 0): account
/// changes of every node run one after the other (the last-admin rule).
pub(crate) const ACCOUNTS_LOCK_CLASS: i32 = 0x4341_5041;

/// Version 2: the same records as the SQLite store's version 3: operator
/// accounts and API tokens (hashes only); the audit log says who did what
/// (`actor`, `NULL` for the CAPF itself), may be about no device (`device`
/// `NULL`: account and token changes), and is searched by time and by
/// actor.
const V2: &str = r#"
CREATE TABLE accounts (
    name                    TEXT PRIMARY KEY,
    role                    TEXT NOT NULL CHECK (role IN ('read-only', 'helpdesk', 'admin')),
    -- A PHC string ($argon2id$...), never a password.
    password_hash           TEXT NOT NULL,
    created_at_ns           BIGINT NOT NULL,
    password_changed_at_ns  BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id              TEXT PRIMARY KEY,
    label           TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('read-only', 'helpdesk', 'admin')),
    -- SHA-256 of the secret, never the secret.
    secret_sha256   TEXT NOT NULL,
    created_at_ns   BIGINT NOT NULL,
    created_by      TEXT
);

ALTER TABLE audit_log ALTER COLUMN device DROP NOT NULL;
ALTER TABLE audit_log ADD COLUMN actor TEXT;
CREATE INDEX audit_log_by_time ON audit_log (at_ns, id);
-- Sessions' entries have no actor: only operators' entries are indexed.
CREATE INDEX audit_log_by_actor ON audit_log (actor, at_ns, id) WHERE actor IS NOT NULL;
"#;

/// Version 1: the same records as the SQLite store's version 2. Times:
/// `*_ns` nanoseconds since 1970, `*_secs` seconds.
const V1: &str = r#"
CREATE TABLE devices (
    name                    TEXT PRIMARY KEY,
    description             TEXT NOT NULL DEFAULT '',
    key_spec                TEXT,
    auth_mode               TEXT NOT NULL,
    -- Clear text on purpose: the operator's report shows it. Restrict
    -- who may read this table.
    auth_string             TEXT,
    failed_attempts         BIGINT NOT NULL DEFAULT 0,
    locked                  BOOLEAN NOT NULL DEFAULT FALSE,
    operation               TEXT NOT NULL DEFAULT 'none',
    completes_by_ns         BIGINT,
    status_kind             TEXT NOT NULL DEFAULT 'idle'
                            CHECK (status_kind IN ('idle', 'pending', 'succeeded', 'failed')),
    status_operation        TEXT,
    status_reason           TEXT,
    status_at_ns            BIGINT,
    security_mode           TEXT NOT NULL DEFAULT 'non-secure',
    has_lsc                 BOOLEAN NOT NULL DEFAULT FALSE,
    has_mic                 BOOLEAN NOT NULL DEFAULT FALSE,
    lsc_der                 BYTEA,
    lsc_subject             TEXT,
    lsc_issuer              TEXT,
    lsc_serial              TEXT,
    lsc_not_before_secs     BIGINT,
    lsc_not_after_secs      BIGINT,
    mic_der                 BYTEA,
    mic_subject             TEXT,
    mic_issuer              TEXT,
    mic_serial              TEXT,
    mic_not_before_secs     BIGINT,
    mic_not_after_secs      BIGINT,
    key_generation_failures BIGINT NOT NULL DEFAULT 0,
    last_error              TEXT,
    last_error_at_ns        BIGINT,
    lsc_revoked_at_ns       BIGINT,
    lsc_revoked_reason      TEXT
);

-- Every certificate CAPF issued, kept after its device is removed. The
-- serial is unique across every node.
CREATE TABLE issued_certificates (
    id                  BIGSERIAL PRIMARY KEY,
    device              TEXT NOT NULL,
    serial              TEXT NOT NULL UNIQUE,
    der                 BYTEA NOT NULL,
    subject             TEXT NOT NULL,
    issuer              TEXT NOT NULL,
    not_before_secs     BIGINT NOT NULL,
    not_after_secs      BIGINT NOT NULL,
    issued_at_ns        BIGINT NOT NULL,
    delivered           BOOLEAN NOT NULL DEFAULT FALSE,
    delivered_at_ns     BIGINT,
    superseded_at_ns    BIGINT,
    deleted_at_ns       BIGINT,
    revoked_at_ns       BIGINT
);
CREATE INDEX issued_certificates_by_device ON issued_certificates (device, id);

-- Never a secret in here. Kept after the device is removed.
CREATE TABLE audit_log (
    id      BIGSERIAL PRIMARY KEY,
    at_ns   BIGINT NOT NULL,
    device  TEXT NOT NULL,
    event   TEXT NOT NULL,
    detail  TEXT NOT NULL
);
CREATE INDEX audit_log_by_device ON audit_log (device, id);

-- Which node holds a device, until when: a dead node's leases lapse.
CREATE TABLE leases (
    device      TEXT PRIMARY KEY REFERENCES devices (name) ON DELETE CASCADE,
    token       BIGINT NOT NULL,
    expires_ns  BIGINT NOT NULL
);

-- Only values that differ from the defaults, as `capf params set` wrote them.
CREATE TABLE service_parameters (
    name    TEXT PRIMARY KEY,
    value   TEXT NOT NULL
);

-- The CAPF this database belongs to: every node must hold its key.
CREATE TABLE capf_identity (
    only_one        BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_one),
    fingerprint     TEXT NOT NULL,
    certificate     BYTEA NOT NULL,
    recorded_at_ns  BIGINT NOT NULL
);
"#;

/// The database's schema version: 0 when it holds no CAPF tables.
pub(crate) fn version(conn: &mut Conn) -> Result<u32, PostgresError> {
    let context = || "reading the schema version".to_owned();
    let rows = conn.query(
        "SELECT to_regclass('capf_schema_migrations') IS NOT NULL",
        &[],
        context,
    )?;
    let exists: bool = rows.first().is_some_and(|r| r.get(0));
    if !exists {
        return Ok(0);
    }
    let rows = conn.query(
        "SELECT max(version) FROM capf_schema_migrations",
        &[],
        context,
    )?;
    let found: Option<i32> = rows.first().and_then(|r| r.get(0));
    Ok(found.map_or(0, |v| v.unsigned_abs()))
}

/// Refuses a newer schema; applies the missing migrations in order.
pub(crate) fn migrate(conn: &mut Conn, target: &str) -> Result<(), PostgresError> {
    let found = version(conn)?;
    if found > SCHEMA_VERSION {
        return Err(too_new(target, found));
    }
    if found == SCHEMA_VERSION {
        return Ok(());
    }
    for (from, script) in (0u32..).zip(MIGRATIONS) {
        if from < found {
            continue;
        }
        conn.batch_execute("BEGIN")?;
        let applied = migrate_one(conn, target, from, script);
        match applied {
            Ok(()) => conn.batch_execute("COMMIT")?,
            Err(e) => {
                conn.discard();
                let _ = conn.batch_execute("ROLLBACK");
                return Err(e);
            }
        }
    }
    Ok(())
}

fn too_new(target: &str, found: u32) -> PostgresError {
    PostgresError::SchemaTooNew {
        target: target.to_owned(),
        found,
        supported: SCHEMA_VERSION,
    }
}

/// Migration `from` -> `from + 1`, inside the caller's transaction.
fn migrate_one(
    conn: &mut Conn,
    target: &str,
    from: u32,
    script: &str,
) -> Result<(), PostgresError> {
    let to = from + 1;
    let context = || format!("migrating the schema from version {from} to {to}");
    let with_context = |e: PostgresError| match e {
        PostgresError::Query { source, .. } => PostgresError::Query {
            context: context(),
            source,
        },
        other => other,
    };
    // Another node may be migrating: wait for it, then look again.
    conn.execute(
        "SELECT pg_advisory_xact_lock($1, 0)",
        &[&LOCK_CLASS],
        context,
    )?;
    conn.batch_execute(
        "CREATE TABLE IF NOT EXISTS capf_schema_migrations (\
             version INTEGER PRIMARY KEY, \
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .map_err(with_context)?;
    let rows = conn.query(
        "SELECT max(version) FROM capf_schema_migrations",
        &[],
        context,
    )?;
    let now: Option<i32> = rows.first().and_then(|r| r.get(0));
    let now = now.map_or(0, |v| v.unsigned_abs());
    if now > SCHEMA_VERSION {
        return Err(too_new(target, now));
    }
    if now > from {
        return Ok(());
    }
    conn.batch_execute(script).map_err(with_context)?;
    let to_column = i32::try_from(to).map_err(|_| too_new(target, to))?;
    conn.execute(
        "INSERT INTO capf_schema_migrations (version) VALUES ($1)",
        &[&to_column],
        context,
    )?;
    Ok(())
}
