//! What a server session needs from a store: take a device, make its
//! changes durable, give it back.

use std::time::{Duration, SystemTime};

use crate::{Device, DeviceName, Lease, OperationsError, SessionCommit};

/// Where a store call delivers its answer: on any thread, possibly before
/// the call returns. It must be quick and must not call the store (send it
/// on a channel, complete a future, wake a task).
pub type Reply<T> = Box<dyn FnOnce(Result<T, OperationsError>) + Send>;

/// The store as a server session sees it: three calls, one convention.
///
/// Every call answers through a [`Reply`], so an async runtime can queue a
/// call from its worker and await the answer without a thread of its own
/// waiting, and a blocking caller uses the `*_blocking` helpers. Every
/// [`StoreBackend`](crate::StoreBackend) implements this trait with the
/// shared rules; implement it directly only to wrap another store (to
/// inject faults, count calls...).
pub trait SessionStore: Send + Sync {
    /// Takes the exclusive lease on a device for `ttl` and loads it, in one
    /// step. Fails with [`OperationsError::UnknownDevice`], or with
    /// [`OperationsError::DeviceBusy`] while another unexpired lease is
    /// held.
    ///
    /// The answer may come before the lease is durable: no other session
    /// can take the device meanwhile, and should the lease be lost, the
    /// session's next [`commit`](Self::commit) fails with
    /// [`OperationsError::LeaseLost`]. Nothing durable depends on a lease
    /// alone.
    fn begin(
        &self,
        name: &DeviceName,
        now: SystemTime,
        ttl: Duration,
        reply: Reply<(Lease, Device)>,
    );

    /// Makes a session's change durable, atomically, under its lease, and
    /// answers with the device as it now is. With `release`, the lease is
    /// given back in the same transaction (the session's last change). On
    /// an error nothing changed and the lease is still held.
    fn commit(&self, lease: &Lease, change: &SessionCommit, release: bool, reply: Reply<Device>);

    /// Gives the lease back (nothing happens if it already lapsed or was
    /// taken over).
    fn release(&self, lease: &Lease, reply: Reply<()>);

    /// Whether the store can take a session's changes now, for a health
    /// check: `Ok` once an empty change went through. The default answers
    /// `Ok` at once; every [`StoreBackend`](crate::StoreBackend) checks
    /// for real.
    fn health(&self, reply: Reply<()>) {
        reply(Ok(()));
    }

    /// [`begin`](Self::begin), waiting for the answer.
    fn begin_blocking(
        &self,
        name: &DeviceName,
        now: SystemTime,
        ttl: Duration,
    ) -> Result<(Lease, Device), OperationsError> {
        wait(|reply| self.begin(name, now, ttl, reply))
    }

    /// [`commit`](Self::commit), waiting for the answer.
    fn commit_blocking(
        &self,
        lease: &Lease,
        change: &SessionCommit,
        release: bool,
    ) -> Result<Device, OperationsError> {
        wait(|reply| self.commit(lease, change, release, reply))
    }

    /// [`release`](Self::release), waiting for the answer.
    fn release_blocking(&self, lease: &Lease) -> Result<(), OperationsError> {
        wait(|reply| self.release(lease, reply))
    }
}

/// Makes a call and waits for its reply.
fn wait<T: Send + 'static>(call: impl FnOnce(Reply<T>)) -> Result<T, OperationsError> {
    let (answer, answered) = std::sync::mpsc::sync_channel(1);
    call(Box::new(move |result| {
        let _ = answer.send(result);
    }));
    answered.recv().unwrap_or(Err(OperationsError::Unanswered))
}
