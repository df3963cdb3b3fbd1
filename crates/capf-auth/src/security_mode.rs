//! Device security mode and what a phone does after reset.

use std::fmt;
use std::str::FromStr;

use crate::{AuthError, AuthMode, Operation};

/// The device security mode of the phone's security profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SecurityMode {
    /// Non-secure: the phone registers without an LSC.
    #[default]
    NonSecure,
    /// Authenticated signalling: the phone needs a valid LSC to register.
    Authenticated,
    /// Encrypted signalling and media: the phone needs a valid LSC to
    /// register.
    Encrypted,
}

impl SecurityMode {
    /// Every security mode.
    pub const ALL: [SecurityMode; 3] = [
        SecurityMode::NonSecure,
        SecurityMode::Authenticated,
        SecurityMode::Encrypted,
    ];

    const EXPECTED: &'static str = "non-secure, authenticated, encrypted";

    /// The stable machine name: `non-secure`, `authenticated`, `encrypted`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            SecurityMode::NonSecure => "non-secure",
            SecurityMode::Authenticated => "authenticated",
            SecurityMode::Encrypted => "encrypted",
        }
    }

    /// True for authenticated and encrypted: registration needs a valid
    /// LSC.
    #[must_use]
    pub const fn is_secure(self) -> bool {
        !matches!(self, SecurityMode::NonSecure)
    }
}

impl fmt::Display for SecurityMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SecurityMode {
    type Err = AuthError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SecurityMode::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| AuthError::UnknownName {
                kind: "device security mode",
                name: s.to_owned(),
                expected: SecurityMode::EXPECTED,
            })
    }
}

/// What a phone may do with call control after a reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Registration {
    /// It registers at once. If an operation is pending in auth-string
    /// mode, the user then starts it from the phone's menu.
    RegisterNow,
    /// It registers first (non-secure), receives its configuration, then
    /// contacts CAPF by itself; after an LSC install it moves to its secure
    /// mode.
    RegisterThenEnroll,
    /// It contacts CAPF first and registers only once the CAPF session has
    /// ended; then it runs at once in authenticated or encrypted mode.
    /// If that session fails and it holds no valid LSC, it cannot register.
    EnrollBeforeRegistering,
    /// It cannot register.
    CannotRegister {
        /// Why.
        why: CannotRegisterReason,
    },
}

/// Why a phone cannot register after reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CannotRegisterReason {
    /// Secure mode, no valid LSC, and nothing scheduled that could give it
    /// one.
    NoValidLsc,
    /// Secure mode, no valid LSC, auth-string mode: the string is typed on a
    /// registered phone, and the phone does not contact CAPF by itself in
    /// this mode, so the operation can never run.
    AuthStringNeedsRegisteredPhone,
}

impl CannotRegisterReason {
    /// A short human description.
    #[must_use]
    pub const fn describe(self) -> &'static str {
        match self {
            CannotRegisterReason::NoValidLsc => {
                "a secure device security mode needs a valid LSC and none is scheduled"
            }
            CannotRegisterReason::AuthStringNeedsRegisteredPhone => {
                "the authentication string can only be entered on a registered phone, \
                 and a secure phone without a valid LSC cannot register (use null string \
                 or existing certificate, or a non-secure profile)"
            }
        }
    }
}

impl fmt::Display for CannotRegisterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// How a phone with a pending operation reaches CAPF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CapfContact {
    /// No operation is pending: the phone has no reason to contact CAPF.
    NotNeeded,
    /// The phone starts a CAPF session by itself at reset (null string and
    /// existing-certificate modes).
    ByItself,
    /// A user must enter the authentication string on the phone (Settings >
    /// Security Configuration > LSC > Update).
    UserEntersString,
}

/// How the phone reaches CAPF for its pending operation.
#[must_use]
pub const fn capf_contact(auth_mode: AuthMode, operation: Operation) -> CapfContact {
    if !operation.is_pending() {
        return CapfContact::NotNeeded;
    }
    match auth_mode {
        AuthMode::AuthString => CapfContact::UserEntersString,
        AuthMode::NullString
        | AuthMode::ExistingCertificateLscFirst
        | AuthMode::ExistingCertificateMicFirst => CapfContact::ByItself,
    }
}

/// What a phone may do after reset, for a call-control system
/// that embeds CAPF.
///
/// | security mode | auth mode | operation | valid LSC | result |
/// |---|---|---|---|---|
/// | non-secure | any | none | any | `RegisterNow` |
/// | non-secure | null string, existing certificate | pending | any | `RegisterThenEnroll` |
/// | non-secure | auth string | pending | any | `RegisterNow`, user enters the string |
/// | authenticated, encrypted | any | none | yes | `RegisterNow` |
/// | authenticated, encrypted | any | none | no | `CannotRegister(NoValidLsc)` |
/// | authenticated, encrypted | null string, existing certificate | pending | any | `EnrollBeforeRegistering` |
/// | authenticated, encrypted | auth string | pending | yes | `RegisterNow`, user enters the string |
/// | authenticated, encrypted | auth string | pending | no | `CannotRegister(AuthStringNeedsRegisteredPhone)` |
///
/// Whether the CAPF session itself then succeeds is decided by
/// [`DevicePolicy::decide`](crate::DevicePolicy::decide): e.g. with
/// precedence to LSC and no LSC it fails, and a secure phone that enrolls
/// before registering then does not register.
#[must_use]
pub const fn registration_after_reset(
    security_mode: SecurityMode,
    auth_mode: AuthMode,
    operation: Operation,
    has_valid_lsc: bool,
) -> Registration {
    let secure = security_mode.is_secure();
    match (operation.is_pending(), capf_contact(auth_mode, operation)) {
        (false, _) | (true, CapfContact::NotNeeded) => {
            if secure && !has_valid_lsc {
                Registration::CannotRegister {
                    why: CannotRegisterReason::NoValidLsc,
                }
            } else {
                Registration::RegisterNow
            }
        }
        (true, CapfContact::ByItself) => {
            if secure {
                Registration::EnrollBeforeRegistering
            } else {
                Registration::RegisterThenEnroll
            }
        }
        (true, CapfContact::UserEntersString) => {
            if secure && !has_valid_lsc {
                Registration::CannotRegister {
                    why: CannotRegisterReason::AuthStringNeedsRegisteredPhone,
                }
            } else {
                Registration::RegisterNow
            }
        }
    }
}
