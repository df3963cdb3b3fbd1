//! `capf admin user add|passwd|role|remove|list` and `capf admin token
//! create|list|revoke`: the operator accounts and API tokens of the
//! console's REST API (crates/capf-admin), kept in the same database as the
//! devices. Passwords are read from the terminal without echo (twice) or
//! from standard input (`--password-stdin`), never from the command line,
//! and stored as argon2id hashes; a token is shown once and stored as the
//! SHA-256 of its secret. Every change is recorded in the audit log, by the
//! command line (no actor).

use std::io::{BufRead, IsTerminal};
use std::time::SystemTime;

use capf_admin::{password, token};
use capf_operations::{
    Account, AccountName, AccountStore, ApiToken, AuditEntry, OperatorStore, Role, escape_text,
};
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::data_dir::DataDir;
use crate::output::print_json;
use crate::store::Store;
use crate::{Failure, Outcome, time_text};

/// `capf admin ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum AdminCommand {
    /// Operator accounts (people, with a password).
    #[command(
        subcommand,
        after_help = "Examples:\n  \
            capf admin user add alice --role admin                 asks for the password twice\n  \
            printf '%s\\n' \"$PW\" | capf admin user add bob --role helpdesk --password-stdin\n  \
            capf admin user role bob --role read-only\n  \
            capf admin user list --json"
    )]
    User(UserCommand),
    /// API tokens (scripts): shown once, stored hashed.
    #[command(
        subcommand,
        after_help = "Examples:\n  \
            capf admin token create --name nightly-report --role read-only\n  \
            capf admin token list\n  \
            capf admin token revoke 0123456789abcdef"
    )]
    Token(TokenCommand),
}

