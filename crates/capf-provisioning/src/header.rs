//! The typed signed-file header shared by `.tlv`, `.sgn` and `.enc.sgn`,
//! how it is written and signed, and how its signature is checked.

use std::fmt;
use std::ops::Range;
use std::time::{SystemTime, UNIX_EPOCH};

use capf_ca::CaCertificate;

use crate::cert::{CertFields, same_serial};
use crate::codec::{
    ELEMENT_HEADER_LEN, HeaderItem, PADDING_BYTE, RawHeader, nul_terminated, put_element, read_text,
};
use crate::error::{Place, ProvisioningError, Result};
use crate::signer::{FileSigner, rsa_public_key, verify_parts};
use crate::tags::{DigestAlgorithm, HeaderTag};

/// A two-byte version, `major.minor` (header tags 1 and 28).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version {
    /// Major number.
    pub major: u8,
    /// Minor number.
    pub minor: u8,
}

impl Version {
    /// 1.0: `.sgn` header version, and signer version 1.0.
    pub const V1_0: Version = Version { major: 1, minor: 0 };
    /// 1.1: signer version that enables EC certificates.
    pub const V1_1: Version = Version { major: 1, minor: 1 };
    /// 1.2: the header version of every trust list.
    pub const V1_2: Version = Version { major: 1, minor: 2 };
    /// 2.0: `.enc.sgn` header version.
    pub const V2_0: Version = Version { major: 2, minor: 0 };

    fn bytes(self) -> [u8; 2] {
        [self.major, self.minor]
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The trust-list signer version a builder writes (header tag 28). 1.1
/// makes phones use EC certificates in the records (and try HTTPS
/// provisioning); the list itself is still RSA-signed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SignerVersion {
    /// 1.0: RSA certificates only.
    #[default]
    V1_0,
    /// 1.1: EC certificates allowed in records.
    V1_1,
}

impl SignerVersion {
    /// As written in the header.
    pub const fn version(self) -> Version {
        match self {
            SignerVersion::V1_0 => Version::V1_0,
            SignerVersion::V1_1 => Version::V1_1,
        }
    }

    /// The signer version a header value stands for, if it is 1.0 or 1.1.
    pub fn from_version(v: Version) -> Option<SignerVersion> {
        match v {
            Version::V1_0 => Some(SignerVersion::V1_0),
            Version::V1_1 => Some(SignerVersion::V1_1),
            _ => None,
        }
    }
}

impl fmt::Display for SignerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.version().fmt(f)
    }
}

/// Who signed a file, as the header names it (container 3: tags 4, 5, 6).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SignerId {
    /// Subject of the signing certificate (tag 4).
    pub name: String,
    /// Serial of the signing certificate, minimal big-endian (tag 5).
    pub serial: Vec<u8>,
    /// Issuer of the signing certificate (tag 6).
    pub issuer: String,
}

impl SignerId {
    /// The serial in lower-case hex, as tlvfile prints it.
    pub fn serial_hex(&self) -> String {
        hex::encode(&self.serial)
    }

    /// Whether the certificate has this serial (compared as integers).
    pub fn matches(&self, certificate: &CaCertificate) -> bool {
        same_serial(&self.serial, certificate.serial())
    }
}

/// The encryption elements of an `.enc.sgn` header (tags 16 to 27).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EncryptionInfo {
    /// Tag 18, 0 in every known file.
    pub unknown1: Option<u8>,
    /// Tag 19: the AES-CBC IV.
    pub iv: Vec<u8>,
    /// Tag 20: how many 0x0D bytes pad the plaintext (1 to 16).
    pub padding: u16,
    /// Tag 22, 0 in every known file.
    pub unknown2: Option<u8>,
    /// Tag 23: bit length of the wrapped key (the phone's RSA modulus size).
    pub key_size: Option<u16>,
    /// Tag 24: 1 in every known file.
    pub key_algorithm: Option<u8>,
    /// Tag 25: the AES key wrapped with the phone's RSA key (PKCS#1 v1.5).
    pub wrapped_key: Vec<u8>,
    /// Tag 26: digest of tag 27.
    pub digest: DigestAlgorithm,
    /// Tag 27: digest of the plaintext before padding.
    pub plaintext_digest: Vec<u8>,
}

