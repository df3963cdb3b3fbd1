//! The golden files of `testdata/trust-list/` (made by certutils tlvfile,
//! sgnfile and enccnf): rebuilt byte for byte from `keys/` with each file's
//! timestamp, parsed with the fields the README lists, signatures checked,
//! the tampered list rejected, the encrypted config decrypted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::convert::Infallible;

use capf_provisioning::{
    DigestAlgorithm, EncryptedConfig, KeyAlgorithm, ProvisioningError, Role, SignedFile,
    SignerVersion, TrustList, TrustListBuilder, TrustRecord, Version, cert_hash, encrypt_config,
    encrypt_config_with_rng, stub_config,
};
use common::*;

// ---------------------------------------------------------------- rebuilds

fn itl(timestamp: u32) -> TrustListBuilder {
    TrustListBuilder::new(timestamp)
        .file_name("ITLFile.tlv")
        .add(Role::Sast, cert(SAST_PEM))
        .add(Role::Capf, cert(CAPF_PEM))
}

#[test]
fn rebuilds_itl_v10_sha1() {
    let bytes = itl(TS_ITL_V10_SHA1).build(&signer(SAST_PEM)).unwrap();
    assert_eq!(bytes, ITL_V10_SHA1);
}

#[test]
fn rebuilds_itl_v10_sha512() {
    let bytes = itl(TS_ITL_V10_SHA512)
        .digest(DigestAlgorithm::Sha512)
        .build(&signer(SAST_PEM))
        .unwrap();
    assert_eq!(bytes, ITL_V10_SHA512);
}

#[test]
fn rebuilds_itl_v11_with_ec_capf_and_two_sast() {
    // tlvfile --version 1.1 --sast sast.pem --sast sast2.pem --capf capf-ec.pem
    let bytes = TrustListBuilder::new(TS_ITL_V11_EC)
        .signer_version(SignerVersion::V1_1)
        .add(Role::Sast, cert(SAST_PEM))
        .add(Role::Sast, cert(SAST2_PEM))
        .add(Role::Capf, cert(CAPF_EC_PEM))
        .build(&signer(SAST_PEM))
        .unwrap();
    assert_eq!(bytes, ITL_V11_EC);
}

#[test]
fn rebuilds_padded_ctl_signed_by_the_second_sast() {
    // tlvfile --filename CTLFile.tlv --sast sast2.pem --sast sast.pem
    //         --ccm-tftp tftp.pem --capf capf.pem
    let bytes = TrustListBuilder::new(TS_CTL_PADDED)
        .file_name("CTLFile.tlv")
        .add(Role::Sast, cert(SAST2_PEM))
        .add(Role::Sast, cert(SAST_PEM))
        .add(Role::CcmTftp, cert(TFTP_PEM))
        .add(Role::Capf, cert(CAPF_PEM))
        .build(&signer(SAST2_PEM))
        .unwrap();
    assert_eq!(bytes, CTL_PADDED);
}

#[test]
fn every_good_list_rebuilds_from_its_own_parse() {
    for (bytes, signer_pem) in [
        (ITL_V10_SHA1, SAST_PEM),
        (ITL_V10_SHA512, SAST_PEM),
        (ITL_V11_EC, SAST_PEM),
        (CTL_PADDED, SAST2_PEM),
    ] {
        let list = TrustList::parse(bytes).unwrap();
        let builder = list.to_builder().unwrap();
        assert_eq!(builder.build(&signer(signer_pem)).unwrap(), bytes);
        assert_eq!(builder.records().unwrap(), list.records);
    }
}

#[test]
fn rebuilds_the_signed_config() {
    let bytes = SignedFile::sign(
        &signer(TFTP_PEM),
        "SEP001122334455.cnf.xml.sgn",
        CONFIG,
        DigestAlgorithm::Sha1,
        TS_SGN,
    )
    .unwrap();
    assert_eq!(bytes, CONFIG_SGN);
}

