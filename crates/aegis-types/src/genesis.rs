//! The genesis document: the chain's identity, its validators and its consensus parameters.

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

use crate::Hash;
use crate::encoding::{TAG_GENESIS, tagged_digest};
use crate::tx::MAX_CHAIN_ID_BYTES;
use crate::validator::{Validator, ValidatorSet, ValidatorSetError};

/// Upper bound for `consensus.max_block_txs` in a genesis.
pub const MAX_BLOCK_TXS_LIMIT: u32 = 10_000;
/// Most bytes of transactions (canonical encoding) one block may carry. Every validator
/// refuses a proposal above it; a leader cuts its blocks at `consensus.max_block_bytes`,
/// at most this. A pre-prepare carrying the batch must fit in a P2P frame.
pub const MAX_BLOCK_BYTES: usize = 8 * 1024 * 1024;
/// Upper bound for `consensus.pipeline_depth` in a genesis.
pub const MAX_PIPELINE_DEPTH: u32 = 64;

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ConsensusAlgorithm {
    Pbft,
    Raft,
}

impl ConsensusAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsensusAlgorithm::Pbft => "pbft",
            ConsensusAlgorithm::Raft => "raft",
        }
    }
}

/// Parameters every validator must share, so they live in the genesis, not in node config.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsensusParams {
    pub algorithm: ConsensusAlgorithm,
    /// f: Byzantine validators tolerated; the set must have n >= 3f + 1. Raft tolerates none
    /// (it must be 0), so a certificate's quorum `floor((n + f) / 2) + 1` is a majority.
    pub max_byzantine_nodes: u32,
    /// A checkpoint is taken every this many blocks (PBFT's K).
    pub checkpoint_interval: u64,
    /// Most transactions in one block.
    pub max_block_txs: u32,
    /// Most sequence numbers in flight at once (the watermark window's width for proposals).
    pub pipeline_depth: u32,
}

/// PBFT's K for new networks: a stable checkpoint every 32 blocks. Every block between the
/// stable checkpoint and the head stays in each validator's memory with its transactions (up
/// to `2 x K` blocks), and in every VIEW-CHANGE: at 100, five minutes at 80% of saturation
/// held about 60 MB more per node, with a longer tail, for the same throughput
/// (docs/performance.md). A CHECKPOINT costs one small signed message per validator per K blocks.
pub const DEFAULT_CHECKPOINT_INTERVAL: u64 = 32;

impl Default for ConsensusParams {
    fn default() -> Self {
        ConsensusParams {
            algorithm: ConsensusAlgorithm::Pbft,
            max_byzantine_nodes: 1,
            checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
            max_block_txs: 1000,
            pipeline_depth: 4,
        }
    }
}

/// The genesis file (`config/genesis.json`).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    pub chain_id: String,
    /// Milliseconds since the Unix epoch; the earliest timestamp a block may carry.
    pub genesis_time_ms: u64,
    pub validators: Vec<Validator>,
    pub consensus: ConsensusParams,
}

#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    #[error("line {line}, column {column}: {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("chain_id must be 1 to {max} characters of [A-Za-z0-9._-], got {0:?}", max = MAX_CHAIN_ID_BYTES)]
    ChainId(String),
    #[error("validators: {0}")]
    Validators(#[from] ValidatorSetError),
    #[error("consensus.{field}: {message}")]
    Param {
        field: &'static str,
        message: String,
    },
}

impl Genesis {
    /// Parses and validates a genesis document.
    pub fn from_json(text: &str) -> Result<Genesis, GenesisError> {
        let genesis: Genesis = serde_json::from_str(text).map_err(|error| GenesisError::Json {
            line: error.line(),
            column: error.column(),
            // serde_json appends " at line L column C"; the location is reported separately.
            message: error
                .to_string()
                .rsplit_once(" at line ")
                .map_or_else(|| error.to_string(), |(m, _)| m.to_owned()),
        })?;
        genesis.validate()?;
        Ok(genesis)
    }

    pub fn to_json_pretty(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Checks every rule a genesis must satisfy, including n >= 3f + 1.
    pub fn validate(&self) -> Result<(), GenesisError> {
        let id_ok = !self.chain_id.is_empty()
            && self.chain_id.len() <= MAX_CHAIN_ID_BYTES
            && self
                .chain_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !id_ok {
            return Err(GenesisError::ChainId(self.chain_id.clone()));
        }
        let params = &self.consensus;
        if params.checkpoint_interval == 0 {
            return Err(GenesisError::Param {
                field: "checkpoint_interval",
                message: "must be at least 1".into(),
            });
        }
        if params.max_block_txs == 0 || params.max_block_txs > MAX_BLOCK_TXS_LIMIT {
            return Err(GenesisError::Param {
                field: "max_block_txs",
                message: format!(
                    "must be between 1 and {MAX_BLOCK_TXS_LIMIT}, got {}",
                    params.max_block_txs
                ),
            });
        }
        if params.pipeline_depth == 0 || params.pipeline_depth > MAX_PIPELINE_DEPTH {
            return Err(GenesisError::Param {
                field: "pipeline_depth",
                message: format!(
                    "must be between 1 and {MAX_PIPELINE_DEPTH}, got {}",
                    params.pipeline_depth
                ),
            });
        }
        if params.algorithm == ConsensusAlgorithm::Raft && params.max_byzantine_nodes != 0 {
            return Err(GenesisError::Param {
                field: "max_byzantine_nodes",
                message: format!(
                    "must be 0 for raft, which tolerates crashed validators only (a commit certificate is then a majority), got {}",
                    params.max_byzantine_nodes
                ),
            });
        }
        self.validator_set()?;
        Ok(())
    }

    /// The validator set, tolerating `consensus.max_byzantine_nodes` faults.
    pub fn validator_set(&self) -> Result<ValidatorSet, ValidatorSetError> {
        ValidatorSet::new(
            self.validators.clone(),
            self.consensus.max_byzantine_nodes as usize,
        )
    }

    /// The genesis hash: SHA-256 of `AEGIS/genesis/v1 || borsh(genesis)`. Block 1 links to it.
    pub fn hash(&self) -> Hash {
        tagged_digest(TAG_GENESIS, self)
    }
}
