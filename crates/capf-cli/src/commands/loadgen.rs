//! `capf loadgen`: a load generator of simulated phones against a CAPF
//! server (issue 9).
//!
//! * A pool of phone keys is made once and reused round-robin (the server
//!   does not care that two phones share a key pair): phone-side key
//!   generation would otherwise dominate.
//! * Given the server's data directory, it schedules its own devices there
//!   first (SEP + 12 hex digits of an index, install, the chosen
//!   authentication mode and key; with auth-string a fresh string each),
//!   straight through the store (the SQLite file, or `--database`): the
//!   server may be running.
//! * `--spawn-server` starts `capf serve` on 127.0.0.1 as a child and
//!   reports its CPU seconds per enrollment and peak RSS (Linux /proc).
//! * `--hold`: phones stop when asked for a key and keep their connections
//!   open until every phone waits, to measure the memory of waiting
//!   sessions.
//! * Several `--server`s (up to five, like a phone's CAPF list): each
//!   phone walks them as `capf phone` does (the same code), starting at
//!   server i mod n with `--server-order rotate`; the report counts the
//!   enrollments per server and the retried attempts.
//! * `--devices FILE`: the phones are the devices named there (with their
//!   strings); `--no-schedule`: nothing is written to any database, the
//!   server must have the devices scheduled (loadgen then needs no access
//!   to the server's database). Devices loadgen added to the database of
//!   a server it did not spawn are removed at the end, unless `--keep`.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::BytesMut;
use capf_auth::{AuthMode, AuthString, Operation};
use capf_ca::{CaCertificate, CertificateKind, IdentityParams, KeySpec, PrivateKey};
use capf_operations::phone::{
    CertificateCredentials, Credentials, PhoneConfig, PhoneEvent, PhoneOutcome, PhoneSession,
    PhoneSuccess, RetryPolicy,
};
use capf_operations::{Device, DeviceEdit, DeviceName, OperatorStore};
use capf_server::{PhoneClient, ServerError, phone_client_config};
use capf_wire::{FrameCodec, Message};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rustls::pki_types::ServerName;
use serde::Serialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::commands::phone::walk::{self, Attempt, ServerList, WalkingPhone};
use crate::data_dir::DataDir;
use crate::{Failure, Outcome};
use capf_operations::report::from_spreadsheet_cell;

mod mic;

/// --hold: phones in their TCP connect + TLS handshake at once.
const HOLD_CONNECTING: usize = 256;

/// Failure reasons kept for the report.
const REASONS_KEPT: usize = 5;

/// Arguments of `capf loadgen`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    capf --data-dir /tmp/lg loadgen --spawn-server --phones 5000 --concurrency 64\n      \
        start `capf serve` on 127.0.0.1, schedule SEP000000000000.. there, enroll them\n  \
    capf --data-dir /srv/capf loadgen --server 127.0.0.1:3804 --phones 1000 --concurrency 32 \\\n      \
        --auth null-string --key rsa2048      against a running server on the same data directory\n  \
    capf --data-dir /tmp/lg loadgen --spawn-server --capf-key rsa2048 --phones 2000 --json\n  \
    capf --data-dir /tmp/lg loadgen --spawn-server --hold --phones 10000 --concurrency 2000\n      \
        10,000 phones waiting in key generation at once: the server's RSS\n  \
    capf --data-dir /srv/capf loadgen --server 10.0.0.5 --server 10.0.0.6 --phones 1000 \\\n      \
        --retry-interval 5      two CAPF servers, each the first for half the phones\n\n\
    capf loadgen --server 10.0.0.5 --capf-cert capf.pem --devices phones.csv --no-schedule\n      \
        the devices (and strings) of phones.csv, scheduled by the operator; no database access\n  \
    capf --data-dir /srv/capf loadgen --server 127.0.0.1:3804 --phones 100 --keep\n      \
        keep the 100 devices it added (they are removed at the end without --keep)\n\n\
    Devices are scheduled in --data-dir when it is initialised (or with --spawn-server),\n\
    unless --no-schedule; otherwise the server must already have them scheduled for\n\
    install: SEP<index> devices with --auth null-string, or those of --devices.\n\n\
    --devices FILE: CSV, one device a line, name[,string] (a first line name,... is a\n\
    header; a leading apostrophe before a string is removed, so the --strings-out file of\n\
    `capf device import` is accepted as it is). A device with a string authenticates with\n\
    it, one without with the null string. One phone per device.\n\n\
    Devices loadgen adds to the database of a --server (one it did not spawn) are removed\n\
    again at the end, unless --keep; devices that existed are left scheduled as loadgen\n\
    set them. With --spawn-server they stay in the directory.\n\n\
    Several servers: give --server up to five times. Each phone walks the list like\n\
    `capf phone`: a server that cannot be reached is skipped at once for the next; a\n\
    session that broke (connection lost, no answer) is a failed attempt, retried\n\
    --retry-interval seconds later on the next server, --retries times. Phone i starts\n\
    at server i mod N (--server-order rotate) or every phone at the first (same).\n\
    Latencies include the waits between attempts. --hold phones use their first\n\
    server only, without retries.\n\n\
    --auth lsc: every phone first enrolls by the null string (not timed) and keeps its\n\
    key and LSC in memory; loadgen then schedules the devices again (install, lsc-first)\n\
    and times the second pass, each phone authenticating with its LSC.\n\
    --auth mic: loadgen makes a test manufacturing CA and a MIC per phone (--key its key\n\
    type) and schedules the devices with mic-first. With --spawn-server the CA's\n\
    certificate goes into DIR/mic-trust before the server starts (and is removed at the\n\
    end); against a --server give --mic-ca FILE, whose certificate the server trusts.\n\
    Both need the server's database (not --no-schedule).\n\n\
    Exit status: 0 when every enrollment succeeded, 1 otherwise, 2 for a usage error.")]
