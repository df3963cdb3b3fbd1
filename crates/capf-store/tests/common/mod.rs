//! Shared helpers: a CAPF identity, devices, golden transcripts from
//! `testdata/vectors/` and a loop that runs a server session against a
//! store (as capf-operations' tests do with MemoryStore).
#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use capf_operations::capf_auth::{AuthMode, AuthString, Operation};
use capf_operations::capf_ca::{
    CapfIdentity, EcCurve, IdentityParams, Issuer, KeySpec, TrustStore,
};
use capf_operations::capf_wire::{Frame, Message};
use capf_operations::{
    Device, DeviceName, DeviceStore, ServerConfig, ServerSession, ServiceParameters, SessionDriver,
    SessionOutcome,
};

pub fn name(s: &str) -> DeviceName {
    DeviceName::parse(s).unwrap()
}

pub fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

/// 2026-12-01T00:00:00Z: inside the validity of the vectors' certificates.
pub fn vector_now() -> SystemTime {
    at(1_796_083_200)
}

/// A device scheduled for `operation` in `mode`, with `string` armed.
pub fn device(n: &str, mode: AuthMode, operation: Operation, string: Option<&str>) -> Device {
    let mut d = Device::new(name(n), mode);
    if let Some(s) = string {
        d.policy.rearm(s.parse::<AuthString>().unwrap());
    }
    if operation != Operation::None {
        d.schedule(operation, None).unwrap();
    }
    d
}

/// The phone's frames of a transcript: (session id, message).
pub fn phone_frames(text: &str) -> Vec<(u32, Message)> {
    text.lines()
        .filter(|l| l.starts_with("C>S "))
        .map(|l| {
            let hex_frame = l.split_whitespace().nth(2).unwrap();
            let frame = Frame::decode_exact(&hex::decode(hex_frame).unwrap()).unwrap();
            (frame.session_id, Message::from_frame(&frame).unwrap())
        })
        .collect()
}

pub const INSTALL_PASSWORD: &str =
    include_str!("../../../../testdata/vectors/install-password.txt");

/// A P-256 CAPF identity, made once per test binary.
pub fn identity() -> &'static CapfIdentity {
    static ID: OnceLock<CapfIdentity> = OnceLock::new();
    ID.get_or_init(|| {
        CapfIdentity::generate(
            &IdentityParams {
                key: KeySpec::Ec(EcCurve::P256),
                ..Default::default()
            },
            at(1_700_000_000),
        )
        .unwrap()
    })
}

pub fn config(params: ServiceParameters) -> Arc<ServerConfig> {
    let issuer: Issuer = identity().issuer().unwrap();
    Arc::new(ServerConfig::new(params, TrustStore::for_issuer(&issuer)))
}

/// Feeds the phone's half of a transcript to a server session serviced by
/// a [`SessionDriver`] over `store`; returns the outcome.
pub fn run_transcript<S: DeviceStore>(
    store: &S,
    transcript: &str,
    params: ServiceParameters,
    now: SystemTime,
) -> SessionOutcome {
    let frames = phone_frames(transcript);
    let issuer = identity().issuer().unwrap();
    let mut driver = SessionDriver::new(store, &issuer, Duration::from_secs(3600));
    let mut session = ServerSession::new(frames[0].0, config(params), now);
    let mut outcome = driver.service(&mut session, now);
    while session.poll_transmit().is_some() {}
    for (id, message) in frames {
        if outcome.is_some() {
            break;
        }
        session.handle_message(now, id, message);
        outcome = driver.service(&mut session, now);
        while session.poll_transmit().is_some() {}
    }
    outcome.expect("the session finished")
}
