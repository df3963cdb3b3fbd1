//! A CAPF server session and a phone session paired in memory, no network:
//! install an LSC with an authentication string, troubleshoot (fetch it
//! back), then delete it, for one device. Prints what happened.
//!
//! ```text
//! cargo run --example enroll_in_memory
//! ```

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use capf_operations::capf_auth::{AuthMode, AuthString, Operation};
use capf_operations::capf_ca::{
    CaCertificate, CapfIdentity, EcCurve, IdentityParams, Issuer, KeySpec, PrivateKey, TrustStore,
};
use capf_operations::phone::{Credentials, PhoneConfig, PhoneEvent, PhoneSession};
use capf_operations::{
    Device, DeviceEdit, DeviceName, MemoryStore, OperatorStore, ServerConfig, ServerSession,
    ServiceParameters, SessionDriver,
};

type Error = Box<dyn std::error::Error>;

/// What the simulated phone keeps: its LSC and key.
#[derive(Default)]
struct Handset {
    pending_key: Option<PrivateKey>,
    lsc: Option<Vec<u8>>,
}

/// Runs one session between a fresh server session and a fresh phone
/// session, passing messages until both are done.
fn run_session(
    store: &MemoryStore,
    issuer: &Issuer,
    config: &Arc<ServerConfig>,
    phone_config: PhoneConfig,
    handset: &mut Handset,
    session_id: u32,
) -> Result<(), Error> {
    let now = SystemTime::now();
    let mut server = ServerSession::new(session_id, config.clone(), now);
    let mut driver = SessionDriver::new(store, issuer, Duration::from_secs(3600));
    let mut phone = PhoneSession::new(phone_config, now);
    while !(server.is_finished() && phone.is_finished()) {
        let mut moved = false;
        driver.service(&mut server, now);
        while let Some(t) = server.poll_transmit() {
            println!("  server -> phone  {}", t.message.command());
            phone.handle_message(now, t.session_id, t.message);
            moved = true;
        }
        while let Some(event) = phone.poll_event() {
            match event {
                PhoneEvent::GenerateKey(spec) => {
                    println!("  phone generates a {spec} key");
                    let key = PrivateKey::generate(spec)?;
                    let spki = key.public_key_der()?;
                    handset.pending_key = Some(key);
                    phone.key_generated(now, Ok(spki));
                }
                PhoneEvent::StoreCertificate { certificate_der } => {
                    handset.lsc = Some(certificate_der.to_vec());
                    phone.certificate_stored(now, handset.pending_key.take().is_some());
                }
                PhoneEvent::DeleteCertificate => {
                    let had = handset.lsc.take().is_some();
                    phone.certificate_deleted(now, had);
                }
                PhoneEvent::Finished => {}
            }
        }
        while let Some(t) = phone.poll_transmit() {
            println!("  phone -> server  {}", t.message.command());
            server.handle_message(now, t.session_id, t.message);
            moved = true;
        }
        if !moved && server.poll_event().is_none() {
            break;
        }
    }
    if let Some(outcome) = server.outcome() {
        println!(
            "  server: {} (END_SESSION {})",
            outcome.kind,
            outcome
                .end_reason
                .map_or_else(|| "not sent".to_owned(), |r| r.to_string())
        );
    }
    if let Some(outcome) = phone.outcome() {
        println!("  phone:  {outcome}");
    }
    Ok(())
}

fn show(store: &MemoryStore, name: &DeviceName) -> Result<(), Error> {
    if let Some(d) = store.load(name)? {
        println!(
            "  device {}: status \"{}\", LSC {}",
            d.name,
            d.status_label(),
            d.lsc_status()
        );
    }
    Ok(())
}

fn main() -> Result<(), Error> {
    let now = SystemTime::now();
    println!("Generating the CAPF identity (P-256)...");
    let identity = CapfIdentity::generate(
        &IdentityParams {
            key: KeySpec::Ec(EcCurve::P256),
            ..Default::default()
        },
        now,
    )?;
    println!("  {}", identity.certificate().subject());
    let issuer = identity.issuer()?;
    let config = Arc::new(ServerConfig::new(
        ServiceParameters::default(),
        TrustStore::for_issuer(&issuer),
    ));
    let store = MemoryStore::new();
    let name = DeviceName::parse("SEP001122334455")?;

    // 1. Install, authenticated by a one-time string.
    let string = AuthString::generate(8)?;
    let digits = string.expose().to_owned();
    let mut device = Device::new(name.clone(), AuthMode::AuthString);
    device.key = Some(KeySpec::Ec(EcCurve::P256));
    device.policy.rearm(string);
    device.schedule(Operation::InstallUpgrade, None)?;
    store.insert(&device, now)?;
    println!("\nInstall/upgrade, authentication string {digits} typed on the phone:");
    show(&store, &name)?;
    let mut handset = Handset::default();
    let credentials = Credentials::AuthString(digits.parse()?);
    run_session(
        &store,
        &issuer,
        &config,
        PhoneConfig::new(name.as_str(), credentials),
        &mut handset,
        1,
    )?;
    show(&store, &name)?;
    if let Some(der) = &handset.lsc {
        let lsc = CaCertificate::from_der(der, "the new LSC")?;
        println!(
            "  LSC subject {} serial {}",
            lsc.subject(),
            lsc.serial_hex()
        );
        println!("  LSC issuer  {}", lsc.issuer());
    }

    // 2. Troubleshoot: the phone returns its LSC.
    let troubleshoot = DeviceEdit {
        auth_mode: Some(AuthMode::NullString),
        operation: Some(Operation::Troubleshoot),
        ..DeviceEdit::default()
    };
    store.modify(&name, &troubleshoot, now)?;
    println!("\nTroubleshoot (null string):");
    let mut phone_config = PhoneConfig::new(name.as_str(), Credentials::NullString);
    if let Some(der) = &handset.lsc {
        phone_config = phone_config.with_lsc(der.clone());
    }
    run_session(
        &store,
        &issuer,
        &config,
        phone_config.clone(),
        &mut handset,
        2,
    )?;
    show(&store, &name)?;

    // 3. Delete.
    let delete = DeviceEdit {
        operation: Some(Operation::Delete),
        ..DeviceEdit::default()
    };
    store.modify(&name, &delete, now)?;
    println!("\nDelete:");
    run_session(&store, &issuer, &config, phone_config, &mut handset, 3)?;
    show(&store, &name)?;

    println!("\nAudit log:");
    for entry in store.audit_log(&name)? {
        println!("  {:<12} {}", entry.event, entry.detail);
    }
    Ok(())
}