pub(crate) struct LoadgenArgs {
    /// The CAPF server (HOST or HOST:PORT, port 3804 by default). Up to 5 times: each
    /// phone walks them like `capf phone` (a server it cannot reach is skipped at once;
    /// a session that broke is retried on the next server). Not with --spawn-server.
    #[arg(
        long,
        value_name = "HOST[:PORT]",
        required_unless_present = "spawn_server",
        conflicts_with = "spawn_server"
    )]
    server: Vec<String>,
    /// Where each phone starts the --server list: rotate (phone i at server i mod N)
    /// or same (every phone at the first).
    #[arg(long, default_value = "rotate", value_name = "ORDER",
          value_parser = ["rotate", "same"])]
    server_order: String,
    /// Attempts after the first one fails to communicate (3 on a phone).
    #[arg(long, default_value_t = 3, value_name = "N")]
    retries: u32,
    /// Seconds between attempts after a communication failure (30 on a phone); the
    /// latencies include these waits.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    retry_interval: u64,
    /// The CAPF certificate to trust (PEM). Default: capf.pem of --data-dir.
    #[arg(long, value_name = "FILE")]
    capf_cert: Option<PathBuf>,
    /// Number of enrollments (one simulated phone each). Not with --devices.
    #[arg(long, default_value_t = 1000, value_name = "N", conflicts_with = "devices",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    phones: u32,
    /// Phones running at once.
    #[arg(long, default_value_t = 64, value_name = "C",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    concurrency: u32,
    /// How the phones authenticate: auth-string, null-string, lsc (re-enrollment of
    /// phones that hold an LSC from a first, untimed pass) or mic (phones with a MIC of
    /// a test manufacturing CA). Not with --devices (its strings say).
    #[arg(long, default_value = "auth-string", value_name = "MODE", conflicts_with = "devices",
          value_parser = ["auth-string", "null-string", "lsc", "mic"])]
    auth: String,
    /// With --auth mic: the manufacturing CA (certificate and PKCS#8 key, PEM) that
    /// issues the phones' MICs; against a --server its certificate must be in the
    /// server's mic-trust folder. Default with --spawn-server: a fresh CA in memory.
    #[arg(long, value_name = "FILE")]
    mic_ca: Option<PathBuf>,
    /// The phones' key type (what the devices are scheduled with).
    #[arg(long, default_value = "p256", value_name = "KEY", value_parser = ["p256", "rsa2048"])]
    key: String,
    /// First device index: devices are SEP + 12 hex digits of FIRST..FIRST+N.
    #[arg(
        long,
        default_value_t = 0,
        value_name = "INDEX",
        conflicts_with = "devices"
    )]
    first_index: u64,
    /// The devices to enroll, which exist on the server: CSV name[,string] (see below).
    #[arg(long, value_name = "FILE")]
    devices: Option<PathBuf>,
    /// Write no device into any database: the server has them scheduled already
    /// (with --devices, or SEP<index> devices with --auth null-string).
    #[arg(long)]
    no_schedule: bool,
    /// Keep the devices loadgen added to the database of a --server it did not spawn
    /// (they are removed at the end by default).
    #[arg(long, conflicts_with = "no_schedule")]
    keep: bool,
    /// Start `capf serve --listen 127.0.0.1:0` on --data-dir as a child (initialising
    /// the directory with --capf-key if needed) and report its CPU and memory.
    #[arg(long)]
    spawn_server: bool,
    /// With --spawn-server on an uninitialised directory: the CAPF key.
    #[arg(long, default_value = "p256", value_name = "KEY",
          value_parser = ["p256", "p384", "rsa2048", "rsa3072", "rsa4096"])]
    capf_key: String,
    /// Phones stop when asked for a key and hold their connections until all wait.
    #[arg(long)]
    hold: bool,
    /// Seconds a phone waits for each server message (and for connect + handshake).
    #[arg(long, default_value_t = 30, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
    /// Let simulated phones resume TLS sessions (one ticket shared by all). Off by
    /// default: each real phone makes its own full handshake, and that is what
    /// the server's CPU figure should include.
    #[arg(long)]
    resume_tls: bool,
    /// Print the figures as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// The simulated phones' TLS configuration: a full handshake per phone
/// unless `resume` (see `--resume-tls`).
fn client_config(trusted: &[CaCertificate], resume: bool) -> Result<rustls::ClientConfig, Failure> {
    let mut config = phone_client_config(trusted.to_vec())?;
    if !resume {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Ok(config)
}

/// What one phone run gave.
struct Sample {
    latency: Duration,
    error: Option<String>,
    /// The server it enrolled on (index in the list).
    enrolled_on: Option<usize>,
    /// Attempts it made (0 when it never started).
    attempts: u32,
    /// Its index in the targets.
    index: usize,
    /// The LSC it got and its key.
    installed: Option<(Vec<u8>, PrivateKey)>,
}

/// What happened on one server, counted by the phones.
#[derive(Default)]
struct ServerTally {
    /// Sessions that ran there (however they ended).
    sessions: AtomicUsize,
    /// Times a phone could not reach it (and went on to the next).
    unreachable: AtomicUsize,
}

/// A simulated phone as it walks the server list (the walk of
/// `capf phone`), counting sessions and unreachable servers.
struct LoadgenPhone<'a> {
    client: &'a PhoneClient,
    config: PhoneConfig,
    policy: RetryPolicy,
    tally: &'a [ServerTally],
    /// A session stored a new LSC, even if it then broke (a server that
    /// died after recording the install, before END_SESSION): a retry
    /// that finds nothing scheduled then confirms the install.
    stored_lsc: bool,
    /// The last LSC a session stored, and its key.
    installed: Option<(Vec<u8>, PrivateKey)>,
}

