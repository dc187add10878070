//! The running node's consensus, mempool, storage and sync metrics: `aegis-telemetry`'s
//! structs (one documented field per metric), registered into the node's registry and
//! updated by the engine's thread, plus the node-only ones below.

use aegis_telemetry::{ConsensusMetrics, MempoolMetrics, StorageMetrics, SyncMetrics};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Unit;

/// Labels of `aegis_consensus_rejected_total`.
pub type ReasonLabels = Vec<(&'static str, &'static str)>;

#[derive(Debug, Clone)]
pub struct NodeMetrics {
    pub consensus: ConsensusMetrics,
    pub mempool: MempoolMetrics,
    pub storage: StorageMetrics,
    pub sync: SyncMetrics,
    /// `aegis_consensus_rejected_total{reason}`: every refused message, Byzantine evidence or
    /// not (stale, duplicate, out of window), by reason.
    rejected: Family<ReasonLabels, Counter>,
    /// `aegis_storage_submit_latency_seconds`: handing a block to the group committer (waits
    /// only while its queue is full).
    storage_submit: Histogram,
    /// `aegis_mempool_resent_total`: pending transactions this node queued for the leader again
    /// because they were not committed [`super::engine::RESEND_AFTER_MS`] after admission.
    resent: Counter,
    /// `aegis_mempool_forwarded_dropped_total`: transactions forwarded by peers and dropped
    /// before admission because the engine's queue held
    /// [`super::engine::MAX_QUEUED_FORWARDED_BYTES`] of them already (the sender sends them
    /// again).
    forwarded_dropped: Counter,
    /// `aegis_api_submissions_busy_total`: submitted transactions refused with 503 because
    /// [`super::engine::MAX_QUEUED_SUBMITTED_BYTES`] of submissions already waited for the
    /// engine.
    submissions_busy: Counter,
}

impl Default for NodeMetrics {
    fn default() -> Self {
        NodeMetrics {
            consensus: ConsensusMetrics::new(),
            mempool: MempoolMetrics::new(),
            storage: StorageMetrics::new(),
            sync: SyncMetrics::new(),
            rejected: Family::default(),
            storage_submit: Histogram::new(exponential_buckets(0.00001, 4.0, 10)),
            resent: Counter::default(),
            forwarded_dropped: Counter::default(),
            submissions_busy: Counter::default(),
        }
    }
}

fn gauge_value(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl NodeMetrics {
    pub fn register(&self, metrics: &aegis_telemetry::Metrics) {
        self.consensus.register(metrics);
        self.mempool.register(metrics);
        self.storage.register(metrics);
        self.sync.register(metrics);
        metrics.register(
            "consensus_rejected",
            "Refused consensus messages, by reason",
            self.rejected.clone(),
        );
        metrics.register_with_unit(
            "storage_submit_latency",
            "Handing a committed block to the group committer",
            Unit::Seconds,
            self.storage_submit.clone(),
        );
        metrics.register(
            "mempool_resent",
            "Pending transactions sent to the leader again (not committed in time)",
            self.resent.clone(),
        );
        metrics.register(
            "mempool_forwarded_dropped",
            "Forwarded transactions dropped before admission (engine queue full; the sender resends)",
            self.forwarded_dropped.clone(),
        );
        metrics.register(
            "api_submissions_busy",
            "Submitted transactions refused with 503: too many bytes of submissions waited for the engine",
            self.submissions_busy.clone(),
        );
    }

    pub fn submissions_busy(&self, transactions: usize) {
        self.submissions_busy.inc_by(transactions as u64);
    }

    pub fn resent(&self, transactions: usize) {
        self.resent.inc_by(transactions as u64);
    }

    pub fn forwarded_dropped(&self, transactions: usize) {
        self.forwarded_dropped.inc_by(transactions as u64);
    }

    /// Exports every refusal reason of the protocol at zero (`labels` is its
    /// `Reject::LABELS`), so a dashboard or alert sees each series before the first refusal.
    pub fn declare_rejections(&self, labels: &[(&'static str, bool)]) {
        for (reason, can_be_evidence) in labels {
            drop(self.rejected.get_or_create(&vec![("reason", *reason)]));
            if *can_be_evidence {
                self.consensus.declare_byzantine_reason(reason);
            }
        }
    }

    pub fn height(&self, height: u64) {
        self.consensus.height.set(gauge_value(height));
    }

    pub fn view(&self, view: u64) {
        self.consensus.view.set(gauge_value(view));
    }

    /// A view change this node started (its request or view-change timer ran out).
    pub fn view_change(&self) {
        self.consensus.view_changes.inc();
        self.consensus.failures.inc();
    }

    /// The engine stopped on an error.
    pub fn engine_failure(&self) {
        self.consensus.failures.inc();
    }

    pub fn rejected(&self, reason: &'static str, byzantine: bool) {
        self.rejected.get_or_create(&vec![("reason", reason)]).inc();
        if byzantine {
            self.consensus.byzantine_event(reason);
        }
    }

    pub fn committed(&self, transactions: usize, latency_seconds: Option<f64>) {
        self.consensus
            .committed_transactions
            .inc_by(transactions as u64);
        if let Some(latency) = latency_seconds {
            self.consensus.commit_latency.observe(latency);
        }
    }

    pub fn mempool(&self, size: usize, bytes: usize) {
        self.mempool.set(size, bytes);
    }

    pub fn storage_write_seconds(&self, seconds: f64) {
        self.storage.write_latency.observe(seconds);
    }

    pub fn storage_submit_seconds(&self, seconds: f64) {
        self.storage_submit.observe(seconds);
    }

    /// The network's height as far as this node knows, and how far behind it is.
    pub fn sync_progress(&self, height: u64, network_height: u64) {
        self.sync.target_height.set(gauge_value(network_height));
        self.sync
            .blocks_behind
            .set(gauge_value(network_height.saturating_sub(height)));
    }

    pub fn blocks_fetched(&self, count: usize) {
        self.sync.blocks_fetched.inc_by(count as u64);
    }
}
