//! `capf ca show|export|issue`: the CAPF certificate and offline
//! LSC issuance for manual enrollment and testing.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use capf_ca::{CaCertificate, KeyPolicy, KeySpec, validate_phone_key};
use capf_operations::{CertificateRecord, DeviceName, IssuedRecord, OperatorStore};
use clap::{Subcommand, ValueEnum};
use serde_json::{Value, json};

use super::device::open;
use crate::data_dir::DataDir;
use crate::output::print_json;
use crate::output::{self, Output, Replace};
use crate::{Failure, Outcome, time_text};

/// Certificate encodings for `capf ca export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Base64 text with BEGIN/END lines.
    Pem,
    /// Binary DER.
    Der,
}

/// `capf ca` subcommands.
#[derive(Debug, Subcommand)]
#[command(
    after_help = "Examples:\n  capf ca show\n  capf ca export --hashed-dir /etc/capf/trust\n  capf ca issue --device SEP001122334455 --public-key phone.pub"
)]
pub(crate) enum CaCommand {
    /// Show the CAPF certificate (and the separate LSC issuer, if any).
    #[command(after_help = "Examples:\n  capf ca show\n  capf ca show --json")]
    Show {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the CAPF certificate: to stdout or a file, or into an OpenSSL-style hashed directory.
    #[command(after_help = "Examples:\n  \
        capf ca export                              PEM on stdout\n  \
        capf ca export --format der --out capf.der\n  \
        capf ca export --out capf.pem --force       replace an older export\n  \
        capf ca export --hashed-dir /etc/capf/trust writes /etc/capf/trust/<subject-hash>.0\n\n\
        Files: an existing FILE is replaced only with --force, and never when it holds a \
        private key (capf-key.pem, issuer-key.pem). A symbolic link is never written \
        through. The file is written whole or not at all (mode 0644: the certificate is \
        public). --hashed-dir leaves a <hash>.N file or link that already holds this \
        certificate as it is, and takes the next free number when another certificate \
        has the same subject hash.")]
    Export {
        /// Encoding.
        #[arg(long, value_enum, default_value_t = Format::Pem)]
        format: Format,
        /// Write to FILE instead of stdout.
        #[arg(long, value_name = "FILE", conflicts_with = "hashed_dir")]
        out: Option<PathBuf>,
        /// Write DIR/<subject-hash>.0 (PEM), as `openssl rehash` names CA files.
        #[arg(long, value_name = "DIR")]
        hashed_dir: Option<PathBuf>,
        /// Replace FILE if it exists (never a file holding a private key).
        #[arg(long, requires = "out")]
        force: bool,
    },
    /// Issue an LSC offline for a device, from its public key (manual enrollment, testing).
    #[command(
        after_help = "The key is a PEM `PUBLIC KEY` or a DER SubjectPublicKeyInfo, e.g. from\n  \
        openssl ecparam -name prime256v1 -genkey -noout -out phone.key\n  \
        openssl ec -in phone.key -pubout -out phone.pub\n\n\
        Examples:\n  \
        capf ca issue --device SEP001122334455 --public-key phone.pub\n  \
        capf ca issue --device SEP001122334455 --public-key phone.der --out lsc.pem --key p256\n\n\
        The LSC's validity is the service parameter lsc_validity_years; the issuance\n\
        is recorded in the device's audit log.\n\n\
        --out FILE: an existing FILE is replaced only with --force, and never when it holds a\n\
        private key; a symbolic link is never written through. FILE is checked before the\n\
        certificate is issued."
    )]
    Issue {
        /// Device name (the certificate's CN).
        #[arg(long, value_name = "NAME")]
        device: String,
        /// The phone's public key (PEM or DER SubjectPublicKeyInfo).
        #[arg(long, value_name = "FILE")]
        public_key: PathBuf,
        /// Write the certificate (PEM) to FILE instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Replace FILE if it exists (never a file holding a private key).
        #[arg(long, requires = "out")]
        force: bool,
        /// Require this key kind.
        #[arg(long, value_name = "KEY", value_parser = crate::values::key())]
        key: Option<KeySpec>,
        /// Print JSON: the certificate's subject, serial, SHA-256, validity,
        /// key, the file written (or the PEM when there is no --out).
        #[arg(long)]
        json: bool,
    },
}

/// What `capf ca issue --json` prints.
#[derive(Debug, serde::Serialize)]
struct IssuedJson {
    device: String,
    subject: String,
    serial: String,
    sha256: String,
    not_before: String,
    not_after: String,
    key: String,
    /// The file written (--out).
    #[serde(skip_serializing_if = "Option::is_none")]
    out: Option<String>,
    /// The certificate, when not written to a file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pem: Option<String>,
}

fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn key_text(spec: KeySpec) -> String {
    match spec {
        KeySpec::Rsa { bits } => format!("RSA {bits} bits"),
        KeySpec::Ec(_) => format!(
            "ECDSA {}",
            curve_name(spec).unwrap_or_else(|| spec.to_string())
        ),
    }
}

