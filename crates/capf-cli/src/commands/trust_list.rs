//! `capf trust-list build|show|verify`: the phone trust lists
//! (`ITLFile.tlv`, `CTLFile.tlv`) that make phones trust this CAPF.
//!
//! A phone opens TLS to CAPF only if the CAPF certificate is in its trust
//! list with role CAPF; the list is signed by a SAST key that the phone
//! already trusts (or, for a phone with no list yet, taken on first sight).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use capf_ca::CaCertificate;
use capf_provisioning::{
    DigestAlgorithm, FileSigner, KeyAlgorithm, MAX_SAST_RECORDS, PHONE_MAX_TRUST_LIST_LEN,
    ProvisioningError, Role, SignerVersion, TrustList, TrustListBuilder, TrustRecord,
    certificate_from_pem, unix_timestamp,
};
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

use crate::data_dir::DataDir;
use crate::output::print_json;
use crate::output::{self, Output};
use crate::{Failure, Outcome, time_text};

/// `capf trust-list` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum TrustListCommand {
    /// Build and sign a trust list holding this CAPF's certificate (role CAPF).
    Build(BuildArgs),
    /// Print every header field and record of a trust list, and check its signature.
    #[command(after_help = "Examples:\n  \
        capf trust-list show ITLFile.tlv\n  \
        capf trust-list show /srv/tftp/CTLFile.tlv --json\n\n\
        The signature is checked with the SAST record the header names (the list\n\
        is intact and self-consistent); whether a phone takes the list depends on\n\
        the SAST it already trusts: see `capf trust-list verify`.\n\n\
        Exit status: 0 when the signature is valid, 1 when it is not (everything\n\
        is printed all the same) or the file cannot be read.")]
    Show {
        /// The trust list (ITLFile.tlv, CTLFile.tlv, ITLSEP<MAC>.tlv).
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Would a phone that trusts this SAST accept this new list?
    #[command(after_help = "Examples:\n  \
        capf trust-list verify new/ITLFile.tlv --trust sast.pem\n  \
        capf trust-list verify new/ITLFile.tlv --trust /srv/tftp/ITLFile.tlv      the list phones hold now\n  \
        capf trust-list verify new/ITLFile.tlv --trust sast1.pem --trust sast2.pem --json\n\n\
        A phone that holds a trust list takes a new one only if it is signed by a SAST\n\
        of the list it holds. --trust names those SASTs: a certificate (PEM or DER; in\n\
        a PEM file every certificate counts), or the trust list the phones hold now\n\
        (its SAST records count). A phone with no trust list at all takes the first\n\
        one it downloads without checking it.\n\n\
        Exit status: 0 when the phone would accept the list, 1 when it would not\n\
        (the reason is printed) or a file cannot be read.")]
    Verify {
        /// The new trust list.
        file: PathBuf,
        /// A SAST the phone trusts: a certificate file or the phone's current trust list (repeat for several).
        #[arg(long, value_name = "SAST-CERT", required = true)]
        trust: Vec<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The signer version written in the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum SignerVersionArg {
    /// RSA certificates only: every phone reads it.
    #[value(name = "1.0")]
    V1_0,
    /// EC certificates allowed in the records (an EC CAPF certificate needs it).
    #[value(name = "1.1")]
    V1_1,
}

impl SignerVersionArg {
    fn version(self) -> SignerVersion {
        match self {
            SignerVersionArg::V1_0 => SignerVersion::V1_0,
            SignerVersionArg::V1_1 => SignerVersion::V1_1,
        }
    }
}

/// The digest of a file's signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum DigestArg {
    /// SHA-1: what every phone and the reference tools use by default.
    Sha1,
    /// SHA-512.
    Sha512,
}

impl DigestArg {
    pub(crate) fn algorithm(self) -> DigestAlgorithm {
        match self {
            DigestArg::Sha1 => DigestAlgorithm::Sha1,
            DigestArg::Sha512 => DigestAlgorithm::Sha512,
        }
    }
}

/// Arguments of `capf trust-list build`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    capf trust-list build --out ITLFile.tlv --sast sast.pem\n  \
    capf trust-list build --out /srv/tftp/ITLFile.tlv --sast sast.pem --sast sast2.pem \\\n      \
        --tftp tftp.pem --ccm asterisk.pem --force\n  \
    capf trust-list build --out ITLFile.tlv --sast sast.pem --capf capf1.pem --capf capf2.pem\n  \
    capf trust-list build --out ITLFile.tlv --sast sast.pem --signer-version 1.1   an EC CAPF certificate\n\n\
    Make a SAST key and certificate (RSA, kept safe and offline) once, e.g.:\n  \
    openssl req -x509 -newkey rsa:2048 -nodes -days 7300 -subj /CN=SAST/O=Example \\\n      \
        -keyout sast-key.pem -out sast-cert.pem && cat sast-key.pem sast-cert.pem > sast.pem\n\n\
    The first --sast signs the list: a PEM file with its RSA private key and its\n\
    certificate. A second --sast (its certificate alone is enough) is a spare: phones\n\
    take later lists signed by either. Phones refuse an EC signer, more than two SAST\n\
    records, and EC certificates in a list of signer version 1.0: so does this command.\n\n\
    Records are written in this order: SAST, CCM, CCM+TFTP, TFTP, CAPF, APP-SERVER,\n\
    TVS, each in the order given. The CAPF record is this data directory's capf.pem\n\
    unless --capf is given. A certificate file may be PEM (a private key beside the\n\
    certificate is ignored) or DER.\n\n\
    A list larger than phones load (64 KB, about 40 certificates) is written with a\n\
    warning. FILE is replaced only with --force; it is written whole or not at all.")]
pub(crate) struct BuildArgs {
    /// Where to write the list.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// A SAST: the first signs (its RSA private key and certificate in one PEM file); at most two.
    #[arg(long, value_name = "CERT+KEY", required = true)]
    sast: Vec<PathBuf>,
    /// A CAPF certificate (default: this data directory's capf.pem).
    #[arg(long, value_name = "CERT")]
    capf: Vec<PathBuf>,
    /// A call server certificate (SIP over TLS).
    #[arg(long, value_name = "CERT")]
    ccm: Vec<PathBuf>,
    /// A certificate trusted both as call server and as TFTP server.
    #[arg(long, value_name = "CERT")]
    ccm_tftp: Vec<PathBuf>,
    /// A TFTP certificate: the key that signs configuration files (.sgn).
    #[arg(long, value_name = "CERT")]
    tftp: Vec<PathBuf>,
    /// A certificate for HTTPS phone services.
    #[arg(long, value_name = "CERT")]
    app_server: Vec<PathBuf>,
    /// A Trust Verification Service certificate.
    #[arg(long, value_name = "CERT")]
    tvs: Vec<PathBuf>,
    /// Signer version: 1.1 lets phones use EC certificates in the records.
    #[arg(long, value_enum, default_value = "1.0")]
    signer_version: SignerVersionArg,
    /// Digest of the signature.
    #[arg(long, value_enum, default_value_t = DigestArg::Sha1)]
    digest: DigestArg,
    /// The file name written in the list, which phones ask for (default: the name of --out).
    #[arg(long, value_name = "NAME")]
    filename: Option<String>,
    /// The build time written in the list, in Unix seconds (default: now). The same inputs and time give the same bytes.
    #[arg(long, value_name = "SECS")]
    timestamp: Option<u32>,
    /// Replace FILE if it exists.
    #[arg(long)]
    force: bool,
}

pub(crate) fn run(data: &DataDir, command: TrustListCommand) -> Result<Outcome, Failure> {
    match command {
        TrustListCommand::Build(args) => build(data, args),
        TrustListCommand::Show { file, json } => show(&file, json),
        TrustListCommand::Verify { file, trust, json } => verify(&file, &trust, json),
    }
}

// ---- files -----------------------------------------------------------------

/// How a file given with a flag is named in messages: `--sast sast.pem`.
pub(crate) fn named(flag: &str, path: &Path) -> String {
    format!("{flag} {}", path.display())
}

/// A provisioning error about `what`, naming it once.
pub(crate) fn refused(what: &str, e: &ProvisioningError) -> Failure {
    let text = e.to_string();
    if text.starts_with(what) {
        Failure::new(text)
    } else {
        Failure::new(format!("{what}: {text}"))
    }
}

/// The whole of a file.
pub(crate) fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| Failure::new(format!("{what}: {e}")))
}

