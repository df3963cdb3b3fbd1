//! Tags and codes: header and record tags, roles, digest algorithms. All
//! open: a code this crate does not know is kept as `Unknown(code)`.

use std::fmt;

macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident : $repr:ty {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal => $display:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// A code this crate does not know; kept so that it round-trips.
            Unknown($repr),
        }

        impl $name {
            /// Every code this crate knows, in numeric order.
            pub const KNOWN: &'static [$name] = &[ $( $name::$variant, )* ];

            /// The code as it is written in the file.
            pub const fn code(self) -> $repr {
                match self {
                    $( $name::$variant => $value, )*
                    $name::Unknown(v) => v,
                }
            }

            /// The name the reference tools use, or `None` for an unknown code.
            pub const fn name(self) -> Option<&'static str> {
                match self {
                    $( $name::$variant => Some($display), )*
                    $name::Unknown(_) => None,
                }
            }

            /// Whether this is a code this crate does not know.
            pub const fn is_unknown(self) -> bool {
                matches!(self, $name::Unknown(_))
            }

            /// The known code with this name (as [`name`](Self::name) gives it),
            /// ignoring ASCII case.
            pub fn from_name(name: &str) -> Option<Self> {
                Self::KNOWN
                    .iter()
                    .copied()
                    .find(|v| v.name().is_some_and(|n| n.eq_ignore_ascii_case(name)))
            }
        }

        impl From<$repr> for $name {
            fn from(v: $repr) -> Self {
                match v {
                    $( $value => $name::$variant, )*
                    other => $name::Unknown(other),
                }
            }
        }

        impl From<$name> for $repr {
            fn from(v: $name) -> $repr {
                v.code()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(name) => f.write_str(name),
                    None => write!(f, "UNKNOWN({})", self.code()),
                }
            }
        }
    };
}

open_enum! {
    /// The tag of a header element (`.tlv`, `.sgn`, `.enc.sgn`).
    pub enum HeaderTag: u8 {
        /// Container format version, 2 bytes: 1.2 (.tlv), 1.0 (.sgn), 2.0 (.enc.sgn).
        Version = 1 => "HEADER_VERSION",
        /// u16: the whole header's length, padding and signature included.
        Length = 2 => "HEADER_LENGTH",
        /// Container of 4, 5 and 6.
        SignerInfo = 3 => "SIGNER_INFO",
        /// The signer certificate's subject, NUL-terminated.
        SignerName = 4 => "SIGNER_NAME",
        /// The signer certificate's serial, minimal big-endian.
        SerialNumber = 5 => "SERIAL_NUMBER",
        /// The signer certificate's issuer, NUL-terminated.
        IssuerName = 6 => "ISSUER_NAME",
        /// Container of 8 and 9 (length 15).
        SignatureInfo = 7 => "SIGNATURE_INFO",
        /// u8 digest code ([`DigestAlgorithm`]).
        HashAlgorithm = 8 => "HASH_ALGORITHM",
        /// Container of 10 and 11 (length 8).
        SignatureAlgorithmInfo = 9 => "SIGNATURE_ALGORITHM_INFO",
        /// u8; 0 (RSA) in every known file.
        SignatureAlgorithm = 10 => "SIGNATURE_ALGORITHM",
        /// u8 RSA size code: 0 = 512, 1 = 1024, 2 = 2048, 3 = 4096 bits.
        SignatureModulus = 11 => "SIGNATURE_MODULUS",
        /// The RSA PKCS#1 v1.5 signature.
        Signature = 12 => "SIGNATURE",
        /// The bare padding byte 0x0D (no length, no value).
        Padding = 13 => "PADDING",
        /// The file's name as the phone asks for it, NUL-terminated.
        FileName = 14 => "FILENAME",
        /// u32 Unix time of the build.
        Timestamp = 15 => "TIMESTAMP",
        /// Container of 17 and 21 (.enc.sgn).
        EncryptionInfo = 16 => "ENCRYPTION_INFO",
        /// Container of 18, 19 and 20.
        EncryptionIvInfo = 17 => "ENCRYPTION_IV_INFO",
        /// u8, 0 in every known file; meaning unknown.
        EncryptionUnknown1 = 18 => "ENCRYPTION_UNKNOWN1",
        /// The 16-byte AES-CBC IV.
        EncryptionIv = 19 => "ENCRYPTION_IV",
        /// u16: how many 0x0D bytes were added to the plaintext.
        EncryptionPadding = 20 => "ENCRYPTION_PADDING",
        /// Container of 22, 23, 24 and 25.
        EncryptionKeyInfo = 21 => "ENCRYPTION_KEY_INFO",
        /// u8, 0 in every known file; meaning unknown.
        EncryptionUnknown2 = 22 => "ENCRYPTION_UNKNOWN2",
        /// u16: bit length of the wrapped key (the phone's RSA modulus size).
        EncryptionKeySize = 23 => "ENCRYPTION_KEY_SIZE",
        /// u8, 1 in every known file ("AES?").
        EncryptionKeyAlgorithm = 24 => "ENCRYPTION_KEY_ALGORITHM",
        /// The AES key wrapped with the phone's RSA key (PKCS#1 v1.5).
        EncryptionKey = 25 => "ENCRYPTION_KEY",
        /// u8 digest code of element 27.
        EncryptionHashAlgorithm = 26 => "ENCRYPTION_HASH_ALGORITHM",
        /// Digest of the plaintext before padding.
        EncryptionHash = 27 => "ENCRYPTION_HASH",
        /// Trust lists only: 2 bytes, 1.0 or 1.1 (1.1 enables EC).
        SignerVersion = 28 => "SIGNER_VERSION",
    }
}