/// A signed-file header, typed.
///
/// Read tolerantly: elements in any order (the signer info in tlvfile's
/// 4-6-5 or Cisco's 4-5-6), containers not checked, unknown tags kept in
/// [`other`](Self::other); a known value element twice is an error.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SignedHeader {
    /// Tag 1: 1.2 (trust list), 1.0 (.sgn) or 2.0 (.enc.sgn).
    pub version: Version,
    /// Tag 2: the header length, padding and signature included.
    pub length: u16,
    /// Tag 28 (trust lists): absent in Cisco's own files, read as 1.0.
    pub signer_version: Option<Version>,
    /// Tags 4, 5, 6.
    pub signer: SignerId,
    /// Tag 8.
    pub digest: DigestAlgorithm,
    /// Tag 10 (0 in every known file).
    pub signature_algorithm: Option<u8>,
    /// Tag 11: RSA size code (0 = 512, 1 = 1024, 2 = 2048, 3 = 4096 bits).
    pub modulus_code: Option<u8>,
    /// Tag 12.
    pub signature: Vec<u8>,
    /// Tag 14.
    pub file_name: String,
    /// Tag 15: Unix seconds.
    pub timestamp: u32,
    /// Tags 16 to 27 (.enc.sgn only).
    pub encryption: Option<EncryptionInfo>,
    /// How many 0x0D padding bytes the header holds.
    pub padding: usize,
    /// Elements with tags this crate does not know, in file order.
    pub other: Vec<(HeaderTag, Vec<u8>)>,
    /// Where element 12 (tag, length and value) lies in the file.
    signature_element: Range<usize>,
}

fn u8_value(e: &crate::codec::HeaderElement) -> Result<u8> {
    match e.value() {
        [b] => Ok(*b),
        v => Err(ProvisioningError::BadHeaderElementLength {
            offset: e.offset,
            tag: e.tag,
            expected: 1,
            found: v.len(),
        }),
    }
}

fn u16_value(e: &crate::codec::HeaderElement) -> Result<u16> {
    match e.value() {
        [a, b] => Ok(u16::from_be_bytes([*a, *b])),
        v => Err(ProvisioningError::BadHeaderElementLength {
            offset: e.offset,
            tag: e.tag,
            expected: 2,
            found: v.len(),
        }),
    }
}

fn version_value(e: &crate::codec::HeaderElement) -> Result<Version> {
    let v = u16_value(e)?.to_be_bytes();
    Ok(Version {
        major: v[0],
        minor: v[1],
    })
}

fn text_value(e: &crate::codec::HeaderElement) -> Result<String> {
    read_text(e.value()).ok_or_else(|| ProvisioningError::NotText {
        offset: e.offset,
        place: Place::Header,
        tag: e.tag.to_string(),
    })
}

fn missing(tag: HeaderTag) -> ProvisioningError {
    ProvisioningError::MissingElement {
        place: Place::Header,
        tag: tag.to_string(),
    }
}

impl SignedHeader {
    /// Reads and types the header at the start of `file`.
    ///
    /// Requires the signer serial (5), names (4, 6), digest (8), signature
    /// (12), file name (14) and timestamp (15); the encryption elements 19,
    /// 20, 25, 26 and 27 when any of 16 to 27 is there.
    pub fn parse(file: &[u8]) -> Result<SignedHeader> {
        let raw = RawHeader::parse(file)?;
        Self::from_raw(&raw)
    }

