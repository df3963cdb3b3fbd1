//! Admission: which connections the server keeps when it is full.
//!
//! A flood of connections that never finish their TLS handshake, or that
//! finish it and then say nothing, must not keep real phones out. So when
//! a limit is reached the newcomer is not refused: the server evicts
//! instead, in this order,
//!
//! 1. the oldest connection that has not sent a byte (a flood of raw TCP
//!    connections never does; a phone sends its ClientHello at once);
//! 2. then the oldest connection still in its TLS handshake;
//! 3. then the connection that has waited longest in session without
//!    saying who it is (no AUTH_RESPONSE yet);
//!
//! of the same address when the per-address limit is reached, of any
//! address when the global handshake or session limit is.
//!
//! A connection whose phone has authenticated (or is being served) is
//! never evicted. A newcomer is turned away only when there is nothing to
//! evict. Handshake deadlines and per-state timeouts still apply.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::metrics::Metrics;
use crate::summary::{Kind, Summary};

/// Where a connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Accepted, nothing received yet: evicted first.
    Silent,
    /// Its TLS handshake has started (bytes came), not done: evicted next.
    Handshaking,
    /// TLS done, in session, the phone has not said who it is: evicted next.
    Unidentified,
    /// The phone said who it is: never evicted.
    Serving,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Silent => "silent",
            Phase::Handshaking => "handshake",
            Phase::Unidentified => "before-authentication",
            Phase::Serving => "serving",
        }
    }
}

struct Connection {
    ip: IpAddr,
    phase: Phase,
    /// When it entered its phase.
    since: Instant,
    /// Whether it holds a session slot.
    in_session: bool,
    evict: Arc<Notify>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    connections: HashMap<u64, Connection>,
    handshaking: usize,
    in_session: usize,
    per_address: HashMap<IpAddr, usize>,
}

impl State {
    /// The connection to evict among those `eligible`: the oldest in its
    /// handshake, else the one waiting longest before authentication.
    fn victim(&self, eligible: impl Fn(&Connection) -> bool) -> Option<u64> {
        let pick = |phase: Phase| {
            self.connections
                .iter()
                .filter(|(_, c)| c.phase == phase && eligible(c))
                .min_by_key(|(_, c)| c.since)
                .map(|(id, _)| *id)
        };
        pick(Phase::Silent)
            .or_else(|| pick(Phase::Handshaking))
            .or_else(|| pick(Phase::Unidentified))
    }

    /// Removes a connection's counts; `None` if it was already removed.
    fn remove(&mut self, id: u64) -> Option<Connection> {
        let connection = self.connections.remove(&id)?;
        if matches!(connection.phase, Phase::Silent | Phase::Handshaking) {
            self.handshaking -= 1;
        }
        if connection.in_session {
            self.in_session -= 1;
        }
        if let Some(n) = self.per_address.get_mut(&connection.ip) {
            *n -= 1;
            if *n == 0 {
                self.per_address.remove(&connection.ip);
            }
        }
        Some(connection)
    }
}

/// The limits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) handshakes: usize,
    pub(crate) sessions: usize,
    pub(crate) per_address: usize,
}

/// The connections of a server, and who gets a place.
pub(crate) struct Admission {
    state: Mutex<State>,
    limits: Limits,
    /// Woken when a session slot frees.
    slot_freed: Notify,
    metrics: Arc<Metrics>,
    summary: Arc<Summary>,
}

/// A connection's place; given back when dropped.
pub(crate) struct Ticket {
    id: u64,
    ip: IpAddr,
    evict: Arc<Notify>,
    admission: Arc<Admission>,
}

/// Why a connection was turned away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TurnedAway {
    /// Its address holds the most connections, none of them evictable.
    PerAddress,
    /// The server holds the most handshakes, none evictable.
    Handshakes,
    /// Every session slot is busy with identified phones, and none freed
    /// in time.
    Sessions,
}

