//! The console's server-rendered pages, beside the API on the same router:
//! login and logout, Find and List Phones with a bulk schedule, the device
//! page (CAPF section, Generate String, LSC and MIC, certificate history,
//! audit trail), the CAPF certificate and, for admins, the users.
//!
//! Every page works through the API's own handlers, so the store calls,
//! role checks, audit entries and throttling are the API's. The session is
//! the API's cookie; a form carries the session's CSRF token in a hidden
//! field, which is handed to the API's check as `X-CSRF-Token`, so every
//! POST is checked exactly as an API change is. A page asked for without
//! a session redirects to `/login`. No JavaScript; the one style sheet is
//! served from the binary.

mod devices;
mod html;

use axum::Router;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json};
use capf_operations::Role;

use crate::auth::ClientAddr;
use crate::body::JsonObject;
use crate::{AdminError, AdminState, CSRF_HEADER, Operator, SESSION_COOKIE, Via, accounts, auth};
use html::{csrf_field, esc, notice, page, url_part};

/// The console's style sheet.
const CSS: &str = include_str!("../../assets/console.css");

/// Most bytes of a form the console reads.
const MAX_FORM: usize = 256 * 1024;

/// The console's pages, with the state they share with the API.
pub(crate) fn routes(state: AdminState) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/devices") }))
        .route("/assets/console.css", get(stylesheet))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/devices", get(devices::find))
        .route("/devices/schedule", post(devices::bulk_schedule))
        .route("/devices/{name}", get(devices::show))
        .route(
            "/devices/{name}/generate-string",
            post(devices::generate_string),
        )
        .route("/devices/{name}/schedule", post(devices::schedule))
        .route("/ca", get(ca))
        .route("/users", get(users))
        .route("/parameters", get(parameters).post(set_parameter))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM))
        .with_state(state)
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

/// An HTML answer, with headers that keep it out of caches and frames and
/// forbid scripts.
pub(crate) fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// A logged-in browser on a page: the operator as the API sees it, and
/// the session's CSRF token for the page's forms.
pub(crate) struct PageUser {
    pub(crate) operator: Operator,
    pub(crate) csrf: String,
}

/// The value of the session cookie.
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

impl PageUser {
    /// The operator of a request's parts, authenticated by the API's own
    /// extractor (which also checks `X-CSRF-Token` on a POST); only a
    /// browser session (not a bearer token) uses pages.
    async fn of(parts: &mut Parts, state: &AdminState) -> Result<Self, PageError> {
        if parts.headers.contains_key(header::AUTHORIZATION) {
            return Err(PageError(AdminError::Unauthenticated));
        }
        let operator = Operator::from_request_parts(parts, state).await?;
        if operator.via != Via::Session {
            return Err(PageError(AdminError::Unauthenticated));
        }
        let csrf = session_cookie(&parts.headers)
            .and_then(|id| {
                state
                    .inner
                    .sessions
                    .touch(&id, state.now(), state.inner.options.idle_timeout)
            })
            .map(|s| s.csrf)
            .ok_or(PageError(AdminError::Unauthenticated))?;
        Ok(PageUser { operator, csrf })
    }

    /// The operator of a form POST: the form's `csrf_token` is checked by
    /// the API's extractor as if it had come as `X-CSRF-Token`.
    pub(crate) async fn of_form(
        state: &AdminState,
        uri: Uri,
        headers: &HeaderMap,
        fields: &[(String, String)],
    ) -> Result<Self, PageError> {
        let presented = field(fields, "csrf_token").unwrap_or("");
        let mut parts = axum::http::Request::builder()
            .method(Method::POST)
            .uri(uri)
            .body(())
            .map_err(|e| PageError(AdminError::BadRequest(e.to_string())))?
            .into_parts()
            .0;
        parts.headers = headers.clone();
        parts.headers.remove(CSRF_HEADER);
        if let Ok(v) = HeaderValue::from_str(presented) {
            parts.headers.insert(CSRF_HEADER, v);
        }
        Self::of(&mut parts, state).await
    }
}

impl FromRequestParts<AdminState> for PageUser {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AdminState,
    ) -> Result<Self, Self::Rejection> {
        Self::of(parts, state).await
    }
}

