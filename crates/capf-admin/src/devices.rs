//! `/api/v1/devices`: find, show, create, change, remove, generate a
//! string, schedule in bulk, certificate history. Changes are the same
//! field-level edits as `capf device add|set` ([`DeviceEdit`]), applied by
//! the store inside its transaction, with the same checks.

use std::time::SystemTime;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use capf_auth::{AuthMode, AuthString, Operation, SecurityMode};
use capf_ca::KeySpec;
use capf_operations::{
    AuditEntry, Device, DeviceEdit, DeviceName, DeviceQuery, Role, SortColumn, StatusFilter,
    TextCriterion, TextField, TextMatch, parse_lsc_status,
};
use serde::{Deserialize, Serialize};

use crate::body::JsonObject;
use crate::error::ErrorBody;
use crate::views::{DevicePageView, DeviceView, IssuedView};
use crate::{AdminError, AdminState, Operator, time_text};

fn bad<E: std::fmt::Display>(e: E) -> AdminError {
    AdminError::BadRequest(e.to_string())
}

fn device_name(text: &str) -> Result<DeviceName, AdminError> {
    DeviceName::parse(text).map_err(bad)
}

/// Most devices one bulk request may name.
pub const MAX_BULK: usize = 1000;

/// Search criteria of `GET /api/v1/devices`, as query parameters: the same
/// as `capf find`'s flags, with `_` for `-`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Criteria {
    /// Device name matches this pattern.
    #[param(example = "SEP0011")]
    pub name: Option<String>,
    /// Description matches this pattern.
    pub description: Option<String>,
    /// Armed string matches this pattern (helpdesk and admin only).
    pub auth_string: Option<String>,
    /// How patterns match: `begins-with`, `contains` (default),
    /// `ends-with`, `exact`, `empty`, `not-empty`.
    #[serde(rename = "match")]
    #[param(value_type = Option<crate::openapi::MatchName>)]
    #[schema(value_type = Option<crate::openapi::MatchName>)]
    pub how: Option<String>,
    /// How `name` matches (overrides `match`).
    #[param(value_type = Option<crate::openapi::MatchName>)]
    #[schema(value_type = Option<crate::openapi::MatchName>)]
    pub name_match: Option<String>,
    /// How `description` matches (overrides `match`).
    #[param(value_type = Option<crate::openapi::MatchName>)]
    #[schema(value_type = Option<crate::openapi::MatchName>)]
    pub description_match: Option<String>,
    /// How `auth_string` matches (overrides `match`); read-only operators
    /// may ask only `empty` or `not-empty`.
    #[param(value_type = Option<crate::openapi::MatchName>)]
    #[schema(value_type = Option<crate::openapi::MatchName>)]
    pub auth_string_match: Option<String>,
    /// `installed` or `not-installed`.
    #[param(value_type = Option<crate::openapi::LscStatusName>)]
    #[schema(value_type = Option<crate::openapi::LscStatusName>)]
    pub lsc_status: Option<String>,
    /// `none`, `install`, `delete` or `troubleshoot`.
    #[param(value_type = Option<crate::openapi::OperationName>)]
    #[schema(value_type = Option<crate::openapi::OperationName>)]
    pub operation: Option<String>,
    /// `none`, `pending`, `successful` or `failed`.
    #[param(value_type = Option<crate::openapi::StatusName>)]
    #[schema(value_type = Option<crate::openapi::StatusName>)]
    pub status: Option<String>,
    /// Sort column: `name` (default), `description`, `operation`,
    /// `status`, `lsc-status`, `auth-mode`, `security-mode`.
    #[param(value_type = Option<crate::openapi::SortName>)]
    #[schema(value_type = Option<crate::openapi::SortName>)]
    pub sort: Option<String>,
    /// Sort descending.
    pub desc: Option<bool>,
    /// Page, from 1 (default 1).
    #[param(minimum = 1)]
    pub page: Option<usize>,
    /// Devices per page (default 50; 0: all on one page).
    pub per_page: Option<usize>,
}

