//! Running the phone: credentials, attempts with retries, the state file,
//! Ctrl-C, progress and the final LSC status.

use std::path::Path;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use capf_auth::{AuthMode, AuthString};
use capf_ca::{CaCertificate, CertificateKind};
use capf_operations::phone::{
    CertificateCredentials, Credentials, LscChange, PersistentState, PhoneConfig, PhoneOutcome,
    PhoneStatus, PhoneSuccess, RetryPolicy, SudiCredentials,
};
use capf_server::{PhoneClient, ServerError, phone_client_config};
use capf_wire::Password;
use serde::Serialize;
use tokio::sync::watch;

use super::files::{self, KeyedCertificate};
use super::walk::{self, Attempt, ServerList, WalkingPhone};
use super::{Expected, PhoneArgs};
use crate::{Failure, Outcome, time_text};

/// How the whole operation (all attempts) ended.
struct Ending {
    outcome: PhoneOutcome,
    /// Why no server could be reached in the last attempt, when none was.
    connect_error: Option<String>,
    /// The server the last session ran on.
    server: Option<String>,
    /// The servers the last attempt could not reach, and why.
    unreachable: Vec<(String, String)>,
    attempts: u32,
    stopped: bool,
}

pub(super) async fn run(
    expected: Expected,
    args: PhoneArgs,
    servers: ServerList,
) -> Result<Outcome, Failure> {
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
    let mut phone = CliPhone {
        client: &client,
        config: &config,
        args: &args,
        state: &mut state,
        policy,
        stop_rx: &stop_rx,
        several: servers.len() > 1,
        state_attempt: 0,
    };
    let end = walk::walk(&mut phone, &servers, 0, policy.interval).await?;
    let ending = Ending {
        connect_error: end.last.server.is_none().then(|| end.last.failure_text()),
        server: end.last.server_address().map(str::to_owned),
        unreachable: end
            .last
            .unreachable
            .iter()
            .map(|(index, why)| (servers.get(*index).to_owned(), why.clone()))
            .collect(),
        stopped: end.stopped || *stop_rx.borrow(),
        attempts: end.attempts,
        outcome: end.last.outcome,
    };
    Ok(report(expected, &args, &ending, lsc_before))
}

/// The authentication mode the flags configure (no credential flag: the
/// null string, as a phone configured for it sends).
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

/// The phone of `capf phone` as it walks its servers: keeps `state` in
/// the state file before and after each attempt, shows progress, and stops
/// on Ctrl-C.
struct CliPhone<'a> {
    client: &'a PhoneClient,
    config: &'a PhoneConfig,
    args: &'a PhoneArgs,
    state: &'a mut PersistentState,
    policy: RetryPolicy,
    stop_rx: &'a watch::Receiver<bool>,
    /// Whether several servers were given (messages then name them).
    several: bool,
    /// The attempt number in the state file (counting earlier runs).
    state_attempt: u32,
}

impl CliPhone<'_> {
    fn save(&self) -> Result<(), Failure> {
        match &self.args.state {
            Some(path) => files::write_state(path, self.state),
            None => Ok(()),
        }
    }
}

