//! Trust lists: `ITLFile.tlv` and `CTLFile.tlv` (one format).

use capf_ca::CaCertificate;

use crate::cert::{CertFields, KeyAlgorithm, key_algorithm, same_serial};
use crate::codec::{RawHeader, RawRecord, RecordElement, nul_terminated, put_element, read_text};
use crate::error::{Place, ProvisioningError, Result};
use crate::header::{HeaderSpec, SignedHeader, SignerVersion, Version, build_signed, check_text};
use crate::signer::FileSigner;
use crate::tags::{DigestAlgorithm, RecordTag, Role};

/// The most SAST records a phone accepts in one trust list.
pub const MAX_SAST_RECORDS: usize = 2;

/// Size past which phones fail to load a trust list (CUCM warns at more than
/// 39 certificates, when the ITL passes 64 KB).
pub const PHONE_MAX_TRUST_LIST_LEN: usize = 64 * 1024;

/// One record of a trust list: a certificate and the role it is trusted for.
///
/// Everything but the certificate is a copy of some part of it (as the
/// builder writes it), except the Cisco-only elements (DNS name, IP address,
/// certificate hash), which the builder never writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustRecord {
    /// Tag 4: the role.
    pub role: Role,
    /// Tag 3: the certificate's subject.
    pub subject_name: String,
    /// Tag 5: the certificate's issuer.
    pub issuer_name: String,
    /// Tag 6: the certificate's serial, minimal big-endian.
    pub serial: Vec<u8>,
    /// Tag 7: RSA: PKCS#1 RSAPublicKey DER; EC: the X9.62 point.
    pub public_key: Vec<u8>,
    /// Tag 8: the certificate's own signature value (absent in Cisco's
    /// hardware-eToken SAST records).
    pub signature: Option<Vec<u8>>,
    /// Tag 9: the certificate.
    pub certificate: CaCertificate,
    /// Tag 2 (Cisco): host name; empty for an eToken SAST.
    pub dns_name: Option<String>,
    /// Tag 10 (Cisco): IPv4 address bytes.
    pub ip_address: Option<Vec<u8>>,
    /// Tag 11: a certificate hash (meaning uncertain).
    pub certificate_hash: Option<Vec<u8>>,
    /// Tag 12: probably the algorithm of tag 11.
    pub hash_algorithm: Option<DigestAlgorithm>,
    /// Elements with tags this crate does not know, in file order.
    pub other: Vec<(RecordTag, Vec<u8>)>,
}

impl TrustRecord {
    /// The record a builder writes for `certificate` with `role`.
    pub fn from_certificate(role: Role, certificate: &CaCertificate) -> Result<TrustRecord> {
        let f = CertFields::of(certificate)?;
        Ok(TrustRecord {
            role,
            subject_name: f.subject,
            issuer_name: f.issuer,
            serial: f.serial,
            public_key: f.public_key,
            signature: Some(f.signature),
            certificate: certificate.clone(),
            dns_name: None,
            ip_address: None,
            certificate_hash: None,
            hash_algorithm: None,
            other: Vec::new(),
        })
    }

    /// The record's key algorithm, from its certificate ("Key Algorithm").
    pub fn key_algorithm(&self) -> KeyAlgorithm {
        key_algorithm(&self.certificate)
    }

    /// The serial in lower-case hex.
    pub fn serial_hex(&self) -> String {
        hex::encode(&self.serial)
    }

    /// SHA-1 of the certificate's DER, lower-case hex (tlvfile's
    /// "Certificate Hash").
    pub fn certificate_sha1_hex(&self) -> String {
        hex::encode(self.certificate.fingerprint_sha1())
    }

