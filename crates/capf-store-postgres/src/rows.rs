//! The records as rows: devices, leases, issued certificates and the audit
//! log, through the column mapping every SQL backend shares
//! ([`capf_operations::rows`]).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use capf_operations::rows::{
    AccountRow, AuditParam, AuditRow, AuditSql, CertificateColumns, DeviceRow, IssuedRow, TokenRow,
    from_nanos, nanos_saturating,
};
use capf_operations::{
    Account, AccountName, ApiToken, AuditEntry, AuditQuery, CertificateHistory, Device, DeviceName,
    Lease, OperationsError,
};
use tokio::runtime::Runtime;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, Statement};

use crate::PostgresError;

/// A statement's future, borrowing the client.
type Pending<'c, T> = Pin<Box<dyn Future<Output = Result<T, tokio_postgres::Error>> + 'c>>;

/// A write whose answer nobody waits for: it owns its parameters, and is
/// sent with the next statement someone does wait for.
type Write = Box<dyn for<'c> FnOnce(&'c Client, &'c Statement) -> Pending<'c, u64> + Send>;

/// What a write's row count means: `Some(error)` fails the change though
/// the statement itself succeeded (e.g. an upsert whose `WHERE` refused).
pub(crate) type RowsCheck = Box<dyn FnOnce(u64) -> Option<PostgresError> + Send>;

/// A statement sent later, in the same round trip as others.
enum Deferred {
    /// A prepared statement with its parameters.
    Prepared {
        sql: &'static str,
        context: String,
        write: Write,
        check: Option<RowsCheck>,
    },
    /// A statement without parameters (`SAVEPOINT`, `BEGIN`).
    Simple(&'static str),
}

/// A connection with its prepared statements (each is parsed once per
/// connection), and the writes not sent yet.
///
/// Statements are pipelined: writes whose answer a change does not need
/// ([`defer`](Self::defer)) wait, and go out in one round trip with the
/// next statement whose answer is needed (a read, the end of the change),
/// in the order they were made. The database runs them in that order, each
/// answering in turn; the first one that failed is reported. A read made
/// after a write therefore sees it, and a lock deferred before a read is
/// held when the read starts.
pub(crate) struct Conn {
    /// Drives the client's connection (a task on it) while a statement runs.
    runtime: Runtime,
    client: Client,
    statements: HashMap<&'static str, Statement>,
    deferred: Vec<Deferred>,
    /// How many times queued statements went out (see [`sent`](Self::sent)).
    sends: u64,
}

impl Conn {
    pub(crate) fn new(runtime: Runtime, client: Client) -> Self {
        Self {
            runtime,
            client,
            statements: HashMap::new(),
            deferred: Vec::new(),
            sends: 0,
        }
    }

    /// Whether the connection is gone (the database restarted).
    pub(crate) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    fn statement(&mut self, sql: &'static str, context: &str) -> Result<Statement, PostgresError> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let client = &self.client;
        let statement = self
            .runtime
            .block_on(client.prepare(sql))
            .map_err(PostgresError::query(context))?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    /// Queues a write of `sql`: `write` runs it with the prepared
    /// statement when the queue is sent.
    pub(crate) fn defer(&mut self, sql: &'static str, context: String, write: Write) {
        self.deferred.push(Deferred::Prepared {
            sql,
            context,
            write,
            check: None,
        });
    }

    /// [`defer`](Self::defer), and `check` judges the rows it changed.
    pub(crate) fn defer_checked(
        &mut self,
        sql: &'static str,
        context: String,
        write: Write,
        check: RowsCheck,
    ) {
        self.deferred.push(Deferred::Prepared {
            sql,
            context,
            write,
            check: Some(check),
        });
    }

    /// Queues a statement without parameters.
    pub(crate) fn defer_simple(&mut self, sql: &'static str) {
        self.deferred.push(Deferred::Simple(sql));
    }

    /// Sends the queued statements and waits for their answers.
    pub(crate) fn flush(&mut self) -> Result<(), PostgresError> {
        if self.deferred.is_empty() {
            return Ok(());
        }
        let queued = self.take_queue()?;
        run_pipeline(
            &self.runtime,
            &self.client,
            queued,
            std::future::ready(Ok(())),
            String::new,
        )
    }

    /// Forgets the queued statements (the change they belong to is being
    /// rolled back).
    pub(crate) fn discard(&mut self) {
        self.deferred.clear();
    }

    /// Where the queue ends now: [`discard_from`](Self::discard_from)
    /// forgets what is queued after it.
    pub(crate) fn mark(&self) -> usize {
        self.deferred.len()
    }

    /// Forgets the statements queued since `mark` (none of them was sent:
    /// the queue was not sent since `mark` was taken).
    pub(crate) fn discard_from(&mut self, mark: usize) {
        self.deferred.truncate(mark);
    }

    /// A count that changes each time the queue is sent: equal before and
    /// after some work means that nothing queued went out in between.
    pub(crate) fn sent(&self) -> u64 {
        self.sends
    }

    /// The queue, each statement prepared.
    fn take_queue(&mut self) -> Result<Vec<Queued>, PostgresError> {
        self.sends += 1;
        let deferred = std::mem::take(&mut self.deferred);
        let mut queued = Vec::with_capacity(deferred.len());
        for d in deferred {
            queued.push(match d {
                Deferred::Prepared {
                    sql,
                    context,
                    write,
                    check,
                } => Queued::Prepared {
                    statement: self.statement(sql, &context)?,
                    context,
                    write,
                    check,
                },
                Deferred::Simple(sql) => Queued::Simple(sql),
            });
        }
        Ok(queued)
    }

    pub(crate) fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
        context: impl Fn() -> String,
    ) -> Result<Vec<Row>, PostgresError> {
        let statement = self.statement(sql, &context())?;
        let queued = self.take_queue()?;
        let last = self.client.query(&statement, params);
        run_pipeline(&self.runtime, &self.client, queued, last, context)
    }

