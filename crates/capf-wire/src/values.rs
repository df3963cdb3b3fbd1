//! Typed element values: one-byte codes (open enums) and the composite
//! values (certificate wrapper, SUDI data, SHA-2 signed data).

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use crate::command::open_enum;
use crate::{Tag, WireError};

open_enum! {
    /// A REASON code (in END_SESSION and responses). Open: only 0, 1, 7 and 9
    /// have known meanings.
    pub enum Reason {
        /// Nothing (more) to do: END_SESSION for operation "none" and after a
        /// fetch.
        NoAction = 0 => "NO_ACTION",
        /// OK / success: in AUTH_RESPONSE, in STORE/FETCH/DELETE responses,
        /// and in END_SESSION after an install or a delete.
        UpdateCertificate = 1 => "UPDATE_CERTIFICATE",
        /// Generic failure; also "no certificate" in FETCH/DELETE responses.
        InvalidElement = 7 => "INVALID_ELEMENT",
        /// The device is not configured on the server.
        UnknownDevice = 9 => "UNKNOWN_DEVICE",
    }
}

impl Reason {
    /// The success code (capfd's UPDATE_CERTIFICATE).
    pub const SUCCESS: Reason = Reason::UpdateCertificate;

    /// Whether this is the success code 1.
    pub fn is_success(self) -> bool {
        self == Reason::UpdateCertificate
    }
}

open_enum! {
    /// CERTIFICATE_TYPE: which certificate an element or request is about.
    pub enum CertificateType {
        /// Locally significant certificate, issued by CAPF.
        Lsc = 1 => "LSC",
        /// Manufacturer installed certificate.
        Mic = 2 => "MIC",
    }
}

open_enum! {
    /// KEY_TYPE: the kind of key the server asks the phone to generate.
    pub enum KeyType {
        /// RSA; the size comes in KEY_SIZE.
        Rsa = 0 => "RSA",
        /// Elliptic curve; the curve comes in CURVE.
        Ec = 1 => "EC",
    }
}

open_enum! {
    /// CURVE: the named curve for an EC key.
    pub enum Curve {
        /// secp256r1 / P-256.
        P256 = 0 => "P-256",
        /// secp384r1 / P-384.
        P384 = 1 => "P-384",
        /// secp521r1 / P-521.
        P521 = 2 => "P-521",
    }
}

open_enum! {
    /// AUTH_TYPE in AUTH_REQUEST (capfd always sends 0).
    pub enum AuthType {
        /// No particular method asked.
        None = 0 => "NONE",
        /// Authentication string.
        Password = 1 => "PASSWORD",
        /// Null string.
        NoPassword = 2 => "NO_PASSWORD",
        /// Existing LSC.
        Lsc = 3 => "LSC",
        /// Existing MIC.
        Mic = 4 => "MIC",
    }
}

open_enum! {
    /// Hash ids used as prefix bytes in SUDI_DATA and SHA2_SIGNED_DATA.
    pub enum HashId {
        /// SHA-1.
        Sha1 = 1 => "SHA-1",
        /// SHA-256.
        Sha256 = 2 => "SHA-256",
        /// SHA-512.
        Sha512 = 3 => "SHA-512",
    }
}

/// Reads a one-byte value.
pub(crate) fn read_u8(tag: Tag, value: &[u8], offset: u64) -> Result<u8, WireError> {
    match value {
        [v] => Ok(*v),
        _ => Err(WireError::BadElementLength {
            offset,
            tag,
            expected: 1,
            found: value.len(),
        }),
    }
}

/// Reads a big-endian u16 value.
pub(crate) fn read_u16(tag: Tag, value: &[u8], offset: u64) -> Result<u16, WireError> {
    match value {
        [hi, lo] => Ok(u16::from_be_bytes([*hi, *lo])),
        _ => Err(WireError::BadElementLength {
            offset,
            tag,
            expected: 2,
            found: value.len(),
        }),
    }
}

/// Strips the terminating NUL of a text value. A missing NUL is tolerated
/// (we always write one); a NUL inside the text is not.
pub(crate) fn read_nul_terminated(tag: Tag, value: &[u8], offset: u64) -> Result<&[u8], WireError> {
    let text = value.strip_suffix(&[0]).unwrap_or(value);
    if text.contains(&0) {
        return Err(WireError::BadElementValue {
            offset,
            tag,
            problem: "NUL byte inside the text",
        });
    }
    Ok(text)
}

