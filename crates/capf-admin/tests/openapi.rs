//! The OpenAPI document: it is served without authentication, parses as
//! OpenAPI 3.1 (oas3), every reference in it resolves, every route of the
//! router (read from `src/router.rs` itself) is in it and every operation
//! in it is routed, and error answers are the JSON it promises.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode, header};
use capf_operations::{MemoryStore, Role};
use common::{Api, TEST_LIMIT};
use serde_json::{Value, json};

/// The router's source: the test reads its routes from it, so that a route
/// added there without a document entry fails here.
const ROUTER_SOURCE: &str = include_str!("../src/router.rs");

/// Runs a test body with a time limit.
async fn bounded<F: std::future::Future<Output = ()>>(body: F) {
    tokio::time::timeout(TEST_LIMIT, body)
        .await
        .expect("test ran past its time limit");
}

/// `(METHOD, /api/v1/path)` of every `.route("/path", get(..).post(..))`
/// in the router's source.
fn routed() -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for chunk in ROUTER_SOURCE.split(".route(").skip(1) {
        // The chunk runs to the next `.route(`; stop at the fallback too.
        let chunk = chunk.split(".fallback(").next().unwrap();
        let start = chunk.find('"').unwrap() + 1;
        let end = start + chunk[start..].find('"').unwrap();
        let path = format!("/api/v1{}", &chunk[start..end]);
        let rest = &chunk[end..];
        let mut found = false;
        for method in ["get", "post", "patch", "put", "delete"] {
            for prefix in ["(", ".", " "] {
                if rest.contains(&format!("{prefix}{method}(")) {
                    routes.insert((method.to_uppercase(), path.clone()));
                    found = true;
                }
            }
        }
        assert!(found, "no method found for route {path}");
    }
    assert!(routes.len() > 20, "too few routes read: {routes:?}");
    routes
}

/// `(METHOD, path)` of every operation in the document.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, _) in item.as_object().unwrap() {
            if [
                "get", "post", "patch", "put", "delete", "head", "options", "trace",
            ]
            .contains(&method.as_str())
            {
                operations.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    operations
}

/// Every `$ref` in the document.
fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref" {
                    out.push(v.as_str().unwrap());
                } else {
                    refs(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// A JSON pointer (`#/components/schemas/X`) into the document.
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

#[test]
fn the_document_is_valid_openapi_3_1() {
    let text = capf_admin::openapi().to_pretty_json().unwrap();
    let spec = oas3::from_json(&text).expect("the document parses as OpenAPI 3.1");
    let version = spec
        .validate_version()
        .expect("a supported OpenAPI version");
    assert_eq!((version.major, version.minor), (3, 1));
    // Every schema reference oas3 can follow resolves...
    for (name, schema) in spec.components.as_ref().unwrap().schemas.iter() {
        schema
            .resolve(&spec)
            .unwrap_or_else(|e| panic!("schema {name}: {e}"));
    }
    // ...and so does every `$ref` anywhere in the document.
    let doc: Value = serde_json::from_str(&text).unwrap();
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(!found.is_empty());
    for r in &found {
        assert!(
            r.starts_with("#/components/") && resolve(&doc, r).is_some(),
            "unresolved reference {r}"
        );
    }
    // Operation ids are unique; every operation answers something and says
    // how it authenticates.
    let mut ids = BTreeSet::new();
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    for key in ["token", "session", "csrf"] {
        assert!(schemes.contains_key(key), "security scheme {key}");
    }
    assert_eq!(schemes["token"]["scheme"], "bearer");
    assert_eq!(schemes["session"]["in"], "cookie");
    assert_eq!(schemes["session"]["name"], capf_admin::SESSION_COOKIE);
    assert_eq!(schemes["csrf"]["in"], "header");
    for (method, path) in documented(&doc) {
        let op = &doc["paths"][&path][method.to_lowercase()];
        let id = op["operationId"].as_str().unwrap();
        assert!(ids.insert(id.to_owned()), "operation id {id} twice");
        let responses = op["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{method} {path}: no success answer"
        );
        let open = ["/api/v1/health", "/api/v1/openapi.json", "/api/v1/login"];
        if open.contains(&path.as_str()) {
            assert!(
                op.get("security").is_none(),
                "{method} {path} needs no auth"
            );
        } else {
            let security = op["security"].as_array().unwrap();
            assert!(
                security.iter().any(|s| s.get("token").is_some()),
                "{method} {path}: bearer token"
            );
            if method != "GET" {
                assert!(
                    security
                        .iter()
                        .all(|s| s.get("session").is_none() || s.get("csrf").is_some()),
                    "{method} {path}: a session's change needs the CSRF token"
                );
            }
            assert!(responses.contains_key("401"), "{method} {path}: 401");
        }
        // Path parameters are declared.
        for segment in path.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                let declared = op["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == "path"));
                assert!(declared, "{method} {path}: path parameter {name}");
            }
        }
    }
    // The find and audit queries are documented with their parameters.
    let names = |path: &str| -> BTreeSet<String> {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    };
    for p in [
        "name",
        "match",
        "auth_string_match",
        "lsc_status",
        "operation",
        "status",
        "sort",
        "desc",
        "page",
        "per_page",
    ] {
        assert!(names("/api/v1/devices").contains(p), "find: {p}");
    }
    for p in ["device", "event", "actor", "since", "until", "limit"] {
        assert!(names("/api/v1/audit").contains(p), "audit: {p}");
    }
}

#[test]
fn every_route_is_documented_and_every_operation_routed() {
    let doc: Value = serde_json::to_value(capf_admin::openapi()).unwrap();
    let documented = documented(&doc);
    let routed = routed();
    let missing: Vec<_> = routed.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&routed).collect();
    assert!(missing.is_empty(), "routed but not documented: {missing:?}");
    assert!(extra.is_empty(), "documented but not routed: {extra:?}");
}

