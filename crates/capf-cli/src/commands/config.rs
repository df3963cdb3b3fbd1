//! `capf config sign|encrypt|decrypt|capf-list`: a phone's configuration
//! files: signed (`.sgn`), encrypted for the phone's LSC (`.enc.sgn` and its
//! signed stub), and the CAPF list that tells a phone where CAPF is.
//!
//! Also what `capf serve --encrypted-config` does after an install:
//! [`EncryptedConfigDir`] encrypts the phone's configuration again for its
//! new LSC.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use capf_auth::AuthMode;
use capf_ca::{CaCertificate, PrivateKey};
use capf_operations::{Device, DeviceName, OperatorStore, OutcomeKind};
use capf_provisioning::{
    DigestAlgorithm, EncryptedConfig, EncryptedConfigFiles, FileSigner, ProvisioningError,
    SignedFile, SignedHeader, encrypt_config, unix_timestamp,
};
use capf_server::SessionHook;
use clap::{ArgGroup, Args, Subcommand};
use serde::Serialize;
use tracing::{debug, info, warn};

use super::trust_list::{
    DigestArg, base_name, load_certificate, load_signer, named, read_file, refused,
    timestamp_or_now,
};
use crate::data_dir::DataDir;
use crate::output::{self, Output, Replace};
use crate::store::Store;
use crate::{Failure, Outcome, time_text};

/// The most CAPF servers a phone's configuration lists.
const MAX_CAPF_SERVERS: usize = 5;

/// `capf config` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Sign a file for phones (FILE.sgn) with the TFTP key.
    Sign(SignArgs),
    /// Encrypt a phone's configuration for its LSC (or MIC): writes NAME.enc.sgn and its signed stub NAME.sgn.
    Encrypt(EncryptArgs),
    /// Decrypt an encrypted configuration with the phone's private key (troubleshooting).
    Decrypt(DecryptArgs),
    /// Print the <capfList> and <capfAuthMode> elements for a phone's configuration.
    CapfList(CapfListArgs),
}

/// Arguments of `capf config sign`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    capf config sign SEP001122334455.cnf.xml --tftp tftp.pem          writes SEP001122334455.cnf.xml.sgn\n  \
    capf config sign Desktops/320x196x4/List.xml --tftp tftp.pem --filename Desktops/320x196x4/List.xml.sgn\n\n\
    --tftp: the TFTP key and certificate in one PEM file (RSA). Phones check the\n\
    signature with the certificate of role TFTP (or CCM+TFTP) in their trust list\n\
    (`capf trust-list build --tftp`). The file is copied unchanged after the header.\n\n\
    The output is replaced only with --force; it is written whole or not at all.")]
pub(crate) struct SignArgs {
    /// The file to sign.
    file: PathBuf,
    /// The TFTP key and certificate (one PEM file).
    #[arg(long, value_name = "CERT+KEY")]
    tftp: PathBuf,
    /// Where to write the signed file (default: FILE.sgn).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// The name written in the header, which phones ask for (default: the name of the output file).
    #[arg(long, value_name = "NAME")]
    filename: Option<String>,
    /// Digest of the signature.
    #[arg(long, value_enum, default_value_t = DigestArg::Sha1)]
    digest: DigestArg,
    /// The signing time written in the header, in Unix seconds (default: now).
    #[arg(long, value_name = "SECS")]
    timestamp: Option<u32>,
    /// Replace the output if it exists.
    #[arg(long)]
    force: bool,
}

