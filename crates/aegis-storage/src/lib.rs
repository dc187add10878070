//! AEGIS storage.
//!
//! This crate owns everything a node persists:
//! - the **ledger** ([`Ledger`]): committed blocks with their commit certificates and their
//!   transactions, in the `blocks` and `transactions` tables of embedded SQLite
//!   (`$AEGIS_HOME/data/blockchain.db`, the default) or PostgreSQL ([`SqlStore`]), and the
//!   pipelined group commit a node stores its stream of committed blocks through
//!   ([`Ledger::group_commit`], a [`BlockSink`]);
//! - the **`nodes` table** ([`NodeRegistry`]): validators and known peers, last seen;
//! - the **consensus state** a restart needs ([`ConsensusStateStore`]): named blobs in files
//!   under `data/consensus/`, each replaced atomically ([`FileConsensusState`]);
//! - the schema and its versioned, embedded migrations ([`schema`]);
//! - offline **verification** of a stored chain against its genesis ([`verify_chain`]) and a
//!   cheap start-up check of the tip ([`check_tip`]);
//! - the storage benchmark ([`bench`]).
//!
//! A block is written with its certificate in one database transaction: after a crash it is
//! there whole or not at all. See `docs/storage.md` and
//! `docs/adr/0004-storage-durability.md`.

pub mod bench;
pub mod config;
pub mod consensus_state;
mod error;
pub mod fixtures;
mod id_index;
pub mod schema;
mod sql;
mod traits;
pub mod verify;

#[cfg(feature = "testing")]
pub mod testing;

pub use config::{Backend, StoreConfig, redact_url};
pub use consensus_state::FileConsensusState;
pub use error::StorageError;
pub use id_index::{ID_INDEX_FANOUT, ID_INDEX_LEVELS, ID_INDEX_MERGE_ROWS, ID_INDEX_SLICE_MERGES};
pub use schema::{MigrationReport, SCHEMA_VERSION};
pub use sql::{GroupCommitter, OpenMode, SqlStore};
pub use traits::{
    BlockColumns, BlockSink, CommitAck, CommitTicket, ConsensusStateStore,
    GROUP_COMMIT_QUEUE_GROUPS, Ledger, MAX_GROUP_COMMIT_BLOCKS, MAX_RANGE_BLOCKS, NodeRecord,
    NodeRegistry, Store, StoreFuture, StoredBlock, StoredTransaction, Tip,
};
pub use verify::{ChainFault, VerifyReport, check_tip, verify_chain};

/// Everything a node persists: the ledger database and the consensus state directory.
#[derive(Clone, Debug)]
pub struct NodeStore {
    pub ledger: SqlStore,
    pub consensus: FileConsensusState,
}

impl NodeStore {
    /// Opens (creating or migrating) the ledger and `consensus_dir`.
    pub async fn open(
        config: &StoreConfig,
        consensus_dir: impl Into<std::path::PathBuf>,
    ) -> Result<NodeStore, StorageError> {
        let consensus = FileConsensusState::open(consensus_dir)?;
        let ledger = SqlStore::open(config).await?;
        Ok(NodeStore { ledger, consensus })
    }
}

