//! The store conformance suite on PostgreSQL, and the checks of two nodes
//! on one database.
//!
//! Runs under its own harness: it makes a fresh database for the run
//! (`capf_test_<pid>_<time>`), one schema per check inside it, and drops
//! the database at the end, whatever happened.
//!
//! The server: `CAPF_TEST_DATABASE_URL` (any database on it; the test
//! needs the right to create databases), else
//! `postgres://postgres@127.0.0.1:5432/postgres`. When the variable is not
//! set and nothing answers there, the suite says so and is skipped; CI
//! sets the variable, so there it fails instead.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::panic::AssertUnwindSafe;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use capf_store_postgres::PostgresStore;
use postgres::{Client, Config, NoTls};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// `key=value` connection text for `config`, on database `dbname`, with
/// `search_path` set to `schema`.
fn address(config: &Config, dbname: &str, schema: Option<&str>) -> String {
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "127.0.0.1".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let mut text = format!("host={host} port={port} dbname={dbname}");
    if let Some(user) = config.get_user() {
        text.push_str(&format!(" user={user}"));
    }
    if let Some(password) = config.get_password() {
        text.push_str(&format!(
            " password='{}'",
            String::from_utf8_lossy(password).replace('\'', "\\'")
        ));
    }
    if let Some(schema) = schema {
        text.push_str(&format!(" options='-c search_path={schema}'"));
    }
    text
}

fn main() -> ExitCode {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let explicit = std::env::var("CAPF_TEST_DATABASE_URL").ok();
    let url = explicit.clone().unwrap_or_else(|| DEFAULT_URL.to_owned());
    let config: Config = url.parse().expect("CAPF_TEST_DATABASE_URL does not parse");
    let mut admin = match config.connect(NoTls) {
        Ok(client) => client,
        Err(e) if explicit.is_none() => {
            println!(
                "PostgreSQL conformance suite skipped: nothing answers at {DEFAULT_URL} ({e}); \
                 set CAPF_TEST_DATABASE_URL to run it"
            );
            return ExitCode::SUCCESS;
        }
        Err(e) => panic!("cannot reach the test database {url}: {e}"),
    };
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let db = format!("capf_test_{}_{stamp}", std::process::id());
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .expect("creating the test database");
    let failures = std::panic::catch_unwind(AssertUnwindSafe(|| {
        run_all(&config, &db, filter.as_deref())
    }));
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .expect("dropping the test database");
    match failures {
        Ok(0) => ExitCode::SUCCESS,
        Ok(n) => {
            println!("\n{n} PostgreSQL conformance checks FAILED");
            ExitCode::FAILURE
        }
        Err(_) => ExitCode::FAILURE,
    }
}

/// Runs every check on its own schema; returns the number that failed.
fn run_all(config: &Config, db: &str, filter: Option<&str>) -> usize {
    let mut setup: Client = address(config, db, None)
        .parse::<Config>()
        .unwrap()
        .connect(NoTls)
        .unwrap();
    let mut failed = 0;
    let mut ran = 0;
    let mut schema_number = 0;
    let mut fresh_schema = |setup: &mut Client| {
        schema_number += 1;
        let schema = format!("check_{schema_number}");
        setup
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .unwrap();
        let store_address = address(config, db, Some(&schema));
        PostgresStore::create(&store_address, None).unwrap();
        store_address
    };
    let mut outcome = |name: &str, result: std::thread::Result<()>| {
        ran += 1;
        match result {
            Ok(()) => println!("test postgres::{name} ... ok"),
            Err(_) => {
                failed += 1;
                println!("test postgres::{name} ... FAILED");
            }
        }
    };
    for (name, check) in capf_operations::testing::checks() {
        if filter.is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let store_address = fresh_schema(&mut setup);
        let result = std::panic::catch_unwind(|| {
            let store = PostgresStore::open(&store_address, None).unwrap();
            check(&store);
        });
        outcome(name, result);
    }
    for (name, check) in capf_operations::testing::shared_checks() {
        if filter.is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let store_address = fresh_schema(&mut setup);
        let result = std::panic::catch_unwind(|| {
            let a = PostgresStore::open(&store_address, None).unwrap();
            let b = PostgresStore::open(&store_address, None).unwrap();
            check(&a, &b);
        });
        outcome(name, result);
    }
    for (name, check) in local_checks() {
        if filter.is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let store_address = fresh_schema(&mut setup);
        let result =
            std::panic::catch_unwind(AssertUnwindSafe(|| check(&store_address, &mut setup)));
        outcome(name, result);
    }
    println!("\n{ran} PostgreSQL checks, {failed} failed");
    failed
}