impl Criteria {
    /// The query these criteria describe. An operator who may not see
    /// strings may not search them by content either (that would reveal
    /// them a digit at a time): only `empty` and `not-empty`.
    pub fn query(&self, sees_strings: bool) -> Result<DeviceQuery, AdminError> {
        let default_how: TextMatch = self
            .how
            .as_deref()
            .unwrap_or("contains")
            .parse()
            .map_err(bad)?;
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
            let how: Option<TextMatch> = how.as_deref().map(str::parse).transpose().map_err(bad)?;
            let Some(criterion) =
                TextCriterion::from_parts(field, pattern.as_deref(), how, default_how)
                    .map_err(bad)?
            else {
                continue;
            };
            if field == TextField::AuthString
                && !sees_strings
                && !matches!(criterion.how, TextMatch::Empty | TextMatch::NotEmpty)
            {
                return Err(AdminError::Forbidden {
                    needed: Role::Helpdesk,
                });
            }
            text.push(criterion);
        }
        let lsc_installed = self
            .lsc_status
            .as_deref()
            .map(parse_lsc_status)
            .transpose()
            .map_err(bad)?;
        let operation: Option<Operation> = self
            .operation
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(bad)?;
        let status: Option<StatusFilter> = self
            .status
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(bad)?;
        let sort: SortColumn = self
            .sort
            .as_deref()
            .unwrap_or("name")
            .parse()
            .map_err(bad)?;
        let page = self.page.unwrap_or(1);
        if page == 0 {
            return Err(AdminError::BadRequest("pages are numbered from 1".into()));
        }
        Ok(DeviceQuery {
            text,
            lsc_installed,
            operation,
            status,
            sort,
            descending: self.desc.unwrap_or(false),
            page,
            per_page: self.per_page.unwrap_or(50),
        })
    }
}

/// A string to generate: `true` (8 digits) or a length (4 to 10).
#[derive(Clone, Copy, Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Generate {
    /// `true`: 8 digits; `false`: none.
    Yes(bool),
    /// This many digits.
    Digits(usize),
}

impl Generate {
    fn length(self) -> Option<usize> {
        match self {
            Generate::Yes(true) => Some(8),
            Generate::Yes(false) => None,
            Generate::Digits(n) => Some(n),
        }
    }
}

/// The fields of `POST /api/v1/devices` and `PATCH /api/v1/devices/{name}`,
/// as `capf device add|set` takes them; a change touches only those given.
#[derive(Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceFields {
    /// `install`, `delete`, `troubleshoot` or `none`.
    #[schema(value_type = Option<crate::openapi::OperationName>)]
    pub operation: Option<String>,
    /// `auth-string`, `null-string`, `lsc-first` or `mic-first`.
    #[schema(value_type = Option<crate::openapi::AuthModeName>)]
    pub auth_mode: Option<String>,
    /// Arm this string (4 to 10 digits, single use).
    #[schema(example = "12345678", pattern = "^[0-9]{4,10}$")]
    pub auth_string: Option<String>,
    /// Generate and arm a random string (answered once).
    pub generate_string: Option<Generate>,
    /// `rsa1024`..`rsa4096`, `p256`, `p384`, `p521`, or `default`.
    #[schema(value_type = Option<crate::openapi::KeyName>)]
    pub key: Option<String>,
    /// Deadline (RFC 3339, in the future), or `none`.
    #[schema(example = "2030-01-01T00:00:00Z")]
    pub completes_by: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// `non-secure`, `authenticated` or `encrypted`.
    #[schema(value_type = Option<crate::openapi::SecurityModeName>)]
    pub security_mode: Option<String>,
    /// Lift a lockout without arming a string.
    #[serde(default)]
    pub clear_lockout: bool,
}

impl DeviceFields {
    /// The least role that may make this change: helpdesk for scheduling,
    /// deadlines, strings and lockouts; admin for the rest.
    pub fn needed_role(&self) -> Role {
        if self.auth_mode.is_some()
            || self.key.is_some()
            || self.description.is_some()
            || self.security_mode.is_some()
        {
            Role::Admin
        } else {
            Role::Helpdesk
        }
    }

