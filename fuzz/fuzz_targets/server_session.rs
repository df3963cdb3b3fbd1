//! The server session fed arbitrary message sequences (the frames decoded
//! from the input), with a fixed device store: it never panics, sends
//! nothing after END_SESSION, and never sends a certificate that the store
//! has no record of.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use capf_auth::{AuthMode, AuthString, Operation};
use capf_ca::{CapfIdentity, EcCurve, IdentityParams, Issuer, KeySpec, TrustStore};
use capf_operations::{
    Device, DeviceName, MemoryStore, OperatorStore, ServerConfig, ServerSession, ServiceParameters,
    SessionDriver,
};
use capf_wire::{FrameCodec, Message};
use libfuzzer_sys::fuzz_target;

struct Fixture {
    issuer: Issuer,
    config: Arc<ServerConfig>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let identity = CapfIdentity::generate(
            &IdentityParams { key: KeySpec::Ec(EcCurve::P256), ..Default::default() },
            now,
        )
        .expect("identity");
        let issuer = identity.issuer().expect("issuer");
        let config = Arc::new(ServerConfig::new(
            ServiceParameters { default_key: KeySpec::Ec(EcCurve::P256), ..Default::default() },
            TrustStore::for_issuer(&issuer),
        ));
        Fixture { issuer, config }
    })
}

fn store() -> MemoryStore {
    let store = MemoryStore::new();
    let devices = [
        ("SEP001122334455", AuthMode::AuthString, Operation::InstallUpgrade),
        ("SEP0011223344AA", AuthMode::NullString, Operation::InstallUpgrade),
        ("SEP001122334466", AuthMode::NullString, Operation::Delete),
        ("SEP001122334477", AuthMode::ExistingCertificateLscFirst, Operation::Troubleshoot),
        ("SEP001122334488", AuthMode::NullString, Operation::None),
    ];
    for (name, mode, op) in devices {
        let mut d = Device::new(DeviceName::parse(name).expect("name"), mode);
        d.policy.rearm("123456".parse::<AuthString>().expect("string"));
        d.policy.certificates.lsc = true;
        let _ = d.schedule(op, None);
        let _ = store.insert(&d, SystemTime::UNIX_EPOCH);
    }
    store
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let store = store();
    let mut now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut session = ServerSession::new(1, f.config.clone(), now);
    let mut driver = SessionDriver::new(&store, &f.issuer, Duration::from_secs(3600));
    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::from(data);
    let mut ended = false;
    let mut steps = 0;
    loop {
        driver.service(&mut session, now);
        while let Some(t) = session.poll_transmit() {
            assert!(!ended, "sent {} after END_SESSION", t.message.command());
            if let Message::StoreCertificateRequest(req) = &t.message {
                let name = session.device().map(|d| d.name.clone()).expect("a device");
                let issued = store.issued_certificates(&name).expect("store");
                assert!(
                    issued.iter().any(|r| r.certificate.der == req.certificate.der.as_ref()),
                    "certificate sent without its record"
                );
            }
            ended |= matches!(t.message, Message::EndSession(_));
        }
        steps += 1;
        if steps > 64 {
            break;
        }
        match codec.decode(&mut buf) {
            Ok(Some(frame)) => match Message::from_frame(&frame) {
                // The first byte of the session id decides whether the
                // fuzzer uses the right one.
                Ok(m) => {
                    let sid = if frame.session_id & 0xff00_0000 == 0 { 1 } else { frame.session_id };
                    session.handle_message(now, sid, m)
                }
                Err(e) => session.handle_malformed(now, &e),
            },
            Ok(None) => {
                // Input exhausted: let time run out.
                if let Some(deadline) = session.poll_timeout() {
                    now = deadline;
                    session.handle_timeout(now);
                } else {
                    break;
                }
            }
            Err(e) => {
                session.handle_malformed(now, &e);
                buf.clear();
            }
        }
    }
});
