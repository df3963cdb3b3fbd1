//! Shared helpers for the capf-operations tests: transcripts, a CAPF
//! identity, devices, and a loop that runs a server session to completion.
#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use capf_operations::capf_auth::{AuthMode, AuthString, Operation};
use capf_operations::capf_ca::{
    CapfIdentity, EcCurve, IdentityParams, Issuer, KeySpec, TrustStore,
};
use capf_operations::capf_wire::{Command, Frame, Message};
use capf_operations::{
    Device, DeviceName, MemoryStore, OperatorStore, ServerConfig, ServerSession, ServiceParameters,
    SessionDriver, SessionOutcome, Transmit,
};

/// One line of a transcript.
pub struct Line {
    pub from_server: bool,
    pub command: Command,
    pub bytes: Vec<u8>,
}

impl Line {
    pub fn frame(&self) -> Frame {
        Frame::decode_exact(&self.bytes).unwrap()
    }

    pub fn message(&self) -> Message {
        Message::from_frame(&self.frame()).unwrap()
    }
}

pub fn transcript(text: &str) -> Vec<Line> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut parts = l.split_whitespace();
            let from_server = parts.next().unwrap() == "S>C";
            let command = Command::from_wire_name(parts.next().unwrap()).unwrap();
            let bytes = hex::decode(parts.next().unwrap()).unwrap();
            Line {
                from_server,
                command,
                bytes,
            }
        })
        .collect()
}

/// A transcript from `testdata/vectors/` by file name.
pub fn vector(file: &str) -> Vec<Line> {
    transcript(match file {
        "install-password.txt" => include_str!("../../../../testdata/vectors/install-password.txt"),
        "install-null-ec.txt" => include_str!("../../../../testdata/vectors/install-null-ec.txt"),
        "install-lsc-auth.txt" => include_str!("../../../../testdata/vectors/install-lsc-auth.txt"),
        "fetch.txt" => include_str!("../../../../testdata/vectors/fetch.txt"),
        "delete.txt" => include_str!("../../../../testdata/vectors/delete.txt"),
        other => panic!("no vector {other}"),
    })
}

/// 2026-12-01T00:00:00Z: inside the validity of the vectors' certificates.
pub fn vector_now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_083_200)
}

/// A P-256 CAPF identity, made once per test binary.
pub fn identity() -> &'static CapfIdentity {
    static ID: OnceLock<CapfIdentity> = OnceLock::new();
    ID.get_or_init(|| {
        CapfIdentity::generate(
            &IdentityParams {
                key: KeySpec::Ec(EcCurve::P256),
                ..Default::default()
            },
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        )
        .unwrap()
    })
}

pub fn issuer() -> Issuer {
    identity().issuer().unwrap()
}

/// The issuer of every certificate in the vectors.
pub fn vector_issuer_pem() -> &'static str {
    include_str!("../../../../testdata/vectors/capf-issuer.pem")
}

pub fn config_with(params: ServiceParameters, trust: TrustStore) -> Arc<ServerConfig> {
    Arc::new(ServerConfig::new(params, trust))
}

pub fn config() -> Arc<ServerConfig> {
    config_with(
        ServiceParameters::default(),
        TrustStore::for_issuer(&issuer()),
    )
}

pub fn name(s: &str) -> DeviceName {
    DeviceName::parse(s).unwrap()
}

/// A device scheduled for `operation`, authenticated by `mode` (with the
/// string armed for auth-string mode), asking for `key`.
pub fn device(n: &str, mode: AuthMode, operation: Operation, string: Option<&str>) -> Device {
    let mut d = Device::new(name(n), mode);
    if let Some(s) = string {
        d.policy.rearm(s.parse::<AuthString>().unwrap());
    }
    if operation != Operation::None {
        d.policy.certificates.lsc = true; // delete/troubleshoot need a certificate on record
        d.schedule(operation, None).unwrap();
    }
    d
}

/// Runs the session's events against the store until it waits for the
/// phone; returns the messages it sent and its outcome, if finished.
pub fn pump(
    session: &mut ServerSession,
    driver: &mut SessionDriver<'_, MemoryStore>,
    now: SystemTime,
) -> (Vec<Transmit>, Option<SessionOutcome>) {
    // The driver handles every event, including those its answers cause;
    // then everything the session queued is there to send.
    let outcome = driver.service(session, now);
    let mut sent = Vec::new();
    while let Some(t) = session.poll_transmit() {
        sent.push(t);
    }
    (sent, outcome)
}

pub fn store_with(devices: &[Device]) -> MemoryStore {
    let store = MemoryStore::new();
    for d in devices {
        store.insert(d, vector_now()).unwrap();
    }
    store
}
