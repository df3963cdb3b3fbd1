//! `capf find`: search devices by text, LSC status, operation and status,
//! every criterion ANDed, sorted and paged.

use capf_auth::Operation;
use capf_operations::{
    DeviceQuery, OperatorStore, SortColumn, StatusFilter, TextCriterion, TextField, TextMatch,
};
use clap::Args;

use super::device::{count_text, open, print_table};
use crate::data_dir::DataDir;
use crate::device_view::{DeviceJson, DevicePageJson};
use crate::output::print_json;
use crate::values::{self, LscStatus};
use crate::{Failure, Outcome};

/// Search criteria, shared by `capf find`, `capf report` and
/// `capf device set --where`.
#[derive(Debug, Args)]
pub(crate) struct Criteria {
    /// Device name matches PATTERN (see --match).
    #[arg(long, value_name = "PATTERN")]
    name: Option<String>,
    /// Description matches PATTERN (see --match).
    #[arg(long, value_name = "PATTERN")]
    description: Option<String>,
    /// Armed authentication string matches PATTERN (see --match).
    #[arg(long, value_name = "PATTERN")]
    auth_string: Option<String>,
    /// How the text patterns match. Applies to every text criterion unless
    /// --name-match, --description-match or --auth-string-match says
    /// otherwise. Case is ignored.
    #[arg(long = "match", value_name = "HOW", default_value = "contains",
          value_parser = values::text_match())]
    how: TextMatch,
    /// How --name matches (overrides --match); alone, `empty` or `not-empty` needs no pattern.
    #[arg(long, value_name = "HOW", value_parser = values::text_match())]
    name_match: Option<TextMatch>,
    /// How --description matches (overrides --match); alone, `empty` or `not-empty` needs no pattern.
    #[arg(long, value_name = "HOW", value_parser = values::text_match())]
    description_match: Option<TextMatch>,
    /// How --auth-string matches (overrides --match); alone, `empty` or `not-empty` needs no pattern.
    #[arg(long, value_name = "HOW", value_parser = values::text_match())]
    auth_string_match: Option<TextMatch>,
    /// LSC status.
    #[arg(long, value_name = "STATUS", value_parser = values::lsc_status())]
    lsc_status: Option<LscStatus>,
    /// Scheduled operation.
    #[arg(long, value_name = "OP", value_parser = values::operation())]
    operation: Option<Operation>,
    /// Operation status.
    #[arg(long, value_name = "STATE", value_parser = values::status())]
    status: Option<StatusFilter>,
    /// Sort column.
    #[arg(long, value_name = "COLUMN", default_value = "name", value_parser = values::sort_column())]
    sort: SortColumn,
    /// Sort descending.
    #[arg(long)]
    desc: bool,
}

impl Criteria {
    /// The query these criteria describe (all devices on one page).
    pub(crate) fn query(&self) -> Result<DeviceQuery, Failure> {
        let mut text = Vec::new();
        for (field, pattern, how) in [
            (TextField::Name, &self.name, self.name_match),
            (
                TextField::Description,
                &self.description,
                self.description_match,
            ),
            (
                TextField::AuthString,
                &self.auth_string,
                self.auth_string_match,
            ),
        ] {
            if let Some(criterion) =
                TextCriterion::from_parts(field, pattern.as_deref(), how, self.how)
                    .map_err(Failure::usage)?
            {
                text.push(criterion);
            }
        }
        Ok(DeviceQuery {
            text,
            lsc_installed: self.lsc_status.map(|s| s.installed),
            operation: self.operation,
            status: self.status,
            sort: self.sort,
            descending: self.desc,
            page: 1,
            per_page: 0,
        })
    }
}

/// Arguments of `capf find`.
#[derive(Debug, Args)]
#[command(
    after_help = "Every criterion given must hold (AND). Text matching ignores case.\n\n\
    Examples:\n  \
    capf find --name SEP0011 --match begins-with\n  \
    capf find --lsc-status not-installed --operation install --status pending\n  \
    capf find --description lobby --sort status --desc --page 2 --per-page 20\n  \
    capf find --auth-string-match not-empty --json\n  \
    capf find --status failed --name 55 --name-match ends-with"
)]
pub(crate) struct FindArgs {
    #[command(flatten)]
    criteria: Criteria,
    /// Page to show, from 1.
    #[arg(long, value_name = "N", default_value_t = 1)]
    page: usize,
    /// Devices per page (0: all on one page).
    #[arg(long, value_name = "M", default_value_t = 50)]
    per_page: usize,
    /// Print JSON: {page, pages, per_page, total, devices}.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(data: &DataDir, args: FindArgs) -> Result<Outcome, Failure> {
    if args.page == 0 {
        return Err(Failure::usage("--page counts from 1"));
    }
    let mut query = args.criteria.query()?;
    query.page = args.page;
    query.per_page = args.per_page;
    let store = open(data)?;
    let page = store.find(&query)?;
    let pages = match page.per_page {
        0 => 1,
        n => page.total.div_ceil(n).max(1),
    };
    if args.json {
        print_json(&DevicePageJson {
            page: page.page,
            pages,
            per_page: page.per_page,
            total: page.total,
            devices: page.devices.iter().map(DeviceJson::of).collect(),
        })?;
    } else {
        print_table(&page.devices);
        let shown = page.devices.len();
        if pages > 1 || shown != page.total {
            let first = (page.page - 1) * page.per_page + 1;
            if shown == 0 {
                println!(
                    "no devices on page {} ({} found)",
                    page.page,
                    count_text(page.total)
                );
            } else if shown == 1 {
                println!(
                    "device {first} of {} (page {} of {pages})",
                    page.total, page.page
                );
            } else {
                println!(
                    "devices {first}-{} of {} (page {} of {pages})",
                    first + shown - 1,
                    page.total,
                    page.page
                );
            }
        } else {
            println!("{} found", count_text(page.total));
        }
        if page.page > pages {
            println!("(there are only {pages} page(s): try --page {pages})");
        }
    }
    Ok(Outcome::Done)
}
