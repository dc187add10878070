//! What the engine needs from storage, as object-safe async traits.
//!
//! Futures are boxed so the traits work both as generic bounds (`S: Store`) and as trait
//! objects (`Arc<dyn Ledger>`); one allocation per call is noise next to a database round
//! trip.

use std::fmt;
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

    /// Where each of `ids` was committed (height and index, the earliest if twice), `None`
    /// for those never committed: [`Ledger::transaction`] for many ids at once, in as few
    /// queries as the backend allows. The client API checks every submitted transaction
    /// with it, so a submission of N transactions costs one lookup, not N.
    fn committed_locations<'a>(
        &'a self,
        ids: &'a [Hash],
    ) -> StoreFuture<'a, Vec<Option<(u64, u32)>>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                out.push(self.transaction(id).await?.map(|t| (t.height, t.index)));
            }
            Ok(out)
        })
    }

    /// Starts a pipelined committer on this ledger: the way to store a stream of committed
    /// blocks, many per disk sync, each acknowledged once durable (see [`BlockSink`]).
    ///
    /// `max_blocks` is the most blocks one database transaction stores, from 1 to
    /// [`MAX_GROUP_COMMIT_BLOCKS`]; the queue holds `max_blocks` times
    /// [`GROUP_COMMIT_QUEUE_GROUPS`] blocks. The committer runs on the Tokio runtime of the
    /// calling thread: a thread outside any runtime (a synchronous driver) enters one first
    /// (`Handle::enter`), or gets an error. Appends through the committer and through
    /// [`Ledger::append_block`] are serialised, so they never interleave within a block.
    fn group_commit(&self, max_blocks: usize) -> Result<Box<dyn BlockSink>, StorageError>;
}

/// Blocks a group committer queues, in groups of its `max_blocks`: enough for the caller
/// to keep submitting while a group is synced or an id index merge (a few hundred ms) runs.
pub const GROUP_COMMIT_QUEUE_GROUPS: usize = 4;

/// Most blocks [`Ledger::group_commit`] accepts in one database transaction. A larger group
/// holds the first block's acknowledgement back for seconds while gaining nothing: groups
/// measured at 60 to 130 blocks already sync a thousand blocks a second (ADR 0006).
pub const MAX_GROUP_COMMIT_BLOCKS: usize = 1024;

// One group being committed while the next fills needs room for two groups at least; with
// fewer the caller would wait for every sync, which is what group commit exists to avoid.
const _: () = assert!(GROUP_COMMIT_QUEUE_GROUPS >= 2);
// The queue's capacity, the largest group times the groups queued, must be a bound a Tokio
// channel accepts, or starting a committer would panic.
const _: () = assert!(
    MAX_GROUP_COMMIT_BLOCKS * GROUP_COMMIT_QUEUE_GROUPS <= tokio::sync::Semaphore::MAX_PERMITS
);

/// A pipelined stream of committed blocks into the ledger, from [`Ledger::group_commit`].
///
/// Blocks are submitted in chain order. Each is checked, encoded and queued; a writer
/// stores whatever is queued, up to the committer's `max_blocks`, in one database
/// transaction (one disk sync). A block's [`CommitTicket`] resolves once the transaction
/// holding it has committed: the guarantee is [`Ledger::append_block`]'s (durable, whole,
/// with its certificate). Every verdict on a block reaches its ticket: a block refused
/// before it is queued (its certificate names another block, its header disagrees with its
/// body), one that does not follow the chain, or a database failure. A failed group is
/// retried block by block, so one bad block does not take its neighbours with it.
pub trait BlockSink: Send + Sync + fmt::Debug {
    /// Queues the next block, waiting while the queue is full, and returns its ticket.
    /// Fails only when the committer has stopped; the block's own outcome is on the ticket.
    fn submit<'a>(
        &'a self,
        block: Block,
        certificate: &'a CommitCertificate,
    ) -> StoreFuture<'a, CommitTicket>;

    /// Database transactions committed so far.
    fn commits(&self) -> u64;

    /// Stores everything queued (each ticket resolves), then stops the writer. Fails if the
    /// writer itself died.
    fn finish(self: Box<Self>) -> StoreFuture<'static, ()>;
}

/// Resolves when a submitted block is durable, or with the error that kept it out.
#[derive(Debug)]
#[must_use = "a block is acknowledged only when its ticket resolves"]
pub struct CommitTicket(tokio::sync::oneshot::Receiver<Result<(), StorageError>>);

/// The sending side of a [`CommitTicket`], held by whoever stores the block.
#[derive(Debug)]
pub struct CommitAck(tokio::sync::oneshot::Sender<Result<(), StorageError>>);

impl CommitTicket {
    /// A ticket and the acknowledgement that resolves it, for implementations of
    /// [`BlockSink`]. A ticket whose acknowledgement is dropped unresolved resolves with an
    /// error.
    pub fn pending() -> (CommitTicket, CommitAck) {
        let (ack, ticket) = tokio::sync::oneshot::channel();
        (CommitTicket(ticket), CommitAck(ack))
    }

    /// Waits until the block is durable; the error says why it is not stored.
    pub async fn wait(self) -> Result<(), StorageError> {
        self.0.await.unwrap_or_else(|_| {
            Err(StorageError::Config(
                "the group commit writer stopped before storing the block".to_owned(),
            ))
        })
    }
}

impl CommitAck {
    /// Resolves the ticket: `Ok` once the block is durable, or the error that kept it out.
    pub fn resolve(self, result: Result<(), StorageError>) {
        // A dropped ticket means nobody waits for this block any more; the outcome is moot.
        let _ = self.0.send(result);
    }
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

    /// Whether the consensus engine of the validator with `public_key` has run on this
    /// ledger before (table `consensus_runs`).
    fn consensus_ran<'a>(&'a self, public_key: &'a PublicKey) -> StoreFuture<'a, bool>;

    /// Records that the consensus engine of `public_key` runs on this ledger (at `at_ms`).
    fn record_consensus_run<'a>(
        &'a self,
        public_key: &'a PublicKey,
        at_ms: u64,
    ) -> StoreFuture<'a, ()>;
}

/// Everything a node persists. The engine is generic over this.
pub trait Store: Ledger + NodeRegistry {}

impl<T: Ledger + NodeRegistry> Store for T {}
