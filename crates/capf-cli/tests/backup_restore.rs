//! Disaster recovery, as an operator lives it: a CAPF with an enrolled
//! phone is backed up, its data directory is lost, the backup is restored
//! into a new one, and the phone upgrades authenticated by its old LSC.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use capf_ca::{CaCertificate, CertificateKind};
use capf_operations::phone::{
    CertificateCredentials, Credentials, PhoneConfig, PhoneOutcome, PhoneSuccess,
};
use capf_server::PhoneClient;
use common::{Serve, capf, phone_config, phone_tls, runtime};

const LIMIT: Duration = Duration::from_secs(60);
const PHONE: &str = "SEP00112233BB01";

fn run(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_capf"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("CAPF_DATA_DIR")
        .env_remove("CAPF_BACKUP_PASSPHRASE")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn fingerprint(data: &Path) -> String {
    let pem = std::fs::read_to_string(data.join(capf_ca::CERT_FILE)).unwrap();
    CaCertificate::from_pem(&pem, "CAPF certificate")
        .unwrap()
        .fingerprint_sha256_hex()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_lost_capf_is_restored_whole_and_its_phones_keep_working() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let pass = tmp.path().join("pass");
    std::fs::write(&pass, "correct horse battery staple\n").unwrap();
    let pass = pass.to_str().unwrap();
    capf(&data, &["init", "--key", "p256"]);
    capf(
        &data,
        &[
            "device",
            "add",
            PHONE,
            "--operation",
            "install",
            "--auth-string",
            "24680",
            "--key",
            "p256",
        ],
    );
    let before = fingerprint(&data);

    // The phone enrolls.
    let rt = runtime();
    let lsc = {
        let serve = Serve::start(&data, tmp.path().join("serve-1.log"));
        let client = PhoneClient::new((*phone_tls(&data)).clone());
        let run = rt
            .block_on(async {
                tokio::time::timeout(LIMIT, client.run(&serve.addr, phone_config(PHONE, "24680")))
                    .await
            })
            .unwrap()
            .unwrap();
        assert!(
            matches!(
                run.outcome,
                PhoneOutcome::Succeeded(PhoneSuccess::Installed { .. })
            ),
            "{:?}",
            run.outcome
        );
        run.installed.unwrap()
    };

    // A whole backup, encrypted, private.
    let backup = tmp.path().join("capf.bak");
    let out = run(
        &data,
        &[
            "backup",
            backup.to_str().unwrap(),
            "--passphrase-file",
            pass,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    #[cfg(unix)]
    assert_eq!(mode(&backup), 0o600);
    let sealed = std::fs::read(&backup).unwrap();
    assert!(sealed.starts_with(b"age-encryption.org/v1"), "an age file");
    assert!(
        !sealed.windows(11).any(|w| w == b"PRIVATE KEY"),
        "no key in clear"
    );

    // The server's directory is lost.
    std::fs::remove_dir_all(&data).unwrap();

    // A wrong passphrase: refused, nothing written.
    let wrong = tmp.path().join("wrong");
    std::fs::write(&wrong, "not the passphrase\n").unwrap();
    let out = run(
        &data,
        &[
            "restore",
            backup.to_str().unwrap(),
            "--passphrase-file",
            wrong.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("wrong passphrase"), "{}", text(&out));
    assert!(!data.exists(), "nothing written");

    // Restored into nothing: the same CAPF.
    let out = run(
        &data,
        &[
            "restore",
            backup.to_str().unwrap(),
            "--passphrase-file",
            pass,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fingerprint(&data), before, "the same CAPF certificate");
    #[cfg(unix)]
    assert_eq!(mode(&data.join(capf_ca::KEY_FILE)), 0o600);
    let shown = capf(&data, &["device", "show", PHONE, "--json"]);
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["lsc_status"], "installed");

    // The phone upgrades, authenticated by its old LSC.
    capf(
        &data,
        &[
            "device",
            "set",
            PHONE,
            "--auth-mode",
            "lsc-first",
            "--operation",
            "install",
        ],
    );
    let serve = Serve::start(&data, tmp.path().join("serve-2.log"));
    let client = PhoneClient::new((*phone_tls(&data)).clone());
    let credentials = Credentials::Certificate(Box::new(CertificateCredentials {
        kind: CertificateKind::Lsc,
        certificate_der: lsc.0.clone().into(),
        key: lsc.1.clone(),
        sudi: None,
    }));
    let config = PhoneConfig::new(PHONE, credentials).with_lsc(lsc.0.clone());
    let run_2 = rt
        .block_on(async { tokio::time::timeout(LIMIT, client.run(&serve.addr, config)).await })
        .unwrap()
        .unwrap();
    assert!(
        matches!(
            run_2.outcome,
            PhoneOutcome::Succeeded(PhoneSuccess::Installed { .. })
        ),
        "{:?}\n{}",
        run_2.outcome,
        serve.log()
    );
    drop(serve);

    // Restoring over it again needs --force (it holds data now).
    let out = run(
        &data,
        &[
            "restore",
            backup.to_str().unwrap(),
            "--passphrase-file",
            pass,
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let out = run(
        &data,
        &[
            "restore",
            backup.to_str().unwrap(),
            "--force",
            "--passphrase-file",
            pass,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let kept = data.join("capf.sqlite3.before-restore");
    assert!(
        text(&out).contains("capf.sqlite3.before-restore"),
        "{}",
        text(&out)
    );
    #[cfg(unix)]
    assert_eq!(mode(&kept), 0o600);
    // Once only: a second forced restore keeps the latest copy, no more.
    let out = run(
        &data,
        &[
            "restore",
            backup.to_str().unwrap(),
            "--force",
            "--passphrase-file",
            pass,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let copies = std::fs::read_dir(&data)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains("before-restore")
        })
        .count();
    assert_eq!(copies, 1);
}

/// A backup whose database carries a trigger (switching a device to the
/// null string on any update): the restore leaves it behind, says so, and
/// an operator's edit afterwards does not change the mode.
#[test]
fn a_trigger_in_a_backup_is_not_restored() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let pass = tmp.path().join("pass");
    std::fs::write(&pass, "correct horse battery staple\n").unwrap();
    let pass = pass.to_str().unwrap();
    capf(&data, &["init", "--key", "p256"]);
    capf(
        &data,
        &[
            "device",
            "add",
            PHONE,
            "--operation",
            "install",
            "--auth-string",
            "1234",
        ],
    );
    {
        let conn = rusqlite::Connection::open(data.join("capf.sqlite3")).unwrap();
        conn.execute_batch(
            "CREATE TRIGGER evil AFTER UPDATE ON devices BEGIN \
             UPDATE devices SET auth_mode = 'null-string' WHERE name = NEW.name; END;",
        )
        .unwrap();
    }
    let backup = tmp.path().join("capf.bak");
    capf(
        &data,
        &[
            "backup",
            backup.to_str().unwrap(),
            "--passphrase-file",
            pass,
        ],
    );
    let other = tmp.path().join("other");
    let out = run(
        &other,
        &[
            "restore",
            backup.to_str().unwrap(),
            "--passphrase-file",
            pass,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("trigger \"evil\""), "{}", text(&out));
    capf(
        &other,
        &["device", "set", PHONE, "--description", "after the restore"],
    );
    let shown = capf(&other, &["device", "show", PHONE, "--json"]);
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["auth_mode"], "auth-string");
    assert_eq!(shown["description"], "after the restore");
}

/// A database-only backup says so and cannot recreate the CAPF; a whole
/// backup gives a second server the same identity without the database;
/// a directory with another CAPF is refused, naming both fingerprints.
#[test]
fn identities_are_never_replaced_by_surprise() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let pass = tmp.path().join("pass");
    std::fs::write(&pass, "correct horse battery staple\n").unwrap();
    let pass = pass.to_str().unwrap();
    capf(&data, &["init", "--key", "p256"]);
    capf(&data, &["device", "add", PHONE]);
    let whole = tmp.path().join("whole.bak");
    // An existing file, even empty and 0666, is never written over.
    std::fs::write(&whole, b"").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&whole, std::fs::Permissions::from_mode(0o666)).unwrap();
    }
    let out = run(
        &data,
        &["backup", whole.to_str().unwrap(), "--passphrase-file", pass],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(std::fs::read(&whole).unwrap(), b"");
    std::fs::remove_file(&whole).unwrap();
    capf(
        &data,
        &["backup", whole.to_str().unwrap(), "--passphrase-file", pass],
    );
    let no_keys = tmp.path().join("no-keys.bak");
    let out = capf(
        &data,
        &[
            "backup",
            no_keys.to_str().unwrap(),
            "--no-keys",
            "--passphrase-file",
            pass,
        ],
    );
    assert!(text(&out).contains("DATABASE ONLY"), "{}", text(&out));

    // The database-only backup restores the devices, and no identity.
    let bare = tmp.path().join("bare");
    let out = run(
        &bare,
        &[
            "restore",
            no_keys.to_str().unwrap(),
            "--passphrase-file",
            pass,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("no private keys"), "{}", text(&out));
    assert!(!bare.join(capf_ca::KEY_FILE).exists());
    // The identity from the whole backup completes it.
    let out = run(
        &bare,
        &[
            "restore",
            whole.to_str().unwrap(),
            "--identity-only",
            "--passphrase-file",
            pass,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fingerprint(&bare), fingerprint(&data));

    // A directory with another CAPF.
    let other = tmp.path().join("other");
    capf(&other, &["init", "--key", "p256"]);
    let theirs = fingerprint(&other);
    let out = run(
        &other,
        &[
            "restore",
            whole.to_str().unwrap(),
            "--passphrase-file",
            pass,
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains(&theirs), "{}", text(&out));
    assert!(text(&out).contains(&fingerprint(&data)), "{}", text(&out));
    assert_eq!(fingerprint(&other), theirs, "unchanged");
    // Forced: replaced, and the old key kept aside.
    let out = run(
        &other,
        &[
            "restore",
            whole.to_str().unwrap(),
            "--force",
            "--passphrase-file",
            pass,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fingerprint(&other), fingerprint(&data));
    assert!(other.join("capf-key.pem.before-restore").exists());
}

/// Operator accounts, API tokens and the whole audit log (who did what,
/// entries about no device) are in a backup, and a restore brings them
/// back as they were.
#[test]
fn operator_accounts_and_their_audit_come_back_from_a_backup() {
    use capf_operations::{
        Account, AccountName, AccountStore, ApiToken, AuditEntry, AuditQuery, DeviceName,
        OperatorStore, Role,
    };
    use capf_store::SqliteStore;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let pass = tmp.path().join("pass");
    std::fs::write(&pass, "correct horse battery staple\n").unwrap();
    let pass = pass.to_str().unwrap();
    capf(&data, &["init", "--key", "p256"]);
    capf(&data, &["device", "add", PHONE, "--operation", "install"]);
    let now = std::time::SystemTime::now();
    let alice = Account {
        name: AccountName::parse("alice").unwrap(),
        role: Role::Admin,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        created_at: now,
        password_changed_at: now,
    };
    let token = ApiToken {
        id: "nightly".into(),
        label: "nightly report".into(),
        role: Role::ReadOnly,
        secret_sha256: "5e".repeat(32),
        created_at: now,
        created_by: Some(alice.name.clone()),
    };
    let (accounts, tokens, audit) = {
        let store = SqliteStore::open(data.join("capf.sqlite3")).unwrap();
        store.add_account(&alice).unwrap();
        store.add_token(&token).unwrap();
        store
            .record_event(&AuditEntry::account_added(now, &alice))
            .unwrap();
        store
            .record_event(&AuditEntry::token_created(now, &token).by("alice"))
            .unwrap();
        let phone = DeviceName::parse(PHONE).unwrap();
        store
            .record_event(&AuditEntry::new(now, &phone, "changed", "operation").by("alice"))
            .unwrap();
        (
            store.accounts().unwrap(),
            store.tokens().unwrap(),
            store.audit(&AuditQuery::default()).unwrap(),
        )
    };
    assert_eq!(audit.len(), 4, "added, and three by operators");
    let backup = tmp.path().join("capf.bak");
    capf(
        &data,
        &[
            "backup",
            backup.to_str().unwrap(),
            "--passphrase-file",
            pass,
        ],
    );
    let other = tmp.path().join("other");
    let out = run(
        &other,
        &[
            "restore",
            backup.to_str().unwrap(),
            "--passphrase-file",
            pass,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("not restored"), "{}", text(&out));
    let restored = SqliteStore::open(other.join("capf.sqlite3")).unwrap();
    assert_eq!(restored.accounts().unwrap(), accounts);
    assert_eq!(restored.tokens().unwrap(), tokens);
    assert_eq!(restored.audit(&AuditQuery::default()).unwrap(), audit);
}
