//! The OpenAPI 3.1 document of the admin API, generated from the handlers'
//! `#[utoipa::path]` attributes and the request and answer types; served
//! without authentication at `GET /api/v1/openapi.json`.
//!
//! What every operation shares is added here rather than on each handler,
//! so that it cannot be forgotten: 401 on every operation that needs an
//! operator, 400 (a query or path that cannot be read) and 415/422 (a body
//! that is not JSON or not the expected fields) wherever the handler reads
//! one, 500 wherever it reaches the store.

use std::sync::OnceLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Components, Content, ObjectBuilder, Ref, RefOr, Schema, Type};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::error::ErrorBody;
use crate::{accounts, auth, devices, misc, params, views};

/// Names of the security schemes.
pub(crate) const TOKEN: &str = "token";
pub(crate) const SESSION: &str = "session";
pub(crate) const CSRF: &str = "csrf";

/// Device names the API takes (`DeviceName::parse`): `SEP` and the MAC's 12
/// hex digits, or another Cisco prefix and up to 15 characters in all.
/// The API also takes the prefixes in lower case.
pub(crate) const DEVICE_NAME_PATTERN: &str = "^(SEP[0-9A-Fa-f]{12}|(CSF|BOT|TCT|TAB|ATA|UCM)[A-Za-z0-9._-]{1,12}|CIPC[A-Za-z0-9._-]{1,11}|AN[A-Za-z0-9._-]{1,13})$";

/// Account names the API takes (`AccountName::parse`).
pub(crate) const ACCOUNT_NAME_PATTERN: &str = "^[A-Za-z0-9._@-]{1,64}$";

/// How a pattern matches (`match`, `name_match`...).
#[derive(ToSchema)]
#[schema(rename_all = "kebab-case")]
#[allow(dead_code)]
pub(crate) enum MatchName {
    BeginsWith,
    Contains,
    EndsWith,
    Exact,
    Empty,
    NotEmpty,
}

/// Whether a device has an LSC.
#[derive(ToSchema)]
#[schema(rename_all = "kebab-case")]
#[allow(dead_code)]
pub(crate) enum LscStatusName {
    Installed,
    NotInstalled,
}

/// A CAPF operation.
#[derive(ToSchema)]
#[schema(rename_all = "kebab-case")]
#[allow(dead_code)]
pub(crate) enum OperationName {
    None,
    Install,
    Delete,
    Troubleshoot,
}

/// The status of a device's operation.
#[derive(ToSchema)]
#[schema(rename_all = "kebab-case")]
#[allow(dead_code)]
pub(crate) enum StatusName {
    None,
    Pending,
    Successful,
    Failed,
}

/// A column to sort devices by.
#[derive(ToSchema)]
#[schema(rename_all = "kebab-case")]
#[allow(dead_code)]
pub(crate) enum SortName {
    Name,
    Description,
    Operation,
    Status,
    LscStatus,
    AuthMode,
    SecurityMode,
}

/// An operator's role.
#[derive(ToSchema)]
#[schema(rename_all = "kebab-case")]
#[allow(dead_code)]
pub(crate) enum RoleName {
    ReadOnly,
    Helpdesk,
    Admin,
}

/// How a phone authenticates to CAPF.
#[derive(ToSchema)]
#[schema(rename_all = "kebab-case")]
#[allow(dead_code)]
pub(crate) enum AuthModeName {
    AuthString,
    NullString,
    LscFirst,
    MicFirst,
}

/// A device's security mode.
#[derive(ToSchema)]
#[schema(rename_all = "kebab-case")]
#[allow(dead_code)]
pub(crate) enum SecurityModeName {
    NonSecure,
    Authenticated,
    Encrypted,
}

/// The state of a device's authentication string.
#[derive(ToSchema)]
#[schema(rename_all = "kebab-case")]
#[allow(dead_code)]
pub(crate) enum StringStateName {
    Armed,
    NotSet,
    LockedOut,
}

/// A key to ask the phone for (`default`: the service parameter's).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub(crate) enum KeyName {
    Rsa1024,
    Rsa2048,
    Rsa3072,
    Rsa4096,
    P256,
    P384,
    P521,
    Default,
}

/// A form of the CAPF certificate.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub(crate) enum FormatName {
    Pem,
    Der,
    Hashed,
    Json,
}

/// A file's bytes (the DER certificate).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub(crate) struct FileBytes(Vec<u8>);