/// The last component of a path, as text (the name a phone asks for).
pub(crate) fn base_name(path: &Path) -> Result<String, Failure> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| Failure::usage(format!("{}: give a file name (in UTF-8)", path.display())))
}

/// A certificate file: PEM (its first certificate; a private key beside it
/// is ignored) or DER.
pub(crate) fn load_certificate(path: &Path, what: &str) -> Result<CaCertificate, Failure> {
    let bytes = read_file(path, what)?;
    match std::str::from_utf8(&bytes) {
        Ok(text) if text.contains("-----BEGIN ") => {
            certificate_from_pem(text, what).map_err(|e| refused(what, &e))
        }
        _ => CaCertificate::from_der(&bytes, "the certificate")
            .map_err(|e| Failure::new(format!("{what}: not a PEM or DER certificate ({e})"))),
    }
}

/// A signing key and its certificate, in one PEM file (the format tlvfile
/// and sgnfile take): a SAST for trust lists, the TFTP key for
/// configuration files. RSA only.
pub(crate) fn load_signer(path: &Path, what: &str) -> Result<FileSigner, Failure> {
    let bytes = read_file(path, what)?;
    let text = String::from_utf8(bytes).map_err(|_| {
        Failure::new(format!(
            "{what}: not a PEM file: give the RSA private key and the certificate in one PEM file"
        ))
    })?;
    FileSigner::from_pem(&text, what).map_err(|e| refused(what, &e))
}