/// `capf admin user ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Add an account; its password is asked for (or read with --password-stdin).
    #[command(after_help = "Examples:\n  \
        capf admin user add alice --role admin\n  \
        printf '%s\\n' \"$PW\" | capf admin user add bob --role helpdesk --password-stdin\n\n\
        The first account of a new installation is an admin. Passwords have at least \
        8 characters; they are never taken from the command line.")]
    Add {
        /// Login name: 1 to 64 characters from A-Z a-z 0-9 . _ @ -
        #[arg(value_parser = parse_name)]
        name: AccountName,
        /// What the account may do: admin, helpdesk or read-only.
        #[arg(long, value_parser = parse_role, value_name = "ROLE")]
        role: Role,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Set an account's password.
    #[command(after_help = "Examples:\n  \
        capf admin user passwd alice\n  \
        printf '%s\\n' \"$PW\" | capf admin user passwd alice --password-stdin")]
    Passwd {
        /// Login name.
        #[arg(value_parser = parse_name)]
        name: AccountName,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Change an account's role (the last admin stays an admin).
    #[command(after_help = "Example:\n  capf admin user role bob --role read-only")]
    Role {
        /// Login name.
        #[arg(value_parser = parse_name)]
        name: AccountName,
        /// The new role: admin, helpdesk or read-only.
        #[arg(long, value_parser = parse_role, value_name = "ROLE")]
        role: Role,
    },
    /// Remove an account (the last admin cannot be removed).
    #[command(after_help = "Example:\n  capf admin user remove bob")]
    Remove {
        /// Login name.
        #[arg(value_parser = parse_name)]
        name: AccountName,
    },
    /// List the accounts (never their password hashes).
    #[command(after_help = "Examples:\n  capf admin user list\n  capf admin user list --json")]
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Where a new password comes from.
#[derive(Debug, Args)]
pub(crate) struct PasswordSource {
    /// Read the password from the first line of standard input (for
    /// scripts) instead of asking on the terminal.
    #[arg(long)]
    password_stdin: bool,
}

/// `capf admin token ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Make a token for a script; it is printed once and cannot be shown again.
    #[command(after_help = "Examples:\n  \
        capf admin token create --name nightly-report --role read-only\n  \
        capf admin token create --name provisioning --role helpdesk --json\n\n\
        The script sends it as `Authorization: Bearer capf_...`.")]
    Create {
        /// What the token is for (1 to 200 bytes).
        #[arg(long, value_name = "LABEL")]
        name: String,
        /// What the token may do: admin, helpdesk or read-only.
        #[arg(long, value_parser = parse_role, value_name = "ROLE")]
        role: Role,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the tokens (ids, labels, roles; never the secrets).
    #[command(after_help = "Examples:\n  capf admin token list\n  capf admin token list --json")]
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token at once.
    #[command(after_help = "Example:\n  capf admin token revoke 0123456789abcdef")]
    Revoke {
        /// The token's id (see `capf admin token list`).
        id: String,
    },
}

fn parse_name(text: &str) -> Result<AccountName, String> {
    AccountName::parse(text).map_err(|e| e.to_string())
}

fn parse_role(text: &str) -> Result<Role, String> {
    text.parse::<Role>()
        .map_err(|_| format!("{text:?} is not a role: use admin, helpdesk or read-only"))
}

/// A role as JSON spells it (as the `--role` flag does).
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
enum RoleView {
    ReadOnly,
    Helpdesk,
    Admin,
}

impl From<Role> for RoleView {
    fn from(role: Role) -> Self {
        match role {
            Role::ReadOnly => RoleView::ReadOnly,
            Role::Helpdesk => RoleView::Helpdesk,
            Role::Admin => RoleView::Admin,
        }
    }
}

/// An account in `capf admin user list --json` (never its hash).
#[derive(Debug, Serialize)]
struct AccountView {
    name: String,
    role: RoleView,
    created_at: String,
    password_changed_at: String,
}

impl AccountView {
    fn of(a: &Account) -> Self {
        AccountView {
            name: a.name.to_string(),
            role: a.role.into(),
            created_at: time_text::format(a.created_at),
            password_changed_at: time_text::format(a.password_changed_at),
        }
    }
}

/// A token in `capf admin token list --json` (never its secret or hash).
#[derive(Debug, Serialize)]
struct TokenView {
    id: String,
    label: String,
    role: RoleView,
    created_at: String,
    created_by: Option<String>,
}

impl TokenView {
    fn of(t: &ApiToken) -> Self {
        TokenView {
            id: t.id.clone(),
            label: t.label.clone(),
            role: t.role.into(),
            created_at: time_text::format(t.created_at),
            created_by: t.created_by.as_ref().map(ToString::to_string),
        }
    }
}

/// `capf admin token create --json`: the record and, this once, the token.
#[derive(Serialize)]
struct CreatedTokenView {
    #[serde(flatten)]
    record: TokenView,
    token: String,
}

pub(crate) fn run(data: &DataDir, command: AdminCommand) -> Result<Outcome, Failure> {
    match command {
        AdminCommand::User(command) => run_user(data, command),
        AdminCommand::Token(command) => run_token(data, command),
    }
}

fn run_user(data: &DataDir, command: UserCommand) -> Result<Outcome, Failure> {
    match command {
        UserCommand::Add {
            name,
            role,
            password,
        } => {
            let store = super::device::open(data)?;
            if store.account(&name)?.is_some() {
                return Err(Failure::new(format!("account {name} already exists")));
            }
            let hash = new_password_hash(&password)?;
            let now = SystemTime::now();
            let account = Account {
                name,
                role,
                password_hash: hash,
                created_at: now,
                password_changed_at: now,
            };
            store.add_account(&account)?;
            store.record_event(&AuditEntry::account_added(now, &account))?;
            println!("added account {}, role {}", account.name, account.role);
        }
        UserCommand::Passwd { name, password } => {
            let store = super::device::open(data)?;
            if store.account(&name)?.is_none() {
                return Err(missing_account(&name));
            }
            let hash = new_password_hash(&password)?;
            let now = SystemTime::now();
            if !store.set_password(&name, &hash, now)? {
                return Err(missing_account(&name));
            }
            store.record_event(&AuditEntry::account_password_set(now, &name))?;
            println!("password of account {name} set");
        }
        UserCommand::Role { name, role } => {
            let store = super::device::open(data)?;
            if !store.set_role(&name, role)? {
                return Err(missing_account(&name));
            }
            store.record_event(&AuditEntry::account_role_set(
                SystemTime::now(),
                &name,
                role,
            ))?;
            println!("account {name} now has role {role}");
        }
        UserCommand::Remove { name } => {
            let store = super::device::open(data)?;
            if !store.remove_account(&name)? {
                return Err(missing_account(&name));
            }
            store.record_event(&AuditEntry::account_removed(SystemTime::now(), &name))?;
            println!("removed account {name}");
        }
        UserCommand::List { json } => {
            let store = super::device::open(data)?;
            let accounts = store.accounts()?;
            if json {
                let views: Vec<AccountView> = accounts.iter().map(AccountView::of).collect();
                print_json(&views)?;
            } else {
                print_accounts(&accounts);
            }
        }
    }
    Ok(Outcome::Done)
}

fn run_token(data: &DataDir, command: TokenCommand) -> Result<Outcome, Failure> {
    match command {
        TokenCommand::Create { name, role, json } => {
            if name.is_empty() || name.len() > 200 {
                return Err(Failure::usage("a token's --name has 1 to 200 bytes"));
            }
            let store = super::device::open(data)?;
            let now = SystemTime::now();
            let minted = token::mint(&name, role, None, now)
                .map_err(|e| Failure::new(format!("making a token: {e}")))?;
            store.add_token(&minted.record)?;
            store.record_event(&AuditEntry::token_created(now, &minted.record))?;
            if json {
                print_json(&CreatedTokenView {
                    record: TokenView::of(&minted.record),
                    token: minted.presented,
                })?;
            } else {
                println!(
                    "created token {} \"{}\", role {role}",
                    minted.record.id,
                    escape_text(&minted.record.label)
                );
                println!("{}", minted.presented);
                println!(
                    "(shown only this once: the script sends it as `Authorization: Bearer ...`)"
                );
            }
        }
        TokenCommand::List { json } => {
            let store = super::device::open(data)?;
            let tokens = store.tokens()?;
            if json {
                let views: Vec<TokenView> = tokens.iter().map(TokenView::of).collect();
                print_json(&views)?;
            } else {
                print_tokens(&tokens);
            }
        }
        TokenCommand::Revoke { id } => {
            let store = super::device::open(data)?;
            if !store.remove_token(&id)? {
                return Err(Failure::new(format!(
                    "token {} does not exist (see `capf admin token list`)",
                    escape_text(&id)
                )));
            }
            store.record_event(&AuditEntry::token_revoked(SystemTime::now(), &id))?;
            println!("revoked token {}", escape_text(&id));
        }
    }
    Ok(Outcome::Done)
}

fn missing_account(name: &AccountName) -> Failure {
    Failure::new(format!(
        "account {name} does not exist (see `capf admin user list`)"
    ))
}

/// The new password, read as the flags say, checked and hashed (argon2id).
fn new_password_hash(source: &PasswordSource) -> Result<String, Failure> {
    let password = read_password(source)?;
    password::check_new(&password).map_err(|e| Failure::usage(password_problem(e)))?;
    password::hash(&password).map_err(|e| Failure::new(format!("hashing the password: {e}")))
}

/// An `AdminError::BadRequest` says "bad request: ..." for HTTP; the
/// command line says only what is wrong.
fn password_problem(e: capf_admin::AdminError) -> String {
    match e {
        capf_admin::AdminError::BadRequest(text) => text,
        other => other.to_string(),
    }
}

fn read_password(source: &PasswordSource) -> Result<String, Failure> {
    if source.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Failure::new(format!("reading the password from standard input: {e}")))?;
        let line = line.strip_suffix('\n').unwrap_or(&line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            return Err(Failure::usage(
                "no password on standard input (--password-stdin reads one line)",
            ));
        }
        return Ok(line.to_owned());
    }
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(Failure::usage(
            "a password is needed: run on a terminal to be asked, or give --password-stdin \
             and write it to standard input",
        ));
    }
    let ask = |prompt: &str| {
        rpassword::prompt_password(prompt)
            .map_err(|e| Failure::new(format!("reading the password: {e}")))
    };
    let first = ask("new password: ")?;
    let again = ask("the same password again: ")?;
    if first != again {
        return Err(Failure::usage("the two passwords differ"));
    }
    Ok(first)
}

