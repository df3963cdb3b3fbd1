//! How a device is shown: text for people, JSON for machines (typed, the
//! same names and values as the REST API). The authentication string is
//! never shown here (only `capf report` and `--generate-string` show it). Text that came from a phone's certificate
//! (subject, issuer) is escaped in human output; JSON keeps it exact.

use capf_admin::views::DeviceView;
use capf_auth::{AuthMode, CapfContact, Registration};
use capf_operations::{CertificateRecord, Device, escape_text};
use serde::Serialize;

use crate::time_text;

pub(crate) fn registration_text(device: &Device) -> String {
    match device.policy.registration_after_reset() {
        Registration::RegisterNow => "registers at once".into(),
        Registration::RegisterThenEnroll => "registers, then enrolls with CAPF by itself".into(),
        Registration::EnrollBeforeRegistering => "enrolls with CAPF before registering".into(),
        Registration::CannotRegister { why } => format!("cannot register: {}", why.describe()),
    }
}

pub(crate) fn contact_text(device: &Device) -> &'static str {
    match device.policy.capf_contact() {
        CapfContact::NotNeeded => "no CAPF session needed",
        CapfContact::ByItself => "the phone contacts CAPF by itself at reset",
        CapfContact::UserEntersString => {
            "a user enters the authentication string on the phone (Settings > Security > LSC > Update)"
        }
    }
}

/// How the phone will authenticate, as the server decides it: for the
/// certificate modes, what the phone may present and whether the record
/// knows of it.
pub(crate) fn authentication_text(device: &Device) -> String {
    let lsc = match (&device.lsc, &device.lsc_revoked) {
        (Some(_), None) => "its LSC on record",
        (Some(_), Some(_)) => "its LSC (revoked: refused)",
        (None, _) => "no LSC on record",
    };
    let mic = if device.mic.is_some() {
        "a MIC (one is on record)"
    } else {
        "a MIC (none on record yet)"
    };
    match device.policy.auth_mode {
        AuthMode::AuthString => "the authentication string a user enters on the phone".into(),
        AuthMode::NullString => "nothing (null string): any phone with this name".into(),
        AuthMode::ExistingCertificateLscFirst => format!(
            "its LSC if it has one, otherwise its MIC; {lsc}, {mic}; \
             a phone with neither (e.g. 7940/7960 without an LSC) fails"
        ),
        AuthMode::ExistingCertificateMicFirst => format!(
            "its MIC if it has one, otherwise its LSC; {mic}, {lsc}; \
             a phone with neither fails"
        ),
    }
}

fn string_state(device: &Device) -> &'static str {
    match (&device.policy.auth_string, device.policy.locked) {
        (_, true) => "locked out (set a new string)",
        (Some(_), false) => "armed",
        (None, false) => "not set",
    }
}

/// A device as `--json` shows it: the fields of the REST API's device view
/// (the same names and values), and what the phone will do, in words.
/// Never the string itself.
#[derive(Debug, Serialize)]
pub(crate) struct DeviceJson {
    #[serde(flatten)]
    pub(crate) device: DeviceView,
    /// How the phone will authenticate, in words.
    pub(crate) authentication: String,
    /// What the phone does after a reset, in words.
    pub(crate) after_reset: String,
    /// Whether and how the phone contacts CAPF, in words.
    pub(crate) capf_contact: &'static str,
}

impl DeviceJson {
    pub(crate) fn of(device: &Device) -> Self {
        DeviceJson {
            device: DeviceView::of(device, false),
            authentication: authentication_text(device),
            after_reset: registration_text(device),
            capf_contact: contact_text(device),
        }
    }
}

/// One page of `capf find --json`.
#[derive(Debug, Serialize)]
pub(crate) struct DevicePageJson {
    pub(crate) page: usize,
    pub(crate) pages: usize,
    pub(crate) per_page: usize,
    pub(crate) total: usize,
    pub(crate) devices: Vec<DeviceJson>,
}

pub(crate) fn print_text(device: &Device, default_key: &capf_ca::KeySpec) {
    let p = &device.policy;
    let line = |k: &str, v: &str| println!("{k:<22}{v}");
    line("Device", device.name.as_str());
    line("Description", &device.description);
    line("Security mode", p.security_mode.name());
    line("Authentication mode", p.auth_mode.label());
    line("Authentication string", string_state(device));
    if p.failed_attempts > 0 {
        line("Wrong strings", &p.failed_attempts.to_string());
    }
    let key = match device.key {
        Some(k) => k.to_string(),
        None => format!("{default_key} (service default)"),
    };
    line("Key", &key);
    line("Operation", p.operation.label());
    if let Some(t) = p.completes_by {
        line("Completes by", &time_text::format(t));
    }
    line("Operation status", &device.status_label());
    line("LSC", device.lsc_status());
    let cert_lines = |c: &CertificateRecord| {
        line("  subject", &escape_text(&c.subject));
        line("  issuer", &escape_text(&c.issuer));
        line("  serial", &c.serial_hex);
        line("  SHA-256", &c.fingerprint_sha256());
        line(
            "  valid",
            &format!(
                "{} to {}",
                time_text::format(c.not_before),
                time_text::format(c.not_after)
            ),
        );
    };
    if let Some(c) = &device.lsc {
        cert_lines(c);
    }
    if let Some(r) = &device.lsc_revoked {
        let reason = if r.reason.is_empty() {
            String::new()
        } else {
            format!(": {}", escape_text(&r.reason))
        };
        line(
            "  REVOKED",
            &format!(
                "{}{reason} (it no longer authenticates)",
                time_text::format(r.at)
            ),
        );
    }
    match &device.mic {
        Some(c) => {
            line("MIC", "on record");
            cert_lines(c);
        }
        None => line("MIC", "none on record"),
    }
    if let Some(e) = &device.last_error {
        line(
            "Last error",
            &format!("{} ({})", escape_text(&e.reason), time_text::format(e.at)),
        );
    }
    line("Authenticates with", &authentication_text(device));
    line("After reset", &registration_text(device));
    line("CAPF contact", contact_text(device));
}