    /// Parses and checks every field into an edit (nothing changes when
    /// one is wrong), with the generated string if one was asked for.
    pub fn edit(&self, now: SystemTime) -> Result<(DeviceEdit, Option<String>), AdminError> {
        let operation: Option<Operation> = self
            .operation
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(bad)?;
        let auth_mode: Option<AuthMode> = self
            .auth_mode
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(bad)?;
        let security_mode: Option<SecurityMode> = self
            .security_mode
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(bad)?;
        let key: Option<Option<KeySpec>> = match self.key.as_deref() {
            None => None,
            Some("default") => Some(None),
            Some(k) => Some(Some(k.parse().map_err(bad)?)),
        };
        let completes_by = match self.completes_by.as_deref() {
            None => None,
            Some("none") => Some(None),
            Some(t) => {
                let deadline = time_text::parse(t).map_err(AdminError::BadRequest)?;
                if deadline <= now {
                    return Err(AdminError::BadRequest(format!(
                        "completes_by {t} is in the past: give a later time, or none"
                    )));
                }
                Some(Some(deadline))
            }
        };
        let generate = self.generate_string.and_then(Generate::length);
        let auth_string: Option<AuthString> = match (&self.auth_string, generate) {
            (Some(_), Some(_)) => {
                return Err(AdminError::BadRequest(
                    "give auth_string or generate_string, not both".into(),
                ));
            }
            (Some(digits), None) => Some(digits.parse().map_err(bad)?),
            (None, Some(len)) => Some(AuthString::generate(len).map_err(bad)?),
            (None, None) => None,
        };
        let generated = generate.and(auth_string.as_ref().map(|s| s.expose().to_owned()));
        Ok((
            DeviceEdit {
                description: self.description.clone(),
                security_mode,
                auth_mode,
                key,
                operation,
                completes_by,
                auth_string,
                clear_lockout: self.clear_lockout,
                revoke_lsc: None,
            },
            generated,
        ))
    }
}

/// What a change answers: the device as it now is, what changed, and the
/// string generated for it (shown this once).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChangeView {
    /// The device as it now is.
    pub device: DeviceView,
    /// What changed, in words.
    pub changes: Vec<String>,
    /// The string generated by this request, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated_string: Option<String>,
}

/// Records who made a change in the audit log: the store's own entry
/// (`added`, `changed`, `removed`) says what changed, this one (`operator`,
/// with the operator as actor) who changed it through the API.
fn operator_entry(
    now: SystemTime,
    device: &DeviceName,
    operator: &Operator,
    what: &str,
) -> AuditEntry {
    AuditEntry::new(
        now,
        device,
        "operator",
        format!("{what} (role {}, admin API)", operator.role),
    )
    .by(operator.actor())
}

fn describe(changes: &[String]) -> String {
    if changes.is_empty() {
        "no change".to_owned()
    } else {
        changes.join(", ")
    }
}

/// `GET /api/v1/devices`: find with criteria, sorted and paged.
#[utoipa::path(
    get,
    path = "/api/v1/devices",
    tag = "devices",
    operation_id = "find_devices",
    params(Criteria),
    responses(
        (status = 200, description = "One page of the devices that match every criterion", body = DevicePageView),
        (status = 403, description = "A read-only operator searched strings by content", body = ErrorBody),
    ),
    security(("token" = []), ("session" = [])),
)]
pub(crate) async fn find(
    State(state): State<AdminState>,
    operator: Operator,
    Query(criteria): Query<Criteria>,
) -> Result<Json<DevicePageView>, AdminError> {
    let query = criteria.query(operator.sees_strings())?;
    let page = state.store(move |s| Ok(s.find(&query)?)).await?;
    let pages = match page.per_page {
        0 => 1,
        n => page.total.div_ceil(n).max(1),
    };
    let with_string = operator.sees_strings();
    Ok(Json(DevicePageView {
        page: page.page,
        pages,
        per_page: page.per_page,
        total: page.total,
        devices: page
            .devices
            .iter()
            .map(|d| DeviceView::of(d, with_string))
            .collect(),
    }))
}