fn curve_name(spec: KeySpec) -> Option<String> {
    match spec.to_string().as_str() {
        "p256" => Some("P-256".into()),
        "p384" => Some("P-384".into()),
        "p521" => Some("P-521".into()),
        _ => None,
    }
}

fn validity_note(cert: &CaCertificate, now: SystemTime) -> String {
    match cert.not_after().duration_since(now) {
        Ok(left) => format!("{} days left", left.as_secs() / 86_400),
        Err(_) => "EXPIRED".into(),
    }
}

fn describe(cert: &CaCertificate, now: SystemTime) -> Result<Value, Failure> {
    let key = cert.public_key()?.spec();
    Ok(json!({
        "subject": cert.subject(),
        "issuer": cert.issuer(),
        "serial": cert.serial_hex(),
        "key": key.to_string(),
        "key_description": key_text(key),
        "not_before": time_text::format(cert.not_before()),
        "not_after": time_text::format(cert.not_after()),
        "expired": cert.not_after() < now,
        "sha256_fingerprint": colon_hex(&cert.fingerprint_sha256()),
        "sha1_fingerprint": colon_hex(&cert.fingerprint_sha1()),
        "hashed_file_name": cert.hashed_file_name()?,
    }))
}

fn print_cert(title: &str, cert: &CaCertificate, now: SystemTime) -> Result<(), Failure> {
    let key = cert.public_key()?.spec();
    let line = |k: &str, v: &str| println!("  {k:<20}{v}");
    println!("{title}");
    line("Subject", &cert.subject());
    line("Issuer", &cert.issuer());
    line("Serial", &cert.serial_hex());
    line("Key", &key_text(key));
    line("Not before", &time_text::format(cert.not_before()));
    line(
        "Not after",
        &format!(
            "{} ({})",
            time_text::format(cert.not_after()),
            validity_note(cert, now)
        ),
    );
    line("SHA-256", &colon_hex(&cert.fingerprint_sha256()));
    line("SHA-1", &colon_hex(&cert.fingerprint_sha1()));
    line("Hashed file name", &cert.hashed_file_name()?);
    Ok(())
}

/// Decodes standard base64 (whitespace ignored).
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|c| !c.is_ascii_whitespace()) {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

/// Reads a public key file: PEM `PUBLIC KEY` or DER SubjectPublicKeyInfo.
fn read_public_key(path: &Path) -> Result<Vec<u8>, Failure> {
    let bytes =
        std::fs::read(path).map_err(|e| Failure::new(format!("{}: {e}", path.display())))?;
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return Ok(bytes);
    };
    let Some(begin) = text.find("-----BEGIN ") else {
        return Ok(bytes);
    };
    let rest = &text[begin + "-----BEGIN ".len()..];
    let label = rest.split("-----").next().unwrap_or_default();
    if label != "PUBLIC KEY" {
        let hint = match label {
            "RSA PUBLIC KEY" => {
                " (a PKCS#1 key: convert with `openssl rsa -RSAPublicKey_in -in FILE -pubout`)"
            }
            "CERTIFICATE" => " (extract the key with `openssl x509 -in FILE -pubkey -noout`)",
            l if l.contains("PRIVATE KEY") => {
                " (that is a private key: give only the public key, `openssl pkey -in FILE -pubout`)"
            }
            _ => "",
        };
        return Err(Failure::usage(format!(
            "{}: expected a PEM \"PUBLIC KEY\", found \"{label}\"{hint}",
            path.display()
        )));
    }
    let body_start = rest.find('\n').map_or(rest.len(), |i| i + 1);
    let body = &rest[body_start..];
    let body = body.split("-----END").next().unwrap_or_default();
    base64_decode(body)
        .filter(|d| !d.is_empty())
        .ok_or_else(|| Failure::usage(format!("{}: the PEM body is not base64", path.display())))
}

/// Writes `DIR/<hash>.N`: `.0` unless another certificate with the same
/// subject hash holds it (then the next free number, as `openssl rehash`).
/// An existing file or link to this certificate is left as it is (`openssl
/// rehash` makes such links); a link that points nowhere, or to something
/// other than a file, is refused: nothing is written through a link.
fn write_hashed(dir: &Path, cert: &CaCertificate) -> Result<PathBuf, Failure> {
    std::fs::create_dir_all(dir).map_err(|e| Failure::new(format!("{}: {e}", dir.display())))?;
    let name = cert.hashed_file_name()?;
    let stem = name.strip_suffix(".0").unwrap_or(&name).to_owned();
    let pem = cert.pem();
    let holds_this = |path: &Path| -> Result<bool, Failure> {
        let existing =
            std::fs::read(path).map_err(|e| Failure::new(format!("{}: {e}", path.display())))?;
        Ok(std::str::from_utf8(&existing)
            .ok()
            .and_then(|text| CaCertificate::from_pem(text, "existing").ok())
            .is_some_and(|c| c.der() == cert.der()))
    };
    for n in 0..100 {
        let path = dir.join(format!("{stem}.{n}"));
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let how = Output {
                    secret: false,
                    replace: Replace::Refuse,
                };
                output::write_file(&path, pem.as_bytes(), &how)?;
                return Ok(path);
            }
            Err(e) => return Err(Failure::new(format!("{}: {e}", path.display()))),
        };
        let is_file = if meta.file_type().is_symlink() {
            match std::fs::metadata(&path) {
                Ok(target) if target.is_file() => true,
                _ => {
                    return Err(Failure::new(format!(
                        "{} is a symbolic link that points nowhere or not to a file: capf does \
                         not write through links; remove it or choose another directory",
                        path.display()
                    )));
                }
            }
        } else {
            meta.is_file()
        };
        if is_file && holds_this(&path)? {
            return Ok(path);
        }
    }
    Err(Failure::new(format!(
        "{}: too many certificates with subject hash {stem}",
        dir.display()
    )))
}

