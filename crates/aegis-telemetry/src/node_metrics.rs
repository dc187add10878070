//! Metrics structs of the running node's components that have no crate of their own to keep
//! them in (STYLE.md, item 10: one documented field per metric, registered into the node's
//! [`Metrics`], passed in, never global): consensus, mempool, storage writes and sync.
//! The component that owns the number updates the field; the registry only reads it.
//!
//! Who updates what (the node's wiring in the `aegis` binary):
//! - [`ConsensusMetrics`]: the engine's driver, on every commit, view change, failure and
//!   rejected message;
//! - [`MempoolMetrics`]: whoever owns the mempool, after each admission and commit;
//! - [`StorageMetrics`]: the block sink, around each durable write;
//! - [`SyncMetrics`]: the sync task, as it learns the network's height and fetches blocks.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Unit;

use crate::Metrics;

/// Buckets of `aegis_consensus_commit_latency_seconds`: 5 ms to 30 s, proposal to commit.
pub const COMMIT_LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Buckets of `aegis_storage_write_latency_seconds`: 0.5 ms to 5 s, one durable write.
pub const STORAGE_WRITE_LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// The label of `aegis_consensus_byzantine_events_total`: why a message was rejected (the
/// consensus core's reject reason, such as `bad_signature`, `equivocation`, `wrong_view`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

/// `aegis_consensus_*`.
#[derive(Clone, Debug)]
pub struct ConsensusMetrics {
    /// `aegis_consensus_height`: the last committed (durable) height.
    pub height: Gauge,
    /// `aegis_consensus_view`: the current PBFT view (Raft term).
    pub view: Gauge,
    /// `aegis_consensus_view_changes_total`: view changes this node took part in.
    pub view_changes: Counter,
    /// `aegis_consensus_commit_latency_seconds`: from a block's proposal to its commit on
    /// this node.
    pub commit_latency: Histogram,
    /// `aegis_consensus_failures_total`: rounds that ended without a commit (timeouts).
    pub failures: Counter,
    /// `aegis_consensus_byzantine_events_total{reason}`: consensus messages rejected, by
    /// reason (evidence of a faulty or malicious peer).
    pub byzantine_events: Family<ReasonLabels, Counter>,
    /// `aegis_consensus_committed_transactions_total`: transactions in committed blocks.
    pub committed_transactions: Counter,
}

impl Default for ConsensusMetrics {
    fn default() -> ConsensusMetrics {
        ConsensusMetrics::new()
    }
}

impl ConsensusMetrics {
    pub fn new() -> ConsensusMetrics {
        ConsensusMetrics {
            height: Gauge::default(),
            view: Gauge::default(),
            view_changes: Counter::default(),
            commit_latency: Histogram::new(COMMIT_LATENCY_BUCKETS),
            failures: Counter::default(),
            byzantine_events: Family::default(),
            committed_transactions: Counter::default(),
        }
    }

    /// Registers every field into `metrics`.
    pub fn register(&self, metrics: &Metrics) {
        metrics.register(
            "consensus_height",
            "Last committed block height",
            self.height.clone(),
        );
        metrics.register(
            "consensus_view",
            "Current consensus view (PBFT) or term (Raft)",
            self.view.clone(),
        );
        metrics.register(
            "consensus_view_changes",
            "View changes this node took part in",
            self.view_changes.clone(),
        );
        metrics.register_with_unit(
            "consensus_commit_latency",
            "Time from a block's proposal to its commit on this node",
            Unit::Seconds,
            self.commit_latency.clone(),
        );
        metrics.register(
            "consensus_failures",
            "Consensus rounds that ended without a commit",
            self.failures.clone(),
        );
        metrics.register(
            "consensus_byzantine_events",
            "Consensus messages rejected as faulty or malicious, by reason",
            self.byzantine_events.clone(),
        );
        metrics.register(
            "consensus_committed_transactions",
            "Transactions in committed blocks",
            self.committed_transactions.clone(),
        );
    }

    /// Exports `reason` at zero before any such event.
    pub fn declare_byzantine_reason(&self, reason: &str) {
        drop(self.byzantine_events.get_or_create(&ReasonLabels {
            reason: reason.to_owned(),
        }));
    }

    /// Counts one rejected consensus message.
    pub fn byzantine_event(&self, reason: &str) {
        self.byzantine_events
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }
}

