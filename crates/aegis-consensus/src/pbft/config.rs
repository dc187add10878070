//! PBFT parameters and the named bounds on every queue the core keeps.

use aegis_types::{Genesis, Hash, ValidatorId, ValidatorSet, ValidatorSetError};

/// Most client transactions waiting to be ordered; further ones are refused until blocks
/// drain the pool.
pub const DEFAULT_MAX_PENDING_TXS: usize = 10_000;
/// Most normal-case messages (pre-prepare, prepare, commit) held for a view this node has not
/// entered yet; the oldest is dropped first. Retransmission makes dropping them safe.
pub const DEFAULT_MAX_FUTURE_MESSAGES: usize = 1_024;
/// How many views ahead of the current one a buffered message may be.
pub const MAX_FUTURE_VIEW_DISTANCE: u64 = 2;
/// How many blocks back committed transaction ids are remembered to drop re-proposed
/// duplicates (see ADR 0003: replay protection beyond this belongs to the mempool).
pub const DEFAULT_TX_DEDUP_WINDOW_BLOCKS: u64 = 256;
/// Highest exponent of the view-change backoff: timeouts grow as base * 2^k, k <= this.
pub const MAX_BACKOFF_EXPONENT: u32 = 4;
/// Checkpoint sequence numbers kept while collecting votes above the stable checkpoint.
pub const MAX_PENDING_CHECKPOINTS: usize = 8;
/// How far ahead of a backup's clock a proposal's timestamp may be: validators' clocks are
/// kept by NTP to well under a second; thirty seconds leaves room for a bad one without
/// letting a primary stamp blocks in the future.
pub const MAX_PROPOSAL_CLOCK_SKEW_MS: u64 = 30_000;

/// Why a [`PbftConfig`] cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("validators: {0}")]
    Validators(#[from] ValidatorSetError),
    #[error("validator id {0} is not in the validator set")]
    UnknownSelf(ValidatorId),
    #[error("{field} must be at least 1")]
    Zero { field: &'static str },
}

/// Everything a PBFT core needs to know, fixed for its lifetime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PbftConfig {
    pub chain_id: String,
    /// Block 1's predecessor.
    pub genesis_hash: Hash,
    pub validators: ValidatorSet,
    pub me: ValidatorId,
    /// K: a checkpoint every K blocks (§4.3).
    pub checkpoint_interval: u64,
    pub max_block_txs: u32,
    /// Most sequence numbers the primary has in flight above the last executed one.
    pub pipeline_depth: u32,
    /// Request timeout (`consensus.timeout`): a backup with pending work and no progress for
    /// this long suspects the primary (§4.4).
    pub progress_timeout_ms: u64,
    /// `consensus.message_timeout`: how long to wait for a NEW-VIEW once a quorum asked for
    /// the view (§4.5.2's T), doubled for each view that fails in a row.
    pub view_change_timeout_ms: u64,
    /// Cap on the doubled timeouts.
    pub max_timeout_ms: u64,
    /// How often unfinished work is retransmitted (PBFT assumes retransmission over a lossy
    /// network, §4.1).
    pub retransmit_interval_ms: u64,
    pub max_pending_txs: usize,
    pub max_future_messages: usize,
    pub tx_dedup_window_blocks: u64,
}

impl PbftConfig {
    /// Builds the configuration of validator `me` from the genesis and the node's timeouts
    /// (`consensus.timeout` and `consensus.message_timeout`, in milliseconds).
    pub fn from_genesis(
        genesis: &Genesis,
        me: ValidatorId,
        progress_timeout_ms: u64,
        message_timeout_ms: u64,
    ) -> Result<PbftConfig, ConfigError> {
        let validators = genesis.validator_set()?;
        let config = PbftConfig {
            chain_id: genesis.chain_id.clone(),
            genesis_hash: genesis.hash(),
            validators,
            me,
            checkpoint_interval: genesis.consensus.checkpoint_interval,
            max_block_txs: genesis.consensus.max_block_txs,
            pipeline_depth: genesis.consensus.pipeline_depth,
            progress_timeout_ms,
            view_change_timeout_ms: message_timeout_ms,
            max_timeout_ms: message_timeout_ms.saturating_mul(1 << MAX_BACKOFF_EXPONENT),
            retransmit_interval_ms: (message_timeout_ms / 4).max(1),
            max_pending_txs: DEFAULT_MAX_PENDING_TXS,
            max_future_messages: DEFAULT_MAX_FUTURE_MESSAGES,
            tx_dedup_window_blocks: DEFAULT_TX_DEDUP_WINDOW_BLOCKS,
        };
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.validators.get(self.me).is_none() {
            return Err(ConfigError::UnknownSelf(self.me));
        }
        for (field, value) in [
            ("checkpoint_interval", self.checkpoint_interval),
            ("max_block_txs", u64::from(self.max_block_txs)),
            ("pipeline_depth", u64::from(self.pipeline_depth)),
            ("progress_timeout_ms", self.progress_timeout_ms),
            ("view_change_timeout_ms", self.view_change_timeout_ms),
            ("retransmit_interval_ms", self.retransmit_interval_ms),
            ("max_pending_txs", self.max_pending_txs as u64),
            ("tx_dedup_window_blocks", self.tx_dedup_window_blocks),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero { field });
            }
        }
        Ok(())
    }

    /// L, the width of the log between the low and high watermarks (§4.3): two checkpoint
    /// intervals, as the paper suggests, and never narrower than the pipeline.
    pub fn log_window(&self) -> u64 {
        (2 * self.checkpoint_interval).max(u64::from(self.pipeline_depth))
    }

    /// 2f + 1 for n = 3f + 1.
    #[cfg_attr(
        not(feature = "planted-bugs"),
        allow(
            clippy::let_and_return,
            reason = "test builds may plant a bug between the lines"
        )
    )]
    pub fn quorum(&self) -> usize {
        let quorum = self.validators.quorum();
        #[cfg(feature = "planted-bugs")]
        let quorum = super::planted::one_fewer(super::planted::PlantedBug::QuorumOffByOne, quorum);
        quorum
    }

    /// f + 1: at least one honest validator.
    pub fn weak_quorum(&self) -> usize {
        self.validators.weak_quorum()
    }

    pub fn primary(&self, view: u64) -> ValidatorId {
        self.validators.primary(view)
    }
}
