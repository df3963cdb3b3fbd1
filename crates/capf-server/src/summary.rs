//! Rate-limited log lines for events that come by the thousand in a flood
//! (connections turned away or evicted, failed TLS handshakes): the first
//! of a kind is logged at once, the rest are counted and summarised, at
//! most one line per kind per period, with the addresses they came from.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tracing::{info, warn};

/// How often a kind may log a line.
pub(crate) const PERIOD: Duration = Duration::from_secs(10);

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    TurnedAwayPerAddress,
    TurnedAwayHandshakes,
    TurnedAwaySessions,
    Evicted,
    Handshake(HandshakeFailure),
}

/// Why a TLS handshake failed, in classes an operator can act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum HandshakeFailure {
    /// The client closed before sending its ClientHello (a port scan, a
    /// probe, a flood).
    NoClientHello,
    /// No protocol version in common: the client offers only TLS 1.0 or
    /// 1.1, as 7900-series phones do.
    ProtocolVersion,
    /// No cipher suite in common.
    CipherSuite,
    /// The client rejected the CAPF certificate.
    CertificateRejected,
    /// The handshake did not finish within the handshake timeout.
    TimedOut,
    /// Anything else (malformed or unexpected messages).
    Other,
}

impl HandshakeFailure {
    /// A short name for metrics.
    pub(crate) fn name(self) -> &'static str {
        match self {
            HandshakeFailure::NoClientHello => "no-client-hello",
            HandshakeFailure::ProtocolVersion => "protocol-version",
            HandshakeFailure::CipherSuite => "cipher-suite",
            HandshakeFailure::CertificateRejected => "certificate-rejected",
            HandshakeFailure::TimedOut => "timed-out",
            HandshakeFailure::Other => "other",
        }
    }

    /// Classifies the error a TLS accept failed with.
    pub(crate) fn of(error: &std::io::Error) -> Self {
        use rustls::{AlertDescription, Error, PeerIncompatible};
        if error.kind() == std::io::ErrorKind::UnexpectedEof {
            return HandshakeFailure::NoClientHello;
        }
        let Some(tls) = error.get_ref().and_then(|e| e.downcast_ref::<Error>()) else {
            return HandshakeFailure::Other;
        };
        match tls {
            // A ClientHello without signature_algorithms predates TLS 1.2
            // (TLS 1.0 and 1.1 have no such extension): an old client.
            Error::PeerIncompatible(
                PeerIncompatible::Tls12NotOffered
                | PeerIncompatible::Tls12NotOfferedOrEnabled
                | PeerIncompatible::SupportedVersionsExtensionRequired
                | PeerIncompatible::ServerDoesNotSupportTls12Or13
                | PeerIncompatible::SignatureAlgorithmsExtensionRequired,
            ) => HandshakeFailure::ProtocolVersion,
            Error::PeerIncompatible(PeerIncompatible::NoCipherSuitesInCommon) => {
                HandshakeFailure::CipherSuite
            }
            Error::AlertReceived(
                AlertDescription::BadCertificate
                | AlertDescription::UnknownCA
                | AlertDescription::CertificateUnknown
                | AlertDescription::UnsupportedCertificate
                | AlertDescription::CertificateExpired
                | AlertDescription::CertificateRevoked
                | AlertDescription::AccessDenied,
            ) => HandshakeFailure::CertificateRejected,
            _ => HandshakeFailure::Other,
        }
    }
}

#[derive(Default)]
struct Tally {
    last_logged: Option<Instant>,
    pending: u64,
    addresses: HashMap<IpAddr, u64>,
}

/// The counts since each kind last logged.
#[derive(Default)]
pub(crate) struct Summary {
    tallies: Mutex<HashMap<Kind, Tally>>,
}