/// Arguments of `capf config encrypt`.
#[derive(Debug, Args)]
#[command(
    group(ArgGroup::new("phone").required(true).args(["device", "certificate"])),
    after_help = "Examples:\n  \
    capf config encrypt SEP001122334455.cnf.xml --tftp tftp.pem --device SEP001122334455\n  \
    capf config encrypt SEP001122334455.cnf.xml --tftp tftp.pem --certificate phone-lsc.pem --out-dir /srv/tftp\n\n\
    Writes SEP001122334455.cnf.xml.enc.sgn (the configuration encrypted for the phone's\n\
    certificate, signed with the TFTP key) and SEP001122334455.cnf.xml.sgn (a signed\n\
    stub: the phone reads it first, and it holds only what the phone needs to reach\n\
    CAPF, the hash of the certificate and encrConfig=true), beside FILE or in --out-dir.\n\n\
    --device takes the device's LSC from the database (else its MIC). Only RSA\n\
    certificates can receive an encrypted configuration: schedule the install with\n\
    --key rsa2048. After a phone's LSC changes, encrypt its configuration again\n\
    (`capf serve --encrypted-config DIR` does it after every install).\n\n\
    Existing files are replaced only with --force; each is written whole or not at all."
)]
pub(crate) struct EncryptArgs {
    /// The phone's configuration (SEP<MAC>.cnf.xml).
    file: PathBuf,
    /// The TFTP key and certificate (one PEM file).
    #[arg(long, value_name = "CERT+KEY")]
    tftp: PathBuf,
    /// Encrypt for this device's LSC (else its MIC), from the database.
    #[arg(long, value_name = "NAME")]
    device: Option<String>,
    /// Encrypt for this certificate (the phone's LSC or MIC, PEM or DER).
    #[arg(long, value_name = "CERT")]
    certificate: Option<PathBuf>,
    /// Where to write the two files (default: FILE's directory).
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
    /// Digest of the signatures and of the configuration.
    #[arg(long, value_enum, default_value_t = DigestArg::Sha1)]
    digest: DigestArg,
    /// The time written in the headers, in Unix seconds (default: now).
    #[arg(long, value_name = "SECS")]
    timestamp: Option<u32>,
    /// Replace the outputs if they exist.
    #[arg(long)]
    force: bool,
}

/// Arguments of `capf config decrypt`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    capf config decrypt SEP001122334455.cnf.xml.enc.sgn --key phone-lsc.pem\n  \
    capf config decrypt SEP001122334455.cnf.xml.enc.sgn --key phone-lsc.pem --tftp tftp.pem --out plain.xml\n\n\
    --key: the phone's PKCS#8 private key (PEM; a certificate beside it is ignored, so\n\
    the file `capf phone install --cert-out` writes will do). With --tftp the signature\n\
    is checked first, and nothing is decrypted if it is not valid.\n\n\
    The configuration goes to standard output, or to --out (mode 0600: configurations\n\
    hold secrets), replaced only with --force.")]
pub(crate) struct DecryptArgs {
    /// The encrypted configuration (.enc.sgn).
    file: PathBuf,
    /// The phone's private key.
    #[arg(long, value_name = "PHONE-KEY")]
    key: PathBuf,
    /// Check the signature with this TFTP certificate first.
    #[arg(long, value_name = "CERT")]
    tftp: Option<PathBuf>,
    /// Write the configuration to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Replace FILE if it exists.
    #[arg(long, requires = "out")]
    force: bool,
}

/// Arguments of `capf config capf-list`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    capf config capf-list --server capf1.example --server capf2.example:3804\n  \
    capf config capf-list --server 10.0.0.5 --device SEP001122334455\n  \
    capf config capf-list --server capf.example --auth-mode null-string --json\n\n\
    Put the output inside <device> in the phone's SEP<MAC>.cnf.xml. The phone tries\n\
    the servers in order (at most five); the port defaults to 3804. <capfAuthMode> is\n\
    the device's authentication mode (--device) or --auth-mode: 1 authentication\n\
    string, 2 null string, 3 LSC (then MIC), 4 MIC; without either it is left out.")]