impl TurnedAway {
    fn kind(self) -> Kind {
        match self {
            TurnedAway::PerAddress => Kind::TurnedAwayPerAddress,
            TurnedAway::Handshakes => Kind::TurnedAwayHandshakes,
            TurnedAway::Sessions => Kind::TurnedAwaySessions,
        }
    }
}

impl Admission {
    pub(crate) fn new(limits: Limits, metrics: Arc<Metrics>, summary: Arc<Summary>) -> Self {
        Admission {
            state: Mutex::new(State::default()),
            limits: Limits {
                handshakes: limits.handshakes.max(1),
                sessions: limits.sessions.max(1),
                per_address: limits.per_address.max(1),
            },
            slot_freed: Notify::new(),
            metrics,
            summary,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Plain counters: a panic while holding them leaves them usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Evicts connection `id`: its place is free at once, its task is told
    /// to close.
    fn evict(&self, state: &mut State, id: u64) {
        if let Some(connection) = state.remove(id) {
            connection.evict.notify_one();
            self.metrics.evicted(connection.phase.name());
            self.metrics.connection(-1);
            self.summary.note(Kind::Evicted, connection.ip);
            if connection.in_session {
                self.slot_freed.notify_one();
            }
        }
    }

    /// A new connection from `ip`, starting its TLS handshake.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Ticket, TurnedAway> {
        let mut state = self.lock();
        if state.per_address.get(&ip).copied().unwrap_or(0) >= self.limits.per_address {
            match state.victim(|c| c.ip == ip) {
                Some(victim) => self.evict(&mut state, victim),
                None => return Err(self.turn_away(TurnedAway::PerAddress, ip)),
            }
        }
        if state.handshaking >= self.limits.handshakes {
            match state.victim(|c| matches!(c.phase, Phase::Silent | Phase::Handshaking)) {
                Some(victim) => self.evict(&mut state, victim),
                None => return Err(self.turn_away(TurnedAway::Handshakes, ip)),
            }
        }
        state.next_id += 1;
        let id = state.next_id;
        let evict = Arc::new(Notify::new());
        state.connections.insert(
            id,
            Connection {
                ip,
                phase: Phase::Silent,
                since: Instant::now(),
                in_session: false,
                evict: evict.clone(),
            },
        );
        state.handshaking += 1;
        *state.per_address.entry(ip).or_insert(0) += 1;
        self.metrics.connection(1);
        Ok(Ticket {
            id,
            ip,
            evict,
            admission: self.clone(),
        })
    }

    fn turn_away(&self, why: TurnedAway, ip: IpAddr) -> TurnedAway {
        self.metrics.turned_away(match why {
            TurnedAway::PerAddress => "per-address-limit",
            TurnedAway::Handshakes => "handshake-limit",
            TurnedAway::Sessions => "session-limit",
        });
        self.summary.note(why.kind(), ip);
        why
    }
}

impl Ticket {
    /// Completes when the server evicts this connection.
    pub(crate) async fn evicted(&self) {
        self.evict.notified().await;
    }

    /// The client sent its first bytes: its handshake has started, and it
    /// is no longer evicted before silent connections.
    pub(crate) fn spoke(&self) {
        if let Some(c) = self.admission.lock().connections.get_mut(&self.id)
            && c.phase == Phase::Silent
        {
            c.phase = Phase::Handshaking;
            c.since = Instant::now();
        }
    }

    /// The TLS handshake is done: take a session slot, evicting the
    /// connection that waited longest without identifying itself if every
    /// slot is taken, else waiting at most `wait` for one.
    pub(crate) async fn enter_session(&self, wait: Duration) -> Result<(), TurnedAway> {
        let admission = &self.admission;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let freed = admission.slot_freed.notified();
            {
                let mut state = admission.lock();
                if !state.connections.contains_key(&self.id) {
                    // Evicted meanwhile.
                    return Err(TurnedAway::Sessions);
                }
                if state.in_session >= admission.limits.sessions
                    && let Some(victim) =
                        state.victim(|c| c.phase == Phase::Unidentified && c.in_session)
                {
                    admission.evict(&mut state, victim);
                }
                if state.in_session < admission.limits.sessions {
                    state.in_session += 1;
                    state.handshaking -= 1;
                    if let Some(c) = state.connections.get_mut(&self.id) {
                        c.phase = Phase::Unidentified;
                        c.since = Instant::now();
                        c.in_session = true;
                    }
                    return Ok(());
                }
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return Err(admission.turn_away(TurnedAway::Sessions, self.ip));
            }
        }
    }

