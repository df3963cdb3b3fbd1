//! What the phone keeps in flash across a power loss, and its text
//! file format.
//!
//! ```text
//! # CAPF phone state
//! format=capf-phone-state/1
//! lsc_installed=yes
//! auth_mode=auth-string
//! attempts=2
//! next_attempt=1767225630
//! ```
//!
//! One `key=value` per line; blank lines and lines starting with `#` are
//! skipped; spaces around keys and values are trimmed. `format` and
//! `lsc_installed` (`yes`/`no`) are required. `auth_mode` (one of
//! `auth-string`, `null-string`, `lsc-first`, `mic-first`) is present only
//! while an operation is pending; `attempts` (a count) and `next_attempt`
//! (seconds since the Unix epoch) only with it. Unknown keys, repeated keys
//! and bad values are refused with the line number.
//!
//! The authentication string itself is never stored: a real phone keeps the
//! mode, not the digits, and the user types the string again.
//! The file is therefore not a secret.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use capf_auth::AuthMode;

use super::outcome::PhoneOutcome;
use super::retry::RetryPolicy;

/// An operation the phone has started and not yet completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingOperation {
    /// The authentication mode the operation runs with, kept so that the
    /// phone uses it after a reboot even when it cannot load a new
    /// configuration.
    pub auth_mode: AuthMode,
    /// Sessions tried so far.
    pub attempts: u32,
    /// When to try again after a communication failure, if planned.
    /// Kept to whole seconds in the file.
    pub next_attempt: Option<SystemTime>,
}

/// The phone's persistent CAPF state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PersistentState {
    /// The operation in progress; cleared once it completes.
    pub pending: Option<PendingOperation>,
    /// Whether the phone holds an LSC.
    pub lsc_installed: bool,
}

/// Why a state file was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StateFileError {
    /// A line that is not a known `key=value` with a valid value.
    #[error("phone state line {line}: {problem}")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        problem: String,
    },
    /// A required key is absent.
    #[error("phone state: missing `{key}`")]
    Missing {
        /// The key.
        key: &'static str,
    },
    /// `attempts` or `next_attempt` without `auth_mode`.
    #[error("phone state: `{key}` without `auth_mode`")]
    WithoutPendingOperation {
        /// The key.
        key: &'static str,
    },
}

const FORMAT: &str = "capf-phone-state/1";

impl PersistentState {
    /// A phone with no operation in progress.
    #[must_use]
    pub fn new(lsc_installed: bool) -> Self {
        PersistentState {
            pending: None,
            lsc_installed,
        }
    }

    /// The authentication mode kept for the operation in progress.
    #[must_use]
    pub fn auth_mode(&self) -> Option<AuthMode> {
        self.pending.map(|p| p.auth_mode)
    }

    /// A session attempt starts with `auth_mode` (the one kept, after a
    /// reboot, or the configured one for a new operation); returns its
    /// number, 1 for the first.
    pub fn start_attempt(&mut self, auth_mode: AuthMode) -> u32 {
        let pending = self.pending.get_or_insert(PendingOperation {
            auth_mode,
            attempts: 0,
            next_attempt: None,
        });
        pending.attempts = pending.attempts.saturating_add(1);
        pending.next_attempt = None;
        pending.attempts
    }

    /// Records how a session ended at `now`: updates whether an LSC is
    /// installed, then either plans the next attempt (a communication
    /// failure with retries left; returned) or clears the pending
    /// operation.
    pub fn record_outcome(
        &mut self,
        outcome: &PhoneOutcome,
        policy: &RetryPolicy,
        now: SystemTime,
    ) -> Option<SystemTime> {
        self.lsc_installed = outcome.lsc_installed_after(self.lsc_installed);
        let attempts = self.pending.map_or(1, |p| p.attempts);
        let next = policy.after(outcome, attempts, now);
        match (next, self.pending.as_mut()) {
            (Some(at), Some(pending)) => pending.next_attempt = Some(at),
            _ => self.pending = None,
        }
        next
    }

