//! What phones refuse, the builder and the signer refuse too, with errors
//! that say why: an EC signer, a third SAST, an EC certificate in a 1.0
//! list, an EC phone certificate for an encrypted config; and the other
//! ways a file cannot be built, verified or decrypted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use capf_ca::{EcCurve, KeySpec, PrivateKey};
use capf_provisioning::{
    DigestAlgorithm, EncryptedConfig, FileSigner, ProvisioningError, Role, SignedFile,
    SignerVersion, TrustList, TrustListBuilder, encrypt_config,
};
use common::*;

#[test]
fn an_ec_signer_is_refused() {
    // sast-ec.pem: what `tlvfile --build` refuses ("No RSA public-key").
    let e = FileSigner::from_pem(SAST_EC_PEM, "sast-ec.pem").unwrap_err();
    assert!(
        matches!(&e, ProvisioningError::EcSigner { subject } if subject.contains("SAST-EC")),
        "{e}"
    );
    assert!(e.to_string().contains("need an RSA signer"), "{e}");
    let key = PrivateKey::generate(KeySpec::Ec(EcCurve::P256)).unwrap();
    let e = FileSigner::new(cert(SAST_EC_PEM), &key).unwrap_err();
    assert!(matches!(e, ProvisioningError::EcSigner { .. }), "{e}");
    // An RSA certificate with an EC key is no signer either.
    let e = FileSigner::new(cert(SAST_PEM), &key).unwrap_err();
    assert!(matches!(e, ProvisioningError::EcSigner { .. }), "{e}");
}

#[test]
fn a_key_that_is_not_the_certificates_is_refused() {
    let e = FileSigner::new(cert(SAST_PEM), &private_key(TFTP_PEM)).unwrap_err();
    assert!(matches!(e, ProvisioningError::KeyMismatch { .. }), "{e}");
    // The right pair works, from a capf_ca::PrivateKey too.
    FileSigner::new(cert(SAST_PEM), &private_key(SAST_PEM)).unwrap();
}

#[test]
fn a_third_sast_is_refused() {
    let e = TrustListBuilder::new(1)
        .add(Role::Sast, cert(SAST_PEM))
        .add(Role::Sast, cert(SAST2_PEM))
        .add(Role::Sast, cert(TFTP_PEM))
        .add(Role::Capf, cert(CAPF_PEM))
        .build(&signer(SAST_PEM))
        .unwrap_err();
    assert!(
        matches!(e, ProvisioningError::TooManySast { count: 3 }),
        "{e}"
    );
}

#[test]
fn an_ec_certificate_needs_signer_version_1_1() {
    let builder = TrustListBuilder::new(1)
        .add(Role::Sast, cert(SAST_PEM))
        .add(Role::Capf, cert(CAPF_EC_PEM));
    let e = builder.build(&signer(SAST_PEM)).unwrap_err();
    assert!(
        matches!(&e, ProvisioningError::EcNeedsSignerVersion11 { record: 1, role: Role::Capf, subject } if subject.contains("CAPF-EC")),
        "{e}"
    );
    builder
        .signer_version(SignerVersion::V1_1)
        .build(&signer(SAST_PEM))
        .unwrap();
}

#[test]
fn an_ec_phone_certificate_cannot_receive_an_encrypted_config() {
    let e = encrypt_config(
        &signer(TFTP_PEM),
        &cert(CAPF_EC_PEM),
        "SEP001122334455.cnf.xml",
        CONFIG,
        DigestAlgorithm::Sha1,
        1,
    )
    .unwrap_err();
    assert!(
        matches!(&e, ProvisioningError::EcPhoneCertificate { subject } if subject.contains("CAPF-EC")),
        "{e}"
    );
    assert!(e.to_string().contains("needs an RSA LSC or MIC"), "{e}");
    let enc = EncryptedConfig::parse(ENC_SGN).unwrap();
    let ec_key = PrivateKey::generate(KeySpec::Ec(EcCurve::P256)).unwrap();
    let e = enc.decrypt(&ec_key).unwrap_err();
    assert!(matches!(e, ProvisioningError::EcPhoneKey { .. }), "{e}");
}

#[test]
fn the_signer_must_be_a_sast_of_the_list() {
    let e = TrustListBuilder::new(1)
        .add(Role::Sast, cert(SAST_PEM))
        .add(Role::Capf, cert(CAPF_PEM))
        .build(&signer(SAST2_PEM))
        .unwrap_err();
    assert!(
        matches!(e, ProvisioningError::SignerNotInList { .. }),
        "{e}"
    );
    // Not as another role either.
    let e = TrustListBuilder::new(1)
        .add(Role::Sast, cert(SAST_PEM))
        .add(Role::Tftp, cert(SAST2_PEM))
        .build(&signer(SAST2_PEM))
        .unwrap_err();
    assert!(
        matches!(e, ProvisioningError::SignerNotInList { .. }),
        "{e}"
    );
    let e = TrustListBuilder::new(1)
        .build(&signer(SAST_PEM))
        .unwrap_err();
    assert!(matches!(e, ProvisioningError::NoRecords), "{e}");
}

