//! Cisco device names: `SEP` + the phone's MAC, and the other prefixes.

use std::fmt;
use std::str::FromStr;

use crate::OperationsError;

/// Prefixes Cisco call control uses for device names besides `SEP`:
/// Jabber/CSF softphones (CSF, BOT, TCT, TAB) and others.
pub const OTHER_PREFIXES: &[&str] = &["CSF", "BOT", "TCT", "TAB", "ATA", "AN", "CIPC", "UCM"];

/// A validated device name.
///
/// * `SEP` followed by exactly 12 hex digits (the MAC address), stored in
///   upper case: `SEP001122334455`. Lower-case input is accepted.
/// * One of [`OTHER_PREFIXES`] followed by 1 to 12 characters of letters,
///   digits, `.`, `_` or `-` (case kept): `CSFJSMITH`, `BOTJDOE`.
///
/// At most 15 characters, as in CUCM.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceName(String);

impl DeviceName {
    /// Validates a device name.
    pub fn parse(name: &str) -> Result<Self, OperationsError> {
        let bad = |why| OperationsError::InvalidDeviceName {
            name: name.to_owned(),
            why,
        };
        if name.len() > 15 {
            return Err(bad("longer than 15 characters"));
        }
        let upper = name.to_ascii_uppercase();
        if let Some(mac) = upper.strip_prefix("SEP") {
            if mac.len() != 12 || !mac.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad(
                    "SEP must be followed by the 12 hex digits of the MAC address",
                ));
            }
            return Ok(DeviceName(upper));
        }
        let Some(prefix) = OTHER_PREFIXES.iter().find(|p| upper.starts_with(**p)) else {
            return Err(bad(
                "must start with SEP (phones) or CSF, BOT, TCT, TAB, ATA, AN, CIPC, UCM",
            ));
        };
        let rest = &name[prefix.len()..];
        if rest.is_empty() {
            return Err(bad("nothing after the prefix"));
        }
        if !rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(bad(
                "only letters, digits, '.', '_' and '-' may follow the prefix",
            ));
        }
        Ok(DeviceName(format!("{prefix}{rest}")))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The MAC address (12 upper-case hex digits) of a `SEP` name.
    pub fn mac(&self) -> Option<&str> {
        self.0.strip_prefix("SEP")
    }
}

impl fmt::Display for DeviceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for DeviceName {
    type Err = OperationsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DeviceName::parse(s)
    }
}

impl AsRef<str> for DeviceName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sep_names_are_normalised_to_upper_case() {
        let n = DeviceName::parse("sep0011223344aa").unwrap();
        assert_eq!(n.as_str(), "SEP0011223344AA");
        assert_eq!(n.mac(), Some("0011223344AA"));
    }

    #[test]
    fn other_prefixes() {
        assert_eq!(
            DeviceName::parse("CSFjsmith").unwrap().as_str(),
            "CSFjsmith"
        );
        assert!(DeviceName::parse("BOTJDOE").unwrap().mac().is_none());
        assert_eq!(DeviceName::parse("tctuser1").unwrap().as_str(), "TCTuser1");
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            "SEP00112233445",
            "SEP0011223344ZZ",
            "SEP00112233445566",
            "XYZ001122334455",
            "CSF",
            "CSFjohn smith",
            "CSFaaaaaaaaaaaaa",
            "SEP001122334455\0",
        ] {
            assert!(DeviceName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
