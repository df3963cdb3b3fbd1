//! The one error type of this crate.

use std::fmt;
use std::path::PathBuf;

use crate::tags::{DigestAlgorithm, HeaderTag, RecordTag, Role};

/// Where in a file an element lies: the header, or one record of a trust
/// list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Place {
    /// The signed-file header (before the first record or the payload).
    Header,
    /// A trust-list record, by index (0 = the first record after the header).
    Record(usize),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Header => f.write_str("header"),
            Place::Record(i) => write!(f, "record {i}"),
        }
    }
}

/// Why a provisioning file could not be read, built, verified or decrypted.
///
/// Errors about bytes say where: `offset` counts bytes from the start of the
/// file, `place` says whether that is in the header or in which record
/// (0-based), and tags are named. [`ProvisioningError::File`] adds the file
/// name when the caller knows it ([`ProvisioningError::in_file`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProvisioningError {
    /// The file ends before a structure it has started.
    #[error("offset {offset}: the file ends inside the {what} ({needed} more byte(s) needed)")]
    Truncated {
        /// Where the incomplete structure starts.
        offset: usize,
        /// What was being read.
        what: &'static str,
        /// How many more bytes it needs.
        needed: usize,
    },

    /// The file does not start with elements 1 (version) and 2 (header length).
    #[error("offset {offset}: expected header element {expected}, found tag {found}")]
    BadHeaderStart {
        /// Where the element starts.
        offset: usize,
        /// The element that must be there.
        expected: HeaderTag,
        /// The tag found instead.
        found: HeaderTag,
    },

    /// The header length (element 2) is shorter than its first two elements
    /// or longer than the file.
    #[error("offset 5: header length {declared} is impossible for a {file_len}-byte file")]
    BadHeaderLength {
        /// The declared header length.
        declared: u16,
        /// The file's length.
        file_len: usize,
    },

    /// An element's 3-byte tag and length do not fit before the end of the
    /// header or record.
    #[error("offset {offset}: {place}: {remaining} byte(s) left, too few for an element header")]
    TruncatedElementHeader {
        /// Where the partial element header starts.
        offset: usize,
        /// Header or record.
        place: Place,
        /// Bytes left in the header or record.
        remaining: usize,
    },

    /// A header element's value runs past the end of the header.
    #[error(
        "offset {offset}: header element {tag} declares {declared} byte(s) but only {available} remain in the header"
    )]
    HeaderElementOverrun {
        /// Where the element starts.
        offset: usize,
        /// Its tag.
        tag: HeaderTag,
        /// Its declared length.
        declared: usize,
        /// Bytes left in the header after its tag and length.
        available: usize,
    },

    /// A record element's value runs past the end of its record.
    #[error(
        "offset {offset}: record {record}: element {tag} declares {declared} byte(s) but only {available} remain in the record"
    )]
    RecordElementOverrun {
        /// Where the element starts.
        offset: usize,
        /// The record's index.
        record: usize,
        /// Its tag.
        tag: RecordTag,
        /// Its declared length.
        declared: usize,
        /// Bytes left in the record after its tag and length.
        available: usize,
    },

    /// A record does not start with its length element (tag 1, 2 bytes).
    #[error(
        "offset {offset}: record {record} starts with tag {found} (length {length}), not RECORD_LENGTH (length 2)"
    )]
    BadRecordStart {
        /// Where the record starts.
        offset: usize,
        /// The record's index.
        record: usize,
        /// The tag found.
        found: RecordTag,
        /// The length that element declares.
        length: u16,
    },

    /// A record's declared length is shorter than its length element or runs
    /// past the end of the file.
    #[error(
        "offset {offset}: record {record} declares {declared} byte(s) but {available} remain in the file"
    )]
    BadRecordLength {
        /// Where the record starts.
        offset: usize,
        /// The record's index.
        record: usize,
        /// The declared record length.
        declared: u16,
        /// Bytes left in the file from the record's start.
        available: usize,
    },

    /// A fixed-size header element has the wrong length.
    #[error("offset {offset}: header element {tag} has {found} value byte(s), expected {expected}")]
    BadHeaderElementLength {
        /// Where the element starts.
        offset: usize,
        /// Its tag.
        tag: HeaderTag,
        /// Expected value length.
        expected: usize,
        /// Found value length.
        found: usize,
    },

    /// A fixed-size record element has the wrong length.
    #[error(
        "offset {offset}: record {record}: element {tag} has {found} value byte(s), expected {expected}"
    )]
    BadRecordElementLength {
        /// Where the element starts.
        offset: usize,
        /// The record's index.
        record: usize,
        /// Its tag.
        tag: RecordTag,
        /// Expected value length.
        expected: usize,
        /// Found value length.
        found: usize,
    },

    /// An element appears twice where it may appear once.
    #[error("offset {offset}: {place}: element {tag} appears a second time")]
    DuplicateElement {
        /// Where the second occurrence starts.
        offset: usize,
        /// Header or record.
        place: Place,
        /// The repeated tag, by name.
        tag: String,
    },

    /// A required element is missing.
    #[error("{place}: required element {tag} is missing")]
    MissingElement {
        /// Header or record.
        place: Place,
        /// The missing tag, by name.
        tag: String,
    },

    /// A text element (name, file name) is not NUL-terminated UTF-8.
    #[error("offset {offset}: {place}: element {tag} is not NUL-terminated UTF-8 text")]
    NotText {
        /// Where the element starts.
        offset: usize,
        /// Header or record.
        place: Place,
        /// The tag, by name.
        tag: String,
    },

    /// A record's certificate (element 9) is not a DER X.509 certificate.
    #[error("offset {offset}: record {record}: the certificate does not parse: {source}")]
    BadCertificate {
        /// Where the certificate element starts.
        offset: usize,
        /// The record's index.
        record: usize,
        /// Why it does not parse.
        source: capf_ca::CaError,
    },

    /// The file has no header element for the encryption it is read as
    /// (an `.enc.sgn` without element 25, say).
    #[error("header: not an encrypted file: element {tag} is missing")]
    NotEncrypted {
        /// The missing tag.
        tag: HeaderTag,
    },

    /// A certificate cannot sign these files: its key is EC. Phones and the
    /// reference tools verify trust lists and `.sgn` files with RSA only.
    #[error("{subject}: the signer's key is EC; trust lists and signed files need an RSA signer")]
    EcSigner {
        /// The signing certificate's subject.
        subject: String,
    },

    /// A certificate holds a key that is neither RSA nor EC.
    #[error("{subject}: unsupported public key algorithm {oid}")]
    UnsupportedKey {
        /// The certificate's subject.
        subject: String,
        /// The key's algorithm OID.
        oid: String,
    },

    /// An RSA signing key whose size has no modulus code (512, 1024, 2048 or
    /// 4096 bits).
    #[error(
        "{subject}: a {bits}-bit RSA key cannot sign these files (512, 1024, 2048 or 4096 bits)"
    )]
    UnsupportedKeySize {
        /// The signing certificate's subject.
        subject: String,
        /// The key size in bits.
        bits: usize,
    },

    /// The private key does not belong to the certificate.
    #[error("{subject}: the private key does not match the certificate's public key")]
    KeyMismatch {
        /// The certificate's subject.
        subject: String,
    },

    /// PEM text could not be read.
    #[error("{what}: {reason}")]
    Pem {
        /// Which input.
        what: String,
        /// What is wrong.
        reason: String,
    },

    /// A private or public key could not be decoded or used.
    #[error("{what}: {reason}")]
    Key {
        /// Which key, doing what.
        what: String,
        /// Why it failed.
        reason: String,
    },

    /// The certificate layer failed.
    #[error("{what}: {source}")]
    Certificate {
        /// Which certificate, doing what.
        what: String,
        /// The underlying error.
        source: capf_ca::CaError,
    },

    /// A digest algorithm this crate cannot use here (building: SHA-1 and
    /// SHA-512; verifying: SHA-1, SHA-256, SHA-512).
    #[error("{place}: digest algorithm {digest} is not supported here")]
    UnsupportedDigest {
        /// Where the digest was named.
        place: Place,
        /// The digest code.
        digest: DigestAlgorithm,
    },

    /// A trust list may hold at most two SAST records; phones refuse more.
    #[error("a trust list holds at most 2 SAST records; this one would hold {count}")]
    TooManySast {
        /// How many SAST entries were given.
        count: usize,
    },

    /// An EC certificate in a trust list needs signer version 1.1.
    #[error(
        "record {record} ({role}, {subject}): an EC certificate needs signer version 1.1; phones ignore it in a 1.0 list"
    )]
    EcNeedsSignerVersion11 {
        /// The record's index.
        record: usize,
        /// Its role.
        role: Role,
        /// The certificate's subject.
        subject: String,
    },

    /// A role the builder does not write.
    #[error("record {record}: role {role} is not one phones are known to use")]
    UnsupportedRole {
        /// The record's index.
        record: usize,
        /// The role.
        role: Role,
    },

    /// The trust list's signer is not one of its SAST records.
    #[error(
        "the signer {subject} is not a SAST record of this trust list: add its certificate with role SAST"
    )]
    SignerNotInList {
        /// The signer's subject.
        subject: String,
    },

    /// A trust list whose signer version (tag 28) is neither 1.0 nor 1.1
    /// cannot be written again.
    #[error("signer version {version} is not one this crate writes (1.0 or 1.1)")]
    UnsupportedSignerVersion {
        /// The version in the header.
        version: crate::header::Version,
    },

    /// A trust list without records.
    #[error("a trust list needs at least one record (its SAST)")]
    NoRecords,

    /// A value is too long for its 16-bit length field.
    #[error("{what} would be {length} bytes; the format carries at most 65535")]
    TooLong {
        /// What is too long (an element, a record, the header).
        what: String,
        /// The length it would need.
        length: usize,
    },

    /// A text value that cannot be written (empty, or holding a NUL byte).
    #[error("{what} {value:?} cannot be written: {reason}")]
    BadText {
        /// Which value.
        what: &'static str,
        /// The value.
        value: String,
        /// Why not.
        reason: &'static str,
    },

    /// No SAST record has the serial that the header names, so the list
    /// cannot be checked by itself (tlvfile: "Missing record with role SAST").
    #[error("{file_name}: no SAST record has the signer's serial {serial}")]
    MissingSignerRecord {
        /// The file name from the header.
        file_name: String,
        /// The header's signer serial, hex.
        serial: String,
    },

    /// The header names a different signer than the certificate given to
    /// verify with.
    #[error(
        "{file_name}: signed by serial {header_serial} ({header_signer}), not by the given certificate (serial {given_serial})"
    )]
    SignerMismatch {
        /// The file name from the header.
        file_name: String,
        /// The header's signer name.
        header_signer: String,
        /// The header's signer serial, hex.
        header_serial: String,
        /// The given certificate's serial, hex.
        given_serial: String,
    },

    /// The signature does not verify: the file was changed, or signed by
    /// another key.
    #[error("{file_name}: invalid signature (the file was changed or signed by another key)")]
    BadSignature {
        /// The file name from the header.
        file_name: String,
    },

    /// RSA signing or encryption failed.
    #[error("{what}: {reason}")]
    Crypto {
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },

    /// The operating system's random number generator failed.
    #[error("random number generator failed: {0}")]
    Rng(String),

    /// Encrypting a config for an EC phone certificate: only RSA certificates
    /// can receive an encrypted config.
    #[error(
        "{subject}: the phone certificate has an EC key; an encrypted config needs an RSA LSC or MIC"
    )]
    EcPhoneCertificate {
        /// The phone certificate's subject.
        subject: String,
    },

    /// Decrypting with a key that is not RSA.
    #[error("the phone key is {spec}; encrypted configs are decrypted with an RSA key")]
    EcPhoneKey {
        /// The key given.
        spec: capf_ca::KeySpec,
    },

    /// An encryption element of an `.enc.sgn` has an impossible value.
    #[error("offset {offset}: header element {tag}: {problem}")]
    BadEncryptionElement {
        /// Where the element starts.
        offset: usize,
        /// Its tag.
        tag: HeaderTag,
        /// What is wrong.
        problem: String,
    },

    /// Decryption failed: the key is not the one the config was encrypted
    /// for, or the file is damaged.
    #[error("{file_name}: decryption failed: {reason}")]
    DecryptionFailed {
        /// The file name from the header.
        file_name: String,
        /// Why.
        reason: String,
    },

    /// The phone configuration is not XML with a `<device>` root.
    #[error("configuration XML: {reason}")]
    ConfigXml {
        /// What is wrong, with the position when the parser gives one.
        reason: String,
    },

    /// A timestamp that does not fit the header's u32 seconds.
    #[error("timestamp out of range for a 32-bit Unix time")]
    TimestampOutOfRange,

    /// Another error, about a named file.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: Box<ProvisioningError>,
    },
}

