//! Login throttling: after [`ThrottleOptions::max_failures`] failed logins
//! for one account name, or from one client address, within
//! [`ThrottleOptions::window`], further logins for it are refused (429)
//! for [`ThrottleOptions::lockout`], even with the right password. Kept in
//! memory, per router.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Most names and addresses tracked at once; past that the oldest go.
const MAX_TRACKED: usize = 50_000;

/// Limits of login throttling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrottleOptions {
    /// Failed logins (per account name, and per client address) that lock
    /// it out. Default 5.
    pub max_failures: u32,
    /// The window the failures are counted in. Default 15 minutes.
    pub window: Duration,
    /// How long a lockout lasts. Default 15 minutes.
    pub lockout: Duration,
}

impl Default for ThrottleOptions {
    fn default() -> Self {
        ThrottleOptions {
            max_failures: 5,
            window: Duration::from_secs(15 * 60),
            lockout: Duration::from_secs(15 * 60),
        }
    }
}

#[derive(Clone, Copy)]
struct Record {
    failures: u32,
    first_failure: SystemTime,
    locked_until: Option<SystemTime>,
}

/// What is tracked: an account name as typed, or an address.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    Account(String),
    Address(IpAddr),
}

/// The failure counts of one router.
#[derive(Default)]
pub(crate) struct LoginThrottle {
    records: Mutex<HashMap<Key, Record>>,
}

impl LoginThrottle {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Record>> {
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn keys(account: &str, address: Option<IpAddr>) -> Vec<Key> {
        let mut keys = vec![Key::Account(account.to_ascii_lowercase())];
        keys.extend(address.map(Key::Address));
        keys
    }

    /// How long the account or the address is still locked out, if it is.
    pub(crate) fn locked(
        &self,
        account: &str,
        address: Option<IpAddr>,
        now: SystemTime,
    ) -> Option<Duration> {
        let records = self.lock();
        Self::keys(account, address)
            .iter()
            .filter_map(|k| records.get(k)?.locked_until)
            .filter_map(|until| until.duration_since(now).ok())
            .filter(|left| !left.is_zero())
            .max()
    }

    /// Counts a failed login; returns how long the lockout lasts if this
    /// failure started one.
    pub(crate) fn failed(
        &self,
        account: &str,
        address: Option<IpAddr>,
        now: SystemTime,
        options: &ThrottleOptions,
    ) -> Option<Duration> {
        let mut records = self.lock();
        if records.len() >= MAX_TRACKED {
            records.retain(|_, r| !stale(r, now, options));
            if records.len() >= MAX_TRACKED
                && let Some(oldest) = records
                    .iter()
                    .min_by_key(|(_, r)| r.first_failure)
                    .map(|(k, _)| k.clone())
            {
                records.remove(&oldest);
            }
        }
        let mut started = None;
        for key in Self::keys(account, address) {
            let record = records.entry(key).or_insert(Record {
                failures: 0,
                first_failure: now,
                locked_until: None,
            });
            if stale(record, now, options) {
                *record = Record {
                    failures: 0,
                    first_failure: now,
                    locked_until: None,
                };
            }
            record.failures = record.failures.saturating_add(1);
            if record.failures >= options.max_failures && record.locked_until.is_none() {
                record.locked_until = Some(now + options.lockout);
                started = Some(options.lockout);
            }
        }
        started
    }

    /// A successful login clears the account's count (not the address's:
    /// one good account must not let an address go on guessing others).
    pub(crate) fn succeeded(&self, account: &str) {
        self.lock()
            .remove(&Key::Account(account.to_ascii_lowercase()));
    }
}

/// A record whose window and lockout are both over.
fn stale(record: &Record, now: SystemTime, options: &ThrottleOptions) -> bool {
    let window_over = now
        .duration_since(record.first_failure)
        .is_ok_and(|d| d >= options.window);
    let lock_over = record.locked_until.is_none_or(|until| until <= now);
    window_over && lock_over
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + s)
    }

    #[test]
    fn locks_after_the_limit_and_lifts_after_the_lockout() {
        let t = LoginThrottle::default();
        let o = ThrottleOptions {
            max_failures: 3,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(300),
        };
        let ip: IpAddr = [127, 0, 0, 1].into();
        assert!(t.failed("alice", Some(ip), at(0), &o).is_none());
        assert!(t.failed("alice", Some(ip), at(1), &o).is_none());
        assert!(t.locked("alice", Some(ip), at(2)).is_none());
        assert_eq!(t.failed("alice", Some(ip), at(2), &o), Some(o.lockout));
        assert!(t.locked("alice", None, at(3)).is_some());
        // The address is locked for every name.
        assert!(t.locked("bob", Some(ip), at(3)).is_some());
        assert!(t.locked("bob", None, at(3)).is_none());
        assert!(t.locked("alice", Some(ip), at(302)).is_none());
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let t = LoginThrottle::default();
        let o = ThrottleOptions {
            max_failures: 2,
            window: Duration::from_secs(10),
            lockout: Duration::from_secs(300),
        };
        assert!(t.failed("a", None, at(0), &o).is_none());
        assert!(t.failed("a", None, at(20), &o).is_none());
        assert!(
            t.failed("A", None, at(21), &o).is_some(),
            "names ignore case"
        );
        t.succeeded("a");
        assert!(t.locked("a", None, at(22)).is_none());
    }
}