/// `GET /api/v1/devices/{name}`.
#[utoipa::path(
    get,
    path = "/api/v1/devices/{name}",
    tag = "devices",
    operation_id = "show_device",
    params(("name" = String, Path, description = "Device name", example = "SEP001122334455")),
    responses(
        (status = 200, description = "The device (its string only for helpdesk and admin)", body = DeviceView),
        (status = 404, description = "No such device", body = ErrorBody),
    ),
    security(("token" = []), ("session" = [])),
)]
pub(crate) async fn show(
    State(state): State<AdminState>,
    operator: Operator,
    Path(name): Path<String>,
) -> Result<Json<DeviceView>, AdminError> {
    let name = device_name(&name)?;
    let device = load(&state, name).await?;
    Ok(Json(DeviceView::of(&device, operator.sees_strings())))
}

async fn load(state: &AdminState, name: DeviceName) -> Result<Device, AdminError> {
    state
        .store(move |s| {
            s.load(&name)?
                .ok_or_else(|| AdminError::NotFound(format!("device {name} is not configured")))
        })
        .await
}

/// `POST /api/v1/devices` body: a name and the fields of a change, in one
/// object. (Its schema in the OpenAPI document is made from
/// [`DeviceFields`]'s.)
pub(crate) struct CreateRequest {
    name: String,
    fields: DeviceFields,
}

impl<'de> Deserialize<'de> for CreateRequest {
    /// The name, then every other field as [`DeviceFields`], which refuses
    /// fields it does not know (serde's `flatten` would let them pass).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut object = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let name = match object.remove("name") {
            Some(serde_json::Value::String(name)) => name,
            Some(_) => return Err(D::Error::custom("name: a device name is a string")),
            None => return Err(D::Error::missing_field("name")),
        };
        let fields = DeviceFields::deserialize(serde_json::Value::Object(object))
            .map_err(D::Error::custom)?;
        Ok(CreateRequest { name, fields })
    }
}

/// `POST /api/v1/devices` (admin): adds a device, as `capf device add`.
#[utoipa::path(
    post,
    path = "/api/v1/devices",
    tag = "devices",
    operation_id = "add_device",
    request_body(content = ref("#/components/schemas/CreateRequest"), description = "A name and the fields of a change"),
    responses(
        (status = 201, description = "Added", body = ChangeView),
        (status = 403, description = "Not an admin, or a browser session without its CSRF token", body = ErrorBody),
        (status = 409, description = "The device exists", body = ErrorBody),
    ),
    security(("token" = []), ("session" = [], "csrf" = [])),
)]
pub(crate) async fn create(
    State(state): State<AdminState>,
    operator: Operator,
    JsonObject(request): JsonObject<CreateRequest>,
) -> Result<Response, AdminError> {
    operator.require(Role::Admin)?;
    let name = device_name(&request.name)?;
    let now = state.now();
    let (edit, generated) = request.fields.edit(now)?;
    let mut device = Device::new(name, AuthMode::AuthString);
    let changes = edit.apply(&mut device, now)?;
    let entry = operator_entry(
        now,
        &device.name,
        &operator,
        &format!("added ({})", describe(&changes)),
    );
    let saved = device.clone();
    state
        .store(move |s| {
            s.insert(&saved, now)?;
            s.record_event(&entry)?;
            Ok(())
        })
        .await?;
    tracing::info!(device = %device.name, actor = %operator.actor(), "device added");
    let view = ChangeView {
        device: DeviceView::of(&device, operator.sees_strings()),
        changes,
        generated_string: generated,
    };
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// Applies an edit and records who made it.
async fn modify(
    state: &AdminState,
    operator: &Operator,
    name: DeviceName,
    edit: DeviceEdit,
) -> Result<(Device, Vec<String>), AdminError> {
    let now = state.now();
    let who = operator.clone();
    let edited = state
        .store(move |s| {
            let edited = s.modify(&name, &edit, now)?;
            if !edited.changes.is_empty() {
                s.record_event(&operator_entry(
                    now,
                    &name,
                    &who,
                    &describe(&edited.changes),
                ))?;
            }
            Ok(edited)
        })
        .await?;
    tracing::info!(device = %edited.device.name, actor = %operator.actor(), changes = %describe(&edited.changes), "device changed");
    Ok((edited.device, edited.changes))
}

/// `PATCH /api/v1/devices/{name}`: changes only the fields given, as
/// `capf device set`. Helpdesk may schedule, set deadlines, arm strings and
/// lift lockouts; the other fields need admin.
#[utoipa::path(
    patch,
    path = "/api/v1/devices/{name}",
    tag = "devices",
    operation_id = "change_device",
    params(("name" = String, Path, description = "Device name", example = "SEP001122334455")),
    request_body = DeviceFields,
    responses(
        (status = 200, description = "Changed", body = ChangeView),
        (status = 403, description = "The role does not allow these fields, or a browser session without its CSRF token", body = ErrorBody),
        (status = 404, description = "No such device", body = ErrorBody),
        (status = 409, description = "A phone's session is working on the device: try again", body = ErrorBody),
    ),
    security(("token" = []), ("session" = [], "csrf" = [])),
)]
pub(crate) async fn patch(
    State(state): State<AdminState>,
    operator: Operator,
    Path(name): Path<String>,
    JsonObject(fields): JsonObject<DeviceFields>,
) -> Result<Json<ChangeView>, AdminError> {
    operator.require(fields.needed_role())?;
    let name = device_name(&name)?;
    let (edit, generated) = fields.edit(state.now())?;
    let (device, changes) = modify(&state, &operator, name, edit).await?;
    Ok(Json(ChangeView {
        device: DeviceView::of(&device, operator.sees_strings()),
        changes,
        generated_string: generated,
    }))
}