/// A time from the headers' Unix seconds.
pub(crate) fn header_time(timestamp: u32) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(timestamp))
}

/// `--timestamp`, else now, as the headers' Unix seconds.
pub(crate) fn timestamp_or_now(given: Option<u32>) -> Result<u32, Failure> {
    match given {
        Some(t) => Ok(t),
        None => unix_timestamp(SystemTime::now())
            .map_err(|e| Failure::new(format!("the system clock: {e}"))),
    }
}

fn warn(text: &str) {
    eprintln!("capf: warning: {text}");
}

// ---- build -----------------------------------------------------------------

/// The names phones ask for.
fn is_phone_file_name(name: &str) -> bool {
    name == "ITLFile.tlv"
        || name == "CTLFile.tlv"
        || (name.starts_with("ITLSEP") && name.ends_with(".tlv"))
}

fn build(data: &DataDir, args: BuildArgs) -> Result<Outcome, Failure> {
    let written = Output::public(args.force);
    output::check(&args.out, &written)?;
    let file_name = match &args.filename {
        Some(name) => name.clone(),
        None => base_name(&args.out)?,
    };
    if args.sast.len() > MAX_SAST_RECORDS {
        return Err(Failure::new(format!(
            "--sast given {} times: phones refuse a trust list with more than {MAX_SAST_RECORDS} \
             SAST records",
            args.sast.len()
        )));
    }
    let Some((first, spares)) = args.sast.split_first() else {
        return Err(Failure::usage(
            "give the SAST that signs the list with --sast",
        ));
    };
    let signer = load_signer(first, &named("--sast", first)).map_err(|f| {
        Failure::new(format!(
            "{} (the first --sast signs the list: its RSA private key and certificate in one PEM file)",
            f.message
        ))
    })?;

    let mut entries: Vec<(Role, CaCertificate)> = vec![(Role::Sast, signer.certificate().clone())];
    for path in spares {
        entries.push((Role::Sast, load_certificate(path, &named("--sast", path))?));
    }
    let capf = if args.capf.is_empty() {
        let path = data.path(capf_ca::CERT_FILE);
        if !path.exists() {
            return Err(Failure::new(format!(
                "{} holds no CAPF certificate ({}): run `capf init`, or give --capf CERT",
                data.root().display(),
                capf_ca::CERT_FILE
            )));
        }
        vec![path]
    } else {
        args.capf.clone()
    };
    let roles: [(Role, &str, &[PathBuf]); 6] = [
        (Role::Ccm, "--ccm", &args.ccm),
        (Role::CcmTftp, "--ccm-tftp", &args.ccm_tftp),
        (Role::Tftp, "--tftp", &args.tftp),
        (Role::Capf, "--capf", &capf),
        (Role::AppServer, "--app-server", &args.app_server),
        (Role::Tvs, "--tvs", &args.tvs),
    ];
    for (role, flag, paths) in roles {
        for path in paths {
            entries.push((role, load_certificate(path, &named(flag, path))?));
        }
    }

    let timestamp = timestamp_or_now(args.timestamp)?;
    let mut builder = TrustListBuilder::new(timestamp)
        .file_name(file_name.clone())
        .signer_version(args.signer_version.version())
        .digest(args.digest.algorithm());
    for (role, certificate) in &entries {
        builder = builder.add(*role, certificate.clone());
    }
    let bytes = builder.build(&signer).map_err(|e| {
        let hint = match e {
            ProvisioningError::EcNeedsSignerVersion11 { .. } => {
                ": add --signer-version 1.1 (phones that know EC certificates read such lists)"
            }
            _ => "",
        };
        Failure::new(format!("cannot build {}: {e}{hint}", args.out.display()))
    })?;

    if bytes.len() > PHONE_MAX_TRUST_LIST_LEN {
        warn(&format!(
            "the list is {} bytes, more than the {PHONE_MAX_TRUST_LIST_LEN} bytes phones load: \
             phones will fail to load it; list fewer certificates",
            bytes.len()
        ));
    }
    if !is_phone_file_name(&file_name) {
        warn(&format!(
            "the list names itself {file_name:?}, but phones ask for ITLFile.tlv or CTLFile.tlv: \
             give --filename ITLFile.tlv if it will be served under that name"
        ));
    }
    let now = SystemTime::now();
    for (role, certificate) in &entries {
        if *role == Role::Sast
            && TrustRecord::from_certificate(*role, certificate)
                .is_ok_and(|r| r.key_algorithm() != KeyAlgorithm::Rsa)
        {
            warn(&format!(
                "SAST {} has an EC key: phones check list signatures with RSA only, so it can \
                 never sign a list they take",
                certificate.subject()
            ));
        }
        if certificate.not_after() < now {
            warn(&format!(
                "{role} certificate {} expired on {}",
                certificate.subject(),
                time_text::format(certificate.not_after())
            ));
        }
    }

    output::write_file(&args.out, &bytes, &written)?;
    // Read back what was written: the summary is what a phone will see.
    let list = TrustList::parse(&bytes).map_err(|e| refused(&file_name, &e))?;
    list.verify().map_err(|e| refused(&file_name, &e))?;
    println!(
        "wrote {} ({} bytes): {file_name}, signer version {}, {}, built {}",
        args.out.display(),
        bytes.len(),
        list.signer_version(),
        list.header.digest,
        time_text::format(header_time(list.header.timestamp))
    );
    println!("  signed by SAST {}", list.header.signer.name);
    for (i, r) in list.records.iter().enumerate() {
        println!(
            "  record {i}: {:<10} {} ({}, serial {})",
            r.role.to_string(),
            r.subject_name,
            r.key_algorithm(),
            r.serial_hex()
        );
    }
    Ok(Outcome::Done)
}