    /// Types a raw header.
    pub fn from_raw(raw: &RawHeader) -> Result<SignedHeader> {
        let mut seen: Vec<HeaderTag> = Vec::new();
        let mut version = None;
        let mut signer_version = None;
        let mut name = None;
        let mut serial = None;
        let mut issuer = None;
        let mut digest = None;
        let mut signature_algorithm = None;
        let mut modulus_code = None;
        let mut signature = None;
        let mut file_name = None;
        let mut timestamp = None;
        let mut padding = 0;
        let mut other = Vec::new();
        let mut enc = EncParts::default();
        for e in &raw.elements {
            match e.item {
                HeaderItem::Padding => {
                    padding += 1;
                    continue;
                }
                HeaderItem::Container { .. } => {
                    if e.tag.is_encryption() {
                        enc.present = true;
                    }
                    continue;
                }
                HeaderItem::Value(_) => {}
            }
            if !e.tag.is_unknown() {
                if seen.contains(&e.tag) {
                    return Err(ProvisioningError::DuplicateElement {
                        offset: e.offset,
                        place: Place::Header,
                        tag: e.tag.to_string(),
                    });
                }
                seen.push(e.tag);
            }
            match e.tag {
                HeaderTag::Version => version = Some(version_value(e)?),
                HeaderTag::Length => {}
                HeaderTag::SignerVersion => signer_version = Some(version_value(e)?),
                HeaderTag::SignerName => name = Some(text_value(e)?),
                HeaderTag::SerialNumber => serial = Some(e.value().to_vec()),
                HeaderTag::IssuerName => issuer = Some(text_value(e)?),
                HeaderTag::HashAlgorithm => digest = Some(DigestAlgorithm::from(u8_value(e)?)),
                HeaderTag::SignatureAlgorithm => signature_algorithm = Some(u8_value(e)?),
                HeaderTag::SignatureModulus => modulus_code = Some(u8_value(e)?),
                HeaderTag::Signature => {
                    signature = Some((
                        e.value().to_vec(),
                        e.offset..e.offset + ELEMENT_HEADER_LEN + e.value().len(),
                    ))
                }
                HeaderTag::FileName => file_name = Some(text_value(e)?),
                HeaderTag::Timestamp => match e.value() {
                    [a, b, c, d] => timestamp = Some(u32::from_be_bytes([*a, *b, *c, *d])),
                    v => {
                        return Err(ProvisioningError::BadHeaderElementLength {
                            offset: e.offset,
                            tag: e.tag,
                            expected: 4,
                            found: v.len(),
                        });
                    }
                },
                t if t.is_encryption() => enc.take(e)?,
                _ => other.push((e.tag, e.value().to_vec())),
            }
        }
        let (signature, signature_element) =
            signature.ok_or_else(|| missing(HeaderTag::Signature))?;
        Ok(SignedHeader {
            version: version.ok_or_else(|| missing(HeaderTag::Version))?,
            length: raw.length,
            signer_version,
            signer: SignerId {
                name: name.ok_or_else(|| missing(HeaderTag::SignerName))?,
                serial: serial.ok_or_else(|| missing(HeaderTag::SerialNumber))?,
                issuer: issuer.ok_or_else(|| missing(HeaderTag::IssuerName))?,
            },
            digest: digest.ok_or_else(|| missing(HeaderTag::HashAlgorithm))?,
            signature_algorithm,
            modulus_code,
            signature,
            file_name: file_name.ok_or_else(|| missing(HeaderTag::FileName))?,
            timestamp: timestamp.ok_or_else(|| missing(HeaderTag::Timestamp))?,
            encryption: enc.finish()?,
            padding,
            other,
            signature_element,
        })
    }

    /// Where element 12 (its tag, length and value) lies in the file: the
    /// bytes that the signature does not cover.
    pub fn signature_element(&self) -> Range<usize> {
        self.signature_element.clone()
    }

    /// The bytes the signature covers: the file without element 12, as two
    /// slices (before and after it).
    pub fn signed_parts<'a>(&self, file: &'a [u8]) -> [&'a [u8]; 2] {
        let r = &self.signature_element;
        let start = r.start.min(file.len());
        let end = r.end.clamp(start, file.len());
        [&file[..start], &file[end..]]
    }

    /// The signer version a trust-list reader takes: tag 28, or 1.0 when it
    /// is absent (Cisco's files).
    pub fn effective_signer_version(&self) -> Version {
        self.signer_version.unwrap_or(Version::V1_0)
    }

    /// Checks `file`'s signature (this header must be the one parsed from
    /// it) with the RSA key of `certificate`.
    ///
    /// Fails with [`ProvisioningError::BadSignature`] if it does not verify,
    /// [`ProvisioningError::EcSigner`] if the certificate is EC,
    /// [`ProvisioningError::UnsupportedDigest`] for an unknown digest.
    pub fn verify_with_key(&self, file: &[u8], certificate: &CaCertificate) -> Result<()> {
        let key = rsa_public_key(certificate)?;
        if verify_parts(&key, self.digest, &self.signed_parts(file), &self.signature)? {
            Ok(())
        } else {
            Err(ProvisioningError::BadSignature {
                file_name: self.file_name.clone(),
            })
        }
    }

    /// Checks that `certificate` is the signer this header names (same
    /// serial), then the signature with its key.
    pub fn verify_signed_by(&self, file: &[u8], certificate: &CaCertificate) -> Result<()> {
        if !self.signer.matches(certificate) {
            return Err(ProvisioningError::SignerMismatch {
                file_name: self.file_name.clone(),
                header_signer: self.signer.name.clone(),
                header_serial: self.signer.serial_hex(),
                given_serial: hex::encode(crate::cert::minimal_serial(certificate.serial())),
            });
        }
        self.verify_with_key(file, certificate)
    }
}

#[derive(Default)]
struct EncParts {
    present: bool,
    unknown1: Option<u8>,
    iv: Option<Vec<u8>>,
    padding: Option<u16>,
    unknown2: Option<u8>,
    key_size: Option<u16>,
    key_algorithm: Option<u8>,
    wrapped_key: Option<Vec<u8>>,
    digest: Option<DigestAlgorithm>,
    plaintext_digest: Option<Vec<u8>>,
}