    pub(crate) fn execute(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
        context: impl Fn() -> String,
    ) -> Result<u64, PostgresError> {
        let statement = self.statement(sql, &context())?;
        let queued = self.take_queue()?;
        let last = self.client.execute(&statement, params);
        run_pipeline(&self.runtime, &self.client, queued, last, context)
    }

    /// Two queries after the queued statements, in the same round trip.
    pub(crate) fn query_pair(
        &mut self,
        first: (&'static str, &[&(dyn ToSql + Sync)]),
        second: (&'static str, &[&(dyn ToSql + Sync)]),
        context: impl Fn() -> String,
    ) -> Result<(Vec<Row>, Vec<Row>), PostgresError> {
        let a = self.statement(first.0, &context())?;
        let b = self.statement(second.0, &context())?;
        let queued = self.take_queue()?;
        let client = &self.client;
        let (params_a, params_b) = (first.1, second.1);
        let both = async move {
            // Polled in order: the first is sent before the second.
            let mut a = std::pin::pin!(client.query(&a, params_a));
            let mut b = std::pin::pin!(client.query(&b, params_b));
            let (mut rows_a, mut rows_b) = (None, None);
            std::future::poll_fn(|cx| {
                if rows_a.is_none()
                    && let Poll::Ready(r) = a.as_mut().poll(cx)
                {
                    rows_a = Some(r);
                }
                if rows_b.is_none()
                    && let Poll::Ready(r) = b.as_mut().poll(cx)
                {
                    rows_b = Some(r);
                }
                if rows_a.is_some() && rows_b.is_some() {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await;
            match (rows_a, rows_b) {
                (Some(a), Some(b)) => Ok((a?, b?)),
                // Both are answered when the loop above ends.
                _ => Ok((Vec::new(), Vec::new())),
            }
        };
        run_pipeline(&self.runtime, &self.client, queued, both, context)
    }

    /// [`query`](Self::query) for a statement made at run time (not
    /// kept prepared: one of many shapes, run now and then).
    pub(crate) fn query_text(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        context: impl Fn() -> String,
    ) -> Result<Vec<Row>, PostgresError> {
        let queued = self.take_queue()?;
        let last = self.client.query(sql, params);
        run_pipeline(&self.runtime, &self.client, queued, last, context)
    }

    /// Runs statements without parameters (after the queued ones).
    pub(crate) fn batch_execute(&mut self, sql: &str) -> Result<(), PostgresError> {
        let queued = self.take_queue()?;
        let last = self.client.batch_execute(sql);
        run_pipeline(&self.runtime, &self.client, queued, last, || {
            format!("running {sql}")
        })
    }
}

/// A queued statement, prepared.
enum Queued {
    Prepared {
        statement: Statement,
        context: String,
        write: Write,
        check: Option<RowsCheck>,
    },
    Simple(&'static str),
}

/// Sends the queued statements, then `last`, in one round trip; returns
/// `last`'s answer, or the first failure.
fn run_pipeline<'a, T>(
    runtime: &Runtime,
    client: &'a Client,
    queued: Vec<Queued>,
    last: impl Future<Output = Result<T, tokio_postgres::Error>> + 'a,
    last_context: impl Fn() -> String,
) -> Result<T, PostgresError> {
    let mut statements = Vec::with_capacity(queued.len());
    let mut contexts = Vec::with_capacity(queued.len());
    let mut writes = Vec::with_capacity(queued.len());
    let mut checks = Vec::with_capacity(queued.len());
    for q in queued {
        match q {
            Queued::Prepared {
                statement,
                context,
                write,
                check,
            } => {
                statements.push(Some(statement));
                contexts.push(context);
                writes.push(Err(write));
                checks.push(check);
            }
            Queued::Simple(sql) => {
                statements.push(None);
                contexts.push(format!("running {sql}"));
                writes.push(Ok(sql));
                checks.push(None);
            }
        }
    }
    let mut futures: Vec<Option<Pending<'_, u64>>> = writes
        .into_iter()
        .zip(&statements)
        .map(|(write, statement)| -> Option<Pending<'_, u64>> {
            match (write, statement) {
                (Err(write), Some(statement)) => Some(write(client, statement)),
                (Ok(sql), _) => Some(Box::pin(async move {
                    client.batch_execute(sql).await.map(|()| 0)
                })),
                // A prepared entry always has its statement.
                (Err(_), None) => None,
            }
        })
        .collect();
    let mut answers: Vec<Option<Result<u64, tokio_postgres::Error>>> =
        futures.iter().map(|_| None).collect();
    let mut last = Some(Box::pin(last));
    let mut last_answer = None;
    // Polled in order, so that each statement is sent in the order it was
    // made (a statement's future sends it when first polled).
    runtime.block_on(std::future::poll_fn(|cx| {
        for (future, answer) in futures.iter_mut().zip(answers.iter_mut()) {
            if let Some(f) = future
                && let Poll::Ready(result) = f.as_mut().poll(cx)
            {
                *answer = Some(result);
                *future = None;
            }
        }
        if let Some(f) = &mut last
            && let Poll::Ready(result) = f.as_mut().poll(cx)
        {
            last_answer = Some(result);
            last = None;
        }
        if last.is_none() && futures.iter().all(Option::is_none) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }));
    for ((answer, context), check) in answers.into_iter().zip(contexts).zip(checks) {
        match (answer, check) {
            (Some(Err(source)), _) => return Err(PostgresError::Query { context, source }),
            (Some(Ok(rows)), Some(check)) => {
                if let Some(refused) = check(rows) {
                    return Err(refused);
                }
            }
            _ => {}
        }
    }
    match last_answer {
        Some(result) => result.map_err(PostgresError::query(last_context())),
        None => Err(OperationsError::Unanswered.into()),
    }
}

/// Every column of `devices`, in schema order (a macro, so that the
/// statements below are built from it at compile time).
macro_rules! device_columns {
    () => {
        "name, description, key_spec, auth_mode, auth_string, failed_attempts, locked, \
         operation, completes_by_ns, status_kind, status_operation, status_reason, \
         status_at_ns, security_mode, has_lsc, has_mic, lsc_der, lsc_subject, lsc_issuer, \
         lsc_serial, lsc_not_before_secs, lsc_not_after_secs, mic_der, mic_subject, \
         mic_issuer, mic_serial, mic_not_before_secs, mic_not_after_secs, \
         key_generation_failures, last_error, last_error_at_ns, lsc_revoked_at_ns, \
         lsc_revoked_reason"
    };
}

const SELECT_DEVICE: &str = concat!(
    "SELECT ",
    device_columns!(),
    " FROM devices WHERE name = $1"
);

const SELECT_DEVICES: &str = concat!("SELECT ", device_columns!(), " FROM devices ORDER BY name");

const UPSERT_DEVICE: &str = concat!(
    "INSERT INTO devices (",
    device_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
    $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, \
    $33) ON CONFLICT (name) DO UPDATE SET description = excluded.description, \
    key_spec = excluded.key_spec, auth_mode = excluded.auth_mode, \
    auth_string = excluded.auth_string, failed_attempts = excluded.failed_attempts, \
    locked = excluded.locked, operation = excluded.operation, \
    completes_by_ns = excluded.completes_by_ns, status_kind = excluded.status_kind, \
    status_operation = excluded.status_operation, status_reason = excluded.status_reason, \
    status_at_ns = excluded.status_at_ns, security_mode = excluded.security_mode, \
    has_lsc = excluded.has_lsc, has_mic = excluded.has_mic, lsc_der = excluded.lsc_der, \
    lsc_subject = excluded.lsc_subject, lsc_issuer = excluded.lsc_issuer, \
    lsc_serial = excluded.lsc_serial, lsc_not_before_secs = excluded.lsc_not_before_secs, \
    lsc_not_after_secs = excluded.lsc_not_after_secs, mic_der = excluded.mic_der, \
    mic_subject = excluded.mic_subject, mic_issuer = excluded.mic_issuer, \
    mic_serial = excluded.mic_serial, mic_not_before_secs = excluded.mic_not_before_secs, \
    mic_not_after_secs = excluded.mic_not_after_secs, \
    key_generation_failures = excluded.key_generation_failures, \
    last_error = excluded.last_error, last_error_at_ns = excluded.last_error_at_ns, \
    lsc_revoked_at_ns = excluded.lsc_revoked_at_ns, \
    lsc_revoked_reason = excluded.lsc_revoked_reason"
);

fn certificate_columns(
    row: &Row,
    prefix: &str,
    present: bool,
    name: &str,
) -> Result<Option<CertificateColumns>, PostgresError> {
    if !present {
        return Ok(None);
    }
    let missing = |column: &str| {
        PostgresError::corrupt("devices", name, format!("{prefix}_{column} is empty"))
    };
    let text = |column: &str| -> Result<String, PostgresError> {
        row.try_get::<_, Option<String>>(format!("{prefix}_{column}").as_str())
            .map_err(PostgresError::query(format!("reading device {name}")))?
            .ok_or_else(|| missing(column))
    };
    let secs = |column: &str| -> Result<i64, PostgresError> {
        row.try_get::<_, Option<i64>>(format!("{prefix}_{column}").as_str())
            .map_err(PostgresError::query(format!("reading device {name}")))?
            .ok_or_else(|| missing(column))
    };
    let der: Option<Vec<u8>> = row
        .try_get(format!("{prefix}_der").as_str())
        .map_err(PostgresError::query(format!("reading device {name}")))?;
    Ok(Some(CertificateColumns {
        der: der.ok_or_else(|| missing("der"))?,
        subject: text("subject")?,
        issuer: text("issuer")?,
        serial: text("serial")?,
        not_before_secs: secs("not_before_secs")?,
        not_after_secs: secs("not_after_secs")?,
    }))
}

fn device_from_row(row: &Row) -> Result<Device, PostgresError> {
    let name: String = row
        .try_get("name")
        .map_err(PostgresError::query("reading a device"))?;
    let context = || format!("reading device {name}");
    macro_rules! col {
        ($c:literal) => {
            row.try_get($c).map_err(PostgresError::query(context()))?
        };
    }
    let has_lsc: bool = col!("has_lsc");
    let has_mic: bool = col!("has_mic");
    let device_row = DeviceRow {
        description: col!("description"),
        key_spec: col!("key_spec"),
        auth_mode: col!("auth_mode"),
        auth_string: col!("auth_string"),
        failed_attempts: col!("failed_attempts"),
        locked: col!("locked"),
        operation: col!("operation"),
        completes_by_ns: col!("completes_by_ns"),
        status_kind: col!("status_kind"),
        status_operation: col!("status_operation"),
        status_reason: col!("status_reason"),
        status_at_ns: col!("status_at_ns"),
        security_mode: col!("security_mode"),
        has_lsc,
        has_mic,
        lsc: certificate_columns(row, "lsc", has_lsc, &name)?,
        mic: certificate_columns(row, "mic", has_mic, &name)?,
        key_generation_failures: col!("key_generation_failures"),
        last_error: col!("last_error"),
        last_error_at_ns: col!("last_error_at_ns"),
        lsc_revoked_at_ns: col!("lsc_revoked_at_ns"),
        lsc_revoked_reason: col!("lsc_revoked_reason"),
        name,
    };
    Ok(device_row.into_device()?)
}

pub(crate) fn load_device(
    conn: &mut Conn,
    name: &DeviceName,
) -> Result<Option<Device>, PostgresError> {
    let rows = conn.query(SELECT_DEVICE, &[&name.as_str()], || {
        format!("reading device {name}")
    })?;
    rows.first().map(device_from_row).transpose()
}

pub(crate) fn load_devices(conn: &mut Conn) -> Result<Vec<Device>, PostgresError> {
    let rows = conn.query(SELECT_DEVICES, &[], || "reading the devices".to_owned())?;
    rows.iter().map(device_from_row).collect()
}

/// Saves a device (sent with the next statement whose answer is needed).
pub(crate) fn save_device(conn: &mut Conn, device: &Device) -> Result<(), PostgresError> {
    let r = DeviceRow::from_device(device)?;
    let context = format!("saving device {}", r.name);
    conn.defer(
        UPSERT_DEVICE,
        context,
        Box::new(move |client, statement| {
            Box::pin(async move {
                let lsc = r.lsc.as_ref();
                let mic = r.mic.as_ref();
                let (lsc_der, lsc_subject, lsc_issuer, lsc_serial, lsc_nb, lsc_na) = (
                    lsc.map(|c| c.der.as_slice()),
                    lsc.map(|c| c.subject.as_str()),
                    lsc.map(|c| c.issuer.as_str()),
                    lsc.map(|c| c.serial.as_str()),
                    lsc.map(|c| c.not_before_secs),
                    lsc.map(|c| c.not_after_secs),
                );
                let (mic_der, mic_subject, mic_issuer, mic_serial, mic_nb, mic_na) = (
                    mic.map(|c| c.der.as_slice()),
                    mic.map(|c| c.subject.as_str()),
                    mic.map(|c| c.issuer.as_str()),
                    mic.map(|c| c.serial.as_str()),
                    mic.map(|c| c.not_before_secs),
                    mic.map(|c| c.not_after_secs),
                );
                let params: [&(dyn ToSql + Sync); 33] = [
                    &r.name,
                    &r.description,
                    &r.key_spec,
                    &r.auth_mode,
                    &r.auth_string,
                    &r.failed_attempts,
                    &r.locked,
                    &r.operation,
                    &r.completes_by_ns,
                    &r.status_kind,
                    &r.status_operation,
                    &r.status_reason,
                    &r.status_at_ns,
                    &r.security_mode,
                    &r.has_lsc,
                    &r.has_mic,
                    &lsc_der,
                    &lsc_subject,
                    &lsc_issuer,
                    &lsc_serial,
                    &lsc_nb,
                    &lsc_na,
                    &mic_der,
                    &mic_subject,
                    &mic_issuer,
                    &mic_serial,
                    &mic_nb,
                    &mic_na,
                    &r.key_generation_failures,
                    &r.last_error,
                    &r.last_error_at_ns,
                    &r.lsc_revoked_at_ns,
                    &r.lsc_revoked_reason,
                ];
                client.execute(statement, &params).await
            })
        }),
    );
    Ok(())
}

pub(crate) fn delete_device(conn: &mut Conn, name: &DeviceName) -> Result<bool, PostgresError> {
    // The lease goes with it (ON DELETE CASCADE).
    let n = conn.execute(
        "DELETE FROM devices WHERE name = $1",
        &[&name.as_str()],
        || format!("removing device {name}"),
    )?;
    Ok(n > 0)
}

/// Device and lease columns, for the devices a list names (a missing
/// device gives a row of nulls but `wanted`).
const SELECT_HELD: &str = concat!(
    "SELECT wanted, ",
    device_columns!(),
    ", token, expires_ns FROM unnest($1::text[]) AS wanted \
     LEFT JOIN devices ON devices.name = wanted LEFT JOIN leases ON leases.device = wanted"
);

/// A device and its lease as a transaction holding the device sees them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Held {
    pub(crate) device: Option<Device>,
    pub(crate) lease: Option<Lease>,
}

/// Queues the advisory locks on `names` (taken in the order given: sort
/// them, so that two batches lock shared devices in the same order).
pub(crate) fn lock_devices(conn: &mut Conn, names: Vec<String>, class: i32) {
    let context = match names.as_slice() {
        [one] => format!("holding device {one}"),
        _ => format!("holding {} devices", names.len()),
    };
    conn.defer(
        "SELECT pg_advisory_xact_lock($1, hashtext(n)) FROM unnest($2::text[]) AS n",
        context,
        Box::new(move |client, statement| {
            Box::pin(async move { client.execute(statement, &[&class, &names]).await })
        }),
    );
}

/// What a batch reads ahead: each device named with its rows, each
/// certificate named with its record (`None`: not recorded), or why they
/// cannot be read.
pub(crate) struct Ahead {
    pub(crate) devices: Vec<(String, Result<Held, PostgresError>)>,
    pub(crate) certificates: Vec<(String, Result<Option<CertificateHistory>, PostgresError>)>,
}

/// The devices `names` and their leases, and the certificates `serials`,
/// in one round trip (after what is queued, e.g. the devices' locks).
pub(crate) fn load_ahead(
    conn: &mut Conn,
    names: &[String],
    serials: &[String],
) -> Result<Ahead, PostgresError> {
    let context = || match names {
        [one] => format!("reading device {one} and its lease"),
        _ => format!("reading {} devices and their leases", names.len()),
    };
    let (device_rows, certificate_rows) = conn.query_pair(
        (SELECT_HELD, &[&names]),
        (SELECT_CERTIFICATES_AHEAD, &[&serials]),
        context,
    )?;
    let mut ahead = Ahead {
        devices: Vec::with_capacity(device_rows.len()),
        certificates: Vec::with_capacity(certificate_rows.len()),
    };
    for row in &device_rows {
        let wanted: String = row.try_get(0).map_err(PostgresError::query(context()))?;
        let held = held_from_row(row, &wanted);
        ahead.devices.push((wanted, held));
    }
    for row in &certificate_rows {
        let wanted: String = row.try_get(0).map_err(PostgresError::query(context()))?;
        let recorded = row
            .try_get::<_, Option<String>>("serial")
            .map_err(PostgresError::query(context()))
            .and_then(|serial| serial.map(|_| issued_from_row(row)).transpose());
        ahead.certificates.push((wanted, recorded));
    }
    Ok(ahead)
}

/// The devices `names` and their leases, in one query (sent after what is
/// queued, e.g. their locks).
#[allow(clippy::type_complexity)]
pub(crate) fn load_held(
    conn: &mut Conn,
    names: &[String],
) -> Result<Vec<(String, Result<Held, PostgresError>)>, PostgresError> {
    let context = || match names {
        [one] => format!("reading device {one} and its lease"),
        _ => format!("reading {} devices and their leases", names.len()),
    };
    let rows = conn.query(SELECT_HELD, &[&names], context)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let wanted: String = row.try_get(0).map_err(PostgresError::query(context()))?;
        let held = held_from_row(row, &wanted);
        out.push((wanted, held));
    }
    Ok(out)
}

fn held_from_row(row: &Row, wanted: &str) -> Result<Held, PostgresError> {
    let context = || format!("reading device {wanted} and its lease");
    let present: Option<String> = row
        .try_get("name")
        .map_err(PostgresError::query(context()))?;
    let device = present.map(|_| device_from_row(row)).transpose()?;
    let token: Option<i64> = row
        .try_get("token")
        .map_err(PostgresError::query(context()))?;
    let expires: Option<i64> = row
        .try_get("expires_ns")
        .map_err(PostgresError::query(context()))?;
    let lease = match (token, expires) {
        (Some(token), Some(expires)) => {
            let device = DeviceName::parse(wanted)
                .map_err(|e| PostgresError::corrupt("leases", wanted, e.to_string()))?;
            Some(lease_from(device, token, expires)?)
        }
        _ => None,
    };
    Ok(Held { device, lease })
}

fn lease_from(device: DeviceName, token: i64, expires: i64) -> Result<Lease, PostgresError> {
    let bad = |why: &str| PostgresError::corrupt("leases", device.as_str(), why);
    Ok(Lease {
        token: u64::try_from(token).map_err(|_| bad("negative token"))?,
        expires: from_nanos(expires).ok_or_else(|| bad("expiry out of range"))?,
        device,
    })
}

pub(crate) fn load_lease(
    conn: &mut Conn,
    name: &DeviceName,
) -> Result<Option<Lease>, PostgresError> {
    let rows = conn.query(
        "SELECT token, expires_ns FROM leases WHERE device = $1",
        &[&name.as_str()],
        || format!("reading the lease on {name}"),
    )?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let context = || format!("reading the lease on {name}");
    let token: i64 = row.try_get(0).map_err(PostgresError::query(context()))?;
    let expires: i64 = row.try_get(1).map_err(PostgresError::query(context()))?;
    lease_from(name.clone(), token, expires).map(Some)
}

pub(crate) fn save_lease(conn: &mut Conn, lease: &Lease) -> Result<(), PostgresError> {
    let token = i64::try_from(lease.token).map_err(|_| {
        OperationsError::store(format!(
            "lease token {} does not fit the leases table",
            lease.token
        ))
    })?;
    let expires = nanos_saturating(lease.expires);
    let device = lease.device.to_string();
    conn.defer(
        "INSERT INTO leases (device, token, expires_ns) VALUES ($1, $2, $3) \
         ON CONFLICT (device) DO UPDATE SET token = excluded.token, expires_ns = excluded.expires_ns",
        format!("taking the lease on {device}"),
        Box::new(move |client, statement| {
            Box::pin(async move { client.execute(statement, &[&device, &token, &expires]).await })
        }),
    );
    Ok(())
}

pub(crate) fn delete_lease(conn: &mut Conn, name: &DeviceName) -> Result<(), PostgresError> {
    let device = name.to_string();
    conn.defer(
        "DELETE FROM leases WHERE device = $1",
        format!("releasing the lease on {device}"),
        Box::new(move |client, statement| {
            Box::pin(async move { client.execute(statement, &[&device]).await })
        }),
    );
    Ok(())
}

/// Every column of `issued_certificates` but `id`.
macro_rules! issued_columns {
    () => {
        "device, serial, der, subject, issuer, not_before_secs, not_after_secs, issued_at_ns, \
         delivered, delivered_at_ns, superseded_at_ns, deleted_at_ns, revoked_at_ns"
    };
}

fn issued_from_row(row: &Row) -> Result<CertificateHistory, PostgresError> {
    let serial: String = row
        .try_get("serial")
        .map_err(PostgresError::query("reading an issued certificate"))?;
    let context = || format!("reading certificate {serial}");
    macro_rules! col {
        ($c:literal) => {
            row.try_get($c).map_err(PostgresError::query(context()))?
        };
    }
    let issued = IssuedRow {
        device: col!("device"),
        der: col!("der"),
        subject: col!("subject"),
        issuer: col!("issuer"),
        not_before_secs: col!("not_before_secs"),
        not_after_secs: col!("not_after_secs"),
        issued_at_ns: col!("issued_at_ns"),
        delivered: col!("delivered"),
        delivered_at_ns: col!("delivered_at_ns"),
        superseded_at_ns: col!("superseded_at_ns"),
        deleted_at_ns: col!("deleted_at_ns"),
        revoked_at_ns: col!("revoked_at_ns"),
        serial,
    };
    Ok(issued.into_history()?)
}

pub(crate) fn load_certificate(
    conn: &mut Conn,
    serial_hex: &str,
) -> Result<Option<CertificateHistory>, PostgresError> {
    let rows = conn.query(
        concat!(
            "SELECT ",
            issued_columns!(),
            " FROM issued_certificates WHERE serial = $1"
        ),
        &[&serial_hex],
        || format!("reading certificate {serial_hex}"),
    )?;
    rows.first().map(issued_from_row).transpose()
}

pub(crate) fn load_certificates(
    conn: &mut Conn,
    name: &DeviceName,
) -> Result<Vec<CertificateHistory>, PostgresError> {
    let rows = conn.query(
        concat!(
            "SELECT ",
            issued_columns!(),
            " FROM issued_certificates WHERE device = $1 ORDER BY id"
        ),
        &[&name.as_str()],
        || format!("reading the certificates of {name}"),
    )?;
    rows.iter().map(issued_from_row).collect()
}

/// Inserts a certificate, or updates the history of one already recorded
/// for the same device. A serial recorded for another device (another node
/// issued it a moment ago) is a [`OperationsError::SerialConflict`].
/// Records a certificate (sent with the next statement whose answer is
/// needed). A serial recorded for another device fails the change with
/// [`OperationsError::SerialConflict`] (the upsert's `WHERE` refuses it;
/// the holder is not named: see [`name_holder`]).
pub(crate) fn save_certificate(
    conn: &mut Conn,
    history: &CertificateHistory,
) -> Result<(), PostgresError> {
    let r = IssuedRow::from_history(history)?;
    let context = format!("recording certificate {}", r.serial);
    let serial = r.serial.clone();
    conn.defer_checked(
        UPSERT_CERTIFICATE,
        context,
        Box::new(move |client, statement| {
            Box::pin(async move {
                client
                    .execute(
                        statement,
                        &[
                            &r.device,
                            &r.serial,
                            &r.der,
                            &r.subject,
                            &r.issuer,
                            &r.not_before_secs,
                            &r.not_after_secs,
                            &r.issued_at_ns,
                            &r.delivered,
                            &r.delivered_at_ns,
                            &r.superseded_at_ns,
                            &r.deleted_at_ns,
                            &r.revoked_at_ns,
                        ],
                    )
                    .await
            })
        }),
        Box::new(move |changed| {
            (changed == 0).then(|| {
                OperationsError::SerialConflict {
                    serial,
                    device: String::new(),
                }
                .into()
            })
        }),
    );
    Ok(())
}

/// Names the device that holds the serial of a [`SerialConflict`]
/// reported without it.
///
/// [`SerialConflict`]: OperationsError::SerialConflict
pub(crate) fn name_holder(conn: &mut Conn, error: PostgresError) -> PostgresError {
    let PostgresError::Operations(inner) = error else {
        return error;
    };
    match *inner {
        OperationsError::SerialConflict { serial, device } if device.is_empty() => {
            let device = load_certificate(conn, &serial)
                .ok()
                .flatten()
                .map(|h| h.record.device.to_string())
                .unwrap_or_default();
            OperationsError::SerialConflict { serial, device }.into()
        }
        other => other.into(),
    }
}

const SELECT_CERTIFICATES_AHEAD: &str = concat!(
    "SELECT wanted, ",
    issued_columns!(),
    " FROM unnest($1::text[]) AS wanted LEFT JOIN issued_certificates ON serial = wanted"
);

const UPSERT_CERTIFICATE: &str = concat!(
    "INSERT INTO issued_certificates (",
    issued_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
     ON CONFLICT (serial) DO UPDATE SET der = excluded.der, subject = excluded.subject, \
     issuer = excluded.issuer, not_before_secs = excluded.not_before_secs, \
     not_after_secs = excluded.not_after_secs, issued_at_ns = excluded.issued_at_ns, \
     delivered = excluded.delivered, delivered_at_ns = excluded.delivered_at_ns, \
     superseded_at_ns = excluded.superseded_at_ns, deleted_at_ns = excluded.deleted_at_ns, \
     revoked_at_ns = excluded.revoked_at_ns \
     WHERE issued_certificates.device = excluded.device"
);

pub(crate) fn append_audit(conn: &mut Conn, entry: &AuditEntry) -> Result<(), PostgresError> {
    let r = AuditRow::from_entry(entry)?;
    let context = match &r.device {
        Some(device) => format!("auditing {device}"),
        None => format!("auditing {}", r.event),
    };
    conn.defer(
        "INSERT INTO audit_log (at_ns, device, event, detail, actor) VALUES ($1, $2, $3, $4, $5)",
        context,
        Box::new(move |client, statement| {
            Box::pin(async move {
                client
                    .execute(
                        statement,
                        &[&r.at_ns, &r.device, &r.event, &r.detail, &r.actor],
                    )
                    .await
            })
        }),
    );
    Ok(())
}

/// An audit row as `SELECT at_ns, device, event, detail, actor` reads it.
fn audit_from_row(row: &Row) -> Result<AuditEntry, PostgresError> {
    let context = || "reading the audit log".to_owned();
    macro_rules! col {
        ($i:literal) => {
            row.try_get($i).map_err(PostgresError::query(context()))?
        };
    }
    let r = AuditRow {
        at_ns: col!(0),
        device: col!(1),
        event: col!(2),
        detail: col!(3),
        actor: col!(4),
    };
    Ok(r.into_entry()?)
}

pub(crate) fn load_audit(
    conn: &mut Conn,
    name: &DeviceName,
) -> Result<Vec<AuditEntry>, PostgresError> {
    let rows = conn.query(
        "SELECT at_ns, device, event, detail, actor FROM audit_log WHERE device = $1 ORDER BY id",
        &[&name.as_str()],
        || format!("reading the audit log of {name}"),
    )?;
    rows.iter().map(audit_from_row).collect()
}

/// The entries matching `query`, newest first.
pub(crate) fn find_audit(
    conn: &mut Conn,
    query: &AuditQuery,
) -> Result<Vec<AuditEntry>, PostgresError> {
    let search = AuditSql::new(query, |n| format!("${n}"));
    let params: Vec<Box<dyn ToSql + Sync + Send>> = search
        .params
        .into_iter()
        .map(|p| -> Box<dyn ToSql + Sync + Send> {
            match p {
                AuditParam::Text(t) => Box::new(t),
                AuditParam::Integer(n) => Box::new(n),
            }
        })
        .collect();
    let refs: Vec<&(dyn ToSql + Sync)> = params
        .iter()
        .map(|p| -> &(dyn ToSql + Sync) { p.as_ref() })
        .collect();
    let rows = conn.query_text(&search.sql, &refs, || "searching the audit log".to_owned())?;
    rows.iter().map(audit_from_row).collect()
}

const SELECT_ACCOUNT: &str = "SELECT name, role, password_hash, created_at_ns, \
     password_changed_at_ns FROM accounts WHERE name = $1";

const SELECT_ACCOUNTS: &str = "SELECT name, role, password_hash, created_at_ns, \
     password_changed_at_ns FROM accounts ORDER BY name";

fn account_from_row(row: &Row) -> Result<Account, PostgresError> {
    let context = || "reading an account".to_owned();
    macro_rules! col {
        ($i:literal) => {
            row.try_get($i).map_err(PostgresError::query(context()))?
        };
    }
    let r = AccountRow {
        name: col!(0),
        role: col!(1),
        password_hash: col!(2),
        created_at_ns: col!(3),
        password_changed_at_ns: col!(4),
    };
    Ok(r.into_account()?)
}

pub(crate) fn load_account(
    conn: &mut Conn,
    name: &AccountName,
) -> Result<Option<Account>, PostgresError> {
    let rows = conn.query(SELECT_ACCOUNT, &[&name.as_str()], || {
        format!("reading account {name}")
    })?;
    rows.first().map(account_from_row).transpose()
}

pub(crate) fn load_accounts(conn: &mut Conn) -> Result<Vec<Account>, PostgresError> {
    let rows = conn.query(SELECT_ACCOUNTS, &[], || "reading the accounts".to_owned())?;
    rows.iter().map(account_from_row).collect()
}

/// Saves an account (sent with the next statement whose answer is needed).
pub(crate) fn save_account(conn: &mut Conn, account: &Account) -> Result<(), PostgresError> {
    let r = AccountRow::from_account(account)?;
    conn.defer(
        "INSERT INTO accounts (name, role, password_hash, created_at_ns, password_changed_at_ns) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO UPDATE SET role = excluded.role, \
         password_hash = excluded.password_hash, created_at_ns = excluded.created_at_ns, \
         password_changed_at_ns = excluded.password_changed_at_ns",
        format!("saving account {}", r.name),
        Box::new(move |client, statement| {
            Box::pin(async move {
                client
                    .execute(
                        statement,
                        &[
                            &r.name,
                            &r.role,
                            &r.password_hash,
                            &r.created_at_ns,
                            &r.password_changed_at_ns,
                        ],
                    )
                    .await
            })
        }),
    );
    Ok(())
}

pub(crate) fn delete_account(conn: &mut Conn, name: &AccountName) -> Result<bool, PostgresError> {
    let n = conn.execute(
        "DELETE FROM accounts WHERE name = $1",
        &[&name.as_str()],
        || format!("removing account {name}"),
    )?;
    Ok(n > 0)
}

const SELECT_TOKEN: &str = "SELECT id, label, role, secret_sha256, created_at_ns, created_by \
     FROM api_tokens WHERE id = $1";

const SELECT_TOKENS: &str = "SELECT id, label, role, secret_sha256, created_at_ns, created_by \
     FROM api_tokens ORDER BY created_at_ns, id";

fn token_from_row(row: &Row) -> Result<ApiToken, PostgresError> {
    let context = || "reading an API token".to_owned();
    macro_rules! col {
        ($i:literal) => {
            row.try_get($i).map_err(PostgresError::query(context()))?
        };
    }
    let r = TokenRow {
        id: col!(0),
        label: col!(1),
        role: col!(2),
        secret_sha256: col!(3),
        created_at_ns: col!(4),
        created_by: col!(5),
    };
    Ok(r.into_token()?)
}

pub(crate) fn load_token(conn: &mut Conn, id: &str) -> Result<Option<ApiToken>, PostgresError> {
    let rows = conn.query(SELECT_TOKEN, &[&id], || "reading an API token".to_owned())?;
    rows.first().map(token_from_row).transpose()
}

pub(crate) fn load_tokens(conn: &mut Conn) -> Result<Vec<ApiToken>, PostgresError> {
    let rows = conn.query(SELECT_TOKENS, &[], || "reading the API tokens".to_owned())?;
    rows.iter().map(token_from_row).collect()
}

/// Saves a token (sent with the next statement whose answer is needed).
pub(crate) fn save_token(conn: &mut Conn, token: &ApiToken) -> Result<(), PostgresError> {
    let r = TokenRow::from_token(token)?;
    conn.defer(
        "INSERT INTO api_tokens (id, label, role, secret_sha256, created_at_ns, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET label = excluded.label, \
         role = excluded.role, secret_sha256 = excluded.secret_sha256, \
         created_at_ns = excluded.created_at_ns, created_by = excluded.created_by",
        "saving an API token".to_owned(),
        Box::new(move |client, statement| {
            Box::pin(async move {
                client
                    .execute(
                        statement,
                        &[
                            &r.id,
                            &r.label,
                            &r.role,
                            &r.secret_sha256,
                            &r.created_at_ns,
                            &r.created_by,
                        ],
                    )
                    .await
            })
        }),
    );
    Ok(())
}

pub(crate) fn delete_token(conn: &mut Conn, id: &str) -> Result<bool, PostgresError> {
    let n = conn.execute("DELETE FROM api_tokens WHERE id = $1", &[&id], || {
        "removing an API token".to_owned()
    })?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every column but the key is updated by the upsert (a column
    /// added to the list and not there would never change).
    #[test]
    fn the_upsert_updates_every_column() {
        let columns: Vec<&str> = device_columns!().split(", ").map(str::trim).collect();
        assert_eq!(columns.len(), 33);
        for column in columns.iter().skip(1) {
            assert!(
                UPSERT_DEVICE.contains(&format!("{column} = excluded.{column}")),
                "{column} is not updated"
            );
        }
        assert_eq!(issued_columns!().split(", ").count(), 13);
    }
}
