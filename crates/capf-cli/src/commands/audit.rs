//! `capf audit`: the audit trail the store keeps (every operator change,
//! every phone session's outcome, issued certificates, accounts), filtered.

use std::time::SystemTime;

use capf_admin::views::AuditView;
use capf_operations::{AuditQuery, DeviceName, OperatorStore};
use clap::Args;

use super::device::open;
use crate::data_dir::DataDir;
use crate::output::print_json;
use crate::{Failure, Outcome, time_text};

/// Arguments of `capf audit`.
#[derive(Debug, Args)]
#[command(
    after_help = "Every filter given must hold. The newest entries come first.\n\n\
    Examples:\n  \
    capf audit --device SEP001122334455\n  \
    capf audit --event refused --last 24h\n  \
    capf audit --since 2026-12-01T00:00:00Z --until 2026-12-02T00:00:00Z --json\n  \
    capf audit --actor alice\n\n\
    Events: added, changed, removed, operator, issued, delivered, completed, refused,\n\
    failed, lockout, revoked; without a device: account-added, account-removed,\n\
    account-role, account-password, token-created, token-revoked."
)]
pub(crate) struct AuditArgs {
    /// Only this device's entries.
    #[arg(long, value_name = "NAME")]
    device: Option<String>,
    /// Only this event (e.g. refused, issued, changed).
    #[arg(long, value_name = "KIND")]
    event: Option<String>,
    /// Only entries by this console operator (an account name, or token:ID).
    #[arg(long, value_name = "NAME")]
    actor: Option<String>,
    /// Only entries at or after this time: RFC 3339 (2026-12-01T00:00:00Z or 2026-12-01).
    #[arg(long, value_name = "TIME", conflicts_with = "last")]
    since: Option<String>,
    /// Only entries of the last SPAN (90m, 24h, 7d, 2w).
    #[arg(long, value_name = "SPAN")]
    last: Option<String>,
    /// Only entries before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// At most this many entries (the newest).
    #[arg(long, value_name = "N", default_value_t = AuditQuery::DEFAULT_LIMIT,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    limit: usize,
    /// Print JSON: a list of {at, device, event, detail, actor}.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(data: &DataDir, args: AuditArgs) -> Result<Outcome, Failure> {
    let now = SystemTime::now();
    let device = args
        .device
        .as_deref()
        .map(DeviceName::parse)
        .transpose()
        .map_err(Failure::usage)?;
    let since = match (&args.since, &args.last) {
        (Some(t), _) => Some(time_text::parse(t).map_err(Failure::usage)?),
        (None, Some(span)) => Some(time_text::parse_ago(span, now).map_err(Failure::usage)?),
        (None, None) => None,
    };
    let until = args
        .until
        .as_deref()
        .map(time_text::parse)
        .transpose()
        .map_err(Failure::usage)?;
    let query = AuditQuery {
        device,
        event: args.event.clone(),
        actor: args.actor.clone(),
        since,
        until,
        limit: args.limit,
    };
    query.check().map_err(Failure::usage)?;
    let store = open(data)?;
    let entries = store.audit(&query)?;
    if args.json {
        let views: Vec<AuditView> = entries.iter().map(AuditView::of).collect();
        print_json(&views)?;
        return Ok(Outcome::Done);
    }
    if entries.is_empty() {
        println!("no audit entries match");
        return Ok(Outcome::Done);
    }
    crate::output::print_table(
        ["TIME", "DEVICE", "EVENT", "BY", "DETAIL"],
        entries
            .iter()
            .map(|e| {
                [
                    time_text::format(e.at),
                    e.device
                        .as_ref()
                        .map_or("-".to_owned(), ToString::to_string),
                    e.event.clone(),
                    e.actor.clone().unwrap_or_else(|| "-".to_owned()),
                    capf_operations::escape_text(&e.detail).into_owned(),
                ]
            })
            .collect(),
    );
    let n = entries.len();
    if n == args.limit {
        println!("{n} entries (the newest {n}: raise --limit or narrow the filters for more)");
    } else if n == 1 {
        println!("1 entry");
    } else {
        println!("{n} entries");
    }
    Ok(Outcome::Done)
}
