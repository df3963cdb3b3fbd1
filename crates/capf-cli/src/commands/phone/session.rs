//! Running the phone: credentials, attempts with retries, the state file,
//! Ctrl-C, progress and the final LSC status.

use std::path::Path;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use capf_auth::{AuthMode, AuthString};
use capf_ca::{CaCertificate, CertificateKind};
use capf_operations::phone::{
    CertificateCredentials, Credentials, FailureCause, LscChange, PersistentState, PhoneConfig,
    PhoneFailure, PhoneOutcome, PhoneStatus, PhoneStep, PhoneSuccess, RetryPolicy, SudiCredentials,
};
use capf_server::{PhoneClient, phone_client_config};
use capf_wire::Password;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::files::{self, KeyedCertificate};
use super::{Expected, PhoneArgs, server_address};
use crate::{Failure, Outcome, time_text};

/// How the whole operation (all attempts) ended.
struct Ending {
    outcome: PhoneOutcome,
    /// The connection error of the last attempt, when it never connected.
    connect_error: Option<String>,
    attempts: u32,
    stopped: bool,
}

pub(super) async fn run(expected: Expected, args: PhoneArgs) -> Result<Outcome, Failure> {
    let server = server_address(&args.server)?;
    let trusted = files::load_capf_certificates(&args.capf_cert)?;
    let timeout = Duration::from_secs(args.timeout);
    let client = match args.tls.as_str() {
        "legacy" => legacy_client(trusted)?,
        _ => PhoneClient::new(phone_client_config(trusted)?),
    }
    .with_connect_timeout(timeout);

    // The phone's LSC: its store (--cert-out), else the one given to authenticate.
    let stored_lsc = match &args.cert_out {
        Some(path) => files::read_lsc_store(path)?,
        None => None,
    };
    let given_lsc = match &args.lsc {
        Some(path) => Some(files::load_keyed_certificate(path, "--lsc")?),
        None => None,
    };
    let current_lsc_der = stored_lsc
        .as_ref()
        .or(given_lsc.as_ref())
        .map(|c| Bytes::copy_from_slice(c.certificate.der()));
    let lsc_before = current_lsc_der.is_some();

    let mut state = match &args.state {
        Some(path) => files::read_state(path)?.unwrap_or_default(),
        None => PersistentState::default(),
    };
    state.lsc_installed = lsc_before;
    let flag_mode = flag_auth_mode(&args);
    let mode = match state.auth_mode() {
        Some(stored) => {
            if stored != flag_mode {
                eprintln!(
                    "resuming the pending operation with the stored authentication mode {} \
                     (kept until the operation completes; the flags ask for {})",
                    stored.name(),
                    flag_mode.name()
                );
            }
            stored
        }
        None => flag_mode,
    };
    let credentials = credentials_for(mode, &args, given_lsc, stored_lsc)?;

    let mut config = PhoneConfig::new(args.device.trim(), credentials).with_reply_timeout(timeout);
    if let Some(der) = current_lsc_der {
        config = config.with_lsc(der);
    }
    let policy = RetryPolicy {
        retries: args.retries,
        interval: Duration::from_secs(args.retry_interval),
    };

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = stop_tx.send(true);
        }
        // Without a signal handler the stop button never fires.
        std::future::pending::<()>().await;
    });

    eprintln!("Pending");
    let ending = attempts(
        &client, &server, &config, &args, &mut state, policy, &stop_rx,
    )
    .await?;
    Ok(report(expected, &args, &ending, lsc_before))
}

/// The authentication mode the flags configure.
fn flag_auth_mode(args: &PhoneArgs) -> AuthMode {
    if args.auth_string.is_some() {
        AuthMode::AuthString
    } else if args.lsc.is_some() {
        AuthMode::ExistingCertificateLscFirst
    } else if args.mic.is_some() {
        AuthMode::ExistingCertificateMicFirst
    } else {
        AuthMode::NullString
    }
}

/// The credentials for `mode`, from the flags (and, for an LSC, the LSC
/// store when --lsc is not given).
fn credentials_for(
    mode: AuthMode,
    args: &PhoneArgs,
    given_lsc: Option<KeyedCertificate>,
    stored_lsc: Option<KeyedCertificate>,
) -> Result<Credentials, Failure> {
    let certificate = |kind, keyed: KeyedCertificate| -> Result<Credentials, Failure> {
        let sudi = match &args.sudi {
            Some(path) => {
                let s = files::load_keyed_certificate(path, "--sudi")?;
                Some(SudiCredentials {
                    certificate_der: Bytes::copy_from_slice(s.certificate.der()),
                    key: s.key,
                })
            }
            None => None,
        };
        Ok(Credentials::Certificate(Box::new(CertificateCredentials {
            kind,
            certificate_der: Bytes::copy_from_slice(keyed.certificate.der()),
            key: keyed.key,
            sudi,
        })))
    };
    match mode {
        AuthMode::NullString => Ok(Credentials::NullString),
        AuthMode::AuthString => {
            let Some(text) = args.auth_string.as_deref() else {
                return Err(Failure::usage(
                    "the pending operation authenticates by authentication string: give --auth-string",
                ));
            };
            match text.parse::<AuthString>() {
                Ok(digits) => Ok(Credentials::AuthString(digits)),
                Err(e) => {
                    eprintln!("note: --auth-string {e}; sending it as is");
                    Ok(Credentials::RawPassword(Password::new(
                        Bytes::copy_from_slice(text.as_bytes()),
                    )))
                }
            }
        }
        AuthMode::ExistingCertificateLscFirst => match given_lsc.or(stored_lsc) {
            Some(lsc) => certificate(CertificateKind::Lsc, lsc),
            None => Err(Failure::usage(
                "authentication by LSC needs --lsc FILE, or an LSC in --cert-out FILE",
            )),
        },
        AuthMode::ExistingCertificateMicFirst => match &args.mic {
            Some(path) => certificate(
                CertificateKind::Mic,
                files::load_keyed_certificate(path, "--mic")?,
            ),
            None => Err(Failure::usage("authentication by MIC needs --mic FILE")),
        },
    }
}