    /// The file text (see the module documentation).
    #[must_use]
    pub fn to_text(&self) -> String {
        let yes_no = if self.lsc_installed { "yes" } else { "no" };
        let mut text = format!("# CAPF phone state\nformat={FORMAT}\nlsc_installed={yes_no}\n");
        if let Some(p) = &self.pending {
            // Writing to a String cannot fail.
            let _ = writeln!(text, "auth_mode={}", p.auth_mode.name());
            let _ = writeln!(text, "attempts={}", p.attempts);
            if let Some(at) = p.next_attempt {
                let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                let _ = writeln!(text, "next_attempt={secs}");
            }
        }
        text
    }

    /// Reads the file text (see the module documentation).
    pub fn from_text(text: &str) -> Result<Self, StateFileError> {
        let mut fields = Fields::default();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            fields
                .read(trimmed)
                .map_err(|problem| StateFileError::BadLine { line, problem })?;
        }
        fields.finish()
    }
}

/// The values read so far.
#[derive(Default)]
struct Fields {
    format: bool,
    lsc_installed: Option<bool>,
    auth_mode: Option<AuthMode>,
    attempts: Option<u32>,
    next_attempt: Option<SystemTime>,
}

fn set<T>(slot: &mut Option<T>, value: T, key: &str) -> Result<(), String> {
    match slot.replace(value) {
        Some(_) => Err(format!("`{key}` appears twice")),
        None => Ok(()),
    }
}

impl Fields {
    fn read(&mut self, line: &str) -> Result<(), String> {
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("expected key=value, found {line:?}"))?;
        let (key, value) = (key.trim(), value.trim());
        match key {
            "format" if value == FORMAT => {
                if std::mem::replace(&mut self.format, true) {
                    return Err("`format` appears twice".into());
                }
                Ok(())
            }
            "format" => Err(format!("unknown format {value:?}, expected {FORMAT:?}")),
            "lsc_installed" => {
                let installed = match value {
                    "yes" => true,
                    "no" => false,
                    _ => return Err(format!("lsc_installed must be yes or no, not {value:?}")),
                };
                set(&mut self.lsc_installed, installed, key)
            }
            "auth_mode" => {
                let mode = value.parse::<AuthMode>().map_err(|e| e.to_string())?;
                set(&mut self.auth_mode, mode, key)
            }
            "attempts" => {
                let n = value
                    .parse::<u32>()
                    .map_err(|_| format!("attempts must be a count, not {value:?}"))?;
                set(&mut self.attempts, n, key)
            }
            "next_attempt" => {
                let secs = value.parse::<u64>().map_err(|_| {
                    format!("next_attempt must be seconds since 1970, not {value:?}")
                })?;
                let at = UNIX_EPOCH
                    .checked_add(Duration::from_secs(secs))
                    .ok_or_else(|| format!("next_attempt {secs} is out of range"))?;
                set(&mut self.next_attempt, at, key)
            }
            _ => Err(format!("unknown key {key:?}")),
        }
    }

    fn finish(self) -> Result<PersistentState, StateFileError> {
        if !self.format {
            return Err(StateFileError::Missing { key: "format" });
        }
        let lsc_installed = self.lsc_installed.ok_or(StateFileError::Missing {
            key: "lsc_installed",
        })?;
        let pending = match self.auth_mode {
            Some(auth_mode) => Some(PendingOperation {
                auth_mode,
                attempts: self.attempts.unwrap_or(0),
                next_attempt: self.next_attempt,
            }),
            None if self.attempts.is_some() => {
                return Err(StateFileError::WithoutPendingOperation { key: "attempts" });
            }
            None if self.next_attempt.is_some() => {
                return Err(StateFileError::WithoutPendingOperation {
                    key: "next_attempt",
                });
            }
            None => None,
        };
        Ok(PersistentState {
            pending,
            lsc_installed,
        })
    }
}
