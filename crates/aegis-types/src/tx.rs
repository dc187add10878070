//! Signed client transactions.

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

use crate::encoding::{ENCODING_VERSION, TAG_TX, hex_bytes, tagged_bytes, tagged_digest};
use crate::{Hash, PublicKey, Signature};

/// Largest payload a transaction may carry, in bytes.
pub const MAX_TX_PAYLOAD_BYTES: usize = 64 * 1024;
/// Longest chain id accepted anywhere, in bytes.
pub const MAX_CHAIN_ID_BYTES: usize = 64;
/// Encoded bytes of a transaction apart from its chain id and payload: version (1), chain id
/// length prefix (4), sender (32), nonce (8), payload length prefix (4), signature (64).
pub const TX_FIXED_ENCODED_BYTES: usize = 1 + 4 + 32 + 8 + 4 + 64;

/// What the client signs. Its canonical bytes are `AEGIS/tx/v1 || borsh(TxBody)`;
/// the transaction id is the SHA-256 of those bytes.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct TxBody {
    /// Layout version, [`ENCODING_VERSION`].
    pub version: u8,
    /// The chain this transaction is meant for, so it cannot be replayed on another.
    pub chain_id: String,
    /// The client's Ed25519 public key.
    pub sender: PublicKey,
    /// Client-chosen number that makes otherwise identical transactions distinct.
    pub nonce: u64,
    /// Application data, at most [`MAX_TX_PAYLOAD_BYTES`].
    #[serde(with = "hex_bytes")]
    pub payload: Vec<u8>,
}

/// A transaction: the body and the sender's signature over its canonical bytes.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Transaction {
    #[serde(flatten)]
    pub body: TxBody,
    pub signature: Signature,
}

/// A transaction that breaks a structural rule (signatures are checked in `aegis-crypto`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TxError {
    #[error("payload is {len} bytes, above the limit of {max} bytes")]
    PayloadTooLarge { len: usize, max: usize },
    #[error("unsupported transaction version {0}")]
    Version(u8),
    #[error("transaction is for chain {found:?}, this node serves {expected:?}")]
    WrongChain { expected: String, found: String },
    #[error("chain id is {len} bytes, above the limit of {max} bytes")]
    ChainIdTooLong { len: usize, max: usize },
}

impl TxBody {
    /// The bytes the sender signs.
    pub fn signing_bytes(&self) -> Vec<u8> {
        tagged_bytes(TAG_TX, self)
    }

    /// The transaction id: SHA-256 of [`TxBody::signing_bytes`].
    pub fn id(&self) -> Hash {
        tagged_digest(TAG_TX, self)
    }
}

impl Transaction {
    pub fn id(&self) -> Hash {
        self.body.id()
    }

    /// The length of its canonical encoding (what it costs on the wire, in a block and in
    /// storage), computed without encoding it.
    pub fn encoded_len(&self) -> usize {
        TX_FIXED_ENCODED_BYTES
            .saturating_add(self.body.chain_id.len())
            .saturating_add(self.body.payload.len())
    }

    /// Structural checks that need no cryptography: version, chain, sizes.
    pub fn check_structure(&self, chain_id: &str) -> Result<(), TxError> {
        let body = &self.body;
        if body.version != ENCODING_VERSION {
            return Err(TxError::Version(body.version));
        }
        if body.chain_id.len() > MAX_CHAIN_ID_BYTES {
            return Err(TxError::ChainIdTooLong {
                len: body.chain_id.len(),
                max: MAX_CHAIN_ID_BYTES,
            });
        }
        if body.chain_id != chain_id {
            return Err(TxError::WrongChain {
                expected: chain_id.to_owned(),
                found: body.chain_id.clone(),
            });
        }
        if body.payload.len() > MAX_TX_PAYLOAD_BYTES {
            return Err(TxError::PayloadTooLarge {
                len: body.payload.len(),
                max: MAX_TX_PAYLOAD_BYTES,
            });
        }
        Ok(())
    }
}
