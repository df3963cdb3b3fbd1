//! Typed flag values: each flag that takes one of a fixed set of words
//! parses straight into its type, with the words listed in `--help`, in
//! shell completions and in the error a wrong word gets. The words are the
//! ones the JSON output and the REST API use.

use std::str::FromStr;
use std::time::SystemTime;

use capf_auth::{AuthMode, Operation, SecurityMode};
use capf_ca::KeySpec;
use capf_operations::{SortColumn, StatusFilter, TextMatch};
use clap::builder::{PossibleValuesParser, TypedValueParser};

use crate::time_text;

/// The words `--operation` takes.
pub(crate) const OPERATIONS: [&str; 4] = ["install", "delete", "troubleshoot", "none"];
/// The words `--auth-mode` takes.
pub(crate) const AUTH_MODES: [&str; 4] = ["auth-string", "null-string", "lsc-first", "mic-first"];
/// The words `--security-mode` takes.
pub(crate) const SECURITY_MODES: [&str; 3] = ["non-secure", "authenticated", "encrypted"];
/// The words `--key` takes (`default`: the service parameter's key).
pub(crate) const KEYS: [&str; 8] = [
    "rsa1024", "rsa2048", "rsa3072", "rsa4096", "p256", "p384", "p521", "default",
];
/// The words `--match` takes.
pub(crate) const MATCHES: [&str; 6] = [
    "begins-with",
    "contains",
    "ends-with",
    "exact",
    "empty",
    "not-empty",
];
/// The words `--status` takes.
pub(crate) const STATUSES: [&str; 4] = ["none", "pending", "successful", "failed"];
/// The words `--lsc-status` takes.
pub(crate) const LSC_STATUSES: [&str; 2] = ["installed", "not-installed"];
/// The words `--sort` takes.
pub(crate) const SORT_COLUMNS: [&str; 7] = [
    "name",
    "description",
    "operation",
    "status",
    "lsc-status",
    "auth-mode",
    "security-mode",
];

/// A parser that accepts exactly `words` and turns the word into `T`.
fn words<T>(words: &'static [&'static str]) -> impl TypedValueParser<Value = T>
where
    T: FromStr + Clone + Send + Sync + 'static,
    T::Err: std::fmt::Display,
{
    PossibleValuesParser::new(words).try_map(|word| word.parse::<T>().map_err(|e| e.to_string()))
}

pub(crate) fn operation() -> impl TypedValueParser<Value = Operation> {
    words(&OPERATIONS)
}

pub(crate) fn auth_mode() -> impl TypedValueParser<Value = AuthMode> {
    words(&AUTH_MODES)
}

pub(crate) fn security_mode() -> impl TypedValueParser<Value = SecurityMode> {
    words(&SECURITY_MODES)
}

pub(crate) fn key_choice() -> impl TypedValueParser<Value = KeyChoice> {
    words(&KEYS)
}

/// A key kind, without `default` (`capf ca issue --key`).
pub(crate) fn key() -> impl TypedValueParser<Value = KeySpec> {
    words(&KEYS[..KEYS.len() - 1])
}

pub(crate) fn text_match() -> impl TypedValueParser<Value = TextMatch> {
    words(&MATCHES)
}

pub(crate) fn status() -> impl TypedValueParser<Value = StatusFilter> {
    words(&STATUSES)
}

pub(crate) fn lsc_status() -> impl TypedValueParser<Value = LscStatus> {
    words(&LSC_STATUSES)
}

pub(crate) fn sort_column() -> impl TypedValueParser<Value = SortColumn> {
    words(&SORT_COLUMNS)
}

/// `--key`: a key, or the service default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyChoice {
    /// The service parameter's key, whatever it is when the phone comes.
    Default,
    /// This key.
    Key(KeySpec),
}

impl KeyChoice {
    /// The device's key field: `None` for the service default.
    pub(crate) fn key(self) -> Option<KeySpec> {
        match self {
            KeyChoice::Default => None,
            KeyChoice::Key(k) => Some(k),
        }
    }
}

impl FromStr for KeyChoice {
    type Err = capf_ca::CaError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "default" => Ok(KeyChoice::Default),
            key => key.parse().map(KeyChoice::Key),
        }
    }
}

/// `--lsc-status`: whether the device has an LSC on record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LscStatus {
    pub(crate) installed: bool,
}

impl FromStr for LscStatus {
    type Err = capf_operations::OperationsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        capf_operations::parse_lsc_status(s).map(|installed| LscStatus { installed })
    }
}

/// `--completes-by`: a deadline as an RFC 3339 time, a time from now
/// (`+90m`, `+12h`, `+7d`, `+2w`), or `none`. Kept as text until the
/// command knows its `now`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DeadlineText(Option<String>);

impl DeadlineText {
    /// The deadline, for a command running at `now` (`None`: no deadline).
    pub(crate) fn at(&self, now: SystemTime) -> Result<Option<SystemTime>, String> {
        self.0
            .as_deref()
            .map(|t| time_text::parse_from(t, now))
            .transpose()
    }
}

impl FromStr for DeadlineText {
    type Err = String;

    /// Checks the text now, so that a wrong one is a usage error at once.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s == "none" {
            return Ok(DeadlineText(None));
        }
        time_text::parse_from(s, SystemTime::now())?;
        Ok(DeadlineText(Some(s.to_owned())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Every word listed parses, and every value of the type has its word
    /// listed: the lists and the types cannot drift apart.
    #[test]
    fn the_listed_words_are_exactly_the_types_values() {
        for w in OPERATIONS {
            assert_eq!(w.parse::<Operation>().map(|o| o.name()).ok(), Some(w));
        }
        assert_eq!(Operation::ALL.len(), OPERATIONS.len());
        for w in AUTH_MODES {
            assert_eq!(w.parse::<AuthMode>().map(|o| o.name()).ok(), Some(w));
        }
        assert_eq!(AuthMode::ALL.len(), AUTH_MODES.len());
        for w in SECURITY_MODES {
            assert_eq!(w.parse::<SecurityMode>().map(|o| o.name()).ok(), Some(w));
        }
        assert_eq!(SecurityMode::ALL.len(), SECURITY_MODES.len());
        for w in KEYS {
            let choice: KeyChoice = w.parse().unwrap();
            let back = choice.key().map_or("default".to_owned(), |k| k.to_string());
            assert_eq!(back, w);
        }
        for w in MATCHES {
            assert!(w.parse::<TextMatch>().is_ok(), "{w}");
        }
        for w in STATUSES {
            assert!(w.parse::<StatusFilter>().is_ok(), "{w}");
        }
        for w in SORT_COLUMNS {
            assert_eq!(w.parse::<SortColumn>().unwrap().to_string(), w);
        }
        assert!(LSC_STATUSES.iter().all(|w| w.parse::<LscStatus>().is_ok()));
    }

    #[test]
    fn deadlines_absolute_relative_and_none() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!("none".parse::<DeadlineText>().unwrap().at(now), Ok(None));
        assert_eq!(
            "+7d".parse::<DeadlineText>().unwrap().at(now),
            Ok(Some(now + Duration::from_secs(7 * 86_400)))
        );
        let at = "2026-12-31T18:00:00Z".parse::<DeadlineText>().unwrap();
        assert_eq!(
            at.at(now),
            time_text::parse("2026-12-31T18:00:00Z").map(Some)
        );
        for bad in ["+", "+7", "+d", "+-1d", "tomorrow"] {
            assert!(bad.parse::<DeadlineText>().is_err(), "{bad}");
        }
    }
}
