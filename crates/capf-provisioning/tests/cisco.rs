//! What Cisco's own tools write (trust-list.md section D), synthesised from
//! the `show ctl` field lengths in TAC note 118893: no signer version (tag
//! 28), signer info in the order 4-5-6, `;`-separated names, records in tag
//! order 1-10 with a DNS name and an IP address, an eToken SAST record
//! without tag 8, tags 11/12 in a record. The parser takes it, the signature
//! checks, and the raw layer writes the same bytes back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use capf_ca::CaCertificate;
use capf_provisioning::{
    DigestAlgorithm, HeaderElement, HeaderItem, HeaderTag, RawHeader, RawRecord, RecordElement,
    RecordTag, Role, TrustList, Version,
};
use common::*;

fn value(tag: HeaderTag, v: &[u8]) -> HeaderElement {
    HeaderElement {
        offset: 0,
        tag,
        item: HeaderItem::Value(v.to_vec()),
    }
}

fn container(tag: HeaderTag, declared: u16) -> HeaderElement {
    HeaderElement {
        offset: 0,
        tag,
        item: HeaderItem::Container { declared },
    }
}

fn text(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// The certificate's serial without the DER sign byte.
fn serial(c: &CaCertificate) -> Vec<u8> {
    c.serial().iter().copied().skip_while(|&b| b == 0).collect()
}

/// Public key and signature bytes as tlvfile would write them, taken from
/// a tlvfile-made list (to keep this test independent of our builder).
fn key_and_signature(list: &TrustList, subject: &str) -> (Vec<u8>, Vec<u8>) {
    let r = list
        .records
        .iter()
        .find(|r| r.subject_name == subject)
        .unwrap();
    (r.public_key.clone(), r.signature.clone().unwrap())
}

fn record(elements: Vec<(RecordTag, Vec<u8>)>) -> RawRecord {
    let length = 5 + elements.iter().map(|(_, v)| 3 + v.len()).sum::<usize>();
    RawRecord {
        offset: 0,
        length: u16::try_from(length).unwrap(),
        elements: elements
            .into_iter()
            .map(|(tag, value)| RecordElement {
                offset: 0,
                tag,
                value,
            })
            .collect(),
    }
}

fn cisco_ctl() -> Vec<u8> {
    let ctl = TrustList::parse(CTL_PADDED).unwrap();
    let sast = cert(SAST_PEM);
    let sast2 = cert(SAST2_PEM);
    let tftp = cert(TFTP_PEM);
    let sast_name = "CN=SAST;OU=SAST;O=SAST";
    let mut elements = vec![
        value(HeaderTag::Version, &[1, 2]),
        value(HeaderTag::Length, &[0, 0]),
        container(HeaderTag::SignerInfo, 0),
        value(HeaderTag::SignerName, &text(sast_name)),
        value(HeaderTag::SerialNumber, &serial(&sast)),
        value(HeaderTag::IssuerName, &text(sast_name)),
        container(HeaderTag::SignatureInfo, 15),
        value(HeaderTag::HashAlgorithm, &[1]),
        container(HeaderTag::SignatureAlgorithmInfo, 8),
        value(HeaderTag::SignatureAlgorithm, &[0]),
        value(HeaderTag::SignatureModulus, &[2]),
        value(HeaderTag::Signature, &[0; 256]),
        value(HeaderTag::FileName, &text("CTLFile.tlv")),
        value(HeaderTag::Timestamp, &1_438_000_000u32.to_be_bytes()),
    ];
    let info: usize = elements[3..6].iter().map(HeaderElement::encoded_len).sum();
    elements[2].item = HeaderItem::Container {
        declared: u16::try_from(info).unwrap(),
    };
    while elements
        .iter()
        .map(HeaderElement::encoded_len)
        .sum::<usize>()
        % 4
        != 0
    {
        elements.push(HeaderElement {
            offset: 0,
            tag: HeaderTag::Padding,
            item: HeaderItem::Padding,
        });
    }
    let mut header = RawHeader {
        length: 0,
        elements,
    };

    let (sast_key, sast_sig) = key_and_signature(&ctl, "CN=SAST,O=SAST,OU=SAST");
    let (sast2_key, _) = key_and_signature(&ctl, "CN=SAST2,O=SAST,OU=SAST");
    let (tftp_key, tftp_sig) = key_and_signature(&ctl, "CN=TFTP,O=TFTP,OU=TFTP");
    let records = [
        // The publisher as SAST: Cisco's order 1-10, DNS name and IP address.
        record(vec![
            (RecordTag::DnsName, text("cucm-1051-a-pub")),
            (RecordTag::SubjectName, text(sast_name)),
            (RecordTag::Role, vec![0, 0]),
            (RecordTag::IssuerName, text(sast_name)),
            (RecordTag::SerialNumber, serial(&sast)),
            (RecordTag::PublicKey, sast_key),
            (RecordTag::Signature, sast_sig),
            (RecordTag::Certificate, sast.der().to_vec()),
            (RecordTag::IpAddress, vec![10, 48, 47, 153]),
        ]),
        // A hardware eToken SAST: empty DNS name, no tag 8.
        record(vec![
            (RecordTag::DnsName, text("")),
            (
                RecordTag::SubjectName,
                text("cn=\"SAST2\";ou=SAST;o=\"SAST"),
            ),
            (RecordTag::Role, vec![0, 0]),
            (RecordTag::IssuerName, text("cn=\"SAST2\";ou=SAST;o=\"SAST")),
            (RecordTag::SerialNumber, serial(&sast2)),
            (RecordTag::PublicKey, sast2_key),
            (RecordTag::Certificate, sast2.der().to_vec()),
            (RecordTag::IpAddress, vec![0, 0, 0, 0]),
        ]),
        // CCM+TFTP with a certificate hash and its algorithm (tags 11, 12).
        record(vec![
            (RecordTag::DnsName, text("cucm-1051-a-pub")),
            (RecordTag::SubjectName, text("CN=TFTP;OU=TFTP;O=TFTP")),
            (RecordTag::Role, vec![0, 2]),
            (RecordTag::IssuerName, text("CN=TFTP;OU=TFTP;O=TFTP")),
            (RecordTag::SerialNumber, serial(&tftp)),
            (RecordTag::PublicKey, tftp_key),
            (RecordTag::Signature, tftp_sig),
            (RecordTag::Certificate, tftp.der().to_vec()),
            (RecordTag::IpAddress, vec![10, 48, 47, 153]),
            (RecordTag::CertificateHash, tftp.fingerprint_sha1().to_vec()),
            (RecordTag::HashAlgorithm, vec![1]),
        ]),
    ];
    let body: Vec<u8> = records.iter().flat_map(|r| r.encode().unwrap()).collect();
    header
        .sign_with(&signer(SAST_PEM), DigestAlgorithm::Sha1, &body)
        .unwrap()
}

#[test]
fn parses_and_verifies_a_cisco_style_ctl() {
    let bytes = cisco_ctl();
    let list = TrustList::parse(&bytes).unwrap();
    let h = &list.header;
    assert_eq!(h.version, Version::V1_2);
    assert_eq!(h.signer_version, None);
    assert_eq!(list.signer_version(), Version::V1_0);
    assert_eq!(h.signer.name, "CN=SAST;OU=SAST;O=SAST");
    assert_eq!(h.signer.issuer, "CN=SAST;OU=SAST;O=SAST");
    assert_eq!(h.signer.serial_hex(), "2787202eabe44f81e7ebaee6997b7e50");
    assert_eq!(h.file_name, "CTLFile.tlv");
    assert_eq!(usize::from(h.length) % 4, 0);
    assert_eq!(list.records.len(), 3);

    let pub_ = &list.records[0];
    assert_eq!(pub_.role, Role::Sast);
    assert_eq!(pub_.dns_name.as_deref(), Some("cucm-1051-a-pub"));
    assert_eq!(pub_.ip_address.as_deref(), Some(&[10, 48, 47, 153][..]));
    assert_eq!(pub_.subject_name, "CN=SAST;OU=SAST;O=SAST");

    let etoken = &list.records[1];
    assert_eq!(etoken.role, Role::Sast);
    assert_eq!(etoken.dns_name.as_deref(), Some(""));
    assert_eq!(etoken.signature, None);
    assert_eq!(etoken.subject_name, "cn=\"SAST2\";ou=SAST;o=\"SAST");

    let tftp = &list.records[2];
    assert_eq!(tftp.role, Role::CcmTftp);
    assert_eq!(
        tftp.certificate_hash.as_deref(),
        Some(&cert(TFTP_PEM).fingerprint_sha1()[..])
    );
    assert_eq!(tftp.hash_algorithm, Some(DigestAlgorithm::Sha1));

    // Lengths add up as in Cisco's listing: each record counts its own
    // length element.
    for (r, (_, len)) in list.records.iter().zip(&list.record_spans) {
        assert_eq!(r.encoded_len(), usize::from(*len));
    }
    assert_eq!(list.verify().unwrap(), 0);
    list.verify_with(&cert(SAST_PEM)).unwrap();

    // The raw layer writes the same bytes back.
    let raw = RawHeader::parse(&bytes).unwrap();
    let records = RawRecord::parse_all(&bytes, usize::from(raw.length)).unwrap();
    let mut again = raw.encode().unwrap();
    for r in &records {
        again.extend_from_slice(&r.encode().unwrap());
    }
    assert_eq!(again, bytes);

    // Rewritten by our builder (tlvfile's layout), it still verifies.
    let rebuilt = list.to_builder().unwrap().build(&signer(SAST_PEM)).unwrap();
    let rebuilt = TrustList::parse(&rebuilt).unwrap();
    rebuilt.verify().unwrap();
    assert_eq!(rebuilt.entries(), list.entries());
    assert_eq!(rebuilt.records[0].subject_name, "CN=SAST,O=SAST,OU=SAST");
}

#[test]
fn unknown_tags_are_kept_not_fatal() {
    let bytes = cisco_ctl();
    let mut raw = RawHeader::parse(&bytes).unwrap();
    let mut records = RawRecord::parse_all(&bytes, usize::from(raw.length)).unwrap();
    records[2].elements.push(RecordElement {
        offset: 0,
        tag: RecordTag::from(40),
        value: vec![1, 2, 3],
    });
    records[2].length += 6;
    let padding = raw
        .elements
        .iter()
        .position(|e| e.tag == HeaderTag::Padding)
        .unwrap_or(raw.elements.len());
    raw.elements
        .insert(padding, value(HeaderTag::from(99), &[7]));
    // Keep the header a multiple of 4: one more element of 4 bytes.
    let body: Vec<u8> = records.iter().flat_map(|r| r.encode().unwrap()).collect();
    let bytes = raw
        .sign_with(&signer(SAST_PEM), DigestAlgorithm::Sha1, &body)
        .unwrap();
    let list = TrustList::parse(&bytes).unwrap();
    assert_eq!(list.header.other, vec![(HeaderTag::Unknown(99), vec![7])]);
    assert_eq!(
        list.records[2].other,
        vec![(RecordTag::Unknown(40), vec![1, 2, 3])]
    );
    list.verify().unwrap();
}
