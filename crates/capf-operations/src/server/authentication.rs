//! Certificate authentication and the authentication decision: what a
//! phone proved, checked against the device's record.
//!
//! Only the LSC on record authenticates as an LSC: the presented
//! certificate must chain to our issuer, name the device, carry valid
//! proofs, and be byte for byte the certificate the record holds, not
//! revoked. A replaced, deleted or foreign LSC fails even though it
//! chains. A MIC must chain to a manufacturer trust anchor and name the
//! device exactly; once it authenticated, it is kept as the MIC on record.

use std::time::SystemTime;

use capf_auth::{
    CertificateFailure, CertificateKind, Presented, PresentedCertificate, Refusal, Verdict,
    Verification,
};
use capf_ca::{AuthProof, CaError, SudiProof};
use capf_wire::{AuthResponse, HashId, Reason};

use super::OutcomeKind;
use super::states::{AfterCommit, Context};
use crate::{CertificateRecord, Device, RetrievedKind, SessionCommit};

/// A presented certificate as checked, with why it failed (for the
/// device's last error and the audit log) and the MIC to keep.
struct Checked {
    presented: PresentedCertificate,
    detail: Option<String>,
    mic: Option<CertificateRecord>,
}

/// Decides on the phone's AUTH_RESPONSE for `device` (whose lease the
/// session holds): the change to make durable first, if any, and what to
/// do once it is.
pub(super) fn decide(
    ctx: &mut Context,
    now: SystemTime,
    device: Device,
    auth: &AuthResponse,
) -> (Option<SessionCommit>, AfterCommit) {
    let checked = match (
        &auth.certificate,
        device.policy.auth_mode.is_existing_certificate(),
    ) {
        (Some(cert), true) => Some(check_certificate(ctx, now, &device, auth, &cert.der)),
        _ => None,
    };
    let presented = Presented {
        password: auth.password.as_ref().map(|p| p.expose()),
        certificate: checked.as_ref().map(|c| c.presented),
    };
    let decision = device
        .policy
        .decide(&presented, now, &ctx.config.params.auth_parameters());
    // A verified MIC is kept, unless it is the one on record already.
    let mic = checked.as_ref().and_then(|c| c.mic.clone()).filter(|mic| {
        device
            .mic
            .as_ref()
            .is_none_or(|on_record| on_record.der != mic.der)
    });
    ctx.device = Some(device);
    let (then, refusal) = match decision.verdict {
        Verdict::Proceed(grant) => {
            ctx.grant = Some(grant);
            (AfterCommit::Start, None)
        }
        Verdict::Refuse(refusal) => {
            let reason = Reason::from(refusal.end_session_reason());
            let kind = if refusal == Refusal::NoPendingOperation {
                OutcomeKind::NothingToDo
            } else {
                OutcomeKind::Refused(refusal)
            };
            // Every refusal but "nothing to do" is the device's last error
            // and an audit entry, with the certificate's failure in full.
            let text = (refusal != Refusal::NoPendingOperation).then(|| {
                match checked.as_ref().and_then(|c| c.detail.as_ref()) {
                    Some(detail) if matches!(refusal, Refusal::CertificateRejected { .. }) => {
                        format!("{refusal}: {detail}")
                    }
                    _ => refusal.to_string(),
                }
            });
            (AfterCommit::End { reason, kind }, text)
        }
    };
    let change = (!decision.update.is_empty() || refusal.is_some() || mic.is_some()).then_some(
        SessionCommit::Policy {
            update: decision.update,
            refusal,
            mic,
            at: now,
        },
    );
    (change, then)
}

