#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "aws-lc")]
mod aws_lc_verify;
mod cert;
mod certgen;
mod chain;
mod error;
mod files;
mod hash_name;
mod identity;
mod issuer;
mod key_policy;
mod keys;
mod lsc;
mod names;
mod oids;
mod profile;
mod proof;
mod public_key;
#[cfg(feature = "ring")]
mod ring_signer;
#[cfg(feature = "ring")]
mod ring_verify;
mod serial;
mod server_cert;

pub use cert::{CaCertificate, certificate_pem, sha256_fingerprint};
pub use chain::TrustStore;
pub use error::{CaError, ProofSignature, Result};
pub use hash_name::{hashed_file_name, openssl_subject_hash};
pub use identity::{CERT_FILE, CapfIdentity, IdentityParams, KEY_FILE};
pub use issuer::Issuer;
pub use key_policy::{KeyPolicy, validate_phone_key};
pub use keys::{EcCurve, KeySpec, PrivateKey, SigningBackend};
pub use lsc::{IssuedLsc, check_device_name};
pub use profile::{CertValidity, LscProfile};
pub use proof::{
    AuthProof, CertificateKind, ProofPolicy, SudiProof, VerifiedCertificate, auth_data,
    sign_auth_proof, sign_sudi_proof, sudi_data, verify_auth_proof, verify_device_certificate,
};
pub use public_key::{ProofHash, PublicKey};
pub use server_cert::{
    ServerCertProblem, ServerCertProfile, ServerCertificate, ServerNames, subject_alt_names,
};