#[test]
fn rebuilds_the_encrypted_configs_stub() {
    let lsc = cert(PHONE_LSC_PEM);
    let stub = stub_config(CONFIG, &cert_hash(&lsc)).unwrap();
    assert_eq!(stub, SignedFile::parse(ENC_STUB).unwrap().payload());
    let bytes = SignedFile::sign(
        &signer(TFTP_PEM),
        "SEP001122334455.cnf.xml.sgn",
        &stub,
        DigestAlgorithm::Sha1,
        TS_ENC,
    )
    .unwrap();
    assert_eq!(bytes, ENC_STUB);
}

/// Hands out fixed bytes: the vector's IV and AES key, then the RSA padding
/// string recovered from it (`openssl pkeyutl -decrypt -pkeyopt
/// rsa_padding_mode:none` on element 25 with phone-lsc-key.pem).
struct Script(Vec<u8>);

impl rand_core::TryRng for Script {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_be_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_be_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        assert!(dst.len() <= self.0.len(), "script exhausted");
        let rest = self.0.split_off(dst.len());
        dst.copy_from_slice(&self.0);
        self.0 = rest;
        Ok(())
    }
}
impl rand_core::TryCryptoRng for Script {}

const WRAPPED_KEY_BLOCK: &str = "0002a40ad7a495a476b5b2f78bb57354e60f66099a1122f4ad015d26bfd8caf47fdc08eb5521651b6c5a9a74c72c5a8208e4e042d2cf5a931d3b944786d27f8ff188cd171dd10387addd3544df0701012463f96bba1b1e5f6de46e2e09bc1a98f84e5d77becbc467c890d77a88ac4f1c1fb3bbf566c65ff1b351b7409896722bb82cad5b67a88947d7aa8c874b71aaf3172ff364b697bb824d9d9d93e3830ffee02f8f4a2a1a5fac623dc8c238bda675150b7a7e9b59c570daf9193f14eabc0581717c5d1048f8909003f8649fe1cc15254a5e56906b0d6f93f0e0b685d2e0e82a213f1f1c0221f9951520fe477cf4001380ea4a50bd8d2b395a9b03f9686f5c";

#[test]
fn rebuilds_the_encrypted_config_given_enccnfs_random_bytes() {
    let block = hex::decode(WRAPPED_KEY_BLOCK).unwrap();
    let (padding, key) = (&block[2..239], &block[240..]);
    assert_eq!(hex::encode(key), "1380ea4a50bd8d2b395a9b03f9686f5c");
    let mut script = hex::decode("df580c229ee861ee28a750aeeb7aca7e").unwrap();
    script.extend_from_slice(key);
    script.extend_from_slice(padding);
    let files = encrypt_config_with_rng(
        &signer(TFTP_PEM),
        &cert(PHONE_LSC_PEM),
        "SEP001122334455.cnf.xml",
        CONFIG,
        DigestAlgorithm::Sha1,
        TS_ENC,
        &mut Script(script),
    )
    .unwrap();
    assert_eq!(files.encrypted, ENC_SGN);
    assert_eq!(files.stub, ENC_STUB);
    assert_eq!(files.encrypted_name, "SEP001122334455.cnf.xml.enc.sgn");
    assert_eq!(files.stub_name, "SEP001122334455.cnf.xml.sgn");
}

// ------------------------------------------------------------------ parsing

struct Expected {
    length: usize,
    subject: &'static str,
    serial: &'static str,
    role: Role,
    public_key: usize,
    signature: usize,
    certificate: usize,
    key: KeyAlgorithm,
    sha1: &'static str,
}

