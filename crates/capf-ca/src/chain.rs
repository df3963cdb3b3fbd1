//! Trust anchors and chain building for certificates phones present.

use std::time::SystemTime;

use der::Encode;

use crate::cert::CaCertificate;
use crate::error::{CaError, Result};
use crate::issuer::Issuer;
use crate::public_key::IssuerKey;

/// A certificate of the trust store with its key, decoded once here (not at
/// every verification). `key` is `None` when the key cannot be decoded:
/// such a certificate signs nothing, as before the cache.
#[derive(Clone, Debug)]
pub(crate) struct Trusted {
    cert: CaCertificate,
    key: Option<IssuerKey>,
}

impl Trusted {
    fn new(cert: CaCertificate) -> Self {
        let key = IssuerKey::from_certificate(cert.parsed()).ok();
        Self { cert, key }
    }
}

/// The certificates a presented LSC or MIC may chain to.
#[derive(Clone, Debug, Default)]
pub struct TrustStore {
    lsc_anchors: Vec<Trusted>,
    mic_anchors: Vec<Trusted>,
    intermediates: Vec<Trusted>,
}

impl TrustStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store trusting LSCs from `issuer` (its certificate is the LSC anchor).
    pub fn for_issuer(issuer: &Issuer) -> Self {
        let mut store = Self::new();
        store.add_lsc_anchor(issuer.certificate().clone());
        store
    }

    /// Trusts LSCs issued by this certificate (e.g. a previous CAPF certificate).
    pub fn add_lsc_anchor(&mut self, cert: CaCertificate) {
        self.lsc_anchors.push(Trusted::new(cert));
    }

    /// Trusts MICs chaining to this manufacturer CA certificate.
    pub fn add_mic_anchor(&mut self, cert: CaCertificate) {
        self.mic_anchors.push(Trusted::new(cert));
    }

    /// Adds every certificate of a PEM text as a MIC anchor; returns how many.
    pub fn add_mic_anchors_pem(&mut self, pem: &str) -> Result<usize> {
        let certs = CaCertificate::all_from_pem(pem, "manufacturer CA certificates")?;
        let n = certs.len();
        self.mic_anchors.extend(certs.into_iter().map(Trusted::new));
        Ok(n)
    }

    /// Adds an intermediate CA certificate usable (not trusted by itself) when building chains.
    pub fn add_intermediate(&mut self, cert: CaCertificate) {
        self.intermediates.push(Trusted::new(cert));
    }

    pub(crate) fn lsc_anchors(&self) -> &[Trusted] {
        &self.lsc_anchors
    }

    pub(crate) fn mic_anchors(&self) -> &[Trusted] {
        &self.mic_anchors
    }

    pub(crate) fn intermediates(&self) -> &[Trusted] {
        &self.intermediates
    }
}

/// Validity requirement for certificates on a path.
#[derive(Clone, Copy)]
pub(crate) struct ValidityCheck {
    pub(crate) now: SystemTime,
    pub(crate) allow_expired: bool,
}

impl ValidityCheck {
    pub(crate) fn check(&self, cert: &CaCertificate, device: &str) -> Result<()> {
        let not_yet = self.now < cert.not_before();
        let expired = self.now > cert.not_after();
        if not_yet || (expired && !self.allow_expired) {
            return Err(CaError::CertificateNotValid {
                device: device.to_owned(),
                subject: cert.subject(),
                not_before: cert
                    .parsed()
                    .tbs_certificate()
                    .validity()
                    .not_before
                    .to_string(),
                not_after: cert
                    .parsed()
                    .tbs_certificate()
                    .validity()
                    .not_after
                    .to_string(),
            });
        }
        Ok(())
    }
}

fn names_match(a: &x509_cert::name::Name, b: &x509_cert::name::Name) -> bool {
    a == b || a.to_der().ok() == b.to_der().ok()
}

/// Whether `issuer`'s key signed `cert`. Unsupported algorithms are errors.
fn signed_by(cert: &CaCertificate, issuer: &Trusted) -> Result<bool> {
    let parsed = cert.parsed();
    let alg = parsed.signature_algorithm().oid;
    let tbs = cert.tbs_der()?;
    let Some(sig) = parsed.signature().as_bytes() else {
        return Ok(false);
    };
    let Some(key) = &issuer.key else {
        return Ok(false);
    };
    key.verify_x509(alg, tbs, sig)
        .ok_or_else(|| CaError::UnsupportedSignatureAlgorithm {
            oid: alg.to_string(),
            subject: cert.subject(),
        })
}

/// Outcome of a search: found, or why not.
enum Search {
    Found,
    NotFound { depth_limited: bool },
}

fn search(
    cert: &CaCertificate,
    anchors: &[Trusted],
    intermediates: &[Trusted],
    depth: usize,
    max_intermediates: usize,
    validity: ValidityCheck,
    device: &str,
) -> Result<Search> {
    let issuer_name = cert.parsed().tbs_certificate().issuer();
    for anchor in anchors {
        if names_match(
            anchor.cert.parsed().tbs_certificate().subject(),
            issuer_name,
        ) && signed_by(cert, anchor)?
        {
            return Ok(Search::Found);
        }
    }
    let mut depth_limited = false;
    for trusted in intermediates {
        let candidate = &trusted.cert;
        if candidate == cert
            || !names_match(candidate.parsed().tbs_certificate().subject(), issuer_name)
            || !candidate.is_ca()
        {
            continue;
        }
        if depth >= max_intermediates {
            depth_limited = true;
            continue;
        }
        if validity.check(candidate, device).is_err() || !signed_by(cert, trusted)? {
            continue;
        }
        match search(
            candidate,
            anchors,
            intermediates,
            depth + 1,
            max_intermediates,
            validity,
            device,
        )? {
            Search::Found => return Ok(Search::Found),
            Search::NotFound { depth_limited: d } => depth_limited |= d,
        }
    }
    Ok(Search::NotFound { depth_limited })
}

/// Finds a path from `leaf` to one of `anchors` through at most
/// `max_intermediates` intermediates. `Ok(false)` when there is none.
pub(crate) fn chains_to(
    leaf: &CaCertificate,
    anchors: &[Trusted],
    intermediates: &[Trusted],
    max_intermediates: usize,
    validity: ValidityCheck,
    device: &str,
) -> Result<bool> {
    match search(
        leaf,
        anchors,
        intermediates,
        0,
        max_intermediates,
        validity,
        device,
    )? {
        Search::Found => Ok(true),
        Search::NotFound {
            depth_limited: true,
        } => Err(CaError::PathTooLong {
            device: device.to_owned(),
            subject: leaf.subject(),
            max: max_intermediates,
        }),
        Search::NotFound { .. } => Ok(false),
    }
}