/// `aegis_mempool_*`.
#[derive(Clone, Debug, Default)]
pub struct MempoolMetrics {
    /// `aegis_mempool_size`: transactions pending.
    pub size: Gauge,
    /// `aegis_mempool_bytes`: their summed canonical encoded sizes.
    pub bytes: Gauge,
}

impl MempoolMetrics {
    pub fn new() -> MempoolMetrics {
        MempoolMetrics::default()
    }

    pub fn register(&self, metrics: &Metrics) {
        metrics.register("mempool_size", "Transactions pending", self.size.clone());
        metrics.register(
            "mempool_bytes",
            "Encoded bytes of the transactions pending",
            self.bytes.clone(),
        );
    }

    /// Sets both gauges from the pool's `len()` and `bytes()`.
    pub fn set(&self, transactions: usize, bytes: usize) {
        self.size
            .set(i64::try_from(transactions).unwrap_or(i64::MAX));
        self.bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
}

/// `aegis_storage_*`.
#[derive(Clone, Debug)]
pub struct StorageMetrics {
    /// `aegis_storage_write_latency_seconds`: one durable write (a group of blocks with
    /// their certificates), from submission to acknowledgement.
    pub write_latency: Histogram,
}

impl Default for StorageMetrics {
    fn default() -> StorageMetrics {
        StorageMetrics::new()
    }
}

impl StorageMetrics {
    pub fn new() -> StorageMetrics {
        StorageMetrics {
            write_latency: Histogram::new(STORAGE_WRITE_LATENCY_BUCKETS),
        }
    }

    pub fn register(&self, metrics: &Metrics) {
        metrics.register_with_unit(
            "storage_write_latency",
            "Time to make committed blocks durable",
            Unit::Seconds,
            self.write_latency.clone(),
        );
    }
}

/// `aegis_sync_*`: how far the node is from the network and how catching up goes.
#[derive(Clone, Debug, Default)]
pub struct SyncMetrics {
    /// `aegis_sync_target_height`: the highest height peers are known to have (0 unknown).
    pub target_height: Gauge,
    /// `aegis_sync_blocks_behind`: target height minus this node's height (0 when synced).
    pub blocks_behind: Gauge,
    /// `aegis_sync_blocks_fetched_total`: blocks fetched from peers by sync.
    pub blocks_fetched: Counter,
    /// `aegis_sync_invalid_blocks_total`: sync replies refused because a block or its
    /// certificate was invalid (the peer that served it is left out of sync).
    pub invalid_blocks: Counter,
}

impl SyncMetrics {
    pub fn new() -> SyncMetrics {
        SyncMetrics::default()
    }

    pub fn register(&self, metrics: &Metrics) {
        metrics.register(
            "sync_target_height",
            "Highest block height peers are known to have",
            self.target_height.clone(),
        );
        metrics.register(
            "sync_blocks_behind",
            "Blocks this node is behind the network",
            self.blocks_behind.clone(),
        );
        metrics.register(
            "sync_blocks_fetched",
            "Blocks fetched from peers by sync",
            self.blocks_fetched.clone(),
        );
        metrics.register(
            "sync_invalid_blocks",
            "Sync replies refused because a block or its certificate was invalid",
            self.invalid_blocks.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn every_metric_the_issue_names_is_exported() {
        let metrics = Metrics::new();
        let consensus = ConsensusMetrics::new();
        consensus.register(&metrics);
        let mempool = MempoolMetrics::new();
        mempool.register(&metrics);
        StorageMetrics::new().register(&metrics);
        SyncMetrics::new().register(&metrics);
        consensus.height.set(7);
        consensus.byzantine_event("bad_signature");
        consensus.commit_latency.observe(0.2);
        mempool.set(3, 900);
        let text = metrics.encode_text().unwrap();
        for sample in [
            "aegis_consensus_height 7",
            "aegis_consensus_view 0",
            "aegis_consensus_view_changes_total 0",
            "aegis_consensus_commit_latency_seconds_bucket{le=\"0.25\"} 1",
            "aegis_consensus_failures_total 0",
            "aegis_consensus_byzantine_events_total{reason=\"bad_signature\"} 1",
            "aegis_consensus_committed_transactions_total 0",
            "aegis_mempool_size 3",
            "aegis_mempool_bytes 900",
            "aegis_storage_write_latency_seconds_count 0",
            "aegis_sync_target_height 0",
            "aegis_sync_blocks_behind 0",
            "aegis_sync_blocks_fetched_total 0",
        ] {
            assert!(text.contains(sample), "missing {sample} in:\n{text}");
        }
    }
}
