//! Building AUTH_RESPONSE from the phone's credentials.

use bytes::Bytes;
use capf_ca::{sign_auth_proof, sign_sudi_proof};
use capf_wire::{AuthResponse, HashId, Password, Sha2SignedData, SudiData, WrappedCertificate};

use super::config::{Credentials, PhoneConfig};

/// The AUTH_RESPONSE for session `session_id`, with only the tags servers
/// accept. Elements go out in capfc's order (REASON, [CERTIFICATE,
/// SIGNED_DATA], VERSION, PASSWORD, DEVICE_NAME, [SUDI_DATA],
/// [SHA2_SIGNED_DATA]): [`capf_wire::Message::to_frame`] writes them so.
///
/// PASSWORD is always present, empty for the null string and for
/// certificate authentication, as capfc sends it.
///
/// Fails (with capf-ca's message) only when a proof cannot be signed.
pub(super) fn build(config: &PhoneConfig, session_id: u32) -> Result<AuthResponse, String> {
    let name = config.device_name.as_str();
    let password = match &config.credentials {
        Credentials::AuthString(digits) => {
            Password::new(Bytes::copy_from_slice(digits.expose().as_bytes()))
        }
        Credentials::RawPassword(password) => password.clone(),
        Credentials::NullString | Credentials::Certificate(_) => Password::empty(),
    };
    let mut response = AuthResponse::with_password(name, password);
    response.version = Some(config.version);
    if let Credentials::Certificate(c) = &config.credentials {
        let (sha1, sha512) =
            sign_auth_proof(&c.key, name, &c.certificate_der).map_err(|e| e.to_string())?;
        // Type 1 (LSC) in the wrapper even for a MIC, as capfc writes it.
        response.certificate = Some(WrappedCertificate::lsc(c.certificate_der.clone()));
        response.signed_data = Some(Bytes::from(sha1));
        response.sha2_signed_data = Some(Sha2SignedData {
            hash: HashId::Sha512,
            signature: Bytes::from(sha512),
        });
        if let Some(sudi) = &c.sudi {
            let (sha1, sha512) = sign_sudi_proof(&sudi.key, session_id, &sudi.certificate_der)
                .map_err(|e| e.to_string())?;
            response.sudi = Some(SudiData {
                certificate: sudi.certificate_der.clone(),
                sha1_signature: Bytes::from(sha1),
                sha512_signature: Bytes::from(sha512),
            });
        }
    }
    Ok(response)
}
