//! Server certificates for our own HTTPS listeners (the operator console):
//! the CA that issues LSCs also certifies the names clients use to reach
//! the server, so that an operator who trusts the CAPF certificate trusts
//! the console too.
//!
//! The profile: `CN=<first name>`, basicConstraints CA:FALSE (critical),
//! keyUsage digitalSignature (and keyEncipherment for an RSA key;
//! critical), extended key usage serverAuth only, subjectAltName with
//! every DNS name and IP address, subject and authority key identifiers,
//! a SHA-256 signature. The key is a fresh P-256 key.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use der::Encode;
use der::asn1::{Ia5String, OctetString};
use der::oid::AssociatedOid;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectAltName, SubjectKeyIdentifier,
};

use crate::cert::CaCertificate;
use crate::certgen::{CertFields, extension, key_identifier, sign_certificate};
use crate::error::{CaError, Result};
use crate::issuer::Issuer;
use crate::keys::{EcCurve, KeySpec, PrivateKey};
use crate::profile::CertValidity;
use crate::public_key::PublicKey;
use crate::{files, names, oids, serial};

/// The names a server certificate is for: DNS names and IP addresses,
/// each once, in the order added.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerNames {
    dns: Vec<String>,
    ips: Vec<IpAddr>,
}

impl ServerNames {
    /// No names yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a name given as text: an IP address (`192.0.2.10`, `::1`) or a
    /// DNS name (`capf.example.org`, `localhost`; letters, digits and
    /// hyphens in dot-separated labels of at most 63 characters, at most
    /// 253 in all, no wildcards). DNS names are kept in lower case; a
    /// trailing dot is dropped. Adding a name twice keeps one.
    pub fn add(&mut self, text: &str) -> Result<()> {
        match text.parse::<IpAddr>() {
            Ok(ip) => {
                self.add_ip(ip);
                Ok(())
            }
            Err(_) => self.add_dns(text),
        }
    }

    /// Adds a DNS name (see [`add`](Self::add) for what is accepted).
    pub fn add_dns(&mut self, name: &str) -> Result<()> {
        let name = check_dns_name(name)?;
        if !self.dns.contains(&name) {
            self.dns.push(name);
        }
        Ok(())
    }

    /// Adds an IP address.
    pub fn add_ip(&mut self, ip: IpAddr) {
        if !self.ips.contains(&ip) {
            self.ips.push(ip);
        }
    }

    /// The DNS names.
    pub fn dns_names(&self) -> &[String] {
        &self.dns
    }

    /// The IP addresses.
    pub fn ip_addresses(&self) -> &[IpAddr] {
        &self.ips
    }

    /// Whether there is no name at all.
    pub fn is_empty(&self) -> bool {
        self.dns.is_empty() && self.ips.is_empty()
    }

    /// Whether both hold the same names, in any order.
    pub fn same_names(&self, other: &ServerNames) -> bool {
        self.dns.len() == other.dns.len()
            && self.ips.len() == other.ips.len()
            && self.dns.iter().all(|n| other.dns.contains(n))
            && self.ips.iter().all(|ip| other.ips.contains(ip))
    }

    /// The common name of the subject: the first DNS name that fits in a
    /// common name (64 characters), else the first IP address.
    fn common_name(&self) -> Option<String> {
        self.dns
            .iter()
            .find(|n| n.len() <= 64)
            .cloned()
            .or_else(|| self.ips.first().map(IpAddr::to_string))
    }

    fn general_names(&self) -> Result<Vec<GeneralName>> {
        let mut names = Vec::with_capacity(self.dns.len() + self.ips.len());
        for dns in &self.dns {
            names.push(GeneralName::DnsName(
                Ia5String::new(dns).map_err(CaError::der("subjectAltName dNSName"))?,
            ));
        }
        for ip in &self.ips {
            let octets = match ip {
                IpAddr::V4(v4) => v4.octets().to_vec(),
                IpAddr::V6(v6) => v6.octets().to_vec(),
            };
            names.push(GeneralName::IpAddress(
                OctetString::new(octets).map_err(CaError::der("subjectAltName iPAddress"))?,
            ));
        }
        Ok(names)
    }
}

impl fmt::Display for ServerNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all: Vec<String> = self
            .dns
            .iter()
            .cloned()
            .chain(self.ips.iter().map(IpAddr::to_string))
            .collect();
        f.write_str(&all.join(", "))
    }
}

