//! Who is asking: a browser session (cookie `capf_session`, CSRF token in
//! `X-CSRF-Token` for every change) or a script (`Authorization: Bearer
//! capf_<id>_<secret>`). Login with throttling, logout, the session's own
//! view.
//!
//! Nothing here logs a password, a token, a session id or a CSRF token.

use std::net::{IpAddr, SocketAddr};

use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use capf_operations::{AccountName, Role, escape_text};
use serde::{Deserialize, Serialize};

use crate::body::JsonObject;
use crate::error::ErrorBody;
use crate::{AdminError, AdminState, password, token};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "capf_session";
/// The header a browser session sends its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How an operator authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Via {
    /// A browser session (cookie).
    Session,
    /// An API token, by its id.
    Token {
        /// The token's public id.
        id: String,
    },
}

/// An authenticated operator: every handler but login and health takes
/// one, so that no other endpoint answers without authentication.
#[derive(Clone, Debug)]
pub struct Operator {
    /// The account's name, or the token's label.
    pub name: String,
    /// What the operator may do.
    pub role: Role,
    /// How the operator authenticated.
    pub via: Via,
    /// The session's CSRF token (browser sessions only).
    csrf: Option<String>,
}

impl Operator {
    /// Refuses (403) unless the operator's role allows what `needed` may.
    pub fn require(&self, needed: Role) -> Result<(), AdminError> {
        if self.role.allows(needed) {
            Ok(())
        } else {
            Err(AdminError::Forbidden { needed })
        }
    }

    /// The name the audit log records as the actor: the account's name, or
    /// `token:<id>`.
    pub fn actor(&self) -> String {
        match &self.via {
            Via::Session => self.name.clone(),
            Via::Token { id } => format!("token:{id}"),
        }
    }

    /// Whether the operator may see authentication strings.
    pub fn sees_strings(&self) -> bool {
        self.role.allows(Role::Helpdesk)
    }
}

/// The client's address, when the server put one in the request
/// (`ConnectInfo<SocketAddr>`, as [`serve`](crate::serve) and axum's
/// `into_make_service_with_connect_info` do). When that address is a
/// trusted reverse proxy ([`AdminOptions::trusted_proxies`]), the client
/// is the last address of `X-Forwarded-For` that is not itself a trusted
/// proxy; from any other peer the header is ignored (a client cannot
/// choose the address it is counted under).
///
/// [`AdminOptions::trusted_proxies`]: crate::AdminOptions::trusted_proxies
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClientAddr(pub(crate) Option<IpAddr>);

impl FromRequestParts<AdminState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AdminState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(ClientAddr(peer.map(|peer| {
            client_behind(peer, &parts.headers, &state.inner.options.trusted_proxies)
        })))
    }
}

/// The client a request from `peer` speaks for (see [`ClientAddr`]).
pub(crate) fn client_behind(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    let is_trusted = |a: &IpAddr| trusted.contains(&a.to_canonical());
    if !is_trusted(&peer) {
        return peer;
    }
    // Each proxy appends the address it received the request from: read
    // from the right, past the trusted proxies. A value that does not
    // parse ends the walk (what is left of it is the client's to write).
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for entry in forwarded.iter().rev() {
        let Ok(address) = entry.parse::<IpAddr>() else {
            break;
        };
        client = address.to_canonical();
        if !is_trusted(&client) {
            break;
        }
    }
    client
}

/// The value of the `capf_session` cookie, if the request has one.
fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim().to_owned())
}

/// Methods that change nothing, and so need no CSRF token.
fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl FromRequestParts<AdminState> for Operator {
    type Rejection = AdminError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AdminState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
            return by_token(value, state).await;
        }
        let id = session_cookie(&parts.headers).ok_or(AdminError::Unauthenticated)?;
        let now = state.now();
        let idle = state.inner.options.idle_timeout;
        let session = state
            .inner
            .sessions
            .touch(&id, now, idle)
            .ok_or(AdminError::Unauthenticated)?;
        if !is_safe(&parts.method) {
            let presented = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !session.csrf_matches(presented) {
                tracing::warn!(
                    account = %session.account,
                    method = %parts.method,
                    path = %escape_text(parts.uri.path()),
                    "admin request refused: missing or wrong CSRF token"
                );
                return Err(AdminError::CsrfMismatch);
            }
        }
        // The account as it is now: removed or re-passworded accounts lose
        // their sessions, role changes apply at once.
        let name = session.account.clone();
        let account = state.store(move |s| Ok(s.account(&name)?)).await?;
        match account {
            Some(a)
                if crate::sessions::password_fingerprint(&a.password_hash)
                    == session.password_fingerprint =>
            {
                Ok(Operator {
                    name: a.name.to_string(),
                    role: a.role,
                    via: Via::Session,
                    csrf: Some(session.csrf),
                })
            }
            _ => {
                state.inner.sessions.remove(&id);
                Err(AdminError::Unauthenticated)
            }
        }
    }
}