/// The first value of a form field, if given.
pub(crate) fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A refusal as a page: to the login page without a session, else the
/// API's words on a page of their own.
pub(crate) struct PageError(pub(crate) AdminError);

impl From<AdminError> for PageError {
    fn from(e: AdminError) -> Self {
        PageError(e)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let e = self.0;
        if matches!(e, AdminError::Unauthenticated) {
            return Redirect::to("/login").into_response();
        }
        let status = e.status();
        if status.is_server_error() {
            tracing::error!(error = %e, "console page failed");
        }
        let title = match status {
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::CONFLICT => "Try again",
            StatusCode::TOO_MANY_REQUESTS => "Too many failed logins",
            s if s.is_server_error() => "Something went wrong",
            _ => "Cannot do that",
        };
        let body = format!(
            r#"{}<p><a href="/devices">Back to Find and List Phones</a></p>"#,
            notice("error", &esc(&e.to_string()))
        );
        html(status, page(title, None, &body))
    }
}

fn login_page(status: StatusCode, message: Option<&str>, name: &str) -> Response {
    let message = message.map_or_else(String::new, |m| notice("error", &esc(m)));
    let body = format!(
        r#"<div class="login">{message}<form method="post" action="/login">
<div class="field"><label for="name">Account name</label><input id="name" name="name" autocomplete="username" required value="{name}"></div>
<div class="field"><label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required></div>
<button type="submit">Log in</button>
</form></div>"#,
        name = esc(name)
    );
    html(status, page("Log in", None, &body))
}

async fn login_form() -> Response {
    login_page(StatusCode::OK, None, "")
}

/// `POST /login`: the API's login (same throttling, same session); on
/// success the cookie is set and the browser goes to the phones.
async fn login(
    State(state): State<AdminState>,
    address: ClientAddr,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let name = field(&fields, "name").unwrap_or("").to_owned();
    let password = field(&fields, "password").unwrap_or("").to_owned();
    let request = serde_json::json!({"name": name, "password": password});
    let request = match serde_json::from_value(request) {
        Ok(r) => r,
        Err(e) => return PageError(AdminError::BadRequest(e.to_string())).into_response(),
    };
    match auth::login(State(state), address, JsonObject(request)).await {
        Ok(answer) => {
            let mut response = Redirect::to("/devices").into_response();
            if let Some(cookie) = answer.headers().get(header::SET_COOKIE) {
                response
                    .headers_mut()
                    .insert(header::SET_COOKIE, cookie.clone());
            }
            response
        }
        Err(e @ (AdminError::BadCredentials | AdminError::Throttled { .. })) => {
            let mut response = login_page(e.status(), Some(&e.to_string()), &name);
            if let AdminError::Throttled { retry_after } = e
                && let Ok(v) = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string())
            {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            response
        }
        Err(e) => PageError(e).into_response(),
    }
}

/// `POST /logout`: the API's logout (CSRF-checked), then the login page.
async fn logout(
    State(state): State<AdminState>,
    uri: Uri,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let user = PageUser::of_form(&state, uri, &headers, &fields).await?;
    let answer = auth::logout(State(state), user.operator, headers).await?;
    let mut response = Redirect::to("/login").into_response();
    if let Some(cookie) = answer.headers().get(header::SET_COOKIE) {
        response
            .headers_mut()
            .insert(header::SET_COOKIE, cookie.clone());
    }
    Ok(response)
}

/// `GET /ca`: the CAPF certificate, with links to the API's downloads.
async fn ca(State(state): State<AdminState>, user: PageUser) -> Response {
    let ca = &state.inner.ca;
    let hashed = ca
        .hashed_file_name()
        .unwrap_or_else(|_| "(not available)".to_owned());
    let body = format!(
        r#"<dl class="fields">
<dt>Subject</dt><dd>{subject}</dd>
<dt>Issuer</dt><dd>{issuer}</dd>
<dt>Serial number</dt><dd class="mono">{serial}</dd>
<dt>SHA-256 fingerprint</dt><dd class="mono">{sha256}</dd>
<dt>Valid from</dt><dd>{from}</dd>
<dt>Valid to</dt><dd>{to}</dd>
<dt>Hashed file name</dt><dd class="mono">{hashed}</dd>
</dl>
<h2>Download</h2>
<ul>
<li><a href="/api/v1/ca/certificate?format=pem" download>PEM (capf.pem)</a></li>
<li><a href="/api/v1/ca/certificate?format=der" download>DER (capf.der)</a></li>
<li><a href="/api/v1/ca/certificate?format=hashed" download>PEM named {hashed}, for OpenSSL certificate directories</a></li>
</ul>"#,
        subject = esc(&ca.subject()),
        issuer = esc(&ca.issuer()),
        serial = esc(&ca.serial_hex()),
        sha256 = esc(&ca.fingerprint_sha256_hex()),
        from = esc(&crate::time_text::format(ca.not_before())),
        to = esc(&crate::time_text::format(ca.not_after())),
        hashed = esc(&hashed),
    );
    html(
        StatusCode::OK,
        page(
            "CAPF certificate",
            Some((&user.operator, &user.csrf)),
            &body,
        ),
    )
}

