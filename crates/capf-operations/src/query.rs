//! Finding devices: text criteria with match kinds, LSC status,
//! operation and status filters, all ANDed; sorting and paging.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use capf_auth::{Operation, OperationStatus};

use crate::{Device, OperationsError};

/// How a text criterion matches (CUCM's "begins with", "contains", ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TextMatch {
    /// The field starts with the pattern.
    BeginsWith,
    /// The field contains the pattern (default).
    #[default]
    Contains,
    /// The field ends with the pattern.
    EndsWith,
    /// The field equals the pattern.
    Exact,
    /// The field is empty (pattern ignored).
    Empty,
    /// The field is not empty (pattern ignored).
    NotEmpty,
}

impl FromStr for TextMatch {
    type Err = OperationsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "begins-with" => TextMatch::BeginsWith,
            "contains" => TextMatch::Contains,
            "ends-with" => TextMatch::EndsWith,
            "exact" => TextMatch::Exact,
            "empty" => TextMatch::Empty,
            "not-empty" => TextMatch::NotEmpty,
            _ => {
                return Err(OperationsError::InvalidQuery {
                    why: format!(
                        "match {s:?}: use begins-with, contains, ends-with, exact, empty or not-empty"
                    ),
                });
            }
        })
    }
}

/// Which text field a criterion looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextField {
    /// Device name.
    Name,
    /// Description.
    Description,
    /// Authentication string (empty when none is armed).
    AuthString,
}

/// One text criterion. Matching ignores ASCII case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextCriterion {
    /// The field.
    pub field: TextField,
    /// How it matches.
    pub how: TextMatch,
    /// The pattern.
    pub pattern: String,
}

impl TextField {
    /// The field's name as the command line and the API spell it
    /// (`name`, `description`, `auth-string`).
    pub fn name(self) -> &'static str {
        match self {
            TextField::Name => "name",
            TextField::Description => "description",
            TextField::AuthString => "auth-string",
        }
    }
}

impl TextCriterion {
    /// The criterion a user means by a pattern and a match kind for
    /// `field`, each optional, as `capf find` and the API take them: no
    /// pattern and no kind is no criterion; a pattern alone matches by
    /// `default_how`; `empty` and `not-empty` need no pattern; any other kind
    /// without a pattern is refused.
    pub fn from_parts(
        field: TextField,
        pattern: Option<&str>,
        how: Option<TextMatch>,
        default_how: TextMatch,
    ) -> Result<Option<TextCriterion>, OperationsError> {
        Ok(match (pattern, how) {
            (None, None) => None,
            (Some(pattern), how) => Some(TextCriterion {
                field,
                how: how.unwrap_or(default_how),
                pattern: pattern.to_owned(),
            }),
            (None, Some(how @ (TextMatch::Empty | TextMatch::NotEmpty))) => Some(TextCriterion {
                field,
                how,
                pattern: String::new(),
            }),
            (None, Some(_)) => {
                return Err(OperationsError::InvalidQuery {
                    why: format!("a {} match needs a pattern to match against", field.name()),
                });
            }
        })
    }

    fn matches(&self, device: &Device) -> bool {
        let value = match self.field {
            TextField::Name => device.name.as_str().to_ascii_lowercase(),
            TextField::Description => device.description.to_ascii_lowercase(),
            TextField::AuthString => device
                .policy
                .auth_string
                .as_ref()
                .map(|s| s.expose().to_owned())
                .unwrap_or_default(),
        };
        let pattern = self.pattern.to_ascii_lowercase();
        match self.how {
            TextMatch::BeginsWith => value.starts_with(&pattern),
            TextMatch::Contains => value.contains(&pattern),
            TextMatch::EndsWith => value.ends_with(&pattern),
            TextMatch::Exact => value == pattern,
            TextMatch::Empty => value.is_empty(),
            TextMatch::NotEmpty => !value.is_empty(),
        }
    }
}

/// The LSC status a search asks for, as the command line and the API
/// spell it: `installed` (true) or `not-installed` (false).
pub fn parse_lsc_status(text: &str) -> Result<bool, OperationsError> {
    match text {
        "installed" => Ok(true),
        "not-installed" => Ok(false),
        other => Err(OperationsError::InvalidQuery {
            why: format!("LSC status {other:?}: use installed or not-installed"),
        }),
    }
}

/// Filter on the operation status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusFilter {
    /// Nothing scheduled, nothing recorded.
    None,
    /// Scheduled, not yet done.
    Pending,
    /// Last operation succeeded.
    Successful,
    /// Last operation failed (deadline, lockout).
    Failed,
}

impl StatusFilter {
    fn matches(self, status: &OperationStatus) -> bool {
        matches!(
            (self, status),
            (StatusFilter::None, OperationStatus::Idle)
                | (StatusFilter::Pending, OperationStatus::Pending)
                | (StatusFilter::Successful, OperationStatus::Succeeded { .. })
                | (StatusFilter::Failed, OperationStatus::Failed { .. })
        )
    }
}

