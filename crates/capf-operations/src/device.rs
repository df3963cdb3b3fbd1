//! The device record: what a device is scheduled to do, its policy state and
//! its certificates.

use std::time::SystemTime;

use capf_auth::{AuthMode, DevicePolicy, Operation, OperationStatus};
use capf_ca::{CaCertificate, KeySpec};

use crate::{DeviceName, OperationsError};

/// A certificate kept on a device record: the DER plus what an operator
/// wants to see without parsing it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateRecord {
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// Subject, e.g. `CN=SEP001122334455, O=CAPF`.
    pub subject: String,
    /// Issuer name.
    pub issuer: String,
    /// Serial number, lower-case hex.
    pub serial_hex: String,
    /// notBefore.
    pub not_before: SystemTime,
    /// notAfter.
    pub not_after: SystemTime,
}

impl CertificateRecord {
    /// Reads the fields from a DER certificate.
    pub fn from_der(der: &[u8], device: &DeviceName) -> Result<Self, OperationsError> {
        let cert = CaCertificate::from_der(der, &format!("certificate of {device}")).map_err(
            |source| OperationsError::Certificate {
                name: device.to_string(),
                source: Box::new(source),
            },
        )?;
        Ok(CertificateRecord {
            der: der.to_vec(),
            subject: cert.subject(),
            issuer: cert.issuer(),
            serial_hex: cert.serial_hex(),
            not_before: cert.not_before(),
            not_after: cert.not_after(),
        })
    }

    /// SHA-256 over the DER, lower-case hex.
    pub fn fingerprint_sha256(&self) -> String {
        capf_ca::sha256_fingerprint(&self.der)
    }

    /// The certificate as PEM.
    pub fn pem(&self) -> String {
        capf_ca::certificate_pem(&self.der)
    }
}

/// What a certificate a troubleshoot session retrieved turned out to be,
/// by verification (never by guessing from its name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RetrievedKind {
    /// The device's LSC on record: it chains to our issuer and is the
    /// certificate the record holds.
    Lsc,
    /// A manufacturer-installed certificate: it chains to a trusted
    /// manufacturer CA and names this device.
    Mic,
    /// Neither: kept in the trace file and the audit log, never recorded
    /// on the device.
    Unverified,
}

impl RetrievedKind {
    /// `lsc`, `mic` or `unverified` (used in trace file names).
    pub fn as_str(self) -> &'static str {
        match self {
            RetrievedKind::Lsc => "lsc",
            RetrievedKind::Mic => "mic",
            RetrievedKind::Unverified => "unverified",
        }
    }
}

/// The operator revoked the device's current LSC: it no longer
/// authenticates the phone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// When.
    pub at: SystemTime,
    /// Why, as the operator gave it (may be empty).
    pub reason: String,
}

/// The last failure recorded on a device, for the operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastError {
    /// What went wrong.
    pub reason: String,
    /// When.
    pub at: SystemTime,
}

/// A device as CAPF knows it: what it is scheduled to do, how it must
/// authenticate, and its certificates on record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// The device name.
    pub name: DeviceName,
    /// Free text for the operator.
    pub description: String,
    /// The key the phone is asked to generate; `None` uses the service
    /// parameter `default_key`.
    pub key: Option<KeySpec>,
    /// Authentication mode, string, counters, lock, operation, deadline,
    /// status, security mode (capf-auth).
    pub policy: DevicePolicy,
    /// The LSC on record: the last one this CAPF issued and the phone
    /// confirmed. Only this certificate authenticates the phone as an LSC.
    pub lsc: Option<CertificateRecord>,
    /// Set when the operator revoked [`lsc`](Self::lsc): it then no longer
    /// authenticates. Cleared when a new LSC is installed or it is deleted.
    pub lsc_revoked: Option<Revocation>,
    /// The MIC on record: the last manufacturer certificate that
    /// authenticated the phone, or that a troubleshoot fetched and
    /// verified.
    pub mic: Option<CertificateRecord>,
    /// Key-generation failures in the current operation.
    pub key_generation_failures: u32,
    /// The last failure, if any.
    pub last_error: Option<LastError>,
}

impl Device {
    /// A new device with nothing scheduled.
    pub fn new(name: DeviceName, auth_mode: AuthMode) -> Self {
        Device {
            name,
            description: String::new(),
            key: None,
            policy: DevicePolicy::new(auth_mode),
            lsc: None,
            lsc_revoked: None,
            mic: None,
            key_generation_failures: 0,
            last_error: None,
        }
    }

    /// The scheduled operation.
    pub fn operation(&self) -> Operation {
        self.policy.operation
    }

    /// The operation status as CUCM shows it: "Install/Upgrade pending",
    /// "Delete successful", ...
    pub fn status_label(&self) -> String {
        self.policy.status_label()
    }

    /// The operation status.
    pub fn status(&self) -> &OperationStatus {
        &self.policy.status
    }

    /// "Installed" or "Not Installed", as the phone shows it.
    pub fn lsc_status(&self) -> &'static str {
        if self.lsc.is_some() || self.policy.certificates.lsc {
            "Installed"
        } else {
            "Not Installed"
        }
    }

    /// Schedules an operation (delete needs an LSC on record, troubleshoot
    /// a certificate), resetting the per-operation failure counters.
    pub fn schedule(
        &mut self,
        operation: Operation,
        completes_by: Option<SystemTime>,
    ) -> Result<(), OperationsError> {
        self.policy
            .schedule(operation, completes_by)
            .map_err(|source| OperationsError::Policy {
                name: self.name.to_string(),
                source,
            })?;
        self.key_generation_failures = 0;
        self.last_error = None;
        Ok(())
    }

    /// Keeps the flags capf-auth decides with (`policy.certificates`) in
    /// step with the certificate records. Stores call it when saving.
    pub fn sync_certificate_flags(&mut self) {
        self.policy.certificates.lsc = self.lsc.is_some();
        self.policy.certificates.mic = self.mic.is_some();
    }
}