/// Runs sessions until one is final: retrying communication failures per
/// `policy`, keeping `state` in the state file before and after each
/// attempt, and stopping on Ctrl-C.
async fn attempts(
    client: &PhoneClient,
    server: &str,
    config: &PhoneConfig,
    args: &PhoneArgs,
    state: &mut PersistentState,
    policy: RetryPolicy,
    stop_rx: &watch::Receiver<bool>,
) -> Result<Ending, Failure> {
    let mode = config.credentials.auth_mode();
    let save = |state: &PersistentState| match &args.state {
        Some(path) => files::write_state(path, state),
        None => Ok(()),
    };
    let mut tried = 0;
    loop {
        let attempt = state.start_attempt(mode);
        tried += 1;
        save(state)?;
        let cert_out = args.cert_out.as_deref();
        let mut last_shown: Option<String> = None;
        let result = client
            .run_with(
                server,
                config.clone(),
                |der, key| match cert_out {
                    Some(path) => files::write_lsc_store(path, der, key),
                    None => Ok(()),
                },
                |configured| match cert_out {
                    Some(path) => files::delete_lsc_store(path),
                    None => Ok(configured),
                },
                |status| show_progress(status, &mut last_shown),
                stopped(stop_rx.clone()),
            )
            .await;
        let (outcome, connect_error) = match result {
            Ok(run) => (run.outcome, None),
            Err(e) => (
                PhoneOutcome::Failed(PhoneFailure {
                    cause: FailureCause::ConnectionLost,
                    step: PhoneStep::AwaitingAuthRequest,
                    lsc_change: LscChange::Unchanged,
                }),
                Some(e.to_string()),
            ),
        };
        let is_stopped = *stop_rx.borrow()
            || matches!(
                &outcome,
                PhoneOutcome::Failed(PhoneFailure {
                    cause: FailureCause::Aborted,
                    ..
                })
            );
        let next = state.record_outcome(&outcome, &policy, SystemTime::now());
        save(state)?;
        let ending = Ending {
            outcome,
            connect_error,
            attempts: tried,
            stopped: is_stopped,
        };
        if is_stopped || next.is_none() {
            return Ok(ending);
        }
        eprintln!(
            "Failed: {}; retrying in {} s (attempt {} of {})",
            failure_text(&ending),
            policy.interval.as_secs(),
            attempt + 1,
            policy.retries + 1
        );
        let mut stop = std::pin::pin!(stopped(stop_rx.clone()));
        tokio::select! {
            () = tokio::time::sleep(policy.interval) => {}
            () = &mut stop => {
                return Ok(Ending { stopped: true, ..ending });
            }
        }
    }
}

/// Completes when the user presses Ctrl-C.
async fn stopped(mut rx: watch::Receiver<bool>) {
    if rx.wait_for(|stopped| *stopped).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Prints "<operation> pending" when the server has said what to do.
fn show_progress(status: &PhoneStatus, last: &mut Option<String>) {
    if let PhoneStatus::Pending {
        operation: Some(_), ..
    } = status
    {
        let text = status.to_string();
        if last.as_deref() != Some(text.as_str()) {
            eprintln!("{text}");
            *last = Some(text);
        }
    }
}

fn failure_text(ending: &Ending) -> String {
    match (&ending.outcome, &ending.connect_error) {
        (_, Some(e)) => e.clone(),
        (outcome, None) => outcome.to_string(),
    }
}

/// What happened, against what the operator expected; `None` when it
/// matches.
fn mismatch(expected: Expected, success: &PhoneSuccess) -> Option<String> {
    let what = match success {
        PhoneSuccess::Installed { .. } => "installed an LSC",
        PhoneSuccess::Fetched { .. } => "fetched the LSC (troubleshoot)",
        PhoneSuccess::Deleted { .. } => "deleted the LSC",
        PhoneSuccess::NothingScheduled { .. } => "had no operation scheduled for this device",
    };
    let matches = match expected {
        Expected::Anything => true,
        Expected::Install => matches!(success, PhoneSuccess::Installed { .. }),
        Expected::Fetch => matches!(success, PhoneSuccess::Fetched { .. }),
        Expected::Delete => matches!(success, PhoneSuccess::Deleted { .. }),
    };
    (!matches).then(|| format!("expected {}, but the server {what}", expected.name()))
}

fn certificate_json(der: &[u8]) -> Value {
    match CaCertificate::from_der(der, "the LSC") {
        Ok(c) => json!({
            "subject": c.subject(),
            "issuer": c.issuer(),
            "serial": c.serial_hex(),
            "not_before": time_text::format(c.not_before()),
            "not_after": time_text::format(c.not_after()),
            "key": c.public_key().map(|k| k.spec().to_string()).ok(),
        }),
        Err(e) => json!({ "error": e.to_string() }),
    }
}

fn operation_name(success: &PhoneSuccess) -> Option<&'static str> {
    match success {
        PhoneSuccess::Installed { .. } => Some("install"),
        PhoneSuccess::Fetched { .. } => Some("fetch"),
        PhoneSuccess::Deleted { .. } => Some("delete"),
        PhoneSuccess::NothingScheduled { .. } => None,
    }
}