impl FromStr for StatusFilter {
    type Err = OperationsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "none" => StatusFilter::None,
            "pending" => StatusFilter::Pending,
            "successful" => StatusFilter::Successful,
            "failed" => StatusFilter::Failed,
            _ => {
                return Err(OperationsError::InvalidQuery {
                    why: format!("status {s:?}: use none, pending, successful or failed"),
                });
            }
        })
    }
}

/// A column to sort by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SortColumn {
    /// Device name (default).
    #[default]
    Name,
    /// Description.
    Description,
    /// Scheduled operation.
    Operation,
    /// Operation status text.
    Status,
    /// LSC status.
    LscStatus,
    /// Authentication mode.
    AuthMode,
    /// Security mode.
    SecurityMode,
}

impl FromStr for SortColumn {
    type Err = OperationsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "name" => SortColumn::Name,
            "description" => SortColumn::Description,
            "operation" => SortColumn::Operation,
            "status" => SortColumn::Status,
            "lsc-status" => SortColumn::LscStatus,
            "auth-mode" => SortColumn::AuthMode,
            "security-mode" => SortColumn::SecurityMode,
            _ => {
                return Err(OperationsError::InvalidQuery {
                    why: format!(
                        "sort column {s:?}: use name, description, operation, status, lsc-status, auth-mode or security-mode"
                    ),
                });
            }
        })
    }
}

impl fmt::Display for SortColumn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SortColumn::Name => "name",
            SortColumn::Description => "description",
            SortColumn::Operation => "operation",
            SortColumn::Status => "status",
            SortColumn::LscStatus => "lsc-status",
            SortColumn::AuthMode => "auth-mode",
            SortColumn::SecurityMode => "security-mode",
        })
    }
}

/// A device search: every given criterion must hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceQuery {
    /// Text criteria.
    pub text: Vec<TextCriterion>,
    /// `Some(true)`: only devices with an LSC; `Some(false)`: only without.
    pub lsc_installed: Option<bool>,
    /// Only devices with this operation scheduled.
    pub operation: Option<Operation>,
    /// Only devices with this status.
    pub status: Option<StatusFilter>,
    /// Sort column.
    pub sort: SortColumn,
    /// Sort descending.
    pub descending: bool,
    /// Page number, from 1.
    pub page: usize,
    /// Devices per page (0: all on one page).
    pub per_page: usize,
}

impl Default for DeviceQuery {
    fn default() -> Self {
        DeviceQuery {
            text: Vec::new(),
            lsc_installed: None,
            operation: None,
            status: None,
            sort: SortColumn::Name,
            descending: false,
            page: 1,
            per_page: 0,
        }
    }
}

/// One page of results.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DevicePage {
    /// The devices on this page.
    pub devices: Vec<Device>,
    /// How many devices matched in all.
    pub total: usize,
    /// This page's number, from 1.
    pub page: usize,
    /// Page size (0: all).
    pub per_page: usize,
}

impl DeviceQuery {
    /// Whether a device satisfies every criterion.
    pub fn matches(&self, device: &Device) -> bool {
        self.text.iter().all(|c| c.matches(device))
            && self
                .lsc_installed
                .is_none_or(|want| (device.lsc_status() == "Installed") == want)
            && self.operation.is_none_or(|op| device.operation() == op)
            && self.status.is_none_or(|s| s.matches(&device.policy.status))
    }

    fn compare(&self, a: &Device, b: &Device) -> Ordering {
        let key = |d: &Device| -> String {
            match self.sort {
                SortColumn::Name => String::new(),
                SortColumn::Description => d.description.to_ascii_lowercase(),
                SortColumn::Operation => d.operation().to_string(),
                SortColumn::Status => d.status_label(),
                SortColumn::LscStatus => d.lsc_status().to_owned(),
                SortColumn::AuthMode => d.policy.auth_mode.to_string(),
                SortColumn::SecurityMode => d.policy.security_mode.to_string(),
            }
        };
        // Ties (and the name column) fall back to the name, so pages are stable.
        let ord = key(a).cmp(&key(b)).then_with(|| a.name.cmp(&b.name));
        if self.descending { ord.reverse() } else { ord }
    }

    /// Filters, sorts and pages a set of devices (for stores that do it in
    /// memory).
    pub fn run(
        &self,
        devices: impl IntoIterator<Item = Device>,
    ) -> Result<DevicePage, OperationsError> {
        if self.page == 0 {
            return Err(OperationsError::InvalidQuery {
                why: "pages are numbered from 1".into(),
            });
        }
        let mut hits: Vec<Device> = devices.into_iter().filter(|d| self.matches(d)).collect();
        hits.sort_by(|a, b| self.compare(a, b));
        let total = hits.len();
        let devices = if self.per_page == 0 {
            if self.page == 1 { hits } else { Vec::new() }
        } else {
            hits.into_iter()
                .skip((self.page - 1).saturating_mul(self.per_page))
                .take(self.per_page)
                .collect()
        };
        Ok(DevicePage {
            devices,
            total,
            page: self.page,
            per_page: self.per_page,
        })
    }
}
