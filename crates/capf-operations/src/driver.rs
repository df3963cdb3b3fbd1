//! A synchronous runtime for a server session: services its events against
//! a [`DeviceStore`] and an [`Issuer`]. The TLS server does the same work
//! asynchronously with admission control; tests, examples and simple
//! embedders use this one.

use std::time::{Duration, SystemTime};

use capf_ca::{Issuer, LscProfile};

use crate::{
    DeviceLookup, DeviceStore, Lease, OperationsError, ServerEvent, ServerSession, SessionOutcome,
};

/// Services a [`ServerSession`]'s events: leases and loads the device,
/// commits durably, issues LSCs, releases the lease at the end.
pub struct SessionDriver<'a, S: DeviceStore + ?Sized> {
    store: &'a S,
    issuer: &'a Issuer,
    lease_ttl: Duration,
    profile: LscProfile,
    lease: Option<Lease>,
}

impl<'a, S: DeviceStore + ?Sized> SessionDriver<'a, S> {
    /// A driver over this store and issuer. The device lease lasts
    /// `lease_ttl` (make it longer than the longest session: key generation
    /// may take 30 minutes).
    pub fn new(store: &'a S, issuer: &'a Issuer, lease_ttl: Duration) -> Self {
        SessionDriver {
            store,
            issuer,
            lease_ttl,
            profile: LscProfile::default(),
            lease: None,
        }
    }

    /// Issues LSCs with this profile (default: [`LscProfile::default`];
    /// servers use [`crate::ServiceParameters::lsc_profile`]).
    pub fn with_lsc_profile(mut self, profile: LscProfile) -> Self {
        self.profile = profile;
        self
    }

    /// Handles every pending event of `session` (and those they cause).
    /// Returns the outcome once the session has finished; the lease is then
    /// released.
    pub fn service(
        &mut self,
        session: &mut ServerSession,
        now: SystemTime,
    ) -> Option<SessionOutcome> {
        let mut finished = None;
        while let Some(event) = session.poll_event() {
            match event {
                ServerEvent::LoadDevice(name) => {
                    let lookup = match self.store.lease_and_load(&name, now, self.lease_ttl) {
                        Ok((lease, device)) => {
                            self.lease = Some(lease);
                            DeviceLookup::Found(Box::new(device))
                        }
                        Err(OperationsError::UnknownDevice { .. }) => DeviceLookup::Unknown,
                        Err(OperationsError::DeviceBusy { .. }) => DeviceLookup::Busy,
                        Err(e) => DeviceLookup::Failed(e.to_string()),
                    };
                    session.device_loaded(now, lookup);
                }
                ServerEvent::Commit(commit) => {
                    let last = session.commit_ends_session();
                    let result = match &self.lease {
                        Some(lease) if last => {
                            let r = self.store.commit_and_release(lease, &commit);
                            if r.is_ok() {
                                self.lease = None;
                            }
                            r.map(|_| ()).map_err(|e| e.to_string())
                        }
                        Some(lease) => self
                            .store
                            .commit(lease, &commit)
                            .map(|_| ())
                            .map_err(|e| e.to_string()),
                        None => Err("no lease held".to_owned()),
                    };
                    session.committed(now, result);
                }
                ServerEvent::Issue(request) => {
                    let result = self
                        .issuer
                        .issue_lsc(
                            request.device.as_str(),
                            &request.public_key,
                            &self.profile,
                            now,
                        )
                        .map_err(|e| e.to_string());
                    session.issued(now, result);
                }
                ServerEvent::Finished(outcome) => {
                    if let Some(lease) = self.lease.take() {
                        let _ = self.store.release_lease(&lease);
                    }
                    finished = Some(outcome);
                }
            }
        }
        finished
    }
}

impl<S: DeviceStore + ?Sized> SessionDriver<'_, S> {
    /// Gives the device lease back, as when the connection drops mid-session
    /// (also done on drop).
    pub fn release(&mut self) {
        if let Some(lease) = self.lease.take() {
            let _ = self.store.release_lease(&lease);
        }
    }
}

impl<S: DeviceStore + ?Sized> Drop for SessionDriver<'_, S> {
    fn drop(&mut self) {
        self.release();
    }
}
