//! Operator passwords: argon2id hashes as PHC strings (`$argon2id$v=19$...`),
//! what [`Account::password_hash`](capf_operations::Account) keeps.
//!
//! Both calls take tens of milliseconds on purpose: call them off the async
//! runtime (`tokio::task::spawn_blocking`), as the router does.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use crate::AdminError;

/// Fewest characters a password may have.
pub const MIN_LEN: usize = 8;
/// Most bytes a password may have (longer ones are refused before hashing,
/// so that a huge password cannot make the server work for it).
pub const MAX_LEN: usize = 1024;

/// Checks a new password's length: [`MIN_LEN`] characters to [`MAX_LEN`]
/// bytes.
pub fn check_new(password: &str) -> Result<(), AdminError> {
    if password.chars().count() < MIN_LEN {
        return Err(AdminError::BadRequest(format!(
            "a password has at least {MIN_LEN} characters"
        )));
    }
    if password.len() > MAX_LEN {
        return Err(AdminError::BadRequest(format!(
            "a password has at most {MAX_LEN} bytes"
        )));
    }
    Ok(())
}

/// Hashes a password with argon2id (default parameters, random 16-byte
/// salt from the operating system) into a PHC string. Checks its length
/// first ([`check_new`]).
pub fn hash(password: &str) -> Result<String, AdminError> {
    check_new(password)?;
    let salt = argon2::password_hash::try_generate_salt()
        .map_err(|e| AdminError::Random(e.to_string()))?;
    Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AdminError::PasswordHash(e.to_string()))
}

/// Whether `password` matches the PHC string `phc` (argon2 compares in
/// constant time). A malformed hash, or a password over [`MAX_LEN`], never
/// matches.
pub fn verify(password: &str, phc: &str) -> bool {
    if password.len() > MAX_LEN {
        return false;
    }
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash no password is known for: checked against when a login names an
/// account that does not exist, so that the answer takes as long as for
/// one that does.
pub(crate) fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let mut random = [0u8; 32];
        // Without randomness the decoy is still a valid hash of a fixed
        // text; it only has to take as long to check.
        let _ = getrandom::fill(&mut random);
        hash(&hex::encode(random)).unwrap_or_else(|_| {
            // A fixed, valid argon2id PHC string (of a random password).
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
             Z3pXv6Z2gT8q8yQvN0oXz0vJbq6o1bB2m3Yp8hJ9xkM"
                .to_owned()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_with_argon2id_and_verifies() {
        let phc = hash("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", &phc));
        assert!(!verify("correct horse batterY", &phc));
        assert!(!verify("correct horse battery", "not a hash"));
        assert_ne!(hash("correct horse battery").unwrap(), phc, "salted");
    }

    #[test]
    fn short_and_huge_passwords_are_refused() {
        assert!(hash("short").is_err());
        assert!(hash(&"x".repeat(MAX_LEN + 1)).is_err());
        assert!(!verify(&"x".repeat(MAX_LEN + 1), decoy_hash()));
        assert!(decoy_hash().starts_with("$argon2"));
    }
}