pub(crate) struct CapfListArgs {
    /// A CAPF server, HOST or HOST:PORT ([IPv6]:PORT); up to five, in the order phones try them.
    #[arg(long, value_name = "HOST[:PORT]", required = true)]
    server: Vec<String>,
    /// Take <capfAuthMode> from this device's record.
    #[arg(long, value_name = "NAME", conflicts_with = "auth_mode")]
    device: Option<String>,
    /// <capfAuthMode> for this authentication mode.
    #[arg(long, value_name = "MODE", value_parser = crate::values::auth_mode())]
    auth_mode: Option<AuthMode>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(data: &DataDir, command: ConfigCommand) -> Result<Outcome, Failure> {
    match command {
        ConfigCommand::Sign(args) => sign(args),
        ConfigCommand::Encrypt(args) => encrypt(data, args),
        ConfigCommand::Decrypt(args) => decrypt(args),
        ConfigCommand::CapfList(args) => capf_list(data, args),
    }
}

// ---- sign ------------------------------------------------------------------

/// `FILE` + `suffix`, as a path.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut text = path.as_os_str().to_owned();
    text.push(suffix);
    PathBuf::from(text)
}

/// Whether the bytes start with a signed-file header (a `.sgn`, `.enc.sgn`
/// or trust list).
fn is_signed(bytes: &[u8]) -> bool {
    bytes.first() == Some(&1) && SignedHeader::parse(bytes).is_ok()
}

fn sign(args: SignArgs) -> Result<Outcome, Failure> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| with_suffix(&args.file, ".sgn"));
    let written = Output::public(args.force);
    output::check(&out, &written)?;
    let file_name = match &args.filename {
        Some(name) => name.clone(),
        None => base_name(&out)?,
    };
    let what = args.file.display().to_string();
    let payload = read_file(&args.file, &what)?;
    if is_signed(&payload) {
        return Err(Failure::new(format!(
            "{what} is already a signed file: sign the original instead"
        )));
    }
    let signer = load_signer(&args.tftp, &named("--tftp", &args.tftp))?;
    let timestamp = timestamp_or_now(args.timestamp)?;
    let bytes = SignedFile::sign(
        &signer,
        &file_name,
        &payload,
        args.digest.algorithm(),
        timestamp,
    )
    .map_err(|e| refused(&what, &e))?;
    output::write_file(&out, &bytes, &written)?;
    println!(
        "wrote {} ({} bytes): {file_name}, signed by TFTP {}",
        out.display(),
        bytes.len(),
        signer.certificate().subject()
    );
    Ok(Outcome::Done)
}

// ---- encrypt ---------------------------------------------------------------

/// The certificate a device's configuration is encrypted for: its LSC on
/// record, else its MIC; and which of the two it is.
fn phone_certificate(device: &Device) -> Result<(CaCertificate, &'static str), String> {
    let name = &device.name;
    let (record, kind) = match (&device.lsc, &device.lsc_revoked, &device.mic) {
        (Some(_), Some(revocation), _) => {
            let why = if revocation.reason.is_empty() {
                String::new()
            } else {
                format!(" ({})", revocation.reason)
            };
            return Err(format!(
                "the LSC of {name} was revoked{why}: no configuration is encrypted for it; \
                 enroll the phone again"
            ));
        }
        (Some(lsc), None, _) => (lsc, "LSC"),
        (None, _, Some(mic)) => (mic, "MIC"),
        (None, _, None) => {
            return Err(format!(
                "{name} has no LSC or MIC on record: enroll the phone first \
                 (capf device set {name} --operation install --key rsa2048)"
            ));
        }
    };
    let certificate = CaCertificate::from_der(&record.der, &format!("the {kind} of {name}"))
        .map_err(|e| e.to_string())?;
    Ok((certificate, kind))
}

/// Why a configuration cannot be encrypted, with what to do about an EC
/// phone certificate.
fn encryption_refused(e: &ProvisioningError, device: Option<&DeviceName>) -> String {
    match (e, device) {
        (ProvisioningError::EcPhoneCertificate { .. }, Some(name)) => format!(
            "{e}: schedule an install of an RSA key (capf device set {name} --operation install \
             --key rsa2048)"
        ),
        _ => e.to_string(),
    }
}