const SAST_RECORD: Expected = Expected {
    length: 1484,
    subject: "CN=SAST,O=SAST,OU=SAST",
    serial: "2787202eabe44f81e7ebaee6997b7e50",
    role: Role::Sast,
    public_key: 270,
    signature: 256,
    certificate: 868,
    key: KeyAlgorithm::Rsa,
    sha1: "ede818a4f94f1bb6b17416597ac8c8788add2617",
};
const SAST2_RECORD: Expected = Expected {
    length: 1490,
    subject: "CN=SAST2,O=SAST,OU=SAST",
    serial: "f52e1f2b00907f02e04b8febabcd7edb",
    role: Role::Sast,
    public_key: 270,
    signature: 256,
    certificate: 872,
    key: KeyAlgorithm::Rsa,
    sha1: "a9495d6588a73318412dbc1f852f420b02f3949c",
};
const CAPF_RECORD: Expected = Expected {
    length: 1484,
    subject: "CN=CAPF,O=CAPF,OU=CAPF",
    serial: "5bdef303e439fe6e38218f84c38eedc2",
    role: Role::Capf,
    public_key: 270,
    signature: 256,
    certificate: 868,
    key: KeyAlgorithm::Rsa,
    sha1: "d5b2c1218521aacfd03b305e105a9ab041fe64d1",
};
const CAPF_EC_RECORD: Expected = Expected {
    length: 712,
    subject: "CN=CAPF-EC,O=CAPF,OU=CAPF",
    serial: "e3efebb562393623993b6640322536b6",
    role: Role::Capf,
    public_key: 65,
    signature: 70,
    certificate: 481,
    key: KeyAlgorithm::Ec,
    sha1: "1396adba7ef63f76f1371c4aa6edf0d763ee4a12",
};
const TFTP_RECORD: Expected = Expected {
    length: 1485,
    subject: "CN=TFTP,O=TFTP,OU=TFTP",
    serial: "e0236c7082c10fe939680df78b8d02f7",
    role: Role::CcmTftp,
    public_key: 270,
    signature: 256,
    certificate: 869,
    key: KeyAlgorithm::Rsa,
    sha1: "123acab5389e8e0fc9527e2e6051333919dc16c1",
};

fn check_record(list: &TrustList, index: usize, e: &Expected) {
    let r: &TrustRecord = &list.records[index];
    let ctx = format!("record {index} of {}", list.header.file_name);
    assert_eq!(usize::from(list.record_spans[index].1), e.length, "{ctx}");
    assert_eq!(r.encoded_len(), e.length, "{ctx}");
    assert_eq!(r.subject_name, e.subject, "{ctx}");
    assert_eq!(r.issuer_name, e.subject, "{ctx}: self-signed");
    assert_eq!(r.serial_hex(), e.serial, "{ctx}");
    assert_eq!(r.role, e.role, "{ctx}");
    assert_eq!(r.public_key.len(), e.public_key, "{ctx}");
    assert_eq!(
        r.signature.as_ref().map(Vec::len),
        Some(e.signature),
        "{ctx}"
    );
    assert_eq!(r.certificate.der().len(), e.certificate, "{ctx}");
    assert_eq!(r.key_algorithm(), e.key, "{ctx}");
    assert_eq!(r.certificate_sha1_hex(), e.sha1, "{ctx}");
    assert_eq!(r.dns_name, None);
    assert_eq!(r.ip_address, None);
    assert_eq!(r.encode().unwrap().len(), e.length, "{ctx}");
}

fn check_sast_header(list: &TrustList, name: &str, serial: &str) {
    let h = &list.header;
    assert_eq!(h.version, Version::V1_2);
    assert_eq!(h.signer.name, name);
    assert_eq!(h.signer.issuer, name);
    assert_eq!(h.signer.serial_hex(), serial);
    assert_eq!(h.signature.len(), 256);
    assert_eq!(h.signature_algorithm, Some(0));
    assert_eq!(h.modulus_code, Some(2));
    assert_eq!(usize::from(h.length) % 4, 0);
    assert!(h.encryption.is_none());
}