async fn by_token(value: &HeaderValue, state: &AdminState) -> Result<Operator, AdminError> {
    let text = value.to_str().map_err(|_| AdminError::Unauthenticated)?;
    let presented = text
        .strip_prefix("Bearer ")
        .ok_or(AdminError::Unauthenticated)?
        .trim();
    let (id, secret) = token::split(presented).ok_or(AdminError::Unauthenticated)?;
    let lookup = id.to_owned();
    let found = state.store(move |s| Ok(s.token(&lookup)?)).await?;
    match found {
        Some(t) if token::secret_matches(&t, secret) => Ok(Operator {
            name: t.label.clone(),
            role: t.role,
            via: Via::Token { id: t.id },
            csrf: None,
        }),
        _ => {
            tracing::warn!(token_id = %escape_text(id), "admin request refused: unknown or wrong API token");
            Err(AdminError::Unauthenticated)
        }
    }
}

/// `POST /api/v1/login` body.
#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct LoginRequest {
    /// The account's name.
    #[schema(example = "alice")]
    name: String,
    /// Its password.
    password: String,
}

/// What login and `GET /api/v1/session` answer.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SessionView {
    /// The account name (or the token's label).
    name: String,
    /// `read-only`, `helpdesk` or `admin`.
    #[schema(value_type = crate::openapi::RoleName)]
    role: &'static str,
    /// `session` or `token`.
    #[schema(value_type = crate::openapi::ViaName)]
    via: &'static str,
    /// Send it as `X-CSRF-Token` with every change (browser sessions only).
    #[serde(skip_serializing_if = "Option::is_none")]
    csrf_token: Option<String>,
    /// Seconds without a request after which the session ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    idle_timeout_seconds: Option<u64>,
}

fn cookie(state: &AdminState, value: &str, clear: bool) -> Result<HeaderValue, AdminError> {
    let mut text = format!("{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict");
    if state.inner.options.secure_cookie {
        text.push_str("; Secure");
    }
    if clear {
        text.push_str("; Max-Age=0");
    }
    HeaderValue::from_str(&text).map_err(|e| AdminError::Task(e.to_string()))
}

/// `POST /api/v1/login`: checks the password (throttled per account and
/// per address), starts a session, sets the cookie and answers the CSRF
/// token.
#[utoipa::path(
    post,
    path = "/api/v1/login",
    tag = "session",
    operation_id = "login",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in: the session cookie is set; send `csrf_token` as X-CSRF-Token with every change", body = SessionView,
            headers(("Set-Cookie" = String, description = "`capf_session=...; Path=/; HttpOnly; SameSite=Strict` (and `Secure` over HTTPS)"))),
        (status = 401, description = "Wrong account name or password (which one is not said)", body = ErrorBody),
        (status = 429, description = "Too many failed logins for the account or from the address", body = ErrorBody,
            headers(("Retry-After" = String, description = "Seconds until the lockout ends"))),
    ),
)]
pub(crate) async fn login(
    State(state): State<AdminState>,
    ClientAddr(address): ClientAddr,
    JsonObject(request): JsonObject<LoginRequest>,
) -> Result<Response, AdminError> {
    let now = state.now();
    let shown_name = escape_text(&request.name).into_owned();
    let shown_address = address.map_or_else(|| "unknown".to_owned(), |a| a.to_string());
    if let Some(retry_after) = state.inner.throttle.locked(&request.name, address, now) {
        tracing::warn!(account = %shown_name, address = %shown_address, "login refused: locked out after failed logins");
        return Err(AdminError::Throttled { retry_after });
    }
    let account = match AccountName::parse(&request.name) {
        Ok(name) => state.store(move |s| Ok(s.account(&name)?)).await?,
        Err(_) => None,
    };
    let hash = account.as_ref().map_or_else(
        || password::decoy_hash().to_owned(),
        |a| a.password_hash.clone(),
    );
    let password = request.password;
    let matched = tokio::task::spawn_blocking(move || password::verify(&password, &hash))
        .await
        .map_err(|e| AdminError::Task(e.to_string()))?;
    let account = match account {
        Some(a) if matched => a,
        _ => {
            let options = state.inner.options.throttle;
            let lockout = state
                .inner
                .throttle
                .failed(&request.name, address, now, &options);
            match lockout {
                Some(d) => {
                    tracing::warn!(account = %shown_name, address = %shown_address, lockout_seconds = d.as_secs(), "login failed; locked out after too many failures")
                }
                None => {
                    tracing::warn!(account = %shown_name, address = %shown_address, "login failed")
                }
            }
            return Err(AdminError::BadCredentials);
        }
    };
    state.inner.throttle.succeeded(&request.name);
    let idle = state.inner.options.idle_timeout;
    let (id, session) =
        state
            .inner
            .sessions
            .create(account.name.clone(), &account.password_hash, now, idle)?;
    tracing::info!(account = %account.name, role = %account.role, address = %shown_address, "operator logged in");
    let body = SessionView {
        name: account.name.to_string(),
        role: account.role.as_str(),
        via: "session",
        csrf_token: Some(session.csrf),
        idle_timeout_seconds: Some(idle.as_secs()),
    };
    let mut response = (StatusCode::OK, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cookie(&state, &id, false)?);
    Ok(response)
}

