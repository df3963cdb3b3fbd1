//! Find and List Phones, the bulk schedule, and the device page.

use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use capf_operations::Role;
use serde::Deserialize;

use super::html::{csrf_field, esc, notice, options, page, url_part};
use super::{PageError, PageUser, field, html};
use crate::body::JsonObject;
use crate::views::{CertificateView, DeviceView};
use crate::{AdminState, AuditFilter, Criteria, DeviceFields, devices, misc};

/// Operations an operator may schedule, as the API names them.
const OPERATIONS: [(&str, &str); 4] = [
    ("install", "Install/Upgrade"),
    ("delete", "Delete"),
    ("troubleshoot", "Troubleshoot"),
    ("none", "No Pending Operation"),
];

/// Text matches, as the API names them.
const MATCHES: [(&str, &str); 6] = [
    ("begins-with", "begins with"),
    ("contains", "contains"),
    ("ends-with", "ends with"),
    ("exact", "is exactly"),
    ("empty", "is empty"),
    ("not-empty", "is not empty"),
];

/// Sort columns: (API name, column heading).
const COLUMNS: [(&str, &str); 6] = [
    ("name", "Device name"),
    ("description", "Description"),
    ("operation", "Operation"),
    ("status", "Status"),
    ("lsc-status", "LSC status"),
    ("auth-mode", "Authentication mode"),
];

/// The criteria of the Find and List form (empty fields are no criterion).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct FindForm {
    field: String,
    #[serde(rename = "match")]
    how: String,
    text: String,
    lsc_status: String,
    operation: String,
    status: String,
    sort: String,
    desc: String,
    page: String,
    per_page: String,
}

