//! An embedder's view: CAPF composed with the `capf` facade over the
//! embedder's own device database (here a `HashMap` behind a mutex, standing
//! in for whatever the application already has), serving one simulated
//! phone through a server session paired with a phone session in memory.
//! No network; it finishes by itself and prints what happened.
//!
//! ```text
//! cargo run --example embed
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use capf::auth::{AuthMode, AuthString, Operation};
use capf::ca::{CaCertificate, CapfIdentity, EcCurve, IdentityParams, KeySpec, PrivateKey};
use capf::operations::phone::{Credentials, PhoneConfig, PhoneEvent, PhoneSession};
use capf::operations::{
    AuditEntry, CompletedWork, Device, DeviceName, DevicePage, DeviceQuery, DeviceStore,
    IssuedRecord, Lease, OperationsError, ServiceParameters, SessionCommit, audit_entries,
};

type Error = Box<dyn std::error::Error>;

/// The embedder's own tables.
#[derive(Default)]
struct Tables {
    devices: HashMap<DeviceName, Device>,
    /// device -> (lease token, expiry)
    leases: HashMap<DeviceName, (u64, SystemTime)>,
    issued: Vec<IssuedRecord>,
    audit: Vec<AuditEntry>,
    next_token: u64,
}

/// A `DeviceStore` over a `HashMap`: what an application implements to keep
/// CAPF's devices in its own database. Each method holds the lock for its
/// whole change, which makes it atomic.
#[derive(Default)]
struct AppDeviceTable {
    tables: Mutex<Tables>,
}

impl AppDeviceTable {
    fn lock(&self) -> Result<MutexGuard<'_, Tables>, OperationsError> {
        self.tables
            .lock()
            .map_err(|_| OperationsError::Store("device table lock poisoned".into()))
    }
}

fn unknown(name: &DeviceName) -> OperationsError {
    OperationsError::UnknownDevice {
        name: name.to_string(),
    }
}

impl DeviceStore for AppDeviceTable {
    fn load(&self, name: &DeviceName) -> Result<Option<Device>, OperationsError> {
        Ok(self.lock()?.devices.get(name).cloned())
    }

    fn insert(&self, device: &Device) -> Result<(), OperationsError> {
        let mut t = self.lock()?;
        if t.devices.contains_key(&device.name) {
            return Err(OperationsError::DeviceExists {
                name: device.name.to_string(),
            });
        }
        let mut device = device.clone();
        device.sync_certificate_flags();
        t.devices.insert(device.name.clone(), device);
        Ok(())
    }

    fn update(&self, device: &Device) -> Result<(), OperationsError> {
        let mut t = self.lock()?;
        let slot = t
            .devices
            .get_mut(&device.name)
            .ok_or_else(|| unknown(&device.name))?;
        *slot = device.clone();
        slot.sync_certificate_flags();
        Ok(())
    }

    fn remove(&self, name: &DeviceName) -> Result<bool, OperationsError> {
        let mut t = self.lock()?;
        t.leases.remove(name);
        Ok(t.devices.remove(name).is_some())
    }

    fn find(&self, query: &DeviceQuery) -> Result<DevicePage, OperationsError> {
        // Filtering, sorting and paging in memory: `DeviceQuery::run`.
        let devices: Vec<Device> = self.lock()?.devices.values().cloned().collect();
        query.run(devices)
    }

    fn acquire_lease(
        &self,
        name: &DeviceName,
        now: SystemTime,
        ttl: Duration,
    ) -> Result<Lease, OperationsError> {
        let mut t = self.lock()?;
        if !t.devices.contains_key(name) {
            return Err(unknown(name));
        }
        if t.leases
            .get(name)
            .is_some_and(|(_, expires)| *expires > now)
        {
            return Err(OperationsError::DeviceBusy {
                name: name.to_string(),
            });
        }
        t.next_token += 1;
        let lease = Lease {
            device: name.clone(),
            token: t.next_token,
            expires: now + ttl,
        };
        t.leases.insert(name.clone(), (lease.token, lease.expires));
        Ok(lease)
    }

    fn release_lease(&self, lease: &Lease) -> Result<(), OperationsError> {
        let mut t = self.lock()?;
        if t.leases
            .get(&lease.device)
            .is_some_and(|(token, _)| *token == lease.token)
        {
            t.leases.remove(&lease.device);
        }
        Ok(())
    }

    fn commit(&self, lease: &Lease, commit: &SessionCommit) -> Result<Device, OperationsError> {
        let mut t = self.lock()?;
        let name = &lease.device;
        if t.leases
            .get(name)
            .is_none_or(|(token, _)| *token != lease.token)
        {
            return Err(OperationsError::LeaseLost {
                name: name.to_string(),
            });
        }
        let mut device = t.devices.get(name).cloned().ok_or_else(|| unknown(name))?;
        let delivered = match commit {
            // Record the certificate before the phone may receive it.
            SessionCommit::Issued(record) => {
                t.issued.push(record.clone());
                None
            }
            // The phone stored it: mark that record delivered.
            SessionCommit::Completed {
                work: CompletedWork::Installed { serial_hex },
                ..
            } => t
                .issued
                .iter_mut()
                .find(|r| &r.device == name && &r.certificate.serial_hex == serial_hex)
                .map(|r| {
                    r.delivered = true;
                    r.clone()
                }),
            _ => None,
        };
        device.apply_commit(commit, delivered.as_ref());
        let entries = audit_entries(name, commit);
        t.audit.extend(entries);
        t.devices.insert(name.clone(), device.clone());
        Ok(device)
    }