/// The two files of an encrypted configuration, written into `dir`.
fn write_encrypted(
    dir: &Path,
    files: &EncryptedConfigFiles,
    how: &Output,
) -> Result<(PathBuf, PathBuf), Failure> {
    let encrypted = dir.join(&files.encrypted_name);
    let stub = dir.join(&files.stub_name);
    output::check(&encrypted, how)?;
    output::check(&stub, how)?;
    // The encrypted file first: the new stub names the new certificate, so
    // a phone that reads it must find the file encrypted for it.
    output::write_file(&encrypted, &files.encrypted, how)?;
    output::write_file(&stub, &files.stub, how)?;
    Ok((encrypted, stub))
}

fn encrypt(data: &DataDir, args: EncryptArgs) -> Result<Outcome, Failure> {
    let config_name = base_name(&args.file)?;
    let device = args
        .device
        .as_deref()
        .map(DeviceName::parse)
        .transpose()
        .map_err(Failure::usage)?;
    if let Some(name) = &device {
        let prefix = config_name.get(..name.as_str().len());
        if !prefix.is_some_and(|p| p.eq_ignore_ascii_case(name.as_str())) {
            return Err(Failure::usage(format!(
                "{config_name} is not the configuration of {name}: phones ask for \
                 {name}.cnf.xml; give that file"
            )));
        }
    }
    // FILE's directory; empty for a bare file name (the current directory,
    // and the names printed stay as the operator gave them).
    let dir = match &args.out_dir {
        Some(dir) => dir.clone(),
        None => args
            .file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
    };
    let written = Output::public(args.force);
    output::check(&dir.join(format!("{config_name}.enc.sgn")), &written)?;
    output::check(&dir.join(format!("{config_name}.sgn")), &written)?;

    let signer = load_signer(&args.tftp, &named("--tftp", &args.tftp))?;
    let (certificate, kind) = match (&device, &args.certificate) {
        (Some(name), _) => {
            let store = super::device::open(data)?;
            let record = store
                .load(name)?
                .ok_or_else(|| Failure::new(format!("device {name} is not configured")))?;
            phone_certificate(&record).map_err(Failure::new)?
        }
        (None, Some(path)) => (
            load_certificate(path, &named("--certificate", path))?,
            "certificate",
        ),
        (None, None) => {
            return Err(Failure::usage("give --device NAME or --certificate CERT"));
        }
    };
    if certificate.not_after() < SystemTime::now() {
        eprintln!(
            "capf: warning: the {kind} {} expired on {}",
            certificate.subject(),
            time_text::format(certificate.not_after())
        );
    }
    let what = args.file.display().to_string();
    let config = read_file(&args.file, &what)?;
    if is_signed(&config) {
        return Err(Failure::new(format!(
            "{what} is a signed file: encrypt the phone's plain configuration instead"
        )));
    }
    let timestamp = timestamp_or_now(args.timestamp)?;
    let files = encrypt_config(
        &signer,
        &certificate,
        &config_name,
        &config,
        args.digest.algorithm(),
        timestamp,
    )
    .map_err(|e| {
        Failure::new(format!(
            "{what}: {}",
            encryption_refused(&e, device.as_ref())
        ))
    })?;
    let (encrypted, stub) = write_encrypted(&dir, &files, &written)?;
    let whose = device
        .as_ref()
        .map_or_else(String::new, |name| format!(" of {name}"));
    println!(
        "wrote {} ({} bytes): encrypted for the {kind}{whose}, {} (serial {})",
        encrypted.display(),
        files.encrypted.len(),
        certificate.subject(),
        certificate.serial_hex()
    );
    println!(
        "wrote {} ({} bytes): the signed stub phones read first (certHash {})",
        stub.display(),
        files.stub.len(),
        files.cert_hash
    );
    println!("  signed by TFTP {}", signer.certificate().subject());
    Ok(Outcome::Done)
}

// ---- decrypt ---------------------------------------------------------------