#[test]
fn parses_itl_v10_sha1() {
    let list = TrustList::parse(ITL_V10_SHA1).unwrap();
    check_sast_header(&list, SAST_RECORD.subject, SAST_RECORD.serial);
    assert_eq!(list.header.length, 388);
    assert_eq!(list.header.padding, 0);
    assert_eq!(list.header.signer_version, Some(Version::V1_0));
    assert_eq!(list.header.digest, DigestAlgorithm::Sha1);
    assert_eq!(list.header.digest.to_string(), "SHA1");
    assert_eq!(list.header.file_name, "ITLFile.tlv");
    assert_eq!(list.header.timestamp, TS_ITL_V10_SHA1);
    assert_eq!(list.header.signature_element(), 0x6b..0x6b + 3 + 256);
    assert_eq!(list.records.len(), 2);
    check_record(&list, 0, &SAST_RECORD);
    check_record(&list, 1, &CAPF_RECORD);
    assert_eq!(list.record_spans[1].0, 0x750);
    assert_eq!(list.verify().unwrap(), 0);
    list.verify_with(&cert(SAST_PEM)).unwrap();
}

#[test]
fn parses_itl_v10_sha512() {
    let list = TrustList::parse(ITL_V10_SHA512).unwrap();
    check_sast_header(&list, SAST_RECORD.subject, SAST_RECORD.serial);
    assert_eq!(list.header.length, 388);
    assert_eq!(list.header.signer_version, Some(Version::V1_0));
    assert_eq!(list.header.digest, DigestAlgorithm::Sha512);
    assert_eq!(list.header.digest.to_string(), "SHA512");
    assert_eq!(list.header.file_name, "ITLFile.tlv");
    assert_eq!(list.header.timestamp, TS_ITL_V10_SHA512);
    check_record(&list, 0, &SAST_RECORD);
    check_record(&list, 1, &CAPF_RECORD);
    assert_eq!(list.verify().unwrap(), 0);
    list.verify_with(&cert(SAST_PEM)).unwrap();
}

#[test]
fn parses_itl_v11_with_ec_capf() {
    let list = TrustList::parse(ITL_V11_EC).unwrap();
    check_sast_header(&list, SAST_RECORD.subject, SAST_RECORD.serial);
    assert_eq!(list.header.length, 388);
    assert_eq!(list.header.signer_version, Some(Version::V1_1));
    assert_eq!(list.signer_version(), Version::V1_1);
    assert_eq!(list.header.digest, DigestAlgorithm::Sha1);
    assert_eq!(list.header.timestamp, TS_ITL_V11_EC);
    assert_eq!(list.records.len(), 3);
    check_record(&list, 0, &SAST_RECORD);
    check_record(&list, 1, &SAST2_RECORD);
    check_record(&list, 2, &CAPF_EC_RECORD);
    // The EC point, uncompressed; the serial without the DER 00.
    assert_eq!(list.records[2].public_key[0], 0x04);
    assert_eq!(list.records[2].certificate.serial()[0], 0x00);
    assert_eq!(list.verify().unwrap(), 0);
    list.verify_with(&cert(SAST_PEM)).unwrap();
    // Signed by SAST, not SAST2: a phone trusting only SAST2 refuses it.
    let e = list.verify_with(&cert(SAST2_PEM)).unwrap_err();
    assert!(matches!(e, ProvisioningError::SignerMismatch { .. }), "{e}");
}