/// `POST /api/v1/logout`: ends the browser session (and clears the
/// cookie). A token has no session: nothing to end.
#[utoipa::path(
    post,
    path = "/api/v1/logout",
    tag = "session",
    operation_id = "logout",
    responses(
        (status = 204, description = "Logged out (the cookie is cleared)",
            headers(("Set-Cookie" = String, description = "The cleared session cookie (`Max-Age=0`)"))),
        (status = 403, description = "A browser session without its CSRF token", body = ErrorBody),
    ),
    security(("token" = []), ("session" = [], "csrf" = [])),
)]
pub(crate) async fn logout(
    State(state): State<AdminState>,
    operator: Operator,
    headers: HeaderMap,
) -> Result<Response, AdminError> {
    if operator.via == Via::Session
        && let Some(id) = session_cookie(&headers)
    {
        state.inner.sessions.remove(&id);
        tracing::info!(account = %operator.name, "operator logged out");
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cookie(&state, "", true)?);
    Ok(response)
}

/// `GET /api/v1/session`: who is logged in, and the CSRF token.
#[utoipa::path(
    get,
    path = "/api/v1/session",
    tag = "session",
    operation_id = "session",
    responses((status = 200, description = "Who is asking (and, for a browser session, its CSRF token)", body = SessionView)),
    security(("token" = []), ("session" = [])),
)]
pub(crate) async fn session(
    State(state): State<AdminState>,
    operator: Operator,
) -> Json<SessionView> {
    let is_session = operator.via == Via::Session;
    Json(SessionView {
        name: operator.name,
        role: operator.role.as_str(),
        via: if is_session { "session" } else { "token" },
        csrf_token: operator.csrf,
        idle_timeout_seconds: is_session.then_some(state.inner.options.idle_timeout.as_secs()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(peer: &str, forwarded: &[&str], trusted: &[&str]) -> IpAddr {
        let mut headers = HeaderMap::new();
        for value in forwarded {
            headers.append(
                "x-forwarded-for",
                HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("")),
            );
        }
        let trusted: Vec<IpAddr> = trusted.iter().filter_map(|a| a.parse().ok()).collect();
        let peer = peer.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        client_behind(peer, &headers, &trusted)
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn only_a_trusted_proxy_names_the_client() {
        let proxy = ["10.0.0.1"];
        assert_eq!(client("192.0.2.7", &["192.0.2.1"], &proxy), ip("192.0.2.7"));
        assert_eq!(client("10.0.0.1", &["192.0.2.1"], &proxy), ip("192.0.2.1"));
        assert_eq!(client("10.0.0.1", &[], &proxy), ip("10.0.0.1"));
        assert_eq!(client("192.0.2.7", &["192.0.2.1"], &[]), ip("192.0.2.7"));
    }

    #[test]
    fn the_client_is_the_last_address_no_trusted_proxy_wrote() {
        let proxies = ["10.0.0.1", "10.0.0.2"];
        // What the client wrote itself comes first, and is ignored.
        assert_eq!(
            client("10.0.0.1", &["198.51.100.9, 192.0.2.1"], &proxies),
            ip("192.0.2.1")
        );
        // Two proxies in a row.
        assert_eq!(
            client("10.0.0.1", &["192.0.2.1, 10.0.0.2"], &proxies),
            ip("192.0.2.1")
        );
        // Several header lines count as one list, in order.
        assert_eq!(
            client("10.0.0.1", &["198.51.100.9", "192.0.2.1"], &proxies),
            ip("192.0.2.1")
        );
        // Something that is not an address ends the walk.
        assert_eq!(client("10.0.0.1", &["unknown"], &proxies), ip("10.0.0.1"));
        assert_eq!(
            client("10.0.0.1", &["192.0.2.1, unknown, 10.0.0.2"], &proxies),
            ip("10.0.0.2")
        );
        // An IPv4 address seen as IPv6 is the same address.
        assert_eq!(
            client("::ffff:10.0.0.1", &["::ffff:192.0.2.1"], &proxies),
            ip("192.0.2.1")
        );
    }
}