impl WalkingPhone for LoadgenPhone<'_> {
    fn attempt_starts(&mut self, _number: u32) -> Result<(), Failure> {
        Ok(())
    }

    async fn session(&mut self, server: &str) -> Result<PhoneOutcome, ServerError> {
        let run = self.client.run(server, self.config.clone()).await?;
        if run.installed.is_some() {
            self.stored_lsc = true;
            self.installed = run.installed;
        }
        Ok(run.outcome)
    }

    fn unreachable(&mut self, _server: &str, _error: &ServerError, _next: Option<&str>) {}

    fn attempt_ended(&mut self, attempt: &Attempt) -> Result<bool, Failure> {
        if let Some(t) = attempt
            .server
            .as_ref()
            .and_then(|(i, _)| self.tally.get(*i))
        {
            t.sessions.fetch_add(1, Ordering::Relaxed);
        }
        for (i, _) in &attempt.unreachable {
            if let Some(t) = self.tally.get(*i) {
                t.unreachable.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(self
            .policy
            .after(&attempt.outcome, attempt.number, SystemTime::now())
            .is_some())
    }

    async fn pause(&mut self, _attempt: &Attempt, interval: Duration, _next: &str) -> bool {
        tokio::time::sleep(interval).await;
        true
    }
}

/// A server started by loadgen.
struct Spawned {
    child: Child,
    addr: String,
}

impl Spawned {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM (graceful), then SIGKILL after 15 s.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn run(data: &DataDir, args: LoadgenArgs) -> Result<Outcome, Failure> {
    if args.hold && !args.spawn_server && args.server.is_empty() {
        return Err(Failure::usage("--hold needs --server or --spawn-server"));
    }
    let given = if args.server.is_empty() {
        None
    } else {
        Some(ServerList::parse(&args.server)?)
    };
    let phone_key: KeySpec = args.key.parse().map_err(Failure::usage)?;
    let mode = match args.auth.as_str() {
        "null-string" => AuthMode::NullString,
        "lsc" => AuthMode::ExistingCertificateLscFirst,
        "mic" => AuthMode::ExistingCertificateMicFirst,
        _ => AuthMode::AuthString,
    };
    let by_certificate = mode.is_existing_certificate();
    if by_certificate && args.no_schedule {
        return Err(Failure::usage(format!(
            "--auth {} schedules the devices itself: not with --no-schedule",
            args.auth
        )));
    }
    if args.mic_ca.is_some() && mode != AuthMode::ExistingCertificateMicFirst {
        return Err(Failure::usage("--mic-ca goes with --auth mic"));
    }
    if args.no_schedule && args.devices.is_none() && mode == AuthMode::AuthString {
        return Err(Failure::usage(
            "--no-schedule needs --devices FILE (names and strings), or --auth null-string \
             (SEP<index> devices the operator scheduled with the null string)",
        ));
    }
    let mut targets = match &args.devices {
        Some(path) => read_devices(path)?,
        None => index_targets(args.first_index, args.phones)?,
    };
    if args.spawn_server && !data.is_initialised() {
        let capf_key: KeySpec = args.capf_key.parse().map_err(Failure::usage)?;
        data.init(
            &IdentityParams {
                key: capf_key,
                ..IdentityParams::default()
            },
            SystemTime::now(),
        )?;
        eprintln!(
            "initialised {} (CAPF key {capf_key})",
            data.root().display()
        );
    }

    if by_certificate && !data.is_initialised() {
        return Err(Failure::usage(format!(
            "--auth {} needs the server's --data-dir (loadgen schedules the devices in its \
             database); {} is not initialised",
            args.auth,
            data.root().display()
        )));
    }
    // --auth mic: the manufacturing CA, in the trust before the server starts.
    let mic = if mode == AuthMode::ExistingCertificateMicFirst {
        Some(if args.spawn_server {
            mic::MicCa::for_spawned_server(data, args.mic_ca.as_deref())?
        } else {
            mic::MicCa::for_running_server(data, args.mic_ca.as_deref())?
        })
    } else {
        None
    };
    // --auth lsc: the first pass enrolls by the null string.
    let first_mode = match mode {
        AuthMode::ExistingCertificateLscFirst => AuthMode::NullString,
        other => other,
    };

    // Devices first, so the enrollments land in the server's store.
    let added = if data.is_initialised() && !args.no_schedule {
        if args.devices.is_none() && mode == AuthMode::AuthString {
            for target in &mut targets {
                target.string = Some(AuthString::generate(8).map_err(Failure::new)?);
            }
        }
        let started = Instant::now();
        let (added, scheduled) = schedule_devices(data, &targets, phone_key, first_mode);
        match scheduled {
            Ok(()) => {
                eprintln!(
                    "scheduled {} devices ({} added) in {} ({:.1} s)",
                    targets.len(),
                    added.len(),
                    data.root().display(),
                    started.elapsed().as_secs_f64()
                );
                added
            }
            Err(e) => {
                remove_added(data, &args, &added);
                if let Some(ca) = mic {
                    ca.finish();
                }
                return Err(e);
            }
        }
    } else {
        if args.devices.is_none() && mode == AuthMode::AuthString {
            return Err(Failure::usage(
                "--auth auth-string needs the server's --data-dir (to arm the strings); \
                 use --auth null-string against a server whose devices are scheduled already, \
                 or --devices FILE with their strings",
            ));
        }
        if args.no_schedule {
            eprintln!("--no-schedule: not scheduling devices (the server must have them)");
        } else {
            eprintln!(
                "{} is not initialised: not scheduling devices (the server must have them)",
                data.root().display()
            );
        }
        Vec::new()
    };

    let result = enroll(data, &args, given, targets, phone_key, mode, mic.as_ref());
    if let Some(ca) = mic {
        ca.finish();
    }
    remove_added(data, &args, &added);
    result
}

/// A device a phone enrolls as, and its authentication string (none: the
/// null string) or the certificate it authenticates with (its MIC, or the
/// LSC of a first pass).
#[derive(Clone)]
struct Target {
    name: DeviceName,
    string: Option<AuthString>,
    certificate: Option<CertificateCredentials>,
}

/// SEP + 12 hex digits of FIRST..FIRST+N, without strings.
fn index_targets(first: u64, phones: u32) -> Result<Vec<Target>, Failure> {
    let n = usize::try_from(phones).map_err(Failure::usage)?;
    (0..n)
        .map(|i| {
            device_name(first, i)
                .map(|name| Target {
                    name,
                    string: None,
                    certificate: None,
                })
                .map_err(Failure::usage)
        })
        .collect()
}

/// The devices of `--devices FILE`: CSV `name[,string]`, an optional
/// header line. The strings are never repeated in a message.
fn read_devices(path: &Path) -> Result<Vec<Target>, Failure> {
    let text = std::fs::read(path).map_err(|e| Failure::new(format!("{}: {e}", path.display())))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_slice());
    let mut targets = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, record) in reader.records().enumerate() {
        let at = |why: String| Failure::usage(format!("{} line {}: {why}", path.display(), i + 1));
        let record = record.map_err(|e| at(e.to_string()))?;
        let first = record.get(0).map(str::trim).unwrap_or_default();
        let first = first.trim_start_matches('\u{feff}');
        if record.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        if i == 0
            && ["name", "device name"]
                .iter()
                .any(|h| first.eq_ignore_ascii_case(h))
        {
            continue;
        }
        if record.len() > 2 {
            return Err(at(format!("{} cells: give name[,string]", record.len())));
        }
        let name = DeviceName::parse(first).map_err(|e| at(e.to_string()))?;
        let string = record
            .get(1)
            .map(|c| from_spreadsheet_cell(c.trim()))
            .filter(|c| !c.is_empty())
            .map(|c| {
                c.parse::<AuthString>().map_err(|e| {
                    // The error never repeats the digits.
                    at(format!("the authentication string of {name}: {e}"))
                })
            })
            .transpose()?;
        if !seen.insert(name.clone()) {
            return Err(at(format!("{name} is named twice")));
        }
        targets.push(Target {
            name,
            string,
            certificate: None,
        });
    }
    if targets.is_empty() {
        return Err(Failure::usage(format!("{}: no devices", path.display())));
    }
    Ok(targets)
}