#[test]
fn parses_the_padded_ctl() {
    let list = TrustList::parse(CTL_PADDED).unwrap();
    check_sast_header(&list, SAST2_RECORD.subject, SAST2_RECORD.serial);
    assert_eq!(list.header.length, 392);
    assert_eq!(list.header.padding, 2);
    assert_eq!(&CTL_PADDED[0x186..0x188], &[0x0d, 0x0d]);
    assert_eq!(list.header.signer_version, Some(Version::V1_0));
    assert_eq!(list.header.file_name, "CTLFile.tlv");
    assert_eq!(list.header.timestamp, TS_CTL_PADDED);
    assert_eq!(list.records.len(), 4);
    check_record(&list, 0, &SAST2_RECORD);
    check_record(&list, 1, &SAST_RECORD);
    check_record(&list, 2, &TFTP_RECORD);
    check_record(&list, 3, &CAPF_RECORD);
    assert_eq!(list.records[2].role.to_string(), "CCM+TFTP");
    assert_eq!(
        list.verify().unwrap(),
        0,
        "the header names SAST2, record 0"
    );
    list.verify_with(&cert(SAST2_PEM)).unwrap();
}

#[test]
fn rejects_the_tampered_list() {
    let list = TrustList::parse(ITL_TAMPERED).unwrap();
    assert_eq!(list.records[1].subject_name, "CN=CAPG,O=CAPF,OU=CAPF");
    assert_eq!(list.header, TrustList::parse(ITL_V10_SHA1).unwrap().header);
    let e = list.verify().unwrap_err();
    assert!(e.is_bad_signature(), "{e}");
    assert_eq!(
        e.to_string(),
        "ITLFile.tlv: invalid signature (the file was changed or signed by another key)"
    );
    assert!(
        list.verify_with(&cert(SAST_PEM))
            .unwrap_err()
            .is_bad_signature()
    );
    let e = e.in_file("itl-v1.0-sha1-tampered.tlv");
    assert!(e.is_bad_signature());
    assert!(
        e.to_string()
            .starts_with("itl-v1.0-sha1-tampered.tlv: ITLFile.tlv: invalid signature"),
        "{e}"
    );
}

#[test]
fn parses_the_signed_config() {
    let file = SignedFile::parse(CONFIG_SGN).unwrap();
    let h = &file.header;
    assert_eq!(h.version, Version::V1_0);
    assert_eq!(h.length, 400);
    assert_eq!(h.padding, 1);
    assert_eq!(h.signer_version, None);
    assert_eq!(h.signer.name, "CN=TFTP,O=TFTP,OU=TFTP");
    assert_eq!(h.signer.issuer, "CN=TFTP,O=TFTP,OU=TFTP");
    assert_eq!(h.signer.serial_hex(), "e0236c7082c10fe939680df78b8d02f7");
    assert_eq!(h.digest, DigestAlgorithm::Sha1);
    assert_eq!(h.signature.len(), 256);
    assert_eq!(h.file_name, "SEP001122334455.cnf.xml.sgn");
    assert_eq!(h.timestamp, TS_SGN);
    assert_eq!(file.payload(), CONFIG);
    assert_eq!(file.payload().len(), 588);
    file.verify(&cert(TFTP_PEM)).unwrap();
    let e = file.verify(&cert(SAST_PEM)).unwrap_err();
    assert!(matches!(e, ProvisioningError::SignerMismatch { .. }), "{e}");
}

