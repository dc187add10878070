//! AEGIS ledger types.
//!
//! This crate owns the data that validators agree on and that clients sign: transactions,
//! block headers, blocks, commit certificates, the validator set and the genesis document,
//! together with the one canonical binary encoding used for everything that is hashed or
//! signed (see `docs/encoding.md`). It is pure: no I/O, no clocks, no randomness, and it never
//! verifies signatures itself (that is `aegis-crypto`'s job), so the consensus core can depend
//! on it freely.

pub mod block;
pub mod encoding;
pub mod genesis;
pub mod hash;
pub mod keys;
pub mod merkle;
pub mod tx;
pub mod validator;

pub use block::{Block, BlockError, BlockHeader, CommitCertificate, CommitSignature, CommitVote};
pub use encoding::{DecodeError, ENCODING_VERSION};
pub use genesis::{
    ConsensusAlgorithm, ConsensusParams, DEFAULT_CHECKPOINT_INTERVAL, Genesis, GenesisError,
};
pub use hash::Hash;
pub use keys::{PublicKey, Signature};
pub use merkle::{MerkleProof, merkle_root};
pub use tx::{MAX_TX_PAYLOAD_BYTES, Transaction, TxBody, TxError};
pub use validator::{Validator, ValidatorId, ValidatorSet, ValidatorSetError};
