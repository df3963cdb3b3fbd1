//! The per-device authentication mode: how a phone proves who it is.

use std::fmt;
use std::str::FromStr;

use crate::AuthError;

/// How CAPF authenticates a phone before running its operation.
///
/// The exact acceptance rules per mode are in the crate documentation
/// (table "What each mode accepts").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMode {
    /// By authentication string: the operator arms a 4-10 digit one-time
    /// string which the user types on the phone.
    AuthString,
    /// By null string: no proof at all; anything passes (the least safe
    /// mode).
    NullString,
    /// By existing certificate, precedence to LSC: the phone authenticates
    /// with its LSC on record if it has one, otherwise with its MIC. Only a
    /// phone with neither fails.
    ExistingCertificateLscFirst,
    /// By existing certificate, precedence to MIC: the phone authenticates
    /// with its MIC if it has one, otherwise with its LSC on record. Only a
    /// phone with neither fails.
    ExistingCertificateMicFirst,
}

impl AuthMode {
    /// Every mode, in the order of the Cisco admin page.
    pub const ALL: [AuthMode; 4] = [
        AuthMode::AuthString,
        AuthMode::NullString,
        AuthMode::ExistingCertificateLscFirst,
        AuthMode::ExistingCertificateMicFirst,
    ];

    const EXPECTED: &'static str = "auth-string, null-string, lsc-first, mic-first";

    /// The stable machine name: `auth-string`, `null-string`, `lsc-first`,
    /// `mic-first` (what [`Display`](fmt::Display) prints and
    /// [`FromStr`] reads).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            AuthMode::AuthString => "auth-string",
            AuthMode::NullString => "null-string",
            AuthMode::ExistingCertificateLscFirst => "lsc-first",
            AuthMode::ExistingCertificateMicFirst => "mic-first",
        }
    }

    /// The human label, as on the Cisco admin page (for the CAPF report).
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            AuthMode::AuthString => "By Authentication String",
            AuthMode::NullString => "By Null String",
            AuthMode::ExistingCertificateLscFirst => "By Existing Certificate (Precedence to LSC)",
            AuthMode::ExistingCertificateMicFirst => "By Existing Certificate (Precedence to MIC)",
        }
    }

    /// The value of `<capfAuthMode>` in the phone's configuration file:
    /// 1 = password, 2 = empty password, 3 = LSC (with fallback to MIC on the
    /// phone's side), 4 = MIC.
    #[must_use]
    pub const fn phone_capf_auth_mode(self) -> u8 {
        match self {
            AuthMode::AuthString => 1,
            AuthMode::NullString => 2,
            AuthMode::ExistingCertificateLscFirst => 3,
            AuthMode::ExistingCertificateMicFirst => 4,
        }
    }

    /// True for the two "by existing certificate" modes.
    #[must_use]
    pub const fn is_existing_certificate(self) -> bool {
        matches!(
            self,
            AuthMode::ExistingCertificateLscFirst | AuthMode::ExistingCertificateMicFirst
        )
    }
}

impl fmt::Display for AuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for AuthMode {
    type Err = AuthError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AuthMode::ALL
            .into_iter()
            .find(|mode| mode.name() == s)
            .ok_or_else(|| AuthError::UnknownName {
                kind: "authentication mode",
                name: s.to_owned(),
                expected: AuthMode::EXPECTED,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for mode in AuthMode::ALL {
            assert_eq!(mode.to_string().parse::<AuthMode>(), Ok(mode));
        }
    }

    #[test]
    fn unknown_name_lists_the_choices() {
        let err = "certificate".parse::<AuthMode>().err();
        assert!(matches!(err, Some(AuthError::UnknownName { .. })));
        assert!(
            err.map(|e| e.to_string())
                .unwrap_or_default()
                .contains("lsc-first")
        );
    }

    #[test]
    fn phone_values_match_the_protocol() {
        let values: Vec<u8> = AuthMode::ALL
            .iter()
            .map(|m| m.phone_capf_auth_mode())
            .collect();
        assert_eq!(values, [1, 2, 3, 4]);
    }
}
