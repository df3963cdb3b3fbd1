//! What the API answers, as typed JSON: devices, certificates, audit
//! entries. Enum values are the command line's own names (`auth-string`,
//! `install`, `read-only`...); times are RFC 3339 in UTC.
//!
//! The authentication string itself is in a [`DeviceView`] only when the
//! operator may see strings (helpdesk and admin); for read-only operators
//! the field is left out, never merely blanked.

use capf_auth::OperationStatus;
use capf_operations::{AuditEntry, CertificateHistory, CertificateRecord, Device};
use serde::Serialize;

use crate::time_text;

/// A certificate on a device record.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct CertificateView {
    /// Subject name.
    pub subject: String,
    /// Issuer name.
    pub issuer: String,
    /// Serial number, lower-case hex.
    pub serial: String,
    /// SHA-256 of the DER, lower-case hex.
    pub sha256: String,
    /// notBefore.
    pub not_before: String,
    /// notAfter.
    pub not_after: String,
}

impl CertificateView {
    pub(crate) fn of(c: &CertificateRecord) -> Self {
        CertificateView {
            subject: c.subject.clone(),
            issuer: c.issuer.clone(),
            serial: c.serial_hex.clone(),
            sha256: c.fingerprint_sha256(),
            not_before: time_text::format(c.not_before),
            not_after: time_text::format(c.not_after),
        }
    }
}

/// Something recorded with a time and a reason (a revocation, the last
/// error).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ReasonView {
    /// Why.
    pub reason: String,
    /// When.
    pub at: String,
}

/// A device as the API shows it.
#[derive(Clone, Serialize, utoipa::ToSchema)]
pub struct DeviceView {
    /// Device name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// `non-secure`, `authenticated` or `encrypted`.
    #[schema(value_type = crate::openapi::SecurityModeName)]
    pub security_mode: &'static str,
    /// `auth-string`, `null-string`, `lsc-first` or `mic-first`.
    #[schema(value_type = crate::openapi::AuthModeName)]
    pub auth_mode: &'static str,
    /// `armed`, `not-set` or `locked-out`.
    #[schema(value_type = crate::openapi::StringStateName)]
    pub auth_string_state: &'static str,
    /// The armed string's digits: only for helpdesk and admin operators,
    /// and only when one is armed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_string: Option<String>,
    /// Wrong strings since the last correct one or re-arm.
    pub failed_attempts: u32,
    /// Locked out by wrong strings.
    pub locked: bool,
    /// The key the phone is asked for (`None`: the service default).
    #[schema(value_type = Option<crate::openapi::KeyName>)]
    pub key: Option<String>,
    /// `none`, `install`, `delete` or `troubleshoot`.
    #[schema(value_type = crate::openapi::OperationName)]
    pub operation: &'static str,
    /// The operation's deadline.
    pub completes_by: Option<String>,
    /// `none`, `pending`, `successful` or `failed`.
    #[schema(value_type = crate::openapi::StatusName)]
    pub status: &'static str,
    /// The status as CUCM words it ("Install/Upgrade successful").
    pub status_label: String,
    /// `installed` or `not-installed`.
    #[schema(value_type = crate::openapi::LscStatusName)]
    pub lsc_status: &'static str,
    /// The LSC on record.
    pub lsc: Option<CertificateView>,
    /// Set when the operator revoked the LSC.
    pub lsc_revoked: Option<ReasonView>,
    /// The MIC on record.
    pub mic: Option<CertificateView>,
    /// The last failure.
    pub last_error: Option<ReasonView>,
}

impl std::fmt::Debug for DeviceView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceView")
            .field("name", &self.name)
            .field("operation", &self.operation)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl DeviceView {
    /// The view of `device`; with its string only if `with_string`.
    pub fn of(device: &Device, with_string: bool) -> Self {
        let p = &device.policy;
        let auth_string_state = match (&p.auth_string, p.locked) {
            (_, true) => "locked-out",
            (Some(_), false) => "armed",
            (None, false) => "not-set",
        };
        let status = match p.status {
            OperationStatus::Idle => "none",
            OperationStatus::Pending => "pending",
            OperationStatus::Succeeded { .. } => "successful",
            OperationStatus::Failed { .. } => "failed",
        };
        DeviceView {
            name: device.name.to_string(),
            description: device.description.clone(),
            security_mode: p.security_mode.name(),
            auth_mode: p.auth_mode.name(),
            auth_string_state,
            auth_string: if with_string {
                p.auth_string.as_ref().map(|s| s.expose().to_owned())
            } else {
                None
            },
            failed_attempts: p.failed_attempts,
            locked: p.locked,
            key: device.key.map(|k| k.to_string()),
            operation: p.operation.name(),
            completes_by: p.completes_by.map(time_text::format),
            status,
            status_label: device.status_label(),
            lsc_status: if device.lsc_status() == "Installed" {
                "installed"
            } else {
                "not-installed"
            },
            lsc: device.lsc.as_ref().map(CertificateView::of),
            lsc_revoked: device.lsc_revoked.as_ref().map(|r| ReasonView {
                reason: r.reason.clone(),
                at: time_text::format(r.at),
            }),
            mic: device.mic.as_ref().map(CertificateView::of),
            last_error: device.last_error.as_ref().map(|e| ReasonView {
                reason: e.reason.clone(),
                at: time_text::format(e.at),
            }),
        }
    }
}

/// One page of a device search.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DevicePageView {
    /// This page's number, from 1.
    pub page: usize,
    /// How many pages there are (at least 1).
    pub pages: usize,
    /// Page size (0: all on one page).
    pub per_page: usize,
    /// How many devices matched in all.
    pub total: usize,
    /// The devices on this page.
    pub devices: Vec<DeviceView>,
}

/// A certificate this CAPF issued to a device, with what became of it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IssuedView {
    /// The certificate.
    #[serde(flatten)]
    pub certificate: CertificateView,
    /// When it was issued.
    pub issued_at: String,
    /// When the phone confirmed it stored it.
    pub delivered_at: Option<String>,
    /// When a later certificate replaced it.
    pub superseded_at: Option<String>,
    /// When a delete operation removed it from the phone.
    pub deleted_at: Option<String>,
    /// When the operator revoked it.
    pub revoked_at: Option<String>,
    /// The certificate as PEM.
    pub pem: String,
}

impl IssuedView {
    pub(crate) fn of(h: &CertificateHistory) -> Self {
        let t = |t: Option<std::time::SystemTime>| t.map(time_text::format);
        IssuedView {
            certificate: CertificateView::of(&h.record.certificate),
            issued_at: time_text::format(h.record.issued_at),
            delivered_at: t(h.delivered_at),
            superseded_at: t(h.superseded_at),
            deleted_at: t(h.deleted_at),
            revoked_at: t(h.revoked_at),
            pem: h.record.certificate.pem(),
        }
    }
}

/// An entry of the audit log.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditView {
    /// When.
    pub at: String,
    /// The device; absent for entries about no device (accounts, tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// What happened (`added`, `changed`, `operator`, `issued`,
    /// `refused`, `account-added`...).
    pub event: String,
    /// Details.
    pub detail: String,
    /// Who did it: an account's name, or `token:<id>`; absent for the CAPF
    /// itself (a phone's session, the server, the command line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
}

impl AuditView {
    /// The view of one audit entry.
    pub fn of(e: &AuditEntry) -> Self {
        AuditView {
            at: time_text::format(e.at),
            device: e.device.as_ref().map(ToString::to_string),
            event: e.event.clone(),
            detail: e.detail.clone(),
            actor: e.actor.clone(),
        }
    }
}
