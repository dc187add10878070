//! Keys, genesis documents and signed transactions (feature `chain`).
//!
//! Validator keys are derived from small integers by default, so a failing test prints the
//! same ids every run; tests whose nodes meet other tests' nodes on the network ask for
//! generated keys instead ([`GenesisBuilder::generated_keys`]). Never use these keys outside
//! tests.

use aegis_crypto::SecretKey;
use aegis_types::{ConsensusAlgorithm, ConsensusParams, Genesis, Transaction, TxBody, Validator};

/// The chain id of [`genesis`] and of [`GenesisBuilder`] unless told otherwise.
pub const CHAIN: &str = "test-chain";

/// Validator `i`'s secret key (deterministic).
pub fn validator_key(i: usize) -> SecretKey {
    let seed = u8::try_from(i + 1).expect("at most 255 deterministic validator keys");
    SecretKey::from_bytes([seed; 32])
}

/// The key test clients sign transactions with.
pub fn client_key() -> SecretKey {
    SecretKey::from_bytes([0xcc; 32])
}

/// A PBFT genesis of `n` validators (keys [`validator_key`]) tolerating `f`, chain
/// [`CHAIN`], checkpoints every `checkpoint_interval` blocks, at most 10 transactions a
/// block, `pipeline_depth` sequence numbers in flight.
pub fn genesis(n: usize, f: u32, checkpoint_interval: u64, pipeline_depth: u32) -> Genesis {
    GenesisBuilder::new(n)
        .max_byzantine_nodes(f)
        .checkpoint_interval(checkpoint_interval)
        .max_block_txs(10)
        .pipeline_depth(pipeline_depth)
        .build()
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

/// Where the validators of a [`GenesisBuilder`] say they listen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Addresses {
    /// `127.0.0.1:<8000 + i>` for P2P and `127.0.0.1:<8080 + i>` for the API.
    Localhost,
    /// `127.0.<net>.<i + 1>:8000` and `:8080` (see [`crate::net::loopback`]).
    Loopback(u8),
}

/// A genesis document for tests, built from what a test cares about; everything else has a
/// fixed default.
///
/// `GenesisBuilder::new(n)` is `n` validators `node0`, `node1`, ... with keys
/// [`validator_key`], chain [`CHAIN`], genesis time 0, P2P at `127.0.0.1:<8000 + i>` and the
/// API at `127.0.0.1:<8080 + i>`, and `ConsensusParams::default()` with the largest f that
/// `n` tolerates, `(n - 1) / 3`.
#[derive(Clone, Debug)]
pub struct GenesisBuilder {
    validators: usize,
    generated_keys: bool,
    chain_id: String,
    genesis_time_ms: u64,
    addresses: Addresses,
    consensus: ConsensusParams,
}

impl GenesisBuilder {
    /// `validators` validators (at least one); see the type's documentation for the defaults.
    pub fn new(validators: usize) -> GenesisBuilder {
        assert!(validators >= 1, "a genesis needs a validator");
        GenesisBuilder {
            validators,
            generated_keys: false,
            chain_id: CHAIN.to_owned(),
            genesis_time_ms: 0,
            addresses: Addresses::Localhost,
            consensus: ConsensusParams {
                max_byzantine_nodes: u32::try_from((validators - 1) / 3).expect("a small f"),
                ..ConsensusParams::default()
            },
        }
    }

    /// Fresh random validator keys instead of [`validator_key`]: for nodes on a real
    /// network, which must refuse other tests' nodes.
    pub fn generated_keys(mut self) -> GenesisBuilder {
        self.generated_keys = true;
        self
    }

    pub fn chain_id(mut self, chain_id: &str) -> GenesisBuilder {
        chain_id.clone_into(&mut self.chain_id);
        self
    }

    pub fn genesis_time_ms(mut self, genesis_time_ms: u64) -> GenesisBuilder {
        self.genesis_time_ms = genesis_time_ms;
        self
    }

