//! What a phone knows before a session starts: its name, how it
//! authenticates, its current LSC and its patience.

use std::time::Duration;

use bytes::Bytes;
use capf_auth::{AuthMode, AuthString};
use capf_ca::{CertificateKind, PrivateKey};
use capf_wire::{PROTOCOL_VERSION, Password};

/// How the phone proves who it is in AUTH_RESPONSE.
#[derive(Clone, Debug)]
pub enum Credentials {
    /// "By authentication string": the 4 to 10 digits the user typed.
    AuthString(AuthString),
    /// An authentication string outside the 4-10 digit rule, sent as is.
    /// For servers with other rules (capfd accepts 4 to 15 characters of
    /// any kind); a real phone only takes digits.
    RawPassword(Password),
    /// "By null string": an empty PASSWORD, no proof at all.
    NullString,
    /// "By existing certificate": the phone's LSC or MIC and its key
    /// (boxed: keys are large).
    Certificate(Box<CertificateCredentials>),
}

impl Credentials {
    /// The authentication mode these credentials implement (what the phone
    /// keeps in persistent state).
    #[must_use]
    pub fn auth_mode(&self) -> AuthMode {
        match self {
            Credentials::AuthString(_) | Credentials::RawPassword(_) => AuthMode::AuthString,
            Credentials::NullString => AuthMode::NullString,
            Credentials::Certificate(c) => match c.kind {
                CertificateKind::Lsc => AuthMode::ExistingCertificateLscFirst,
                CertificateKind::Mic => AuthMode::ExistingCertificateMicFirst,
            },
        }
    }
}

/// A certificate the phone authenticates with, and the key that signs the
/// proofs.
#[derive(Clone, Debug)]
pub struct CertificateCredentials {
    /// Whether this is the phone's LSC or its MIC. Only decides the
    /// authentication mode kept in persistent state: on the wire both travel
    /// wrapped as type 1, as capfc sends them.
    pub kind: CertificateKind,
    /// The certificate, DER.
    pub certificate_der: Bytes,
    /// Its private key: signs SIGNED_DATA (SHA-1) and SHA2_SIGNED_DATA
    /// (SHA-512) over `device name || 00 || certificate DER`.
    pub key: PrivateKey,
    /// The SUDI certificate and key, on models that have one.
    pub sudi: Option<SudiCredentials>,
}

/// The SUDI certificate and key. capfd checks SUDI_DATA only
/// when the SUDI key is RSA.
#[derive(Clone, Debug)]
pub struct SudiCredentials {
    /// The SUDI certificate, DER.
    pub certificate_der: Bytes,
    /// Its private key: signs `session id (u32 little-endian) || DER`.
    pub key: PrivateKey,
}

/// Everything a [`PhoneSession`](super::PhoneSession) needs to run.
#[derive(Clone, Debug)]
pub struct PhoneConfig {
    /// DEVICE_NAME, e.g. `SEP001122334455`.
    pub device_name: String,
    /// How the phone authenticates.
    pub credentials: Credentials,
    /// The phone's current LSC, DER: what FETCH_CERTIFICATE_REQUEST returns.
    /// `None` answers REASON=7 with no certificate.
    pub lsc_der: Option<Bytes>,
    /// VERSION sent in AUTH_RESPONSE. Default 3 (capfd v4.1 accepts only 3;
    /// Jabber sends 2).
    pub version: u8,
    /// How long to wait for each server message, counted from the moment
    /// the phone started waiting (the session's start, or the phone's last
    /// message). Default 30 s. Not applied while the runtime works (key
    /// generation may take 30 minutes or more).
    pub reply_timeout: Duration,
}

impl PhoneConfig {
    /// The default reply timeout: 30 seconds.
    pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(30);

    /// A configuration with no LSC, VERSION 3 and a 30 s reply timeout.
    pub fn new(device_name: impl Into<String>, credentials: Credentials) -> Self {
        PhoneConfig {
            device_name: device_name.into(),
            credentials,
            lsc_der: None,
            version: PROTOCOL_VERSION,
            reply_timeout: Self::DEFAULT_REPLY_TIMEOUT,
        }
    }

    /// Sets the phone's current LSC (returned by a fetch).
    #[must_use]
    pub fn with_lsc(mut self, der: impl Into<Bytes>) -> Self {
        self.lsc_der = Some(der.into());
        self
    }

    /// Sets the reply timeout.
    #[must_use]
    pub fn with_reply_timeout(mut self, timeout: Duration) -> Self {
        self.reply_timeout = timeout;
        self
    }

    /// Sets the VERSION sent in AUTH_RESPONSE.
    #[must_use]
    pub fn with_version(mut self, version: u8) -> Self {
        self.version = version;
        self
    }
}
