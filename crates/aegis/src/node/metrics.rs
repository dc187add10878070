//! The consensus, mempool, storage and sync metrics of a running node: one field per metric,
//! registered into the node's registry (STYLE.md item 10), updated by the driver thread.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Unit;

/// Labels of the by-reason families: a reject reason's stable label.
pub type ReasonLabels = Vec<(&'static str, &'static str)>;

#[derive(Debug, Clone)]
pub struct NodeMetrics {
    /// `aegis_consensus_height`: last committed and stored height.
    height: Gauge,
    /// `aegis_consensus_view`: the PBFT view (Raft term).
    view: Gauge,
    /// `aegis_consensus_view_changes_total`: view changes this node started.
    view_changes: Counter,
    /// `aegis_consensus_commit_latency_seconds`: from the proposal's timestamp to the block
    /// being stored on this node.
    commit_latency: Histogram,
    /// `aegis_consensus_failures_total{kind}`: rounds that failed (`view_timeout`), engine
    /// stops (`engine`).
    failures: Family<ReasonLabels, Counter>,
    /// `aegis_consensus_byzantine_events_total{reason}`: refused messages that are evidence
    /// of a Byzantine peer.
    byzantine: Family<ReasonLabels, Counter>,
    /// `aegis_consensus_rejected_total{reason}`: every refused message, by reason.
    rejected: Family<ReasonLabels, Counter>,
    /// `aegis_consensus_committed_transactions_total`.
    committed_transactions: Counter,
    /// `aegis_mempool_size` and `aegis_mempool_bytes`.
    mempool_size: Gauge,
    mempool_bytes: Gauge,
    /// `aegis_storage_write_latency_seconds`: one group-commit flush (many blocks, one sync).
    storage_write: Histogram,
    /// `aegis_storage_submit_latency_seconds`: handing a block to the group committer
    /// (waits only while its queue is full).
    storage_submit: Histogram,
    /// `aegis_sync_network_height`: the highest height peers are known to have reached.
    network_height: Gauge,
}

impl Default for NodeMetrics {
    fn default() -> Self {
        NodeMetrics {
            height: Gauge::default(),
            view: Gauge::default(),
            view_changes: Counter::default(),
            commit_latency: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            failures: Family::default(),
            byzantine: Family::default(),
            rejected: Family::default(),
            committed_transactions: Counter::default(),
            mempool_size: Gauge::default(),
            mempool_bytes: Gauge::default(),
            storage_write: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            storage_submit: Histogram::new(exponential_buckets(0.00001, 2.0, 16)),
            network_height: Gauge::default(),
        }
    }
}

impl NodeMetrics {
    pub fn register(&self, metrics: &aegis_telemetry::Metrics) {
        metrics.register(
            "consensus_height",
            "Last committed block height",
            self.height.clone(),
        );
        metrics.register("consensus_view", "Current PBFT view", self.view.clone());
        metrics.register(
            "consensus_view_changes",
            "View changes this node started",
            self.view_changes.clone(),
        );
        metrics.register_with_unit(
            "consensus_commit_latency",
            "From a block's proposal to it being stored on this node",
            Unit::Seconds,
            self.commit_latency.clone(),
        );
        metrics.register(
            "consensus_failures",
            "Consensus failures by kind (view_timeout, engine)",
            self.failures.clone(),
        );
        metrics.register(
            "consensus_byzantine_events",
            "Refused messages that are evidence of a Byzantine peer, by reason",
            self.byzantine.clone(),
        );
        metrics.register(
            "consensus_rejected",
            "Refused consensus messages, by reason",
            self.rejected.clone(),
        );
        metrics.register(
            "consensus_committed_transactions",
            "Transactions in committed blocks",
            self.committed_transactions.clone(),
        );
        metrics.register(
            "mempool_size",
            "Transactions in the mempool",
            self.mempool_size.clone(),
        );
        metrics.register_with_unit(
            "mempool",
            "Bytes of transactions in the mempool",
            Unit::Bytes,
            self.mempool_bytes.clone(),
        );
        metrics.register_with_unit(
            "storage_write_latency",
            "One group-commit flush of committed blocks (one disk sync)",
            Unit::Seconds,
            self.storage_write.clone(),
        );
        metrics.register_with_unit(
            "storage_submit_latency",
            "Handing a committed block to the group committer",
            Unit::Seconds,
            self.storage_submit.clone(),
        );
        metrics.register(
            "sync_network_height",
            "Highest block height peers are known to have reached",
            self.network_height.clone(),
        );
    }

    pub fn height(&self, height: u64) {
        self.height.set(i64::try_from(height).unwrap_or(i64::MAX));
    }

    pub fn view(&self, view: u64) {
        self.view.set(i64::try_from(view).unwrap_or(i64::MAX));
    }

    pub fn view_change(&self) {
        self.view_changes.inc();
        self.failures
            .get_or_create(&vec![("kind", "view_timeout")])
            .inc();
    }

    pub fn engine_failure(&self) {
        self.failures.get_or_create(&vec![("kind", "engine")]).inc();
    }

    pub fn rejected(&self, reason: &'static str, byzantine: bool) {
        self.rejected.get_or_create(&vec![("reason", reason)]).inc();
        if byzantine {
            self.byzantine
                .get_or_create(&vec![("reason", reason)])
                .inc();
        }
    }

    pub fn committed(&self, transactions: usize, latency_seconds: Option<f64>) {
        self.committed_transactions.inc_by(transactions as u64);
        if let Some(latency) = latency_seconds {
            self.commit_latency.observe(latency);
        }
    }

    pub fn mempool(&self, size: usize, bytes: usize) {
        self.mempool_size
            .set(i64::try_from(size).unwrap_or(i64::MAX));
        self.mempool_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    pub fn storage_write_seconds(&self, seconds: f64) {
        self.storage_write.observe(seconds);
    }

    pub fn storage_submit_seconds(&self, seconds: f64) {
        self.storage_submit.observe(seconds);
    }

    pub fn network_height(&self, height: u64) {
        self.network_height
            .set(i64::try_from(height).unwrap_or(i64::MAX));
    }
}
