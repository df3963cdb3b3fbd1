//! API tokens for scripts: `capf_<id>_<secret>`, shown once when made.
//! The store keeps the id and the SHA-256 of the secret
//! ([`ApiToken`]); a presented token is checked by looking up its id and
//! comparing the secret's hash in constant time.

use std::time::SystemTime;

use capf_operations::{AccountName, ApiToken, Role};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AdminError;

/// What every token starts with.
pub const PREFIX: &str = "capf_";

/// Bytes of randomness in a token id (16 hex digits).
const ID_BYTES: usize = 8;
/// Bytes of randomness in a token secret (64 hex digits: 256 bits).
const SECRET_BYTES: usize = 32;

/// A token just made: the record for the store, and the text to hand to
/// the operator once (it cannot be shown again).
pub struct MintedToken {
    /// What the store keeps.
    pub record: ApiToken,
    /// `capf_<id>_<secret>`: what the script sends as
    /// `Authorization: Bearer ...`.
    pub presented: String,
}

impl std::fmt::Debug for MintedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintedToken")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

/// Makes a token with a random id and secret. Add `record` to the store
/// ([`AccountStore::add_token`](capf_operations::AccountStore::add_token))
/// and show `presented` once.
pub fn mint(
    label: &str,
    role: Role,
    created_by: Option<AccountName>,
    now: SystemTime,
) -> Result<MintedToken, AdminError> {
    let mut id = [0u8; ID_BYTES];
    let mut secret = [0u8; SECRET_BYTES];
    getrandom::fill(&mut id).map_err(|e| AdminError::Random(e.to_string()))?;
    getrandom::fill(&mut secret).map_err(|e| AdminError::Random(e.to_string()))?;
    let id = hex::encode(id);
    let secret = hex::encode(secret);
    Ok(MintedToken {
        record: ApiToken {
            id: id.clone(),
            label: label.to_owned(),
            role,
            secret_sha256: secret_sha256(&secret),
            created_at: now,
            created_by,
        },
        presented: format!("{PREFIX}{id}_{secret}"),
    })
}

/// SHA-256 of a token secret, lower-case hex (what the store keeps).
pub fn secret_sha256(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Splits a presented token into id and secret; `None` if it is not of
/// the form `capf_<id>_<secret>`.
pub fn split(presented: &str) -> Option<(&str, &str)> {
    let rest = presented.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hexish =
        |s: &str| !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hexish(id) && hexish(secret)).then_some((id, secret))
}

/// Whether `secret` is the one `token` was made with (constant time).
pub fn secret_matches(token: &ApiToken, secret: &str) -> bool {
    let presented = secret_sha256(secret);
    presented
        .as_bytes()
        .ct_eq(token.secret_sha256.as_bytes())
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_split_and_match_only_their_secret() {
        let m = mint("nightly", Role::ReadOnly, None, SystemTime::UNIX_EPOCH).unwrap();
        assert!(m.presented.starts_with("capf_"));
        let (id, secret) = split(&m.presented).unwrap();
        assert_eq!(id, m.record.id);
        assert_eq!(secret.len(), 64);
        assert!(secret_matches(&m.record, secret));
        assert!(!secret_matches(&m.record, &"0".repeat(64)));
        assert!(!m.record.secret_sha256.contains(secret));
        assert!(!format!("{m:?}").contains(secret));
    }

    #[test]
    fn malformed_tokens_do_not_split() {
        for t in [
            "",
            "capf_",
            "capf_abc",
            "capf__abc",
            "capf_abc_",
            "xcapf_a_b",
            "capf_zz_00",
        ] {
            assert!(split(t).is_none(), "{t}");
        }
    }
}