/// The phone's private key: the PKCS#8 block of a PEM file (a certificate
/// beside it is ignored), or PKCS#8 DER.
fn load_phone_key(path: &Path) -> Result<PrivateKey, Failure> {
    const BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
    const END: &str = "-----END PRIVATE KEY-----";
    let what = named("--key", path);
    let bytes = read_file(path, &what)?;
    let key_error = |e: capf_ca::CaError| Failure::new(format!("{what}: {e}"));
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return PrivateKey::from_pkcs8_der(&bytes).map_err(key_error);
    };
    if let Some(start) = text.find(BEGIN)
        && let Some(len) = text[start..].find(END)
    {
        return PrivateKey::from_pkcs8_pem(&text[start..start + len + END.len()])
            .map_err(key_error);
    }
    let hint = if text.contains("-----BEGIN RSA PRIVATE KEY-----") {
        "a PKCS#1 key: convert it with `openssl pkcs8 -topk8 -nocrypt -in KEY -out phone-key.pem`"
    } else if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        "the key is encrypted: decrypt it with `openssl pkcs8 -in KEY -out phone-key.pem`"
    } else {
        "no PRIVATE KEY in it: give the phone's PKCS#8 private key"
    };
    Err(Failure::new(format!("{what}: {hint}")))
}

fn decrypt(args: DecryptArgs) -> Result<Outcome, Failure> {
    let written = Output::secret(args.force);
    if let Some(out) = &args.out {
        output::check(out, &written)?;
    }
    let what = args.file.display().to_string();
    let bytes = read_file(&args.file, &what)?;
    let encrypted = EncryptedConfig::parse(&bytes).map_err(|e| {
        Failure::new(format!(
            "{what}: not an encrypted configuration this program can read: {e}"
        ))
    })?;
    match &args.tftp {
        Some(path) => {
            let tftp = load_certificate(path, &named("--tftp", path))?;
            encrypted.verify(&tftp).map_err(|e| {
                Failure::new(format!(
                    "{what}: not decrypted: the signature does not check: {e}"
                ))
            })?;
            eprintln!(
                "signature valid (TFTP {}, serial {})",
                tftp.subject(),
                encrypted.header.signer.serial_hex()
            );
        }
        None => eprintln!(
            "signature not checked (signed by {}, serial {}): add --tftp CERT to check it",
            encrypted.header.signer.name,
            encrypted.header.signer.serial_hex()
        ),
    }
    let key = load_phone_key(&args.key)?;
    let config = encrypted.decrypt(&key).map_err(|e| refused(&what, &e))?;
    match &args.out {
        Some(out) => {
            output::write_file(out, &config, &written)?;
            eprintln!("wrote {} ({} bytes)", out.display(), config.len());
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&config)?;
            stdout.flush()?;
        }
    }
    Ok(Outcome::Done)
}

// ---- capf-list -------------------------------------------------------------

/// One CAPF server of a phone's list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct CapfServer {
    host: String,
    port: u16,
}

/// `capf config capf-list --json`.
#[derive(Debug, Serialize)]
struct CapfListView {
    device: Option<String>,
    /// The authentication mode's name (`auth-string`, ...).
    auth_mode: Option<String>,
    /// The value of `<capfAuthMode>`.
    capf_auth_mode: Option<u8>,
    servers: Vec<CapfServer>,
    /// What goes in the phone's configuration.
    xml: String,
}

/// `HOST`, `HOST:PORT`, `[IPv6]`, `[IPv6]:PORT` or a bare IPv6 address;
/// the port defaults to the CAPF port.
fn parse_capf_server(text: &str) -> Result<CapfServer, Failure> {
    let given = text.trim();
    let bad = |why: &str| Failure::usage(format!("--server {given:?}: {why}"));
    let (host, port) = if let Some(rest) = given.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| bad("no ] after the IPv6 address"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| bad("expected :PORT after ]"))?,
            ),
        };
        (host, port)
    } else {
        match given.matches(':').count() {
            0 => (given, None),
            1 => match given.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (given, None),
            },
            _ => (given, None),
        }
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '%'))
    {
        return Err(bad("not a host name or an IP address"));
    }
    let port = match port {
        None => capf_server::CAPF_PORT,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| bad("the port must be a number from 1 to 65535"))?,
    };
    Ok(CapfServer {
        host: host.to_owned(),
        port,
    })
}

