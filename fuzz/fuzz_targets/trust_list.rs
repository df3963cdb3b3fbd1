//! Provisioning-file parsing in capf-provisioning: arbitrary bytes as a trust
//! list, a signed file and an encrypted config never panic; the raw layer
//! writes back exactly the bytes it read; nothing but the golden files
//! verifies with the test SAST and TFTP certificates.
#![no_main]

use std::sync::OnceLock;

use capf_ca::{CaCertificate, PrivateKey};
use capf_provisioning::{
    EncryptedConfig, RawHeader, RawRecord, SignedFile, TrustList, certificate_from_pem,
};
use libfuzzer_sys::fuzz_target;

struct Keys {
    sast: CaCertificate,
    tftp: CaCertificate,
    phone: PrivateKey,
}

fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| Keys {
        sast: certificate_from_pem(
            include_str!("../../testdata/trust-list/keys/sast.pem"),
            "sast.pem",
        )
        .expect("sast"),
        tftp: certificate_from_pem(
            include_str!("../../testdata/trust-list/keys/tftp.pem"),
            "tftp.pem",
        )
        .expect("tftp"),
        phone: PrivateKey::from_pkcs8_pem(include_str!(
            "../../testdata/trust-list/keys/phone-lsc-key.pem"
        ))
        .expect("phone key"),
    })
}

/// The golden files signed by the test SAST and TFTP keys: the only inputs
/// that may verify.
const SIGNED: &[&[u8]] = &[
    include_bytes!("../../testdata/trust-list/itl-v1.0-sha1.tlv"),
    include_bytes!("../../testdata/trust-list/itl-v1.0-sha512.tlv"),
    include_bytes!("../../testdata/trust-list/itl-v1.1-sha1-ec.tlv"),
    include_bytes!("../../testdata/trust-list/sgn/SEP001122334455.cnf.xml.sgn"),
    include_bytes!("../../testdata/trust-list/enc/SEP001122334455.cnf.xml.enc.sgn"),
    include_bytes!("../../testdata/trust-list/enc/SEP001122334455.cnf.xml.sgn"),
];

fuzz_target!(|data: &[u8]| {
    let keys = keys();
    if let Ok(raw) = RawHeader::parse(data) {
        let end = usize::from(raw.length);
        assert_eq!(
            raw.encode().expect("encode header"),
            data[..end],
            "header round trip"
        );
        if let Ok(records) = RawRecord::parse_all(data, end) {
            let mut again = raw.encode().expect("encode header");
            for r in &records {
                again.extend_from_slice(&r.encode().expect("encode record"));
            }
            assert_eq!(again, data, "file round trip");
        }
    }
    if let Ok(list) = TrustList::parse(data) {
        // A list made of fuzz bytes may carry its own SAST (and so verify
        // against itself), but is never signed by the test SAST's key.
        let _ = list.verify();
        if list.verify_with(&keys.sast).is_ok() {
            assert!(SIGNED.contains(&data), "garbage verified");
        }
        let _ = list.to_builder();
        for r in &list.records {
            assert_eq!(r.encode().expect("encode record").len(), r.encoded_len());
            let _ = r.key_algorithm();
        }
    }
    if let Ok(file) = SignedFile::parse(data) {
        let _ = file.payload();
        if file.verify(&keys.tftp).is_ok() {
            assert!(SIGNED.contains(&data), "garbage verified");
        }
    }
    if let Ok(enc) = EncryptedConfig::parse(data) {
        let _ = enc.ciphertext();
        let _ = enc.decrypt(&keys.phone);
    }
});
