//! `capf init`: create the data directory.

use std::time::SystemTime;

use capf_ca::{CertValidity, IdentityParams, KeySpec};
use clap::Args;

use crate::data_dir::DataDir;
use crate::output::print_json;
use crate::{Failure, Outcome};
use serde::Serialize;

/// Arguments of `capf init`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    capf init\n  \
    capf init --json\n  \
    capf --data-dir /var/lib/capf init --key p256 --organization Example --unit Voice")]
pub(crate) struct InitArgs {
    /// The CAPF key: rsa2048 (default; every phone supports RSA), rsa3072, rsa4096, p256, p384.
    #[arg(long, default_value = "rsa2048", value_parser = parse_capf_key)]
    key: KeySpec,
    /// O= of the CAPF certificate (also copied into every LSC's subject).
    #[arg(long)]
    organization: Option<String>,
    /// OU= of the CAPF certificate (also copied into every LSC's subject).
    #[arg(long)]
    unit: Option<String>,
    /// Validity of the CAPF certificate in years.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=30))]
    validity_years: u32,
    /// Print JSON: the files made and the certificate's subject and SHA-256.
    #[arg(long)]
    json: bool,
}

/// What `capf init --json` prints.
#[derive(Debug, Serialize)]
struct InitJson {
    data_dir: String,
    certificate: String,
    key: String,
    hashed_copy: String,
    database: String,
    subject: String,
    sha256: String,
    capf_key: String,
}

fn parse_capf_key(s: &str) -> Result<KeySpec, String> {
    let spec: KeySpec = s.parse().map_err(|e: capf_ca::CaError| e.to_string())?;
    match spec {
        KeySpec::Rsa {
            bits: 2048 | 3072 | 4096,
        }
        | KeySpec::Ec(capf_ca::EcCurve::P256 | capf_ca::EcCurve::P384) => Ok(spec),
        _ => Err("the CAPF key must be rsa2048, rsa3072, rsa4096, p256 or p384".into()),
    }
}

pub(crate) fn run(data: &DataDir, args: InitArgs) -> Result<Outcome, Failure> {
    if data.is_initialised() {
        return Err(Failure::new(format!(
            "{} is already initialised; remove it or choose another --data-dir",
            data.root().display()
        )));
    }
    let params = IdentityParams {
        key: args.key,
        organization: args.organization,
        organizational_unit: args.unit,
        validity: CertValidity::Years(args.validity_years),
        ..IdentityParams::default()
    };
    if matches!(args.key, KeySpec::Rsa { bits } if bits >= 3072) {
        eprintln!("generating a {} key, this can take a while...", args.key);
    }
    let report = data.init(&params, SystemTime::now())?;
    let cert = report.identity.certificate();
    if args.json {
        print_json(&InitJson {
            data_dir: data.root().display().to_string(),
            certificate: report.certificate.display().to_string(),
            key: report.key.display().to_string(),
            hashed_copy: report.hashed_copy.display().to_string(),
            database: report.database.to_string(),
            subject: cert.subject(),
            sha256: hex::encode(cert.fingerprint_sha256()),
            capf_key: args.key.to_string(),
        })?;
        return Ok(Outcome::Done);
    }
    println!("initialised {}", data.root().display());
    println!(
        "  CAPF certificate  {}  ({})",
        report.certificate.display(),
        cert.subject()
    );
    println!("  private key       {}  (mode 0600)", report.key.display());
    println!("  hashed copy       {}", report.hashed_copy.display());
    println!("  database          {}", report.database);
    println!(
        "  SHA-256           {}",
        hex::encode(cert.fingerprint_sha256())
    );
    Ok(Outcome::Done)
}