/// Checks a DNS name and returns it in lower case without a trailing dot.
fn check_dns_name(text: &str) -> Result<String> {
    let bad = |reason: &str| CaError::InvalidParameter {
        field: "server name",
        reason: format!("{text:?} is not a DNS name or IP address: {reason}"),
    };
    let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
    if name.is_empty() || name.len() > 253 {
        return Err(bad("must be 1 to 253 characters"));
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(bad("each part between dots must be 1 to 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(bad("only letters, digits, '-' and '.' are allowed"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("a part may not begin or end with '-'"));
        }
    }
    Ok(name)
}

/// Choices for the server certificates an [`Issuer`] signs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerCertProfile {
    /// notAfter = now + validity, capped at the issuing certificate's
    /// notAfter. Default 365 days.
    pub validity: CertValidity,
    /// notBefore = now - backdate, for clients whose clock is behind.
    /// Default 10 minutes.
    pub backdate: Duration,
}

impl Default for ServerCertProfile {
    fn default() -> Self {
        Self {
            validity: CertValidity::Days(365),
            backdate: Duration::from_secs(600),
        }
    }
}

impl Issuer {
    /// Issues a TLS server certificate for `names` certifying the key
    /// `server_spki_der` (a DER SubjectPublicKeyInfo), with the profile
    /// described in this module. Refuses an empty `names` and an issuing
    /// certificate that has expired at `now`.
    pub fn issue_server_certificate(
        &self,
        names: &ServerNames,
        server_spki_der: &[u8],
        profile: &ServerCertProfile,
        now: SystemTime,
    ) -> Result<CaCertificate> {
        let Some(cn) = names.common_name() else {
            return Err(CaError::InvalidParameter {
                field: "server names",
                reason: "a server certificate needs at least one DNS name or IP address".into(),
            });
        };
        let key_spec = PublicKey::from_spki_der(server_spki_der)?.spec();
        let subject = names::simple_name(&cn, None, None)?;
        let key_usage = match key_spec {
            KeySpec::Rsa { .. } => KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment,
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
                &ExtendedKeyUsage(vec![oids::KP_SERVER_AUTH]),
                "extendedKeyUsage",
            )?,
            extension(
                SubjectAltName::OID,
                false,
                &SubjectAltName(names.general_names()?),
                "subjectAltName",
            )?,
            extension(
                oids::SUBJECT_KEY_IDENTIFIER,
                false,
                &SubjectKeyIdentifier(octets(key_identifier(server_spki_der)?)?),
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
        let serial = serial::random_serial(&mut getrandom::SysRng)?;
        let not_before = now.checked_sub(profile.backdate).unwrap_or(now);
        let not_after = now
            .checked_add(profile.validity.as_duration())
            .ok_or(CaError::TimeOutOfRange { field: "notAfter" })?
            .min(issuer_not_after);
        let der = sign_certificate(
            CertFields {
                serial: &serial,
                issuer: self.certificate.parsed().tbs_certificate().subject(),
                subject: &subject,
                spki_der: server_spki_der,
                not_before,
                not_after,
                extensions,
            },
            &self.key,
        )?;
        CaCertificate::from_der(&der, "issued server certificate")
    }
}

/// Why a stored server certificate cannot be used again (see
/// [`ServerCertificate::check`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerCertProblem {
    /// Another CA issued it (or the issuer's key changed).
    OtherIssuer,
    /// Its validity has not begun.
    NotYetValid,
    /// It has expired, or expires within the renewal margin.
    ExpiresSoon,
    /// It names other DNS names or IP addresses than asked for.
    OtherNames {
        /// The names in the certificate.
        has: ServerNames,
    },
}

impl fmt::Display for ServerCertProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OtherIssuer => f.write_str("it was issued by another CA"),
            Self::NotYetValid => f.write_str("it is not valid yet"),
            Self::ExpiresSoon => f.write_str("it has expired or expires soon"),
            Self::OtherNames { has } => write!(f, "it is for other names ({has})"),
        }
    }
}

/// A server certificate with its private key and the certificates above
/// it (what a TLS server sends: the certificate, then the chain).
#[derive(Clone, Debug)]
pub struct ServerCertificate {
    certificate: CaCertificate,
    key: PrivateKey,
    chain: Vec<CaCertificate>,
}

impl ServerCertificate {
    /// A fresh P-256 key and a certificate for it from `issuer`, with the
    /// issuer's certificate and chain as the chain.
    pub fn issue(
        issuer: &Issuer,
        names: &ServerNames,
        profile: &ServerCertProfile,
        now: SystemTime,
    ) -> Result<Self> {
        let key = PrivateKey::generate(KeySpec::Ec(EcCurve::P256))?;
        let certificate =
            issuer.issue_server_certificate(names, &key.public_key_der()?, profile, now)?;
        let mut chain = vec![issuer.certificate().clone()];
        chain.extend(issuer.chain().iter().cloned());
        Ok(Self {
            certificate,
            key,
            chain,
        })
    }

