//! The one error type of this crate, and how each becomes an HTTP answer.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use capf_operations::OperationsError;
use serde::Serialize;

/// What can go wrong in the admin API. Each variant maps to one HTTP
/// status; the body is `{"error": "<message>"}`, and the message never
/// holds a password, token, session id or authentication string.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// No valid session cookie or bearer token (401).
    #[error("authentication required: log in, or send Authorization: Bearer <token>")]
    Unauthenticated,
    /// Wrong account name or password (401). Says nothing about which.
    #[error("wrong account name or password")]
    BadCredentials,
    /// The role does not allow this (403).
    #[error("forbidden: this needs the {needed} role")]
    Forbidden {
        /// The least role that may.
        needed: capf_operations::Role,
    },
    /// A request of a browser session that changes something came without
    /// the session's CSRF token in `X-CSRF-Token` (403).
    #[error("missing or wrong X-CSRF-Token header (GET /api/v1/session returns the token)")]
    CsrfMismatch,
    /// Refused for another reason than the role: a wrong current
    /// password, a token asking for what only a session may (403).
    #[error("{0}")]
    Refused(String),
    /// Too many failed logins for the account or from the address (429).
    #[error("too many failed logins: try again in {} s", retry_after.as_secs().max(1))]
    Throttled {
        /// How long the lockout still lasts.
        retry_after: Duration,
    },
    /// A request the API cannot act on (400).
    #[error("{0}")]
    BadRequest(String),
    /// No such device, account or resource (404).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the state (device exists, device busy
    /// in a session, last admin) (409).
    #[error("{0}")]
    Conflict(String),
    /// The CAPF certificate given to [`AdminState`](crate::AdminState)
    /// could not be read.
    #[error("the CAPF certificate: {0}")]
    Certificate(#[source] capf_ca::CaError),
    /// Hashing or checking a password failed (500).
    #[error("password hashing failed: {0}")]
    PasswordHash(String),
    /// The operating system could not provide randomness (500).
    #[error("no randomness from the operating system: {0}")]
    Random(String),
    /// A blocking store task failed to finish (500).
    #[error("a store task failed: {0}")]
    Task(String),
    /// The store failed (500), or refused in a way not mapped above.
    #[error(transparent)]
    Store(OperationsError),
    /// Accepting a connection or serving it failed.
    #[error("serving the admin API: {0}")]
    Io(#[from] std::io::Error),
}

impl From<OperationsError> for AdminError {
    fn from(e: OperationsError) -> Self {
        match e {
            OperationsError::UnknownDevice { .. } => AdminError::NotFound(e.to_string()),
            OperationsError::DeviceExists { .. }
            | OperationsError::DeviceBusy { .. }
            | OperationsError::AccountExists { .. }
            | OperationsError::LastAdmin { .. } => AdminError::Conflict(e.to_string()),
            OperationsError::InvalidDeviceName { .. }
            | OperationsError::InvalidQuery { .. }
            | OperationsError::InvalidEdit { .. }
            | OperationsError::InvalidAccount { .. }
            | OperationsError::Policy { .. } => AdminError::BadRequest(e.to_string()),
            other => AdminError::Store(other),
        }
    }
}

impl AdminError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            AdminError::Unauthenticated | AdminError::BadCredentials => StatusCode::UNAUTHORIZED,
            AdminError::Forbidden { .. } | AdminError::CsrfMismatch | AdminError::Refused(_) => {
                StatusCode::FORBIDDEN
            }
            AdminError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            AdminError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AdminError::NotFound(_) => StatusCode::NOT_FOUND,
            AdminError::Conflict(_) => StatusCode::CONFLICT,
            AdminError::PasswordHash(_)
            | AdminError::Certificate(_)
            | AdminError::Random(_)
            | AdminError::Task(_)
            | AdminError::Store(_)
            | AdminError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The body of every error answer, the API's own and axum's refusals of a
/// request it cannot read alike (see [`json_errors`]).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    /// What went wrong, in words.
    #[schema(example = "device SEP001122334455 is not configured")]
    pub(crate) error: String,
}

/// Most bytes of a refusal's text that [`json_errors`] reads.
const MAX_REFUSAL_TEXT: usize = 64 * 1024;

/// Turns every error answer that is not JSON (axum's refusals of a body,
/// query or path it cannot read: 400, 413, 415, 422; a method a path does
/// not take: 405) into the API's own `{"error": "..."}`, keeping the
/// status and headers (`Allow` among them). Answers that already are JSON
/// and successful answers pass unchanged.
pub(crate) async fn json_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_REFUSAL_TEXT)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let error = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request refused")
            .to_lowercase()
    } else {
        text
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = serde_json::to_vec(&ErrorBody { error }).unwrap_or_default();
    Response::from_parts(parts, axum::body::Body::from(body))
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "admin API request failed");
        }
        let mut response = (
            status,
            Json(ErrorBody {
                error: self.to_string(),
            }),
        )
            .into_response();
        match &self {
            AdminError::Throttled { retry_after } => {
                let secs = retry_after.as_secs().max(1).to_string();
                if let Ok(v) = HeaderValue::from_str(&secs) {
                    response.headers_mut().insert(header::RETRY_AFTER, v);
                }
            }
            AdminError::Unauthenticated | AdminError::BadCredentials => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"capf\""),
                );
            }
            _ => {}
        }
        response
    }
}
