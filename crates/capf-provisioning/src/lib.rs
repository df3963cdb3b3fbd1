#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod cert;
mod codec;
mod enc;
mod error;
mod header;
mod sgn;
mod signer;
mod stub;
mod tags;
mod trust_list;

pub use cert::KeyAlgorithm;
pub use codec::{
    ELEMENT_HEADER_LEN, FIXED_HEADER_LEN, HeaderElement, HeaderItem, PADDING_BYTE, RawHeader,
    RawRecord, RecordElement,
};
pub use enc::{
    EncryptedConfig, EncryptedConfigFiles, cert_hash, encrypt_config, encrypt_config_with_rng,
};
pub use error::{Place, ProvisioningError, Result};
pub use header::{EncryptionInfo, SignedHeader, SignerId, SignerVersion, Version, unix_timestamp};
pub use sgn::SignedFile;
pub use signer::{FileSigner, certificate_from_pem};
pub use stub::{STUB_KEPT_ELEMENTS, stub_config};
pub use tags::{DigestAlgorithm, HeaderTag, RecordTag, Role};
pub use trust_list::{
    MAX_SAST_RECORDS, PHONE_MAX_TRUST_LIST_LEN, TrustEntry, TrustList, TrustListBuilder,
    TrustRecord,
};
