//! A synchronous runtime for a server session: services its events against
//! a [`SessionStore`] and an [`Issuer`], blocking on each. The TLS server
//! does the same work asynchronously with admission control; tests,
//! examples and simple embedders use this one.

use std::time::{Duration, SystemTime};

use capf_ca::{Issuer, LscProfile};

use crate::{Lease, OperationsError, ServerEvent, ServerSession, SessionOutcome, SessionStore};

/// Services a [`ServerSession`]'s events: leases and loads the device,
/// commits durably, issues LSCs, gives the lease back at the end.
pub struct SessionDriver<'a, S: SessionStore + ?Sized> {
    store: &'a S,
    issuer: &'a Issuer,
    lease_ttl: Duration,
    profile: LscProfile,
    lease: Option<Lease>,
}

impl<'a, S: SessionStore + ?Sized> SessionDriver<'a, S> {
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
    /// given back.
    pub fn service(
        &mut self,
        session: &mut ServerSession,
        now: SystemTime,
    ) -> Option<SessionOutcome> {
        let mut finished = None;
        while let Some(event) = session.poll_event() {
            match event {
                ServerEvent::LoadDevice(name) => {
                    let result = self.store.begin_blocking(&name, now, self.lease_ttl).map(
                        |(lease, device)| {
                            self.lease = Some(lease);
                            device
                        },
                    );
                    session.device_loaded(now, result);
                }
                ServerEvent::Commit {
                    change,
                    release_lease,
                } => {
                    let result = match &self.lease {
                        Some(lease) => self
                            .store
                            .commit_blocking(lease, &change, release_lease)
                            .map(|_| ()),
                        None => Err(OperationsError::NoLease),
                    };
                    if result.is_ok() && release_lease {
                        self.lease = None;
                    }
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
                        .map_err(|source| OperationsError::Issuance {
                            name: request.device.to_string(),
                            source: Box::new(source),
                        });
                    session.issued(now, result);
                }
                ServerEvent::Finished(outcome) => {
                    self.release();
                    finished = Some(outcome);
                }
            }
        }
        finished
    }
}

impl<S: SessionStore + ?Sized> SessionDriver<'_, S> {
    /// Gives the device lease back, as when the connection drops mid-session
    /// (also done on drop).
    pub fn release(&mut self) {
        if let Some(lease) = self.lease.take() {
            let _ = self.store.release_blocking(&lease);
        }
    }
}

impl<S: SessionStore + ?Sized> Drop for SessionDriver<'_, S> {
    fn drop(&mut self) {
        self.release();
    }
}
