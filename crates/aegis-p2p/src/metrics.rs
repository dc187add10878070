//! [`P2pMetrics`]: the P2P layer's metrics, one documented field per metric (STYLE.md 10).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Unit;

use crate::wire::RecordKind;

/// Direction of a connection or of traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub fn label(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }

    fn index(self) -> usize {
        match self {
            Direction::Inbound => 0,
            Direction::Outbound => 1,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MessageLabels {
    direction: &'static str,
    r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// The `type` label of a message: protocol records by kind, data messages by tag
/// ([`crate::tags`]). Bounded: at most this many distinct values.
pub fn type_label(kind: RecordKind, tag: u8) -> &'static str {
    match kind {
        RecordKind::Data => crate::tags::label(tag),
        other => other.label(),
    }
}

/// Every value of the `type` label; `message` indexes into it.
const TYPE_LABELS: [&str; 8] = [
    "hello",
    "ping",
    "pong",
    "peers",
    "consensus",
    "sync",
    "mempool",
    "other",
];

/// Every `reason` of `aegis_p2p_rejected_connections_total`, exported at zero from the
/// start so that a query or an alert sees the series before the first refusal.
pub const REJECTED_REASONS: [&str; 5] = [
    "banned",
    "rate_limited",
    "handshake_limit",
    "evicted",
    "max_peers",
];
/// Every `reason` of `aegis_p2p_dropped_messages_total`, exported at zero from the start.
pub const DROPPED_REASONS: [&str; 5] = [
    "queue_full",
    "slow_peer",
    "no_peer",
    "too_large",
    "no_receiver",
];

/// The P2P metrics. Cheap to clone (every field is a shared handle).
#[derive(Clone, Debug)]
pub struct P2pMetrics {
    /// `aegis_p2p_peers`: authenticated peers connected now.
    pub peers: Gauge,
    /// `aegis_p2p_connections{direction}`: authenticated connections by who dialled.
    connections: Family<DirectionLabels, Gauge>,
    /// `aegis_p2p_latency_seconds`: ping round-trip times.
    pub latency: Histogram,
    /// `aegis_p2p_messages_total{direction,type}`: messages sent and received.
    messages: Family<MessageLabels, Counter>,
    /// `aegis_p2p_bytes_total{direction}`: bytes on the wire (frames, before TLS).
    bytes: Family<DirectionLabels, Counter>,
    /// `aegis_p2p_auth_failures_total`: connections refused for failed authentication.
    pub auth_failures: Counter,
    /// `aegis_p2p_banned_ips`: addresses banned now.
    pub banned_ips: Gauge,
    /// `aegis_p2p_protocol_violations_total`: authenticated connections closed for bad
    /// input (garbage, oversized or truncated frames, malformed records).
    pub protocol_violations: Counter,
    /// `aegis_p2p_rejected_connections_total{reason}`: connections refused before
    /// authentication (banned, rate_limited, handshake_limit, evicted) or after it
    /// (max_peers).
    rejected: Family<ReasonLabels, Counter>,
    /// `aegis_p2p_dropped_messages_total{reason}`: messages dropped (queue_full,
    /// slow_peer, no_peer, too_large).
    dropped: Family<ReasonLabels, Counter>,
    /// Cached counter handles for the hot path: [direction][type label index].
    message_counters: [[Counter; TYPE_LABELS.len()]; 2],
    byte_counters: [Counter; 2],
    connection_gauges: [Gauge; 2],
}

impl Default for P2pMetrics {
    fn default() -> Self {
        P2pMetrics::new()
    }
}

impl P2pMetrics {
    pub fn new() -> P2pMetrics {
        let connections = Family::<DirectionLabels, Gauge>::default();
        let messages = Family::<MessageLabels, Counter>::default();
        let bytes = Family::<DirectionLabels, Counter>::default();
        let directions = [Direction::Inbound, Direction::Outbound];
        let message_counters = directions.map(|direction| {
            TYPE_LABELS.map(|label| {
                messages
                    .get_or_create(&MessageLabels {
                        direction: direction.label(),
                        r#type: label,
                    })
                    .clone()
            })
        });
        let byte_counters = directions.map(|direction| {
            bytes
                .get_or_create(&DirectionLabels {
                    direction: direction.label(),
                })
                .clone()
        });
        let connection_gauges = directions.map(|direction| {
            connections
                .get_or_create(&DirectionLabels {
                    direction: direction.label(),
                })
                .clone()
        });
        let rejected = Family::<ReasonLabels, Counter>::default();
        for reason in REJECTED_REASONS {
            drop(rejected.get_or_create(&ReasonLabels { reason }));
        }
        let dropped = Family::<ReasonLabels, Counter>::default();
        for reason in DROPPED_REASONS {
            drop(dropped.get_or_create(&ReasonLabels { reason }));
        }
        P2pMetrics {
            peers: Gauge::default(),
            connections,
            // 100 µs .. ~52 s.
            latency: Histogram::new(exponential_buckets(0.0001, 2.0, 20)),
            messages,
            bytes,
            auth_failures: Counter::default(),
            banned_ips: Gauge::default(),
            protocol_violations: Counter::default(),
            rejected,
            dropped,
            message_counters,
            byte_counters,
            connection_gauges,
        }
    }

    /// Registers every metric in the node's registry (names get the `aegis_` prefix there).
    pub fn register(&self, metrics: &aegis_telemetry::Metrics) {
        metrics.register(
            "p2p_peers",
            "Authenticated peers connected",
            self.peers.clone(),
        );
        metrics.register(
            "p2p_connections",
            "Authenticated P2P connections by direction",
            self.connections.clone(),
        );
        metrics.register_with_unit(
            "p2p_latency",
            "Ping round-trip time to peers",
            Unit::Seconds,
            self.latency.clone(),
        );
        metrics.register(
            "p2p_messages",
            "P2P messages by direction and type",
            self.messages.clone(),
        );
        metrics.register(
            "p2p_bytes",
            "P2P frame bytes by direction",
            self.bytes.clone(),
        );
        metrics.register(
            "p2p_auth_failures",
            "P2P connections refused for failed authentication",
            self.auth_failures.clone(),
        );
        metrics.register(
            "p2p_banned_ips",
            "Addresses banned from the P2P port",
            self.banned_ips.clone(),
        );
        metrics.register(
            "p2p_protocol_violations",
            "Authenticated P2P connections closed for bad input",
            self.protocol_violations.clone(),
        );
        metrics.register(
            "p2p_rejected_connections",
            "P2P connections refused before authentication, by reason",
            self.rejected.clone(),
        );
        metrics.register(
            "p2p_dropped_messages",
            "P2P messages dropped, by reason",
            self.dropped.clone(),
        );
    }

    pub(crate) fn message(&self, direction: Direction, kind: RecordKind, tag: u8) {
        // Indexes into TYPE_LABELS, without comparing strings on the hot path.
        let index = match kind {
            RecordKind::Hello => 0,
            RecordKind::Ping => 1,
            RecordKind::Pong => 2,
            RecordKind::Peers => 3,
            RecordKind::Data => match tag {
                crate::tags::CONSENSUS => 4,
                crate::tags::SYNC => 5,
                crate::tags::MEMPOOL => 6,
                _ => 7,
            },
        };
        self.message_counters[direction.index()][index].inc();
    }

    pub(crate) fn bytes(&self, direction: Direction, count: usize) {
        self.byte_counters[direction.index()].inc_by(count as u64);
    }

    pub(crate) fn connection_opened(&self, direction: Direction) {
        self.connection_gauges[direction.index()].inc();
    }

    pub(crate) fn connection_closed(&self, direction: Direction) {
        self.connection_gauges[direction.index()].dec();
    }

    pub(crate) fn rejected(&self, reason: &'static str) {
        self.rejected.get_or_create(&ReasonLabels { reason }).inc();
    }

    pub(crate) fn dropped(&self, reason: &'static str, count: u64) {
        self.dropped
            .get_or_create(&ReasonLabels { reason })
            .inc_by(count);
    }

    /// Frame bytes sent or received so far.
    pub fn bytes_total(&self, direction: Direction) -> u64 {
        self.byte_counters[direction.index()].get()
    }

    /// Connections refused so far for `reason` (`banned`, `rate_limited`, `max_peers`,
    /// `handshake_limit`, `evicted`).
    pub fn rejected_total(&self, reason: &'static str) -> u64 {
        self.rejected.get_or_create(&ReasonLabels { reason }).get()
    }

    /// Connections open now in `direction` (for `/status` and tests).
    pub fn connections(&self, direction: Direction) -> i64 {
        self.connection_gauges[direction.index()].get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_exported_at_zero_before_the_first_refusal() {
        let registry = aegis_telemetry::Metrics::new();
        P2pMetrics::new().register(&registry);
        let text = registry.encode_classic_text().expect("encode");
        for reason in REJECTED_REASONS {
            let line = format!("aegis_p2p_rejected_connections_total{{reason=\"{reason}\"}} 0");
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        for reason in DROPPED_REASONS {
            let line = format!("aegis_p2p_dropped_messages_total{{reason=\"{reason}\"}} 0");
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }

    #[test]
    fn hot_path_index_matches_the_label() {
        let metrics = P2pMetrics::new();
        for (kind, tag) in [
            (RecordKind::Hello, 0),
            (RecordKind::Ping, 0),
            (RecordKind::Pong, 0),
            (RecordKind::Peers, 0),
            (RecordKind::Data, crate::tags::CONSENSUS),
            (RecordKind::Data, crate::tags::SYNC),
            (RecordKind::Data, crate::tags::MEMPOOL),
            (RecordKind::Data, 200),
        ] {
            metrics.message(Direction::Inbound, kind, tag);
            let label = type_label(kind, tag);
            let counter = metrics.messages.get_or_create(&MessageLabels {
                direction: "inbound",
                r#type: label,
            });
            assert_eq!(counter.get(), 1, "{label}");
        }
    }
}