/// Checks the certificate presented for "existing certificate"
/// authentication.
fn check_certificate(
    ctx: &Context,
    now: SystemTime,
    device: &Device,
    auth: &AuthResponse,
    der: &[u8],
) -> Checked {
    let failed = |kind, failure, detail: String| Checked {
        presented: PresentedCertificate {
            kind,
            verification: Verification::Failed(failure),
        },
        detail: Some(detail),
        mic: None,
    };
    // A SHA-2 proof with a hash this server does not verify is refused,
    // never skipped: skipping would let a phone choose to be checked by
    // its SHA-1 proof alone.
    if let Some(sha2) = &auth.sha2_signed_data
        && sha2.hash != HashId::Sha512
    {
        return failed(
            claimed_kind(der, device),
            CertificateFailure::Malformed,
            format!("SHA2_SIGNED_DATA uses {}, not SHA-512", sha2.hash),
        );
    }
    let sudi = auth.sudi.as_ref().map(|s| SudiProof {
        certificate_der: &s.certificate,
        sha1_signature: Some(&s.sha1_signature),
        sha512_signature: Some(&s.sha512_signature),
    });
    let proof = AuthProof {
        device_name: device.name.as_str(),
        session_id: ctx.session_id,
        certificate_der: der,
        sha1_signature: auth.signed_data.as_deref(),
        sha512_signature: auth.sha2_signed_data.as_ref().map(|s| s.signature.as_ref()),
        sudi,
    };
    let policy = ctx.config.params.proof_policy();
    let verified = match capf_ca::verify_auth_proof(&proof, &ctx.config.trust, &policy, now) {
        Ok(verified) => verified,
        Err(e) => {
            return failed(
                claimed_kind(der, device),
                certificate_failure(&e),
                e.to_string(),
            );
        }
    };
    match verified.kind {
        capf_ca::CertificateKind::Lsc => match (&device.lsc, &device.lsc_revoked) {
            (Some(lsc), None) if lsc.der == der => Checked {
                presented: PresentedCertificate {
                    kind: CertificateKind::Lsc,
                    verification: Verification::VerifiedForDevice,
                },
                detail: None,
                mic: None,
            },
            (Some(lsc), Some(revocation)) if lsc.der == der => failed(
                CertificateKind::Lsc,
                CertificateFailure::Revoked,
                format!("serial {} revoked", lsc.serial_hex),
            ),
            (Some(lsc), _) => failed(
                CertificateKind::Lsc,
                CertificateFailure::NotOnRecord,
                format!(
                    "serial {} presented, serial {} on record",
                    verified.serial_hex, lsc.serial_hex
                ),
            ),
            (None, _) => failed(
                CertificateKind::Lsc,
                CertificateFailure::NotOnRecord,
                format!("serial {} presented, no LSC on record", verified.serial_hex),
            ),
        },
        capf_ca::CertificateKind::Mic => Checked {
            presented: PresentedCertificate {
                kind: CertificateKind::Mic,
                verification: Verification::VerifiedForDevice,
            },
            detail: None,
            mic: CertificateRecord::from_der(der, &device.name).ok(),
        },
    }
}

/// What a certificate a troubleshoot retrieved is, by verification: the
/// LSC on record, a MIC of this device, or unverified (kept in the trace
/// and the audit log, never recorded). `Err` if it is not a certificate.
pub(super) fn classify_retrieved(
    ctx: &Context,
    now: SystemTime,
    der: &[u8],
) -> Result<(RetrievedKind, CertificateRecord), String> {
    let Some(device) = ctx.device.as_ref() else {
        return Err("a certificate retrieved without a device".into());
    };
    let record = CertificateRecord::from_der(der, &device.name)
        .map_err(|e| format!("the phone's certificate: {e}"))?;
    let policy = ctx.config.params.proof_policy();
    let kind = match capf_ca::verify_device_certificate(
        der,
        device.name.as_str(),
        &ctx.config.trust,
        &policy,
        now,
    ) {
        Ok(capf_ca::CertificateKind::Lsc)
            if device.lsc.as_ref().is_some_and(|lsc| lsc.der == der) =>
        {
            RetrievedKind::Lsc
        }
        Ok(capf_ca::CertificateKind::Mic) => RetrievedKind::Mic,
        _ => RetrievedKind::Unverified,
    };
    Ok((kind, record))
}

/// What a certificate that failed verification claims to be, for the
/// refusal's wording only: an LSC names the device in its CN, anything
/// else is taken for a MIC.
fn claimed_kind(der: &[u8], device: &Device) -> CertificateKind {
    match capf_ca::CaCertificate::from_der(der, "presented certificate") {
        Ok(cert) if cert.common_name().as_deref() == Some(device.name.as_str()) => {
            CertificateKind::Lsc
        }
        _ => CertificateKind::Mic,
    }
}

fn certificate_failure(e: &CaError) -> CertificateFailure {
    match e {
        CaError::UntrustedIssuer { .. } | CaError::PathTooLong { .. } => {
            CertificateFailure::UntrustedIssuer
        }
        CaError::CertificateNotValid { .. } => CertificateFailure::Expired,
        CaError::DeviceBinding { .. } => CertificateFailure::NotBoundToDevice,
        CaError::BadProofSignature { .. } | CaError::MissingProof { .. } => {
            CertificateFailure::BadSignature
        }
        _ => CertificateFailure::Malformed,
    }
}
