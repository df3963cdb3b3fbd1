//! An in-memory `DeviceStore`: for tests, examples and embedders who keep
//! devices elsewhere. Not durable.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use crate::store::audit_entries;
use crate::{
    AuditEntry, CompletedWork, Device, DeviceName, DevicePage, DeviceQuery, DeviceStore,
    IssuedRecord, Lease, OperationsError, SessionCommit,
};

#[derive(Default)]
struct State {
    devices: BTreeMap<DeviceName, Device>,
    leases: HashMap<DeviceName, (u64, SystemTime)>,
    /// Per device, in issue order (looked up by device on every commit:
    /// one flat list made each enrollment cost O(all issued)).
    issued: HashMap<DeviceName, Vec<IssuedRecord>>,
    /// Per device, in order.
    audit: HashMap<DeviceName, Vec<AuditEntry>>,
    next_token: u64,
}

/// A [`DeviceStore`] in memory.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, OperationsError> {
        self.state
            .lock()
            .map_err(|_| OperationsError::Store("memory store lock poisoned".into()))
    }
}

fn unknown(name: &DeviceName) -> OperationsError {
    OperationsError::UnknownDevice {
        name: name.to_string(),
    }
}

impl DeviceStore for MemoryStore {
    fn load(&self, name: &DeviceName) -> Result<Option<Device>, OperationsError> {
        Ok(self.lock()?.devices.get(name).cloned())
    }

    fn insert(&self, device: &Device) -> Result<(), OperationsError> {
        let mut s = self.lock()?;
        if s.devices.contains_key(&device.name) {
            return Err(OperationsError::DeviceExists {
                name: device.name.to_string(),
            });
        }
        let mut device = device.clone();
        device.sync_certificate_flags();
        s.devices.insert(device.name.clone(), device);
        Ok(())
    }

    fn update(&self, device: &Device) -> Result<(), OperationsError> {
        let mut s = self.lock()?;
        let slot = s
            .devices
            .get_mut(&device.name)
            .ok_or_else(|| unknown(&device.name))?;
        *slot = device.clone();
        slot.sync_certificate_flags();
        Ok(())
    }

    fn remove(&self, name: &DeviceName) -> Result<bool, OperationsError> {
        let mut s = self.lock()?;
        s.leases.remove(name);
        Ok(s.devices.remove(name).is_some())
    }

    fn find(&self, query: &DeviceQuery) -> Result<DevicePage, OperationsError> {
        let devices: Vec<Device> = self.lock()?.devices.values().cloned().collect();
        query.run(devices)
    }

    fn acquire_lease(
        &self,
        name: &DeviceName,
        now: SystemTime,
        ttl: Duration,
    ) -> Result<Lease, OperationsError> {
        let mut s = self.lock()?;
        if !s.devices.contains_key(name) {
            return Err(unknown(name));
        }
        if let Some((_, expires)) = s.leases.get(name)
            && *expires > now
        {
            return Err(OperationsError::DeviceBusy {
                name: name.to_string(),
            });
        }
        s.next_token += 1;
        let token = s.next_token;
        let expires = now + ttl;
        s.leases.insert(name.clone(), (token, expires));
        Ok(Lease {
            device: name.clone(),
            token,
            expires,
        })
    }

    fn release_lease(&self, lease: &Lease) -> Result<(), OperationsError> {
        let mut s = self.lock()?;
        if s.leases
            .get(&lease.device)
            .is_some_and(|(t, _)| *t == lease.token)
        {
            s.leases.remove(&lease.device);
        }
        Ok(())
    }

    fn commit(&self, lease: &Lease, commit: &SessionCommit) -> Result<Device, OperationsError> {
        let mut s = self.lock()?;
        let name = &lease.device;
        if s.leases.get(name).is_none_or(|(t, _)| *t != lease.token) {
            return Err(OperationsError::LeaseLost {
                name: name.to_string(),
            });
        }
        let mut device = s.devices.get(name).cloned().ok_or_else(|| unknown(name))?;
        let delivered = match commit {
            SessionCommit::Issued(record) => {
                s.issued
                    .entry(name.clone())
                    .or_default()
                    .push(record.clone());
                None
            }
            SessionCommit::Completed {
                work: CompletedWork::Installed { serial_hex },
                ..
            } => s
                .issued
                .get_mut(name)
                .into_iter()
                .flatten()
                .find(|r| &r.certificate.serial_hex == serial_hex)
                .map(|r| {
                    r.delivered = true;
                    r.clone()
                }),
            _ => None,
        };
        device.apply_commit(commit, delivered.as_ref());
        let entries = audit_entries(name, commit);
        s.audit.entry(name.clone()).or_default().extend(entries);
        s.devices.insert(name.clone(), device.clone());
        Ok(device)
    }

    fn issued_certificates(&self, name: &DeviceName) -> Result<Vec<IssuedRecord>, OperationsError> {
        Ok(self.lock()?.issued.get(name).cloned().unwrap_or_default())
    }

    fn audit_log(&self, name: &DeviceName) -> Result<Vec<AuditEntry>, OperationsError> {
        Ok(self.lock()?.audit.get(name).cloned().unwrap_or_default())
    }
}