    /// A certificate (PEM: the server certificate first, then the chain)
    /// and its PKCS#8 key (PEM). Checks that the key fits the certificate.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self> {
        let mut certs = CaCertificate::all_from_pem(cert_pem, "server certificate")?;
        let certificate = certs.remove(0);
        let key = PrivateKey::from_pkcs8_pem(key_pem)?;
        if certificate.spki_der()? != key.public_key_der()? {
            return Err(CaError::InvalidParameter {
                field: "server certificate",
                reason: format!(
                    "the private key does not match the certificate {}",
                    certificate.subject()
                ),
            });
        }
        Ok(Self {
            certificate,
            key,
            chain: certs,
        })
    }

    /// Loads what [`save`](Self::save) wrote.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self> {
        Self::from_pem(&files::read_text(cert_path)?, &files::read_text(key_path)?)
    }

    /// Writes the certificate and chain (PEM) to `cert_path` and the key
    /// (PKCS#8 PEM, mode 0600 from the start) to `key_path`, each replaced
    /// in one step. The key is written first.
    pub fn save(&self, cert_path: &Path, key_path: &Path) -> Result<()> {
        files::write_atomic(key_path, self.key.to_pkcs8_pem()?.as_bytes(), true)?;
        files::write_atomic(cert_path, self.chain_pem().as_bytes(), false)
    }

    /// The server certificate.
    pub fn certificate(&self) -> &CaCertificate {
        &self.certificate
    }

    /// Its private key. Secret.
    pub fn private_key(&self) -> &PrivateKey {
        &self.key
    }

    /// The certificates above it, the issuer's first.
    pub fn chain(&self) -> &[CaCertificate] {
        &self.chain
    }

    /// The certificate then the chain, DER, in the order a TLS server
    /// sends them.
    pub fn chain_der(&self) -> Vec<Vec<u8>> {
        std::iter::once(&self.certificate)
            .chain(self.chain.iter())
            .map(|c| c.der().to_vec())
            .collect()
    }

    /// The certificate then the chain, PEM.
    pub fn chain_pem(&self) -> String {
        std::iter::once(&self.certificate)
            .chain(self.chain.iter())
            .map(CaCertificate::pem)
            .collect()
    }

    /// Whether this certificate can be used again for `names`: issued by
    /// `issuer` (its name and signature), valid at `now` and for at least
    /// `renew_before` more, and for exactly these names.
    pub fn check(
        &self,
        issuer: &Issuer,
        names: &ServerNames,
        now: SystemTime,
        renew_before: Duration,
    ) -> Result<(), ServerCertProblem> {
        if !issued_by(&self.certificate, issuer.certificate()) {
            return Err(ServerCertProblem::OtherIssuer);
        }
        if now < self.certificate.not_before() {
            return Err(ServerCertProblem::NotYetValid);
        }
        let renew_at = self
            .certificate
            .not_after()
            .checked_sub(renew_before)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        if now >= renew_at {
            return Err(ServerCertProblem::ExpiresSoon);
        }
        let has = subject_alt_names(&self.certificate);
        if !has.same_names(names) {
            return Err(ServerCertProblem::OtherNames { has });
        }
        Ok(())
    }
}

/// The DNS names and IP addresses of a certificate's subjectAltName
/// (none when it has no such extension, or one that does not decode).
pub fn subject_alt_names(certificate: &CaCertificate) -> ServerNames {
    let mut names = ServerNames::new();
    let Some(san) = certificate
        .parsed()
        .tbs_certificate()
        .get_extension::<SubjectAltName>()
        .ok()
        .flatten()
        .map(|(_, san)| san)
    else {
        return names;
    };
    for name in san.0 {
        match name {
            GeneralName::DnsName(dns) => {
                let text = dns.as_str().to_ascii_lowercase();
                if !names.dns.contains(&text) {
                    names.dns.push(text);
                }
            }
            GeneralName::IpAddress(octets) => {
                let bytes = octets.as_bytes();
                let ip = if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
                    Some(IpAddr::from(v4))
                } else {
                    <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from)
                };
                if let Some(ip) = ip {
                    names.add_ip(ip);
                }
            }
            _ => {}
        }
    }
    names
}

/// Whether `issuer` issued `cert`: the issuer name matches and its key
/// verifies the signature.
fn issued_by(cert: &CaCertificate, issuer: &CaCertificate) -> bool {
    let parsed = cert.parsed();
    let issuer_subject = issuer.parsed().tbs_certificate().subject();
    let names_match = parsed.tbs_certificate().issuer() == issuer_subject
        || parsed.tbs_certificate().issuer().to_der().ok() == issuer_subject.to_der().ok();
    if !names_match {
        return false;
    }
    let Ok(tbs) = parsed.tbs_certificate().to_der() else {
        return false;
    };
    let Some(sig) = parsed.signature().as_bytes() else {
        return false;
    };
    let Ok(key) = issuer.public_key() else {
        return false;
    };
    key.verify_x509(parsed.signature_algorithm().oid, &tbs, sig)
        .unwrap_or(false)
}