#[test]
fn unknown_roles_digests_and_bad_names_are_not_written() {
    let base = TrustListBuilder::new(1).add(Role::Sast, cert(SAST_PEM));
    let e = base
        .clone()
        .add(Role::Unknown(5), cert(CAPF_PEM))
        .build(&signer(SAST_PEM))
        .unwrap_err();
    assert!(
        matches!(e, ProvisioningError::UnsupportedRole { record: 1, .. }),
        "{e}"
    );
    let e = base
        .clone()
        .digest(DigestAlgorithm::Sha256)
        .build(&signer(SAST_PEM))
        .unwrap_err();
    assert!(
        matches!(e, ProvisioningError::UnsupportedDigest { .. }),
        "{e}"
    );
    let e = base
        .clone()
        .file_name("ITL\0File.tlv")
        .build(&signer(SAST_PEM))
        .unwrap_err();
    assert!(matches!(e, ProvisioningError::BadText { .. }), "{e}");
    let e = SignedFile::sign(&signer(TFTP_PEM), "", CONFIG, DigestAlgorithm::Sha1, 1).unwrap_err();
    assert!(matches!(e, ProvisioningError::BadText { .. }), "{e}");
}

#[test]
fn a_list_without_its_signers_record_cannot_be_checked_by_itself() {
    // Signed by SAST, but the SAST record's role changed: rebuild such a
    // list by hand from the raw layer.
    let list = TrustList::parse(ITL_V10_SHA1).unwrap();
    let mut raw = capf_provisioning::RawHeader::parse(ITL_V10_SHA1).unwrap();
    let mut records =
        capf_provisioning::RawRecord::parse_all(ITL_V10_SHA1, usize::from(raw.length)).unwrap();
    for e in &mut records[0].elements {
        if e.tag == capf_provisioning::RecordTag::Role {
            e.value = Role::Tftp.code().to_be_bytes().to_vec();
        }
    }
    let body: Vec<u8> = records.iter().flat_map(|r| r.encode().unwrap()).collect();
    let bytes = raw
        .sign_with(&signer(SAST_PEM), DigestAlgorithm::Sha1, &body)
        .unwrap();
    let changed = TrustList::parse(&bytes).unwrap();
    assert_eq!(changed.header.signer, list.header.signer);
    let e = changed.verify().unwrap_err();
    assert!(
        matches!(&e, ProvisioningError::MissingSignerRecord { serial, .. } if serial == "2787202eabe44f81e7ebaee6997b7e50"),
        "{e}"
    );
    // A phone that trusts the SAST still accepts it.
    changed.verify_with(&cert(SAST_PEM)).unwrap();
}

#[test]
fn the_wrong_key_does_not_decrypt() {
    let enc = EncryptedConfig::parse(ENC_SGN).unwrap();
    let e = enc.decrypt(&private_key(TFTP_PEM)).unwrap_err();
    assert!(
        matches!(e, ProvisioningError::DecryptionFailed { .. }),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with("SEP001122334455.cnf.xml.enc.sgn: decryption failed"),
        "{e}"
    );
    // A damaged ciphertext fails the digest check.
    let mut bytes = ENC_SGN.to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let damaged = EncryptedConfig::parse(&bytes).unwrap();
    let e = damaged.decrypt(&phone_key()).unwrap_err();
    assert!(
        matches!(e, ProvisioningError::DecryptionFailed { .. }),
        "{e}"
    );
    assert!(
        damaged
            .verify(&cert(TFTP_PEM))
            .unwrap_err()
            .is_bad_signature()
    );
    // A plain .sgn is not an encrypted config.
    let e = EncryptedConfig::parse(CONFIG_SGN).unwrap_err();
    assert!(matches!(e, ProvisioningError::NotEncrypted { .. }), "{e}");
}

#[test]
fn bad_bytes_are_refused_with_the_place() {
    // Cut inside the second record.
    let e = TrustList::parse(&ITL_V10_SHA1[..2000]).unwrap_err();
    assert!(
        matches!(
            e,
            ProvisioningError::BadRecordLength {
                offset: 0x750,
                record: 1,
                declared: 1484,
                available: 128
            }
        ),
        "{e}"
    );
    assert_eq!(e.offset(), Some(0x750));
    assert!(e.to_string().contains("record 1"), "{e}");
    // The header length beyond the file.
    let e = TrustList::parse(&ITL_V10_SHA1[..300]).unwrap_err();
    assert!(
        matches!(
            e,
            ProvisioningError::BadHeaderLength {
                declared: 388,
                file_len: 300
            }
        ),
        "{e}"
    );
    // A record that does not start with its length.
    let mut bytes = ITL_V10_SHA1.to_vec();
    bytes[0x750] = 3;
    let e = TrustList::parse(&bytes).unwrap_err();
    assert!(
        matches!(
            e,
            ProvisioningError::BadRecordStart {
                offset: 0x750,
                record: 1,
                ..
            }
        ),
        "{e}"
    );
    // A certificate that does not parse.
    let mut bytes = ITL_V10_SHA1.to_vec();
    bytes[0x3e9 + 3] = 0x31;
    let e = TrustList::parse(&bytes).unwrap_err();
    assert!(
        matches!(
            e,
            ProvisioningError::BadCertificate {
                offset: 0x3e9,
                record: 0,
                ..
            }
        ),
        "{e}"
    );
    // A second signature element.
    let mut raw = capf_provisioning::RawHeader::parse(ITL_V10_SHA1).unwrap();
    let sig = raw
        .element(capf_provisioning::HeaderTag::Signature)
        .unwrap()
        .clone();
    raw.elements.push(sig);
    let mut bytes = raw.encode().unwrap();
    let len = u16::try_from(bytes.len()).unwrap();
    bytes[8..10].copy_from_slice(&len.to_be_bytes());
    let e = TrustList::parse(&bytes).unwrap_err();
    assert!(
        matches!(e, ProvisioningError::DuplicateElement { offset: 388, .. }),
        "{e}"
    );
}
