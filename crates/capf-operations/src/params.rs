//! Service parameters: defaults, help text, validation.

use std::time::Duration;

use capf_ca::KeySpec;

use crate::OperationsError;

/// CAPF service parameters. Changes take effect when the service restarts:
/// a running server keeps the values it started with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceParameters {
    /// Validity of issued LSCs, in years (1 to 20; default 5).
    pub lsc_validity_years: u32,
    /// Key the phone generates when its device record names none (default
    /// RSA-2048, which every phone supports).
    pub default_key: KeySpec,
    /// Key-generation attempts per session before the operation fails for
    /// this session (default 3).
    pub max_key_generation_attempts: u32,
    /// Longest wait for the phone's public key once it is generating
    /// (default 30 minutes: a phone may generate at low priority).
    pub key_generation_timeout: Duration,
    /// Wrong authentication strings before the device locks (default 5).
    pub auth_failure_limit: u32,
    /// Wait for AUTH_RESPONSE after AUTH_REQUEST (default 30 s).
    pub auth_timeout: Duration,
    /// Wait for any other reply from the phone (default 30 s).
    pub reply_timeout: Duration,
    /// Accept a MIC past its notAfter date (many 79xx MICs have expired;
    /// default false).
    pub accept_expired_mic: bool,
}

impl Default for ServiceParameters {
    fn default() -> Self {
        ServiceParameters {
            lsc_validity_years: 5,
            default_key: KeySpec::Rsa { bits: 2048 },
            max_key_generation_attempts: 3,
            key_generation_timeout: Duration::from_secs(30 * 60),
            auth_failure_limit: 5,
            auth_timeout: Duration::from_secs(30),
            reply_timeout: Duration::from_secs(30),
            accept_expired_mic: false,
        }
    }
}

/// One parameter as `capf params show` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParameterInfo {
    /// Name, as `capf params set NAME VALUE` takes it.
    pub name: &'static str,
    /// Current value, as text.
    pub value: String,
    /// Default value, as text.
    pub default: String,
    /// What it does.
    pub help: &'static str,
}

/// Names, in display order, with help text.
const HELP: &[(&str, &str)] = &[
    (
        "lsc_validity_years",
        "Validity of the LSCs CAPF issues, in years (1-20).",
    ),
    (
        "default_key",
        "Key phones generate when the device names none: rsa1024, rsa2048, rsa3072, rsa4096, p256, p384, p521. \
         2048-bit keys slow phone start-up; older phones support only RSA.",
    ),
    (
        "max_key_generation_attempts",
        "Key-generation attempts in one session before the operation fails for that session (1-10).",
    ),
    (
        "key_generation_timeout_secs",
        "Longest wait, in seconds, for a phone generating its key (60-7200). Phones may generate at low priority and take 30 minutes.",
    ),
    (
        "auth_failure_limit",
        "Wrong authentication strings before the device's operation is locked until a new string is set (1-100).",
    ),
    (
        "auth_timeout_secs",
        "Seconds to wait for the phone's AUTH_RESPONSE (5-600).",
    ),
    (
        "reply_timeout_secs",
        "Seconds to wait for any other reply from the phone (5-600).",
    ),
    (
        "accept_expired_mic",
        "true to accept manufacturer certificates past their expiry date (many 79xx MICs have expired).",
    ),
];

impl ServiceParameters {
    /// Every parameter with its value, default and help text.
    pub fn describe(&self) -> Vec<ParameterInfo> {
        let defaults = ServiceParameters::default();
        HELP.iter()
            .map(|(name, help)| ParameterInfo {
                name,
                value: self.get(name).unwrap_or_default(),
                default: defaults.get(name).unwrap_or_default(),
                help,
            })
            .collect()
    }

    /// A parameter's value as text.
    pub fn get(&self, name: &str) -> Option<String> {
        Some(match name {
            "lsc_validity_years" => self.lsc_validity_years.to_string(),
            "default_key" => self.default_key.to_string(),
            "max_key_generation_attempts" => self.max_key_generation_attempts.to_string(),
            "key_generation_timeout_secs" => self.key_generation_timeout.as_secs().to_string(),
            "auth_failure_limit" => self.auth_failure_limit.to_string(),
            "auth_timeout_secs" => self.auth_timeout.as_secs().to_string(),
            "reply_timeout_secs" => self.reply_timeout.as_secs().to_string(),
            "accept_expired_mic" => self.accept_expired_mic.to_string(),
            _ => return None,
        })
    }