// ---- show ------------------------------------------------------------------

/// A header or record element whose tag this program does not know.
#[derive(Debug, Serialize)]
struct UnknownElement {
    tag: u8,
    length: usize,
}

/// `capf trust-list show --json`.
#[derive(Debug, Serialize)]
struct TrustListView {
    file: String,
    size: usize,
    header: HeaderView,
    records: Vec<RecordView>,
    signature: SignatureView,
    warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
struct HeaderView {
    version: String,
    header_length: u16,
    /// The signer version phones read (1.0 when the header has none).
    signer_version: String,
    /// Whether the header writes a signer version (Cisco's own lists do not).
    signer_version_written: bool,
    signer_name: String,
    signer_issuer: String,
    signer_serial: String,
    digest: String,
    signature_algorithm: Option<u8>,
    modulus_code: Option<u8>,
    signature_length: usize,
    file_name: String,
    timestamp: u32,
    time: String,
    padding: usize,
    unknown_elements: Vec<UnknownElement>,
}

#[derive(Debug, Serialize)]
struct RecordView {
    index: usize,
    offset: usize,
    record_length: u16,
    role: String,
    role_code: u16,
    subject_name: String,
    issuer_name: String,
    serial: String,
    key_algorithm: String,
    public_key_length: usize,
    signature_length: Option<usize>,
    certificate_length: usize,
    certificate_sha1: String,
    certificate_sha256: String,
    not_before: String,
    not_after: String,
    expired: bool,
    dns_name: Option<String>,
    ip_address: Option<String>,
    certificate_hash: Option<String>,
    hash_algorithm: Option<String>,
    unknown_elements: Vec<UnknownElement>,
}

#[derive(Debug, Serialize)]
struct SignatureView {
    valid: bool,
    /// The index of the SAST record whose key checked it.
    signer_record: Option<usize>,
    /// Why it is not valid.
    problem: Option<String>,
}

/// Tag 11, the signer's RSA size code, with the size it stands for.
fn modulus_text(code: u8) -> String {
    match code {
        0 => "0 (512 bits)".to_owned(),
        1 => "1 (1024 bits)".to_owned(),
        2 => "2 (2048 bits)".to_owned(),
        3 => "3 (4096 bits)".to_owned(),
        other => format!("{other} (unknown)"),
    }
}

fn ip_text(bytes: &[u8]) -> String {
    match bytes {
        [a, b, c, d] => format!("{a}.{b}.{c}.{d}"),
        other => hex::encode(other),
    }
}

fn list_warnings(list: &TrustList) -> Vec<String> {
    let mut warnings = Vec::new();
    let size = list.as_bytes().len();
    if size > PHONE_MAX_TRUST_LIST_LEN {
        warnings.push(format!(
            "{size} bytes: more than the {PHONE_MAX_TRUST_LIST_LEN} bytes phones load"
        ));
    }
    let sast = list.records.iter().filter(|r| r.role == Role::Sast).count();
    if sast > MAX_SAST_RECORDS {
        warnings.push(format!(
            "{sast} SAST records: phones refuse more than {MAX_SAST_RECORDS}"
        ));
    }
    if list.signer_version() < capf_provisioning::Version::V1_1 {
        for (i, r) in list.records.iter().enumerate() {
            if r.key_algorithm() == KeyAlgorithm::Ec {
                warnings.push(format!(
                    "record {i} ({}, {}) has an EC certificate in a list of signer version {}: \
                     phones ignore it",
                    r.role,
                    r.subject_name,
                    list.signer_version()
                ));
            }
        }
    }
    warnings
}

impl TrustListView {
    fn of(file: &Path, list: &TrustList, check: &Result<usize, ProvisioningError>) -> Self {
        let h = &list.header;
        let now = SystemTime::now();
        let header = HeaderView {
            version: h.version.to_string(),
            header_length: h.length,
            signer_version: list.signer_version().to_string(),
            signer_version_written: h.signer_version.is_some(),
            signer_name: h.signer.name.clone(),
            signer_issuer: h.signer.issuer.clone(),
            signer_serial: h.signer.serial_hex(),
            digest: h.digest.to_string(),
            signature_algorithm: h.signature_algorithm,
            modulus_code: h.modulus_code,
            signature_length: h.signature.len(),
            file_name: h.file_name.clone(),
            timestamp: h.timestamp,
            time: time_text::format(header_time(h.timestamp)),
            padding: h.padding,
            unknown_elements: h
                .other
                .iter()
                .map(|(tag, value)| UnknownElement {
                    tag: tag.code(),
                    length: value.len(),
                })
                .collect(),
        };
        let records = list
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let (offset, record_length) = list
                    .record_spans
                    .get(i)
                    .copied()
                    .unwrap_or((0, u16::try_from(r.encoded_len()).unwrap_or(u16::MAX)));
                let c = &r.certificate;
                RecordView {
                    index: i,
                    offset,
                    record_length,
                    role: r.role.to_string(),
                    role_code: r.role.code(),
                    subject_name: r.subject_name.clone(),
                    issuer_name: r.issuer_name.clone(),
                    serial: r.serial_hex(),
                    key_algorithm: r.key_algorithm().to_string(),
                    public_key_length: r.public_key.len(),
                    signature_length: r.signature.as_ref().map(Vec::len),
                    certificate_length: c.der().len(),
                    certificate_sha1: r.certificate_sha1_hex(),
                    certificate_sha256: c.fingerprint_sha256_hex(),
                    not_before: time_text::format(c.not_before()),
                    not_after: time_text::format(c.not_after()),
                    expired: c.not_after() < now,
                    dns_name: r.dns_name.clone(),
                    ip_address: r.ip_address.as_deref().map(ip_text),
                    certificate_hash: r.certificate_hash.as_deref().map(hex::encode),
                    hash_algorithm: r.hash_algorithm.map(|a| a.to_string()),
                    unknown_elements: r
                        .other
                        .iter()
                        .map(|(tag, value)| UnknownElement {
                            tag: tag.code(),
                            length: value.len(),
                        })
                        .collect(),
                }
            })
            .collect();
        let signature = match check {
            Ok(index) => SignatureView {
                valid: true,
                signer_record: Some(*index),
                problem: None,
            },
            Err(e) => SignatureView {
                valid: false,
                signer_record: list.signer_record().map(|(i, _)| i),
                problem: Some(e.to_string()),
            },
        };
        TrustListView {
            file: file.display().to_string(),
            size: list.as_bytes().len(),
            header,
            records,
            signature,
            warnings: list_warnings(list),
        }
    }

    fn print(&self) {
        let line = |k: &str, v: &str| println!("{k:<19}{v}");
        let h = &self.header;
        line("File:", &format!("{} ({} bytes)", self.file, self.size));
        line("Version:", &h.version);
        line("Header length:", &format!("{} bytes", h.header_length));
        let written = if h.signer_version_written {
            ""
        } else {
            " (not written: read as 1.0)"
        };
        line("Signer version:", &format!("{}{written}", h.signer_version));
        line("Signer name:", &h.signer_name);
        line("Signer issuer:", &h.signer_issuer);
        line("Signer serial:", &h.signer_serial);
        line("Digest:", &h.digest);
        if let Some(code) = h.signature_algorithm {
            line("Signature alg.:", &code.to_string());
        }
        if let Some(code) = h.modulus_code {
            line("Key size code:", &modulus_text(code));
        }
        line("Signature:", &format!("{} bytes", h.signature_length));
        line("File name:", &h.file_name);
        line("Built:", &format!("{} ({})", h.time, h.timestamp));
        if h.padding > 0 {
            line("Padding:", &format!("{} byte(s)", h.padding));
        }
        for u in &h.unknown_elements {
            line(
                "Unknown element:",
                &format!("tag {}, {} bytes", u.tag, u.length),
            );
        }
        for r in &self.records {
            println!();
            println!("Record {}: {}", r.index, r.role);
            let line = |k: &str, v: &str| println!("  {k:<17}{v}");
            line(
                "Record length:",
                &format!("{} bytes at offset {}", r.record_length, r.offset),
            );
            line("Subject:", &r.subject_name);
            line("Issuer:", &r.issuer_name);
            line("Serial:", &r.serial);
            line(
                "Key:",
                &format!(
                    "{} (public key {} bytes)",
                    r.key_algorithm, r.public_key_length
                ),
            );
            let signature = r
                .signature_length
                .map_or_else(|| "none".to_owned(), |n| format!("{n} bytes"));
            line("Signature:", &signature);
            line("Certificate:", &format!("{} bytes", r.certificate_length));
            line("SHA-1:", &r.certificate_sha1);
            let expired = if r.expired { " (EXPIRED)" } else { "" };
            line(
                "Valid:",
                &format!("{} to {}{expired}", r.not_before, r.not_after),
            );
            if let Some(dns) = &r.dns_name {
                line("DNS name:", dns);
            }
            if let Some(ip) = &r.ip_address {
                line("IP address:", ip);
            }
            if let Some(hash) = &r.certificate_hash {
                let alg = r.hash_algorithm.as_deref().unwrap_or("unknown");
                line("Certificate hash:", &format!("{hash} ({alg})"));
            }
            for u in &r.unknown_elements {
                line(
                    "Unknown element:",
                    &format!("tag {}, {} bytes", u.tag, u.length),
                );
            }
        }
        println!();
        for w in &self.warnings {
            println!("Warning: {w}");
        }
        match (&self.signature.problem, self.signature.signer_record) {
            (None, Some(i)) => {
                let subject = self.records.get(i).map_or("", |r| r.subject_name.as_str());
                println!("Signature: valid (checked with record {i}, SAST {subject})");
            }
            (Some(problem), _) => println!("Signature: INVALID: {problem}"),
            (None, None) => println!("Signature: INVALID"),
        }
    }
}