#[test]
fn parses_and_decrypts_the_encrypted_config() {
    let enc = EncryptedConfig::parse(ENC_SGN).unwrap();
    let h = &enc.header;
    assert_eq!(h.version, Version::V2_0);
    assert_eq!(h.length, 740);
    assert_eq!(h.padding, 1);
    assert_eq!(h.signer.name, "CN=TFTP,O=TFTP,OU=TFTP");
    assert_eq!(h.signer.serial_hex(), "e0236c7082c10fe939680df78b8d02f7");
    assert_eq!(h.digest, DigestAlgorithm::Sha1);
    assert_eq!(h.signature.len(), 256);
    assert_eq!(h.file_name, "SEP001122334455.cnf.xml.enc.sgn");
    assert_eq!(h.timestamp, TS_ENC);
    let e = &enc.encryption;
    assert_eq!(hex::encode(&e.iv), "df580c229ee861ee28a750aeeb7aca7e");
    assert_eq!(e.padding, 4);
    assert_eq!(e.key_size, Some(2048));
    assert_eq!(e.key_algorithm, Some(1));
    assert_eq!((e.unknown1, e.unknown2), (Some(0), Some(0)));
    assert_eq!(e.wrapped_key.len(), 256);
    assert_eq!(e.digest, DigestAlgorithm::Sha1);
    assert_eq!(
        hex::encode(&e.plaintext_digest),
        "47e72336a9f93a9022cc59883583ffcd215985c6"
    );
    assert_eq!(enc.ciphertext().len(), 592);
    enc.verify(&cert(TFTP_PEM)).unwrap();
    assert_eq!(enc.decrypt(&phone_key()).unwrap(), CONFIG);

    let stub = SignedFile::parse(ENC_STUB).unwrap();
    assert_eq!(stub.header.length, 400);
    assert_eq!(stub.header.file_name, "SEP001122334455.cnf.xml.sgn");
    assert_eq!(stub.header.timestamp, TS_ENC);
    stub.verify(&cert(TFTP_PEM)).unwrap();
    let text = String::from_utf8(stub.payload().to_vec()).unwrap();
    assert!(
        text.contains("<certHash>465fc5745bc52980c3f250a6ef51d9e2</certHash>"),
        "{text}"
    );
    assert!(text.contains("<fullConfig>false</fullConfig>"), "{text}");
    assert!(text.contains("<encrConfig>true</encrConfig>"), "{text}");
    assert!(!text.contains("authPassword"), "{text}");
    assert_eq!(
        cert_hash(&cert(PHONE_LSC_PEM)),
        "465fc5745bc52980c3f250a6ef51d9e2"
    );
}

#[test]
fn our_encrypted_config_decrypts_with_the_phone_key() {
    let lsc = cert(PHONE_LSC_PEM);
    let tftp = signer(TFTP_PEM);
    for digest in [DigestAlgorithm::Sha1, DigestAlgorithm::Sha512] {
        let files = encrypt_config(
            &tftp,
            &lsc,
            "SEP001122334455.cnf.xml",
            CONFIG,
            digest,
            1_800_000_000,
        )
        .unwrap();
        assert_eq!(files.cert_hash, "465fc5745bc52980c3f250a6ef51d9e2");
        let enc = EncryptedConfig::parse(&files.encrypted).unwrap();
        assert_eq!(enc.header.digest, digest);
        assert_eq!(enc.encryption.digest, digest);
        assert_eq!(usize::from(enc.header.length) % 4, 0);
        assert_eq!(enc.ciphertext().len(), 592);
        assert_eq!(enc.encryption.padding, 4);
        enc.verify(tftp.certificate()).unwrap();
        assert_eq!(enc.decrypt(&phone_key()).unwrap(), CONFIG);

        let stub = SignedFile::parse(&files.stub).unwrap();
        stub.verify(tftp.certificate()).unwrap();
        assert_eq!(stub.header.digest, digest);
        let text = String::from_utf8(stub.payload().to_vec()).unwrap();
        assert!(text.contains("<certHash>465fc5745bc52980c3f250a6ef51d9e2</certHash>"));
        if digest == DigestAlgorithm::Sha1 {
            assert_eq!(
                stub.payload(),
                SignedFile::parse(ENC_STUB).unwrap().payload()
            );
        }
    }
    // A plaintext already a multiple of 16 gets a whole block of padding.
    let mut config = b"<device><capfAuthMode>1</capfAuthMode></device>".to_vec();
    config.resize(config.len().next_multiple_of(16), b'\n');
    let files = encrypt_config(
        &tftp,
        &lsc,
        "SEPX.cnf.xml",
        &config,
        DigestAlgorithm::Sha1,
        1,
    )
    .unwrap();
    let enc = EncryptedConfig::parse(&files.encrypted).unwrap();
    assert_eq!(enc.encryption.padding, 16);
    assert_eq!(enc.decrypt(&phone_key()).unwrap(), config);
}
