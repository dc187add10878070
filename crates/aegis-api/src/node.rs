//! What the HTTP endpoints need from the running node, as one object-safe trait. The `aegis`
//! binary implements it over the engine's driver thread, its mempool and the ledger; the
//! endpoints never see consensus internals. Reads of committed data go to the ledger
//! directly through `aegis_storage::Ledger`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use aegis_mempool::Admission;
use aegis_types::{Hash, Transaction};
use tokio::sync::broadcast;

use crate::ApiError;

/// A boxed, sendable future of a node call.
pub type NodeFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ApiError>> + Send + 'a>>;

/// A block as it became durable on this node, for `GET /v1/events` and for clients waiting
/// for their transactions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedBlock {
    pub height: u64,
    pub hash: Hash,
    /// Ids of its transactions, in block order.
    pub tx_ids: Vec<Hash>,
}

/// Whether the node keeps up with the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncState {
    /// At the height its peers report (or no evidence of being behind).
    Synced,
    /// Fetching blocks up to `target`.
    Syncing { target: u64 },
    /// Behind, and nothing committed or fetched for a while.
    Stalled,
}

impl SyncState {
    /// `sync_status` in `/status`.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::Synced => "synced",
            SyncState::Syncing { .. } => "syncing",
            SyncState::Stalled => "stalled",
        }
    }
}

/// The consensus side of `/status`, `/health` and the metrics, as of the last flush.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsensusView {
    /// `pbft` or `raft`.
    pub algorithm: &'static str,
    /// Whether the engine runs (false before start and after shutdown began).
    pub running: bool,
    /// Last committed (durable) height, 0 before the first block.
    pub height: u64,
    /// Its hash (the genesis hash before the first block).
    pub latest_hash: Hash,
    /// PBFT's view, Raft's term.
    pub view: u64,
    /// The primary's `node_id` (its name in the genesis), when one is known.
    pub primary: Option<String>,
    /// `leader`, `follower` or `electing`.
    pub role: &'static str,
    pub sync: SyncState,
    /// The highest height peers are known to have reached (0 when unknown).
    pub network_height: u64,
    pub mempool_transactions: usize,
    pub mempool_bytes: usize,
    /// Unix milliseconds of the last commit, if any.
    pub last_commit_ms: Option<u64>,
}

/// The running node, as the HTTP endpoints see it.
pub trait NodeApi: Send + Sync + std::fmt::Debug + 'static {
    /// Admits client transactions: exactly one answer per transaction, in order. Fails with
    /// [`ApiError::Unavailable`] while the node is starting or stopping.
    fn submit(&self, transactions: Vec<Transaction>) -> NodeFuture<'_, Vec<Admission>>;

    /// A transaction waiting in the mempool.
    fn pending(&self, id: Hash) -> NodeFuture<'_, Option<Transaction>>;

    /// Blocks as they become durable, in height order. A subscriber that falls behind the
    /// channel's bound gets `RecvError::Lagged` and resumes from the ledger.
    fn subscribe(&self) -> broadcast::Receiver<Arc<CommittedBlock>>;

    /// The consensus side of the node's state.
    fn consensus(&self) -> ConsensusView;
}