impl EncParts {
    fn take(&mut self, e: &crate::codec::HeaderElement) -> Result<()> {
        self.present = true;
        match e.tag {
            HeaderTag::EncryptionUnknown1 => self.unknown1 = Some(u8_value(e)?),
            HeaderTag::EncryptionIv => self.iv = Some(e.value().to_vec()),
            HeaderTag::EncryptionPadding => self.padding = Some(u16_value(e)?),
            HeaderTag::EncryptionUnknown2 => self.unknown2 = Some(u8_value(e)?),
            HeaderTag::EncryptionKeySize => self.key_size = Some(u16_value(e)?),
            HeaderTag::EncryptionKeyAlgorithm => self.key_algorithm = Some(u8_value(e)?),
            HeaderTag::EncryptionKey => self.wrapped_key = Some(e.value().to_vec()),
            HeaderTag::EncryptionHashAlgorithm => {
                self.digest = Some(DigestAlgorithm::from(u8_value(e)?))
            }
            HeaderTag::EncryptionHash => self.plaintext_digest = Some(e.value().to_vec()),
            _ => {}
        }
        Ok(())
    }

    fn finish(self) -> Result<Option<EncryptionInfo>> {
        if !self.present {
            return Ok(None);
        }
        let need = |tag: HeaderTag| ProvisioningError::NotEncrypted { tag };
        Ok(Some(EncryptionInfo {
            unknown1: self.unknown1,
            iv: self.iv.ok_or_else(|| need(HeaderTag::EncryptionIv))?,
            padding: self
                .padding
                .ok_or_else(|| need(HeaderTag::EncryptionPadding))?,
            unknown2: self.unknown2,
            key_size: self.key_size,
            key_algorithm: self.key_algorithm,
            wrapped_key: self
                .wrapped_key
                .ok_or_else(|| need(HeaderTag::EncryptionKey))?,
            digest: self
                .digest
                .ok_or_else(|| need(HeaderTag::EncryptionHashAlgorithm))?,
            plaintext_digest: self
                .plaintext_digest
                .ok_or_else(|| need(HeaderTag::EncryptionHash))?,
        }))
    }
}

/// What a builder puts in a header besides the signer.
pub(crate) struct HeaderSpec<'a> {
    pub(crate) version: Version,
    pub(crate) signer_version: Option<Version>,
    pub(crate) digest: DigestAlgorithm,
    pub(crate) file_name: &'a str,
    pub(crate) timestamp: u32,
    /// Encryption elements, already encoded, written after the timestamp.
    pub(crate) trailer: &'a [u8],
}

/// Checks a text value that goes into a header or record.
pub(crate) fn check_text(what: &'static str, value: &str) -> Result<()> {
    if value.contains('\0') {
        return Err(ProvisioningError::BadText {
            what,
            value: value.to_owned(),
            reason: "it holds a NUL byte",
        });
    }
    Ok(())
}

