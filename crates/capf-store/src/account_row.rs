//! Operator accounts and API tokens as rows of `accounts` and
//! `api_tokens`: hashes only, never a password or a token secret.

use capf_operations::rows::{AccountRow, TokenRow};
use capf_operations::{Account, AccountName, ApiToken};
use rusqlite::{Connection, OptionalExtension, Row};

use crate::StoreError;

const ACCOUNT_COLUMNS: &str = "name, role, password_hash, created_at_ns, password_changed_at_ns";

fn read_account(row: &Row<'_>) -> rusqlite::Result<AccountRow> {
    Ok(AccountRow {
        name: row.get(0)?,
        role: row.get(1)?,
        password_hash: row.get(2)?,
        created_at_ns: row.get(3)?,
        password_changed_at_ns: row.get(4)?,
    })
}

fn read_token(row: &Row<'_>) -> rusqlite::Result<TokenRow> {
    Ok(TokenRow {
        id: row.get(0)?,
        label: row.get(1)?,
        role: row.get(2)?,
        secret_sha256: row.get(3)?,
        created_at_ns: row.get(4)?,
        created_by: row.get(5)?,
    })
}

pub(crate) fn load(conn: &Connection, name: &AccountName) -> Result<Option<Account>, StoreError> {
    let context = || format!("reading account {name}");
    let row = crate::cached::query_row(
        conn,
        &format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE name = ?1"),
        [name.as_str()],
        read_account,
    )
    .optional()
    .map_err(StoreError::sqlite_with(context))?;
    Ok(row.map(AccountRow::into_account).transpose()?)
}

/// Every account, by name.
pub(crate) fn load_all(conn: &Connection) -> Result<Vec<Account>, StoreError> {
    let context = || "reading the accounts".to_owned();
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY name"
        ))
        .map_err(StoreError::sqlite_with(context))?;
    let rows = stmt
        .query_map([], read_account)
        .map_err(StoreError::sqlite_with(context))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(
            row.map_err(StoreError::sqlite_with(context))?
                .into_account()?,
        );
    }
    Ok(out)
}

/// Inserts or replaces an account.
pub(crate) fn save(conn: &Connection, account: &Account) -> Result<(), StoreError> {
    let r = AccountRow::from_account(account)?;
    crate::cached::execute(
        conn,
        "INSERT INTO accounts (name, role, password_hash, created_at_ns, password_changed_at_ns) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (name) DO UPDATE SET role = excluded.role, \
         password_hash = excluded.password_hash, created_at_ns = excluded.created_at_ns, \
         password_changed_at_ns = excluded.password_changed_at_ns",
        (
            &r.name,
            &r.role,
            &r.password_hash,
            r.created_at_ns,
            r.password_changed_at_ns,
        ),
    )
    .map(|_| ())
    .map_err(StoreError::sqlite(format!(
        "saving account {}",
        account.name
    )))
}

pub(crate) fn delete(conn: &Connection, name: &AccountName) -> Result<bool, StoreError> {
    crate::cached::execute(
        conn,
        "DELETE FROM accounts WHERE name = ?1",
        [name.as_str()],
    )
    .map(|n| n > 0)
    .map_err(StoreError::sqlite(format!("removing account {name}")))
}

const TOKEN_COLUMNS: &str = "id, label, role, secret_sha256, created_at_ns, created_by";

pub(crate) fn load_token(conn: &Connection, id: &str) -> Result<Option<ApiToken>, StoreError> {
    let row = crate::cached::query_row(
        conn,
        &format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = ?1"),
        [id],
        read_token,
    )
    .optional()
    .map_err(StoreError::sqlite("reading an API token"))?;
    Ok(row.map(TokenRow::into_token).transpose()?)
}

/// Every token, oldest first.
pub(crate) fn load_tokens(conn: &Connection) -> Result<Vec<ApiToken>, StoreError> {
    let context = || "reading the API tokens".to_owned();
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at_ns, id"
        ))
        .map_err(StoreError::sqlite_with(context))?;
    let rows = stmt
        .query_map([], read_token)
        .map_err(StoreError::sqlite_with(context))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(
            row.map_err(StoreError::sqlite_with(context))?
                .into_token()?,
        );
    }
    Ok(out)
}

/// Inserts or replaces a token.
pub(crate) fn save_token(conn: &Connection, token: &ApiToken) -> Result<(), StoreError> {
    let r = TokenRow::from_token(token)?;
    crate::cached::execute(
        conn,
        "INSERT INTO api_tokens (id, label, role, secret_sha256, created_at_ns, created_by) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO UPDATE SET label = excluded.label, \
         role = excluded.role, secret_sha256 = excluded.secret_sha256, \
         created_at_ns = excluded.created_at_ns, created_by = excluded.created_by",
        (
            &r.id,
            &r.label,
            &r.role,
            &r.secret_sha256,
            r.created_at_ns,
            &r.created_by,
        ),
    )
    .map(|_| ())
    .map_err(StoreError::sqlite("saving an API token"))
}

pub(crate) fn delete_token(conn: &Connection, id: &str) -> Result<bool, StoreError> {
    crate::cached::execute(conn, "DELETE FROM api_tokens WHERE id = ?1", [id])
        .map(|n| n > 0)
        .map_err(StoreError::sqlite("removing an API token"))
}
