//! "By existing certificate" authentication: the phone's
//! certificate chain, its binding to the device, and the proof signatures.

use std::time::SystemTime;

use crate::cert::CaCertificate;
use crate::chain::{TrustStore, ValidityCheck, chains_to};
use crate::error::{CaError, ProofSignature, Result};
use crate::key_policy::rsa_exponent_problem;
use crate::keys::{KeySpec, PrivateKey};
use crate::names;
use crate::public_key::{ProofHash, PublicKey};

/// What AUTH_RESPONSE carried for certificate authentication, as raw values
/// of the wire elements.
#[derive(Debug, Clone, Copy)]
pub struct AuthProof<'a> {
    /// DEVICE_NAME without its terminating NUL.
    pub device_name: &'a str,
    /// The session id of the AUTH_RESPONSE frame (input of the SUDI signatures).
    pub session_id: u32,
    /// The DER certificate carried in CERTIFICATE (after its 5-byte wrapper).
    pub certificate_der: &'a [u8],
    /// SIGNED_DATA: the SHA-1 signature.
    pub sha1_signature: Option<&'a [u8]>,
    /// SHA2_SIGNED_DATA's signature (hash id 3 and length already stripped).
    pub sha512_signature: Option<&'a [u8]>,
    /// SUDI_DATA, if sent.
    pub sudi: Option<SudiProof<'a>>,
}

/// The parts of SUDI_DATA.
#[derive(Debug, Clone, Copy)]
pub struct SudiProof<'a> {
    /// The SUDI certificate, DER.
    pub certificate_der: &'a [u8],
    /// SHA-1 signature over `session id (u32 LE) || SUDI certificate`.
    pub sha1_signature: Option<&'a [u8]>,
    /// SHA-512 signature over the same input.
    pub sha512_signature: Option<&'a [u8]>,
}

/// How strict certificate authentication is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofPolicy {
    /// Accept MICs (and their CA certificates) past notAfter: many 79xx MICs
    /// have expired. Default false.
    pub accept_expired_mic: bool,
    /// Most intermediates between a presented certificate and its anchor. Default 2.
    pub max_intermediates: usize,
}

impl Default for ProofPolicy {
    fn default() -> Self {
        Self {
            accept_expired_mic: false,
            max_intermediates: 2,
        }
    }
}

/// Which kind of certificate authenticated the phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateKind {
    /// A locally significant certificate from our issuer.
    Lsc,
    /// A manufacturer-installed certificate.
    Mic,
}

/// A certificate that passed chain, binding and proof checks.
#[derive(Debug, Clone)]
pub struct VerifiedCertificate {
    /// LSC or MIC.
    pub kind: CertificateKind,
    /// Subject, e.g. `CN=SEP001122334455, O=CAPF, OU=CAPF`.
    pub subject: String,
    /// Serial number, minimal big-endian bytes.
    pub serial: Vec<u8>,
    /// Serial number, lower-case hex.
    pub serial_hex: String,
    /// notAfter.
    pub not_after: SystemTime,
    /// Whether it is past notAfter (only possible for a MIC with
    /// [`ProofPolicy::accept_expired_mic`]).
    pub expired: bool,
    /// The certificate's key.
    pub key_spec: KeySpec,
    /// The certificate itself.
    pub certificate: CaCertificate,
    /// The SUDI certificate's subject, when SUDI_DATA was sent and verified.
    pub sudi_subject: Option<String>,
}

/// The input of SIGNED_DATA and SHA2_SIGNED_DATA: `device name || 0x00 || certificate DER`.
pub fn auth_data(device_name: &str, cert_der: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(device_name.len() + 1 + cert_der.len());
    data.extend_from_slice(device_name.as_bytes());
    data.push(0);
    data.extend_from_slice(cert_der);
    data
}

/// The input of the SUDI signatures: `session id as u32 little-endian || SUDI certificate DER`.
pub fn sudi_data(session_id: u32, sudi_cert_der: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(4 + sudi_cert_der.len());
    data.extend_from_slice(&session_id.to_le_bytes());
    data.extend_from_slice(sudi_cert_der);
    data
}

/// Signs an authentication proof like a phone: returns (SIGNED_DATA with
/// SHA-1, SHA2_SIGNED_DATA signature with SHA-512). RSA: raw PKCS#1 v1.5
/// type-1 blocks over the bare digest; EC: DER ECDSA.
pub fn sign_auth_proof(
    key: &PrivateKey,
    device_name: &str,
    cert_der: &[u8],
) -> Result<(Vec<u8>, Vec<u8>)> {
    let data = auth_data(device_name, cert_der);
    Ok((
        key.sign_proof(ProofHash::Sha1, &data)?,
        key.sign_proof(ProofHash::Sha512, &data)?,
    ))
}

