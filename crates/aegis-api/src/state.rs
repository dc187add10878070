//! What the endpoints report and serve, passed in by the node's wiring: [`NodeStatus`]
//! (shared by every endpoint), the [`LedgerStatus`] it holds, and the committed ledger and
//! running node attached to it.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use aegis_p2p::P2pNetwork;
use aegis_storage::Ledger;
use aegis_types::{Genesis, PublicKey, ValidatorSet};

use crate::{ApiError, NodeApi};

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

/// Everything the endpoints read: the node's name, its P2P handle (peers, bans, listen
/// address), the size of the validator set, the ledger's status, the metrics registry and a
/// count of received messages; and, once attached, the committed ledger
/// ([`attach_ledger`](Self::attach_ledger)) and the running node
/// ([`attach_node`](Self::attach_node)). Shared as an `Arc` between the servers and the
/// components that update it.
///
/// Before a node is attached the client API answers 503 for what needs one (submitting,
/// pending transactions, events), and `/health` and `/status` report what the node can
/// observe without consensus, as before the engine existed.
pub struct NodeStatus {
    node_id: String,
    network: P2pNetwork,
    validators: usize,
    /// Each genesis validator's name and key, in genesis order.
    members: Vec<(String, PublicKey)>,
    quorum: usize,
    ledger: Arc<LedgerStatus>,
    metrics: Arc<aegis_telemetry::Metrics>,
    started: Instant,
    messages_received: AtomicU64,
    chain: Option<ChainInfo>,
    store: OnceLock<Arc<dyn Ledger>>,
    node: OnceLock<Arc<dyn NodeApi>>,
}

/// What the genesis says that `/status` reports before the engine runs.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ChainInfo {
    chain_id: String,
    algorithm: &'static str,
}

impl fmt::Debug for NodeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeStatus")
            .field("node_id", &self.node_id)
            .field("network", &self.network)
            .field("validators", &self.validators)
            .field("ledger", &self.ledger)
            .field("chain", &self.chain)
            .field("store_attached", &self.store.get().is_some())
            .field("node", &self.node.get())
            .finish_non_exhaustive()
    }
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
            members: validators
                .validators()
                .iter()
                .map(|validator| (validator.name.clone(), validator.public_key))
                .collect(),
            quorum: validators.quorum(),
            ledger,
            metrics,
            started: Instant::now(),
            messages_received: AtomicU64::new(0),
            chain: None,
            store: OnceLock::new(),
            node: OnceLock::new(),
        }
    }

    /// Records the chain id and consensus algorithm of `genesis`, for `/status` (and the
    /// API's messages) before a node is attached.
    pub fn with_genesis(mut self, genesis: &Genesis) -> NodeStatus {
        self.chain = Some(ChainInfo {
            chain_id: genesis.chain_id.clone(),
            algorithm: genesis.consensus.algorithm.as_str(),
        });
        self
    }

    /// Attaches the committed ledger the client API reads (blocks, committed transactions,
    /// proofs, event replay). Once only: false (and nothing changes) if one is attached.
    pub fn attach_ledger(&self, ledger: Arc<dyn Ledger>) -> bool {
        self.store.set(ledger).is_ok()
    }

    /// Attaches the running node (the engine's side: submitting, pending transactions,
    /// committed-block events, the consensus view). Once only: false (and nothing changes)
    /// if one is attached. A stopping node keeps answering through it: `submit` refuses
    /// with 503 and `consensus().running` turns false, which turns `/health` unhealthy.
    pub fn attach_node(&self, node: Arc<dyn NodeApi>) -> bool {
        self.node.set(node).is_ok()
    }

    /// The attached ledger, if any.
    pub fn ledger_store(&self) -> Option<&Arc<dyn Ledger>> {
        self.store.get()
    }

    /// The attached node, if any.
    pub fn node(&self) -> Option<&Arc<dyn NodeApi>> {
        self.node.get()
    }

    /// The attached ledger, or the 503 the client API answers without one.
    pub fn require_ledger(&self) -> Result<&Arc<dyn Ledger>, ApiError> {
        self.store.get().ok_or_else(|| ApiError::Unavailable {
            message: "the ledger is not open yet".into(),
            retry_after: None,
        })
    }

    /// The attached node, or the 503 the client API answers without one.
    pub fn require_node(&self) -> Result<&Arc<dyn NodeApi>, ApiError> {
        self.node.get().ok_or_else(|| ApiError::Unavailable {
            message: "the consensus engine is not running on this node".into(),
            retry_after: None,
        })
    }

    /// The chain id from the genesis, when given ([`with_genesis`](Self::with_genesis)).
    pub fn chain_id(&self) -> Option<&str> {
        self.chain.as_ref().map(|chain| chain.chain_id.as_str())
    }

    /// `pbft` or `raft`: the running node's, else the genesis's, when known.
    pub fn algorithm(&self) -> Option<&'static str> {
        match self.node.get() {
            Some(node) => Some(node.consensus().algorithm),
            None => self.chain.as_ref().map(|chain| chain.algorithm),
        }
    }

    /// The quorum of the validator set.
    pub fn quorum(&self) -> usize {
        self.quorum
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

    /// Each genesis validator's name and public key, in genesis order (index = validator id).
    pub fn validator_members(&self) -> &[(String, PublicKey)] {
        &self.members
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