/// Writes text with its terminating NUL.
pub(crate) fn nul_terminated(text: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(text.len() + 1);
    out.put_slice(text);
    out.put_u8(0);
    out.freeze()
}

/// The 5-byte wrapper around a DER certificate in a CERTIFICATE element:
/// `01 | u16 L | 00 | type | DER`, where `L` counts `00 type` and the DER.
///
/// capf-wire never interprets the DER.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct WrappedCertificate {
    /// The type byte inside the wrapper (capfd and capfc always write 1,
    /// LSC, even for a MIC).
    pub certificate_type: CertificateType,
    /// The certificate, DER, as opaque bytes.
    pub der: Bytes,
}

impl fmt::Debug for WrappedCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedCertificate")
            .field("certificate_type", &self.certificate_type)
            .field("der_len", &self.der.len())
            .finish()
    }
}

impl WrappedCertificate {
    /// Wraps a DER certificate with the type LSC, as every known peer does.
    pub fn lsc(der: impl Into<Bytes>) -> Self {
        WrappedCertificate {
            certificate_type: CertificateType::Lsc,
            der: der.into(),
        }
    }

    /// Reads the wrapper from a CERTIFICATE element value.
    pub fn decode(value: &Bytes, offset: u64) -> Result<Self, WireError> {
        const TAG: Tag = Tag::Certificate;
        let Some(&[slot, hi, lo, pad, kind]) = value.first_chunk::<5>() else {
            return Err(WireError::BadElementValue {
                offset,
                tag: TAG,
                problem: "shorter than the 5-byte certificate wrapper",
            });
        };
        if slot != 1 {
            return Err(WireError::BadElementValue {
                offset,
                tag: TAG,
                problem: "certificate wrapper does not start with 01",
            });
        }
        if usize::from(u16::from_be_bytes([hi, lo])) != value.len() - 3 {
            return Err(WireError::BadElementValue {
                offset,
                tag: TAG,
                problem: "certificate wrapper length disagrees with the element length",
            });
        }
        if pad != 0 {
            return Err(WireError::BadElementValue {
                offset,
                tag: TAG,
                problem: "certificate wrapper type is wider than one byte",
            });
        }
        Ok(WrappedCertificate {
            certificate_type: CertificateType::from(kind),
            der: value.slice(5..),
        })
    }

    /// The CERTIFICATE element value.
    pub fn encode(&self) -> Result<Bytes, WireError> {
        let inner = self.der.len() + 2;
        let len = u16::try_from(inner)
            .ok()
            .filter(|l| usize::from(*l) + 3 <= usize::from(u16::MAX))
            .ok_or(WireError::ElementTooLong {
                tag: Tag::Certificate,
                length: inner + 3,
            })?;
        let mut out = BytesMut::with_capacity(inner + 3);
        out.put_u8(1);
        out.put_u16(len);
        out.put_u8(0);
        out.put_u8(self.certificate_type.to_u8());
        out.put_slice(&self.der);
        Ok(out.freeze())
    }
}

/// SHA2_SIGNED_DATA: `hash id u8 | u16 len | signature`. The hash id must be
/// 3 (SHA-512) for the open server; it is kept as read.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Sha2SignedData {
    /// The hash the signature was made with.
    pub hash: HashId,
    /// The signature bytes.
    pub signature: Bytes,
}

impl fmt::Debug for Sha2SignedData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sha2SignedData")
            .field("hash", &self.hash)
            .field("signature_len", &self.signature.len())
            .finish()
    }
}

impl Sha2SignedData {
    /// Reads the value of a SHA2_SIGNED_DATA element.
    pub fn decode(value: &Bytes, offset: u64) -> Result<Self, WireError> {
        let tag = Tag::Sha2SignedData;
        let Some(&[hash, hi, lo]) = value.first_chunk::<3>() else {
            return Err(WireError::BadElementValue {
                offset,
                tag,
                problem: "shorter than its 3-byte prefix",
            });
        };
        if usize::from(u16::from_be_bytes([hi, lo])) != value.len() - 3 {
            return Err(WireError::BadElementValue {
                offset,
                tag,
                problem: "signature length disagrees with the element length",
            });
        }
        Ok(Sha2SignedData {
            hash: HashId::from(hash),
            signature: value.slice(3..),
        })
    }