    /// The record's bytes: tags 1, 2, 3, 5, 6, 4, 7, 8, 9 (tlvfile's order,
    /// with Cisco's 2 after the length), then 10, 11, 12 and unknown tags.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut body = Vec::with_capacity(2048);
        let mut put =
            |tag: RecordTag, value: &[u8]| put_element(&mut body, tag.code(), value, tag.name());
        if let Some(dns) = &self.dns_name {
            put(RecordTag::DnsName, &nul_terminated(dns))?;
        }
        put(RecordTag::SubjectName, &nul_terminated(&self.subject_name))?;
        put(RecordTag::IssuerName, &nul_terminated(&self.issuer_name))?;
        put(RecordTag::SerialNumber, &self.serial)?;
        put(RecordTag::Role, &self.role.code().to_be_bytes())?;
        put(RecordTag::PublicKey, &self.public_key)?;
        if let Some(sig) = &self.signature {
            put(RecordTag::Signature, sig)?;
        }
        put(RecordTag::Certificate, self.certificate.der())?;
        if let Some(ip) = &self.ip_address {
            put(RecordTag::IpAddress, ip)?;
        }
        if let Some(hash) = &self.certificate_hash {
            put(RecordTag::CertificateHash, hash)?;
        }
        if let Some(alg) = self.hash_algorithm {
            put(RecordTag::HashAlgorithm, &[alg.code()])?;
        }
        for (tag, value) in &self.other {
            put(*tag, value)?;
        }
        let total = body.len() + 5;
        let length = u16::try_from(total).map_err(|_| ProvisioningError::TooLong {
            what: format!("record for {} ({})", self.subject_name, self.role),
            length: total,
        })?;
        let mut out = Vec::with_capacity(total);
        put_element(
            &mut out,
            RecordTag::RecordLength.code(),
            &length.to_be_bytes(),
            None,
        )?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// The record's length in bytes (what tlvfile prints as "Record Length";
    /// independent of element order).
    pub fn encoded_len(&self) -> usize {
        let text = |s: &str| 3 + s.len() + 1;
        let opt = |v: &Option<Vec<u8>>| v.as_ref().map_or(0, |v| 3 + v.len());
        5 + self.dns_name.as_deref().map_or(0, text)
            + text(&self.subject_name)
            + text(&self.issuer_name)
            + 3
            + self.serial.len()
            + 5
            + 3
            + self.public_key.len()
            + opt(&self.signature)
            + 3
            + self.certificate.der().len()
            + opt(&self.ip_address)
            + opt(&self.certificate_hash)
            + self.hash_algorithm.map_or(0, |_| 4)
            + self.other.iter().map(|(_, v)| 3 + v.len()).sum::<usize>()
    }

    fn from_raw(index: usize, raw: &RawRecord) -> Result<TrustRecord> {
        let place = Place::Record(index);
        let mut seen: Vec<RecordTag> = Vec::new();
        let mut role = None;
        let mut subject = None;
        let mut issuer = None;
        let mut serial = None;
        let mut public_key = None;
        let mut signature = None;
        let mut certificate = None;
        let mut dns_name = None;
        let mut ip_address = None;
        let mut certificate_hash = None;
        let mut hash_algorithm = None;
        let mut other = Vec::new();
        let text = |e: &RecordElement| {
            read_text(&e.value).ok_or_else(|| ProvisioningError::NotText {
                offset: e.offset,
                place,
                tag: e.tag.to_string(),
            })
        };
        let fixed = |e: &RecordElement, n: usize| {
            if e.value.len() == n {
                Ok(())
            } else {
                Err(ProvisioningError::BadRecordElementLength {
                    offset: e.offset,
                    record: index,
                    tag: e.tag,
                    expected: n,
                    found: e.value.len(),
                })
            }
        };
        for e in &raw.elements {
            if !e.tag.is_unknown() {
                if seen.contains(&e.tag) || e.tag == RecordTag::RecordLength {
                    return Err(ProvisioningError::DuplicateElement {
                        offset: e.offset,
                        place,
                        tag: e.tag.to_string(),
                    });
                }
                seen.push(e.tag);
            }
            match e.tag {
                RecordTag::DnsName => dns_name = Some(text(e)?),
                RecordTag::SubjectName => subject = Some(text(e)?),
                RecordTag::Role => {
                    fixed(e, 2)?;
                    role = Some(Role::from(u16::from_be_bytes([e.value[0], e.value[1]])));
                }
                RecordTag::IssuerName => issuer = Some(text(e)?),
                RecordTag::SerialNumber => serial = Some(e.value.clone()),
                RecordTag::PublicKey => public_key = Some(e.value.clone()),
                RecordTag::Signature => signature = Some(e.value.clone()),
                RecordTag::Certificate => {
                    let cert = CaCertificate::from_der(&e.value, "trust-list record").map_err(
                        |source| ProvisioningError::BadCertificate {
                            offset: e.offset,
                            record: index,
                            source,
                        },
                    )?;
                    certificate = Some(cert);
                }
                RecordTag::IpAddress => ip_address = Some(e.value.clone()),
                RecordTag::CertificateHash => certificate_hash = Some(e.value.clone()),
                RecordTag::HashAlgorithm => {
                    fixed(e, 1)?;
                    hash_algorithm = Some(DigestAlgorithm::from(e.value[0]));
                }
                _ => other.push((e.tag, e.value.clone())),
            }
        }
        let missing = |tag: RecordTag| ProvisioningError::MissingElement {
            place,
            tag: tag.to_string(),
        };
        Ok(TrustRecord {
            role: role.ok_or_else(|| missing(RecordTag::Role))?,
            subject_name: subject.ok_or_else(|| missing(RecordTag::SubjectName))?,
            issuer_name: issuer.ok_or_else(|| missing(RecordTag::IssuerName))?,
            serial: serial.ok_or_else(|| missing(RecordTag::SerialNumber))?,
            public_key: public_key.ok_or_else(|| missing(RecordTag::PublicKey))?,
            signature,
            certificate: certificate.ok_or_else(|| missing(RecordTag::Certificate))?,
            dns_name,
            ip_address,
            certificate_hash,
            hash_algorithm,
            other,
        })
    }
}