    /// Sets a parameter from text, validated.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), OperationsError> {
        let Some((name, _)) = HELP.iter().find(|(n, _)| *n == name) else {
            return Err(OperationsError::UnknownParameter {
                name: name.to_owned(),
            });
        };
        let invalid = |why: String| OperationsError::InvalidParameter {
            name,
            value: value.to_owned(),
            why,
        };
        let number = |lo: u64, hi: u64| -> Result<u64, OperationsError> {
            let n: u64 = value
                .trim()
                .parse()
                .map_err(|_| invalid("not a whole number".into()))?;
            if !(lo..=hi).contains(&n) {
                return Err(invalid(format!("must be between {lo} and {hi}")));
            }
            Ok(n)
        };
        let flag = || -> Result<bool, OperationsError> {
            match value.trim() {
                "true" | "yes" | "on" | "1" => Ok(true),
                "false" | "no" | "off" | "0" => Ok(false),
                _ => Err(invalid("must be true or false".into())),
            }
        };
        let small = |n: u64| u32::try_from(n).map_err(|_| invalid("too large".into()));
        match *name {
            "lsc_validity_years" => self.lsc_validity_years = small(number(1, 20)?)?,
            "default_key" => {
                self.default_key = value
                    .trim()
                    .parse()
                    .map_err(|e: capf_ca::CaError| invalid(e.to_string()))?
            }
            "max_key_generation_attempts" => {
                self.max_key_generation_attempts = small(number(1, 10)?)?
            }
            "key_generation_timeout_secs" => {
                self.key_generation_timeout = Duration::from_secs(number(60, 7200)?)
            }
            "auth_failure_limit" => self.auth_failure_limit = small(number(1, 100)?)?,
            "auth_timeout_secs" => self.auth_timeout = Duration::from_secs(number(5, 600)?),
            "reply_timeout_secs" => self.reply_timeout = Duration::from_secs(number(5, 600)?),
            "accept_expired_mic" => self.accept_expired_mic = flag()?,
            _ => {
                return Err(OperationsError::UnknownParameter {
                    name: name.to_string(),
                });
            }
        }
        Ok(())
    }

    /// The capf-auth parameters these imply.
    pub fn auth_parameters(&self) -> capf_auth::Parameters {
        // A limit of 0 is refused by `set`; fall back to the default if a
        // caller built the struct by hand with one.
        capf_auth::Parameters::with_failure_limit(self.auth_failure_limit).unwrap_or_default()
    }

    /// The capf-ca proof policy these imply.
    pub fn proof_policy(&self) -> capf_ca::ProofPolicy {
        capf_ca::ProofPolicy {
            accept_expired_mic: self.accept_expired_mic,
            ..capf_ca::ProofPolicy::default()
        }
    }

    /// The LSC profile these imply.
    pub fn lsc_profile(&self) -> capf_ca::LscProfile {
        capf_ca::LscProfile {
            validity: capf_ca::CertValidity::Years(self.lsc_validity_years),
            ..capf_ca::LscProfile::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_parameter_round_trips_through_text() {
        let mut p = ServiceParameters::default();
        for info in p.clone().describe() {
            p.set(info.name, &info.value).unwrap();
            assert!(!info.help.is_empty());
        }
        assert_eq!(p, ServiceParameters::default());
    }

    #[test]
    fn validation() {
        let mut p = ServiceParameters::default();
        assert!(p.set("lsc_validity_years", "0").is_err());
        assert!(p.set("lsc_validity_years", "x").is_err());
        assert!(p.set("default_key", "rsa999").is_err());
        assert!(p.set("no_such", "1").is_err());
        p.set("default_key", "p256").unwrap();
        assert_eq!(p.default_key.to_string(), "p256");
        p.set("auth_failure_limit", "3").unwrap();
        assert_eq!(p.auth_parameters().failure_limit.get(), 3);
    }
}
