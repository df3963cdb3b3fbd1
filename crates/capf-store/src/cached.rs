//! `execute` and `query_row` through the connection's statement cache: a
//! session runs the same dozen statements thousands of times a second, and
//! `Connection::execute` would parse each of them every time.

use rusqlite::{Connection, Params, Row};

/// Prepared statements kept per connection (more than the hot path uses).
pub(crate) const CAPACITY: usize = 64;

/// [`Connection::execute`] with a cached statement.
pub(crate) fn execute<P: Params>(
    conn: &Connection,
    sql: &str,
    params: P,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

/// [`Connection::query_row`] with a cached statement.
pub(crate) fn query_row<T, P, F>(
    conn: &Connection,
    sql: &str,
    params: P,
    f: F,
) -> rusqlite::Result<T>
where
    P: Params,
    F: FnOnce(&Row<'_>) -> rusqlite::Result<T>,
{
    conn.prepare_cached(sql)?.query_row(params, f)
}