fn given(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

fn number(s: &str, what: &str) -> Result<Option<usize>, PageError> {
    given(s)
        .map(|n| {
            n.parse::<usize>().map_err(|_| {
                PageError(crate::AdminError::BadRequest(format!(
                    "{what} must be a whole number"
                )))
            })
        })
        .transpose()
}

impl FindForm {
    fn criteria(&self) -> Result<Criteria, PageError> {
        let mut c = Criteria {
            how: given(&self.how),
            lsc_status: given(&self.lsc_status),
            operation: given(&self.operation),
            status: given(&self.status),
            sort: given(&self.sort),
            desc: Some(self.desc == "true"),
            page: number(&self.page, "page")?,
            per_page: Some(number(&self.per_page, "per page")?.unwrap_or(25)),
            ..Criteria::default()
        };
        let text = given(&self.text);
        let empty_match = matches!(self.how.as_str(), "empty" | "not-empty");
        if text.is_some() || empty_match {
            let (pattern, how) = match self.field.as_str() {
                "description" => (&mut c.description, &mut c.description_match),
                "auth_string" => (&mut c.auth_string, &mut c.auth_string_match),
                _ => (&mut c.name, &mut c.name_match),
            };
            *how = given(&self.how);
            *pattern = text;
        }
        Ok(c)
    }

    /// This search as a query string, with `sort`, `desc` and `page` as
    /// given.
    fn link(&self, sort: &str, desc: bool, page: usize) -> String {
        let mut q = String::from("/devices?");
        for (k, v) in [
            ("field", self.field.as_str()),
            ("match", self.how.as_str()),
            ("text", self.text.as_str()),
            ("lsc_status", self.lsc_status.as_str()),
            ("operation", self.operation.as_str()),
            ("status", self.status.as_str()),
            ("per_page", self.per_page.as_str()),
        ] {
            if !v.is_empty() {
                let _ = write!(q, "{k}={}&", url_part(v));
            }
        }
        let _ = write!(q, "sort={}&desc={desc}&page={page}", url_part(sort));
        q
    }
}

fn select(id: &str, label: &str, choices: &[(&str, &str)], selected: &str) -> String {
    format!(
        r#"<div class="field"><label for="{id}">{label}</label><select id="{id}" name="{id}">{}</select></div>"#,
        options(choices, selected)
    )
}

/// `GET /devices`: Find and List Phones.
pub(crate) async fn find(
    State(state): State<AdminState>,
    user: PageUser,
    Query(form): Query<FindForm>,
) -> Result<Response, PageError> {
    let criteria = form.criteria()?;
    let Json(found) = devices::find(State(state), user.operator.clone(), Query(criteria)).await?;
    let helpdesk = user.operator.role.allows(Role::Helpdesk);
    let mut fields: Vec<(&str, &str)> =
        vec![("name", "Device name"), ("description", "Description")];
    if helpdesk {
        fields.push(("auth_string", "Authentication string"));
    }
    let sort = if form.sort.is_empty() {
        "name"
    } else {
        form.sort.as_str()
    };
    let desc = form.desc == "true";
    let mut body = format!(
        r#"<form class="criteria" method="get" action="/devices" role="search">
{field}{how}
<div class="field"><label for="text">Text</label><input id="text" name="text" value="{text}"></div>
{lsc}{operation}{status}
<div class="field"><label for="per_page">Per page</label><input id="per_page" name="per_page" type="number" min="0" max="1000" value="{per_page}"></div>
<input type="hidden" name="sort" value="{sort}"><input type="hidden" name="desc" value="{desc}">
<button id="find" type="submit">Find</button>
</form>"#,
        field = select("field", "Find phones where", &fields, &form.field),
        how = select(
            "match",
            "Match",
            &MATCHES,
            if form.how.is_empty() {
                "contains"
            } else {
                &form.how
            }
        ),
        text = esc(&form.text),
        lsc = select(
            "lsc_status",
            "LSC status",
            &[
                ("", "any"),
                ("installed", "Installed"),
                ("not-installed", "Not installed")
            ],
            &form.lsc_status
        ),
        operation = select(
            "operation",
            "Operation",
            &[
                ("", "any"),
                ("install", "Install/Upgrade"),
                ("delete", "Delete"),
                ("troubleshoot", "Troubleshoot"),
                ("none", "none")
            ],
            &form.operation
        ),
        status = select(
            "status",
            "Status",
            &[
                ("", "any"),
                ("none", "none"),
                ("pending", "pending"),
                ("successful", "successful"),
                ("failed", "failed")
            ],
            &form.status
        ),
        per_page = if form.per_page.is_empty() {
            "25".to_owned()
        } else {
            esc(&form.per_page)
        },
        sort = esc(sort),
    );
    let _ = write!(
        body,
        r#"<p id="found">{} found; page {} of {}.</p>"#,
        if found.total == 1 {
            "1 phone".to_owned()
        } else {
            format!("{} phones", found.total)
        },
        found.page,
        found.pages
    );
    let mut head = String::new();
    if helpdesk {
        head.push_str(r#"<th scope="col">Select</th>"#);
    }
    for (column, heading) in COLUMNS {
        let (arrow, next_desc) = if column == sort {
            (if desc { " ▼" } else { " ▲" }, !desc)
        } else {
            ("", false)
        };
        let _ = write!(
            head,
            r#"<th scope="col"><a href="{}">{heading}{arrow}</a></th>"#,
            esc(&form.link(column, next_desc, 1))
        );
    }
    head.push_str(r#"<th scope="col">String</th>"#);
    let mut rows = String::new();
    for (i, d) in found.devices.iter().enumerate() {
        rows.push_str("<tr>");
        if helpdesk {
            let _ = write!(
                rows,
                r#"<td><input type="checkbox" id="select-{i}" name="device" value="{name}" form="bulk" aria-label="Select {name}"><label for="select-{i}" class="muted"> select</label></td>"#,
                name = esc(&d.name)
            );
        }
        let _ = write!(
            rows,
            r#"<td data-label="Device"><a href="/devices/{link}">{name}</a></td><td data-label="Description">{desc}</td><td data-label="Operation">{op}</td><td data-label="Status">{status}</td><td data-label="LSC">{lsc}</td><td data-label="Mode">{mode}</td><td data-label="String">{string}</td></tr>"#,
            link = url_part(&d.name),
            name = esc(&d.name),
            desc = esc(&d.description),
            op = esc(d.operation),
            status = esc(status_text(d)),
            lsc = esc(d.lsc_status),
            mode = esc(d.auth_mode),
            string = esc(d.auth_string_state),
        );
    }
    let _ = write!(
        body,
        r#"<div class="scroll"><table class="devices"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>"#
    );
    let mut pager = String::new();
    if found.page > 1 {
        let _ = write!(
            pager,
            r#"<a href="{}">Previous page</a>"#,
            esc(&form.link(sort, desc, found.page - 1))
        );
    }
    if found.page < found.pages {
        let _ = write!(
            pager,
            r#"<a href="{}">Next page</a>"#,
            esc(&form.link(sort, desc, found.page + 1))
        );
    }
    let _ = write!(
        body,
        r#"<nav class="pager" aria-label="Pages">{pager}</nav>"#
    );
    if helpdesk {
        let _ = write!(
            body,
            r#"<h2>Schedule the selected phones</h2>
<form id="bulk" class="inline" method="post" action="/devices/schedule">{csrf}
{operation}
<div class="field"><label for="bulk-completes-by">Operation Completes By (optional, e.g. 2030-01-01T00:00:00Z)</label><input id="bulk-completes-by" name="completes_by"></div>
<div class="field"><label for="bulk-generate"><input id="bulk-generate" type="checkbox" name="generate_string" value="true"> Generate a string for each</label></div>
<button id="bulk-schedule" type="submit">Schedule</button>
</form>"#,
            csrf = csrf_field(&user.csrf),
            operation = select("bulk-operation", "Operation", &OPERATIONS, "install")
                .replace(r#"name="bulk-operation""#, r#"name="operation""#),
        );
    }
    Ok(html(
        StatusCode::OK,
        page(
            "Find and List Phones",
            Some((&user.operator, &user.csrf)),
            &body,
        ),
    ))
}

fn completes_by(fields: &[(String, String)]) -> Option<String> {
    field(fields, "completes_by").and_then(given)
}

/// `POST /devices/schedule`: the API's bulk schedule for the selected rows.
pub(crate) async fn bulk_schedule(
    State(state): State<AdminState>,
    uri: Uri,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let user = PageUser::of_form(&state, uri, &headers, &fields).await?;
    let names: Vec<&str> = fields
        .iter()
        .filter(|(k, _)| k == "device")
        .map(|(_, v)| v.as_str())
        .collect();
    if names.is_empty() {
        return Err(PageError(crate::AdminError::BadRequest(
            "select at least one phone".into(),
        )));
    }
    let mut request = serde_json::json!({
        "names": names,
        "operation": field(&fields, "operation").unwrap_or("install"),
    });
    if let Some(deadline) = completes_by(&fields) {
        request["completes_by"] = deadline.into();
    }
    if field(&fields, "generate_string") == Some("true") {
        request["generate_string"] = true.into();
    }
    let request = serde_json::from_value(request)
        .map_err(|e| PageError(crate::AdminError::BadRequest(e.to_string())))?;
    let Json(outcome) =
        devices::schedule(State(state), user.operator.clone(), JsonObject(request)).await?;
    let mut rows = String::new();
    for r in &outcome.results {
        let _ = write!(
            rows,
            r#"<tr><td><a href="/devices/{link}">{name}</a></td><td>{ok}</td><td>{what}</td><td class="mono">{string}</td></tr>"#,
            link = url_part(&r.name),
            name = esc(&r.name),
            ok = if r.ok { "scheduled" } else { "not changed" },
            what = esc(&r.error.clone().unwrap_or_else(|| r.changes.join(", "))),
            string = esc(r.generated_string.as_deref().unwrap_or("")),
        );
    }
    let body = format!(
        r#"{}<div class="scroll"><table><thead><tr><th scope="col">Device</th><th scope="col">Result</th><th scope="col">What</th><th scope="col">New string</th></tr></thead><tbody>{rows}</tbody></table></div><p><a href="/devices">Back to Find and List Phones</a></p>"#,
        notice(
            if outcome.failed == 0 { "ok" } else { "error" },
            &format!(
                "{} scheduled, {} not changed.",
                outcome.succeeded, outcome.failed
            )
        )
    );
    Ok(html(
        StatusCode::OK,
        page("Schedule", Some((&user.operator, &user.csrf)), &body),
    ))
}

fn certificate(c: Option<&CertificateView>, none: &str) -> String {
    match c {
        None => format!(r#"<p class="muted">{}</p>"#, esc(none)),
        Some(c) => format!(
            r#"<dl class="fields"><dt>Subject</dt><dd>{}</dd><dt>Issuer</dt><dd>{}</dd><dt>Serial number</dt><dd class="mono">{}</dd><dt>Valid from</dt><dd>{}</dd><dt>Valid to</dt><dd>{}</dd><dt>SHA-256</dt><dd class="mono">{}</dd></dl>"#,
            esc(&c.subject),
            esc(&c.issuer),
            esc(&c.serial),
            esc(&c.not_before),
            esc(&c.not_after),
            esc(&c.sha256)
        ),
    }
}

/// The status as CUCM words it, or "none" when nothing was asked.
fn status_text(d: &DeviceView) -> &str {
    if d.status_label.is_empty() {
        "none"
    } else {
        &d.status_label
    }
}

fn string_text(d: &DeviceView) -> String {
    match (d.auth_string_state, &d.auth_string) {
        ("locked-out", _) => "locked out after wrong strings".to_owned(),
        (_, Some(s)) => format!(r#"<span class="mono" id="armed-string">{}</span>"#, esc(s)),
        ("armed", None) => "set (hidden)".to_owned(),
        _ => "not set".to_owned(),
    }
}

/// The device page, with a notice above it.
async fn device_page(
    state: AdminState,
    user: &PageUser,
    name: String,
    message: String,
) -> Result<Response, PageError> {
    let Json(d) = devices::show(
        State(state.clone()),
        user.operator.clone(),
        Path(name.clone()),
    )
    .await?;
    let Json(history) = devices::certificates(
        State(state.clone()),
        user.operator.clone(),
        Path(name.clone()),
    )
    .await?;
    let filter = AuditFilter {
        device: Some(name.clone()),
        limit: Some(50),
        ..AuditFilter::default()
    };
    let Json(audit) = misc::audit(State(state), user.operator.clone(), Query(filter)).await?;
    let link = url_part(&d.name);
    let mut body = message;
    let _ = write!(
        body,
        r#"<h2>Certification Authority Proxy Function (CAPF) Information</h2>
<dl class="fields">
<dt>Certificate Operation</dt><dd id="operation">{op}</dd>
<dt>Authentication Mode</dt><dd>{mode}</dd>
<dt>Authentication String</dt><dd id="auth-string">{string}</dd>
<dt>Failed string attempts</dt><dd>{attempts}</dd>
<dt>Key</dt><dd>{key}</dd>
<dt>Operation Completes By</dt><dd>{deadline}</dd>
<dt>Certificate Operation Status</dt><dd id="status">{status}</dd>
<dt>Security mode</dt><dd>{security}</dd>
<dt>Description</dt><dd>{desc}</dd>
<dt>Last failure</dt><dd>{error}</dd>
</dl>"#,
        op = esc(d.operation),
        mode = esc(d.auth_mode),
        string = string_text(&d),
        attempts = d.failed_attempts,
        key = esc(d.key.as_deref().unwrap_or("service default")),
        deadline = esc(d.completes_by.as_deref().unwrap_or("none")),
        status = esc(status_text(&d)),
        security = esc(d.security_mode),
        desc = esc(&d.description),
        error = esc(&d
            .last_error
            .as_ref()
            .map_or_else(|| "none".to_owned(), |e| format!("{} ({})", e.reason, e.at))),
    );
    if user.operator.role.allows(Role::Helpdesk) {
        let _ = write!(
            body,
            r#"<form class="inline" method="post" action="/devices/{link}/generate-string">{csrf}
<button id="generate-string" type="submit">Generate String</button></form>
<form id="schedule" class="inline" method="post" action="/devices/{link}/schedule">{csrf}
{operation}
<div class="field"><label for="completes_by">Operation Completes By (optional, e.g. 2030-01-01T00:00:00Z)</label><input id="completes_by" name="completes_by"></div>
<button id="schedule-button" type="submit">Schedule operation</button>
</form>"#,
            csrf = csrf_field(&user.csrf),
            operation = select("operation", "Certificate Operation", &OPERATIONS, "install"),
        );
    }
    let revoked = d.lsc_revoked.as_ref().map_or_else(String::new, |r| {
        notice(
            "error",
            &format!("Revoked {}: {}", esc(&r.at), esc(&r.reason)),
        )
    });
    let _ = write!(
        body,
        r#"<h2>Locally significant certificate (LSC): {lsc_status}</h2>{revoked}{lsc}
<h2>Manufacturer installed certificate (MIC)</h2>{mic}
<h2>Certificate history</h2>"#,
        lsc_status = esc(d.lsc_status),
        lsc = certificate(d.lsc.as_ref(), "No LSC on record."),
        mic = certificate(d.mic.as_ref(), "No MIC on record."),
    );
    if history.is_empty() {
        body.push_str(r#"<p class="muted">No certificate was issued to this phone.</p>"#);
    } else {
        let mut rows = String::new();
        for h in &history {
            let _ = write!(
                rows,
                r#"<tr><td class="mono">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                esc(&h.certificate.serial),
                esc(&h.issued_at),
                esc(h.delivered_at.as_deref().unwrap_or("not delivered")),
                esc(&h.certificate.not_after),
                esc(h
                    .revoked_at
                    .as_deref()
                    .map(|t| format!("revoked {t}"))
                    .or_else(|| h.deleted_at.as_deref().map(|t| format!("deleted {t}")))
                    .or_else(|| h.superseded_at.as_deref().map(|t| format!("replaced {t}")))
                    .as_deref()
                    .unwrap_or("current")),
            );
        }
        let _ = write!(
            body,
            r#"<div class="scroll"><table><thead><tr><th scope="col">Serial</th><th scope="col">Issued</th><th scope="col">Delivered</th><th scope="col">Valid to</th><th scope="col">State</th></tr></thead><tbody>{rows}</tbody></table></div>"#
        );
    }
    body.push_str("<h2>Audit trail</h2>");
    if audit.is_empty() {
        body.push_str(r#"<p class="muted">Nothing recorded.</p>"#);
    } else {
        let mut rows = String::new();
        for e in &audit {
            let _ = write!(
                rows,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&e.at),
                esc(&e.event),
                esc(e.actor.as_deref().unwrap_or("")),
                esc(&e.detail)
            );
        }
        let _ = write!(
            body,
            r#"<div class="scroll"><table><thead><tr><th scope="col">When</th><th scope="col">Event</th><th scope="col">By</th><th scope="col">Detail</th></tr></thead><tbody>{rows}</tbody></table></div>"#
        );
    }
    Ok(html(
        StatusCode::OK,
        page(&d.name, Some((&user.operator, &user.csrf)), &body),
    ))
}

/// `GET /devices/{name}`: the device page.
pub(crate) async fn show(
    State(state): State<AdminState>,
    user: PageUser,
    Path(name): Path<String>,
    Query(after): Query<After>,
) -> Result<Response, PageError> {
    let message = match after.done.as_deref() {
        Some("scheduled") => notice(
            "ok",
            "Scheduled: the phone's next CAPF session carries out the operation.",
        ),
        Some("unchanged") => notice("", "Nothing changed: that was already scheduled."),
        _ => String::new(),
    };
    device_page(state, &user, name, message).await
}

/// What the device page was sent to after (a schedule form answers with
/// a redirect, so that reloading the page does not post the form again).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct After {
    done: Option<String>,
}

/// `POST /devices/{name}/generate-string`: the API's Generate String; the
/// new string is shown on this answer only.
pub(crate) async fn generate_string(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let user = PageUser::of_form(&state, uri, &headers, &fields).await?;
    let Json(change) = devices::generate_string(
        State(state.clone()),
        user.operator.clone(),
        Path(name.clone()),
        None,
    )
    .await?;
    let string = change.generated_string.unwrap_or_default();
    let message = notice(
        "ok",
        &format!(
            r#"New authentication string: <span class="secret" id="generated-string">{}</span><br>Give it to the phone's user; it works once."#,
            esc(&string)
        ),
    );
    device_page(state, &user, name, message).await
}

/// `POST /devices/{name}/schedule`: the API's change of the operation and
/// its deadline.
pub(crate) async fn schedule(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let user = PageUser::of_form(&state, uri, &headers, &fields).await?;
    let change = DeviceFields {
        operation: Some(field(&fields, "operation").unwrap_or("install").to_owned()),
        completes_by: completes_by(&fields),
        ..DeviceFields::default()
    };
    let Json(change) = devices::patch(
        State(state.clone()),
        user.operator.clone(),
        Path(name.clone()),
        JsonObject(change),
    )
    .await?;
    let done = if change.changes.is_empty() {
        "unchanged"
    } else {
        "scheduled"
    };
    Ok(Redirect::to(&format!("/devices/{}?done={done}", url_part(&name))).into_response())
}