/// Removes the devices loadgen added to the database of a server it did
/// not spawn, unless --keep. Tells what it did; a device it cannot remove
/// (a session still holds it) is named, and does not fail the run.
fn remove_added(data: &DataDir, args: &LoadgenArgs, added: &[DeviceName]) {
    if added.is_empty() || args.spawn_server {
        return;
    }
    if args.keep {
        eprintln!("kept the {} devices loadgen added (--keep)", added.len());
        return;
    }
    let store = match data.open_database() {
        Ok(store) => store,
        Err(e) => {
            eprintln!(
                "warning: the {} devices loadgen added are not removed: {e}",
                added.len()
            );
            return;
        }
    };
    let next = AtomicUsize::new(0);
    let threads = 16.min(added.len());
    // Several threads at once: their removals share the store's commits.
    let failures: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut failures = Vec::new();
                    while let Some(name) = added.get(next.fetch_add(1, Ordering::Relaxed)) {
                        if let Err(e) = store.remove(name, SystemTime::now()) {
                            failures.push(format!("{name}: {e}"));
                        }
                    }
                    failures
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| {
                w.join()
                    .unwrap_or_else(|_| vec!["a removal thread panicked".to_owned()])
            })
            .collect()
    });
    eprintln!(
        "removed the {} devices loadgen added (--keep keeps them)",
        added.len() - failures.len()
    );
    for failure in failures.iter().take(REASONS_KEPT) {
        eprintln!("warning: not removed: {failure}");
    }
    if failures.len() > REASONS_KEPT {
        eprintln!(
            "warning: {} more not removed",
            failures.len() - REASONS_KEPT
        );
    }
}

/// Starts the server if asked, enrolls the phones, stops the server.
fn enroll(
    data: &DataDir,
    args: &LoadgenArgs,
    given: Option<ServerList>,
    mut targets: Vec<Target>,
    phone_key: KeySpec,
    mode: AuthMode,
    mic: Option<&mic::MicCa>,
) -> Result<Outcome, Failure> {
    let phones = targets.len();
    let cert_path = args
        .capf_cert
        .clone()
        .unwrap_or_else(|| data.path(capf_ca::CERT_FILE));
    let trusted = load_certificates(&cert_path)?;
    let pool = key_pool(phone_key, phones)?;
    if let Some(ca) = mic {
        let started = Instant::now();
        ca.issue(&mut targets, &pool)?;
        eprintln!(
            "issued {phones} {phone_key} MICs ({:.1} s)",
            started.elapsed().as_secs_f64()
        );
    }

    if args.hold {
        // Before the server starts: it inherits the limit.
        raise_open_files(u64::try_from(phones).unwrap_or(u64::MAX).saturating_mul(2) + 1024);
    }
    let spawned = if args.spawn_server {
        let sessions = args.concurrency.max(256).max(if args.hold {
            u32::try_from(phones).unwrap_or(u32::MAX)
        } else {
            0
        });
        Some(spawn_server(data, sessions)?)
    } else {
        None
    };
    let servers = match (&spawned, given) {
        (Some(s), _) => ServerList::parse(std::slice::from_ref(&s.addr)),
        (None, Some(list)) => Ok(list),
        (None, None) => Err(Failure::usage("give --server or --spawn-server")),
    };
    let servers = match servers {
        Ok(list) => list,
        Err(e) => {
            if let Some(s) = spawned {
                s.stop();
            }
            return Err(e);
        }
    };

    let result = drive(
        data,
        args,
        &servers,
        trusted,
        pool,
        targets,
        spawned.as_ref(),
        mode,
        phone_key,
    );
    if let Some(s) = spawned {
        s.stop();
    }
    result
}

/// Inserts (or re-schedules) the devices, several threads at once (their
/// transactions share fsyncs through the store's group commit), each with
/// its string (auth-string), or else `mode` (the null string or an
/// existing-certificate mode). Returns the devices it added (which did not
/// exist), also when it then failed.
fn schedule_devices(
    data: &DataDir,
    targets: &[Target],
    key: KeySpec,
    mode: AuthMode,
) -> (Vec<DeviceName>, Result<(), Failure>) {
    let store = match data.open_database() {
        Ok(store) => store,
        Err(e) => return (Vec::new(), Err(e.into())),
    };
    let next = AtomicUsize::new(0);
    let threads = 16.min(targets.len());
    let (added, errors): (Vec<Vec<DeviceName>>, Vec<Option<String>>) =
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        let mut added = Vec::new();
                        while let Some(target) = targets.get(next.fetch_add(1, Ordering::Relaxed)) {
                            match schedule_one(&store, target, key, mode) {
                                Ok(true) => added.push(target.name.clone()),
                                Ok(false) => {}
                                Err(e) => return (added, Some(e)),
                            }
                        }
                        (added, None)
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| {
                    w.join().unwrap_or_else(|_| {
                        (Vec::new(), Some("a scheduling thread panicked".to_owned()))
                    })
                })
                .unzip()
        });
    let added = added.into_iter().flatten().collect();
    match errors.into_iter().flatten().next() {
        Some(e) => (added, Err(Failure::new(format!("scheduling devices: {e}")))),
        None => (added, Ok(())),
    }
}

/// Schedules one device for install; `true` if it added it.
fn schedule_one(
    store: &crate::store::Store,
    target: &Target,
    key: KeySpec,
    mode: AuthMode,
) -> Result<bool, String> {
    let now = SystemTime::now();
    let name = &target.name;
    let mode = if target.string.is_some() {
        AuthMode::AuthString
    } else if mode == AuthMode::AuthString {
        AuthMode::NullString
    } else {
        mode
    };
    let added = store.load(name).map_err(|e| e.to_string())?.is_none();
    if added {
        store
            .insert(&Device::new(name.clone(), mode), now)
            .map_err(|e| e.to_string())?;
    }
    let edit = DeviceEdit {
        description: Some("capf loadgen".to_owned()),
        auth_mode: Some(mode),
        key: Some(Some(key)),
        auth_string: target.string.clone(),
        operation: Some(Operation::InstallUpgrade),
        ..DeviceEdit::default()
    };
    store
        .modify(name, &edit, now)
        .map(|_| added)
        .map_err(|e| e.to_string())
}

fn device_name(first: u64, i: usize) -> Result<DeviceName, String> {
    let index = first
        .checked_add(u64::try_from(i).map_err(|e| e.to_string())?)
        .filter(|n| *n <= 0xFFFF_FFFF_FFFF)
        .ok_or("device index beyond 12 hex digits")?;
    DeviceName::parse(&format!("SEP{index:012X}")).map_err(|e| e.to_string())
}

