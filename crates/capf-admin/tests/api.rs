//! The admin API over real HTTPS: authentication on every endpoint, what
//! each role may do, CSRF, login throttling, idle sessions, and strings
//! never shown to read-only operators nor logged.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode, header};
use capf_admin::ThrottleOptions;
use capf_operations::{AuditQuery, Role};
use common::{Api, HELPDESK_PASSWORD, READER_PASSWORD, Reply, Session, TEST_LIMIT};
use serde_json::json;

const PHONE: &str = "SEP001122334455";
const OTHER: &str = "SEP0011223344AA";

fn throttle() -> ThrottleOptions {
    ThrottleOptions {
        max_failures: 3,
        window: Duration::from_secs(300),
        lockout: Duration::from_secs(900),
    }
}

/// Runs a test body with a time limit.
async fn bounded<F: std::future::Future<Output = ()>>(body: F) {
    tokio::time::timeout(TEST_LIMIT, body)
        .await
        .expect("test ran past its time limit");
}

/// Every endpoint (but health and login), each with a body it would take.
fn endpoints() -> Vec<(Method, String, Option<serde_json::Value>)> {
    vec![
        (Method::GET, "/api/v1/session".into(), None),
        (
            Method::POST,
            "/api/v1/session/password".into(),
            Some(json!({"current_password": "whatever-pass", "new_password": "new-pass-1234"})),
        ),
        (Method::POST, "/api/v1/logout".into(), None),
        (Method::GET, "/api/v1/devices".into(), None),
        (Method::GET, format!("/api/v1/devices/{PHONE}"), None),
        (
            Method::POST,
            "/api/v1/devices".into(),
            Some(json!({"name": OTHER})),
        ),
        (
            Method::PATCH,
            format!("/api/v1/devices/{PHONE}"),
            Some(json!({"operation": "install"})),
        ),
        (Method::DELETE, format!("/api/v1/devices/{PHONE}"), None),
        (
            Method::POST,
            format!("/api/v1/devices/{PHONE}/generate-string"),
            None,
        ),
        (
            Method::POST,
            "/api/v1/devices/schedule".into(),
            Some(json!({"names": [PHONE], "operation": "install"})),
        ),
        (
            Method::GET,
            format!("/api/v1/devices/{PHONE}/certificates"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/devices/{PHONE}/revoke-lsc"),
            Some(json!({"reason": "stolen"})),
        ),
        (Method::GET, "/api/v1/audit".into(), None),
        (Method::GET, "/api/v1/report".into(), None),
        (Method::GET, "/api/v1/parameters".into(), None),
        (
            Method::PATCH,
            "/api/v1/parameters".into(),
            Some(json!({"lsc_validity_years": "2"})),
        ),
        (Method::GET, "/api/v1/accounts".into(), None),
        (
            Method::POST,
            "/api/v1/accounts".into(),
            Some(json!({"name": "eve", "role": "admin", "password": "eve-pass-9999"})),
        ),
        (
            Method::PATCH,
            "/api/v1/accounts/rob".into(),
            Some(json!({"role": "admin"})),
        ),
        (Method::DELETE, "/api/v1/accounts/rob".into(), None),
        (Method::GET, "/api/v1/tokens".into(), None),
        (
            Method::POST,
            "/api/v1/tokens".into(),
            Some(json!({"label": "x", "role": "admin"})),
        ),
        (Method::DELETE, "/api/v1/tokens/0011".into(), None),
        (Method::GET, "/api/v1/ca/certificate".into(), None),
        (
            Method::GET,
            "/api/v1/ca/certificate?format=der".into(),
            None,
        ),
        (Method::GET, "/api/v1/no-such-thing".into(), None),
        (Method::GET, "/elsewhere".into(), None),
    ]
}

/// Adds the test phone as admin (through the API).
async fn add_phone(api: &Api, name: &str) {
    let admin = api.token(Role::Admin).to_owned();
    let r = api
        .request(
            Method::POST,
            "/api/v1/devices",
            &[("authorization", &format!("Bearer {admin}"))],
            Some(json!({"name": name, "description": "lobby"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

async fn as_session(
    api: &Api,
    s: &Session,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> Reply {
    api.request(
        method,
        path,
        &[("cookie", &s.cookie), ("x-csrf-token", &s.csrf)],
        body,
    )
    .await
}

#[tokio::test]
async fn no_endpoint_answers_without_authentication() {
    bounded(async {
        let api = Api::start(throttle()).await;
        add_phone(&api, PHONE).await;
        let health = api.request(Method::GET, "/api/v1/health", &[], None).await;
        assert_eq!(health.status, StatusCode::OK);
        assert_eq!(health.json()["status"], "ok");
        let bad_token = format!("Bearer capf_{}_{}", "0".repeat(16), "0".repeat(64));
        let credentials: [&[(&str, &str)]; 5] = [
            &[],
            &[("authorization", &bad_token)],
            &[("authorization", "Bearer not-a-token")],
            &[("authorization", "Basic YWRhOmFkbWluLXBhc3MtMDgxNQ==")],
            &[("cookie", "capf_session=00112233; other=1")],
        ];
        for (method, path, body) in endpoints() {
            for headers in credentials {
                let r = api
                    .request(method.clone(), &path, headers, body.clone())
                    .await;
                assert_eq!(
                    r.status,
                    StatusCode::UNAUTHORIZED,
                    "{method} {path} {headers:?}"
                );
                assert!(r.headers.contains_key(header::WWW_AUTHENTICATE));
            }
        }
        // Nothing changed: the phone is still there, nothing scheduled.
        let device = api
            .store
            .load(&capf_operations::DeviceName::parse(PHONE).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(device.operation(), capf_auth::Operation::None);
        // A wrong password is 401 too.
        assert_eq!(
            api.login("hal", "wrong password").await.unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        api.stop().await;
    })
    .await;
}

/// What a role gets for each action, by session and by token.
#[tokio::test]
async fn each_role_may_do_what_it_should_and_nothing_more() {
    bounded(async {
        let api = Api::start(throttle()).await;
        for role in Role::ALL {
            let session = api.login_as(role).await;
            let bearer = format!("Bearer {}", api.token(role));
            for by_token in [false, true] {
                // A fresh phone for each round.
                let _ = api
                    .store
                    .remove(&capf_operations::DeviceName::parse(PHONE).unwrap(), api.now());
                add_phone(&api, PHONE).await;
                let call = |method: Method, path: String, body: Option<serde_json::Value>| {
                    let (session, bearer) = (session.clone(), bearer.clone());
                    let api = &api;
                    async move {
                        if by_token {
                            api.request(method, &path, &[("authorization", &bearer)], body)
                                .await
                        } else {
                            as_session(api, &session, method, &path, body).await
                        }
                    }
                };
                let is = |needed: Role, ok: StatusCode| {
                    if role.allows(needed) {
                        ok
                    } else {
                        StatusCode::FORBIDDEN
                    }
                };
                let what = format!("{role} by {}", if by_token { "token" } else { "session" });
                let checks: Vec<(Method, String, Option<serde_json::Value>, StatusCode)> = vec![
                    (Method::GET, "/api/v1/session".into(), None, StatusCode::OK),
                    (Method::GET, "/api/v1/devices".into(), None, StatusCode::OK),
                    (
                        Method::GET,
                        "/api/v1/devices?lsc_status=not-installed&operation=none&sort=status&desc=true&page=1&per_page=10"
                            .into(),
                        None,
                        StatusCode::OK,
                    ),
                    (
                        Method::GET,
                        "/api/v1/devices?auth_string_match=not-empty".into(),
                        None,
                        StatusCode::OK,
                    ),
                    (
                        Method::GET,
                        "/api/v1/devices?auth_string=12&match=begins-with".into(),
                        None,
                        is(Role::Helpdesk, StatusCode::OK),
                    ),
                    (Method::GET, format!("/api/v1/devices/{PHONE}"), None, StatusCode::OK),
                    (
                        Method::GET,
                        format!("/api/v1/devices/{PHONE}/certificates"),
                        None,
                        StatusCode::OK,
                    ),
                    (Method::GET, "/api/v1/audit".into(), None, StatusCode::OK),
                    (
                        Method::GET,
                        format!("/api/v1/audit?device={PHONE}&event=added"),
                        None,
                        StatusCode::OK,
                    ),
                    (Method::GET, "/api/v1/ca/certificate".into(), None, StatusCode::OK),
                    (
                        Method::GET,
                        "/api/v1/accounts".into(),
                        None,
                        is(Role::Admin, StatusCode::OK),
                    ),
                    (
                        Method::GET,
                        "/api/v1/tokens".into(),
                        None,
                        is(Role::Admin, StatusCode::OK),
                    ),
                    (
                        Method::POST,
                        "/api/v1/accounts".into(),
                        Some(json!({"name": "eve", "role": "admin", "password": "eve-pass-9999"})),
                        is(Role::Admin, StatusCode::CREATED),
                    ),
                    (
                        Method::PATCH,
                        "/api/v1/accounts/eve".into(),
                        Some(json!({"role": "read-only"})),
                        is(Role::Admin, StatusCode::OK),
                    ),
                    (
                        Method::DELETE,
                        "/api/v1/accounts/eve".into(),
                        None,
                        is(Role::Admin, StatusCode::NO_CONTENT),
                    ),
                    (
                        Method::POST,
                        "/api/v1/tokens".into(),
                        Some(json!({"label": "nightly", "role": "read-only"})),
                        is(Role::Admin, StatusCode::CREATED),
                    ),
                    (
                        Method::POST,
                        format!("/api/v1/devices/{PHONE}/revoke-lsc"),
                        None,
                        // No LSC on record: refused, after the role check.
                        is(Role::Admin, StatusCode::BAD_REQUEST),
                    ),
                    (
                        Method::PATCH,
                        format!("/api/v1/devices/{PHONE}"),
                        Some(json!({"operation": "install", "completes_by": "2027-01-31T00:00:00Z"})),
                        is(Role::Helpdesk, StatusCode::OK),
                    ),
                    (
                        Method::POST,
                        format!("/api/v1/devices/{PHONE}/generate-string"),
                        Some(json!({"length": 6})),
                        is(Role::Helpdesk, StatusCode::OK),
                    ),
                    (
                        Method::POST,
                        "/api/v1/devices/schedule".into(),
                        Some(json!({"names": [PHONE], "operation": "install", "generate_string": true})),
                        is(Role::Helpdesk, StatusCode::OK),
                    ),
                    (
                        Method::PATCH,
                        format!("/api/v1/devices/{PHONE}"),
                        Some(json!({"description": "front desk", "key": "p256"})),
                        is(Role::Admin, StatusCode::OK),
                    ),
                    (
                        Method::POST,
                        "/api/v1/devices".into(),
                        Some(json!({"name": OTHER, "operation": "install", "generate_string": 8})),
                        is(Role::Admin, StatusCode::CREATED),
                    ),
                    (
                        Method::DELETE,
                        format!("/api/v1/devices/{OTHER}"),
                        None,
                        is(Role::Admin, StatusCode::NO_CONTENT),
                    ),
                    (
                        Method::DELETE,
                        format!("/api/v1/devices/{PHONE}"),
                        None,
                        is(Role::Admin, StatusCode::NO_CONTENT),
                    ),
                ];
                for (method, path, body, expected) in checks {
                    let r = call(method.clone(), path.clone(), body).await;
                    assert_eq!(r.status, expected, "{what}: {method} {path}: {}", r.body);
                    if r.status == StatusCode::FORBIDDEN {
                        assert!(r.json()["error"].as_str().unwrap().contains("forbidden"));
                    }
                }
            }
        }
        // Every change carries its operator as actor.
        let by_hal = api
            .store
            .audit(&AuditQuery {
                actor: Some("hal".into()),
                ..AuditQuery::default()
            })
            .unwrap();
        assert!(by_hal.iter().any(|e| e.event == "operator"
            && e.detail.contains("operation Install/Upgrade")));
        let helpdesk_token_id = capf_admin::token::split(api.token(Role::Helpdesk))
            .unwrap()
            .0
            .to_owned();
        let by_token = api
            .store
            .audit(&AuditQuery {
                actor: Some(format!("token:{helpdesk_token_id}")),
                ..AuditQuery::default()
            })
            .unwrap();
        assert!(!by_token.is_empty());
        api.stop().await;
    })
    .await;
}

#[tokio::test]
async fn changes_by_a_session_need_its_csrf_token() {
    bounded(async {
        let api = Api::start(throttle()).await;
        add_phone(&api, PHONE).await;
        let hal = api.login_as(Role::Helpdesk).await;
        assert!(hal.set_cookie.contains("HttpOnly"));
        assert!(hal.set_cookie.contains("SameSite=Strict"));
        assert!(hal.set_cookie.contains("Secure"));
        assert!(hal.set_cookie.contains("Path=/"));
        assert_eq!(hal.id().len(), 64, "256-bit session id");
        let path = format!("/api/v1/devices/{PHONE}/generate-string");
        let other = api.login_as(Role::Admin).await;
        for csrf in [None, Some(""), Some("0000"), Some(other.csrf.as_str())] {
            let mut headers = vec![("cookie", hal.cookie.as_str())];
            if let Some(c) = csrf {
                headers.push(("x-csrf-token", c));
            }
            let r = api.request(Method::POST, &path, &headers, None).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "CSRF {csrf:?}: {}", r.body);
            let r = api
                .request(
                    Method::PATCH,
                    &format!("/api/v1/devices/{PHONE}"),
                    &headers,
                    Some(json!({"operation": "install"})),
                )
                .await;
            assert_eq!(r.status, StatusCode::FORBIDDEN);
            let r = api
                .request(Method::POST, "/api/v1/logout", &headers, None)
                .await;
            assert_eq!(r.status, StatusCode::FORBIDDEN);
        }
        // Nothing was armed.
        let device = api
            .store
            .load(&capf_operations::DeviceName::parse(PHONE).unwrap())
            .unwrap()
            .unwrap();
        assert!(device.policy.auth_string.is_none());
        // Reads need no token; the session returns it.
        let r = api
            .request(
                Method::GET,
                "/api/v1/session",
                &[("cookie", &hal.cookie)],
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.json()["csrf_token"], hal.csrf.as_str());
        assert_eq!(r.json()["role"], "helpdesk");
        // With the token it works; a bearer token needs none.
        let r = as_session(&api, &hal, Method::POST, &path, None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let bearer = format!("Bearer {}", api.token(Role::Helpdesk));
        let r = api
            .request(Method::POST, &path, &[("authorization", &bearer)], None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        // Logout ends the session.
        let r = as_session(&api, &hal, Method::POST, "/api/v1/logout", None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert!(
            r.headers[header::SET_COOKIE]
                .to_str()
                .unwrap()
                .contains("Max-Age=0")
        );
        let r = as_session(&api, &hal, Method::GET, "/api/v1/devices", None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        api.stop().await;
    })
    .await;
}

#[tokio::test]
async fn sessions_end_after_the_idle_timeout() {
    bounded(async {
        let api = Api::start(throttle()).await;
        let rob = api.login_as(Role::ReadOnly).await;
        for _ in 0..3 {
            api.advance(Duration::from_secs(500));
            let r = as_session(&api, &rob, Method::GET, "/api/v1/devices", None).await;
            assert_eq!(r.status, StatusCode::OK, "activity keeps it alive");
        }
        api.advance(Duration::from_secs(601));
        let r = as_session(&api, &rob, Method::GET, "/api/v1/devices", None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        api.stop().await;
    })
    .await;
}

#[tokio::test]
async fn failed_logins_lock_the_account_and_the_address() {
    bounded(async {
        let api = Api::start(throttle()).await;
        for _ in 0..3 {
            let r = api.login("hal", "not the password").await.unwrap_err();
            assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        }
        // Locked: even the right password is refused, with Retry-After.
        let r = api.login("hal", HELPDESK_PASSWORD).await.unwrap_err();
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
        assert!(r.headers.contains_key(header::RETRY_AFTER));
        // The address is locked too (every test client is 127.0.0.1).
        let r = api.login("rob", READER_PASSWORD).await.unwrap_err();
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        // Sessions and tokens already held are not affected.
        let bearer = format!("Bearer {}", api.token(Role::ReadOnly));
        let r = api
            .request(
                Method::GET,
                "/api/v1/devices",
                &[("authorization", &bearer)],
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        // The lockout ends.
        api.advance(Duration::from_secs(901));
        assert!(api.login("hal", HELPDESK_PASSWORD).await.is_ok());
        // Unknown accounts count as failures too (and answer alike).
        for i in 0..3 {
            let r = api
                .login(&format!("nobody{i}"), "whatever-pass")
                .await
                .unwrap_err();
            assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        }
        let r = api.login("rob", READER_PASSWORD).await.unwrap_err();
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        api.stop().await;
    })
    .await;
}

#[tokio::test]
async fn bulk_schedule_on_a_query_changes_what_find_finds() {
    bounded(async {
        let api = Api::start(throttle()).await;
        for name in ["SEP000000000001", "SEP000000000002", "SEP0000000000A1"] {
            add_phone(&api, name).await;
        }
        let helpdesk = format!("Bearer {}", api.token(Role::Helpdesk));
        let auth = [("authorization", helpdesk.as_str())];
        let criteria = json!({"name": "SEP00000000000", "match": "begins-with"});
        let found = api
            .request(
                Method::GET,
                "/api/v1/devices?name=SEP00000000000&match=begins-with",
                &auth,
                None,
            )
            .await
            .json();
        let found: Vec<&str> = found["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap())
            .collect();
        assert_eq!(found, ["SEP000000000001", "SEP000000000002"]);
        let r = api
            .request(
                Method::POST,
                "/api/v1/devices/schedule",
                &auth,
                Some(
                    json!({"matching": criteria, "operation": "install", "generate_string": true}),
                ),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let view = r.json();
        let scheduled: Vec<&str> = view["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap())
            .collect();
        assert_eq!(scheduled, found);
        assert_eq!(view["succeeded"], 2);
        for name in ["SEP000000000001", "SEP000000000002", "SEP0000000000A1"] {
            let device = api
                .request(Method::GET, &format!("/api/v1/devices/{name}"), &auth, None)
                .await
                .json();
            let expected = if name.ends_with("A1") {
                "none"
            } else {
                "install"
            };
            assert_eq!(device["operation"], expected, "{name}: {device}");
        }
        // Names and a query together, or neither: refused, nothing changes.
        for body in [
            json!({"names": ["SEP0000000000A1"], "matching": criteria, "operation": "delete"}),
            json!({"operation": "delete"}),
            json!({"matching": {"name": "nothing-like-this"}, "operation": "delete"}),
        ] {
            let r = api
                .request(Method::POST, "/api/v1/devices/schedule", &auth, Some(body))
                .await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        }
        // Read-only operators schedule nothing, by query either.
        let reader = format!("Bearer {}", api.token(Role::ReadOnly));
        let r = api
            .request(
                Method::POST,
                "/api/v1/devices/schedule",
                &[("authorization", &reader)],
                Some(json!({"matching": {}, "operation": "delete"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        api.stop().await;
    })
    .await;
}

#[tokio::test]
async fn operators_change_their_own_password() {
    bounded(async {
        let api = Api::start(throttle()).await;
        let hal = api.login("hal", HELPDESK_PASSWORD).await.unwrap();
        let change =
            |current: &str, new: &str| json!({"current_password": current, "new_password": new});
        // Without the session's CSRF token: refused.
        let r = api
            .request(
                Method::POST,
                "/api/v1/session/password",
                &[("cookie", &hal.cookie)],
                Some(change(HELPDESK_PASSWORD, "a-new-pass-123")),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        // A wrong current password: refused, and counted.
        let r = as_session(
            &api,
            &hal,
            Method::POST,
            "/api/v1/session/password",
            Some(change("not-my-password", "a-new-pass-123")),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        assert!(r.body.contains("current password is wrong"), "{}", r.body);
        // A new password too short: refused.
        let r = as_session(
            &api,
            &hal,
            Method::POST,
            "/api/v1/session/password",
            Some(change(HELPDESK_PASSWORD, "short")),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        // An API token has no password.
        let bearer = format!("Bearer {}", api.token(Role::Helpdesk));
        let r = api
            .request(
                Method::POST,
                "/api/v1/session/password",
                &[("authorization", &bearer)],
                Some(change(HELPDESK_PASSWORD, "a-new-pass-123")),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        // The right one: changed, this session ends, the new password works.
        let r = as_session(
            &api,
            &hal,
            Method::POST,
            "/api/v1/session/password",
            Some(change(HELPDESK_PASSWORD, "a-new-pass-123")),
        )
        .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
        let r = as_session(&api, &hal, Method::GET, "/api/v1/session", None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(api.login("hal", HELPDESK_PASSWORD).await.is_err());
        assert!(api.login("hal", "a-new-pass-123").await.is_ok());
        let audit = api
            .store
            .audit(&AuditQuery {
                limit: 10,
                ..AuditQuery::default()
            })
            .unwrap();
        assert!(
            audit
                .iter()
                .any(|e| e.actor.as_deref() == Some("hal") && e.event.contains("password")),
            "{audit:?}"
        );
        // Wrong current passwords lock the account like failed logins.
        let hal = api.login("hal", "a-new-pass-123").await.unwrap();
        for _ in 0..3 {
            let r = as_session(
                &api,
                &hal,
                Method::POST,
                "/api/v1/session/password",
                Some(change("guess-guess-1", "another-pass-1")),
            )
            .await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        }
        let r = as_session(
            &api,
            &hal,
            Method::POST,
            "/api/v1/session/password",
            Some(change("a-new-pass-123", "another-pass-1")),
        )
        .await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
        api.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_capf_report_shows_strings_only_to_those_who_may_see_them() {
    bounded(async {
        let api = Api::start(throttle()).await;
        add_phone(&api, PHONE).await;
        add_phone(&api, OTHER).await;
        let admin = format!("Bearer {}", api.token(Role::Admin));
        let r = api
            .request(
                Method::PATCH,
                &format!("/api/v1/devices/{PHONE}"),
                &[("authorization", &admin)],
                Some(json!({"auth_mode": "auth-string", "auth_string": "012345"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let report = |role: Role, query: &'static str| {
            let bearer = format!("Bearer {}", api.token(role));
            let api = &api;
            async move {
                api.request(
                    Method::GET,
                    &format!("/api/v1/report{query}"),
                    &[("authorization", &bearer)],
                    None,
                )
                .await
            }
        };
        let r = report(Role::Helpdesk, "").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(
            r.headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/csv")
        );
        assert_eq!(r.headers[header::CACHE_CONTROL], "no-store");
        let lines: Vec<&str> = r.body.lines().collect();
        assert!(
            lines[0].starts_with("Device Name,Description,"),
            "{}",
            r.body
        );
        assert_eq!(lines.len(), 3, "{}", r.body);
        // A string with a leading zero keeps it in a spreadsheet.
        assert!(r.body.contains(",'012345,"), "{}", r.body);
        // Read-only: the device list, no string.
        let r = report(Role::ReadOnly, "").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(!r.body.contains("012345"), "{}", r.body);
        assert!(r.body.contains(",set,"), "{}", r.body);
        // The find criteria choose the rows.
        let r = report(Role::ReadOnly, "?name=AA&match=ends-with").await;
        let lines: Vec<&str> = r.body.lines().collect();
        assert_eq!(lines.len(), 2, "{}", r.body);
        assert!(lines[1].starts_with(OTHER), "{}", r.body);
        api.stop().await;
    })
    .await;
}

#[tokio::test]
async fn service_parameters_are_read_by_all_and_changed_by_admins() {
    bounded(async {
        let api = Api::start(throttle()).await;
        let bearer = |role| format!("Bearer {}", api.token(role));
        let reader = bearer(Role::ReadOnly);
        let r = api
            .request(
                Method::GET,
                "/api/v1/parameters",
                &[("authorization", &reader)],
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let shown = r.json();
        let validity = shown["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "lsc_validity_years")
            .unwrap()
            .clone();
        assert_eq!(validity["value"], validity["default"]);
        assert!(!validity["help"].as_str().unwrap().is_empty());
        assert!(shown["note"].as_str().unwrap().contains("restart"));
        let patch = |role, body| {
            let auth = bearer(role);
            let api = &api;
            async move {
                api.request(
                    Method::PATCH,
                    "/api/v1/parameters",
                    &[("authorization", &auth)],
                    Some(body),
                )
                .await
            }
        };
        // Helpdesk and read-only change nothing.
        for role in [Role::ReadOnly, Role::Helpdesk] {
            let r = patch(role, json!({"lsc_validity_years": "3"})).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        }
        // A bad value or name among good ones: nothing changes.
        for body in [
            json!({"lsc_validity_years": "3", "auth_failure_limit": "many"}),
            json!({"lsc_validity_years": "3", "no_such_parameter": "1"}),
            json!({"lsc_validity_years": "3", "no_such_parameter": null}),
        ] {
            let r = patch(Role::Admin, body).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        }
        let value = |view: &serde_json::Value, name: &str| {
            view["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name)
                .unwrap()["value"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        let r = api
            .request(
                Method::GET,
                "/api/v1/parameters",
                &[("authorization", &reader)],
                None,
            )
            .await;
        assert_eq!(
            value(&r.json(), "lsc_validity_years"),
            validity["default"].as_str().unwrap()
        );
        // An admin changes one and resets it; each change is audited.
        let r = patch(Role::Admin, json!({"lsc_validity_years": "3"})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(value(&r.json(), "lsc_validity_years"), "3");
        let r = patch(Role::Admin, json!({"lsc_validity_years": null})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(
            value(&r.json(), "lsc_validity_years"),
            validity["default"].as_str().unwrap()
        );
        let audit = api
            .store
            .audit(&AuditQuery {
                limit: 10,
                ..AuditQuery::default()
            })
            .unwrap();
        let changes = audit.iter().filter(|e| e.event == "parameter-set").count();
        assert_eq!(changes, 2, "{audit:?}");
        api.stop().await;
    })
    .await;
}

/// Logs in through a reverse proxy that says the client is `client`.
async fn login_via(api: &Api, client: &str, name: &str, password: &str) -> StatusCode {
    api.request(
        Method::POST,
        "/api/v1/login",
        &[("x-forwarded-for", client)],
        Some(json!({"name": name, "password": password})),
    )
    .await
    .status
}

#[tokio::test]
async fn behind_a_trusted_proxy_failures_count_per_client_address() {
    bounded(async {
        // Every test client connects from 127.0.0.1, here the proxy.
        let api = Api::start_behind_proxy(throttle()).await;
        for account in ["nobody1", "nobody2", "nobody3"] {
            let status = login_via(&api, "192.0.2.1", account, "wrong-pass").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
        // That client is locked out; another behind the same proxy is not.
        let status = login_via(&api, "192.0.2.1", "rob", READER_PASSWORD).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        let status = login_via(&api, "192.0.2.2", "rob", READER_PASSWORD).await;
        assert_eq!(status, StatusCode::OK);
        // A client that puts a made-up address first is still counted
        // under the address the proxy saw (the last one).
        let status = login_via(&api, "198.51.100.9, 192.0.2.1", "rob", READER_PASSWORD).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        api.stop().await;

        // A server that trusts no proxy ignores the header: a client
        // cannot step out of its lockout by naming another address.
        let api = Api::start(throttle()).await;
        for account in ["nobody1", "nobody2", "nobody3"] {
            let status = login_via(&api, "192.0.2.1", account, "wrong-pass").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
        let status = login_via(&api, "192.0.2.2", "rob", READER_PASSWORD).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        api.stop().await;
    })
    .await;
}

#[tokio::test]
async fn strings_never_reach_read_only_operators_or_the_log() {
    bounded(async {
        let api = Api::start(throttle()).await;
        add_phone(&api, PHONE).await;
        add_phone(&api, OTHER).await;
        let hal = api.login_as(Role::Helpdesk).await;
        let r = as_session(
            &api,
            &hal,
            Method::POST,
            &format!("/api/v1/devices/{PHONE}/generate-string"),
            Some(json!({"length": 10})),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let string = r.json()["generated_string"].as_str().unwrap().to_owned();
        assert_eq!(string.len(), 10);
        let r = as_session(
            &api,
            &hal,
            Method::POST,
            "/api/v1/devices/schedule",
            Some(json!({"names": [OTHER, "not a phone"], "operation": "install", "generate_string": 9})),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let bulk = r.json();
        assert_eq!(bulk["succeeded"], 1);
        assert_eq!(bulk["failed"], 1);
        let other_string = bulk["results"][0]["generated_string"].as_str().unwrap().to_owned();
        assert!(bulk["results"][1]["error"].is_string());
        // Helpdesk sees the strings on the device.
        let r = as_session(&api, &hal, Method::GET, &format!("/api/v1/devices/{PHONE}"), None).await;
        assert_eq!(r.json()["auth_string"], string.as_str());
        assert_eq!(r.json()["auth_string_state"], "armed");

        let rob = api.login_as(Role::ReadOnly).await;
        let reader_token = format!("Bearer {}", api.token(Role::ReadOnly));
        let reads = [
            format!("/api/v1/devices/{PHONE}"),
            format!("/api/v1/devices/{OTHER}"),
            "/api/v1/devices".into(),
            "/api/v1/devices?auth_string_match=not-empty&per_page=0".into(),
            format!("/api/v1/devices/{PHONE}/certificates"),
            "/api/v1/audit".into(),
            format!("/api/v1/audit?device={PHONE}"),
            "/api/v1/session".into(),
        ];
        for path in &reads {
            for headers in [
                vec![("cookie", rob.cookie.as_str())],
                vec![("authorization", reader_token.as_str())],
            ] {
                let r = api.request(Method::GET, path, &headers, None).await;
                assert_eq!(r.status, StatusCode::OK, "{path}");
                assert!(!r.body.contains(&string), "{path}: {}", r.body);
                assert!(!r.body.contains(&other_string), "{path}: {}", r.body);
                assert!(!r.body.contains("\"auth_string\""), "{path}: {}", r.body);
            }
        }
        let r = api
            .request(Method::GET, "/api/v1/devices", &[("cookie", &rob.cookie)], None)
            .await;
        let listed = r.json();
        assert_eq!(listed["total"], 2);
        assert_eq!(listed["devices"][0]["auth_string_state"], "armed");
        // Searching by the string's digits is refused to read-only.
        let r = api
            .request(
                Method::GET,
                &format!("/api/v1/devices?auth_string={}&match=exact", &string),
                &[("cookie", &rob.cookie)],
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert!(!r.body.contains(&string));

        // Nothing secret in the log: strings, passwords, tokens, session
        // ids, CSRF tokens.
        let logs = common::logs();
        assert!(logs.contains("operator logged in"), "the log is captured");
        let mut secrets = vec![
            string.clone(),
            other_string.clone(),
            HELPDESK_PASSWORD.to_owned(),
            READER_PASSWORD.to_owned(),
            common::ADMIN_PASSWORD.to_owned(),
            hal.id().to_owned(),
            hal.csrf.clone(),
            rob.id().to_owned(),
            rob.csrf.clone(),
        ];
        for t in &api.tokens {
            secrets.push(t.clone());
            secrets.push(capf_admin::token::split(t).unwrap().1.to_owned());
        }
        for secret in &secrets {
            assert!(!logs.contains(secret.as_str()), "a secret reached the log");
        }
        api.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_capf_certificate_in_each_format() {
    bounded(async {
        let api = Api::start(throttle()).await;
        let bearer = format!("Bearer {}", api.token(Role::ReadOnly));
        let auth = [("authorization", bearer.as_str())];
        let pem = api
            .request(Method::GET, "/api/v1/ca/certificate", &auth, None)
            .await;
        assert_eq!(pem.status, StatusCode::OK);
        assert_eq!(pem.body, api.ca.pem());
        let der = api
            .request(
                Method::GET,
                "/api/v1/ca/certificate?format=der",
                &auth,
                None,
            )
            .await;
        assert_eq!(der.headers[header::CONTENT_TYPE], "application/pkix-cert");
        let hashed = api
            .request(
                Method::GET,
                "/api/v1/ca/certificate?format=hashed",
                &auth,
                None,
            )
            .await;
        let name = api.ca.hashed_file_name().unwrap();
        assert!(
            hashed.headers[header::CONTENT_DISPOSITION]
                .to_str()
                .unwrap()
                .contains(&name)
        );
        let info = api
            .request(
                Method::GET,
                "/api/v1/ca/certificate?format=json",
                &auth,
                None,
            )
            .await;
        assert_eq!(
            info.json()["sha256"],
            api.ca.fingerprint_sha256_hex().as_str()
        );
        let bad = api
            .request(
                Method::GET,
                "/api/v1/ca/certificate?format=gif",
                &auth,
                None,
            )
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        api.stop().await;
    })
    .await;
}

#[tokio::test]
async fn device_changes_follow_the_command_line_rules() {
    bounded(async {
        let api = Api::start(throttle()).await;
        let admin = format!("Bearer {}", api.token(Role::Admin));
        let auth = [("authorization", admin.as_str())];
        add_phone(&api, PHONE).await;
        let dup = api
            .request(
                Method::POST,
                "/api/v1/devices",
                &auth,
                Some(json!({"name": PHONE})),
            )
            .await;
        assert_eq!(dup.status, StatusCode::CONFLICT);
        let path = format!("/api/v1/devices/{PHONE}");
        for (body, why) in [
            (json!({"operation": "delete"}), "delete needs an LSC"),
            (
                json!({"completes_by": "2020-01-01T00:00:00Z"}),
                "deadline in the past",
            ),
            (json!({"auth_string": "12"}), "too short"),
            (
                json!({"auth_string": "1234", "generate_string": true}),
                "both",
            ),
            (json!({"operation": "reinstall"}), "unknown operation"),
            (json!({"colour": "red"}), "unknown field"),
        ] {
            let r = api.request(Method::PATCH, &path, &auth, Some(body)).await;
            assert!(r.status.is_client_error(), "{why}: {} {}", r.status, r.body);
        }
        let r = api
            .request(
                Method::PATCH,
                &path,
                &auth,
                Some(json!({"auth_mode": "null-string", "operation": "install", "key": "rsa2048"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let view = r.json();
        assert_eq!(view["device"]["auth_mode"], "null-string");
        assert_eq!(view["device"]["operation"], "install");
        assert_eq!(view["device"]["status"], "pending");
        assert_eq!(view["device"]["key"], "rsa2048");
        assert!(view.get("generated_string").is_none());
        let missing = api
            .request(Method::GET, "/api/v1/devices/SEP00112233FFFF", &auth, None)
            .await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        let page = api
            .request(
                Method::GET,
                "/api/v1/devices?name=0011&match=begins-with&name_match=contains&per_page=1&page=1",
                &auth,
                None,
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert_eq!(page.json()["pages"], 1);
        let bad = api
            .request(Method::GET, "/api/v1/devices?page=0", &auth, None)
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        let audit = api
            .request(
                Method::GET,
                &format!("/api/v1/audit?device={PHONE}&event=operator"),
                &auth,
                None,
            )
            .await;
        let entries = audit.json();
        assert!(entries.as_array().unwrap().len() >= 2, "{entries}");
        assert!(
            entries
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["actor"].as_str().unwrap().starts_with("token:"))
        );
        api.stop().await;
    })
    .await;
}

#[tokio::test]
async fn admins_manage_accounts_and_tokens() {
    bounded(async {
        let api = Api::start(throttle()).await;
        let ada = api.login_as(Role::Admin).await;
        let r = as_session(
            &api,
            &ada,
            Method::POST,
            "/api/v1/accounts",
            Some(json!({"name": "eve", "role": "helpdesk", "password": "eve-pass-9999"})),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert!(!r.body.contains("argon2"), "never the hash: {}", r.body);
        let eve = api.login("eve", "eve-pass-9999").await.unwrap();
        let r = as_session(&api, &eve, Method::GET, "/api/v1/session", None).await;
        assert_eq!(r.json()["role"], "helpdesk");
        // A role change applies at once.
        let r = as_session(
            &api,
            &ada,
            Method::PATCH,
            "/api/v1/accounts/eve",
            Some(json!({"role": "read-only"})),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let r = as_session(&api, &eve, Method::GET, "/api/v1/session", None).await;
        assert_eq!(r.json()["role"], "read-only");
        // A new password ends her sessions.
        let r = as_session(
            &api,
            &ada,
            Method::PATCH,
            "/api/v1/accounts/eve",
            Some(json!({"password": "eve-new-pass-1"})),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let r = as_session(&api, &eve, Method::GET, "/api/v1/session", None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(api.login("eve", "eve-pass-9999").await.is_err());
        let eve = api.login("eve", "eve-new-pass-1").await.unwrap();
        // Removing her ends her session too.
        let r = as_session(&api, &ada, Method::DELETE, "/api/v1/accounts/eve", None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        let r = as_session(&api, &eve, Method::GET, "/api/v1/session", None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        // The last admin stays; short passwords are refused.
        let r = as_session(&api, &ada, Method::DELETE, "/api/v1/accounts/ada", None).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        let r = as_session(
            &api,
            &ada,
            Method::POST,
            "/api/v1/accounts",
            Some(json!({"name": "tim", "role": "helpdesk", "password": "short"})),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        // A token: shown once, works, listed without its secret, revoked.
        let r = as_session(
            &api,
            &ada,
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"label": "nightly report", "role": "read-only"})),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let created = r.json();
        let presented = created["token"].as_str().unwrap().to_owned();
        let id = created["id"].as_str().unwrap().to_owned();
        assert_eq!(created["created_by"], "ada");
        let bearer = format!("Bearer {presented}");
        let r = api
            .request(
                Method::GET,
                "/api/v1/devices",
                &[("authorization", &bearer)],
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        let r = as_session(&api, &ada, Method::GET, "/api/v1/tokens", None).await;
        let secret = capf_admin::token::split(&presented).unwrap().1.to_owned();
        assert!(r.body.contains(&id));
        assert!(!r.body.contains(&secret));
        let r = as_session(
            &api,
            &ada,
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        let r = api
            .request(
                Method::GET,
                "/api/v1/devices",
                &[("authorization", &bearer)],
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        // All of it in the audit log, by ada, without secrets.
        let r = as_session(&api, &ada, Method::GET, "/api/v1/audit?actor=ada", None).await;
        let events: Vec<String> = r
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event"].as_str().unwrap().to_owned())
            .collect();
        for event in [
            "account-added",
            "account-role",
            "account-password",
            "account-removed",
            "token-created",
            "token-revoked",
        ] {
            assert!(events.iter().any(|e| e == event), "{event} in {events:?}");
        }
        assert!(!r.body.contains("eve-new-pass-1") && !r.body.contains(&secret));
        assert!(!common::logs().contains(&secret));
        assert!(!common::logs().contains("eve-new-pass-1"));
        api.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_plain_http_loopback_listener_drops_secure_from_the_cookie() {
    bounded(async {
        let api = Api::start_plain().await;
        let rob = api.login_as(Role::ReadOnly).await;
        assert!(!rob.set_cookie.contains("Secure"), "{}", rob.set_cookie);
        assert!(rob.set_cookie.contains("HttpOnly") && rob.set_cookie.contains("SameSite=Strict"));
        let r = as_session(&api, &rob, Method::GET, "/api/v1/devices", None).await;
        assert_eq!(r.status, StatusCode::OK);
        api.stop().await;
    })
    .await;
}

/// The same API over the SQLite store the command line uses: a change by
/// a helpdesk session, its string, and the audit log's actor.
#[tokio::test]
async fn works_over_the_sqlite_store() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let store = capf_store::SqliteStore::open(dir.path().join("capf.sqlite3")).unwrap();
        let api = Api::start_on(std::sync::Arc::new(store)).await;
        add_phone(&api, PHONE).await;
        let hal = api.login_as(Role::Helpdesk).await;
        let r = as_session(
            &api,
            &hal,
            Method::PATCH,
            &format!("/api/v1/devices/{PHONE}"),
            Some(json!({"operation": "install", "generate_string": true})),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let string = r.json()["generated_string"].as_str().unwrap().to_owned();
        let rob = api.login_as(Role::ReadOnly).await;
        let r = as_session(
            &api,
            &rob,
            Method::GET,
            &format!("/api/v1/devices/{PHONE}"),
            None,
        )
        .await;
        assert_eq!(r.json()["status"], "pending");
        assert!(!r.body.contains(&string));
        let r = as_session(&api, &rob, Method::GET, "/api/v1/audit?actor=hal", None).await;
        let entries = r.json();
        assert_eq!(entries[0]["event"], "operator", "{entries}");
        assert_eq!(entries[0]["device"], PHONE);
        api.stop().await;
    })
    .await;
}
