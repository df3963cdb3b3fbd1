//! What the server counts, for operators: Prometheus metrics (text
//! format, OpenMetrics flavour) of sessions, refusals, handshakes,
//! admission, latencies and issuance.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SessionLabels {
    operation: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandshakeLabels {
    outcome: String,
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyLabels {
    key: String,
}

/// The server's metrics. Cheap to update from any task; read them with
/// [`Metrics::encode`].
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    sessions: Family<SessionLabels, Counter>,
    refusals: Family<ReasonLabels, Counter>,
    handshakes: Family<HandshakeLabels, Counter>,
    connections_open: Gauge,
    evictions: Family<PhaseLabels, Counter>,
    turned_away: Family<ReasonLabels, Counter>,
    enrollment_seconds: Histogram,
    store_commit_seconds: Histogram,
    store_batch_size: Histogram,
    lscs_issued: Family<KeyLabels, Counter>,
    lockouts: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric at zero, registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("capf");
        let sessions = Family::<SessionLabels, Counter>::default();
        registry.register(
            "sessions",
            "CAPF sessions that ended, by scheduled operation and outcome",
            sessions.clone(),
        );
        let refusals = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "refusals",
            "Phones refused after authentication was decided, by reason",
            refusals.clone(),
        );
        let handshakes = Family::<HandshakeLabels, Counter>::default();
        registry.register(
            "tls_handshakes",
            "TLS handshakes, by outcome and negotiated protocol version",
            handshakes.clone(),
        );
        let connections_open = Gauge::default();
        registry.register(
            "connections_open",
            "Connections open (in their handshake or in session)",
            connections_open.clone(),
        );
        let evictions = Family::<PhaseLabels, Counter>::default();
        registry.register(
            "connections_evicted",
            "Connections closed to make room for new ones, by the phase they were in",
            evictions.clone(),
        );
        let turned_away = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "connections_turned_away",
            "Connections closed at once, by reason",
            turned_away.clone(),
        );
        let enrollment_seconds = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register(
            "enrollment_seconds",
            "Time from the end of the TLS handshake to the end of a successful install",
            enrollment_seconds.clone(),
        );
        let store_commit_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        registry.register(
            "store_commit_seconds",
            "Time a session waits for one of its changes to be durable",
            store_commit_seconds.clone(),
        );
        let store_batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        registry.register(
            "store_batch_size",
            "Changes committed together in one transaction (group commit)",
            store_batch_size.clone(),
        );
        let lscs_issued = Family::<KeyLabels, Counter>::default();
        registry.register(
            "lscs_issued",
            "LSCs signed and recorded, by phone key",
            lscs_issued.clone(),
        );
        let lockouts = Counter::default();
        registry.register(
            "lockouts",
            "Devices locked after too many wrong authentication strings",
            lockouts.clone(),
        );
        Metrics {
            registry,
            sessions,
            refusals,
            handshakes,
            connections_open,
            evictions,
            turned_away,
            enrollment_seconds,
            store_commit_seconds,
            store_batch_size,
            lscs_issued,
            lockouts,
        }
    }

    /// Everything, in the Prometheus text format (OpenMetrics).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// A session ended: its scheduled operation (`none` if unknown) and
    /// outcome (`installed`, `refused`, `timed-out`...).
    pub(crate) fn session_ended(&self, operation: &str, outcome: &str) {
        self.sessions
            .get_or_create(&SessionLabels {
                operation: operation.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// A phone was refused for `reason`.
    pub(crate) fn refused(&self, reason: &str) {
        self.refusals
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// A handshake ended: `ok` or a failure class, and the version.
    pub(crate) fn handshake(&self, outcome: &str, version: &str) {
        self.handshakes
            .get_or_create(&HandshakeLabels {
                outcome: outcome.to_owned(),
                version: version.to_owned(),
            })
            .inc();
    }

    /// A connection opened (`+1`) or closed (`-1`).
    pub(crate) fn connection(&self, delta: i64) {
        self.connections_open.inc_by(delta);
    }

    /// A connection was evicted while in `phase`.
    pub(crate) fn evicted(&self, phase: &str) {
        self.evictions
            .get_or_create(&PhaseLabels {
                phase: phase.to_owned(),
            })
            .inc();
    }

    /// A connection was closed at once for `reason`.
    pub(crate) fn turned_away(&self, reason: &str) {
        self.turned_away
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// A successful install took this long after the handshake.
    pub(crate) fn enrollment(&self, took: Duration) {
        self.enrollment_seconds.observe(took.as_secs_f64());
    }

    /// A session's change took this long to become durable.
    pub(crate) fn store_commit(&self, took: Duration) {
        self.store_commit_seconds.observe(took.as_secs_f64());
    }

    /// The store committed this many changes in one transaction. Public:
    /// the store reports it (e.g. through `SqliteStore`'s batch observer).
    pub fn store_batch(&self, size: usize) {
        self.store_batch_size.observe(size as f64);
    }

    /// An LSC was issued for a phone key of this kind (`p256`, `rsa2048`...).
    pub(crate) fn issued(&self, key: &str) {
        self.lscs_issued
            .get_or_create(&KeyLabels {
                key: key.to_owned(),
            })
            .inc();
    }

    /// A device was locked out.
    pub(crate) fn lockout(&self) {
        self.lockouts.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::Metrics;

    #[test]
    fn every_metric_is_named_and_counts() {
        let m = Metrics::new();
        m.session_ended("install", "installed");
        m.refused("wrong-string");
        m.handshake("ok", "TLSv1_3");
        m.issued("p256");
        m.lockout();
        let text = m.encode();
        for line in [
            "capf_sessions_total{operation=\"install\",outcome=\"installed\"} 1",
            "capf_refusals_total{reason=\"wrong-string\"} 1",
            "capf_tls_handshakes_total{outcome=\"ok\",version=\"TLSv1_3\"} 1",
            "capf_lscs_issued_total{key=\"p256\"} 1",
            "capf_lockouts_total 1",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