/// The CAPF certificates in a PEM file, or in `capf.pem` of a directory.
fn load_certificates(path: &Path) -> Result<Vec<CaCertificate>, Failure> {
    let file = if path.is_dir() {
        path.join(capf_ca::CERT_FILE)
    } else {
        path.to_path_buf()
    };
    let text = std::fs::read_to_string(&file).map_err(|e| {
        Failure::new(format!(
            "cannot read the CAPF certificate {}: {e} (give --capf-cert)",
            file.display()
        ))
    })?;
    CaCertificate::all_from_pem(&text, &file.display().to_string())
        .map_err(|e| Failure::new(format!("{}: {e}", file.display())))
}

/// min(N, 64) keys, made on every core.
fn key_pool(spec: KeySpec, phones: usize) -> Result<Vec<PrivateKey>, Failure> {
    let size = phones.min(64);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let keys: Result<Vec<Vec<PrivateKey>>, String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..cores.min(size))
            .map(|_| {
                scope.spawn(|| -> Result<Vec<PrivateKey>, String> {
                    let mut out = Vec::new();
                    while next.fetch_add(1, Ordering::Relaxed) < size {
                        out.push(PrivateKey::generate(spec).map_err(|e| e.to_string())?);
                    }
                    Ok(out)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .map_err(|_| "a key thread panicked".to_owned())
                    .and_then(|r| r)
            })
            .collect()
    });
    let keys: Vec<PrivateKey> = keys.map_err(Failure::new)?.into_iter().flatten().collect();
    eprintln!(
        "generated {} {spec} phone keys ({:.1} s)",
        keys.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(keys)
}

/// Runs `capf serve --listen 127.0.0.1:0` on the data directory and waits
/// for the "listening on ADDR" of its log (its warnings go on to ours).
fn spawn_server(data: &DataDir, max_sessions: u32) -> Result<Spawned, Failure> {
    let exe = std::env::current_exe()?;
    let mut command = Command::new(exe);
    // The same database; through the environment, so that a password in
    // the address is not on a command line for `ps` to show.
    if let Some(database) = data.database() {
        command.env("CAPF_DATABASE_URL", &database.url);
        if let Some(ca) = &database.ca_file {
            command.env("CAPF_DATABASE_CA", ca);
        }
    }
    let mut child = command
        .arg("--data-dir")
        .arg(data.root())
        .args(["serve", "--listen", "127.0.0.1:0"])
        // Every phone comes from 127.0.0.1: lift the per-address limit too.
        .arg("--max-sessions")
        .arg(max_sessions.to_string())
        .arg("--max-per-address")
        .arg(max_sessions.to_string())
        .env("RUST_LOG", "warn,capf::commands::serve=info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let Some(log) = child.stderr.take() else {
        let _ = child.kill();
        return Err(Failure::new("capf serve: no log"));
    };
    let mut lines = BufReader::new(log).lines();
    let mut addr = None;
    for line in lines.by_ref() {
        let Ok(line) = line else { break };
        if let Some((_, rest)) = line.split_once("listening on ") {
            addr = rest.split_whitespace().next().map(str::to_owned);
            break;
        }
        eprintln!("{line}");
    }
    let Some(addr) = addr else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(Failure::new(
            "capf serve did not say where it listens (see its messages above)",
        ));
    };
    // Pass the rest of its log on, so that it never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            eprintln!("{line}");
        }
    });
    eprintln!("started capf serve (pid {}) on {addr}", child.id());
    Ok(Spawned { child, addr })
}

/// utime + stime of a process in seconds (Linux).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 14 (utime) and 15 (stime) of stat(5); `rest` starts at field 3.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // The unit of utime and stime: sysconf(_SC_CLK_TCK) (USER_HZ).
    let ticks = rustix::param::clock_ticks_per_second();
    (ticks > 0).then(|| (utime + stime) / ticks as f64)
}