impl Summary {
    pub(crate) fn new() -> Self {
        Summary::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Kind, Tally>> {
        self.tallies.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One event of `kind` from `ip`: logged now if its kind has been
    /// quiet for a period, else counted for the next summary.
    pub(crate) fn note(&self, kind: Kind, ip: IpAddr) {
        let now = Instant::now();
        let mut tallies = self.lock();
        let tally = tallies.entry(kind).or_default();
        let quiet = tally
            .last_logged
            .is_none_or(|at| now.duration_since(at) >= PERIOD);
        if quiet && tally.pending == 0 {
            tally.last_logged = Some(now);
            drop(tallies);
            log(kind, 1, &format!("{ip}"));
        } else {
            tally.pending += 1;
            *tally.addresses.entry(ip).or_insert(0) += 1;
        }
    }

    /// Logs one line per kind whose events waited a period; call it
    /// periodically (and at shutdown, with `all`).
    pub(crate) fn flush(&self, all: bool) {
        let now = Instant::now();
        let mut due = Vec::new();
        {
            let mut tallies = self.lock();
            for (kind, tally) in tallies.iter_mut() {
                let period_over = tally
                    .last_logged
                    .is_none_or(|at| now.duration_since(at) >= PERIOD);
                if tally.pending > 0 && (all || period_over) {
                    let mut top: Vec<(IpAddr, u64)> = tally.addresses.drain().collect();
                    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                    let shown = top
                        .iter()
                        .take(3)
                        .map(|(ip, n)| format!("{ip} ({n})"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let more = top.len().saturating_sub(3);
                    let addresses = if more > 0 {
                        format!("{shown} and {more} more address(es)")
                    } else {
                        shown
                    };
                    due.push((*kind, tally.pending, addresses));
                    tally.pending = 0;
                    tally.last_logged = Some(now);
                }
            }
        }
        for (kind, count, addresses) in due {
            log(kind, count, &addresses);
        }
    }
}

fn log(kind: Kind, count: u64, from: &str) {
    match kind {
        Kind::TurnedAwayPerAddress => warn!(
            count,
            from,
            "connection(s) turned away: their address holds the most connections \
             (--max-per-address) and none of them could be evicted"
        ),
        Kind::TurnedAwayHandshakes => warn!(
            count,
            from, "connection(s) turned away: too many TLS handshakes at once, none evictable"
        ),
        Kind::TurnedAwaySessions => warn!(
            count,
            from,
            "connection(s) turned away: every session slot is busy with identified phones \
             (--max-sessions)"
        ),
        Kind::Evicted => info!(
            count,
            from,
            "connection(s) evicted to make room: idle in their TLS handshake, or in session \
             without saying who they are"
        ),
        Kind::Handshake(HandshakeFailure::ProtocolVersion) => warn!(
            count,
            from,
            "TLS handshake(s) failed: no protocol version in common; the client offers only \
             TLS 1.0/1.1, as 7900-series phones do: serve them on a legacy listener \
             (--legacy-listen, in a build with the legacy-tls feature)"
        ),
        Kind::Handshake(HandshakeFailure::CipherSuite) => warn!(
            count,
            from,
            "TLS handshake(s) failed: no cipher suite in common (an old phone needs the \
             legacy listener, --legacy-listen)"
        ),
        Kind::Handshake(HandshakeFailure::CertificateRejected) => warn!(
            count,
            from,
            "TLS handshake(s) failed: the client rejected the CAPF certificate; check that \
             the phone's trust list (ITL or CTL) holds it (capf ca export)"
        ),
        Kind::Handshake(HandshakeFailure::TimedOut) => info!(
            count,
            from, "TLS handshake(s) did not finish within the handshake timeout"
        ),
        Kind::Handshake(HandshakeFailure::NoClientHello) => info!(
            count,
            from, "connection(s) closed before sending a TLS ClientHello (probes, scans, floods)"
        ),
        Kind::Handshake(HandshakeFailure::Other) => info!(
            count,
            from, "TLS handshake(s) failed: malformed or unexpected handshake messages"
        ),
    }
}
