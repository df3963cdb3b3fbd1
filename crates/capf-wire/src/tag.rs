//! CAPF element tags (the first byte of every TLV element).

use std::fmt;

use crate::command::open_enum;

open_enum! {
    /// The tag of a TLV element.
    ///
    /// Open: unknown tags decode to [`Tag::Unknown`], are kept in raw frames
    /// and skipped by typed decoding.
    pub enum Tag {
        /// Status or result code, one byte ([`crate::Reason`]).
        Reason = 1 => "REASON",
        /// Free text; never seen on the wire.
        ReasonInfo = 2 => "REASON_INFO",
        /// One byte: 1 = LSC, 2 = MIC.
        CertificateType = 3 => "CERTIFICATE_TYPE",
        /// A DER certificate inside the 5-byte wrapper.
        Certificate = 4 => "CERTIFICATE",
        /// Never used by any open code.
        CertificateId = 5 => "CERTIFICATE_ID",
        /// SHA-1 proof signature for certificate authentication.
        SignedData = 6 => "SIGNED_DATA",
        /// Protocol version, one byte (3 from capfd and CUCM).
        Version = 7 => "VERSION",
        /// Authentication type, one byte; only in AUTH_REQUEST.
        AuthType = 8 => "AUTH_TYPE",
        /// DER SubjectPublicKeyInfo of the phone's new key.
        PublicKey = 9 => "PUBLIC_KEY",
        /// RSA modulus size in bits, u16 big-endian.
        KeySize = 10 => "KEY_SIZE",
        /// NUL-terminated authentication string.
        Password = 11 => "PASSWORD",
        /// Never used by any open code.
        RetryDelay = 12 => "RETRY_DELAY",
        /// NUL-terminated device name.
        DeviceName = 13 => "DEVICE_NAME",
        /// SUDI certificate and two signatures.
        SudiData = 16 => "SUDI_DATA",
        /// Key type, one byte: 0 = RSA, 1 = EC.
        KeyType = 17 => "KEY_TYPE",
        /// EC curve, one byte: 0 = P-256, 1 = P-384, 2 = P-521.
        Curve = 18 => "CURVE",
        /// Never used by any open code.
        DigestType = 19 => "DIGEST_TYPE",
        /// SHA-512 proof signature, prefixed by its hash id.
        Sha2SignedData = 20 => "SHA2_SIGNED_DATA",
    }
}

/// Which side of a session a message travels from; used to check that what
/// we send only carries tags the other side is known to accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Server to phone.
    ServerToPhone,
    /// Phone to server.
    PhoneToServer,
}

/// Tags that the open server (capfd) accepts from a phone; it aborts on any
/// other. Phones we send to as a client must
/// therefore never see anything else from us.
pub const ACCEPTED_BY_SERVERS: &[Tag] = &[
    Tag::Reason,
    Tag::ReasonInfo,
    Tag::CertificateType,
    Tag::Certificate,
    Tag::SignedData,
    Tag::Version,
    Tag::PublicKey,
    Tag::Password,
    Tag::DeviceName,
    Tag::SudiData,
    Tag::Sha2SignedData,
];

/// Tags that the open client (capfc) accepts from a server; it aborts on any
/// other.
pub const ACCEPTED_BY_PHONES: &[Tag] = &[
    Tag::Reason,
    Tag::ReasonInfo,
    Tag::CertificateType,
    Tag::Certificate,
    Tag::Version,
    Tag::AuthType,
    Tag::KeySize,
    Tag::KeyType,
    Tag::Curve,
];

impl Direction {
    /// The tags the receiving side of this direction is known to accept.
    pub fn accepted_tags(self) -> &'static [Tag] {
        match self {
            Direction::ServerToPhone => ACCEPTED_BY_PHONES,
            Direction::PhoneToServer => ACCEPTED_BY_SERVERS,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::ServerToPhone => "S>C",
            Direction::PhoneToServer => "C>S",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_including_unknown() {
        for v in 0..=255u8 {
            assert_eq!(Tag::from(v).to_u8(), v);
        }
        assert_eq!(Tag::from(14), Tag::Unknown(14));
        assert_eq!(Tag::from(13), Tag::DeviceName);
        assert_eq!(Tag::Sha2SignedData.to_string(), "SHA2_SIGNED_DATA");
    }
}
