//! LSC issuance: the certificates capfd issues, with its bugs fixed.

use std::fmt;
use std::time::SystemTime;

use der::asn1::OctetString;
use rand_core::TryCryptoRng;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectKeyIdentifier,
};

use crate::cert::{CaCertificate, to_hex};
use crate::certgen::{CertFields, extension, key_identifier, sign_certificate};
use crate::error::{CaError, Result};
use crate::issuer::Issuer;
use crate::keys::KeySpec;
use crate::profile::LscProfile;
use crate::public_key::PublicKey;
use crate::{names, oids, serial};

/// A freshly issued LSC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedLsc {
    /// The certificate, DER (what STORE_CERTIFICATE_REQUEST carries).
    pub der: Vec<u8>,
    /// The serial number, minimal big-endian bytes.
    pub serial: Vec<u8>,
    /// The serial number in lower-case hex.
    pub serial_hex: String,
    /// notBefore (whole seconds, as encoded).
    pub not_before: SystemTime,
    /// notAfter (whole seconds, as encoded).
    pub not_after: SystemTime,
    /// The subject, e.g. `CN=SEP001122334455, O=CAPF, OU=CAPF`.
    pub subject: String,
    /// The kind and size of the certified phone key.
    pub key_spec: KeySpec,
}

impl IssuedLsc {
    /// The certificate as PEM.
    pub fn pem(&self) -> String {
        der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, &self.der)
            .unwrap_or_default()
    }
}

/// Checks that a device name can be a common name: 1 to 64 characters
/// (ub-common-name), ASCII letters, digits, `.`, `_` and `-`.
pub fn check_device_name(device_name: &str) -> Result<()> {
    let bad = |reason: &str| CaError::InvalidDeviceName {
        device: device_name.to_owned(),
        reason: reason.to_owned(),
    };
    if device_name.is_empty() || device_name.len() > 64 {
        return Err(bad("must be 1 to 64 characters"));
    }
    if !device_name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(bad(
            "only ASCII letters, digits, '.', '_' and '-' are allowed",
        ));
    }
    Ok(())
}

impl Issuer {
    /// Issues an LSC for `device_name` certifying the phone's key
    /// (`phone_spki_der`, a DER SubjectPublicKeyInfo as sent in PUBLIC_KEY).
    /// Serial from the OS CSPRNG. Validate the key first with
    /// [`validate_phone_key`](crate::validate_phone_key).
    ///
    /// notAfter is `now` + the profile's validity, but never later than the
    /// issuing certificate's notAfter. When the issuing certificate has
    /// already expired at `now`, nothing is issued:
    /// [`CaError::IssuerExpired`].
    pub fn issue_lsc(
        &self,
        device_name: &str,
        phone_spki_der: &[u8],
        profile: &LscProfile,
        now: SystemTime,
    ) -> Result<IssuedLsc> {
        self.issue_lsc_with_rng(
            device_name,
            phone_spki_der,
            profile,
            now,
            &mut getrandom::SysRng,
        )
    }

    /// [`issue_lsc`](Self::issue_lsc) with the serial number drawn from `rng`.
    pub fn issue_lsc_with_rng<R: TryCryptoRng + ?Sized>(
        &self,
        device_name: &str,
        phone_spki_der: &[u8],
        profile: &LscProfile,
        now: SystemTime,
        rng: &mut R,
    ) -> Result<IssuedLsc>
    where
        R::Error: fmt::Display,
    {
        check_device_name(device_name)?;
        let key_spec = PublicKey::from_spki_der(phone_spki_der)?.spec();
        let issuer_subject = self.certificate.parsed().tbs_certificate().subject();
        let subject = if profile.copy_issuer_attributes {
            names::lsc_subject(device_name, issuer_subject)?
        } else {
            names::simple_name(device_name, None, None)?
        };
        let key_usage = match key_spec {
            KeySpec::Rsa { .. } => KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment,
            KeySpec::Ec(_) if profile.ec_key_agreement => {
                KeyUsages::DigitalSignature | KeyUsages::KeyAgreement
            }
            KeySpec::Ec(_) => KeyUsages::DigitalSignature.into(),
        };
        let octets = |v: Vec<u8>| OctetString::new(v).map_err(CaError::der("key identifier"));
        let extensions = vec![
            extension(
                oids::BASIC_CONSTRAINTS,
                true,
                &BasicConstraints {
                    ca: false,
                    path_len_constraint: None,
                },
                "basicConstraints",
            )?,
            extension(oids::KEY_USAGE, true, &KeyUsage(key_usage), "keyUsage")?,
            extension(
                oids::EXTENDED_KEY_USAGE,
                false,
                &ExtendedKeyUsage(vec![
                    oids::KP_SERVER_AUTH,
                    oids::KP_CLIENT_AUTH,
                    oids::KP_IPSEC_END_SYSTEM,
                ]),
                "extendedKeyUsage",
            )?,
            extension(
                oids::SUBJECT_KEY_IDENTIFIER,
                false,
                &SubjectKeyIdentifier(octets(key_identifier(phone_spki_der)?)?),
                "subjectKeyIdentifier",
            )?,
            extension(
                oids::AUTHORITY_KEY_IDENTIFIER,
                false,
                &AuthorityKeyIdentifier {
                    key_identifier: Some(octets(self.key_id.clone())?),
                    authority_cert_issuer: None,
                    authority_cert_serial_number: None,
                },
                "authorityKeyIdentifier",
            )?,
        ];
        let serial = serial::random_serial(rng)?;
        // An LSC never outlives the certificate that issues it.
        let issuer_not_after = self.certificate.not_after();
        if issuer_not_after <= now {
            return Err(CaError::IssuerExpired {
                subject: self.certificate.subject(),
                not_after: self
                    .certificate
                    .parsed()
                    .tbs_certificate()
                    .validity()
                    .not_after
                    .to_string(),
            });
        }
        let not_before = now.checked_sub(profile.backdate).unwrap_or(now);
        let not_after = now
            .checked_add(profile.validity.as_duration())
            .ok_or(CaError::TimeOutOfRange { field: "notAfter" })?
            .min(issuer_not_after);
        let der = sign_certificate(
            CertFields {
                serial: &serial,
                // The issuing certificate's SUBJECT (capfd wrongly copies its issuer).
                issuer: issuer_subject,
                subject: &subject,
                spki_der: phone_spki_der,
                not_before,
                not_after,
                extensions,
            },
            &self.key,
        )?;
        let cert = CaCertificate::from_der(&der, "issued LSC")?;
        Ok(IssuedLsc {
            serial: cert.serial().to_vec(),
            serial_hex: to_hex(cert.serial()),
            not_before: cert.not_before(),
            not_after: cert.not_after(),
            subject: cert.subject(),
            key_spec,
            der,
        })
    }
}