/// Prints the result: "Succeeded: ..." / "Failed: ..." on stderr,
/// then "LSC: Installed" / "LSC: Not Installed" and details on
/// stdout (or JSON).
fn report(expected: Expected, args: &PhoneArgs, ending: &Ending, lsc_before: bool) -> Outcome {
    let outcome = &ending.outcome;
    let lsc_after = outcome.lsc_installed_after(lsc_before);
    let (result, problem) = if ending.stopped {
        ("stopped", Some("stopped by user".to_owned()))
    } else {
        match outcome {
            PhoneOutcome::Succeeded(s) => match mismatch(expected, s) {
                None => ("succeeded", None),
                Some(m) => ("unexpected", Some(m)),
            },
            PhoneOutcome::Failed(_) => ("failed", Some(failure_text(ending))),
        }
    };
    match outcome {
        PhoneOutcome::Succeeded(s) => eprintln!("Succeeded: {s}"),
        _ if ending.stopped => eprintln!("stopped by user"),
        PhoneOutcome::Failed(_) => eprintln!("Failed: {}", failure_text(ending)),
    }
    let new_lsc = match outcome.lsc_change() {
        LscChange::Installed { certificate_der } => Some(certificate_der),
        _ => None,
    };
    if args.json {
        let (operation, detail) = match outcome {
            PhoneOutcome::Succeeded(s) => (operation_name(s), s.to_string()),
            PhoneOutcome::Failed(_) => (None, failure_text(ending)),
        };
        let value = json!({
            "requested": expected.name(),
            "result": result,
            "operation": operation,
            "detail": detail,
            "problem": problem,
            "attempts": ending.attempts,
            "lsc_installed": lsc_after,
            "certificate": new_lsc.as_deref().map(certificate_json),
            "cert_out": args.cert_out.as_ref().map(|p| p.display().to_string()),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else {
        if let Some(der) = new_lsc.as_deref() {
            print_new_lsc(der, args.cert_out.as_deref());
        }
        if let (PhoneOutcome::Succeeded(PhoneSuccess::Deleted { had_one: true }), Some(path)) =
            (outcome, &args.cert_out)
        {
            println!("removed {}", path.display());
        }
        println!(
            "LSC: {}",
            if lsc_after {
                "Installed"
            } else {
                "Not Installed"
            }
        );
    }
    match (result, problem) {
        ("succeeded", _) => Outcome::Done,
        ("unexpected", Some(p)) => {
            eprintln!("capf: {p}");
            Outcome::NotDone
        }
        _ => Outcome::NotDone,
    }
}

fn print_new_lsc(der: &[u8], cert_out: Option<&Path>) {
    if let Ok(c) = CaCertificate::from_der(der, "the new LSC") {
        println!("subject   {}", c.subject());
        println!("issuer    {}", c.issuer());
        println!("serial    {}", c.serial_hex());
        println!(
            "valid     {} to {}",
            time_text::format(c.not_before()),
            time_text::format(c.not_after())
        );
    }
    match cert_out {
        Some(path) => println!(
            "written   {} (certificate + PKCS#8 key, mode 0600)",
            path.display()
        ),
        None => println!("not saved (no --cert-out)"),
    }
}

/// A client speaking TLS 1.0 with AES128-SHA only, like a 7900-series phone.
#[cfg(feature = "legacy-tls")]
fn legacy_client(trusted: Vec<capf_ca::CaCertificate>) -> Result<PhoneClient, Failure> {
    Ok(PhoneClient::legacy(trusted))
}

#[cfg(not(feature = "legacy-tls"))]
fn legacy_client(_trusted: Vec<capf_ca::CaCertificate>) -> Result<PhoneClient, Failure> {
    Err(Failure::usage(
        "--tls legacy needs a capf built with the legacy-tls feature \
         (cargo build --release -p capf-cli --features legacy-tls)",
    ))
}