fn read_list(file: &Path) -> Result<TrustList, Failure> {
    let what = file.display().to_string();
    let bytes = read_file(file, &what)?;
    TrustList::parse(&bytes).map_err(|e| {
        Failure::new(format!(
            "{what}: not a trust list this program can read: {e}"
        ))
    })
}

fn show(file: &Path, json: bool) -> Result<Outcome, Failure> {
    let list = read_list(file)?;
    let check = list.verify();
    let view = TrustListView::of(file, &list, &check);
    if json {
        print_json(&view)?;
    } else {
        view.print();
    }
    Ok(if view.signature.valid {
        Outcome::Done
    } else {
        Outcome::NotDone
    })
}

// ---- verify ----------------------------------------------------------------

/// `capf trust-list verify --json`.
#[derive(Debug, Serialize)]
struct VerifyView {
    file: String,
    file_name: String,
    signer: SignerView,
    /// Whether a phone that trusts one of the SASTs given takes the list.
    accepted: bool,
    trusted: Vec<TrustedView>,
    /// The SAST records of the new list: the signers of the lists the
    /// phone takes after this one.
    next_signers: Vec<SignerView>,
}

#[derive(Debug, Serialize)]
struct SignerView {
    name: String,
    serial: String,
}

#[derive(Debug, Serialize)]
struct TrustedView {
    source: String,
    subject: String,
    serial: String,
    accepts: bool,
    problem: Option<String>,
}

