//! Properties: parse(build(x)) == x for generated trust lists (roles, one or
//! two SAST, digest, signer version, file name, timestamp), and so for
//! signed files; no bytes, random or a changed golden file, panic a parser;
//! a changed byte never verifies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::OnceLock;

use capf_ca::{CaCertificate, CapfIdentity, EcCurve, IdentityParams, KeySpec};
use capf_provisioning::{
    DigestAlgorithm, EncryptedConfig, FileSigner, ProvisioningError, RawHeader, RawRecord, Role,
    SignedFile, SignerVersion, TrustList, TrustListBuilder, TrustRecord,
};
use common::*;
use proptest::prelude::*;

const ROLES: &[Role] = &[
    Role::Ccm,
    Role::CcmTftp,
    Role::Tftp,
    Role::Capf,
    Role::AppServer,
    Role::Tvs,
];

struct Pool {
    sast: [FileSigner; 2],
    /// RSA and EC certificates for the other records.
    others: Vec<CaCertificate>,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let now = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        let mut others = vec![
            cert(CAPF_PEM),
            cert(TFTP_PEM),
            cert(PHONE_LSC_PEM),
            cert(CAPF_EC_PEM),
            cert(SAST_EC_PEM),
        ];
        for curve in [EcCurve::P384, EcCurve::P521] {
            let params = IdentityParams {
                key: KeySpec::Ec(curve),
                organization: Some("Example, Inc.".into()),
                ..IdentityParams::default()
            };
            others.push(
                CapfIdentity::generate(&params, now)
                    .unwrap()
                    .certificate()
                    .clone(),
            );
        }
        Pool {
            sast: [signer(SAST_PEM), signer(SAST2_PEM)],
            others,
        }
    })
}

fn is_ec(c: &CaCertificate) -> bool {
    matches!(c.public_key().unwrap().spec(), KeySpec::Ec(_))
}

#[derive(Debug, Clone)]
struct Spec {
    signer: usize,
    second_sast: bool,
    signer_position: usize,
    others: Vec<(usize, usize)>,
    version: SignerVersion,
    digest: DigestAlgorithm,
    file_name: String,
    timestamp: u32,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        0..2usize,
        any::<bool>(),
        0..8usize,
        prop::collection::vec((0..ROLES.len(), 0..7usize), 0..5),
        prop_oneof![Just(SignerVersion::V1_0), Just(SignerVersion::V1_1)],
        prop_oneof![Just(DigestAlgorithm::Sha1), Just(DigestAlgorithm::Sha512)],
        "[A-Za-z0-9_./-]{1,40}",
        any::<u32>(),
    )
        .prop_map(
            |(
                signer,
                second_sast,
                signer_position,
                others,
                version,
                digest,
                file_name,
                timestamp,
            )| {
                Spec {
                    signer,
                    second_sast,
                    signer_position,
                    others,
                    version,
                    digest,
                    file_name,
                    timestamp,
                }
            },
        )
}