/// The elements for a phone's configuration.
fn capf_list_xml(mode: Option<AuthMode>, servers: &[CapfServer]) -> String {
    let mut xml = String::new();
    if let Some(mode) = mode {
        xml.push_str(&format!(
            "<capfAuthMode>{}</capfAuthMode>\n",
            mode.phone_capf_auth_mode()
        ));
    }
    xml.push_str("<capfList>\n");
    for s in servers {
        // Host names are checked to hold no character XML would escape.
        xml.push_str(&format!(
            "  <capf><processNodeName>{}</processNodeName><phonePort>{}</phonePort></capf>\n",
            s.host, s.port
        ));
    }
    xml.push_str("</capfList>\n");
    xml
}

fn capf_list(data: &DataDir, args: CapfListArgs) -> Result<Outcome, Failure> {
    if args.server.len() > MAX_CAPF_SERVERS {
        return Err(Failure::usage(format!(
            "--server given {} times: a phone's configuration lists at most \
             {MAX_CAPF_SERVERS} CAPF servers",
            args.server.len()
        )));
    }
    let servers = args
        .server
        .iter()
        .map(|s| parse_capf_server(s))
        .collect::<Result<Vec<_>, _>>()?;
    let mut mode: Option<AuthMode> = args.auth_mode;
    let device = args
        .device
        .as_deref()
        .map(DeviceName::parse)
        .transpose()
        .map_err(Failure::usage)?;
    if let Some(name) = &device {
        let store = super::device::open(data)?;
        let record = store
            .load(name)?
            .ok_or_else(|| Failure::new(format!("device {name} is not configured")))?;
        mode = Some(record.policy.auth_mode);
    }
    let xml = capf_list_xml(mode, &servers);
    if args.json {
        let view = CapfListView {
            device: device.map(|d| d.to_string()),
            auth_mode: mode.map(|m| m.name().to_owned()),
            capf_auth_mode: mode.map(AuthMode::phone_capf_auth_mode),
            servers,
            xml,
        };
        let text = serde_json::to_string_pretty(&view)
            .map_err(|e| Failure::new(format!("cannot write JSON: {e}")))?;
        println!("{text}");
    } else {
        print!("{xml}");
    }
    Ok(Outcome::Done)
}

// ---- capf serve --encrypted-config -----------------------------------------

/// `capf serve --encrypted-config DIR --tftp CERT+KEY`: after a phone's
/// LSC is installed or upgraded, `DIR/<device>.cnf.xml` is encrypted for
/// the new LSC into `DIR/<device>.cnf.xml.enc.sgn` and its stub
/// `DIR/<device>.cnf.xml.sgn`, each replaced in one step.
pub(crate) struct EncryptedConfigDir {
    dir: PathBuf,
    signer: FileSigner,
}

impl EncryptedConfigDir {
    /// Checks the directory and loads the TFTP key.
    pub(crate) fn open(dir: &Path, tftp: &Path) -> Result<EncryptedConfigDir, Failure> {
        let what = named("--encrypted-config", dir);
        let meta = std::fs::metadata(dir).map_err(|e| Failure::new(format!("{what}: {e}")))?;
        if !meta.is_dir() {
            return Err(Failure::new(format!("{what}: not a directory")));
        }
        let signer = load_signer(tftp, &named("--tftp", tftp))?;
        Ok(EncryptedConfigDir {
            dir: dir.to_path_buf(),
            signer,
        })
    }

    /// The directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The subject of the TFTP certificate that signs the files.
    pub(crate) fn signer_subject(&self) -> String {
        self.signer.certificate().subject()
    }

