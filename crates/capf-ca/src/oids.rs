//! Object identifiers used by this crate.

use der::asn1::AnyRef;
use spki::{AlgorithmIdentifierOwned, ObjectIdentifier as Oid};

pub(crate) const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
pub(crate) const SHA1_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.5");
pub(crate) const SHA256_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.11");
pub(crate) const SHA384_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.12");
pub(crate) const SHA512_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.13");
pub(crate) const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
pub(crate) const ECDSA_WITH_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");
pub(crate) const ECDSA_WITH_SHA384: Oid = Oid::new_unwrap("1.2.840.10045.4.3.3");
pub(crate) const ECDSA_WITH_SHA512: Oid = Oid::new_unwrap("1.2.840.10045.4.3.4");
pub(crate) const SECP256R1: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
pub(crate) const SECP384R1: Oid = Oid::new_unwrap("1.3.132.0.34");
pub(crate) const SECP521R1: Oid = Oid::new_unwrap("1.3.132.0.35");

pub(crate) const COMMON_NAME: Oid = Oid::new_unwrap("2.5.4.3");
pub(crate) const COUNTRY: Oid = Oid::new_unwrap("2.5.4.6");
pub(crate) const LOCALITY: Oid = Oid::new_unwrap("2.5.4.7");
pub(crate) const STATE: Oid = Oid::new_unwrap("2.5.4.8");
pub(crate) const ORGANIZATION: Oid = Oid::new_unwrap("2.5.4.10");
pub(crate) const ORGANIZATIONAL_UNIT: Oid = Oid::new_unwrap("2.5.4.11");

pub(crate) const SUBJECT_KEY_IDENTIFIER: Oid = Oid::new_unwrap("2.5.29.14");
pub(crate) const KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.15");
pub(crate) const BASIC_CONSTRAINTS: Oid = Oid::new_unwrap("2.5.29.19");
pub(crate) const AUTHORITY_KEY_IDENTIFIER: Oid = Oid::new_unwrap("2.5.29.35");
pub(crate) const EXTENDED_KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.37");

pub(crate) const KP_SERVER_AUTH: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.1");
pub(crate) const KP_CLIENT_AUTH: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.2");
pub(crate) const KP_IPSEC_END_SYSTEM: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.5");

/// sha256WithRSAEncryption with the NULL parameters RFC 4055 requires.
pub(crate) fn sha256_with_rsa() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: SHA256_WITH_RSA,
        parameters: Some(AnyRef::NULL.into()),
    }
}

/// ecdsa-with-SHA256, parameters absent (RFC 5758).
pub(crate) fn ecdsa_with_sha256() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: ECDSA_WITH_SHA256,
        parameters: None,
    }
}