/// `DELETE /api/v1/devices/{name}` (admin).
#[utoipa::path(
    delete,
    path = "/api/v1/devices/{name}",
    tag = "devices",
    operation_id = "remove_device",
    params(("name" = String, Path, description = "Device name", example = "SEP001122334455")),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "Not an admin, or a browser session without its CSRF token", body = ErrorBody),
        (status = 404, description = "No such device", body = ErrorBody),
        (status = 409, description = "A phone's session is working on the device: try again", body = ErrorBody),
    ),
    security(("token" = []), ("session" = [], "csrf" = [])),
)]
pub(crate) async fn remove(
    State(state): State<AdminState>,
    operator: Operator,
    Path(name): Path<String>,
) -> Result<StatusCode, AdminError> {
    operator.require(Role::Admin)?;
    let name = device_name(&name)?;
    let now = state.now();
    let entry = operator_entry(now, &name, &operator, "removed");
    let shown = name.clone();
    state
        .store(move |s| {
            if !s.remove(&name, now)? {
                return Err(AdminError::NotFound(format!(
                    "device {name} is not configured"
                )));
            }
            s.record_event(&entry)?;
            Ok(())
        })
        .await?;
    tracing::info!(device = %shown, actor = %operator.actor(), "device removed");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/devices/{name}/generate-string` body (optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GenerateRequest {
    /// Digits (4 to 10, default 8).
    #[schema(minimum = 4, maximum = 10)]
    length: Option<usize>,
}

/// `POST /api/v1/devices/{name}/generate-string` (helpdesk): arms a new
/// random string (lifting a lockout) and answers it once.
#[utoipa::path(
    post,
    path = "/api/v1/devices/{name}/generate-string",
    tag = "devices",
    operation_id = "generate_string",
    params(("name" = String, Path, description = "Device name", example = "SEP001122334455")),
    request_body = Option<GenerateRequest>,
    responses(
        (status = 200, description = "Armed: the string is in this answer", body = ChangeView),
        (status = 403, description = "A read-only operator, or a browser session without its CSRF token", body = ErrorBody),
        (status = 404, description = "No such device", body = ErrorBody),
        (status = 409, description = "A phone's session is working on the device: try again", body = ErrorBody),
    ),
    security(("token" = []), ("session" = [], "csrf" = [])),
)]
pub(crate) async fn generate_string(
    State(state): State<AdminState>,
    operator: Operator,
    Path(name): Path<String>,
    body: Option<JsonObject<GenerateRequest>>,
) -> Result<Json<ChangeView>, AdminError> {
    operator.require(Role::Helpdesk)?;
    let name = device_name(&name)?;
    let length = body.and_then(|JsonObject(b)| b.length).unwrap_or(8);
    let string = AuthString::generate(length).map_err(bad)?;
    let generated = string.expose().to_owned();
    let edit = DeviceEdit {
        auth_string: Some(string),
        ..DeviceEdit::default()
    };
    let (device, changes) = modify(&state, &operator, name, edit).await?;
    Ok(Json(ChangeView {
        device: DeviceView::of(&device, true),
        changes,
        generated_string: Some(generated),
    }))
}

/// `POST /api/v1/devices/schedule` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScheduleRequest {
    /// The devices (1 to 1000). Give either this or `matching`.
    #[schema(min_items = 1, max_items = 1000, example = json!(["SEP001122334455"]))]
    names: Option<Vec<String>>,
    /// Every device that `GET /api/v1/devices` would find with these
    /// criteria (paging ignored; at most 1000 may match). Give either
    /// this or `names`.
    matching: Option<Criteria>,
    /// `install`, `delete`, `troubleshoot` or `none`.
    #[schema(value_type = crate::openapi::OperationName)]
    operation: String,
    /// Deadline (RFC 3339, in the future), or `none`.
    #[schema(example = "2030-01-01T00:00:00Z")]
    completes_by: Option<String>,
    /// Generate a string for each device.
    generate_string: Option<Generate>,
}

/// What happened to one device of a bulk request.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BulkResult {
    /// The device name as given.
    pub name: String,
    /// Whether the change was made.
    pub ok: bool,
    /// What changed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
    /// The device's new string, if one was generated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated_string: Option<String>,
    /// Why not, if not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `POST /api/v1/devices/schedule` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BulkView {
    /// How many devices were changed.
    pub succeeded: usize,
    /// How many were not.
    pub failed: usize,
    /// One result per device, in the order given.
    pub results: Vec<BulkResult>,
}

/// `POST /api/v1/devices/schedule` (helpdesk): schedules one operation
/// for a list of devices, or for every device a find query matches, each
/// on its own (one refusal does not stop the others), optionally
/// generating a string for each.
#[utoipa::path(
    post,
    path = "/api/v1/devices/schedule",
    tag = "devices",
    operation_id = "schedule_devices",
    request_body = ScheduleRequest,
    responses(
        (status = 200, description = "One result per device: a refusal of one does not stop the others", body = BulkView),
        (status = 403, description = "A read-only operator, or a browser session without its CSRF token", body = ErrorBody),
    ),
    security(("token" = []), ("session" = [], "csrf" = [])),
)]
pub(crate) async fn schedule(
    State(state): State<AdminState>,
    operator: Operator,
    JsonObject(request): JsonObject<ScheduleRequest>,
) -> Result<Json<BulkView>, AdminError> {
    operator.require(Role::Helpdesk)?;
    let names = match (request.names, request.matching) {
        (Some(names), None) => names,
        (None, Some(criteria)) => matching_names(&state, &operator, criteria).await?,
        _ => {
            return Err(AdminError::BadRequest(
                "give either names or matching, not both".into(),
            ));
        }
    };
    if names.is_empty() || names.len() > MAX_BULK {
        return Err(AdminError::BadRequest(format!(
            "name 1 to {MAX_BULK} devices ({} given or matching)",
            names.len()
        )));
    }
    let fields = DeviceFields {
        operation: Some(request.operation),
        completes_by: request.completes_by,
        ..DeviceFields::default()
    };
    // Check the shared fields once, before anything changes.
    fields.edit(state.now())?;
    let mut results = Vec::with_capacity(names.len());
    for given in names {
        let fields = DeviceFields {
            operation: fields.operation.clone(),
            completes_by: fields.completes_by.clone(),
            generate_string: request.generate_string,
            ..DeviceFields::default()
        };
        let outcome = async {
            let name = device_name(&given)?;
            let (edit, generated) = fields.edit(state.now())?;
            let (_, changes) = modify(&state, &operator, name, edit).await?;
            Ok::<_, AdminError>((changes, generated))
        }
        .await;
        results.push(match outcome {
            Ok((changes, generated_string)) => BulkResult {
                name: given,
                ok: true,
                changes,
                generated_string,
                error: None,
            },
            Err(e) => BulkResult {
                name: given,
                ok: false,
                changes: Vec::new(),
                generated_string: None,
                error: Some(e.to_string()),
            },
        });
    }
    let succeeded = results.iter().filter(|r| r.ok).count();
    Ok(Json(BulkView {
        succeeded,
        failed: results.len() - succeeded,
        results,
    }))
}

/// Every device `criteria` find, on every page, in their order: the
/// criteria are checked as given (paging included), then run with paging
/// left out.
pub(crate) async fn every_match(
    state: &AdminState,
    operator: &Operator,
    criteria: Criteria,
) -> Result<Vec<capf_operations::Device>, AdminError> {
    criteria.query(operator.sees_strings())?;
    let criteria = Criteria {
        page: None,
        per_page: Some(0),
        ..criteria
    };
    let query = criteria.query(operator.sees_strings())?;
    Ok(state.store(move |s| Ok(s.find(&query)?)).await?.devices)
}

/// The names of every device `criteria` find (all pages), in their order.
async fn matching_names(
    state: &AdminState,
    operator: &Operator,
    criteria: Criteria,
) -> Result<Vec<String>, AdminError> {
    let devices = every_match(state, operator, criteria).await?;
    Ok(devices.iter().map(|d| d.name.to_string()).collect())
}

/// `GET /api/v1/devices/{name}/certificates`: every certificate issued to
/// the device, oldest first. A removed device's certificates stay on
/// record and are answered; a name that is neither configured nor was
/// ever issued a certificate is 404, as `GET /api/v1/devices/{name}` is.
#[utoipa::path(
    get,
    path = "/api/v1/devices/{name}/certificates",
    tag = "devices",
    operation_id = "device_certificates",
    params(("name" = String, Path, description = "Device name", example = "SEP001122334455")),
    responses(
        (status = 200, description = "Every certificate issued to the device, oldest first (also after the device was removed)", body = Vec<IssuedView>),
        (status = 404, description = "No such device, and none was ever issued a certificate under this name", body = ErrorBody),
    ),
    security(("token" = []), ("session" = [])),
)]
pub(crate) async fn certificates(
    State(state): State<AdminState>,
    _operator: Operator,
    Path(name): Path<String>,
) -> Result<Json<Vec<IssuedView>>, AdminError> {
    let name = device_name(&name)?;
    let history = state
        .store(move |s| {
            let history = s.certificate_history(&name)?;
            if history.is_empty() && s.load(&name)?.is_none() {
                return Err(AdminError::NotFound(format!(
                    "device {name} is not configured"
                )));
            }
            Ok(history)
        })
        .await?;
    Ok(Json(history.iter().map(IssuedView::of).collect()))
}

/// `POST /api/v1/devices/{name}/revoke-lsc` body.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevokeRequest {
    /// Why (kept in the audit log).
    reason: Option<String>,
}

/// `POST /api/v1/devices/{name}/revoke-lsc` (admin): revokes the device's
/// LSC, as `capf device revoke-lsc`: it no longer authenticates the phone.
#[utoipa::path(
    post,
    path = "/api/v1/devices/{name}/revoke-lsc",
    tag = "devices",
    operation_id = "revoke_lsc",
    params(("name" = String, Path, description = "Device name", example = "SEP001122334455")),
    request_body = Option<RevokeRequest>,
    responses(
        (status = 200, description = "Revoked (or already without an LSC: `changes` says)", body = ChangeView),
        (status = 403, description = "Not an admin, or a browser session without its CSRF token", body = ErrorBody),
        (status = 404, description = "No such device", body = ErrorBody),
        (status = 409, description = "A phone's session is working on the device: try again", body = ErrorBody),
    ),
    security(("token" = []), ("session" = [], "csrf" = [])),
)]
pub(crate) async fn revoke_lsc(
    State(state): State<AdminState>,
    operator: Operator,
    Path(name): Path<String>,
    body: Option<JsonObject<RevokeRequest>>,
) -> Result<Json<ChangeView>, AdminError> {
    operator.require(Role::Admin)?;
    let name = device_name(&name)?;
    let reason = body.and_then(|JsonObject(b)| b.reason).unwrap_or_default();
    let edit = DeviceEdit {
        revoke_lsc: Some(reason),
        ..DeviceEdit::default()
    };
    let (device, changes) = modify(&state, &operator, name, edit).await?;
    Ok(Json(ChangeView {
        device: DeviceView::of(&device, operator.sees_strings()),
        changes,
        generated_string: None,
    }))
}