/// How an operator authenticated.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub(crate) enum ViaName {
    Session,
    Token,
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "CAPF admin API",
        description = "The operator REST API of the CAPF server: devices, \
            authentication strings, certificates, the audit log, operator \
            accounts and API tokens. Scripts send `Authorization: Bearer \
            capf_<id>_<secret>`; browsers log in for a `capf_session` \
            cookie and send its CSRF token as `X-CSRF-Token` with every \
            change. Every error answer is `{\"error\": \"...\"}`."
    ),
    paths(
        misc::health,
        document,
        auth::login,
        auth::logout,
        auth::session,
        accounts::change_own_password,
        devices::find,
        devices::create,
        devices::schedule,
        devices::show,
        devices::patch,
        devices::remove,
        devices::generate_string,
        devices::certificates,
        devices::revoke_lsc,
        accounts::list,
        accounts::add,
        accounts::change,
        accounts::remove,
        accounts::list_tokens,
        accounts::create_token,
        accounts::remove_token,
        misc::audit,
        misc::report,
        params::show,
        params::change,
        misc::ca_certificate,
    ),
    components(schemas(
        ErrorBody,
        MatchName,
        LscStatusName,
        OperationName,
        StatusName,
        SortName,
        RoleName,
        AuthModeName,
        SecurityModeName,
        StringStateName,
        KeyName,
        FormatName,
        ViaName,
        views::DeviceView,
        views::CertificateView,
    )),
    modifiers(&Shared),
    tags(
        (name = "meta", description = "Health and this document (no authentication)"),
        (name = "session", description = "Browser sessions"),
        (name = "devices", description = "Devices, strings, operations, certificates"),
        (name = "accounts", description = "Operator accounts (admin)"),
        (name = "tokens", description = "API tokens (admin)"),
        (name = "audit", description = "The audit log"),
        (name = "ca", description = "The CAPF certificate"),
    )
)]
struct ApiDoc;

/// Security schemes, and the answers every operation shares.
struct Shared;

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name("ErrorBody"))),
        )
        .build()
        .into()
}

fn add_response(operation: &mut Operation, status: &str, description: &str) {
    operation
        .responses
        .responses
        .entry(status.to_owned())
        .or_insert_with(|| error_response(description));
}

/// A string schema with a pattern.
fn text(description: &str, pattern: &str, example: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .pattern(Some(pattern))
        .examples([serde_json::Value::from(example)])
        .build()
        .into()
}

/// `POST /api/v1/devices` takes a name and the fields of a change in one
/// object: its schema is the fields' own with the name added.
fn merge_create_request(components: &mut Components) {
    let Some(RefOr::T(Schema::Object(fields))) = components.schemas.get("DeviceFields") else {
        return;
    };
    let mut create = fields.clone();
    create.properties.insert(
        "name".to_owned(),
        text("Device name.", DEVICE_NAME_PATTERN, "SEP001122334455"),
    );
    create.required.insert(0, "name".to_owned());
    create.description =
        Some("`POST /api/v1/devices` body: a name and the fields of a change.".to_owned());
    components
        .schemas
        .insert("CreateRequest".to_owned(), Schema::Object(create).into());
}

impl Modify for Shared {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        merge_create_request(components);
        components.add_security_scheme(
            TOKEN,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("capf_<id>_<secret>")
                    .description(Some(
                        "An API token (`capf admin token create`, `POST /api/v1/tokens`)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            SESSION,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::SESSION_COOKIE,
                "The browser session `POST /api/v1/login` sets",
            ))),
        );
        components.add_security_scheme(
            CSRF,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-CSRF-Token",
                "The session's CSRF token (login and `GET /api/v1/session` answer it); \
                 needed with the session cookie on every change",
            ))),
        );
        for (path, item) in doc.paths.paths.iter_mut() {
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.patch,
                &mut item.put,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                // The names in paths, as the API checks them.
                for parameter in operation.parameters.iter_mut().flatten() {
                    let RefOr::T(parameter) = parameter else {
                        continue;
                    };
                    if parameter.parameter_in != ParameterIn::Path || parameter.name != "name" {
                        continue;
                    }
                    if path.starts_with("/api/v1/devices/") {
                        parameter.schema =
                            Some(text("Device name", DEVICE_NAME_PATTERN, "SEP001122334455"));
                    } else if path.starts_with("/api/v1/accounts/") {
                        parameter.schema =
                            Some(text("Account name", ACCOUNT_NAME_PATTERN, "alice"));
                    }
                }
                let authenticated = operation.security.as_ref().is_some_and(|s| !s.is_empty());
                if authenticated {
                    add_response(
                        operation,
                        "401",
                        "No valid session cookie or API token (or a wrong password at login)",
                    );
                }
                if operation.parameters.as_ref().is_some_and(|p| !p.is_empty())
                    || operation.request_body.is_some()
                {
                    add_response(
                        operation,
                        "400",
                        "A query, path or body the API cannot act on",
                    );
                }
                if operation.request_body.is_some() {
                    add_response(operation, "413", "The body is too large");
                    add_response(operation, "415", "The body is not sent as application/json");
                    add_response(
                        operation,
                        "422",
                        "The body is JSON but not the fields this request takes",
                    );
                }
                let touches_store = operation
                    .tags
                    .as_ref()
                    .is_none_or(|t| !t.iter().any(|t| t == "meta"));
                if touches_store {
                    add_response(
                        operation,
                        "500",
                        "The store or the system failed (the server's log says why)",
                    );
                }
            }
        }
    }
}

/// The admin API's OpenAPI 3.1 document, as `GET /api/v1/openapi.json`
/// serves it.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as JSON, made once.
fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        // Serialising plain data with string keys cannot fail; should it
        // ever, the answer is an empty document rather than a panic.
        openapi().to_json().unwrap_or_else(|_| "{}".to_owned())
    })
}

/// `GET /api/v1/openapi.json`: this document (no authentication).
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI document of this API", content_type = "application/json", body = Object)),
)]
pub(crate) async fn document() -> Response {
    let mut response = document_json().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