/// The router's answer to a path it does not have (with authentication).
fn is_fallback(status: StatusCode, body: &str) -> bool {
    status == StatusCode::NOT_FOUND && body.contains("no such API endpoint")
}

#[tokio::test]
async fn the_server_serves_the_document_and_answers_each_operation() {
    bounded(async {
        let api = Api::start_plain_on(std::sync::Arc::new(MemoryStore::new())).await;
        // Served without authentication, as the code generates it.
        let r = api
            .request(Method::GET, "/api/v1/openapi.json", &[], None)
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(
            r.headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        let served = r.json();
        assert_eq!(served, serde_json::to_value(capf_admin::openapi()).unwrap());
        // No string, token or password in it.
        for secret in api.tokens.iter().map(String::as_str).chain([
            common::ADMIN_PASSWORD,
            common::HELPDESK_PASSWORD,
            common::READER_PASSWORD,
        ]) {
            assert!(!r.body.contains(secret));
        }

        // Each documented operation is routed: as a read-only operator (who
        // may change nothing), none answers the router's "no such
        // endpoint" nor 405.
        let bearer = format!("Bearer {}", api.token(Role::ReadOnly));
        let auth = [("authorization", bearer.as_str())];
        let unknown = api
            .request(Method::GET, "/api/v1/no-such-thing", &auth, None)
            .await;
        assert!(is_fallback(unknown.status, &unknown.body), "{unknown:?}");
        for (method, path) in documented(&served) {
            let concrete = path
                .replace("{name}", "SEP001122334455")
                .replace("{id}", "0123456789abcdef");
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            let body = (method == Method::POST || method == Method::PATCH).then(|| json!({}));
            let headers: &[(&str, &str)] = if path == "/api/v1/login" { &[] } else { &auth };
            let r = api.request(method.clone(), &concrete, headers, body).await;
            assert!(
                !is_fallback(r.status, &r.body) && r.status != StatusCode::METHOD_NOT_ALLOWED,
                "{method} {concrete}: {r:?}"
            );
            assert!(!r.status.is_server_error(), "{method} {concrete}: {r:?}");
            // The status is one the document gives for the operation.
            let responses = served["paths"][&path][method.as_str().to_lowercase()]["responses"]
                .as_object()
                .unwrap();
            assert!(
                responses.contains_key(r.status.as_str()),
                "{method} {concrete}: {} not documented ({})",
                r.status,
                r.body
            );
        }
        api.stop().await;
    })
    .await;
}

#[tokio::test]
async fn every_error_answer_is_json() {
    bounded(async {
        let api = Api::start_plain_on(std::sync::Arc::new(MemoryStore::new())).await;
        let bearer = format!("Bearer {}", api.token(Role::Admin));
        let auth = [("authorization", bearer.as_str())];
        let error_of = |r: &common::Reply| -> String {
            assert!(
                r.headers[header::CONTENT_TYPE]
                    .to_str()
                    .unwrap()
                    .starts_with("application/json"),
                "{r:?}"
            );
            r.json()["error"].as_str().unwrap().to_owned()
        };
        // A body that is not the fields asked for (axum: 422).
        let r = api
            .request(
                Method::POST,
                "/api/v1/devices",
                &auth,
                Some(json!({"name": 5})),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(!error_of(&r).is_empty());
        // A field it does not know, next to the name (a misspelt field is
        // refused, not ignored), or without one.
        for (body, says) in [
            (
                json!({"name": "SEP001122334455", "colour": "red"}),
                "colour",
            ),
            (json!({"colour": "red"}), "name"),
        ] {
            let r = api
                .request(Method::POST, "/api/v1/devices", &auth, Some(body))
                .await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
            assert!(error_of(&r).contains(says), "{r:?}");
        }
        // A body that is not an object, even one serde could read a
        // struct from.
        for body in [json!([null, null]), json!("x"), json!(null)] {
            let r = api
                .request(Method::PATCH, "/api/v1/accounts/ada", &auth, Some(body))
                .await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
            assert!(error_of(&r).contains("object"), "{r:?}");
        }
        // An optional body may be left out or be null.
        let device = json!({"name": "SEP001122334455"});
        let r = api
            .request(Method::POST, "/api/v1/devices", &auth, Some(device))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        for body in [None, Some(json!(null)), Some(json!({"length": 6}))] {
            let r = api
                .request(
                    Method::POST,
                    "/api/v1/devices/SEP001122334455/generate-string",
                    &auth,
                    body,
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{r:?}");
        }
        // No body where one is needed (axum: 415).
        let r = api
            .request(Method::POST, "/api/v1/devices", &auth, None)
            .await;
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(!error_of(&r).is_empty());
        // A query it cannot read (axum: 400).
        let r = api
            .request(Method::GET, "/api/v1/devices?page=-1", &auth, None)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(!error_of(&r).is_empty());
        let r = api
            .request(Method::GET, "/api/v1/audit?nonsense=1", &auth, None)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(!error_of(&r).is_empty());
        // A method the path does not take: 405, with Allow.
        let r = api
            .request(Method::PUT, "/api/v1/devices", &auth, None)
            .await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
        assert!(r.headers.contains_key(header::ALLOW));
        assert_eq!(error_of(&r), "method not allowed");
        // The API's own errors are unchanged.
        let r = api
            .request(Method::GET, "/api/v1/devices/SEP00112233AAAA", &auth, None)
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert!(error_of(&r).contains("not configured"));
        api.stop().await;
    })
    .await;
}
