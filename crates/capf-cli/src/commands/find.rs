//! `capf find`: search devices by text, LSC status, operation and status,
//! every criterion ANDed, sorted and paged.

use capf_operations::{
    DeviceQuery, OperatorStore, SortColumn, StatusFilter, TextCriterion, TextField, TextMatch,
};
use clap::Args;
use serde_json::json;

use super::device::{open, print_table};
use crate::data_dir::DataDir;
use crate::{Failure, Outcome, device_view};

/// Search criteria, shared by `capf find` and `capf report`.
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
    /// How the text patterns match: begins-with, contains, ends-with, exact,
    /// empty or not-empty. Applies to every text criterion unless
    /// --name-match, --description-match or --auth-string-match says
    /// otherwise. Case is ignored.
    #[arg(long = "match", value_name = "HOW", default_value = "contains")]
    how: String,
    /// How --name matches (overrides --match); alone, `empty` or `not-empty` needs no pattern.
    #[arg(long, value_name = "HOW")]
    name_match: Option<String>,
    /// How --description matches (overrides --match); alone, `empty` or `not-empty` needs no pattern.
    #[arg(long, value_name = "HOW")]
    description_match: Option<String>,
    /// How --auth-string matches (overrides --match); alone, `empty` or `not-empty` needs no pattern.
    #[arg(long, value_name = "HOW")]
    auth_string_match: Option<String>,
    /// LSC status: installed or not-installed.
    #[arg(long, value_name = "STATUS")]
    lsc_status: Option<String>,
    /// Scheduled operation: install, delete, troubleshoot or none.
    #[arg(long, value_name = "OP")]
    operation: Option<String>,
    /// Operation status: none, pending, successful or failed.
    #[arg(long, value_name = "STATE")]
    status: Option<String>,
    /// Sort column: name, description, operation, status, lsc-status,
    /// auth-mode or security-mode.
    #[arg(long, value_name = "COLUMN", default_value = "name")]
    sort: String,
    /// Sort descending.
    #[arg(long)]
    desc: bool,
}

fn usage<E: std::fmt::Display>(e: E) -> Failure {
    Failure::usage(e)
}

impl Criteria {
    /// The query these criteria describe (all devices on one page).
    pub(crate) fn query(&self) -> Result<DeviceQuery, Failure> {
        let default_how: TextMatch = self.how.parse().map_err(usage)?;
        let mut text = Vec::new();
        for (field, pattern, how) in [
            (TextField::Name, &self.name, &self.name_match),
            (
                TextField::Description,
                &self.description,
                &self.description_match,
            ),
            (
                TextField::AuthString,
                &self.auth_string,
                &self.auth_string_match,
            ),
        ] {
            let how: Option<TextMatch> =
                how.as_deref().map(str::parse).transpose().map_err(usage)?;
            let criterion = match (pattern, how) {
                (None, None) => continue,
                (Some(p), how) => TextCriterion {
                    field,
                    how: how.unwrap_or(default_how),
                    pattern: p.clone(),
                },
                (None, Some(how @ (TextMatch::Empty | TextMatch::NotEmpty))) => TextCriterion {
                    field,
                    how,
                    pattern: String::new(),
                },
                (None, Some(_)) => {
                    return Err(Failure::usage(format!(
                        "a {} match needs a pattern: --{} PATTERN",
                        field_flag(field),
                        field_flag(field)
                    )));
                }
            };
            text.push(criterion);
        }
        let lsc_installed = match self.lsc_status.as_deref() {
            None => None,
            Some("installed") => Some(true),
            Some("not-installed") => Some(false),
            Some(other) => {
                return Err(Failure::usage(format!(
                    "--lsc-status {other:?}: use installed or not-installed"
                )));
            }
        };
        let operation = self
            .operation
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(usage)?;
        let status: Option<StatusFilter> = self
            .status
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(usage)?;
        let sort: SortColumn = self.sort.parse().map_err(usage)?;
        Ok(DeviceQuery {
            text,
            lsc_installed,
            operation,
            status,
            sort,
            descending: self.desc,
            page: 1,
            per_page: 0,
        })
    }
}

fn field_flag(field: TextField) -> &'static str {
    match field {
        TextField::Name => "name",
        TextField::Description => "description",
        TextField::AuthString => "auth-string",
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
        let devices: Vec<_> = page.devices.iter().map(device_view::to_json).collect();
        let out = json!({
            "page": page.page,
            "pages": pages,
            "per_page": page.per_page,
            "total": page.total,
            "devices": devices,
        });
        println!("{out:#}");
    } else {
        print_table(&page.devices);
        println!("page {} of {pages} ({} devices)", page.page, page.total);
        if page.page > pages {
            println!("(there are only {pages} page(s): try --page {pages})");
        }
    }
    Ok(Outcome::Done)
}
