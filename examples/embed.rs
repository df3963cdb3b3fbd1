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
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use capf::auth::{AuthMode, AuthString, Operation};
use capf::ca::{CaCertificate, CapfIdentity, EcCurve, IdentityParams, KeySpec, PrivateKey};
use capf::operations::phone::{Credentials, PhoneConfig, PhoneEvent, PhoneSession};
use capf::operations::{
    AuditEntry, CertificateHistory, Device, DeviceName, Lease, OperationsError, OperatorStore,
    ServiceParameters, StoreBackend, StoreReads, StoreTransaction,
};

type Error = Box<dyn std::error::Error>;

/// The embedder's own tables.
#[derive(Clone, Default)]
struct Tables {
    devices: HashMap<DeviceName, Device>,
    leases: HashMap<DeviceName, Lease>,
    /// Issued certificates by serial.
    certificates: HashMap<String, CertificateHistory>,
    audit: Vec<AuditEntry>,
}

/// What an application implements to keep CAPF's devices in its own
/// database: rows in, rows out. CAPF's rules (leases, commits, operator
/// edits) come with it: an `AppDeviceTable` is a whole device store.
#[derive(Default)]
struct AppDeviceTable {
    tables: Mutex<Tables>,
}

impl StoreReads for Tables {
    fn device(&mut self, name: &DeviceName) -> Result<Option<Device>, OperationsError> {
        Ok(self.devices.get(name).cloned())
    }

    fn devices(&mut self) -> Result<Vec<Device>, OperationsError> {
        let mut all: Vec<Device> = self.devices.values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    fn lease(&mut self, name: &DeviceName) -> Result<Option<Lease>, OperationsError> {
        Ok(self.leases.get(name).cloned())
    }

    fn certificate(&mut self, serial: &str) -> Result<Option<CertificateHistory>, OperationsError> {
        Ok(self.certificates.get(serial).cloned())
    }

    fn certificates(
        &mut self,
        name: &DeviceName,
    ) -> Result<Vec<CertificateHistory>, OperationsError> {
        let mut issued: Vec<CertificateHistory> = self
            .certificates
            .values()
            .filter(|c| &c.record.device == name)
            .cloned()
            .collect();
        issued.sort_by_key(|c| c.record.issued_at);
        Ok(issued)
    }

    fn audit(&mut self, name: &DeviceName) -> Result<Vec<AuditEntry>, OperationsError> {
        Ok(self
            .audit
            .iter()
            .filter(|e| e.device.as_ref() == Some(name))
            .cloned()
            .collect())
    }
}

impl StoreTransaction for Tables {
    fn put_device(&mut self, device: &Device) -> Result<(), OperationsError> {
        self.devices.insert(device.name.clone(), device.clone());
        Ok(())
    }

    fn delete_device(&mut self, name: &DeviceName) -> Result<bool, OperationsError> {
        self.leases.remove(name);
        Ok(self.devices.remove(name).is_some())
    }

    fn put_lease(&mut self, lease: &Lease) -> Result<(), OperationsError> {
        self.leases.insert(lease.device.clone(), lease.clone());
        Ok(())
    }

    fn delete_lease(&mut self, name: &DeviceName) -> Result<(), OperationsError> {
        self.leases.remove(name);
        Ok(())
    }

    fn put_certificate(&mut self, c: &CertificateHistory) -> Result<(), OperationsError> {
        self.certificates
            .insert(c.serial_hex().to_owned(), c.clone());
        Ok(())
    }

    fn append_audit(&mut self, entry: &AuditEntry) -> Result<(), OperationsError> {
        self.audit.push(entry.clone());
        Ok(())
    }
}

impl StoreBackend for AppDeviceTable {
    /// A change runs on a copy of the tables, which replaces them only if
    /// the change succeeded: atomic. (A real database would run it in a
    /// transaction and answer after its COMMIT.)
    fn write<T, C, D>(&self, change: C, done: D)
    where
        T: Send + 'static,
        C: FnOnce(&mut dyn StoreTransaction) -> Result<T, OperationsError> + Send + 'static,
        D: FnOnce(Result<T, OperationsError>) + Send + 'static,
    {
        let result = match self.tables.lock() {
            Ok(mut tables) => {
                let mut working = tables.clone();
                let result = change(&mut working);
                if result.is_ok() {
                    *tables = working;
                }
                result
            }
            Err(_) => Err(OperationsError::store("device table lock poisoned")),
        };
        done(result);
    }

    fn read<T, R>(&self, read: R) -> Result<T, OperationsError>
    where
        R: FnOnce(&mut dyn StoreReads) -> Result<T, OperationsError>,
    {
        let mut tables = self
            .tables
            .lock()
            .map_err(|_| OperationsError::store("device table lock poisoned"))?;
        read(&mut *tables)
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
    table.insert(&device, now)?;
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
            phone.handle_message(now, t.session_id, t.message);
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
            outcome.kind,
            outcome
                .end_reason
                .map_or_else(|| "not sent".to_owned(), |r| r.to_string())
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
    for history in table.certificate_history(&name)? {
        println!(
            "  issued serial {} delivered: {}",
            history.serial_hex(),
            history.record.delivered
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
