//! After a communication failure the phone retries 3 more times, 30
//! seconds apart.

use std::time::{Duration, SystemTime};

use super::outcome::PhoneOutcome;

/// When a phone tries again after a failed session.
///
/// The phone's numbers are fixed: [`RetryPolicy::PHONE`], also the
/// [`Default`]. Other values are for tests and simulators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// How many more attempts after the first one fails.
    pub retries: u32,
    /// The wait between a failure and the next attempt.
    pub interval: Duration,
}

impl RetryPolicy {
    /// What a Cisco phone does: 3 retries, 30 seconds apart.
    pub const PHONE: RetryPolicy = RetryPolicy {
        retries: 3,
        interval: Duration::from_secs(30),
    };

    /// Never retry.
    pub const NEVER: RetryPolicy = RetryPolicy {
        retries: 0,
        interval: Duration::ZERO,
    };

    /// When to try again after attempt number `attempts_made` (1 for the
    /// first try, counting it) failed at `failed_at`; `None` when the
    /// retries are used up. With [`RetryPolicy::PHONE`], attempts 1, 2 and 3
    /// are followed by another 30 s later, attempt 4 is the last.
    #[must_use]
    pub fn next_attempt(&self, attempts_made: u32, failed_at: SystemTime) -> Option<SystemTime> {
        if attempts_made > self.retries {
            return None;
        }
        failed_at.checked_add(self.interval)
    }

    /// Whether a session that ended with `outcome` is worth retrying: only
    /// communication failures (see
    /// [`PhoneOutcome::is_communication_failure`]).
    #[must_use]
    pub fn should_retry(&self, outcome: &PhoneOutcome) -> bool {
        self.retries > 0 && outcome.is_communication_failure()
    }

    /// The time of the next attempt after a session that ended with
    /// `outcome` at `now`, being attempt number `attempts_made`; `None`
    /// when the operation is over (success, a final answer, or retries used
    /// up).
    #[must_use]
    pub fn after(
        &self,
        outcome: &PhoneOutcome,
        attempts_made: u32,
        now: SystemTime,
    ) -> Option<SystemTime> {
        if self.should_retry(outcome) {
            self.next_attempt(attempts_made, now)
        } else {
            None
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::PHONE
    }
}
