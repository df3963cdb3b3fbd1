//! Property-based testing of the running API from its own OpenAPI document
//! with schemathesis (PyPI: `python3 -m pip install schemathesis`): a real
//! server over plain HTTP on 127.0.0.1 with a SQLite store in a temporary
//! directory, driven by `st run` with an admin API token. It fails on any
//! 5xx, and on any answer whose status, content type, headers or body the
//! document does not describe.
//!
//! Skipped, saying so, when neither `st` nor `schemathesis` is installed,
//! unless `CAPF_REQUIRE_SCHEMATHESIS` is set (CI sets it), then it fails.
//! `CAPF_SCHEMATHESIS_EXAMPLES` sets the examples per operation (default
//! 25) and `CAPF_SCHEMATHESIS_CHECKS` the checks (default [`CHECKS`]); the
//! whole run is bounded in time either way.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use capf_operations::{OperatorStore, Role};
use common::Api;

/// The longest the schemathesis run may take before it is stopped (and the
/// test fails).
const RUN_LIMIT: Duration = Duration::from_secs(240);

/// What schemathesis checks on every answer: no 5xx; status, content type,
/// headers and body as documented; data the schema forbids is refused; 401
/// without the token; 405 with `Allow` for methods a path does not take; a
/// removed resource is gone.
/// (Not `positive_data_acceptance`: the API refuses, with 400, values the
/// schema cannot express, such as a match without a pattern or a
/// troubleshoot for a device with no certificate.)
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_headers_conformance,response_schema_conformance,ignored_auth,\
                      unsupported_method,allow_header_conformance,missing_required_header,\
                      use_after_free,ensure_resource_availability,negative_data_rejection";

/// The schemathesis command line, if one is installed.
fn schemathesis() -> Option<String> {
    ["st", "schemathesis"].into_iter().find_map(|cmd| {
        Command::new(cmd)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()
            .filter(|s| s.success())
            .map(|_| cmd.to_owned())
    })
}

/// The document checked against the OpenAPI 3.1 specification's own JSON
/// schema by openapi-spec-validator (PyPI), which CI installs beside
/// schemathesis; skipped like the run below when it is missing.
#[test]
fn the_document_validates_against_the_openapi_specification() {
    const CHECK: &str = "import json, sys\n\
                         from openapi_spec_validator import validate\n\
                         validate(json.load(sys.stdin))\n";
    let installed = Command::new("python3")
        .args(["-c", "import openapi_spec_validator"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        if std::env::var_os("CAPF_REQUIRE_SCHEMATHESIS").is_some() {
            panic!(
                "CAPF_REQUIRE_SCHEMATHESIS is set but openapi-spec-validator is not installed \
                 (python3 -m pip install openapi-spec-validator)"
            );
        }
        eprintln!(
            "skipped: openapi-spec-validator is not installed \
             (python3 -m pip install openapi-spec-validator)"
        );
        return;
    }
    let document = capf_admin::openapi().to_json().unwrap();
    let mut child = Command::new("python3")
        .args(["-c", CHECK])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), document.as_bytes()).unwrap();
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "the document does not validate (the reason is above)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_undocumented_answer() {
    let Some(st) = schemathesis() else {
        if std::env::var_os("CAPF_REQUIRE_SCHEMATHESIS").is_some() {
            panic!(
                "CAPF_REQUIRE_SCHEMATHESIS is set but schemathesis is not installed \
                 (python3 -m pip install schemathesis)"
            );
        }
        eprintln!(
            "skipped: schemathesis is not installed (python3 -m pip install schemathesis); \
             set CAPF_REQUIRE_SCHEMATHESIS=1 to make this a failure"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = capf_store::SqliteStore::open(dir.path().join("capf.sqlite3")).unwrap();
    // The device of the document's examples, so that requests built from
    // them reach the handlers' logic rather than "not configured".
    let example = capf_operations::Device::new(
        capf_operations::DeviceName::parse("SEP001122334455").unwrap(),
        capf_auth::AuthMode::AuthString,
    );
    store
        .insert(&example, std::time::SystemTime::now())
        .unwrap();
    let api = Api::start_plain_on(Arc::new(store)).await;
    let url = format!("http://{}/api/v1/openapi.json", api.addr);
    let token = api.token(Role::Admin).to_owned();
    let checks = std::env::var("CAPF_SCHEMATHESIS_CHECKS").unwrap_or_else(|_| CHECKS.into());
    let examples = std::env::var("CAPF_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "25".into());
    let work = dir.path().to_owned();
    let st_for_run = st.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        // A run that schemathesis itself broke off (an "ERRORS" section of
        // its own runtime errors and no "FAILURES") is run once more: that
        // is the tool, not the server.
        let mut last = None;
        for attempt in 1..=2 {
            let report = work.join(format!("schemathesis-{attempt}.txt"));
            let status = run_once(
                &st_for_run,
                &url,
                &token,
                &checks,
                &examples,
                &work,
                &report,
            );
            let text = std::fs::read_to_string(&report).unwrap_or_default();
            println!("{text}");
            let tool_error = status.is_some_and(|s| !s.success())
                && text.contains("Runtime Error")
                && !text.contains("= FAILURES =");
            last = status;
            if !tool_error {
                break;
            }
            println!("schemathesis broke off with an error of its own: running it again");
        }
        last
    })
    .await
    .unwrap();
    api.stop().await;
    match outcome {
        Some(status) => assert!(
            status.success(),
            "schemathesis ({st}) found failures (its report is above): {status}"
        ),
        None => panic!(
            "schemathesis ran past {} s and was stopped",
            RUN_LIMIT.as_secs()
        ),
    }
}

/// One run of schemathesis, its report written to `report`; `None` if it
/// ran past the limit (then it is stopped).
fn run_once(
    st: &str,
    url: &str,
    token: &str,
    checks: &str,
    examples: &str,
    work: &std::path::Path,
    report: &std::path::Path,
) -> Option<std::process::ExitStatus> {
    let out = std::fs::File::create(report).unwrap();
    let err = out.try_clone().unwrap();
    let mut child = Command::new(st)
        .args(["run", url])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", checks])
        .args(["--max-examples", examples])
        // Every phase: the document's examples, the coverage of each
        // schema's edges, random fuzzing, and stateful sequences (a
        // device added, then changed, then removed...).
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        // One worker: with two, Python 3.11's parser (which hypothesis
        // uses to describe its filters) now and then fails in one thread
        // ("AST constructor recursion depth mismatch").
        .args(["--workers", "1"])
        .args(["--request-timeout", "10"])
        .args(["--seed", "20261207"])
        .args(["--max-failures", "20"])
        .args(["--suppress-health-check", "all"])
        .args(["--output-truncate", "false"])
        .env("NO_COLOR", "1")
        // Hypothesis keeps its example database in the working
        // directory: a temporary one, not the source tree.
        .current_dir(work)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {st}: {e}"));
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