type LocalCheck = (&'static str, fn(&str, &mut Client));

/// What only the PostgreSQL store does.
fn local_checks() -> Vec<LocalCheck> {
    vec![
        ("identity_is_claimed_once", identity_is_claimed_once),
        ("newer_schema_is_refused", newer_schema_is_refused),
        ("empty_database_is_not_opened", empty_database_is_not_opened),
        ("parameters_are_shared", parameters_are_shared),
        (
            "connections_dropped_by_the_database_are_made_again",
            connections_dropped_by_the_database_are_made_again,
        ),
        (
            "a_write_the_database_refuses_fails_only_its_change",
            a_write_the_database_refuses_fails_only_its_change,
        ),
        (
            "a_version_1_database_gains_accounts_and_actors",
            a_version_1_database_gains_accounts_and_actors,
        ),
        (
            "each_change_of_a_batch_sees_the_held_rows_as_left_before_it",
            each_change_of_a_batch_sees_the_held_rows_as_left_before_it,
        ),
    ]
}

fn identity_is_claimed_once(address: &str, _: &mut Client) {
    let a = PostgresStore::open(address, None).unwrap();
    let b = PostgresStore::open(address, None).unwrap();
    assert_eq!(a.identity().unwrap(), None);
    a.claim_identity("AA:BB", b"first", SystemTime::now())
        .unwrap();
    // The same CAPF again: fine, on any node.
    b.claim_identity("AA:BB", b"first", SystemTime::now())
        .unwrap();
    let refused = b
        .claim_identity("CC:DD", b"second", SystemTime::now())
        .unwrap_err();
    let text = refused.to_string();
    assert!(text.contains("AA:BB") && text.contains("CC:DD"), "{text}");
    assert_eq!(a.identity().unwrap().unwrap().certificate, b"first");
}

fn newer_schema_is_refused(address: &str, setup: &mut Client) {
    let schema = address
        .split("search_path=")
        .nth(1)
        .unwrap()
        .trim_end_matches('\'');
    setup
        .batch_execute(&format!(
            "INSERT INTO {schema}.capf_schema_migrations (version) VALUES (999)"
        ))
        .unwrap();
    let refused = PostgresStore::open(address, None).unwrap_err();
    assert!(refused.to_string().contains("999"), "{refused}");
}

fn empty_database_is_not_opened(address: &str, setup: &mut Client) {
    let address = address.replace("search_path=check_", "search_path=empty_");
    let schema = address
        .split("search_path=")
        .nth(1)
        .unwrap()
        .trim_end_matches('\'');
    setup
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .unwrap();
    let refused = PostgresStore::open(&address, None).unwrap_err();
    assert!(refused.to_string().contains("capf init"), "{refused}");
}

fn parameters_are_shared(address: &str, _: &mut Client) {
    let a = PostgresStore::open(address, None).unwrap();
    let b = PostgresStore::open(address, None).unwrap();
    a.save_parameter("default_key", "p384").unwrap();
    assert_eq!(
        b.load_parameters().unwrap().get("default_key").as_deref(),
        Some("p384")
    );
    b.reset_parameter("default_key").unwrap();
    assert_ne!(
        a.load_parameters().unwrap().get("default_key").as_deref(),
        Some("p384")
    );
}

/// The database restarts (here: it ends the store's connections): the
/// change in flight fails with an error, nothing half-done; the next ones
/// reconnect and work, reads too.
fn connections_dropped_by_the_database_are_made_again(address: &str, setup: &mut Client) {
    use capf_operations::capf_auth::{AuthMode, Operation};
    use capf_operations::{Device, DeviceName, OperatorStore};
    let store = PostgresStore::open(address, None).unwrap();
    let name = DeviceName::parse("SEP0000000000C1").unwrap();
    let mut device = Device::new(name.clone(), AuthMode::NullString);
    device.schedule(Operation::InstallUpgrade, None).unwrap();
    store.insert(&device, SystemTime::now()).unwrap();
    let ended: i64 = setup
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = 'capf' AND datname = current_database()",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(ended, 2, "the writer and the reader");
    // The first change after may fail (its connection was gone), but
    // never half-done; within a few tries it works again.
    let mut worked = false;
    for _ in 0..3 {
        let other = Device::new(
            DeviceName::parse("SEP0000000000C2").unwrap(),
            AuthMode::NullString,
        );
        match store.insert(&other, SystemTime::now()) {
            Ok(()) => {
                worked = true;
                break;
            }
            Err(capf_operations::OperationsError::DeviceExists { .. }) => {
                worked = true;
                break;
            }
            Err(_) => {}
        }
    }
    assert!(worked, "writes reconnect");
    let mut read = None;
    for _ in 0..3 {
        if let Ok(found) = store.load(&name) {
            read = found;
            break;
        }
    }
    assert_eq!(read.map(|d| d.name), Some(name), "reads reconnect");
}

/// Writes are sent without waiting for each answer (pipelined, with the
/// change's next read or its end). One the database refuses (here: a
/// trigger on the audit log for some devices) fails its change, whole,
/// and only it: the changes batched with it commit.
fn a_write_the_database_refuses_fails_only_its_change(address: &str, setup: &mut Client) {
    use capf_operations::capf_auth::AuthMode;
    use capf_operations::{
        AuditEntry, Device, DeviceName, OperationsError, OperatorStore, StoreBackend,
    };
    let schema = address
        .split("search_path=")
        .nth(1)
        .unwrap()
        .trim_end_matches('\'');
    setup
        .batch_execute(&format!(
            "CREATE FUNCTION {schema}.refuse() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.device LIKE 'SEP0000000BAD%' THEN \
             RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$; \
             CREATE TRIGGER refuse BEFORE INSERT ON {schema}.audit_log \
             FOR EACH ROW EXECUTE FUNCTION {schema}.refuse();"
        ))
        .unwrap();
    let store = PostgresStore::open(address, None).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let names: Vec<(DeviceName, bool)> = (0..60)
        .map(|i| {
            let bad = i % 3 == 1;
            let prefix = if bad { "SEP0000000BAD" } else { "SEP000000000" };
            let name = format!("{prefix}{i:0w$}", w = 15 - prefix.len());
            (DeviceName::parse(&name).unwrap(), bad)
        })
        .collect();
    for (name, bad) in &names {
        let (name, bad, tx) = (name.clone(), *bad, tx.clone());
        let answered = name.clone();
        store.write(
            move |t| {
                t.put_device(&Device::new(name.clone(), AuthMode::NullString))?;
                t.append_audit(&AuditEntry::new(SystemTime::now(), &name, "added", "test"))?;
                Ok(())
            },
            move |r: Result<(), OperationsError>| tx.send((answered, bad, r)).unwrap(),
        );
    }
    drop(tx);
    let mut answers = 0;
    for (name, bad, result) in rx.iter() {
        answers += 1;
        if bad {
            let e = result.expect_err("refused by the trigger");
            assert!(e.to_string().contains("refused by the test"), "{e}");
        } else {
            result.unwrap();
        }
        let stored = store.load(&name).unwrap();
        assert_eq!(stored.is_some(), !bad, "{name}");
        assert_eq!(
            store.audit_log(&name).unwrap().len(),
            usize::from(!bad),
            "{name}"
        );
    }
    assert_eq!(answers, names.len());
}

/// The changes of one batch read the devices they said they touch from
/// what the batch read ahead: each sees what the changes before it left,
/// and nothing of a change that failed, whether it failed before anything
/// of it was sent, after its writes were sent, or when the database
/// refused one of them.
fn each_change_of_a_batch_sees_the_held_rows_as_left_before_it(address: &str, setup: &mut Client) {
    use capf_operations::capf_auth::AuthMode;
    use capf_operations::{
        AuditEntry, CertificateHistory, CertificateRecord, Device, DeviceName, IssuedRecord, Lease,
        OperationsError, OperatorStore, StoreBackend, StoreTransaction, Touching,
    };
    use std::sync::mpsc;
    use std::time::Duration;

    let schema = address
        .split("search_path=")
        .nth(1)
        .unwrap()
        .trim_end_matches('\'');
    setup
        .batch_execute(&format!(
            "CREATE FUNCTION {schema}.refuse() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.detail = 'refuse me' THEN \
             RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$; \
             CREATE TRIGGER refuse BEFORE INSERT ON {schema}.audit_log \
             FOR EACH ROW EXECUTE FUNCTION {schema}.refuse();"
        ))
        .unwrap();
    let store = PostgresStore::open(address, None).unwrap();
    let (x, y, z, w) = (
        DeviceName::parse("SEP00000000000A").unwrap(),
        DeviceName::parse("SEP00000000000B").unwrap(),
        DeviceName::parse("SEP00000000000C").unwrap(),
        DeviceName::parse("SEP00000000000D").unwrap(),
    );
    let t0 = SystemTime::now();
    for name in [&x, &y, &z, &w] {
        let mut device = Device::new(name.clone(), AuthMode::NullString);
        device.description = "as added".to_owned();
        store.insert(&device, t0).unwrap();
    }
    let lease = |device: &DeviceName, token: u64| Lease {
        device: device.clone(),
        token,
        expires: t0 + Duration::from_secs(600),
    };
    let whole_seconds =
        UNIX_EPOCH + Duration::from_secs(t0.duration_since(UNIX_EPOCH).unwrap().as_secs());
    let record = move |device: &DeviceName, serial: &str| IssuedRecord {
        device: device.clone(),
        certificate: CertificateRecord {
            der: vec![0x30, 0x00],
            subject: format!("CN={device}"),
            issuer: "CN=test".to_owned(),
            serial_hex: serial.to_owned(),
            not_before: whole_seconds,
            not_after: whole_seconds + Duration::from_secs(3600),
        },
        issued_at: whole_seconds,
        delivered: false,
    };
    // Recorded for y before the batch.
    store.record_issued(&record(&y, "5353"), t0).unwrap();

    // A first change holds the committer until every other change is
    // queued: they then run as one batch.
    let (release, wait) = mpsc::channel::<()>();
    let (started, has_started) = mpsc::channel::<()>();
    store.write(
        move |_| {
            started.send(()).unwrap();
            wait.recv_timeout(Duration::from_secs(30)).unwrap();
            Ok(())
        },
        |_: Result<(), OperationsError>| {},
    );
    has_started.recv_timeout(Duration::from_secs(30)).unwrap();

    type Step =
        Box<dyn FnOnce(&mut dyn StoreTransaction) -> Result<String, OperationsError> + Send>;
    let fail = || Err(OperationsError::store("failed by the test"));
    let on = |device: &DeviceName| Touching::device(device);
    let on_x_with = |serial: &str| Touching::device(&x).and_certificate(serial);
    let steps: Vec<(&str, Touching, Step)> = vec![
        ("x records 5151", on_x_with("5151"), {
            let h = CertificateHistory::issued(record(&x, "5151"));
            Box::new(move |t| {
                assert!(t.certificate("5151")?.is_none());
                t.put_certificate(&h).map(|()| "ok".to_owned())
            })
        }),
        ("x sees 5151", on_x_with("5151"), {
            Box::new(move |t| {
                Ok(format!(
                    "{:?}",
                    t.certificate("5151")?.map(|h| h.record.device.to_string())
                ))
            })
        }),
        ("x records 5252, fails unsent", on_x_with("5252"), {
            let h = CertificateHistory::issued(record(&x, "5252"));
            Box::new(move |t| {
                t.put_certificate(&h)?;
                fail()
            })
        }),
        ("5252 is not recorded", on_x_with("5252"), {
            Box::new(move |t| Ok(format!("{:?}", t.certificate("5252")?.map(|_| ()))))
        }),
        ("x records y's 5353", on(&x), {
            let h = CertificateHistory::issued(record(&x, "5353"));
            Box::new(move |t| t.put_certificate(&h).map(|()| "recorded".to_owned()))
        }),
        ("x takes lease 1", on(&x), {
            let l = lease(&x, 1);
            Box::new(move |t| t.put_lease(&l).map(|()| "ok".to_owned()))
        }),
        ("x sees lease 1, writes 2, fails unsent", on(&x), {
            let (x, l) = (x.clone(), lease(&x, 2));
            Box::new(move |t| {
                let seen = t.lease(&x)?.map(|l| l.token);
                assert_eq!(seen, Some(1));
                t.put_lease(&l)?;
                fail()
            })
        }),
        ("x still sees lease 1", on(&x), {
            let x = x.clone();
            Box::new(move |t| Ok(format!("{:?}", t.lease(&x)?.map(|l| l.token))))
        }),
        ("y changed, z read (sends), fails", on(&y), {
            let (y, z) = (y.clone(), z.clone());
            Box::new(move |t| {
                let mut device = t.device(&y)?.unwrap();
                device.description = "changed by a failed change".to_owned();
                t.put_device(&device)?;
                t.device(&z)?.unwrap();
                fail()
            })
        }),
        ("y as added", on(&y), {
            let y = y.clone();
            Box::new(move |t| Ok(t.device(&y)?.unwrap().description))
        }),
        ("w leased, its audit refused", on(&w), {
            let (w, l) = (w.clone(), lease(&w, 7));
            Box::new(move |t| {
                t.put_lease(&l)?;
                t.append_audit(&AuditEntry::new(t0, &w, "test", "refuse me"))?;
                Ok("written".to_owned())
            })
        }),
        ("w has no lease", on(&w), {
            let w = w.clone();
            Box::new(move |t| Ok(format!("{:?}", t.lease(&w)?.map(|l| l.token))))
        }),
    ];
    let (tx, rx) = mpsc::channel();
    for (i, (what, touching, step)) in steps.into_iter().enumerate() {
        let tx = tx.clone();
        store.write_touching(&touching, step, move |r| {
            tx.send((i, what, r)).unwrap();
        });
    }
    drop(tx);
    release.send(()).unwrap();
    let mut answers: Vec<_> = rx.iter().collect();
    answers.sort_by_key(|(i, ..)| *i);
    let shown: Vec<String> = answers
        .into_iter()
        .map(|(_, what, r)| match r {
            Ok(v) => format!("{what}: {v}"),
            Err(e) if e.to_string().contains("by the test") => format!("{what}: failed"),
            Err(OperationsError::SerialConflict { device, .. }) => {
                format!("{what}: held by {device}")
            }
            Err(e) => format!("{what}: {e}"),
        })
        .collect();
    assert_eq!(
        shown,
        [
            "x records 5151: ok",
            "x sees 5151: Some(\"SEP00000000000A\")",
            "x records 5252, fails unsent: failed",
            "5252 is not recorded: None",
            "x records y's 5353: held by SEP00000000000B",
            "x takes lease 1: ok",
            "x sees lease 1, writes 2, fails unsent: failed",
            "x still sees lease 1: Some(1)",
            "y changed, z read (sends), fails: failed",
            "y as added: as added",
            "w leased, its audit refused: failed",
            "w has no lease: None",
        ]
    );
    // What was committed: the same.
    assert_eq!(store.load(&y).unwrap().unwrap().description, "as added");
    let leases = store
        .read(|r| Ok((r.lease(&x)?.map(|l| l.token), r.lease(&w)?)))
        .unwrap();
    assert_eq!(leases.0, Some(1));
    assert!(leases.1.is_none());
    let recorded = store
        .read(|r| {
            Ok((
                r.certificate("5151")?,
                r.certificate("5252")?,
                r.certificate("5353")?,
            ))
        })
        .unwrap();
    assert_eq!(recorded.0.unwrap().record.device, x);
    assert!(recorded.1.is_none());
    assert_eq!(recorded.2.unwrap().record.device, y);
}

/// A database of schema version 1 (no accounts; an audit log whose device
/// is NOT NULL and has no actor), with an entry in it, is brought to the
/// current version on open: the entry is kept (no actor), accounts work,
/// and an entry about no device can be recorded.
fn a_version_1_database_gains_accounts_and_actors(address: &str, setup: &mut Client) {
    use capf_operations::{
        Account, AccountName, AccountStore, AuditEntry, AuditQuery, DeviceName, OperatorStore, Role,
    };
    let schema = address
        .split("search_path=")
        .nth(1)
        .unwrap()
        .trim_end_matches('\'');
    // Back to version 1, as an older node left it.
    setup
        .batch_execute(&format!(
            "SET search_path = {schema}; \
             DROP TABLE accounts, api_tokens; \
             DROP INDEX audit_log_by_time, audit_log_by_actor; \
             ALTER TABLE audit_log DROP COLUMN actor; \
             ALTER TABLE audit_log ALTER COLUMN device SET NOT NULL; \
             DELETE FROM capf_schema_migrations WHERE version > 1; \
             INSERT INTO audit_log (at_ns, device, event, detail) \
             VALUES (1796083200000000000, 'SEP001122334455', 'issued', 'serial 1f'); \
             SET search_path = public;"
        ))
        .unwrap();
    let store = PostgresStore::open(address, None).unwrap();
    assert_eq!(
        store.schema_version().unwrap(),
        capf_store_postgres::SCHEMA_VERSION
    );
    let phone = DeviceName::parse("SEP001122334455").unwrap();
    let log = store.audit_log(&phone).unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].event.as_str(), log[0].actor.as_ref()),
        ("issued", None)
    );
    let now = SystemTime::now();
    let alice = Account {
        name: AccountName::parse("alice").unwrap(),
        role: Role::Admin,
        password_hash: "$argon2id$v=19$x".into(),
        created_at: now,
        password_changed_at: now,
    };
    store.add_account(&alice).unwrap();
    store
        .record_event(&AuditEntry::account_added(now, &alice).by("bob"))
        .unwrap();
    let all = store.audit(&AuditQuery::default()).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].device, None);
    assert_eq!(all[0].actor.as_deref(), Some("bob"));
    assert_eq!(all[1], log[0]);
}