/// A parsed trust list: the header and the records, with the bytes they
/// came from (to check the signature).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustList {
    /// The header.
    pub header: SignedHeader,
    /// The records, in file order.
    pub records: Vec<TrustRecord>,
    /// Each record's (offset, declared length) in the file.
    pub record_spans: Vec<(usize, u16)>,
    bytes: Vec<u8>,
}

impl TrustList {
    /// Reads a trust list.
    ///
    /// Takes what tlvfile and Cisco write: signer info in any order, no tag
    /// 28 (read as signer version 1.0), records with tags 2, 10, 11, 12 and
    /// in any order, SAST records without tag 8, `;`-separated names. Every
    /// record needs tags 3, 4, 5, 6, 7 and a certificate (9) that parses.
    /// The signature is not checked: see [`verify`](Self::verify).
    pub fn parse(bytes: &[u8]) -> Result<TrustList> {
        let raw = RawHeader::parse(bytes)?;
        let header = SignedHeader::from_raw(&raw)?;
        let raw_records = RawRecord::parse_all(bytes, usize::from(raw.length))?;
        let mut records = Vec::with_capacity(raw_records.len());
        let mut record_spans = Vec::with_capacity(raw_records.len());
        for (i, r) in raw_records.iter().enumerate() {
            records.push(TrustRecord::from_raw(i, r)?);
            record_spans.push((r.offset, r.length));
        }
        Ok(TrustList {
            header,
            records,
            record_spans,
            bytes: bytes.to_vec(),
        })
    }

    /// The file's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The signer version phones read: tag 28, or 1.0 when it is absent.
    pub fn signer_version(&self) -> Version {
        self.header.effective_signer_version()
    }

    /// The SAST record the header names (the first whose serial equals the
    /// header's, compared as integers), with its index.
    pub fn signer_record(&self) -> Option<(usize, &TrustRecord)> {
        self.records.iter().enumerate().find(|(_, r)| {
            r.role == Role::Sast && same_serial(&r.serial, &self.header.signer.serial)
        })
    }

    /// Checks the signature with the SAST record the header names, as
    /// tlvfile does; returns that record's index.
    ///
    /// This proves the list is intact and self-consistent; whether a phone
    /// accepts it depends on the SAST it already trusts
    /// ([`verify_with`](Self::verify_with)).
    pub fn verify(&self) -> Result<usize> {
        let (index, record) =
            self.signer_record()
                .ok_or_else(|| ProvisioningError::MissingSignerRecord {
                    file_name: self.header.file_name.clone(),
                    serial: self.header.signer.serial_hex(),
                })?;
        self.header
            .verify_with_key(&self.bytes, &record.certificate)?;
        Ok(index)
    }

    /// "Would a phone that trusts this SAST accept this list": the header
    /// must name `trusted_sast` (same serial) and the signature must verify
    /// with its key.
    pub fn verify_with(&self, trusted_sast: &CaCertificate) -> Result<()> {
        self.header.verify_signed_by(&self.bytes, trusted_sast)
    }

    /// The records' roles and certificates, in order.
    pub fn entries(&self) -> Vec<TrustEntry> {
        self.records
            .iter()
            .map(|r| TrustEntry {
                role: r.role,
                certificate: r.certificate.clone(),
            })
            .collect()
    }

    /// A builder that writes this list again (with the same signer, the same
    /// bytes when the list was written by tlvfile or by this crate). Cisco-only
    /// record elements are not carried over.
    ///
    /// Fails with [`ProvisioningError::UnsupportedSignerVersion`] if the
    /// header's signer version is neither 1.0 nor 1.1.
    pub fn to_builder(&self) -> Result<TrustListBuilder> {
        let v = self.signer_version();
        let signer_version = SignerVersion::from_version(v)
            .ok_or(ProvisioningError::UnsupportedSignerVersion { version: v })?;
        Ok(TrustListBuilder {
            file_name: self.header.file_name.clone(),
            timestamp: self.header.timestamp,
            signer_version,
            digest: self.header.digest,
            entries: self.entries(),
        })
    }
}

/// A certificate and the role a builder gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustEntry {
    /// The role.
    pub role: Role,
    /// The certificate.
    pub certificate: CaCertificate,
}

