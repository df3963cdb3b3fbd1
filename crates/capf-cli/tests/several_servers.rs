//! Several `capf serve` processes on one PostgreSQL database.
//!
//! Each test makes its own database and drops it at the end. The server:
//! `CAPF_TEST_DATABASE_URL`, else `postgres://postgres@127.0.0.1:5432/postgres`;
//! when the variable is not set and nothing answers there, the tests say so
//! and pass (CI sets it, so there they fail instead).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use common::{Serve, capf};
use postgres::{Client, Config, NoTls};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database of its own for one test, dropped when the test ends.
struct TestDatabase {
    admin: Client,
    name: String,
    /// The URL `capf --database` gets.
    url: String,
}

impl TestDatabase {
    /// `None` (with a message) when no PostgreSQL is configured or running.
    fn create(test: &str) -> Option<Self> {
        let explicit = std::env::var("CAPF_TEST_DATABASE_URL").ok();
        let admin_url = explicit.clone().unwrap_or_else(|| DEFAULT_URL.to_owned());
        let config: Config = admin_url.parse().unwrap();
        let mut admin = match config.connect(NoTls) {
            Ok(client) => client,
            Err(e) if explicit.is_none() => {
                println!(
                    "{test} skipped: nothing answers at {DEFAULT_URL} ({e}); \
                     set CAPF_TEST_DATABASE_URL to run it"
                );
                return None;
            }
            Err(e) => panic!("cannot reach the test database {admin_url}: {e}"),
        };
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("capf_test_{}_{stamp}", std::process::id());
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        let host = match config.get_hosts().first() {
            Some(postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "127.0.0.1".to_owned(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let user = config.get_user().unwrap_or("postgres");
        let password = config
            .get_password()
            .map(|p| format!(":{}", String::from_utf8_lossy(p)))
            .unwrap_or_default();
        let url = format!("postgres://{user}{password}@{host}:{port}/{name}");
        Some(Self { admin, name, url })
    }

    /// A statement on the test's database.
    fn client(&self) -> Client {
        let mut config: Config = self.url.parse().unwrap();
        config.dbname(&self.name);
        config.connect(NoTls).unwrap()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = self.admin.batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

/// `capf --data-dir DATA --database URL ARGS`, whatever its exit.
fn capf_db(data: &Path, db: &TestDatabase, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_capf"))
        .arg("--data-dir")
        .arg(data)
        .arg("--database")
        .arg(&db.url)
        .args(args)
        .env_remove("CAPF_DATA_DIR")
        .env_remove("CAPF_DATABASE_URL")
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The first node: `capf init --database`; the second takes its identity
/// from a whole backup, as the README tells an operator to.
fn two_nodes(dir: &Path, db: &TestDatabase) -> (std::path::PathBuf, std::path::PathBuf) {
    let first = dir.join("node1");
    let second = dir.join("node2");
    ok(capf_db(&first, db, &["init", "--key", "p256"]));
    let passphrase = dir.join("passphrase");
    std::fs::write(&passphrase, "correct horse battery staple\n").unwrap();
    let backup = dir.join("capf.backup");
    let pass = passphrase.to_str().unwrap();
    ok(capf_db(
        &first,
        db,
        &[
            "backup",
            backup.to_str().unwrap(),
            "--passphrase-file",
            pass,
        ],
    ));
    // A second init is refused, and says how to copy the identity.
    let refused = capf_db(&second, db, &["init", "--key", "p256"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("restore --identity-only"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    ok(capf_db(
        &second,
        db,
        &[
            "restore",
            "--identity-only",
            backup.to_str().unwrap(),
            "--passphrase-file",
            pass,
        ],
    ));
    (first, second)
}

fn serve(data: &Path, db: &TestDatabase, log: &Path, extra: &[&str]) -> Serve {
    let mut args = vec!["--listen", "127.0.0.1:0", "--database", &db.url];
    args.extend_from_slice(extra);
    Serve::start_with(data, log.to_path_buf(), &args)
}

#[test]
fn a_node_with_another_key_refuses_the_database() {
    let Some(db) = TestDatabase::create("a_node_with_another_key_refuses_the_database") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("node1");
    let stranger = dir.path().join("stranger");
    ok(capf_db(&first, &db, &["init", "--key", "p256"]));
    capf(&stranger, &["init", "--key", "p256"]);
    let fingerprint = |data: &Path| {
        let pem = std::fs::read_to_string(data.join("capf.pem")).unwrap();
        capf_ca::CaCertificate::all_from_pem(&pem, "capf.pem").unwrap()[0].fingerprint_sha256_hex()
    };
    let (theirs, ours) = (fingerprint(&first), fingerprint(&stranger));
    let refused = capf_db(&stranger, &db, &["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(refused.status.code(), Some(1));
    let text = String::from_utf8_lossy(&refused.stderr);
    assert!(
        text.contains(&theirs) && text.contains(&ours),
        "both fingerprints named: {text}"
    );
    // Every command refuses it, not only serve.
    let listed = capf_db(&stranger, &db, &["device", "list"]);
    assert_eq!(listed.status.code(), Some(1));
    // The database still belongs to the first CAPF.
    ok(capf_db(&first, &db, &["device", "list"]));
}

#[test]
fn wrong_strings_on_alternate_nodes_lock_the_device() {
    let Some(db) = TestDatabase::create("wrong_strings_on_alternate_nodes_lock_the_device") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = two_nodes(dir.path(), &db);
    ok(capf_db(
        &first,
        &db,
        &["params", "set", "auth_failure_limit", "3"],
    ));
    ok(capf_db(
        &second,
        &db,
        &[
            "device",
            "add",
            "SEP00000000AB01",
            "--operation",
            "install",
            "--auth-string",
            "13579",
        ],
    ));
    let one = serve(&first, &db, &dir.path().join("one.log"), &[]);
    let two = serve(&second, &db, &dir.path().join("two.log"), &[]);
    let phone = |server: &str, string: &str| {
        Command::new(env!("CARGO_BIN_EXE_capf"))
            .args(["phone", "install", "--server", server, "--capf-cert"])
            .arg(first.join("capf.pem"))
            .args(["--device", "SEP00000000AB01", "--auth-string", string])
            .arg("--cert-out")
            .arg(dir.path().join("lsc.pem"))
            .args(["--retries", "0", "--timeout", "20"])
            .env_remove("CAPF_DATA_DIR")
            .output()
            .unwrap()
    };
    for (i, server) in [&one.addr, &two.addr, &one.addr].into_iter().enumerate() {
        let out = phone(server, "24680");
        assert!(!out.status.success(), "wrong string {i} accepted");
    }
    let shown: serde_json::Value = serde_json::from_str(&ok(capf_db(
        &second,
        &db,
        &["device", "show", "SEP00000000AB01", "--json"],
    )))
    .unwrap();
    assert_eq!(shown["failed_attempts"], 3, "{shown:#}");
    assert_eq!(shown["locked"], true, "{shown:#}");
    // Locked on every node: the right string no longer helps.
    let out = phone(&two.addr, "13579");
    assert!(!out.status.success());
    let out = phone(&one.addr, "13579");
    assert!(!out.status.success());
    let mut client = db.client();
    let delivered: i64 = client
        .query_one(
            "SELECT count(*) FROM issued_certificates WHERE delivered",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(delivered, 0);
}

/// `capf loadgen` with both servers (half the phones start on each);
/// the first server is killed with SIGKILL in the middle of the run, while
/// it also holds two phones of its own mid-session: one waiting for its
/// key (the device leased), one sent its certificate (issued and
/// recorded, not yet delivered). Every device is enrolled exactly once:
/// one delivered LSC each, distinct serials; the held phones finish on the
/// other server once their leases lapse; no lease is left.
#[test]
fn a_server_killed_mid_run_leaves_no_device_half_done() {
    const PHONES: usize = 240;
    let Some(db) = TestDatabase::create("a_server_killed_mid_run_leaves_no_device_half_done")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = two_nodes(dir.path(), &db);
    let held = [("SEP0000000F0001", "112233"), ("SEP0000000F0002", "445566")];
    for (name, string) in held {
        ok(capf_db(
            &first,
            &db,
            &[
                "device",
                "add",
                name,
                "--operation",
                "install",
                "--auth-string",
                string,
                "--key",
                "p256",
            ],
        ));
    }
    let short_lease = ["--lease-ttl", "2", "--max-per-address", "512"];
    let mut one = serve(&first, &db, &dir.path().join("one.log"), &short_lease);
    let two = serve(&second, &db, &dir.path().join("two.log"), &short_lease);

    // Two phones stopped mid-session on the first server.
    let rt = common::runtime();
    let tls = common::phone_tls(&first);
    let (key_requested, key_requested_rx) = tokio::sync::oneshot::channel();
    let (_never_generate, generate_when) = tokio::sync::oneshot::channel::<()>();
    let waiting_for_key = rt.spawn(common::handset::run_scripted(
        one.addr.clone(),
        tls.clone(),
        common::phone_config(held[0].0, held[0].1),
        common::handset::Script {
            key_requested: Some(key_requested),
            generate_when: Some(generate_when),
            ..Default::default()
        },
    ));
    let (certificate_sent, certificate_rx) = tokio::sync::oneshot::channel();
    let (_never_answer, answer_when) = tokio::sync::oneshot::channel::<()>();
    let _holding_certificate = rt.spawn(common::handset::run_scripted(
        one.addr.clone(),
        tls,
        common::phone_config(held[1].0, held[1].1),
        common::handset::Script {
            hold_at_store: Some((certificate_sent, answer_when)),
            ..Default::default()
        },
    ));
    rt.block_on(key_requested_rx).unwrap();
    let undelivered = rt.block_on(certificate_rx).unwrap();

    let loadgen = Command::new(env!("CARGO_BIN_EXE_capf"))
        .arg("--data-dir")
        .arg(&second)
        .args(["--database", &db.url, "loadgen"])
        .args(["--server", &one.addr, "--server", &two.addr])
        .args(["--phones", &PHONES.to_string(), "--concurrency", "12"])
        .args(["--auth", "null-string", "--key", "p256"])
        .args(["--retries", "8", "--retry-interval", "1", "--timeout", "20"])
        // The devices are counted afterwards: loadgen keeps them.
        .arg("--keep")
        .arg("--json")
        .env_remove("CAPF_DATA_DIR")
        .env_remove("CAPF_DATABASE_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Mid-run: once the first server has finished some of loadgen's
    // sessions, kill it.
    for _ in 0..30 {
        one.wait_for_line("session done");
    }
    one.sigkill();
    // The held phones are gone with their server (the first waits for a
    // key it will never make: stop it).
    waiting_for_key.abort();
    let out = loadgen.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "loadgen failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    println!("{report:#}");
    assert_eq!(report["succeeded"], PHONES, "{report:#}");

    // The held phones try again, the dead server first: each finishes on
    // the second once the dead server's lease lapses.
    for (name, string) in held {
        let out = Command::new(env!("CARGO_BIN_EXE_capf"))
            .args([
                "phone", "install", "--server", &one.addr, "--server", &two.addr,
            ])
            .arg("--capf-cert")
            .arg(first.join("capf.pem"))
            .args(["--device", name, "--auth-string", string])
            .arg("--cert-out")
            .arg(dir.path().join(format!("{name}.pem")))
            .args(["--retries", "8", "--retry-interval", "1", "--json"])
            .env_remove("CAPF_DATA_DIR")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let result: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(result["server"], two.addr.as_str(), "{result:#}");
    }
    drop(two);

    let devices = (PHONES + held.len()) as i64;
    let mut client = db.client();
    let count =
        |client: &mut Client, sql: &str| -> i64 { client.query_one(sql, &[]).unwrap().get(0) };
    assert_eq!(count(&mut client, "SELECT count(*) FROM devices"), devices);
    assert_eq!(
        count(
            &mut client,
            "SELECT count(*) FROM devices WHERE status_kind = 'succeeded' AND has_lsc \
             AND operation = 'none'"
        ),
        devices,
        "every device done"
    );
    assert_eq!(
        count(
            &mut client,
            "SELECT count(*) FROM (SELECT device FROM issued_certificates WHERE delivered \
             GROUP BY device HAVING count(*) = 1) once"
        ),
        devices,
        "one delivered LSC per device"
    );
    assert_eq!(
        count(
            &mut client,
            "SELECT count(DISTINCT serial) FROM issued_certificates WHERE delivered"
        ),
        devices,
        "distinct serials"
    );
    // The device's LSC on record is the delivered one.
    assert_eq!(
        count(
            &mut client,
            "SELECT count(*) FROM devices d JOIN issued_certificates c \
             ON c.serial = d.lsc_serial AND c.device = d.name AND c.delivered"
        ),
        devices
    );
    // What the dead server issued and never delivered stays in the
    // history, undelivered.
    let row = client
        .query_one(
            "SELECT count(*), bool_or(der = $1 AND NOT delivered) FROM issued_certificates \
             WHERE device = $2",
            &[&undelivered, &held[1].0],
        )
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, bool>(1)), (2, true));
    assert_eq!(
        count(&mut client, "SELECT count(*) FROM leases"),
        0,
        "no lease left"
    );
}