    /// Validator `i` at `127.0.<net>.<i + 1>`, P2P on port 8000 and the API on 8080.
    pub fn loopback(mut self, net: u8) -> GenesisBuilder {
        self.addresses = Addresses::Loopback(net);
        self
    }

    pub fn algorithm(mut self, algorithm: ConsensusAlgorithm) -> GenesisBuilder {
        self.consensus.algorithm = algorithm;
        self
    }

    /// f, the Byzantine validators tolerated (not checked against n: tests of that check
    /// need documents that break it).
    pub fn max_byzantine_nodes(mut self, f: u32) -> GenesisBuilder {
        self.consensus.max_byzantine_nodes = f;
        self
    }

    pub fn checkpoint_interval(mut self, blocks: u64) -> GenesisBuilder {
        self.consensus.checkpoint_interval = blocks;
        self
    }

    pub fn max_block_txs(mut self, txs: u32) -> GenesisBuilder {
        self.consensus.max_block_txs = txs;
        self
    }

    pub fn pipeline_depth(mut self, depth: u32) -> GenesisBuilder {
        self.consensus.pipeline_depth = depth;
        self
    }

    /// The genesis document.
    pub fn build(self) -> Genesis {
        self.build_with_keys().0
    }

    /// The genesis document and its validators' secret keys, in validator order.
    pub fn build_with_keys(self) -> (Genesis, Vec<SecretKey>) {
        let keys: Vec<SecretKey> = (0..self.validators)
            .map(|i| {
                if self.generated_keys {
                    SecretKey::generate()
                } else {
                    validator_key(i)
                }
            })
            .collect();
        let validators = keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                let (p2p_address, api_address) = match self.addresses {
                    Addresses::Localhost => (
                        format!("127.0.0.1:{}", 8000 + i),
                        format!("127.0.0.1:{}", 8080 + i),
                    ),
                    Addresses::Loopback(net) => {
                        let ip = crate::net::loopback(net, i);
                        (format!("{ip}:8000"), format!("{ip}:8080"))
                    }
                };
                Validator {
                    name: format!("node{i}"),
                    public_key: key.public_key(),
                    p2p_address,
                    api_address,
                }
            })
            .collect();
        let genesis = Genesis {
            chain_id: self.chain_id,
            genesis_time_ms: self.genesis_time_ms,
            validators,
            consensus: self.consensus,
        };
        (genesis, keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_make_a_valid_genesis_with_deterministic_keys() {
        let genesis = GenesisBuilder::new(4).build();
        genesis.validate().unwrap();
        assert_eq!(genesis.chain_id, CHAIN);
        assert_eq!(genesis.consensus.max_byzantine_nodes, 1);
        assert_eq!(genesis.validators[3].name, "node3");
        assert_eq!(
            genesis.validators[3].public_key,
            validator_key(3).public_key()
        );
        assert_eq!(genesis.validators[3].p2p_address, "127.0.0.1:8003");
        assert_eq!(genesis.validators[3].api_address, "127.0.0.1:8083");
        assert_eq!(GenesisBuilder::new(4).build().hash(), genesis.hash());
    }

    #[test]
    fn generated_keys_on_loopback_are_returned_in_validator_order() {
        let (genesis, keys) = GenesisBuilder::new(2)
            .generated_keys()
            .loopback(40)
            .chain_id("aegis-test")
            .build_with_keys();
        genesis.validate().unwrap();
        assert_eq!(genesis.consensus.max_byzantine_nodes, 0);
        assert_eq!(genesis.validators[1].public_key, keys[1].public_key());
        assert_ne!(keys[1].public_key(), validator_key(1).public_key());
        assert_eq!(genesis.validators[1].p2p_address, "127.0.40.2:8000");
        assert_eq!(genesis.validators[1].api_address, "127.0.40.2:8080");
    }

    #[test]
    fn signed_transactions_verify() {
        let tx = tx(7);
        assert_eq!(tx.body.sender, client_key().public_key());
        aegis_crypto::verify_transaction(&tx).unwrap();
    }
}