/// Writes a whole signed file as the reference tools do: the header
/// (1, 2, [28], 3{4, 6, 5}, 7{8}, 9{10, 11}, 12, 14, 15, trailer, padding),
/// then `body`; the signature covers everything but element 12.
pub(crate) fn build_signed(
    spec: &HeaderSpec<'_>,
    signer: &FileSigner,
    body: &[u8],
) -> Result<Vec<u8>> {
    match spec.digest {
        DigestAlgorithm::Sha1 | DigestAlgorithm::Sha512 => {}
        other => {
            return Err(ProvisioningError::UnsupportedDigest {
                place: Place::Header,
                digest: other,
            });
        }
    }
    check_text("file name", spec.file_name)?;
    if spec.file_name.is_empty() {
        return Err(ProvisioningError::BadText {
            what: "file name",
            value: String::new(),
            reason: "it is empty",
        });
    }
    let f: &CertFields = signer.fields();
    let sig_len = signer.signature_len();
    let mut h = Vec::with_capacity(512);
    put_element(
        &mut h,
        HeaderTag::Version.code(),
        &spec.version.bytes(),
        None,
    )?;
    put_element(&mut h, HeaderTag::Length.code(), &[0, 0], None)?;
    if let Some(v) = spec.signer_version {
        put_element(&mut h, HeaderTag::SignerVersion.code(), &v.bytes(), None)?;
    }
    let name = nul_terminated(&f.subject);
    let issuer = nul_terminated(&f.issuer);
    let signer_info = 3 * ELEMENT_HEADER_LEN + name.len() + issuer.len() + f.serial.len();
    let signer_info = u16::try_from(signer_info).map_err(|_| ProvisioningError::TooLong {
        what: "signer info".into(),
        length: signer_info,
    })?;
    h.push(HeaderTag::SignerInfo.code());
    h.extend_from_slice(&signer_info.to_be_bytes());
    put_element(
        &mut h,
        HeaderTag::SignerName.code(),
        &name,
        Some("SIGNER_NAME"),
    )?;
    put_element(
        &mut h,
        HeaderTag::IssuerName.code(),
        &issuer,
        Some("ISSUER_NAME"),
    )?;
    put_element(&mut h, HeaderTag::SerialNumber.code(), &f.serial, None)?;
    h.extend_from_slice(&[HeaderTag::SignatureInfo.code(), 0, 15]);
    put_element(
        &mut h,
        HeaderTag::HashAlgorithm.code(),
        &[spec.digest.code()],
        None,
    )?;
    h.extend_from_slice(&[HeaderTag::SignatureAlgorithmInfo.code(), 0, 8]);
    put_element(&mut h, HeaderTag::SignatureAlgorithm.code(), &[0], None)?;
    put_element(
        &mut h,
        HeaderTag::SignatureModulus.code(),
        &[signer.modulus_code()],
        None,
    )?;
    let signature_at = h.len();
    put_element(
        &mut h,
        HeaderTag::FileName.code(),
        &nul_terminated(spec.file_name),
        Some("FILENAME"),
    )?;
    put_element(
        &mut h,
        HeaderTag::Timestamp.code(),
        &spec.timestamp.to_be_bytes(),
        None,
    )?;
    h.extend_from_slice(spec.trailer);
    while !(h.len() + ELEMENT_HEADER_LEN + sig_len).is_multiple_of(4) {
        h.push(PADDING_BYTE);
    }
    let header_len = h.len() + ELEMENT_HEADER_LEN + sig_len;
    let header_len = u16::try_from(header_len).map_err(|_| ProvisioningError::TooLong {
        what: "header".into(),
        length: header_len,
    })?;
    h[8..10].copy_from_slice(&header_len.to_be_bytes());
    let signature = signer.sign(spec.digest, &[&h, body])?;
    let mut out = Vec::with_capacity(h.len() + ELEMENT_HEADER_LEN + sig_len + body.len());
    out.extend_from_slice(&h[..signature_at]);
    put_element(&mut out, HeaderTag::Signature.code(), &signature, None)?;
    out.extend_from_slice(&h[signature_at..]);
    out.extend_from_slice(body);
    Ok(out)
}

/// A `SystemTime` as the header's u32 Unix seconds.
pub fn unix_timestamp(time: SystemTime) -> Result<u32> {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_err(|_| ProvisioningError::TimestampOutOfRange)?
        .as_secs();
    u32::try_from(secs).map_err(|_| ProvisioningError::TimestampOutOfRange)
}

impl RawHeader {
    /// Signs a file whose header is laid out by hand (another element
    /// order, Cisco's tags, no tag 28...): fills element 12 (which must be
    /// there) with `signer`'s signature over the header and `body`, after
    /// setting element 2 to the header's length. Padding is left as given.
    /// Returns the whole file; `self` is updated (offsets included).
    pub fn sign_with(
        &mut self,
        signer: &FileSigner,
        digest: DigestAlgorithm,
        body: &[u8],
    ) -> Result<Vec<u8>> {
        let sig_len = signer.signature_len();
        let mut found = false;
        for e in &mut self.elements {
            if e.tag == HeaderTag::Signature {
                e.item = HeaderItem::Value(vec![0; sig_len]);
                found = true;
            }
        }
        if !found {
            return Err(missing(HeaderTag::Signature));
        }
        let len: usize = self.elements.iter().map(|e| e.encoded_len()).sum();
        self.length = u16::try_from(len).map_err(|_| ProvisioningError::TooLong {
            what: "header".into(),
            length: len,
        })?;
        let mut offset = 0;
        for e in &mut self.elements {
            e.offset = offset;
            offset += e.encoded_len();
            if e.tag == HeaderTag::Length {
                e.item = HeaderItem::Value(self.length.to_be_bytes().to_vec());
            }
        }
        let mut file = self.encode()?;
        file.extend_from_slice(body);
        let typed = SignedHeader::from_raw(self)?;
        let signature = signer.sign(digest, &typed.signed_parts(&file))?;
        for e in &mut self.elements {
            if e.tag == HeaderTag::Signature {
                e.item = HeaderItem::Value(signature.clone());
            }
        }
        let mut out = self.encode()?;
        out.extend_from_slice(body);
        Ok(out)
    }
}