/// A certificate's subject as the lists write it (`CN=SAST,O=SAST`).
fn list_name(certificate: &CaCertificate) -> String {
    TrustRecord::from_certificate(Role::Sast, certificate)
        .map_or_else(|_| certificate.subject(), |r| r.subject_name)
}

/// A certificate's serial as the lists write it: hex, without the DER
/// sign byte.
fn serial_hex(certificate: &CaCertificate) -> String {
    let serial = certificate.serial();
    let first = serial.iter().position(|&b| b != 0).unwrap_or(serial.len());
    hex::encode(&serial[first..])
}

/// The certificates between the BEGIN and END CERTIFICATE lines of a text.
fn certificate_blocks(text: &str) -> Vec<&str> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let Some(len) = rest[start..].find(END) else {
            break;
        };
        let stop = start + len + END.len();
        blocks.push(&rest[start..stop]);
        rest = &rest[stop..];
    }
    blocks
}

/// The SASTs a `--trust` file stands for: every certificate of a PEM file,
/// a DER certificate, or the SAST records of a trust list.
fn trusted_sasts(path: &Path) -> Result<Vec<CaCertificate>, Failure> {
    let what = named("--trust", path);
    let bytes = read_file(path, &what)?;
    if let Ok(text) = std::str::from_utf8(&bytes)
        && text.contains("-----BEGIN ")
    {
        let blocks = certificate_blocks(text);
        if blocks.is_empty() {
            return Err(Failure::new(format!(
                "{what}: no certificate in this PEM file"
            )));
        }
        return blocks
            .into_iter()
            .map(|b| CaCertificate::from_pem(b, &what).map_err(|e| Failure::new(e.to_string())))
            .collect();
    }
    if let Ok(certificate) = CaCertificate::from_der(&bytes, &what) {
        return Ok(vec![certificate]);
    }
    match TrustList::parse(&bytes) {
        Ok(list) => {
            let sasts: Vec<CaCertificate> = list
                .records
                .iter()
                .filter(|r| r.role == Role::Sast)
                .map(|r| r.certificate.clone())
                .collect();
            if sasts.is_empty() {
                Err(Failure::new(format!(
                    "{what}: this trust list holds no SAST record"
                )))
            } else {
                Ok(sasts)
            }
        }
        Err(e) => Err(Failure::new(format!(
            "{what}: neither a certificate (PEM or DER) nor a trust list ({e})"
        ))),
    }
}