/// A /proc/PID/status field in KiB (VmHWM, VmRSS).
fn status_kib(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Raises the open-file limit to its hard limit (prlimit(1); no unsafe
/// code here), for many connections at once.
fn raise_open_files(target: u64) {
    let pid = std::process::id().to_string();
    let _ = Command::new("prlimit")
        .args(["--pid", &pid, &format!("--nofile={target}:")])
        .stderr(Stdio::null())
        .status();
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    // Nearest rank.
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.clamp(1, sorted.len()) - 1)
        .copied()
        .unwrap_or_default()
}

/// Runs the phones; with --auth lsc, a first pass (not timed) gives each
/// phone its LSC, and the devices are scheduled again for the timed one.
#[allow(clippy::too_many_arguments)]
fn drive(
    data: &DataDir,
    args: &LoadgenArgs,
    servers: &ServerList,
    trusted: Vec<CaCertificate>,
    pool: Vec<PrivateKey>,
    targets: Vec<Target>,
    spawned: Option<&Spawned>,
    mode: AuthMode,
    phone_key: KeySpec,
) -> Result<Outcome, Failure> {
    let pool = Arc::new(pool);
    let server_pid = spawned.map(|s| s.pid().to_string());
    let mut first = None;
    let targets = if mode == AuthMode::ExistingCertificateLscFirst {
        eprintln!(
            "first pass (not timed): {} phones enroll by the null string",
            targets.len()
        );
        let targets = Arc::new(targets);
        let pass = run_pass(
            args,
            servers,
            &trusted,
            pool.clone(),
            targets.clone(),
            server_pid.clone(),
            false,
        )?;
        let mut holding: Vec<Target> = Vec::with_capacity(targets.len());
        for sample in &pass.samples {
            if let (Some((der, key)), Some(target)) =
                (sample.installed.as_ref(), targets.get(sample.index))
            {
                holding.push(Target {
                    certificate: Some(CertificateCredentials {
                        kind: CertificateKind::Lsc,
                        certificate_der: bytes::Bytes::copy_from_slice(der),
                        key: key.clone(),
                        sudi: None,
                    }),
                    ..target.clone()
                });
            }
        }
        let failed = pass.samples.len() - holding.len();
        eprintln!(
            "first pass: {} of {} phones hold an LSC ({:.1} s)",
            holding.len(),
            pass.samples.len(),
            pass.wall.as_secs_f64()
        );
        for why in pass
            .samples
            .iter()
            .filter(|s| s.installed.is_none())
            .filter_map(|s| s.error.as_deref())
            .take(REASONS_KEPT)
        {
            eprintln!("  first pass failed: {why}");
        }
        if holding.is_empty() {
            return Err(Failure::new(
                "no phone got an LSC in the first pass: nothing to re-enroll",
            ));
        }
        let started = Instant::now();
        let (_, scheduled) = schedule_devices(data, &holding, phone_key, mode);
        scheduled?;
        eprintln!(
            "scheduled {} devices again (install, {mode}) ({:.1} s)",
            holding.len(),
            started.elapsed().as_secs_f64()
        );
        first = Some(FirstPass {
            succeeded: holding.len(),
            failed,
            wall: pass.wall,
        });
        holding
    } else {
        targets
    };
    let pass = run_pass(
        args,
        servers,
        &trusted,
        pool,
        Arc::new(targets),
        server_pid,
        args.hold,
    )?;
    report(args, servers, pass, first, spawned.is_some(), mode)
}

/// The untimed first pass of --auth lsc.
struct FirstPass {
    succeeded: usize,
    failed: usize,
    wall: Duration,
}

/// What a pass of the phones measured.
struct Pass {
    samples: Vec<Sample>,
    /// --hold: phones waiting, the server's RSS then, when all waited.
    held: Option<(usize, Option<u64>, Duration)>,
    wall: Duration,
    concurrency: usize,
    tally: Arc<Vec<ServerTally>>,
    server_cpu: Option<f64>,
    own_cpu: Option<f64>,
    peak_kib: Option<u64>,
}

/// One pass of the phones over `targets`, measured.
fn run_pass(
    args: &LoadgenArgs,
    servers: &ServerList,
    trusted: &[CaCertificate],
    pool: Arc<Vec<PrivateKey>>,
    targets: Arc<Vec<Target>>,
    server_pid: Option<String>,
    hold: bool,
) -> Result<Pass, Failure> {
    let n = targets.len();
    // --hold: every phone must be connected at once.
    let concurrency = if hold {
        n
    } else {
        usize::try_from(args.concurrency)
            .map_err(Failure::usage)?
            .min(n)
    };
    let timeout = Duration::from_secs(args.timeout);
    let cursor = Arc::new(AtomicUsize::new(0));
    let client = {
        let pool = pool.clone();
        let cursor = cursor.clone();
        PhoneClient::new(client_config(trusted, args.resume_tls)?)
            .with_connect_timeout(timeout)
            .with_key_source(move |spec| {
                let i = cursor.fetch_add(1, Ordering::Relaxed);
                let key = pool.get(i % pool.len().max(1))?;
                (key.spec() == spec).then(|| key.clone())
            })
    };
    let client = Arc::new(client);
    let connector = TlsConnector::from(Arc::new(client_config(trusted, args.resume_tls)?));
    let servers_shared = Arc::new(servers.clone());
    let tally: Arc<Vec<ServerTally>> =
        Arc::new((0..servers.len()).map(|_| ServerTally::default()).collect());
    let policy = RetryPolicy {
        retries: args.retries,
        interval: Duration::from_secs(args.retry_interval),
    };
    let rotate = args.server_order == "rotate";
    let bar = ProgressBar::new(u64::try_from(n).unwrap_or(u64::MAX));
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} {per_sec} {msg}")
            .map_err(Failure::new)?
            .progress_chars("=> "),
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let cpu_before = server_pid.as_deref().and_then(cpu_seconds);
    let own_before = cpu_seconds("self");
    let started = Instant::now();
    let (samples, held) = runtime.block_on(async {
        let next = Arc::new(AtomicUsize::new(0));
        // --hold: each phone reports when it waits in key generation, and
        // all stop once every phone waits (or the time is up).
        let waiting = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Semaphore::new(HOLD_CONNECTING));
        let (release_tx, release_rx) = tokio::sync::watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..concurrency {
            let (client, connector, targets, next, bar, servers, tally) = (
                client.clone(),
                connector.clone(),
                targets.clone(),
                next.clone(),
                bar.clone(),
                servers_shared.clone(),
                tally.clone(),
            );
            let (waiting, release_rx) = (waiting.clone(), release_rx.clone());
            let gate = gate.clone();
            tasks.spawn(async move {
                let mut samples = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let begun = Instant::now();
                    let mut installed = None;
                    let (error, enrolled_on, attempts) = match targets.get(i) {
                        None => (Some("no such device".to_owned()), None, 0),
                        Some(Target {
                            name,
                            string,
                            certificate,
                        }) => {
                            let credentials = match (certificate, string) {
                                (Some(c), _) => Credentials::Certificate(Box::new(c.clone())),
                                (None, Some(s)) => Credentials::AuthString(s.clone()),
                                (None, None) => Credentials::NullString,
                            };
                            let mut config = PhoneConfig::new(name.as_str(), credentials)
                                .with_reply_timeout(timeout);
                            // A phone that holds an LSC returns it when asked.
                            if let Some(c) = certificate
                                && c.kind == CertificateKind::Lsc
                            {
                                config = config.with_lsc(c.certificate_der.clone());
                            }
                            let start = walk::start_for(i, servers.len(), rotate);
                            if hold {
                                let error = hold_one(
                                    &connector,
                                    servers.get(start),
                                    config,
                                    timeout,
                                    &waiting,
                                    release_rx.clone(),
                                    &gate,
                                )
                                .await;
                                (error, None, 1)
                            } else {
                                let mut phone = LoadgenPhone {
                                    client: &client,
                                    config,
                                    policy,
                                    tally: &tally,
                                    stored_lsc: false,
                                    installed: None,
                                };
                                let walked =
                                    walk::walk(&mut phone, &servers, start, policy.interval).await;
                                installed = phone.installed.take();
                                match walked {
                                    Ok(end) => match &end.last.outcome {
                                        PhoneOutcome::Succeeded(PhoneSuccess::Installed {
                                            ..
                                        }) => (
                                            None,
                                            end.last.server.as_ref().map(|(i, _)| *i),
                                            end.attempts,
                                        ),
                                        PhoneOutcome::Succeeded(
                                            PhoneSuccess::NothingScheduled { .. },
                                        ) if phone.stored_lsc => (
                                            None,
                                            end.last.server.as_ref().map(|(i, _)| *i),
                                            end.attempts,
                                        ),
                                        _ => (
                                            Some(format!("{name}: {}", end.last.failure_text())),
                                            None,
                                            end.attempts,
                                        ),
                                    },
                                    Err(e) => (Some(format!("{name}: {}", e.message)), None, 0),
                                }
                            }
                        }
                    };
                    bar.inc(1);
                    samples.push(Sample {
                        latency: begun.elapsed(),
                        // Only a phone that succeeded keeps its LSC.
                        installed: installed.filter(|_| error.is_none()),
                        error,
                        enrolled_on,
                        attempts,
                        index: i,
                    });
                }
                samples
            });
        }
        let mut held = None;
        if hold {
            // Wait until every phone waits (or a minute passes), measure,
            // then let them go.
            let deadline = Instant::now() + Duration::from_secs(120);
            while waiting.load(Ordering::Relaxed) < n && Instant::now() < deadline {
                bar.set_message(format!("{} waiting", waiting.load(Ordering::Relaxed)));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let rss = server_pid
                .as_deref()
                .and_then(|pid| status_kib(pid, "VmRSS"));
            held = Some((waiting.load(Ordering::Relaxed), rss, started.elapsed()));
            let _ = release_tx.send(true);
        }
        let mut samples = Vec::with_capacity(n);
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(s) => samples.extend(s),
                Err(e) => samples.push(Sample {
                    latency: Duration::ZERO,
                    error: Some(format!("a phone task failed: {e}")),
                    enrolled_on: None,
                    attempts: 0,
                    index: usize::MAX,
                    installed: None,
                }),
            }
        }
        (samples, held)
    });
    let wall = started.elapsed();
    bar.finish_and_clear();
    let cpu_after = server_pid.as_deref().and_then(cpu_seconds);
    let own_after = cpu_seconds("self");
    let peak_kib = server_pid
        .as_deref()
        .and_then(|pid| status_kib(pid, "VmHWM"));
    Ok(Pass {
        samples,
        held,
        wall,
        concurrency,
        tally,
        server_cpu: cpu_before.zip(cpu_after).map(|(b, a)| a - b),
        own_cpu: own_before.zip(own_after).map(|(b, a)| a - b),
        peak_kib,
    })
}