impl HeaderTag {
    /// Whether a parser steps into this element rather than over it: its
    /// length counts the elements that follow it (3, 7, 9, 16, 17, 21).
    pub const fn is_container(self) -> bool {
        matches!(
            self,
            HeaderTag::SignerInfo
                | HeaderTag::SignatureInfo
                | HeaderTag::SignatureAlgorithmInfo
                | HeaderTag::EncryptionInfo
                | HeaderTag::EncryptionIvInfo
                | HeaderTag::EncryptionKeyInfo
        )
    }

    /// Whether this tag belongs to the encryption part of an `.enc.sgn`
    /// header (16 to 27).
    pub const fn is_encryption(self) -> bool {
        matches!(self.code(), 16..=27)
    }
}

open_enum! {
    /// The tag of an element inside a trust-list record.
    pub enum RecordTag: u8 {
        /// u16: the whole record's length, this element included; always first.
        RecordLength = 1 => "RECORD_LENGTH",
        /// Host name, NUL-terminated (Cisco only).
        DnsName = 2 => "DNS_NAME",
        /// The certificate's subject, NUL-terminated.
        SubjectName = 3 => "SUBJECT_NAME",
        /// u16 role code ([`Role`]).
        Role = 4 => "ROLE",
        /// The certificate's issuer, NUL-terminated.
        IssuerName = 5 => "ISSUER_NAME",
        /// The certificate's serial, minimal big-endian.
        SerialNumber = 6 => "SERIAL_NUMBER",
        /// RSA: PKCS#1 RSAPublicKey DER; EC: the X9.62 point.
        PublicKey = 7 => "PUBLIC_KEY",
        /// The certificate's own signatureValue.
        Signature = 8 => "SIGNATURE",
        /// The certificate, DER.
        Certificate = 9 => "CERTIFICATE",
        /// IPv4 address, 4 bytes (Cisco only).
        IpAddress = 10 => "IP_ADDRESS",
        /// A hash of the certificate (meaning uncertain).
        CertificateHash = 11 => "CERTIFICATE_HASH",
        /// u8, probably the algorithm of element 11.
        HashAlgorithm = 12 => "HASH_ALGORITHM",
    }
}

open_enum! {
    /// What a trust-list record's certificate is trusted for (record tag 4, u16).
    pub enum Role: u16 {
        /// System Administrator Security Token: signs trust lists.
        Sast = 0 => "SAST",
        /// The call server (SIP over TLS).
        Ccm = 1 => "CCM",
        /// Both CCM and TFTP.
        CcmTftp = 2 => "CCM+TFTP",
        /// Signs provisioning files (.sgn); with an EC key, HTTPS provisioning.
        Tftp = 3 => "TFTP",
        /// The CAPF server's TLS certificate.
        Capf = 4 => "CAPF",
        /// HTTPS phone services (called HTTPS in early certutils).
        AppServer = 7 => "APP-SERVER",
        /// The Trust Verification Service.
        Tvs = 21 => "TVS",
    }
}

open_enum! {
    /// A digest code (header tags 8 and 26, record tag 12).
    pub enum DigestAlgorithm: u8 {
        /// SHA-1 (the default of the reference tools).
        Sha1 = 1 => "SHA1",
        /// SHA-256: named by certutils, never written by it.
        Sha256 = 2 => "SHA256",
        /// SHA-512.
        Sha512 = 3 => "SHA512",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_including_unknown() {
        for v in 0..=255u8 {
            assert_eq!(HeaderTag::from(v).code(), v);
            assert_eq!(RecordTag::from(v).code(), v);
            assert_eq!(DigestAlgorithm::from(v).code(), v);
        }
        for v in [0u16, 1, 2, 3, 4, 5, 7, 21, 22, 0xffff] {
            assert_eq!(Role::from(v).code(), v);
        }
        assert_eq!(Role::from(5), Role::Unknown(5));
        assert_eq!(Role::CcmTftp.to_string(), "CCM+TFTP");
        assert_eq!(Role::from_name("app-server"), Some(Role::AppServer));
        assert_eq!(HeaderTag::from(29).to_string(), "UNKNOWN(29)");
        assert!(HeaderTag::EncryptionKeyInfo.is_container());
        assert!(!HeaderTag::Signature.is_container());
    }
}
