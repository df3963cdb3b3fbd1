//! The audit log, the CAPF certificate and the health check.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use capf_operations::{AuditQuery, DeviceName};
use serde::{Deserialize, Serialize};

use crate::views::AuditView;
use crate::{AdminError, AdminState, Operator, time_text};

/// Filters of `GET /api/v1/audit`, all ANDed.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditFilter {
    /// Only this device's entries.
    #[param(example = "SEP001122334455")]
    pub device: Option<String>,
    /// Only this event (`added`, `changed`, `operator`, `refused`,
    /// `account-added`...).
    pub event: Option<String>,
    /// Only entries by this actor (`alice`, `token:<id>`).
    pub actor: Option<String>,
    /// Only entries at or after this time (RFC 3339).
    #[param(example = "2026-12-01T00:00:00Z")]
    pub since: Option<String>,
    /// Only entries before this time (RFC 3339).
    #[param(example = "2026-12-31T00:00:00Z")]
    pub until: Option<String>,
    /// At most this many entries, the newest (default 1000, at most
    /// 10000: more is taken as 10000).
    pub limit: Option<usize>,
}

/// Most entries one request answers.
const MAX_AUDIT: usize = 10_000;

impl AuditFilter {
    /// The store query these filters describe.
    pub fn query(&self) -> Result<AuditQuery, AdminError> {
        let time = |t: &Option<String>| {
            t.as_deref()
                .map(time_text::parse)
                .transpose()
                .map_err(AdminError::BadRequest)
        };
        let device = self
            .device
            .as_deref()
            .map(DeviceName::parse)
            .transpose()
            .map_err(|e| AdminError::BadRequest(e.to_string()))?;
        Ok(AuditQuery {
            device,
            event: self.event.clone(),
            actor: self.actor.clone(),
            since: time(&self.since)?,
            until: time(&self.until)?,
            limit: self
                .limit
                .unwrap_or(AuditQuery::DEFAULT_LIMIT)
                .min(MAX_AUDIT),
        })
    }
}

/// `GET /api/v1/audit`: the audit log, newest first, filtered.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "audit",
    operation_id = "audit",
    params(AuditFilter),
    responses((status = 200, description = "Entries, newest first", body = Vec<AuditView>)),
    security(("token" = []), ("session" = [])),
)]
pub(crate) async fn audit(
    State(state): State<AdminState>,
    _operator: Operator,
    Query(filter): Query<AuditFilter>,
) -> Result<Json<Vec<AuditView>>, AdminError> {
    let query = filter.query()?;
    let entries = state.store(move |s| Ok(s.audit(&query)?)).await?;
    Ok(Json(entries.iter().map(AuditView::of).collect()))
}

/// `GET /api/v1/ca/certificate` query.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CertificateFormat {
    /// `pem` (default), `der`, `hashed` (PEM named `<hash>.0`, as OpenSSL's
    /// certificate directories want it) or `json` (its fields).
    #[param(value_type = Option<crate::openapi::FormatName>)]
    pub format: Option<String>,
}

/// The CAPF certificate's fields.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CaView {
    /// Subject name.
    pub subject: String,
    /// Issuer name.
    pub issuer: String,
    /// Serial number, lower-case hex.
    pub serial: String,
    /// SHA-256 of the DER, lower-case hex.
    pub sha256: String,
    /// notBefore.
    pub not_before: String,
    /// notAfter.
    pub not_after: String,
    /// The `<subject-hash>.0` file name.
    pub hashed_file_name: Option<String>,
}

fn download(body: Vec<u8>, content_type: &'static str, file: &str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

/// `GET /api/v1/ca/certificate?format=pem|der|hashed|json`.
#[utoipa::path(
    get,
    path = "/api/v1/ca/certificate",
    tag = "ca",
    operation_id = "ca_certificate",
    params(CertificateFormat),
    responses((
        status = 200,
        description = "The CAPF certificate: PEM (`pem`, `hashed`, named in Content-Disposition), DER (`der`) or its fields (`json`)",
        content(
            (String = "application/x-pem-file"),
            (crate::openapi::FileBytes = "application/pkix-cert"),
            (CaView = "application/json"),
        ),
    )),
    security(("token" = []), ("session" = [])),
)]
pub(crate) async fn ca_certificate(
    State(state): State<AdminState>,
    _operator: Operator,
    Query(query): Query<CertificateFormat>,
) -> Result<Response, AdminError> {
    let ca = &state.inner.ca;
    Ok(match query.format.as_deref().unwrap_or("pem") {
        "pem" => download(ca.pem().into_bytes(), "application/x-pem-file", "capf.pem"),
        "der" => download(ca.der().to_vec(), "application/pkix-cert", "capf.der"),
        "hashed" => {
            let file = ca.hashed_file_name().map_err(AdminError::Certificate)?;
            download(ca.pem().into_bytes(), "application/x-pem-file", &file)
        }
        "json" => Json(CaView {
            subject: ca.subject(),
            issuer: ca.issuer(),
            serial: ca.serial_hex(),
            sha256: ca.fingerprint_sha256_hex(),
            not_before: time_text::format(ca.not_before()),
            not_after: time_text::format(ca.not_after()),
            hashed_file_name: ca.hashed_file_name().ok(),
        })
        .into_response(),
        other => {
            return Err(AdminError::BadRequest(format!(
                "format {other:?}: use pem, der, hashed or json"
            )));
        }
    })
}

/// `GET /api/v1/health` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`.
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// `GET /api/v1/health`: answers without authentication; says nothing but
/// that the API is up.
#[utoipa::path(
    get,
    path = "/api/v1/health",
    tag = "meta",
    operation_id = "health",
    responses((status = 200, description = "The API is up", body = Health)),
)]
pub(crate) async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Any other path: 401 without authentication, 404 with.
pub(crate) async fn not_found(_operator: Operator) -> AdminError {
    AdminError::NotFound("no such API endpoint".into())
}

/// `GET /api/v1/report`: the CAPF report as CSV, one row per device the
/// find criteria match (every page; paging parameters are ignored), in
/// cells a spreadsheet opens as text. Operators who may not see
/// authentication strings get `set` (or nothing) in that column.
#[utoipa::path(
    get,
    path = "/api/v1/report",
    tag = "devices",
    operation_id = "capf_report",
    params(crate::devices::Criteria),
    responses((
        status = 200,
        description = "The CAPF report (`capf-report.csv`, as `capf report` writes it)",
        content((String = "text/csv")),
    )),
    security(("token" = []), ("session" = [])),
)]
pub(crate) async fn report(
    State(state): State<AdminState>,
    operator: Operator,
    Query(criteria): Query<crate::devices::Criteria>,
) -> Result<Response, AdminError> {
    use capf_operations::report::{HEADER, row};
    let with_string = operator.sees_strings();
    let devices = crate::devices::every_match(&state, &operator, criteria).await?;
    let mut csv = csv::Writer::from_writer(Vec::new());
    let failed = |e: csv::Error| AdminError::Task(format!("writing the report: {e}"));
    csv.write_record(HEADER).map_err(failed)?;
    for device in &devices {
        csv.write_record(row(device, with_string)).map_err(failed)?;
    }
    let body = csv
        .into_inner()
        .map_err(|e| AdminError::Task(format!("writing the report: {e}")))?;
    let mut response = download(body, "text/csv; charset=utf-8", "capf-report.csv");
    // It may hold authentication strings: no copy kept on the way.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