fn print_accounts(accounts: &[Account]) {
    println!(
        "{:<24} {:<10} {:<21} PASSWORD CHANGED",
        "NAME", "ROLE", "CREATED"
    );
    for a in accounts {
        println!(
            "{:<24} {:<10} {:<21} {}",
            a.name.as_str(),
            a.role.as_str(),
            time_text::format(a.created_at),
            time_text::format(a.password_changed_at)
        );
    }
    println!("{} account(s)", accounts.len());
}

fn print_tokens(tokens: &[ApiToken]) {
    println!(
        "{:<17} {:<10} {:<21} {:<16} LABEL",
        "ID", "ROLE", "CREATED", "CREATED BY"
    );
    for t in tokens {
        let by = t
            .created_by
            .as_ref()
            .map_or_else(|| "command line".to_owned(), ToString::to_string);
        println!(
            "{:<17} {:<10} {:<21} {:<16} {}",
            t.id,
            t.role.as_str(),
            time_text::format(t.created_at),
            by,
            escape_text(&t.label)
        );
    }
    println!("{} token(s)", tokens.len());
}

// `Store` gets `AccountStore` from the blanket implementation for every
// `StoreBackend`; make the build say so if that ever changes.
const _: fn() = || {
    fn account_store<T: AccountStore>() {}
    account_store::<Store>();
};