    /// The phone said who it is: this connection is never evicted now.
    pub(crate) fn identified(&self) {
        if let Some(c) = self.admission.lock().connections.get_mut(&self.id) {
            c.phase = Phase::Serving;
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut state = self.admission.lock();
        if let Some(connection) = state.remove(self.id) {
            self.admission.metrics.connection(-1);
            if connection.in_session {
                self.admission.slot_freed.notify_one();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn admission(handshakes: usize, sessions: usize, per_address: usize) -> Arc<Admission> {
        Arc::new(Admission::new(
            Limits {
                handshakes,
                sessions,
                per_address,
            },
            Arc::new(Metrics::new()),
            Arc::new(Summary::new()),
        ))
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[tokio::test]
    async fn a_full_address_evicts_its_oldest_handshake() {
        let a = admission(100, 10, 2);
        let first = a.admit(ip(2)).unwrap();
        let _second = a.admit(ip(2)).unwrap();
        let third = a.admit(ip(2)).unwrap();
        // The first was evicted: told, and its place given to the third.
        tokio::time::timeout(Duration::from_secs(1), first.evicted())
            .await
            .unwrap();
        // Another address is not affected.
        let _other = a.admit(ip(3)).unwrap();
        drop(third);
    }

    #[tokio::test]
    async fn a_connection_that_spoke_outlives_silent_ones() {
        let a = admission(100, 10, 3);
        let phone = a.admit(ip(2)).unwrap();
        let silent_1 = a.admit(ip(2)).unwrap();
        phone.spoke();
        let _silent_2 = a.admit(ip(2)).unwrap();
        // Full: the newcomer evicts a silent one, not the older phone.
        let _newcomer = a.admit(ip(2)).unwrap();
        tokio::time::timeout(Duration::from_secs(1), silent_1.evicted())
            .await
            .unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(50), phone.evicted())
                .await
                .is_err(),
            "the phone that spoke stays"
        );
    }

    #[tokio::test]
    async fn identified_phones_are_never_evicted() {
        let a = admission(100, 1, 1);
        let phone = a.admit(ip(2)).unwrap();
        phone.enter_session(Duration::ZERO).await.unwrap();
        phone.identified();
        // Same address, nothing evictable: turned away.
        assert_eq!(a.admit(ip(2)).err(), Some(TurnedAway::PerAddress));
        // Another address gets its handshake, but no session slot.
        let other = a.admit(ip(3)).unwrap();
        assert_eq!(
            other.enter_session(Duration::from_millis(10)).await,
            Err(TurnedAway::Sessions)
        );
    }

    #[tokio::test]
    async fn an_unidentified_session_makes_room_for_a_new_one() {
        let a = admission(100, 1, 10);
        let idle = a.admit(ip(2)).unwrap();
        idle.enter_session(Duration::ZERO).await.unwrap();
        let phone = a.admit(ip(3)).unwrap();
        phone.enter_session(Duration::ZERO).await.unwrap();
        tokio::time::timeout(Duration::from_secs(1), idle.evicted())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn the_global_handshake_limit_evicts_the_oldest_handshake() {
        let a = admission(2, 10, 10);
        let oldest = a.admit(ip(2)).unwrap();
        let _b = a.admit(ip(3)).unwrap();
        let _c = a.admit(ip(4)).unwrap();
        tokio::time::timeout(Duration::from_secs(1), oldest.evicted())
            .await
            .unwrap();
        drop(oldest);
        assert_eq!(a.lock().handshaking, 2);
    }
}