pub(crate) fn run(data: &DataDir, command: CaCommand) -> Result<Outcome, Failure> {
    let now = SystemTime::now();
    let identity = data.identity()?;
    let cert = identity.certificate();
    let separate_issuer = data.path(DataDir::ISSUER_CERT).exists();
    match command {
        CaCommand::Show { json } => {
            let issuer = if separate_issuer {
                Some(data.issuer(&identity)?)
            } else {
                None
            };
            if json {
                let mut out = json!({ "capf": describe(cert, now)? });
                if let Some(issuer) = &issuer {
                    out["issuer"] = describe(issuer.certificate(), now)?;
                }
                println!("{out:#}");
            } else {
                print_cert("CAPF certificate", cert, now)?;
                match &issuer {
                    Some(issuer) => {
                        println!();
                        print_cert(
                            "LSC issuer (issuer.pem; LSCs are signed by it)",
                            issuer.certificate(),
                            now,
                        )?;
                    }
                    None => println!("\nLSCs are signed by the CAPF certificate itself."),
                }
            }
        }
        CaCommand::Export {
            format,
            out,
            hashed_dir,
            force,
        } => {
            if let Some(dir) = hashed_dir {
                if format == Format::Der {
                    return Err(Failure::usage("--hashed-dir writes PEM; drop --format der"));
                }
                let path = write_hashed(&dir, cert)?;
                println!("{}", path.display());
                return Ok(Outcome::Done);
            }
            let bytes = match format {
                Format::Pem => cert.pem().into_bytes(),
                Format::Der => cert.der().to_vec(),
            };
            match out {
                Some(path) => output::write_file(&path, &bytes, &Output::public(force))?,
                None => {
                    let mut stdout = std::io::stdout();
                    if format == Format::Der && stdout.is_terminal() {
                        return Err(Failure::usage(
                            "refusing to write binary DER to a terminal: add --out FILE or redirect (> capf.der)",
                        ));
                    }
                    stdout.write_all(&bytes)?;
                }
            }
        }
        CaCommand::Issue {
            device,
            public_key,
            out,
            force,
            key,
            json,
        } => {
            let name = DeviceName::parse(&device).map_err(Failure::usage)?;
            let requested: Option<KeySpec> = key;
            // The file is checked before the certificate is issued and
            // recorded, so that a refused path leaves no issued record.
            let written = Output::public(force);
            if let Some(path) = &out {
                output::check(path, &written)?;
            }
            let spki = read_public_key(&public_key)?;
            let spec = validate_phone_key(&spki, &KeyPolicy::default(), requested)
                .map_err(|e| Failure::new(format!("{}: {e}", public_key.display())))?;
            let store = open(data)?;
            let params = store.load_parameters()?;
            let issuer = data.issuer(&identity)?;
            let lsc = issuer.issue_lsc(name.as_str(), &spki, &params.lsc_profile(), now)?;
            // Recorded like every certificate this CAPF issues, but never
            // as the device's LSC on record: only a certificate the phone
            // confirmed through CAPF authenticates it.
            let record = IssuedRecord {
                device: name.clone(),
                certificate: CertificateRecord::from_der(&lsc.der, &name)?,
                issued_at: now,
                delivered: false,
            };
            store.record_issued(&record, now)?;
            let pem = lsc.pem();
            if let Some(path) = &out {
                output::write_file(path, pem.as_bytes(), &written)?;
            }
            if json {
                return print_json(&IssuedJson {
                    device: name.to_string(),
                    subject: lsc.subject.clone(),
                    serial: lsc.serial_hex.clone(),
                    sha256: record.certificate.fingerprint_sha256(),
                    not_before: crate::time_text::format(record.certificate.not_before),
                    not_after: crate::time_text::format(record.certificate.not_after),
                    key: spec.to_string(),
                    out: out.as_ref().map(|p| p.display().to_string()),
                    pem: out.is_none().then_some(pem),
                })
                .map(|()| Outcome::Done);
            }
            match out {
                Some(path) => {
                    eprintln!(
                        "issued {} for {name} ({spec}, serial {}) to {}",
                        lsc.subject,
                        lsc.serial_hex,
                        path.display()
                    );
                }
                None => print!("{pem}"),
            }
        }
    }
    Ok(Outcome::Done)
}