/// `GET /parameters`: the service parameters with their help text; an
/// admin also gets a form per parameter.
async fn parameters(
    State(state): State<AdminState>,
    user: PageUser,
    Query(shown): Query<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let Json(view) = crate::params::show(State(state), user.operator.clone()).await?;
    let admin = user.operator.role.allows(Role::Admin);
    let mut rows = String::new();
    for p in &view.parameters {
        let change = if admin {
            format!(
                r#"<form method="post" action="/parameters" class="inline">{csrf}<input type="hidden" name="name" value="{name}"><label for="value-{name}">New value</label> <input id="value-{name}" name="value" value="{value}" required> <button type="submit">Save</button> <button type="submit" name="reset" value="true" class="secondary">Reset to default</button></form>"#,
                csrf = csrf_field(&user.csrf),
                name = esc(p.name),
                value = esc(&p.value),
            )
        } else {
            String::new()
        };
        rows.push_str(&format!(
            r#"<tr><td class="mono">{}</td><td>{}</td><td>{}</td><td>{}{change}</td></tr>"#,
            esc(p.name),
            esc(&p.value),
            esc(&p.default),
            esc(p.help),
        ));
    }
    let saved = match field(&shown, "saved") {
        Some(name) => format!(
            r#"<p class="notice" role="status">Saved {}.</p>"#,
            esc(name)
        ),
        None => String::new(),
    };
    let body = format!(
        r#"{saved}<p class="muted">{note}.</p>
<div class="scroll"><table><thead><tr><th scope="col">Name</th><th scope="col">Value</th><th scope="col">Default</th><th scope="col">What it does</th></tr></thead><tbody>{rows}</tbody></table></div>"#,
        note = esc(view.note),
    );
    Ok(html(
        StatusCode::OK,
        page(
            "Service parameters",
            Some((&user.operator, &user.csrf)),
            &body,
        ),
    ))
}

/// `POST /parameters` (admin): one parameter set, or reset to its default.
async fn set_parameter(
    State(state): State<AdminState>,
    uri: Uri,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let user = PageUser::of_form(&state, uri, &headers, &fields).await?;
    let name = field(&fields, "name").unwrap_or_default().to_owned();
    let value = match field(&fields, "reset") {
        Some("true") => None,
        _ => Some(field(&fields, "value").unwrap_or_default().to_owned()),
    };
    let mut change = std::collections::BTreeMap::new();
    change.insert(name.clone(), value);
    let _now = crate::params::change(State(state), user.operator, JsonObject(change)).await?;
    Ok(Redirect::to(&format!("/parameters?saved={}", url_part(&name))).into_response())
}

