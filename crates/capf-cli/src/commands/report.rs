//! `capf report`: the CAPF report as CSV, for every device or those
//! matching the `capf find` criteria. It holds the authentication strings
//! in clear, so the file is written with mode 0600.
//!
//! The report is meant to be opened in a spreadsheet, edited and given back
//! to `capf device import`, so its cells are written to be safe there (see
//! [`spreadsheet_cell`]) and the import reads them back unchanged.

use std::io::Write;
use std::path::PathBuf;

use capf_operations::OperatorStore;
use capf_operations::report::{HEADER, row};
use clap::Args;

use super::device::open;
use super::find::Criteria;
use crate::data_dir::DataDir;
use crate::output::{self, Output};
use crate::{Failure, Outcome};

/// Arguments of `capf report`.
#[derive(Debug, Args)]
#[command(
    after_help = "Columns: Device Name, Description, Security Mode, Authentication String, \
    Authentication Mode, LSC Status, Certificate Operation, Operation Status, Completes By.\n\
    The authentication strings are in clear: the file is written with mode 0600 (a new \
    file, whatever stood there before). An existing FILE is replaced only with --force, \
    never when it holds a private key; a symbolic link is never written through.\n\n\
    Spreadsheets: a cell that begins with =, +, -, @, a tab, a carriage return or an \
    apostrophe is written with a leading apostrophe ('), so that a spreadsheet shows it as \
    text and never runs it as a formula. An authentication string that begins with 0 gets \
    the apostrophe too, so that its leading zeros stay (other strings are plain digits, \
    which a spreadsheet shows as they are). Some spreadsheets show the apostrophe; it is \
    not part of the value. `capf device import` takes the report's columns and removes \
    the apostrophe: a report, edited and imported, changes what was edited.\n\n\
    Examples:\n  \
    capf report --output capf-report.csv\n  \
    capf report --output capf-report.csv --force          replace last week's report\n  \
    capf report --output pending.csv --status pending --operation install\n  \
    capf report --output - --lsc-status not-installed | column -s, -t"
)]
pub(crate) struct ReportArgs {
    /// Where to write the CSV (`-` for standard output).
    #[arg(long, short, value_name = "FILE")]
    output: PathBuf,
    /// Replace FILE if it exists (never a file holding a private key).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    criteria: Criteria,
}

pub(crate) fn run(data: &DataDir, args: ReportArgs) -> Result<Outcome, Failure> {
    let query = args.criteria.query()?;
    let to_stdout = args.output.as_os_str() == "-";
    let written = Output::secret(args.force);
    if !to_stdout {
        output::check(&args.output, &written)?;
    }
    let store = open(data)?;
    let page = store.find(&query)?;
    let mut csv = csv::Writer::from_writer(Vec::new());
    let csv_error = |e: csv::Error| Failure::new(format!("writing the report: {e}"));
    csv.write_record(HEADER).map_err(csv_error)?;
    for device in &page.devices {
        csv.write_record(row(device, true)).map_err(csv_error)?;
    }
    let bytes = csv
        .into_inner()
        .map_err(|e| Failure::new(format!("writing the report: {e}")))?;
    if to_stdout {
        std::io::stdout().write_all(&bytes)?;
    } else {
        output::write_file(&args.output, &bytes, &written)?;
        eprintln!(
            "wrote {} to {} (mode 0600: it holds authentication strings in clear)",
            super::device::count_text(page.devices.len()),
            args.output.display()
        );
    }
    Ok(Outcome::Done)
}
