#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `capf admin user ...` and `capf admin token ...`, run as an operator
//! runs them against a temporary data directory; what they stored is
//! checked in the SQLite database directly.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use capf_operations::{AccountName, AccountStore, AuditQuery, OperatorStore, Role};
use capf_store::SqliteStore;
use tempfile::TempDir;

struct Env {
    dir: TempDir,
}

impl Env {
    /// A data directory initialised with a P-256 CAPF key (fast).
    fn new() -> Env {
        let env = Env {
            dir: TempDir::new().unwrap(),
        };
        env.ok(&["init", "--key", "p256"]);
        env
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs `capf --data-dir DATA ARGS` with `stdin` as standard input.
    fn run_with(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_capf"))
            .arg("--data-dir")
            .arg(self.data())
            .args(args)
            .env_remove("CAPF_DATA_DIR")
            .env_remove("CAPF_DATABASE_URL")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut pipe = child.stdin.take().unwrap();
        // A command refused before it reads its input (a usage error, an
        // unknown account) exits and closes the pipe: that is its answer,
        // not the test's failure.
        match pipe.write_all(stdin.as_bytes()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            other => other.unwrap(),
        }
        drop(pipe);
        child.wait_with_output().unwrap()
    }

    fn ok_with(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run_with(args, stdin);
        assert!(
            out.status.success(),
            "capf {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        self.ok_with(args, "")
    }

    /// Runs and expects exit `code`; returns stderr.
    fn fails(&self, args: &[&str], stdin: &str, code: i32) -> String {
        let out = self.run_with(args, stdin);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(code),
            "capf {args:?}: {}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        );
        stderr
    }

    fn store(&self) -> SqliteStore {
        SqliteStore::open(self.data().join("capf.sqlite3")).unwrap()
    }

    fn events(&self) -> Vec<(String, String, Option<String>)> {
        self.store()
            .audit(&AuditQuery::default())
            .unwrap()
            .into_iter()
            .map(|e| (e.event, e.detail, e.actor))
            .collect()
    }
}

fn name(n: &str) -> AccountName {
    AccountName::parse(n).unwrap()
}

#[test]
fn accounts_are_added_listed_changed_and_removed() {
    let env = Env::new();
    let add = |n: &str, role: &str, pw: &str| {
        env.ok_with(
            &[
                "admin",
                "user",
                "add",
                n,
                "--role",
                role,
                "--password-stdin",
            ],
            &format!("{pw}\n"),
        )
    };
    assert!(add("alice", "admin", "first password").contains("alice"));
    add("bob", "helpdesk", "bobs password");

    // Stored hashed (argon2id), with the role asked for.
    let alice = env.store().account(&name("alice")).unwrap().unwrap();
    assert_eq!(alice.role, Role::Admin);
    assert!(alice.password_hash.starts_with("$argon2id$"));
    assert!(capf_admin::password::verify(
        "first password",
        &alice.password_hash
    ));

    // Lists, as text and JSON: names and roles, never a hash.
    let text = env.ok(&["admin", "user", "list"]);
    assert!(text.contains("alice") && text.contains("bob") && text.contains("helpdesk"));
    assert!(!text.contains("argon2"), "{text}");
    let json = env.ok(&["admin", "user", "list", "--json"]);
    assert!(!json.contains("argon2"), "{json}");
    let list: serde_json::Value = serde_json::from_str(&json).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["name"], "alice");
    assert_eq!(list[0]["role"], "admin");
    assert_eq!(list[1]["role"], "helpdesk");
    assert!(list[0]["created_at"].as_str().unwrap().ends_with('Z'));

    // A new password replaces the hash.
    env.ok_with(
        &["admin", "user", "passwd", "alice", "--password-stdin"],
        "second password\r\n",
    );
    let changed = env.store().account(&name("alice")).unwrap().unwrap();
    assert_ne!(changed.password_hash, alice.password_hash);
    assert!(capf_admin::password::verify(
        "second password",
        &changed.password_hash
    ));
    assert!(!capf_admin::password::verify(
        "first password",
        &changed.password_hash
    ));

    // Role change, then removal.
    env.ok(&["admin", "user", "role", "bob", "--role", "read-only"]);
    let bob = env.store().account(&name("bob")).unwrap().unwrap();
    assert_eq!(bob.role, Role::ReadOnly);
    env.ok(&["admin", "user", "remove", "bob"]);
    assert!(env.store().account(&name("bob")).unwrap().is_none());
    env.fails(&["admin", "user", "remove", "bob"], "", 1);

    // Each change is in the audit log, by the command line (no actor), and
    // never with a password or hash.
    let events = env.events();
    for (event, detail) in [
        ("account-added", "account alice, role admin"),
        ("account-added", "account bob, role helpdesk"),
        ("account-password", "account alice, password set"),
        ("account-role", "account bob, role read-only"),
        ("account-removed", "account bob"),
    ] {
        assert!(
            events
                .iter()
                .any(|(e, d, actor)| e == event && d == detail && actor.is_none()),
            "{event} {detail} not in {events:?}"
        );
    }
    let all = format!("{events:?}");
    for secret in [
        "first password",
        "second password",
        "bobs password",
        "$argon2",
    ] {
        assert!(!all.contains(secret), "{all}");
    }
}

#[test]
fn refusals_say_why_with_the_right_exit_status() {
    let env = Env::new();
    let pw = "long enough\n";
    env.ok_with(
        &[
            "admin",
            "user",
            "add",
            "root",
            "--role",
            "admin",
            "--password-stdin",
        ],
        pw,
    );

    // The last admin stays: neither removed nor demoted (exit 1).
    let e = env.fails(&["admin", "user", "remove", "root"], "", 1);
    assert!(e.contains("last admin"), "{e}");
    let e = env.fails(
        &["admin", "user", "role", "root", "--role", "helpdesk"],
        "",
        1,
    );
    assert!(e.contains("last admin"), "{e}");
    assert_eq!(
        env.store().account(&name("root")).unwrap().unwrap().role,
        Role::Admin
    );

    // A name already taken (exit 1); an unknown account (exit 1).
    let e = env.fails(
        &[
            "admin",
            "user",
            "add",
            "root",
            "--role",
            "helpdesk",
            "--password-stdin",
        ],
        pw,
        1,
    );
    assert!(e.contains("already exists"), "{e}");
    env.fails(
        &["admin", "user", "passwd", "nobody", "--password-stdin"],
        pw,
        1,
    );

    // Usage errors (exit 2): bad name, bad role, short or missing password,
    // no password source without a terminal.
    env.fails(
        &[
            "admin",
            "user",
            "add",
            "a b",
            "--role",
            "admin",
            "--password-stdin",
        ],
        pw,
        2,
    );
    let e = env.fails(
        &[
            "admin",
            "user",
            "add",
            "carol",
            "--role",
            "root",
            "--password-stdin",
        ],
        pw,
        2,
    );
    assert!(e.contains("read-only"), "{e}");
    let e = env.fails(
        &[
            "admin",
            "user",
            "add",
            "carol",
            "--role",
            "admin",
            "--password-stdin",
        ],
        "short\n",
        2,
    );
    assert!(e.contains("at least 8"), "{e}");
    env.fails(
        &[
            "admin",
            "user",
            "add",
            "carol",
            "--role",
            "admin",
            "--password-stdin",
        ],
        "",
        2,
    );
    env.fails(&["admin", "user", "add", "carol", "--role", "admin"], "", 2);
    env.fails(&["admin", "user", "add", "carol"], "", 2);
    assert!(env.store().account(&name("carol")).unwrap().is_none());

    // Once another admin exists, the first may go.
    env.ok_with(
        &[
            "admin",
            "user",
            "add",
            "second",
            "--role",
            "admin",
            "--password-stdin",
        ],
        pw,
    );
    env.ok(&["admin", "user", "remove", "root"]);
}

#[test]
fn tokens_are_shown_once_stored_hashed_and_revoked() {
    let env = Env::new();
    let out = env.ok(&[
        "admin",
        "token",
        "create",
        "--name",
        "nightly-report",
        "--role",
        "read-only",
    ]);
    let presented = out
        .lines()
        .find(|l| l.starts_with(capf_admin::token::PREFIX))
        .unwrap_or_else(|| panic!("no token in {out}"))
        .trim()
        .to_owned();
    let (id, secret) = capf_admin::token::split(&presented).unwrap();
    let stored = env.store().token(id).unwrap().unwrap();
    assert_eq!(stored.label, "nightly-report");
    assert_eq!(stored.role, Role::ReadOnly);
    assert!(stored.created_by.is_none());
    assert!(capf_admin::token::secret_matches(&stored, secret));
    assert_ne!(stored.secret_sha256, secret);

    // JSON: the record and the token, this once.
    let json = env.ok(&[
        "admin", "token", "create", "--name", "deploy", "--role", "helpdesk", "--json",
    ]);
    let created: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(created["role"], "helpdesk");
    assert_eq!(created["label"], "deploy");
    let second = created["token"].as_str().unwrap();
    let (second_id, second_secret) = capf_admin::token::split(second).unwrap();
    assert_eq!(created["id"], second_id);
    let stored2 = env.store().token(second_id).unwrap().unwrap();
    assert!(capf_admin::token::secret_matches(&stored2, second_secret));

    // Lists never show a secret or its hash.
    for args in [
        &["admin", "token", "list"][..],
        &["admin", "token", "list", "--json"][..],
    ] {
        let listed = env.ok(args);
        assert!(listed.contains(id) && listed.contains("nightly-report"));
        for hidden in [
            secret,
            second_secret,
            &stored.secret_sha256,
            &stored2.secret_sha256,
        ] {
            assert!(!listed.contains(hidden), "{listed}");
        }
    }
    let list: serde_json::Value =
        serde_json::from_str(&env.ok(&["admin", "token", "list", "--json"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0]["role"], "read-only");
    assert!(list[0].get("token").is_none());

    // Revoked at once; revoking again fails (exit 1). Bad input: exit 2.
    env.ok(&["admin", "token", "revoke", id]);
    assert!(env.store().token(id).unwrap().is_none());
    env.fails(&["admin", "token", "revoke", id], "", 1);
    env.fails(
        &["admin", "token", "create", "--name", "x", "--role", "root"],
        "",
        2,
    );
    env.fails(
        &["admin", "token", "create", "--name", "", "--role", "admin"],
        "",
        2,
    );

    let events = env.events();
    assert!(
        events
            .iter()
            .any(|(e, d, a)| e == "token-created" && d.contains("nightly-report") && a.is_none()),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|(e, d, _)| e == "token-revoked" && d.contains(id)),
        "{events:?}"
    );
    let all = format!("{events:?}");
    assert!(!all.contains(secret) && !all.contains(&stored.secret_sha256));
}