/// Prints the figures of the timed pass.
/// What `capf loadgen --json` prints. The server's CPU and memory are
/// there only when loadgen spawned the server (it cannot see another's).
#[derive(Debug, Serialize)]
struct LoadgenJson<'a> {
    server: &'a str,
    servers: Vec<ServerJson<'a>>,
    server_order: &'a str,
    retries: u32,
    retry_interval_seconds: u64,
    retried_attempts: u64,
    phones_retried: usize,
    phones: usize,
    concurrency: usize,
    auth: &'a str,
    /// What the timed pass did, in words.
    timed: &'a str,
    phone_key: &'a str,
    succeeded: usize,
    failed: usize,
    first_failures: Vec<&'a str>,
    wall_seconds: f64,
    enrollments_per_second: f64,
    latency_ms: LatencyJson,
    loadgen_cpu_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_cpu_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_cpu_seconds_per_enrollment: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    enrollments_per_server_cpu_second: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_peak_rss_kib: Option<u64>,
    /// `--auth lsc`: the untimed first pass that gave the phones their LSCs.
    #[serde(skip_serializing_if = "Option::is_none")]
    first_pass: Option<FirstPassJson>,
    /// `--hold`: the phones held waiting.
    #[serde(skip_serializing_if = "Option::is_none")]
    held: Option<HeldJson>,
}

#[derive(Debug, Serialize)]
struct ServerJson<'a> {
    server: &'a str,
    enrolled: usize,
    sessions: usize,
    unreachable: usize,
}

#[derive(Debug, Serialize)]
struct LatencyJson {
    p50: f64,
    p99: f64,
    max: f64,
}

#[derive(Debug, Serialize)]
struct FirstPassJson {
    auth: &'static str,
    succeeded: usize,
    failed: usize,
    wall_seconds: f64,
}

#[derive(Debug, Serialize)]
struct HeldJson {
    waiting: usize,
    server_rss_kib: Option<u64>,
    seconds_to_all_waiting: f64,
}