/// Writes a trust list as `tlvfile --build` does, byte for byte.
///
/// ```text
/// header   1 (1.2), 2, 28 (signer version), 3{4 name, 6 issuer, 5 serial},
///          7{8 digest}, 9{10 = 0, 11 size code}, 12 signature, 14 file name,
///          15 timestamp, 0x0D padding to a multiple of 4
/// records  one per entry, in order: 1, 3, 5, 6, 4, 7, 8, 9
/// ```
///
/// Refuses what phones refuse: an EC signer ([`FileSigner`] cannot hold
/// one), more than two SAST entries, an EC certificate with signer version
/// 1.0; and a signer that is not one of the SAST entries (the list could not
/// be checked by itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustListBuilder {
    /// Tag 14, the name the phone asks for: `ITLFile.tlv` (default) or
    /// `CTLFile.tlv`, also inside a per-device `ITLSEP<MAC>.tlv`.
    pub file_name: String,
    /// Tag 15, Unix seconds: given by the caller (no clock is read).
    pub timestamp: u32,
    /// Tag 28.
    pub signer_version: SignerVersion,
    /// Tag 8: SHA-1 (default) or SHA-512.
    pub digest: DigestAlgorithm,
    /// The records, in order.
    pub entries: Vec<TrustEntry>,
}

impl TrustListBuilder {
    /// An empty `ITLFile.tlv`, signer version 1.0, SHA-1, built at `timestamp`.
    pub fn new(timestamp: u32) -> TrustListBuilder {
        TrustListBuilder {
            file_name: "ITLFile.tlv".into(),
            timestamp,
            signer_version: SignerVersion::V1_0,
            digest: DigestAlgorithm::Sha1,
            entries: Vec::new(),
        }
    }

    /// Sets the file name (tag 14).
    #[must_use]
    pub fn file_name(mut self, name: impl Into<String>) -> Self {
        self.file_name = name.into();
        self
    }

    /// Sets the signer version (tag 28).
    #[must_use]
    pub fn signer_version(mut self, version: SignerVersion) -> Self {
        self.signer_version = version;
        self
    }

    /// Sets the digest (SHA-1 or SHA-512).
    #[must_use]
    pub fn digest(mut self, digest: DigestAlgorithm) -> Self {
        self.digest = digest;
        self
    }

    /// Adds a record.
    #[must_use]
    pub fn add(mut self, role: Role, certificate: CaCertificate) -> Self {
        self.entries.push(TrustEntry { role, certificate });
        self
    }

    /// Checks the rules without signing (what [`build`](Self::build)
    /// checks first).
    pub fn check(&self, signer: &FileSigner) -> Result<()> {
        if self.entries.is_empty() {
            return Err(ProvisioningError::NoRecords);
        }
        let sast = self.entries.iter().filter(|e| e.role == Role::Sast).count();
        if sast > MAX_SAST_RECORDS {
            return Err(ProvisioningError::TooManySast { count: sast });
        }
        for (i, e) in self.entries.iter().enumerate() {
            if !matches!(
                e.role,
                Role::Sast
                    | Role::Ccm
                    | Role::CcmTftp
                    | Role::Tftp
                    | Role::Capf
                    | Role::AppServer
                    | Role::Tvs
            ) {
                return Err(ProvisioningError::UnsupportedRole {
                    record: i,
                    role: e.role,
                });
            }
            match key_algorithm(&e.certificate) {
                KeyAlgorithm::Rsa => {}
                KeyAlgorithm::Ec => {
                    if self.signer_version == SignerVersion::V1_0 {
                        return Err(ProvisioningError::EcNeedsSignerVersion11 {
                            record: i,
                            role: e.role,
                            subject: e.certificate.subject(),
                        });
                    }
                }
                KeyAlgorithm::Other(oid) => {
                    return Err(ProvisioningError::UnsupportedKey {
                        subject: e.certificate.subject(),
                        oid,
                    });
                }
            }
        }
        if !self
            .entries
            .iter()
            .any(|e| e.role == Role::Sast && &e.certificate == signer.certificate())
        {
            return Err(ProvisioningError::SignerNotInList {
                subject: signer.certificate().subject(),
            });
        }
        check_text("file name", &self.file_name)?;
        Ok(())
    }

    /// The records this builder writes.
    pub fn records(&self) -> Result<Vec<TrustRecord>> {
        self.entries
            .iter()
            .map(|e| TrustRecord::from_certificate(e.role, &e.certificate))
            .collect()
    }

    /// Writes and signs the list with `signer` (a SAST among the entries).
    pub fn build(&self, signer: &FileSigner) -> Result<Vec<u8>> {
        self.check(signer)?;
        let mut body = Vec::new();
        for r in self.records()? {
            body.extend_from_slice(&r.encode()?);
        }
        build_signed(
            &HeaderSpec {
                version: Version::V1_2,
                signer_version: Some(self.signer_version.version()),
                digest: self.digest,
                file_name: &self.file_name,
                timestamp: self.timestamp,
                trailer: &[],
            },
            signer,
            &body,
        )
    }
}