fn verify(file: &Path, trust: &[PathBuf], json: bool) -> Result<Outcome, Failure> {
    let list = read_list(file)?;
    let mut trusted = Vec::new();
    for path in trust {
        for certificate in trusted_sasts(path)? {
            let (accepts, problem) = match list.verify_with(&certificate) {
                Ok(()) => (true, None),
                Err(e) => (false, Some(e.to_string())),
            };
            trusted.push(TrustedView {
                source: path.display().to_string(),
                subject: list_name(&certificate),
                serial: serial_hex(&certificate),
                accepts,
                problem,
            });
        }
    }
    let next_signers = list
        .records
        .iter()
        .filter(|r| r.role == Role::Sast && r.key_algorithm() == KeyAlgorithm::Rsa)
        .map(|r| SignerView {
            name: r.subject_name.clone(),
            serial: r.serial_hex(),
        })
        .collect();
    let view = VerifyView {
        file: file.display().to_string(),
        file_name: list.header.file_name.clone(),
        signer: SignerView {
            name: list.header.signer.name.clone(),
            serial: list.header.signer.serial_hex(),
        },
        accepted: trusted.iter().any(|t| t.accepts),
        trusted,
        next_signers,
    };
    if json {
        print_json(&view)?;
    } else {
        print_verdict(&view);
    }
    Ok(if view.accepted {
        Outcome::Done
    } else {
        Outcome::NotDone
    })
}

