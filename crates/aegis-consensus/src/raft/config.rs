//! Raft parameters and the named bounds on every queue and message the core keeps.

use aegis_types::genesis::MAX_PIPELINE_DEPTH;
use aegis_types::{Genesis, Hash, ValidatorId, ValidatorSet, ValidatorSetError};

/// Most client transaction ids the core tracks as pending; further ones are not tracked
/// (the mempool's own bound is the same, so none is lost in practice).
pub const DEFAULT_MAX_PENDING_TXS: usize = 10_000;
/// How many blocks back committed transaction ids are remembered, so a leader never orders a
/// transaction again that a recent block holds (the mempool's replay window covers the rest).
pub const DEFAULT_TX_DEDUP_WINDOW_BLOCKS: u64 = 256;
/// Most log entries one AppendEntries carries (the leader sends the rest in later ones).
pub const MAX_ENTRIES_PER_APPEND: usize = 64;
/// Most bytes of blocks one AppendEntries carries, unless a single block is larger (a block
/// is at most `aegis_types::genesis::MAX_BLOCK_BYTES`): well under a P2P frame.
pub const MAX_APPEND_BYTES: usize = 8 * 1024 * 1024;
/// Most commit certificates one AppendEntries carries to a follower that lags behind.
pub const MAX_CERTIFICATES_PER_APPEND: usize = 64;
/// Most commit-vote signatures one AppendEntries response carries.
pub const MAX_VOTES_PER_RESPONSE: usize = 128;
/// Most uncommitted entries a log holds: a leader never has more than `pipeline_depth` of its
/// own in flight, and a follower receives at most one append's worth beyond that before the
/// certificates that commit them; past this an append is refused (the leader retries).
pub const MAX_UNCOMMITTED_ENTRIES: usize = 4 * MAX_PIPELINE_DEPTH as usize;
/// Entries a leader sends to one follower ahead of its acknowledgements.
pub const MAX_INFLIGHT_ENTRIES: u64 = 2 * MAX_PIPELINE_DEPTH as u64;
/// Committed blocks (with their certificates) kept in memory to bring a lagging follower up
/// to date without a sync; older ones are fetched from a ledger.
pub const RETAINED_COMMITTED_BLOCKS: usize = 256;
/// Most bytes of retained committed blocks.
pub const RETAINED_COMMITTED_BYTES: usize = 64 * 1024 * 1024;
/// Persist sequence numbers remembered with the log's length at that moment, until the driver
/// says they are durable; the oldest are forgotten first (the leader then waits for a later one).
pub const MAX_PERSIST_MARKS: usize = 1_024;

// A leader's whole pipeline fits in one response's votes and in the log's bound, and a
// follower can always take one full append on top of a full pipeline.
const _: () = assert!(MAX_VOTES_PER_RESPONSE >= MAX_PIPELINE_DEPTH as usize);
const _: () =
    assert!(MAX_UNCOMMITTED_ENTRIES >= MAX_PIPELINE_DEPTH as usize + MAX_ENTRIES_PER_APPEND);
const _: () = assert!(MAX_CERTIFICATES_PER_APPEND <= RETAINED_COMMITTED_BLOCKS);
const _: () = assert!(aegis_types::genesis::MAX_BLOCK_BYTES <= MAX_APPEND_BYTES);

/// Why a [`RaftConfig`] cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("validators: {0}")]
    Validators(#[from] ValidatorSetError),
    #[error("validator id {0} is not in the validator set")]
    UnknownSelf(ValidatorId),
    #[error("{field} must be at least 1")]
    Zero { field: &'static str },
    #[error(
        "the election timeout ({election_ms} ms) must be longer than the heartbeat interval ({heartbeat_ms} ms)"
    )]
    ElectionNotAfterHeartbeat { election_ms: u64, heartbeat_ms: u64 },
    #[error(
        "Raft tolerates crashes only: the genesis must set max_byzantine_nodes to 0 (it says {0}), so a certificate is a majority"
    )]
    ByzantineBound(usize),
    #[error("pipeline_depth {0} is above the largest a genesis allows ({MAX_PIPELINE_DEPTH})")]
    PipelineTooDeep(u32),
}

