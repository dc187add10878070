//! What the engine needs from storage, as object-safe async traits.
//!
//! Futures are boxed so the traits work both as generic bounds (`S: Store`) and as trait
//! objects (`Arc<dyn Ledger>`); one allocation per call is noise next to a database round
//! trip.

use std::future::Future;
use std::pin::Pin;

use aegis_types::{Block, BlockHeader, CommitCertificate, Hash, PublicKey, Transaction};

use crate::StorageError;

/// A boxed, sendable storage future.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StorageError>> + Send + 'a>>;

/// Most blocks one range read returns.
pub const MAX_RANGE_BLOCKS: u64 = 1_000;

/// A block as stored, with its commit certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredBlock {
    pub block: Block,
    pub certificate: CommitCertificate,
    /// The readable columns as stored beside the canonical bytes. They are derived data; the
    /// verifier compares them with the header and the transactions.
    pub columns: BlockColumns,
}

/// The derived, human-readable columns of a `blocks` row and the ids of its transactions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockColumns {
    pub height: u64,
    pub hash: Hash,
    pub prev_hash: Hash,
    pub tx_root: Hash,
    pub proposer: PublicKey,
    pub view: u64,
    pub timestamp_ms: u64,
    pub tx_count: u32,
    /// The `id` column of each transaction row, in block order.
    pub tx_ids: Vec<Hash>,
}

/// A transaction and where it sits in the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredTransaction {
    pub transaction: Transaction,
    pub id: Hash,
    pub height: u64,
    /// Position in its block, from 0.
    pub index: u32,
}

/// The last stored block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tip {
    pub height: u64,
    pub hash: Hash,
}

/// The committed chain: blocks with their commit certificates, and transactions by id.
pub trait Ledger: Send + Sync {
    /// Stores a committed block and its certificate atomically: both are durable when this
    /// returns `Ok`, and neither is visible if it returns an error or the process dies.
    ///
    /// The block must be the next one (`tip + 1`, linking to the tip's hash) and the
    /// certificate must name it. Signatures are not checked here: the engine did that.
    /// Appending a block that is already stored (same height and hash) is a no-op, so an
    /// append retried after an error whose outcome was unknown is safe.
    fn append_block<'a>(
        &'a self,
        block: &'a Block,
        certificate: &'a CommitCertificate,
    ) -> StoreFuture<'a, ()>;

    /// Stores consecutive blocks in one transaction (one disk sync), for catch-up.
    fn append_blocks<'a>(&'a self, blocks: &'a [(Block, CommitCertificate)])
    -> StoreFuture<'a, ()>;

    /// Height of the last stored block; 0 when only the genesis exists.
    fn height(&self) -> StoreFuture<'_, u64>;

    /// The last stored block's height and hash, `None` for an empty ledger.
    fn tip(&self) -> StoreFuture<'_, Option<Tip>>;

    fn block_by_height(&self, height: u64) -> StoreFuture<'_, Option<StoredBlock>>;

    fn block_by_hash<'a>(&'a self, hash: &'a Hash) -> StoreFuture<'a, Option<StoredBlock>>;

    /// A header and its certificate, without the transactions.
    fn header(&self, height: u64) -> StoreFuture<'_, Option<(BlockHeader, CommitCertificate)>>;

    /// Blocks `from..=to`, at most [`MAX_RANGE_BLOCKS`], in height order; stops early at the tip.
    fn blocks(&self, from: u64, to: u64) -> StoreFuture<'_, Vec<StoredBlock>>;

    /// A transaction by id with its height and index (the earliest if it was committed twice).
    fn transaction<'a>(&'a self, id: &'a Hash) -> StoreFuture<'a, Option<StoredTransaction>>;
}

/// A row of the `nodes` table: a validator or a peer this node knows of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRecord {
    pub public_key: PublicKey,
    pub name: String,
    pub p2p_address: String,
    pub api_address: String,
    pub is_validator: bool,
    /// Milliseconds since the Unix epoch when the node was first recorded.
    pub first_seen_ms: u64,
    /// When it was last heard from, if ever.
    pub last_seen_ms: Option<u64>,
}

/// The `nodes` table: validators and known peers.
pub trait NodeRegistry: Send + Sync {
    /// Inserts or updates a node by public key (keeps the earliest `first_seen_ms` and the
    /// latest `last_seen_ms`).
    fn upsert_node<'a>(&'a self, node: &'a NodeRecord) -> StoreFuture<'a, ()>;

    /// Records that the node was heard from at `at_ms`; false if the node is unknown.
    fn mark_seen<'a>(&'a self, public_key: &'a PublicKey, at_ms: u64) -> StoreFuture<'a, bool>;

    /// Every known node, validators first, then by name.
    fn nodes(&self) -> StoreFuture<'_, Vec<NodeRecord>>;
}

/// The state consensus needs after a restart, as named opaque blobs under
/// `data/consensus/`. The consensus core decides what the bytes mean.
pub trait ConsensusStateStore: Send + Sync {
    /// Writes `bytes` under `name`; durable (file and directory synced) when it returns `Ok`.
    /// A crash leaves either the old or the new contents, never a mix.
    fn save_state<'a>(&'a self, name: &'a str, bytes: &'a [u8]) -> StoreFuture<'a, ()>;

    /// The last saved bytes under `name`, `None` if never saved (or removed).
    fn load_state<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<Vec<u8>>>;

    fn remove_state<'a>(&'a self, name: &'a str) -> StoreFuture<'a, ()>;

    /// Names of every saved blob, sorted.
    fn state_names(&self) -> StoreFuture<'_, Vec<String>>;
}

/// Everything a node persists. The engine is generic over this.
pub trait Store: Ledger + NodeRegistry + ConsensusStateStore {}

impl<T: Ledger + NodeRegistry + ConsensusStateStore> Store for T {}
