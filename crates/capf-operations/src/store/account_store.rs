//! Who may operate this CAPF: accounts (people, with a password) and API
//! tokens (scripts), each with a role. The web console and the command
//! line's `capf admin` keep them in the same database as the devices, so
//! that every server sharing a database knows the same operators.
//!
//! The store keeps only hashes: a password's PHC string (argon2id, made by
//! the caller) and a token secret's SHA-256. Hashing and checking belong to
//! the caller; the store never sees a password or a token secret.

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use crate::OperationsError;

/// What an operator may do. Ordered: each role may do what the ones
/// before it may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Sees devices, the report and the audit log; never an authentication
    /// string.
    ReadOnly,
    /// Also schedules operations and generates authentication strings.
    Helpdesk,
    /// Also changes service parameters, removes devices and manages
    /// accounts and tokens.
    Admin,
}

impl Role {
    /// Every role, least privileged first.
    pub const ALL: [Role; 3] = [Role::ReadOnly, Role::Helpdesk, Role::Admin];

    /// The role's name as the command line and the API spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::ReadOnly => "read-only",
            Role::Helpdesk => "helpdesk",
            Role::Admin => "admin",
        }
    }

    /// Whether this role may do what `needed` may.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = OperationsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| OperationsError::InvalidAccount {
                name: s.to_string(),
                reason: "a role is read-only, helpdesk or admin".to_string(),
            })
    }
}

/// An operator account's name: 1 to 64 characters from `A-Z a-z 0-9 . _ @ -`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountName(String);

impl AccountName {
    /// Checks and wraps a name.
    pub fn parse(name: &str) -> Result<Self, OperationsError> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'));
        if ok {
            Ok(AccountName(name.to_string()))
        } else {
            Err(OperationsError::InvalidAccount {
                name: crate::escape_text(name).into_owned(),
                reason: "a name has 1 to 64 characters from A-Z, a-z, 0-9, '.', '_', '@', '-'"
                    .to_string(),
            })
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A person who operates this CAPF.
#[derive(Clone, PartialEq, Eq)]
pub struct Account {
    /// The login name.
    pub name: AccountName,
    /// What the account may do.
    pub role: Role,
    /// The password's hash as a PHC string (`$argon2id$...`). Never a
    /// password.
    pub password_hash: String,
    /// When the account was made.
    pub created_at: SystemTime,
    /// When the password was last set.
    pub password_changed_at: SystemTime,
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("created_at", &self.created_at)
            .field("password_changed_at", &self.password_changed_at)
            .finish_non_exhaustive()
    }
}

/// A token a script presents instead of a password
/// (`Authorization: Bearer capf_<id>_<secret>`).
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// The token's public id (part of what the script presents; shown in
    /// lists). Unique.
    pub id: String,
    /// What the operator called it ("nightly-report").
    pub label: String,
    /// What it may do.
    pub role: Role,
    /// SHA-256 of the secret part, lower-case hex. Never the secret.
    pub secret_sha256: String,
    /// When it was made.
    pub created_at: SystemTime,
    /// Who made it.
    pub created_by: Option<AccountName>,
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiToken")
            .field("id", &self.id)
            .field("label", &self.label)
            .field("role", &self.role)
            .field("created_at", &self.created_at)
            .field("created_by", &self.created_by)
            .finish_non_exhaustive()
    }
}

/// The accounts and tokens of a store. Every
/// [`StoreBackend`](crate::StoreBackend) implements it with the shared
/// rules. Calls block until the change is durable.
///
/// Rules every implementation keeps: names and token ids are unique; the
/// last admin account can be neither removed nor demoted (refused with
/// [`OperationsError::LastAdmin`]) once one exists, checked inside the
/// change's transaction, so that two servers on one database cannot each
/// remove one of the last two admins; a password hash is a PHC string
/// (starts with `$`), a token's secret hash is 64 lower-case hex digits and
/// its id has 1 to 64 characters from `A-Z a-z 0-9 . _ -` (else
/// [`OperationsError::InvalidAccount`]).
///
/// These calls record nothing in the audit log (they carry neither a time
/// nor an actor): the caller records each change with
/// [`OperatorStore::record_event`](crate::OperatorStore::record_event) and
/// [`AuditEntry::account_added`](crate::AuditEntry::account_added) and its
/// siblings, [`by`](crate::AuditEntry::by) whoever made it.
pub trait AccountStore: Send + Sync {
    /// The account, or `None`.
    fn account(&self, name: &AccountName) -> Result<Option<Account>, OperationsError>;

    /// Every account, by name.
    fn accounts(&self) -> Result<Vec<Account>, OperationsError>;

    /// Adds an account; [`OperationsError::AccountExists`] if the name is
    /// taken.
    fn add_account(&self, account: &Account) -> Result<(), OperationsError>;

    /// Sets an account's password hash (and `password_changed_at` to
    /// `at`); `false` if there is no such account.
    fn set_password(
        &self,
        name: &AccountName,
        password_hash: &str,
        at: SystemTime,
    ) -> Result<bool, OperationsError>;

    /// Changes an account's role; `false` if there is no such account.
    fn set_role(&self, name: &AccountName, role: Role) -> Result<bool, OperationsError>;

    /// Removes an account; `false` if there was none.
    fn remove_account(&self, name: &AccountName) -> Result<bool, OperationsError>;

    /// The token with this id, or `None`.
    fn token(&self, id: &str) -> Result<Option<ApiToken>, OperationsError>;

    /// Every token, oldest first.
    fn tokens(&self) -> Result<Vec<ApiToken>, OperationsError>;

    /// Adds a token; [`OperationsError::AccountExists`] if the id is taken.
    fn add_token(&self, token: &ApiToken) -> Result<(), OperationsError>;

    /// Removes a token; `false` if there was none.
    fn remove_token(&self, id: &str) -> Result<bool, OperationsError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_spelled_as_the_command_line_does() {
        assert!(Role::Admin.allows(Role::Helpdesk));
        assert!(Role::Helpdesk.allows(Role::ReadOnly));
        assert!(!Role::ReadOnly.allows(Role::Helpdesk));
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn account_names_are_checked() {
        assert!(AccountName::parse("alice.smith@example").is_ok());
        assert!(AccountName::parse("").is_err());
        assert!(AccountName::parse("a b").is_err());
        assert!(AccountName::parse("x\n").is_err());
        assert!(AccountName::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn debug_never_shows_hashes() {
        let t = ApiToken {
            id: "id".into(),
            label: "l".into(),
            role: Role::Admin,
            secret_sha256: "SECRETHASH".into(),
            created_at: SystemTime::UNIX_EPOCH,
            created_by: None,
        };
        assert!(!format!("{t:?}").contains("SECRETHASH"));
        let a = Account {
            name: AccountName::parse("a").unwrap(),
            role: Role::Admin,
            password_hash: "$argon2id$PHC".into(),
            created_at: SystemTime::UNIX_EPOCH,
            password_changed_at: SystemTime::UNIX_EPOCH,
        };
        assert!(!format!("{a:?}").contains("PHC"));
    }
}