    /// The element value.
    pub fn encode(&self) -> Result<Bytes, WireError> {
        let mut out = BytesMut::new();
        put_sub_element(
            &mut out,
            self.hash.to_u8(),
            &self.signature,
            Tag::Sha2SignedData,
        )?;
        Ok(out.freeze())
    }
}

/// SUDI_DATA: the SUDI certificate and two signatures over
/// `session id (u32 little-endian) || certificate DER`, as nested
/// `id u8 | u16 len | bytes` items: `00` certificate, `01` SHA-1 signature,
/// `03` SHA-512 signature.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SudiData {
    /// The SUDI certificate, DER.
    pub certificate: Bytes,
    /// Signature with SHA-1 (item 01).
    pub sha1_signature: Bytes,
    /// Signature with SHA-512 (item 03).
    pub sha512_signature: Bytes,
}

impl fmt::Debug for SudiData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SudiData")
            .field("certificate_len", &self.certificate.len())
            .field("sha1_signature_len", &self.sha1_signature.len())
            .field("sha512_signature_len", &self.sha512_signature.len())
            .finish()
    }
}

impl SudiData {
    /// Reads the value of a SUDI_DATA element. Items may come in any order;
    /// unknown items are skipped; all three known ones are required.
    pub fn decode(value: &Bytes, offset: u64) -> Result<Self, WireError> {
        let tag = Tag::SudiData;
        let bad = |problem| WireError::BadElementValue {
            offset,
            tag,
            problem,
        };
        let (mut cert, mut sha1, mut sha512) = (None, None, None);
        let mut rest = value.clone();
        while !rest.is_empty() {
            let Some(&[id, hi, lo]) = rest.first_chunk::<3>() else {
                return Err(bad("truncated item header"));
            };
            let len = usize::from(u16::from_be_bytes([hi, lo]));
            if len > rest.len() - 3 {
                return Err(bad("item runs past the end of the element"));
            }
            let item = rest.slice(3..3 + len);
            rest = rest.slice(3 + len..);
            let slot = match id {
                0 => &mut cert,
                1 => &mut sha1,
                3 => &mut sha512,
                _ => continue,
            };
            if slot.replace(item).is_some() {
                return Err(bad("item appears twice"));
            }
        }
        Ok(SudiData {
            certificate: cert.ok_or_else(|| bad("no certificate item (00)"))?,
            sha1_signature: sha1.ok_or_else(|| bad("no SHA-1 signature item (01)"))?,
            sha512_signature: sha512.ok_or_else(|| bad("no SHA-512 signature item (03)"))?,
        })
    }

    /// The element value, items in the order 00, 01, 03.
    pub fn encode(&self) -> Result<Bytes, WireError> {
        let mut out = BytesMut::new();
        put_sub_element(&mut out, 0, &self.certificate, Tag::SudiData)?;
        put_sub_element(
            &mut out,
            HashId::Sha1.to_u8(),
            &self.sha1_signature,
            Tag::SudiData,
        )?;
        put_sub_element(
            &mut out,
            HashId::Sha512.to_u8(),
            &self.sha512_signature,
            Tag::SudiData,
        )?;
        Ok(out.freeze())
    }
}

fn put_sub_element(out: &mut BytesMut, id: u8, bytes: &[u8], tag: Tag) -> Result<(), WireError> {
    let len = u16::try_from(bytes.len()).map_err(|_| WireError::ElementTooLong {
        tag,
        length: bytes.len(),
    })?;
    out.put_u8(id);
    out.put_u16(len);
    out.put_slice(bytes);
    Ok(())
}

/// The PASSWORD element's text: the authentication string as the phone
/// typed it. Debug never shows it.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Password(Bytes);

impl Password {
    /// A password from its bytes (without the terminating NUL).
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        Password(bytes.into())
    }

    /// The empty string a phone sends in null-string mode (a lone NUL on
    /// the wire).
    pub fn empty() -> Self {
        Password(Bytes::new())
    }

    /// The bytes, without the terminating NUL. Handle with care: this is a
    /// secret.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Whether it is the empty (null) string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("Password(empty)")
        } else {
            f.write_str("Password(<redacted>)")
        }
    }
}