fn report(
    args: &LoadgenArgs,
    servers: &ServerList,
    pass: Pass,
    first: Option<FirstPass>,
    spawned: bool,
    mode: AuthMode,
) -> Result<Outcome, Failure> {
    let Pass {
        samples,
        held,
        wall,
        concurrency,
        tally,
        server_cpu,
        own_cpu,
        peak_kib,
    } = pass;
    let n = samples.len();
    // Which authentication the timed pass did.
    let timed = match (mode, &args.devices) {
        (_, Some(_)) => "enrollments, each device by its string in --devices (or the null string)",
        (AuthMode::ExistingCertificateLscFirst, _) => {
            "re-enrollments by LSC (lsc-first, SHA-1 and SHA-512 proofs)"
        }
        (AuthMode::ExistingCertificateMicFirst, _) => {
            "enrollments by MIC (mic-first, SHA-1 and SHA-512 proofs)"
        }
        (AuthMode::NullString, _) => "enrollments by the null string",
        (AuthMode::AuthString, _) => "enrollments by authentication string",
    };
    let mut latencies: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
    latencies.sort_unstable();
    let failures: Vec<&str> = samples.iter().filter_map(|s| s.error.as_deref()).collect();
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &failures {
        // Group by the text after the device name.
        let why = f.split_once(": ").map_or(*f, |(_, why)| why);
        *reasons.entry(why).or_default() += 1;
    }
    let ok = samples.len() - failures.len();
    let per_sec = ok as f64 / wall.as_secs_f64().max(1e-9);
    let p50 = percentile(&latencies, 50.0);
    let p99 = percentile(&latencies, 99.0);
    let per_cpu_sec = server_cpu.filter(|c| *c > 0.0).map(|c| ok as f64 / c);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut enrolled_on = vec![0usize; servers.len()];
    for i in samples.iter().filter_map(|s| s.enrolled_on) {
        if let Some(count) = enrolled_on.get_mut(i) {
            *count += 1;
        }
    }
    let per_server: Vec<(&str, usize, usize, usize)> = servers
        .addresses()
        .iter()
        .zip(enrolled_on)
        .zip(tally.iter())
        .map(|((address, enrolled), t)| {
            (
                address.as_str(),
                enrolled,
                t.sessions.load(Ordering::Relaxed),
                t.unreachable.load(Ordering::Relaxed),
            )
        })
        .collect();
    let retried_attempts: u64 = samples
        .iter()
        .map(|s| u64::from(s.attempts.saturating_sub(1)))
        .sum();
    let phones_retried = samples.iter().filter(|s| s.attempts > 1).count();

    if args.json {
        let first_failures: Vec<&str> = failures.iter().take(REASONS_KEPT).copied().collect();
        let with_server = |value: Option<f64>| if spawned { value } else { None };
        crate::output::print_json(&LoadgenJson {
            server: servers.get(0),
            servers: per_server
                .iter()
                .map(|&(server, enrolled, sessions, unreachable)| ServerJson {
                    server,
                    enrolled,
                    sessions,
                    unreachable,
                })
                .collect(),
            server_order: &args.server_order,
            retries: args.retries,
            retry_interval_seconds: args.retry_interval,
            retried_attempts,
            phones_retried,
            phones: n,
            concurrency,
            auth: if args.devices.is_some() {
                "from --devices"
            } else {
                args.auth.as_str()
            },
            timed,
            phone_key: &args.key,
            succeeded: ok,
            failed: failures.len(),
            first_failures,
            wall_seconds: wall.as_secs_f64(),
            enrollments_per_second: per_sec,
            latency_ms: LatencyJson {
                p50: ms(p50),
                p99: ms(p99),
                max: latencies.last().map_or(0.0, |d| ms(*d)),
            },
            loadgen_cpu_seconds: own_cpu,
            server_cpu_seconds: with_server(server_cpu),
            server_cpu_seconds_per_enrollment: with_server(
                server_cpu.map(|c| c / (ok.max(1) as f64)),
            ),
            enrollments_per_server_cpu_second: with_server(per_cpu_sec),
            server_peak_rss_kib: peak_kib.filter(|_| spawned),
            first_pass: first.as_ref().map(|f| FirstPassJson {
                auth: "null-string",
                succeeded: f.succeeded,
                failed: f.failed,
                wall_seconds: f.wall.as_secs_f64(),
            }),
            held: held.map(|(waiting, rss, at)| HeldJson {
                waiting,
                server_rss_kib: rss,
                seconds_to_all_waiting: at.as_secs_f64(),
            }),
        })?;
    } else {
        println!(
            "{ok} of {n} {} ({} phones at once, {}, {} phone keys) in {:.2} s",
            if args.hold { "held" } else { "enrolled" },
            concurrency,
            if args.devices.is_some() {
                "strings from --devices"
            } else {
                args.auth.as_str()
            },
            args.key,
            wall.as_secs_f64()
        );
        println!("  timed:          {timed}");
        if let Some(f) = &first {
            println!(
                "  first pass:     {} of {} enrolled by the null string in {:.2} s (not timed)",
                f.succeeded,
                f.succeeded + f.failed,
                f.wall.as_secs_f64()
            );
        }
        println!("  enrollments/s:  {per_sec:.0}");
        println!(
            "  latency:        p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            ms(p50),
            ms(p99),
            latencies.last().map_or(0.0, |d| ms(*d))
        );
        if let Some(c) = own_cpu {
            println!("  loadgen CPU:    {c:.2} s");
        }
        if spawned {
            if let Some(c) = server_cpu {
                println!(
                    "  server CPU:     {c:.2} s = {:.3} ms per enrollment ({} per CPU-second)",
                    c * 1000.0 / (ok.max(1) as f64),
                    per_cpu_sec.map_or("-".to_owned(), |p| format!("{p:.0}"))
                );
            }
            if let Some(k) = peak_kib {
                println!("  server peak RSS: {:.1} MiB", k as f64 / 1024.0);
            }
        }
        if let Some((waiting, rss, at)) = held {
            println!(
                "  held:           {waiting} phones waiting in key generation after {:.1} s; \
                 server RSS then {}",
                at.as_secs_f64(),
                rss.map_or("-".to_owned(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
            );
        }
        for (server, enrolled, sessions, unreachable) in &per_server {
            println!(
                "  on {server}: {enrolled} enrolled, {sessions} sessions, \
                 {unreachable} times unreachable"
            );
        }
        println!("  retried:        {retried_attempts} attempts ({phones_retried} phones)");
        println!("  failures:       {}", failures.len());
        for (why, count) in reasons.iter().take(REASONS_KEPT) {
            println!("    {count} x {why}");
        }
    }
    Ok(if failures.is_empty() {
        Outcome::Done
    } else {
        Outcome::NotDone
    })
}

/// One phone of --hold, a lean loop over `PhoneSession`: runs until the
/// server asks for a key, counts itself as waiting, and closes the
/// connection without answering once released. `None` when it got there.
async fn hold_one(
    connector: &TlsConnector,
    server: &str,
    config: PhoneConfig,
    timeout: Duration,
    waiting: &AtomicUsize,
    mut release: tokio::sync::watch::Receiver<bool>,
    gate: &tokio::sync::Semaphore,
) -> Option<String> {
    // Ramp up: at most HOLD_CONNECTING phones connect at once (the server
    // bounds connections in their handshake).
    let Ok(permit) = gate.acquire().await else {
        return Some("closed".to_owned());
    };
    let tcp = match tokio::time::timeout(timeout, TcpStream::connect(server)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return Some(format!("connect: {e}")),
        Err(_) => return Some("connect: timed out".to_owned()),
    };
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from("capf").map_or(
        ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
        |n| n.to_owned(),
    );
    let mut tls = match tokio::time::timeout(timeout, connector.connect(name, tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => return Some(format!("TLS handshake: {e}")),
        Err(_) => return Some("TLS handshake: timed out".to_owned()),
    };
    drop(permit);
    let mut session = PhoneSession::new(config, SystemTime::now());
    let mut codec = FrameCodec::new();
    let mut inbound = BytesMut::with_capacity(1024);
    let mut outbound = BytesMut::with_capacity(1024);
    loop {
        while let Some(t) = session.poll_transmit() {
            outbound.clear();
            if t.encode(&mut outbound).is_err() || tls.write_all(&outbound).await.is_err() {
                return Some("connection lost".to_owned());
            }
        }
        let _ = tls.flush().await;
        match session.poll_event() {
            Some(PhoneEvent::GenerateKey(_)) => {
                waiting.fetch_add(1, Ordering::Relaxed);
                let _ = release.wait_for(|r| *r).await;
                return None;
            }
            Some(PhoneEvent::Finished) | None => {}
            Some(other) => return Some(format!("unexpected {other:?}")),
        }
        if session.is_finished() {
            return Some(format!(
                "never asked for a key: {}",
                session
                    .outcome()
                    .map_or("no outcome".to_owned(), |o| o.to_string())
            ));
        }
        match codec.decode(&mut inbound) {
            Ok(Some(frame)) => {
                match Message::from_frame(&frame) {
                    Ok(m) => session.handle_message(SystemTime::now(), frame.session_id, m),
                    Err(e) => session.handle_malformed(SystemTime::now(), &e),
                }
                continue;
            }
            Ok(None) => {}
            Err(e) => return Some(format!("bad frame: {e}")),
        }
        match tokio::time::timeout(timeout, tls.read_buf(&mut inbound)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some("connection lost".to_owned()),
            Ok(Ok(_)) => {}
            Err(_) => return Some("timed out waiting for the server".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_percentiles() {
        assert_eq!(
            device_name(0, 255).map(|n| n.to_string()).ok(),
            Some("SEP0000000000FF".to_owned())
        );
        assert!(device_name(0xFFFF_FFFF_FFFF, 1).is_err());
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&v, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&[], 99.0), Duration::ZERO);
    }

    #[test]
    fn own_cpu_is_readable() {
        assert!(cpu_seconds("self").is_some());
        assert!(status_kib("self", "VmHWM").is_some());
    }
}