impl ProvisioningError {
    /// The same error, naming the file it is about.
    pub fn in_file(self, path: impl Into<PathBuf>) -> Self {
        ProvisioningError::File {
            path: path.into(),
            source: Box::new(self),
        }
    }

    /// The byte offset the error names, if any.
    pub fn offset(&self) -> Option<usize> {
        match self {
            Self::Truncated { offset, .. }
            | Self::BadHeaderStart { offset, .. }
            | Self::TruncatedElementHeader { offset, .. }
            | Self::HeaderElementOverrun { offset, .. }
            | Self::RecordElementOverrun { offset, .. }
            | Self::BadRecordStart { offset, .. }
            | Self::BadRecordLength { offset, .. }
            | Self::BadHeaderElementLength { offset, .. }
            | Self::BadRecordElementLength { offset, .. }
            | Self::DuplicateElement { offset, .. }
            | Self::NotText { offset, .. }
            | Self::BadCertificate { offset, .. }
            | Self::BadEncryptionElement { offset, .. } => Some(*offset),
            Self::BadHeaderLength { .. } => Some(5),
            Self::File { source, .. } => source.offset(),
            _ => None,
        }
    }

    /// Whether this is a signature that does not verify (as opposed to a
    /// file that cannot be read or a signer that cannot be found).
    pub fn is_bad_signature(&self) -> bool {
        match self {
            Self::BadSignature { .. } => true,
            Self::File { source, .. } => source.is_bad_signature(),
            _ => false,
        }
    }
}

/// This crate's result type.
pub type Result<T, E = ProvisioningError> = std::result::Result<T, E>;