/// Signs SUDI_DATA's signatures like a phone: returns (SHA-1, SHA-512).
pub fn sign_sudi_proof(
    key: &PrivateKey,
    session_id: u32,
    sudi_cert_der: &[u8],
) -> Result<(Vec<u8>, Vec<u8>)> {
    let data = sudi_data(session_id, sudi_cert_der);
    Ok((
        key.sign_proof(ProofHash::Sha1, &data)?,
        key.sign_proof(ProofHash::Sha512, &data)?,
    ))
}

/// Whether `device_name` is `SEP` followed by 12 hex digits (any case):
/// the only names a MIC can authenticate.
fn is_sep_device_name(device_name: &str) -> bool {
    device_name
        .get(..3)
        .is_some_and(|p| p.eq_ignore_ascii_case("SEP"))
        && device_name
            .get(3..)
            .is_some_and(|mac| mac.len() == 12 && mac.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// LSC: the common name equals the device name. MIC: the device name is
/// `SEP` + 12 hex digits and the last `-`-separated part of the common name
/// equals it, ignoring ASCII case (`CP-7945G-SEP001122334455`).
fn check_binding(cert: &CaCertificate, kind: CertificateKind, device: &str) -> Result<()> {
    let subject_name = cert.parsed().tbs_certificate().subject();
    let refuse = |reason: String| CaError::DeviceBinding {
        device: device.to_owned(),
        subject: cert.subject(),
        reason,
    };
    match kind {
        CertificateKind::Lsc => match names::common_name(subject_name) {
            Some(cn) if cn == device => Ok(()),
            Some(cn) => Err(refuse(format!("LSC common name is {cn:?}"))),
            None => Err(refuse("LSC has no common name".into())),
        },
        CertificateKind::Mic => {
            if !is_sep_device_name(device) {
                return Err(refuse(
                    "a MIC can only authenticate a device named SEP followed by 12 hex digits"
                        .into(),
                ));
            }
            match names::common_name(subject_name) {
                Some(cn) => {
                    let last = cn.rsplit_once('-').map_or(cn.as_str(), |(_, last)| last);
                    if last.eq_ignore_ascii_case(device) {
                        Ok(())
                    } else {
                        Err(refuse(format!(
                            "MIC common name {cn:?} does not end with the device name"
                        )))
                    }
                }
                None => Err(refuse("MIC has no common name".into())),
            }
        }
    }
}

/// Refuses a certificate whose RSA key has a public exponent below 65537,
/// even, or longer than 32 bits.
fn check_certificate_key(cert: &CaCertificate, key: &PublicKey, device: &str) -> Result<()> {
    match key.rsa_exponent().and_then(|e| rsa_exponent_problem(&e)) {
        None => Ok(()),
        Some(problem) => Err(CaError::UnacceptableCertificateKey {
            device: device.to_owned(),
            subject: cert.subject(),
            reason: format!("RSA public {problem}"),
        }),
    }
}

/// Chains `cert` to our LSC anchors or, failing that, to the MIC anchors;
/// checks validity, the device binding and the certificate's key. Returns
/// the kind and the key.
fn authenticate_certificate(
    cert: &CaCertificate,
    trust: &TrustStore,
    policy: &ProofPolicy,
    now: SystemTime,
    device: &str,
) -> Result<(CertificateKind, PublicKey)> {
    let strict = ValidityCheck {
        now,
        allow_expired: false,
    };
    let mic = ValidityCheck {
        now,
        allow_expired: policy.accept_expired_mic,
    };
    let max = policy.max_intermediates;
    let kind = if chains_to(
        cert,
        trust.lsc_anchors(),
        trust.intermediates(),
        max,
        strict,
        device,
    )? {
        strict.check(cert, device)?;
        CertificateKind::Lsc
    } else if chains_to(
        cert,
        trust.mic_anchors(),
        trust.intermediates(),
        max,
        mic,
        device,
    )? {
        mic.check(cert, device)?;
        CertificateKind::Mic
    } else {
        return Err(CaError::UntrustedIssuer {
            device: device.to_owned(),
            subject: cert.subject(),
            issuer: cert.issuer(),
        });
    };
    check_binding(cert, kind, device)?;
    let key = cert.public_key()?;
    check_certificate_key(cert, &key, device)?;
    Ok((kind, key))
}

/// Verifies a certificate a phone holds, without a proof of possession
/// (what a troubleshoot retrieves): it chains to a trust anchor (LSC
/// anchors first, then MIC anchors), is valid at `now` (expired MICs only
/// with the policy flag), belongs to `device` by the rules of
/// [`verify_auth_proof`], and has an acceptable key. Returns its kind.
pub fn verify_device_certificate(
    certificate_der: &[u8],
    device: &str,
    trust: &TrustStore,
    policy: &ProofPolicy,
    now: SystemTime,
) -> Result<CertificateKind> {
    let cert = CaCertificate::from_der(certificate_der, &format!("certificate of {device}"))?;
    authenticate_certificate(&cert, trust, policy, now, device).map(|(kind, _)| kind)
}

fn check_signatures(
    key: &PublicKey,
    data: &[u8],
    sigs: [(Option<&[u8]>, ProofHash, ProofSignature); 2],
    cert: &CaCertificate,
    device: &str,
) -> Result<()> {
    if sigs.iter().all(|(sig, _, _)| sig.is_none()) {
        return Err(CaError::MissingProof {
            device: device.to_owned(),
        });
    }
    for (sig, hash, which) in sigs {
        if let Some(sig) = sig
            && !key.verify_proof(hash, data, sig)
        {
            return Err(CaError::BadProofSignature {
                device: device.to_owned(),
                which,
                subject: cert.subject(),
            });
        }
    }
    Ok(())
}

/// Verifies certificate authentication: the certificate chains to a trust
/// anchor (LSC anchors first, then MIC anchors) within the path bound, is
/// valid at `now` (expired MICs only with the policy flag), belongs to the
/// device, has an acceptable key, and every proof signature sent (at least
/// one) verifies with that key. SUDI_DATA, when present, is checked the same
/// way over `session id (LE) || SUDI certificate`.
///
/// Which device a certificate belongs to:
///
/// - an LSC: its common name equals the device name exactly;
/// - a MIC: the device name is `SEP` followed by 12 hex digits, and the
///   last `-`-separated part of the MIC's common name equals it, ignoring
///   ASCII case. A MIC's common name is the model and the name, e.g.
///   `CP-7945G-SEP001122334455`; a common name equal to the device name
///   also binds. Nothing else does: not another attribute (OU,
///   serialNumber...), not the name inside a longer part
///   (`XSEP001122334455`, `SEP0011223344551`).
///
/// An RSA certificate key must have an odd public exponent of at least
/// 65537 and at most 32 bits ([`CaError::UnacceptableCertificateKey`]).
/// A certificate that chains to a trust anchor but is outside its validity
/// period fails with [`CaError::CertificateNotValid`], one that chains to
/// no anchor with [`CaError::UntrustedIssuer`].
pub fn verify_auth_proof(
    proof: &AuthProof<'_>,
    trust: &TrustStore,
    policy: &ProofPolicy,
    now: SystemTime,
) -> Result<VerifiedCertificate> {
    let device = proof.device_name;
    let cert = CaCertificate::from_der(
        proof.certificate_der,
        &format!("certificate presented by {device}"),
    )?;
    let (kind, key) = authenticate_certificate(&cert, trust, policy, now, device)?;
    check_signatures(
        &key,
        &auth_data(device, proof.certificate_der),
        [
            (proof.sha1_signature, ProofHash::Sha1, ProofSignature::Sha1),
            (
                proof.sha512_signature,
                ProofHash::Sha512,
                ProofSignature::Sha512,
            ),
        ],
        &cert,
        device,
    )?;
    let sudi_subject = match &proof.sudi {
        None => None,
        Some(sudi) => {
            let sudi_cert = CaCertificate::from_der(
                sudi.certificate_der,
                &format!("SUDI certificate of {device}"),
            )?;
            let (_, sudi_key) = authenticate_certificate(&sudi_cert, trust, policy, now, device)?;
            check_signatures(
                &sudi_key,
                &sudi_data(proof.session_id, sudi.certificate_der),
                [
                    (
                        sudi.sha1_signature,
                        ProofHash::Sha1,
                        ProofSignature::SudiSha1,
                    ),
                    (
                        sudi.sha512_signature,
                        ProofHash::Sha512,
                        ProofSignature::SudiSha512,
                    ),
                ],
                &sudi_cert,
                device,
            )?;
            Some(sudi_cert.subject())
        }
    };
    Ok(VerifiedCertificate {
        kind,
        subject: cert.subject(),
        serial: cert.serial().to_vec(),
        serial_hex: cert.serial_hex(),
        not_after: cert.not_after(),
        expired: now > cert.not_after(),
        key_spec: key.spec(),
        sudi_subject,
        certificate: cert,
    })
}
