//! AEGIS test support, for tests only (every crate takes it as a dev-dependency): the keys,
//! genesis files and signed transactions tests build on, polling waits that fail at a
//! deadline instead of sleeping for a guessed time, and a PBFT cluster run by the engine's
//! driver over in-memory or file-backed I/O.
//!
//! Keys here are derived from small integers so a failing test prints the same ids every
//! run; never use them outside tests.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test support fails the test loudly, with the reason"
)]

pub mod cluster;
pub mod purity;
pub mod wait;

use aegis_crypto::SecretKey;
use aegis_types::{ConsensusAlgorithm, ConsensusParams, Genesis, Transaction, TxBody, Validator};

/// The chain id of [`genesis`].
pub const CHAIN: &str = "test-chain";

/// Validator `i`'s secret key (deterministic).
pub fn validator_key(i: usize) -> SecretKey {
    SecretKey::from_bytes([i as u8 + 1; 32])
}

/// The key test clients sign transactions with.
pub fn client_key() -> SecretKey {
    SecretKey::from_bytes([0xcc; 32])
}

/// A genesis of `n` validators (keys [`validator_key`]) tolerating `f`, chain [`CHAIN`],
/// checkpoints every `checkpoint_interval` blocks, at most 10 transactions a block.
pub fn genesis(n: usize, f: u32, checkpoint_interval: u64, pipeline_depth: u32) -> Genesis {
    Genesis {
        chain_id: CHAIN.into(),
        genesis_time_ms: 0,
        validators: (0..n)
            .map(|i| Validator {
                name: format!("node{i}"),
                public_key: validator_key(i).public_key(),
                p2p_address: format!("127.0.0.1:{}", 8000 + i),
                api_address: format!("127.0.0.1:{}", 9000 + i),
            })
            .collect(),
        consensus: ConsensusParams {
            algorithm: ConsensusAlgorithm::Pbft,
            max_byzantine_nodes: f,
            checkpoint_interval,
            max_block_txs: 10,
            pipeline_depth,
        },
    }
}

/// A transaction for [`CHAIN`] signed by [`client_key`], made distinct by `nonce`.
pub fn tx(nonce: u64) -> Transaction {
    signed_tx(&client_key(), CHAIN, nonce, vec![1, 2, 3])
}

/// A transaction for `chain_id` signed by `key`.
pub fn signed_tx(key: &SecretKey, chain_id: &str, nonce: u64, payload: Vec<u8>) -> Transaction {
    key.sign_transaction(TxBody {
        version: aegis_types::ENCODING_VERSION,
        chain_id: chain_id.into(),
        sender: key.public_key(),
        nonce,
        payload,
    })
}