/// Everything a Raft core needs to know, fixed for its lifetime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftConfig {
    pub chain_id: String,
    /// Block 1's predecessor.
    pub genesis_hash: Hash,
    /// The validators; f = 0, so [`ValidatorSet::quorum`] is a majority.
    pub validators: ValidatorSet,
    pub me: ValidatorId,
    pub max_block_txs: u32,
    /// Most entries the leader has appended and not committed.
    pub pipeline_depth: u32,
    /// `consensus.heartbeat_interval`: how often the leader sends AppendEntries when it has
    /// nothing new (§5.2), and resends what was not acknowledged.
    pub heartbeat_interval_ms: u64,
    /// `consensus.election_timeout`: the base of the randomized election timeout, drawn from
    /// [base, 2 * base) (§5.2); also the CheckQuorum period and the leader lease (§9.6).
    pub election_timeout_ms: u64,
    /// Ongaro's thesis §9.6: a node first asks whether it could win before it disrupts the
    /// cluster with a higher term.
    pub pre_vote: bool,
    /// Ongaro's thesis §6.2 and §9.6: a leader that has not heard from a majority within an
    /// election timeout steps down, and a follower that heard from its leader within one
    /// ignores vote requests (the lease).
    pub check_quorum: bool,
    pub max_pending_txs: usize,
    pub tx_dedup_window_blocks: u64,
    /// The consensus log may be compacted each time the committed height passes a multiple
    /// of this (the genesis's `checkpoint_interval`, as PBFT's stable checkpoints).
    pub compaction_interval_blocks: u64,
}

impl RaftConfig {
    /// The configuration of validator `me` from the genesis and the node's timers
    /// (`consensus.heartbeat_interval` and `consensus.election_timeout`, in milliseconds),
    /// with PreVote and CheckQuorum on.
    pub fn from_genesis(
        genesis: &Genesis,
        me: ValidatorId,
        heartbeat_interval_ms: u64,
        election_timeout_ms: u64,
    ) -> Result<RaftConfig, ConfigError> {
        let config = RaftConfig {
            chain_id: genesis.chain_id.clone(),
            genesis_hash: genesis.hash(),
            validators: genesis.validator_set()?,
            me,
            max_block_txs: genesis.consensus.max_block_txs,
            pipeline_depth: genesis.consensus.pipeline_depth,
            heartbeat_interval_ms,
            election_timeout_ms,
            pre_vote: true,
            check_quorum: true,
            max_pending_txs: DEFAULT_MAX_PENDING_TXS,
            tx_dedup_window_blocks: DEFAULT_TX_DEDUP_WINDOW_BLOCKS,
            compaction_interval_blocks: genesis.consensus.checkpoint_interval,
        };
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.validators.get(self.me).is_none() {
            return Err(ConfigError::UnknownSelf(self.me));
        }
        if self.validators.max_faulty() != 0 {
            return Err(ConfigError::ByzantineBound(self.validators.max_faulty()));
        }
        for (field, value) in [
            ("max_block_txs", u64::from(self.max_block_txs)),
            ("pipeline_depth", u64::from(self.pipeline_depth)),
            ("heartbeat_interval_ms", self.heartbeat_interval_ms),
            ("election_timeout_ms", self.election_timeout_ms),
            ("max_pending_txs", self.max_pending_txs as u64),
            (
                "compaction_interval_blocks",
                self.compaction_interval_blocks,
            ),
            ("tx_dedup_window_blocks", self.tx_dedup_window_blocks),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero { field });
            }
        }
        if self.pipeline_depth > MAX_PIPELINE_DEPTH {
            return Err(ConfigError::PipelineTooDeep(self.pipeline_depth));
        }
        if self.election_timeout_ms <= self.heartbeat_interval_ms {
            return Err(ConfigError::ElectionNotAfterHeartbeat {
                election_ms: self.election_timeout_ms,
                heartbeat_ms: self.heartbeat_interval_ms,
            });
        }
        Ok(())
    }

    /// Votes that elect a leader and certify a block: a majority, floor(n / 2) + 1 (the
    /// quorum of docs/encoding.md with f = 0).
    pub fn quorum(&self) -> usize {
        self.validators.quorum()
    }

    /// Every validator but this one.
    pub fn peers(&self) -> impl Iterator<Item = ValidatorId> + '_ {
        self.validators.ids().filter(move |id| *id != self.me)
    }
}