impl Ledger for NodeStore {
    fn append_block<'a>(
        &'a self,
        block: &'a aegis_types::Block,
        certificate: &'a aegis_types::CommitCertificate,
    ) -> StoreFuture<'a, ()> {
        self.ledger.append_block(block, certificate)
    }
    fn append_blocks<'a>(
        &'a self,
        blocks: &'a [(aegis_types::Block, aegis_types::CommitCertificate)],
    ) -> StoreFuture<'a, ()> {
        self.ledger.append_blocks(blocks)
    }
    fn height(&self) -> StoreFuture<'_, u64> {
        self.ledger.height()
    }
    fn tip(&self) -> StoreFuture<'_, Option<Tip>> {
        self.ledger.tip()
    }
    fn block_by_height(&self, height: u64) -> StoreFuture<'_, Option<StoredBlock>> {
        self.ledger.block_by_height(height)
    }
    fn block_by_hash<'a>(
        &'a self,
        hash: &'a aegis_types::Hash,
    ) -> StoreFuture<'a, Option<StoredBlock>> {
        self.ledger.block_by_hash(hash)
    }
    fn header(
        &self,
        height: u64,
    ) -> StoreFuture<'_, Option<(aegis_types::BlockHeader, aegis_types::CommitCertificate)>> {
        self.ledger.header(height)
    }
    fn blocks(&self, from: u64, to: u64) -> StoreFuture<'_, Vec<StoredBlock>> {
        self.ledger.blocks(from, to)
    }
    fn transaction<'a>(
        &'a self,
        id: &'a aegis_types::Hash,
    ) -> StoreFuture<'a, Option<StoredTransaction>> {
        self.ledger.transaction(id)
    }
    fn group_commit(&self, max_blocks: usize) -> Result<Box<dyn BlockSink>, StorageError> {
        self.ledger.group_commit(max_blocks)
    }
}

impl NodeRegistry for NodeStore {
    fn upsert_node<'a>(&'a self, node: &'a NodeRecord) -> StoreFuture<'a, ()> {
        self.ledger.upsert_node(node)
    }
    fn mark_seen<'a>(
        &'a self,
        public_key: &'a aegis_types::PublicKey,
        at_ms: u64,
    ) -> StoreFuture<'a, bool> {
        self.ledger.mark_seen(public_key, at_ms)
    }
    fn nodes(&self) -> StoreFuture<'_, Vec<NodeRecord>> {
        self.ledger.nodes()
    }
}

impl ConsensusStateStore for NodeStore {
    fn save_state<'a>(&'a self, name: &'a str, bytes: &'a [u8]) -> StoreFuture<'a, ()> {
        self.consensus.save_state(name, bytes)
    }
    fn load_state<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        self.consensus.load_state(name)
    }
    fn remove_state<'a>(&'a self, name: &'a str) -> StoreFuture<'a, ()> {
        self.consensus.remove_state(name)
    }
    fn state_names(&self) -> StoreFuture<'_, Vec<String>> {
        self.consensus.state_names()
    }
}

/// `aegis db migrate`: creates the schema or applies pending migrations; idempotent.
pub async fn migrate(config: &StoreConfig) -> Result<MigrationReport, StorageError> {
    let (store, report) = SqlStore::open_with(config, OpenMode::Migrate).await?;
    store.close().await;
    Ok(report)
}

/// `aegis verify`: opens an existing ledger read-only in spirit (no migration) and verifies
/// the whole chain against `genesis`.
pub async fn verify(
    config: &StoreConfig,
    genesis: &aegis_types::Genesis,
) -> Result<VerifyReport, StorageError> {
    let store = SqlStore::open_existing(config).await?;
    let report = verify_with_index(&store, genesis).await;
    store.close().await;
    report
}

/// The chain, then (when the chain is sound) SQLite's transaction-id index.
async fn verify_with_index(
    store: &SqlStore,
    genesis: &aegis_types::Genesis,
) -> Result<VerifyReport, StorageError> {
    let mut report = verify_chain(store, genesis).await?;
    if report.is_ok()
        && let Some((height, problem)) = store.check_id_index().await?
    {
        tracing::error!(height, problem = %problem, "ledger integrity check failed");
        report.fault = Some(ChainFault { height, problem });
    }
    Ok(report)
}

/// `aegis bench storage`: opens (creating) the ledger at `config` and runs the benchmark,
/// extending the chain of `fixture`.
pub async fn bench_storage(
    config: &StoreConfig,
    fixture: &mut fixtures::ChainFixture,
    options: &bench::BenchOptions,
) -> Result<bench::BenchReport, StorageError> {
    let store = SqlStore::open(config).await?;
    let report = bench::run(&store, config.backend.kind(), fixture, options).await;
    store.close().await;
    report
}
