//! A phone trust list (`ITLFile.tlv`) that makes phones trust a CAPF, built
//! and read back with `capf-provisioning`: two SAST keys (the first signs,
//! the second is the spare for later lists), a CAPF certificate with role
//! CAPF; then parsed, its signature checked as a phone checks it, a later
//! list signed by the spare SAST, and what phones refuse. Keys are made on
//! the fly; nothing is written to disk (`capf trust-list build` writes the
//! file). It finishes by itself and prints what it did.
//!
//! ```text
//! cargo run --example trust_list
//! ```

use std::time::SystemTime;

use capf_ca::{CapfIdentity, CertValidity, EcCurve, IdentityParams, KeySpec};
use capf_provisioning::{
    FileSigner, ProvisioningError, Role, SignerVersion, TrustList, TrustListBuilder, unix_timestamp,
};

type Error = Box<dyn std::error::Error>;

/// A self-signed key and certificate named `CN=name, O=Example`.
fn identity(name: &str, key: KeySpec, years: u32) -> Result<CapfIdentity, Error> {
    let params = IdentityParams {
        key,
        common_name: Some(name.to_owned()),
        organization: Some("Example".to_owned()),
        validity: CertValidity::Years(years),
        ..IdentityParams::default()
    };
    Ok(CapfIdentity::generate(&params, SystemTime::now())?)
}

/// What `capf trust-list show` prints, in short.
fn print_list(list: &TrustList) {
    let h = &list.header;
    println!(
        "  {} ({} bytes): version {}, signer version {}, {}, header {} bytes",
        h.file_name,
        list.as_bytes().len(),
        h.version,
        list.signer_version(),
        h.digest,
        h.length
    );
    println!(
        "  signed by {} (serial {})",
        h.signer.name,
        h.signer.serial_hex()
    );
    for (i, r) in list.records.iter().enumerate() {
        println!(
            "  record {i}: {:<5} {} ({}, serial {})",
            r.role.to_string(),
            r.subject_name,
            r.key_algorithm(),
            r.serial_hex()
        );
    }
}

fn main() -> Result<(), Error> {
    let rsa2048 = KeySpec::Rsa { bits: 2048 };
    // The SAST keys sign trust lists: RSA (phones check list signatures
    // with RSA only), long-lived, kept offline.
    let sast = identity("SAST", rsa2048, 20)?;
    let spare = identity("SAST2", rsa2048, 20)?;
    // The CAPF certificate (`capf init` makes it: capf-data/capf.pem). An
    // EC one needs a list of signer version 1.1.
    let capf = identity("CAPF-example", KeySpec::Ec(EcCurve::P256), 10)?;
    let signer = FileSigner::new(sast.certificate().clone(), sast.private_key())?;
    let now = unix_timestamp(SystemTime::now())?;

    println!("Build ITLFile.tlv: SAST, spare SAST, CAPF");
    let builder = TrustListBuilder::new(now)
        .file_name("ITLFile.tlv")
        .signer_version(SignerVersion::V1_1)
        .add(Role::Sast, sast.certificate().clone())
        .add(Role::Sast, spare.certificate().clone())
        .add(Role::Capf, capf.certificate().clone());
    let bytes = builder.build(&signer)?;

    println!("Parse it");
    let list = TrustList::parse(&bytes)?;
    print_list(&list);
    let capf_record = list
        .records
        .iter()
        .find(|r| r.role == Role::Capf)
        .ok_or("no CAPF record")?;
    assert_eq!(&capf_record.certificate, capf.certificate());

    // Self-consistent: signed by the SAST record the header names.
    let index = list.verify()?;
    println!("  signature valid, checked with record {index}");
    // What a phone does: a phone with no list takes the first it gets; a
    // phone that holds a list takes a new one only if a SAST of the list it
    // holds signed it.
    list.verify_with(sast.certificate())?;
    println!("  a phone that trusts SAST takes it");

    // Later: the first SAST is lost; the spare signs the next list, and
    // phones holding this one take it.
    println!("Build the next list, signed by the spare SAST");
    let spare_signer = FileSigner::new(spare.certificate().clone(), spare.private_key())?;
    let next = TrustListBuilder::new(now + 60)
        .signer_version(SignerVersion::V1_1)
        .add(Role::Sast, spare.certificate().clone())
        .add(Role::Capf, capf.certificate().clone())
        .build(&spare_signer)?;
    let next = TrustList::parse(&next)?;
    let held: Vec<_> = list
        .records
        .iter()
        .filter(|r| r.role == Role::Sast)
        .collect();
    let accepted = held
        .iter()
        .any(|r| next.verify_with(&r.certificate).is_ok());
    println!("  a phone holding ITLFile.tlv takes it: {accepted}");
    assert!(accepted);

    println!("What phones refuse, refused");
    // One changed byte (in the CAPF record's certificate).
    let mut tampered = bytes.clone();
    let last = tampered.len() - 40;
    tampered[last] ^= 0x01;
    match TrustList::parse(&tampered).map(|l| l.verify()) {
        Ok(Ok(_)) => return Err("a tampered list verified".into()),
        Ok(Err(e)) | Err(e) => println!("  tampered list: {e}"),
    }
    // An EC certificate in a list of signer version 1.0.
    let v10 = TrustListBuilder::new(now)
        .add(Role::Sast, sast.certificate().clone())
        .add(Role::Capf, capf.certificate().clone());
    match v10.build(&signer) {
        Err(e @ ProvisioningError::EcNeedsSignerVersion11 { .. }) => println!("  {e}"),
        other => return Err(format!("expected a refusal, got {other:?}").into()),
    }
    // A third SAST.
    let third = identity("SAST3", rsa2048, 20)?;
    let crowded = builder.add(Role::Sast, third.certificate().clone());
    match crowded.build(&signer) {
        Err(e @ ProvisioningError::TooManySast { .. }) => println!("  {e}"),
        other => return Err(format!("expected a refusal, got {other:?}").into()),
    }
    // An EC signer.
    match FileSigner::new(capf.certificate().clone(), capf.private_key()) {
        Err(e @ ProvisioningError::EcSigner { .. }) => println!("  {e}"),
        other => return Err(format!("expected a refusal, got {other:?}").into()),
    }
    println!("Done");
    Ok(())
}
