//! What the endpoints report, passed in by the node's wiring: [`NodeStatus`] (shared by
//! `/health` and `/status`) and the [`LedgerStatus`] it holds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use aegis_p2p::P2pNetwork;
use aegis_types::ValidatorSet;

/// The ledger's state as the HTTP endpoints report it, updated by whoever owns the store
/// (the binary probes it periodically). A storage fault makes `/health` answer 503
/// `unhealthy` with the reason, until the fault clears.
#[derive(Debug, Default)]
pub struct LedgerStatus {
    height: AtomicU64,
    fault: std::sync::Mutex<Option<String>>,
}

impl LedgerStatus {
    pub fn set_height(&self, height: u64) {
        self.height.store(height, Ordering::Relaxed);
    }

    pub fn height(&self) -> u64 {
        self.height.load(Ordering::Relaxed)
    }

    /// Records a storage fault (`Some(reason)`) or its end (`None`).
    pub fn set_fault(&self, fault: Option<String>) {
        if let Ok(mut slot) = self.fault.lock() {
            *slot = fault;
        }
    }

    pub fn fault(&self) -> Option<String> {
        self.fault.lock().ok().and_then(|slot| slot.clone())
    }
}

/// Everything `/health` and `/status` read: the node's name, its P2P handle (peers, bans,
/// listen address), the size of the validator set, the ledger, the metrics registry and
/// a count of received messages. Shared as an `Arc` between the servers and the
/// components that update it.
#[derive(Debug)]
pub struct NodeStatus {
    node_id: String,
    network: P2pNetwork,
    validators: usize,
    quorum: usize,
    ledger: Arc<LedgerStatus>,
    metrics: Arc<aegis_telemetry::Metrics>,
    started: Instant,
    messages_received: AtomicU64,
}

impl NodeStatus {
    /// `node_id` is the node's name (`node.id`); the uptime counts from now.
    pub fn new(
        node_id: String,
        validators: &ValidatorSet,
        network: P2pNetwork,
        ledger: Arc<LedgerStatus>,
        metrics: Arc<aegis_telemetry::Metrics>,
    ) -> NodeStatus {
        NodeStatus {
            node_id,
            network,
            validators: validators.len(),
            quorum: validators.quorum(),
            ledger,
            metrics,
            started: Instant::now(),
            messages_received: AtomicU64::new(0),
        }
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    pub fn network(&self) -> &P2pNetwork {
        &self.network
    }

    pub fn ledger(&self) -> &LedgerStatus {
        &self.ledger
    }

    pub fn metrics(&self) -> &aegis_telemetry::Metrics {
        &self.metrics
    }

    /// Validators in the genesis set.
    pub fn validator_count(&self) -> usize {
        self.validators
    }

    pub fn uptime_seconds(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Counts `count` messages taken from the P2P inbox (shown as
    /// `p2p.messages_received` in `/status`).
    pub fn add_messages_received(&self, count: u64) {
        self.messages_received.fetch_add(count, Ordering::Relaxed);
    }

    pub fn messages_received(&self) -> u64 {
        self.messages_received.load(Ordering::Relaxed)
    }

    /// `sync_status` from what the node can observe without consensus: `isolated` with no
    /// peers, `connecting` below a quorum of validators, `idle` with a quorum connected
    /// (nothing to sync past genesis until consensus runs).
    pub fn sync_status(&self, peers: usize) -> &'static str {
        let reachable = peers + usize::from(self.network.validator_id().is_some());
        if self.validators > 1 && peers == 0 {
            "isolated"
        } else if reachable < self.quorum {
            "connecting"
        } else {
            "idle"
        }
    }
}