fn print_verdict(view: &VerifyView) {
    if let Some(t) = view.trusted.iter().find(|t| t.accepts) {
        println!(
            "accepted: {} is signed by SAST {} (serial {}), which the phone trusts, and the \
             signature is valid",
            view.file, t.subject, t.serial
        );
        if view.next_signers.is_empty() {
            println!(
                "warning: the list holds no SAST record with an RSA key: once a phone has \
                 it, it takes no later list"
            );
        } else {
            let names: Vec<String> = view
                .next_signers
                .iter()
                .map(|s| format!("{} (serial {})", s.name, s.serial))
                .collect();
            println!(
                "after it, the phone takes lists signed by: {}",
                names.join(", ")
            );
        }
        return;
    }
    println!(
        "refused: a phone that trusts only the SAST(s) given keeps its current list and \
         rejects {} (signed by {}, serial {}):",
        view.file, view.signer.name, view.signer.serial
    );
    for t in &view.trusted {
        println!(
            "  {} (serial {}): {}",
            t.subject,
            t.serial,
            t.problem.as_deref().unwrap_or("")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_file_names() {
        assert!(is_phone_file_name("ITLFile.tlv"));
        assert!(is_phone_file_name("CTLFile.tlv"));
        assert!(is_phone_file_name("ITLSEP001122334455.tlv"));
        assert!(!is_phone_file_name("itl.tlv"));
    }

    #[test]
    fn certificate_blocks_skip_keys() {
        let text = "-----BEGIN PRIVATE KEY-----\nAA\n-----END PRIVATE KEY-----\n\
                    -----BEGIN CERTIFICATE-----\nBB\n-----END CERTIFICATE-----\n\
                    -----BEGIN CERTIFICATE-----\nCC\n-----END CERTIFICATE-----\n";
        let blocks = certificate_blocks(text);
        assert_eq!(blocks.len(), 2);
        assert!(blocks[1].contains("CC"));
    }
}