    fn issued_certificates(&self, name: &DeviceName) -> Result<Vec<IssuedRecord>, OperationsError> {
        Ok(self
            .lock()?
            .issued
            .iter()
            .filter(|r| &r.device == name)
            .cloned()
            .collect())
    }

    fn audit_log(&self, name: &DeviceName) -> Result<Vec<AuditEntry>, OperationsError> {
        Ok(self
            .lock()?
            .audit
            .iter()
            .filter(|e| &e.device == name)
            .cloned()
            .collect())
    }
}

fn main() -> Result<(), Error> {
    let now = SystemTime::now();

    // 1. The parts: an identity, the application's device table, parameters.
    println!("Generating the CAPF identity (P-256)...");
    let identity = CapfIdentity::generate(
        &IdentityParams {
            key: KeySpec::Ec(EcCurve::P256),
            ..Default::default()
        },
        now,
    )?;
    let table = Arc::new(AppDeviceTable::default());
    let params = ServiceParameters {
        lsc_validity_years: 2,
        ..Default::default()
    };
    let capf = capf::Capf::builder()
        .identity(identity)
        .store(table.clone())
        .params(params)
        .build()?;
    println!(
        "  CAPF certificate {}",
        capf.identity().certificate().subject()
    );

    // 2. The operator schedules an install with a one-time string.
    let name = DeviceName::parse("SEP001122334455")?;
    let string = AuthString::generate(8)?;
    let digits = string.expose().to_owned();
    let mut device = Device::new(name.clone(), AuthMode::AuthString);
    device.key = Some(KeySpec::Ec(EcCurve::P256));
    device.description = "Reception desk".into();
    device.policy.rearm(string);
    device.schedule(Operation::InstallUpgrade, None)?;
    table.insert(&device)?;
    println!(
        "\n{name}: install scheduled, string {digits}; status \"{}\"",
        device.status_label()
    );

    // 3. The phone connects: a server session and a phone session, paired
    //    in memory. A real embedder moves these messages over TLS (or lets
    //    `capf.serve(..)` do it).
    let mut server = capf.new_session(capf.next_session_id(), now);
    let mut driver = capf.driver();
    let mut phone = PhoneSession::new(
        PhoneConfig::new(name.as_str(), Credentials::AuthString(digits.parse()?)),
        now,
    );
    let mut phone_key: Option<PrivateKey> = None;
    let mut phone_lsc: Option<Vec<u8>> = None;
    for _round in 0..100 {
        if server.is_finished() && phone.is_finished() {
            break;
        }
        driver.service(&mut server, now);
        while let Some(t) = server.poll_transmit() {
            println!("  server -> phone  {}", t.message.command());
            phone.handle_message(now, t.message, t.session_id);
        }
        while let Some(event) = phone.poll_event() {
            match event {
                PhoneEvent::GenerateKey(spec) => {
                    println!("  phone generates a {spec} key");
                    let key = PrivateKey::generate(spec)?;
                    let spki = key.public_key_der()?;
                    phone_key = Some(key);
                    phone.key_generated(now, Ok(spki));
                }
                PhoneEvent::StoreCertificate { certificate_der } => {
                    phone_lsc = Some(certificate_der.to_vec());
                    phone.certificate_stored(now, phone_key.is_some());
                }
                PhoneEvent::DeleteCertificate => phone.certificate_deleted(now, false),
                PhoneEvent::Finished => {}
            }
        }
        while let Some(t) = phone.poll_transmit() {
            println!("  phone -> server  {}", t.message.command());
            server.handle_message(now, t.session_id, t.message);
        }
    }
    driver.release();
    if let Some(outcome) = server.outcome() {
        println!(
            "  server: {} (END_SESSION {})",
            outcome.kind, outcome.end_reason
        );
    }
    if let Some(outcome) = phone.outcome() {
        println!("  phone:  {outcome}");
    }

    // 4. What the application's table now says.
    let device = table.load(&name)?.ok_or("the device vanished")?;
    println!(
        "\n{name}: status \"{}\", LSC {}",
        device.status_label(),
        device.lsc_status()
    );
    if let Some(der) = &phone_lsc {
        let lsc = CaCertificate::from_der(der, "the new LSC")?;
        println!("  LSC subject {}", lsc.subject());
        println!("  LSC issuer  {}", lsc.issuer());
        println!("  LSC serial  {}", lsc.serial_hex());
    }
    for record in table.issued_certificates(&name)? {
        println!(
            "  issued serial {} delivered: {}",
            record.certificate.serial_hex, record.delivered
        );
    }
    println!("\nAudit log:");
    for entry in table.audit_log(&name)? {
        println!("  {:<14} {}", entry.event, entry.detail);
    }
    if device.lsc_status() != "Installed" {
        return Err("the phone did not get its LSC".into());
    }
    Ok(())
}
