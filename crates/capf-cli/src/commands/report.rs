//! `capf report`: the CAPF report as CSV, for every device or those
//! matching the `capf find` criteria. It holds the authentication strings
//! in clear, so the file is created with mode 0600.

use std::io::Write;
use std::path::{Path, PathBuf};

use capf_operations::{Device, OperatorStore};
use clap::Args;

use super::device::open;
use super::find::Criteria;
use crate::data_dir::DataDir;
use crate::{Failure, Outcome, time_text};

/// Arguments of `capf report`.
#[derive(Debug, Args)]
#[command(
    after_help = "Columns: Device Name, Description, Security Mode, Authentication String, \
    Authentication Mode, LSC Status, Certificate Operation, Operation Status, Completes By.\n\
    The authentication strings are in clear: the file is written with mode 0600.\n\n\
    Examples:\n  \
    capf report --output capf-report.csv\n  \
    capf report --output pending.csv --status pending --operation install\n  \
    capf report --output - --lsc-status not-installed | column -s, -t"
)]
pub(crate) struct ReportArgs {
    /// Where to write the CSV (`-` for standard output).
    #[arg(long, short, value_name = "FILE")]
    output: PathBuf,
    #[command(flatten)]
    criteria: Criteria,
}

/// The report's header row.
const HEADER: [&str; 9] = [
    "Device Name",
    "Description",
    "Security Mode",
    "Authentication String",
    "Authentication Mode",
    "LSC Status",
    "Certificate Operation",
    "Operation Status",
    "Completes By",
];

fn row(device: &Device) -> [String; 9] {
    let p = &device.policy;
    [
        device.name.as_str().to_owned(),
        device.description.clone(),
        p.security_mode.name().to_owned(),
        p.auth_string
            .as_ref()
            .map(|s| s.expose().to_owned())
            .unwrap_or_default(),
        p.auth_mode.label().to_owned(),
        device.lsc_status().to_owned(),
        p.operation.label().to_owned(),
        device.status_label(),
        p.completes_by.map(time_text::format).unwrap_or_default(),
    ]
}

/// Writes `bytes` to `path`, creating or truncating it with mode 0600 (an
/// existing file is narrowed to 0600 too).
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let fail = |e: std::io::Error| Failure::new(format!("{}: {e}", path.display()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let file = options.open(path).map_err(fail)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(fail)?;
        let mut file = file;
        file.write_all(bytes).map_err(fail)?;
        file.sync_all().map_err(fail)?;
    }
    #[cfg(not(unix))]
    {
        let mut file = options.open(path).map_err(fail)?;
        file.write_all(bytes).map_err(fail)?;
    }
    Ok(())
}

pub(crate) fn run(data: &DataDir, args: ReportArgs) -> Result<Outcome, Failure> {
    let query = args.criteria.query()?;
    let store = open(data)?;
    let page = store.find(&query)?;
    let mut csv = csv::Writer::from_writer(Vec::new());
    let csv_error = |e: csv::Error| Failure::new(format!("writing the report: {e}"));
    csv.write_record(HEADER).map_err(csv_error)?;
    for device in &page.devices {
        csv.write_record(row(device)).map_err(csv_error)?;
    }
    let bytes = csv
        .into_inner()
        .map_err(|e| Failure::new(format!("writing the report: {e}")))?;
    if args.output.as_os_str() == "-" {
        std::io::stdout().write_all(&bytes)?;
    } else {
        write_private(&args.output, &bytes)?;
        eprintln!(
            "wrote {} device(s) to {} (mode 0600: it holds authentication strings in clear)",
            page.devices.len(),
            args.output.display()
        );
    }
    Ok(Outcome::Done)
}
