//! Blocks, their headers and commit certificates.

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

use crate::encoding::{
    ENCODING_VERSION, TAG_BLOCK_HEADER, TAG_COMMIT_VOTE, tagged_bytes, tagged_digest,
};
use crate::merkle::merkle_root;
use crate::validator::ValidatorId;
use crate::{Hash, PublicKey, Signature, Transaction};

/// A block header. Its hash (the block hash) is SHA-256 of `AEGIS/block-header/v1 || borsh(header)`.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct BlockHeader {
    pub version: u8,
    pub chain_id: String,
    /// 1 for the first block; the genesis is height 0.
    pub height: u64,
    /// Hash of the block at `height - 1`, or the genesis hash for height 1.
    pub prev_hash: Hash,
    /// Merkle root of the transaction ids, in block order.
    pub tx_root: Hash,
    pub tx_count: u32,
    /// The validator that proposed the block.
    pub proposer: PublicKey,
    /// The consensus view (PBFT) or term (Raft) in which it was proposed.
    pub view: u64,
    /// Proposer's clock, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
}

impl BlockHeader {
    pub fn hash(&self) -> Hash {
        tagged_digest(TAG_BLOCK_HEADER, self)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Block {
    pub header: BlockHeader,
    pub txs: Vec<Transaction>,
}

/// A block whose body does not match its header.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BlockError {
    #[error("unsupported block version {0}")]
    Version(u8),
    #[error("header says {header} transactions, body has {body}")]
    TxCount { header: u32, body: usize },
    #[error("transaction root mismatch: header {header}, computed {computed}")]
    TxRoot { header: Hash, computed: Hash },
    #[error("transaction {index} ({id}): {reason}")]
    Tx {
        index: usize,
        id: Hash,
        reason: String,
    },
}

impl Block {
    /// Builds a block, filling in the transaction count and root.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        chain_id: &str,
        height: u64,
        prev_hash: Hash,
        proposer: PublicKey,
        view: u64,
        timestamp_ms: u64,
        txs: Vec<Transaction>,
    ) -> Block {
        let ids: Vec<Hash> = txs.iter().map(Transaction::id).collect();
        let header = BlockHeader {
            version: ENCODING_VERSION,
            chain_id: chain_id.to_owned(),
            height,
            prev_hash,
            tx_root: merkle_root(&ids),
            tx_count: u32::try_from(txs.len()).unwrap_or(u32::MAX),
            proposer,
            view,
            timestamp_ms,
        };
        Block { header, txs }
    }

    pub fn hash(&self) -> Hash {
        self.header.hash()
    }

    pub fn height(&self) -> u64 {
        self.header.height
    }

    pub fn tx_ids(&self) -> Vec<Hash> {
        self.txs.iter().map(Transaction::id).collect()
    }

    /// Checks that the body matches the header and every transaction is well formed.
    /// Signatures are checked by `aegis-crypto`.
    pub fn check_structure(&self) -> Result<(), BlockError> {
        if self.header.version != ENCODING_VERSION {
            return Err(BlockError::Version(self.header.version));
        }
        if self.header.tx_count as usize != self.txs.len() {
            return Err(BlockError::TxCount {
                header: self.header.tx_count,
                body: self.txs.len(),
            });
        }
        for (index, tx) in self.txs.iter().enumerate() {
            if let Err(error) = tx.check_structure(&self.header.chain_id) {
                return Err(BlockError::Tx {
                    index,
                    id: tx.id(),
                    reason: error.to_string(),
                });
            }
        }
        let computed = merkle_root(&self.tx_ids());
        if computed != self.header.tx_root {
            return Err(BlockError::TxRoot {
                header: self.header.tx_root,
                computed,
            });
        }
        Ok(())
    }
}

/// What a validator signs to commit a block: PBFT's COMMIT (Castro & Liskov §4.2) and the
/// statement a commit certificate collects. Signing bytes: `AEGIS/commit-vote/v1 || borsh(self)`.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct CommitVote {
    pub version: u8,
    pub chain_id: String,
    pub height: u64,
    pub view: u64,
    pub block_hash: Hash,
}

impl CommitVote {
    pub fn new(chain_id: &str, height: u64, view: u64, block_hash: Hash) -> CommitVote {
        CommitVote {
            version: ENCODING_VERSION,
            chain_id: chain_id.to_owned(),
            height,
            view,
            block_hash,
        }
    }

    pub fn signing_bytes(&self) -> Vec<u8> {
        tagged_bytes(TAG_COMMIT_VOTE, self)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct CommitSignature {
    pub validator: ValidatorId,
    pub signature: Signature,
}

/// A quorum of validators' signatures over one [`CommitVote`]: proof, checkable offline with
/// the genesis alone, that the block at `height` with `block_hash` was committed.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct CommitCertificate {
    pub height: u64,
    pub view: u64,
    pub block_hash: Hash,
    /// Sorted by validator id, at most one per validator.
    pub signatures: Vec<CommitSignature>,
}

impl CommitCertificate {
    /// The statement every signature in the certificate must sign.
    pub fn vote(&self, chain_id: &str) -> CommitVote {
        CommitVote::new(chain_id, self.height, self.view, self.block_hash)
    }
}