/// `GET /users` (admin): the operator accounts.
async fn users(State(state): State<AdminState>, user: PageUser) -> Result<Response, PageError> {
    user.operator.require(Role::Admin)?;
    let Json(accounts) = accounts::list(State(state), user.operator.clone()).await?;
    let mut rows = String::new();
    for a in &accounts {
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&a.name),
            esc(a.role),
            esc(&a.created_at),
            esc(&a.password_changed_at)
        ));
    }
    let body = format!(
        r#"<p class="muted">Accounts are managed with <code>capf admin user</code> or the API.</p>
<div class="scroll"><table><thead><tr><th scope="col">Name</th><th scope="col">Role</th><th scope="col">Created</th><th scope="col">Password set</th></tr></thead><tbody>{rows}</tbody></table></div>"#
    );
    Ok(html(
        StatusCode::OK,
        page("Users", Some((&user.operator, &user.csrf)), &body),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::sync::Arc;
    use std::time::SystemTime;

    use axum::body::Body;
    use axum::http::Request;
    use capf_auth::AuthMode;
    use capf_ca::{CapfIdentity, EcCurve, IdentityParams, KeySpec};
    use capf_operations::{
        Account, AccountName, AccountStore, Device, DeviceName, MemoryStore, OperatorStore,
    };
    use tower_service::Service;

    use super::*;
    use crate::{AdminOptions, password};

    const PHONE: &str = "SEP001122334455";

    fn app() -> Router {
        let store = Arc::new(MemoryStore::new());
        let now = SystemTime::now();
        for (name, role) in [
            ("ada", Role::Admin),
            ("hal", Role::Helpdesk),
            ("rob", Role::ReadOnly),
        ] {
            store
                .add_account(&Account {
                    name: AccountName::parse(name).unwrap(),
                    role,
                    password_hash: password::hash("pass-word-1").unwrap(),
                    created_at: now,
                    password_changed_at: now,
                })
                .unwrap();
        }
        let mut device = Device::new(DeviceName::parse(PHONE).unwrap(), AuthMode::AuthString);
        device.description = "<script>alert('x')</script> & co".into();
        store.insert(&device, now).unwrap();
        let identity = CapfIdentity::generate(
            &IdentityParams {
                key: KeySpec::Ec(EcCurve::P256),
                ..IdentityParams::default()
            },
            now,
        )
        .unwrap();
        let state = AdminState::with_options(
            store,
            identity.certificate().der(),
            Arc::new(SystemTime::now),
            AdminOptions {
                secure_cookie: false,
                ..AdminOptions::default()
            },
        )
        .unwrap()
        .with_parameters(Arc::new(crate::MemoryParameters::default()));
        crate::router(state)
    }

    #[tokio::test]
    async fn parameters_are_shown_to_all_and_changed_by_admins() {
        let app = app();
        let form = r#"<form method="post" action="/parameters""#;
        let rob = log_in(&app, "rob").await;
        let page = send(&app, "GET", "/parameters", Some(&rob), None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("lsc_validity_years"), "{}", page.body);
        assert!(page.body.contains("restart"), "{}", page.body);
        assert!(!page.body.contains(form), "read-only gets no form");

        let ada = log_in(&app, "ada").await;
        let page = send(&app, "GET", "/parameters", Some(&ada), None).await;
        assert!(page.body.contains(form), "{}", page.body);
        assert!(
            page.body
                .contains(r#"<label for="value-lsc_validity_years">"#)
        );
        let csrf = csrf_of(&page.body);
        // Without the form's CSRF token: refused, nothing changes.
        let refused = send(
            &app,
            "POST",
            "/parameters",
            Some(&ada),
            Some("csrf_token=x&name=lsc_validity_years&value=3"),
        )
        .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        // A value it does not take: refused, nothing changes.
        let bad = send(
            &app,
            "POST",
            "/parameters",
            Some(&ada),
            Some(&format!(
                "csrf_token={csrf}&name=lsc_validity_years&value=many"
            )),
        )
        .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
        let saved = send(
            &app,
            "POST",
            "/parameters",
            Some(&ada),
            Some(&format!(
                "csrf_token={csrf}&name=lsc_validity_years&value=3"
            )),
        )
        .await;
        assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
        let page = send(&app, "GET", "/parameters", Some(&rob), None).await;
        assert!(
            page.body
                .contains(r#"<td class="mono">lsc_validity_years</td><td>3</td>"#),
            "{}",
            page.body
        );
        // Helpdesk may not change them.
        let hal = log_in(&app, "hal").await;
        let page = send(&app, "GET", "/parameters", Some(&hal), None).await;
        assert!(!page.body.contains(form));
        let csrf = csrf_of(&page.body);
        let refused = send(
            &app,
            "POST",
            "/parameters",
            Some(&hal),
            Some(&format!(
                "csrf_token={csrf}&name=lsc_validity_years&reset=true"
            )),
        )
        .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        // Reset by an admin.
        let reset = send(
            &app,
            "POST",
            "/parameters",
            Some(&ada),
            Some(&format!(
                "csrf_token={}&name=lsc_validity_years&reset=true",
                csrf_of(
                    &send(&app, "GET", "/parameters", Some(&ada), None)
                        .await
                        .body
                )
            )),
        )
        .await;
        assert_eq!(reset.status, StatusCode::SEE_OTHER, "{}", reset.body);
        let page = send(&app, "GET", "/parameters", Some(&rob), None).await;
        assert!(!page.body.contains(r#"lsc_validity_years</td><td>3</td>"#));
    }

    struct Answer {
        status: StatusCode,
        headers: HeaderMap,
        body: String,
    }

    async fn send(
        app: &Router,
        method: &str,
        path: &str,
        cookie: Option<&str>,
        form: Option<&str>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(c) = cookie {
            request = request.header(header::COOKIE, c);
        }
        let body = match form {
            Some(f) => {
                request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                Body::from(f.to_owned())
            }
            None => Body::empty(),
        };
        let response = app.clone().call(request.body(body).unwrap()).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn log_in(app: &Router, name: &str) -> String {
        let answer = send(
            app,
            "POST",
            "/login",
            None,
            Some(&format!("name={name}&password=pass-word-1")),
        )
        .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER);
        assert_eq!(answer.headers[header::LOCATION], "/devices");
        let cookie = answer.headers[header::SET_COOKIE].to_str().unwrap();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        cookie.split(';').next().unwrap().to_owned()
    }

    fn csrf_of(page: &str) -> String {
        let marker = r#"name="csrf_token" value=""#;
        let start = page.find(marker).expect("a CSRF field") + marker.len();
        page[start..start + 64].to_owned()
    }

    #[tokio::test]
    async fn pages_need_a_session_and_forms_their_csrf_token() {
        let app = app();
        for path in ["/devices", &format!("/devices/{PHONE}"), "/ca", "/users"] {
            let answer = send(&app, "GET", path, None, None).await;
            assert_eq!(answer.status, StatusCode::SEE_OTHER, "{path}");
            assert_eq!(answer.headers[header::LOCATION], "/login", "{path}");
        }
        let answer = send(
            &app,
            "POST",
            &format!("/devices/{PHONE}/generate-string"),
            None,
            Some("csrf_token=x"),
        )
        .await;
        assert_eq!(answer.headers[header::LOCATION], "/login");
        // The API still answers JSON.
        let answer = send(&app, "GET", "/api/v1/devices", None, None).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert!(answer.body.starts_with("{\"error\""));

        let login = send(&app, "GET", "/login", None, None).await;
        assert!(
            login.body.contains(r#"<label for="name">"#)
                && login.body.contains(r#"<label for="password">"#)
        );
        let wrong = send(&app, "POST", "/login", None, Some("name=hal&password=nope")).await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        assert!(wrong.body.contains("wrong account name or password"));

        let cookie = log_in(&app, "hal").await;
        let page = send(
            &app,
            "GET",
            &format!("/devices/{PHONE}"),
            Some(&cookie),
            None,
        )
        .await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            page.headers[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("default-src 'none'")
        );
        // What the store holds is shown as text.
        assert!(
            page.body
                .contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co")
        );
        assert!(!page.body.contains("<script>"));
        let csrf = csrf_of(&page.body);
        let path = format!("/devices/{PHONE}/generate-string");
        for forged in ["", "csrf_token=", "csrf_token=00"] {
            let answer = send(&app, "POST", &path, Some(&cookie), Some(forged)).await;
            assert_eq!(answer.status, StatusCode::FORBIDDEN, "{forged:?}");
            assert!(answer.body.contains("CSRF"));
        }
        let answer = send(
            &app,
            "POST",
            &path,
            Some(&cookie),
            Some(&format!("csrf_token={csrf}")),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK);
        assert!(answer.body.contains(r#"id="generated-string""#));
        let answer = send(
            &app,
            "POST",
            &format!("/devices/{PHONE}/schedule"),
            Some(&cookie),
            Some(&format!("csrf_token={csrf}&operation=install")),
        )
        .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER);
        let next = answer.headers[header::LOCATION]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(next, format!("/devices/{PHONE}?done=scheduled"));
        let answer = send(&app, "GET", &next, Some(&cookie), None).await;
        assert!(
            answer.body.contains("Install/Upgrade pending"),
            "{}",
            answer.body
        );
        assert!(answer.body.contains("Scheduled:"));
        let answer = send(
            &app,
            "POST",
            "/devices/schedule",
            Some(&cookie),
            Some(&format!(
                "csrf_token={csrf}&operation=none&device={PHONE}&device=SEPNOSUCH0000"
            )),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK);
        assert!(
            answer.body.contains("1 scheduled, 1 not changed"),
            "{}",
            answer.body
        );
        // Helpdesk is not admin.
        let users = send(&app, "GET", "/users", Some(&cookie), None).await;
        assert_eq!(users.status, StatusCode::FORBIDDEN);

        // Logout needs the token too, and ends the session.
        let answer = send(
            &app,
            "POST",
            "/logout",
            Some(&cookie),
            Some("csrf_token=00"),
        )
        .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN);
        let answer = send(
            &app,
            "POST",
            "/logout",
            Some(&cookie),
            Some(&format!("csrf_token={csrf}")),
        )
        .await;
        assert_eq!(answer.headers[header::LOCATION], "/login");
        let answer = send(&app, "GET", "/devices", Some(&cookie), None).await;
        assert_eq!(answer.headers[header::LOCATION], "/login");
    }

    #[tokio::test]
    async fn the_login_form_is_throttled_as_the_api_login() {
        let app = app();
        let mut statuses = Vec::new();
        for _ in 0..6 {
            let answer = send(
                &app,
                "POST",
                "/login",
                None,
                Some("name=hal&password=wrong-guess"),
            )
            .await;
            statuses.push(answer.status);
        }
        assert_eq!(statuses[0], StatusCode::UNAUTHORIZED);
        let locked = send(
            &app,
            "POST",
            "/login",
            None,
            Some("name=hal&password=pass-word-1"),
        )
        .await;
        // Locked out: even the right password waits, and the page says so.
        assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(locked.headers.contains_key(header::RETRY_AFTER));
        assert!(locked.body.contains("too many failed logins"));
        assert!(!locked.headers.contains_key(header::SET_COOKIE));
        // The API refuses the same account: one lockout for both.
        let api = app
            .clone()
            .call(
                Request::post("/api/v1/login")
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(r#"{"name":"hal","password":"pass-word-1"}"#))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(api.status(), StatusCode::TOO_MANY_REQUESTS);
    }

    #[tokio::test]
    async fn read_only_sees_no_string_and_no_buttons() {
        let app = app();
        let helpdesk = log_in(&app, "hal").await;
        let page = send(&app, "GET", "/devices", Some(&helpdesk), None).await;
        let csrf = csrf_of(&page.body);
        let armed = send(
            &app,
            "POST",
            &format!("/devices/{PHONE}/generate-string"),
            Some(&helpdesk),
            Some(&format!("csrf_token={csrf}")),
        )
        .await;
        let marker = r#"id="generated-string">"#;
        let start = armed.body.find(marker).unwrap() + marker.len();
        let string: String = armed.body[start..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        assert_eq!(string.len(), 8);

        let reader = log_in(&app, "rob").await;
        for path in [
            format!("/devices/{PHONE}"),
            "/devices".to_owned(),
            format!("/devices?field=name&text={PHONE}"),
        ] {
            let page = send(&app, "GET", &path, Some(&reader), None).await;
            assert_eq!(page.status, StatusCode::OK, "{path}");
            assert!(!page.body.contains(&string), "{path}");
            assert!(
                !page.body.contains("generate-string") && !page.body.contains("schedule"),
                "{path}"
            );
        }
        // Searching strings by content is refused, as in the API.
        let page = send(
            &app,
            "GET",
            &format!("/devices?field=auth_string&text={string}"),
            Some(&reader),
            None,
        )
        .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN);
        // And a forged form is refused by role even with the token.
        let csrf = csrf_of(
            &send(&app, "GET", "/devices", Some(&reader), None)
                .await
                .body,
        );
        let answer = send(
            &app,
            "POST",
            &format!("/devices/{PHONE}/generate-string"),
            Some(&reader),
            Some(&format!("csrf_token={csrf}")),
        )
        .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN);
        assert!(!answer.body.contains(&string));
        let css = send(&app, "GET", "/assets/console.css", None, None).await;
        assert_eq!(css.status, StatusCode::OK);
        assert!(css.body.contains("@media"));
    }
}