fn builder(s: &Spec) -> TrustListBuilder {
    let pool = pool();
    let mut entries: Vec<(Role, CaCertificate)> = s
        .others
        .iter()
        .map(|&(role, cert)| (ROLES[role], pool.others[cert % pool.others.len()].clone()))
        .collect();
    if s.second_sast {
        let other = pool.sast[1 - s.signer].certificate().clone();
        let at = (s.signer_position * 7 + 3) % (entries.len() + 1);
        entries.insert(at, (Role::Sast, other));
    }
    let at = s.signer_position % (entries.len() + 1);
    entries.insert(at, (Role::Sast, pool.sast[s.signer].certificate().clone()));
    let mut b = TrustListBuilder::new(s.timestamp)
        .file_name(s.file_name.clone())
        .signer_version(s.version)
        .digest(s.digest);
    for (role, cert) in entries {
        b = b.add(role, cert);
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn parse_of_build_is_what_was_built(s in spec()) {
        let b = builder(&s);
        let signer = &pool().sast[s.signer];
        let has_ec = b.entries.iter().any(|e| is_ec(&e.certificate));
        let built = b.build(signer);
        if has_ec && s.version == SignerVersion::V1_0 {
            let refused = matches!(built, Err(ProvisioningError::EcNeedsSignerVersion11 { .. }));
            prop_assert!(refused, "{:?}", built.err());
            return Ok(());
        }
        let bytes = built.unwrap();
        let list = TrustList::parse(&bytes).unwrap();
        prop_assert_eq!(&list.to_builder().unwrap(), &b);
        prop_assert_eq!(&list.records, &b.records().unwrap());
        let signer_index = list.verify().unwrap();
        prop_assert_eq!(&list.records[signer_index].certificate, signer.certificate());
        list.verify_with(signer.certificate()).unwrap();
        prop_assert_eq!(list.header.length % 4, 0);
        prop_assert_eq!(list.header.signer_version, Some(s.version.version()));
        prop_assert_eq!(list.header.digest, s.digest);
        prop_assert_eq!(&list.header.file_name, &s.file_name);
        prop_assert_eq!(list.header.timestamp, s.timestamp);
        for (r, (_, len)) in list.records.iter().zip(&list.record_spans) {
            prop_assert_eq!(r.encoded_len(), usize::from(*len));
            prop_assert_eq!(r, &TrustRecord::from_certificate(r.role, &r.certificate).unwrap());
        }
        // And back to the same bytes.
        prop_assert_eq!(list.to_builder().unwrap().build(signer).unwrap(), bytes);
    }

    #[test]
    fn parse_of_sign_is_what_was_signed(
        payload in prop::collection::vec(any::<u8>(), 0..600),
        name in "[A-Za-z0-9_./-]{1,60}",
        sha512 in any::<bool>(),
        timestamp in any::<u32>(),
    ) {
        let digest = if sha512 { DigestAlgorithm::Sha512 } else { DigestAlgorithm::Sha1 };
        let tftp = signer(TFTP_PEM);
        let bytes = SignedFile::sign(&tftp, &name, &payload, digest, timestamp).unwrap();
        let file = SignedFile::parse(&bytes).unwrap();
        prop_assert_eq!(file.payload(), &payload[..]);
        prop_assert_eq!(&file.header.file_name, &name);
        prop_assert_eq!(file.header.timestamp, timestamp);
        prop_assert_eq!(file.header.digest, digest);
        prop_assert_eq!(file.header.length % 4, 0);
        file.verify(tftp.certificate()).unwrap();
    }

}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_a_parser(bytes in prop::collection::vec(any::<u8>(), 0..1500)) {
        parse_everything(&bytes);
    }

    #[test]
    fn random_bytes_after_a_good_header_never_panic(tail in prop::collection::vec(any::<u8>(), 0..400)) {
        let mut bytes = ITL_V10_SHA1[..388].to_vec();
        bytes.extend_from_slice(&tail);
        parse_everything(&bytes);
    }

    #[test]
    fn a_changed_byte_never_verifies(
        file in 0..4usize,
        at in any::<prop::sample::Index>(),
        xor in 1..=255u8,
    ) {
        let golden = [ITL_V10_SHA1, ITL_V11_EC, CONFIG_SGN, ENC_SGN][file];
        let mut bytes = golden.to_vec();
        let i = at.index(bytes.len());
        bytes[i] ^= xor;
        parse_everything(&bytes);
        if file < 2 {
            if let Ok(list) = TrustList::parse(&bytes) {
                prop_assert!(list.verify().is_err());
                prop_assert!(list.verify_with(&cert(SAST_PEM)).is_err());
            }
        } else if let Ok(f) = SignedFile::parse(&bytes) {
            prop_assert!(f.verify(&cert(TFTP_PEM)).is_err());
        }
    }

    #[test]
    fn a_cut_file_never_panics(file in 0..4usize, at in any::<prop::sample::Index>()) {
        let golden = [CTL_PADDED, ITL_V11_EC, CONFIG_SGN, ENC_SGN][file];
        parse_everything(&golden[..at.index(golden.len())]);
    }
}

/// Every parser on the same bytes; the raw layer writes back what it read.
fn parse_everything(bytes: &[u8]) {
    if let Ok(raw) = RawHeader::parse(bytes) {
        let end = usize::from(raw.length);
        assert_eq!(raw.encode().unwrap(), bytes[..end]);
        if let Ok(records) = RawRecord::parse_all(bytes, end) {
            let mut again = raw.encode().unwrap();
            for r in &records {
                again.extend_from_slice(&r.encode().unwrap());
            }
            assert_eq!(again, bytes);
        }
    }
    if let Ok(list) = TrustList::parse(bytes) {
        let _ = list.verify();
        let _ = list.to_builder();
        for r in &list.records {
            assert_eq!(r.encode().unwrap().len(), r.encoded_len());
            let _ = r.key_algorithm();
        }
    }
    if let Ok(file) = SignedFile::parse(bytes) {
        let _ = file.payload();
        let _ = file.verify(&cert(TFTP_PEM));
    }
    if let Ok(enc) = EncryptedConfig::parse(bytes) {
        let _ = enc.ciphertext();
        let _ = enc.decrypt(&phone_key());
    }
}
