#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! What a phone does after reset, per device security mode, authentication
//! mode, scheduled operation and LSC.

use capf_auth::{
    AuthMode, CannotRegisterReason, CapfContact, DevicePolicy, Operation, Registration,
    SecurityMode, capf_contact, registration_after_reset,
};

const SECURE: [SecurityMode; 2] = [SecurityMode::Authenticated, SecurityMode::Encrypted];
const SELF_STARTING: [AuthMode; 3] = [
    AuthMode::NullString,
    AuthMode::ExistingCertificateLscFirst,
    AuthMode::ExistingCertificateMicFirst,
];
const PENDING: [Operation; 3] = [
    Operation::InstallUpgrade,
    Operation::Delete,
    Operation::Troubleshoot,
];

#[test]
fn nonsecure_null_string_registers_then_enrolls() {
    for lsc in [false, true] {
        assert_eq!(
            registration_after_reset(
                SecurityMode::NonSecure,
                AuthMode::NullString,
                Operation::InstallUpgrade,
                lsc
            ),
            Registration::RegisterThenEnroll
        );
    }
}

#[test]
fn nonsecure_existing_certificate_registers_then_enrolls() {
    for mode in SELF_STARTING {
        for op in PENDING {
            for lsc in [false, true] {
                assert_eq!(
                    registration_after_reset(SecurityMode::NonSecure, mode, op, lsc),
                    Registration::RegisterThenEnroll,
                    "{mode} {op} {lsc}"
                );
                assert_eq!(capf_contact(mode, op), CapfContact::ByItself);
            }
        }
    }
}

#[test]
fn secure_null_string_or_certificate_enrolls_before_registering() {
    for security in SECURE {
        for mode in SELF_STARTING {
            for op in PENDING {
                for lsc in [false, true] {
                    assert_eq!(
                        registration_after_reset(security, mode, op, lsc),
                        Registration::EnrollBeforeRegistering,
                        "{security} {mode} {op} {lsc}"
                    );
                }
            }
        }
    }
}

#[test]
fn secure_auth_string_without_lsc_cannot_register() {
    for security in SECURE {
        for op in PENDING {
            assert_eq!(
                registration_after_reset(security, AuthMode::AuthString, op, false),
                Registration::CannotRegister {
                    why: CannotRegisterReason::AuthStringNeedsRegisteredPhone
                }
            );
        }
    }
}

#[test]
fn secure_auth_string_with_valid_lsc_registers_and_user_enters_string() {
    for security in SECURE {
        assert_eq!(
            registration_after_reset(
                security,
                AuthMode::AuthString,
                Operation::InstallUpgrade,
                true
            ),
            Registration::RegisterNow
        );
    }
    assert_eq!(
        capf_contact(AuthMode::AuthString, Operation::InstallUpgrade),
        CapfContact::UserEntersString
    );
}

#[test]
fn secure_without_lsc_and_nothing_scheduled_cannot_register() {
    for security in SECURE {
        for mode in AuthMode::ALL {
            assert_eq!(
                registration_after_reset(security, mode, Operation::None, false),
                Registration::CannotRegister {
                    why: CannotRegisterReason::NoValidLsc
                }
            );
            assert_eq!(
                registration_after_reset(security, mode, Operation::None, true),
                Registration::RegisterNow
            );
        }
    }
}

#[test]
fn nonsecure_auth_string_registers_now_and_user_enters_string() {
    for op in PENDING {
        for lsc in [false, true] {
            assert_eq!(
                registration_after_reset(SecurityMode::NonSecure, AuthMode::AuthString, op, lsc),
                Registration::RegisterNow
            );
        }
        assert_eq!(
            capf_contact(AuthMode::AuthString, op),
            CapfContact::UserEntersString
        );
    }
}

#[test]
fn nothing_scheduled_means_no_capf_contact() {
    for mode in AuthMode::ALL {
        assert_eq!(capf_contact(mode, Operation::None), CapfContact::NotNeeded);
        assert_eq!(
            registration_after_reset(SecurityMode::NonSecure, mode, Operation::None, false),
            Registration::RegisterNow
        );
    }
}

#[test]
fn device_policy_helpers_use_its_record() {
    let mut d = DevicePolicy::new(AuthMode::AuthString);
    d.security_mode = SecurityMode::Encrypted;
    d.schedule(Operation::InstallUpgrade, None).unwrap();
    assert_eq!(
        d.registration_after_reset(),
        Registration::CannotRegister {
            why: CannotRegisterReason::AuthStringNeedsRegisteredPhone
        }
    );
    d.certificates.lsc = true;
    assert_eq!(d.registration_after_reset(), Registration::RegisterNow);
    assert_eq!(d.capf_contact(), CapfContact::UserEntersString);
}

#[test]
fn security_mode_names() {
    for m in SecurityMode::ALL {
        assert_eq!(m.to_string().parse::<SecurityMode>().unwrap(), m);
    }
    assert_eq!(SecurityMode::NonSecure.to_string(), "non-secure");
}