impl WalkingPhone for CliPhone<'_> {
    fn attempt_starts(&mut self, _number: u32) -> Result<(), Failure> {
        self.state_attempt = self
            .state
            .start_attempt(self.config.credentials.auth_mode());
        self.save()
    }

    async fn session(&mut self, server: &str) -> Result<PhoneOutcome, ServerError> {
        let cert_out = self.args.cert_out.as_deref();
        let mut last_shown: Option<String> = None;
        self.client
            .run_with(
                server,
                self.config.clone(),
                |der, key| match cert_out {
                    Some(path) => files::write_lsc_store(path, der, key),
                    None => Ok(()),
                },
                |configured| match cert_out {
                    Some(path) => files::delete_lsc_store(path),
                    None => Ok(configured),
                },
                |status| show_progress(status, &mut last_shown),
                stopped(self.stop_rx.clone()),
            )
            .await
            .map(|run| run.outcome)
    }

    fn unreachable(&mut self, _server: &str, error: &ServerError, next: Option<&str>) {
        if let Some(next) = next {
            eprintln!("{error}; trying {next}");
        }
    }

    fn attempt_ended(&mut self, attempt: &Attempt) -> Result<bool, Failure> {
        let next = self
            .state
            .record_outcome(&attempt.outcome, &self.policy, SystemTime::now());
        self.save()?;
        Ok(next.is_some() && !*self.stop_rx.borrow())
    }

    async fn pause(&mut self, attempt: &Attempt, interval: Duration, next_server: &str) -> bool {
        let failed = match (self.several, attempt.server_address()) {
            (true, Some(server)) => format!("Failed on {server}: {}", attempt.failure_text()),
            _ => format!("Failed: {}", attempt.failure_text()),
        };
        let from = if self.several {
            format!(", from {next_server}")
        } else {
            String::new()
        };
        eprintln!(
            "{failed}; retrying in {} s{from} (attempt {} of {})",
            interval.as_secs(),
            self.state_attempt.saturating_add(1),
            self.policy.retries.saturating_add(1)
        );
        let mut stop = std::pin::pin!(stopped(self.stop_rx.clone()));
        tokio::select! {
            () = tokio::time::sleep(interval) => true,
            () = &mut stop => false,
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

/// What `capf phone ... --json` prints.
#[derive(Debug, Serialize)]
struct PhoneJson {
    /// The subcommand: `install`, `fetch`, `delete` or `run`.
    requested: &'static str,
    /// `succeeded`, `unexpected` (the server did something else) or `failed`.
    result: &'static str,
    /// What the server did: `install`, `fetch`, `delete`, or null.
    operation: Option<&'static str>,
    detail: String,
    problem: Option<String>,
    attempts: u32,
    /// The server the session ended on.
    server: Option<String>,
    unreachable: Vec<UnreachableJson>,
    lsc_installed: bool,
    /// The new LSC, after an install.
    certificate: Option<CertificateJson>,
    cert_out: Option<String>,
}

#[derive(Debug, Serialize)]
struct UnreachableJson {
    server: String,
    error: String,
}

/// A certificate the phone received.
#[derive(Debug, Serialize)]
struct CertificateJson {
    subject: String,
    issuer: String,
    serial: String,
    not_before: String,
    not_after: String,
    /// `rsa2048`, `p256`... (null if the key cannot be read).
    key: Option<String>,
}

fn certificate_json(der: &[u8]) -> Option<CertificateJson> {
    // The certificate was parsed and checked when it was received.
    let c = CaCertificate::from_der(der, "the LSC").ok()?;
    Some(CertificateJson {
        subject: c.subject(),
        issuer: c.issuer(),
        serial: c.serial_hex(),
        not_before: time_text::format(c.not_before()),
        not_after: time_text::format(c.not_after()),
        key: c.public_key().map(|k| k.spec().to_string()).ok(),
    })
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
        let view = PhoneJson {
            requested: expected.name(),
            result,
            operation,
            detail,
            problem: problem.clone(),
            attempts: ending.attempts,
            server: ending.server.clone(),
            unreachable: ending
                .unreachable
                .iter()
                .map(|(server, error)| UnreachableJson {
                    server: server.clone(),
                    error: error.clone(),
                })
                .collect(),
            lsc_installed: lsc_after,
            certificate: new_lsc.as_deref().and_then(certificate_json),
            cert_out: args.cert_out.as_ref().map(|p| p.display().to_string()),
        };
        if let Err(e) = crate::output::print_json(&view) {
            eprintln!("capf: {}", e.message);
        }
    } else {
        if let Some(der) = new_lsc.as_deref() {
            print_new_lsc(der, args.cert_out.as_deref());
        }
        if let (PhoneOutcome::Succeeded(PhoneSuccess::Deleted { had_one: true }), Some(path)) =
            (outcome, &args.cert_out)
        {
            println!("removed {}", path.display());
        }
        if let Some(server) = &ending.server {
            println!("CAPF Server: {server}");
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
