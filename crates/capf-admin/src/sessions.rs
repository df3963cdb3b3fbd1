//! Browser sessions, kept in memory: a random 256-bit id in the
//! `capf_session` cookie, a CSRF token the page echoes in `X-CSRF-Token`,
//! an idle timeout. The table is keyed by the SHA-256 of the id, so that
//! looking one up does not compare secret bytes with early exit.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use capf_operations::AccountName;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AdminError;

/// Most sessions kept at once; past that the least recently used go.
const MAX_SESSIONS: usize = 10_000;

/// One logged-in browser.
#[derive(Clone)]
pub(crate) struct Session {
    /// Who.
    pub(crate) account: AccountName,
    /// The token the page must send with every change.
    pub(crate) csrf: String,
    /// SHA-256 of the account's password hash at login: a new password
    /// (a new salted hash, even within the same second) ends the session.
    pub(crate) password_fingerprint: [u8; 32],
    /// Last request.
    pub(crate) last_seen: SystemTime,
}

impl Session {
    /// Whether `presented` is this session's CSRF token (constant time).
    pub(crate) fn csrf_matches(&self, presented: &str) -> bool {
        presented.as_bytes().ct_eq(self.csrf.as_bytes()).into()
    }
}

/// The sessions of one router.
#[derive(Default)]
pub(crate) struct SessionTable {
    sessions: Mutex<HashMap<[u8; 32], Session>>,
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

pub(crate) fn random_hex_256() -> Result<String, AdminError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| AdminError::Random(e.to_string()))?;
    Ok(hex::encode(bytes))
}

impl SessionTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        // A panic while holding the lock leaves the map consistent (every
        // change is one insert or remove): keep using it.
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a session; returns its id (for the cookie) and the session.
    pub(crate) fn create(
        &self,
        account: AccountName,
        password_hash: &str,
        now: SystemTime,
        idle: Duration,
    ) -> Result<(String, Session), AdminError> {
        let id = random_hex_256()?;
        let session = Session {
            account,
            csrf: random_hex_256()?,
            password_fingerprint: password_fingerprint(password_hash),
            last_seen: now,
        };
        let mut sessions = self.lock();
        sessions.retain(|_, s| !expired(s, now, idle));
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| *k)
        {
            sessions.remove(&oldest);
        }
        sessions.insert(key(&id), session.clone());
        Ok((id, session))
    }

    /// The live session with this id, its idle clock restarted; `None`
    /// (and the session dropped) if it idled out.
    pub(crate) fn touch(&self, id: &str, now: SystemTime, idle: Duration) -> Option<Session> {
        let k = key(id);
        let mut sessions = self.lock();
        let session = sessions.get_mut(&k)?;
        if expired(session, now, idle) {
            sessions.remove(&k);
            return None;
        }
        session.last_seen = now;
        Some(session.clone())
    }

    /// Ends a session; `false` if there was none.
    pub(crate) fn remove(&self, id: &str) -> bool {
        self.lock().remove(&key(id)).is_some()
    }
}

/// SHA-256 of a password hash (what a session remembers of it).
pub(crate) fn password_fingerprint(password_hash: &str) -> [u8; 32] {
    Sha256::digest(password_hash.as_bytes()).into()
}

fn expired(session: &Session, now: SystemTime, idle: Duration) -> bool {
    now.duration_since(session.last_seen)
        .is_ok_and(|elapsed| elapsed >= idle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_idle_out_and_end() {
        let table = SessionTable::default();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let idle = Duration::from_secs(60);
        let name = AccountName::parse("alice").unwrap();
        let (id, s) = table.create(name.clone(), "$argon2id$x", t0, idle).unwrap();
        assert_eq!(id.len(), 64);
        assert_ne!(id, s.csrf);
        assert!(s.csrf_matches(&s.csrf.clone()));
        assert!(!s.csrf_matches(""));
        // Activity keeps it alive.
        assert!(
            table
                .touch(&id, t0 + Duration::from_secs(50), idle)
                .is_some()
        );
        assert!(
            table
                .touch(&id, t0 + Duration::from_secs(100), idle)
                .is_some()
        );
        // Idle for the timeout: gone.
        assert!(
            table
                .touch(&id, t0 + Duration::from_secs(160), idle)
                .is_none()
        );
        assert!(
            table
                .touch(&id, t0 + Duration::from_secs(161), idle)
                .is_none()
        );
        let (id2, _) = table.create(name.clone(), "$argon2id$x", t0, idle).unwrap();
        assert!(table.remove(&id2));
        assert!(!table.remove(&id2));
    }
}