    /// The server's hook: each installed LSC's rewrite goes to the
    /// blocking pool (file and database work must not hold up the
    /// connection's task).
    pub(crate) fn hook(self: Arc<Self>, store: Arc<Store>) -> SessionHook {
        SessionHook::new(move |outcome| {
            let (OutcomeKind::Installed { .. }, Some(device)) = (&outcome.kind, &outcome.device)
            else {
                return;
            };
            let (this, store, device) = (self.clone(), store.clone(), device.clone());
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn_blocking(move || this.rewrite(&store, &device));
                }
                Err(_) => this.rewrite(&store, &device),
            }
        })
    }

    /// Rewrites the device's encrypted configuration, and logs what was
    /// done or why not.
    fn rewrite(&self, store: &Store, device: &DeviceName) {
        match self.try_rewrite(store, device) {
            Ok(Some(done)) => info!("{device}: {done}"),
            Ok(None) => {}
            Err(why) => warn!("{device}: encrypted configuration not rewritten: {why}"),
        }
    }

    fn try_rewrite(&self, store: &Store, device: &DeviceName) -> Result<Option<String>, String> {
        let config_name = format!("{device}.cnf.xml");
        let plain = self.dir.join(&config_name);
        let config = match std::fs::read(&plain) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                debug!(
                    "{device}: no {}: no encrypted configuration to rewrite",
                    plain.display()
                );
                return Ok(None);
            }
            Err(e) => return Err(format!("{}: {e}", plain.display())),
        };
        let record = store
            .load(device)
            .map_err(|e| e.to_string())?
            .ok_or("the device is no longer configured")?;
        let (certificate, kind) = phone_certificate(&record)?;
        let timestamp = unix_timestamp(SystemTime::now()).map_err(|e| e.to_string())?;
        let files = encrypt_config(
            &self.signer,
            &certificate,
            &config_name,
            &config,
            DigestAlgorithm::Sha1,
            timestamp,
        )
        .map_err(|e| {
            format!(
                "{}: {}",
                plain.display(),
                encryption_refused(&e, Some(device))
            )
        })?;
        let how = Output {
            secret: false,
            replace: Replace::Always,
        };
        let (encrypted, stub) = write_encrypted(&self.dir, &files, &how).map_err(|f| f.message)?;
        Ok(Some(format!(
            "rewrote {} and its stub {} for the new {kind} (serial {})",
            encrypted.display(),
            stub.display(),
            certificate.serial_hex()
        )))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn servers_take_the_capf_port_by_default() {
        let port = capf_server::CAPF_PORT;
        let s = |t: &str| parse_capf_server(t).ok().map(|s| (s.host, s.port));
        assert_eq!(s("capf1"), Some(("capf1".into(), port)));
        assert_eq!(s("capf1:4000"), Some(("capf1".into(), 4000)));
        assert_eq!(s("[::1]"), Some(("::1".into(), port)));
        assert_eq!(s("[::1]:99"), Some(("::1".into(), 99)));
        assert_eq!(s("fe80::1"), Some(("fe80::1".into(), port)));
        assert!(parse_capf_server("capf:0").is_err());
        assert!(parse_capf_server("capf:x").is_err());
        assert!(parse_capf_server("a<b").is_err());
        assert!(parse_capf_server(" ").is_err());
    }

    #[test]
    fn capf_list_xml_names_every_server_in_order() {
        let servers = [
            parse_capf_server("a").unwrap(),
            parse_capf_server("b:99").unwrap(),
        ];
        assert_eq!(
            capf_list_xml(Some(AuthMode::NullString), &servers),
            "<capfAuthMode>2</capfAuthMode>\n<capfList>\n  \
             <capf><processNodeName>a</processNodeName><phonePort>3804</phonePort></capf>\n  \
             <capf><processNodeName>b</processNodeName><phonePort>99</phonePort></capf>\n\
             </capfList>\n"
        );
    }
}
