//! A small cluster of real PBFT cores driven by hand: every message is delivered at once, in
//! order, unless a test filters it.

#![allow(dead_code)]
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail the test loudly"
)]

use aegis_consensus::pbft::{Pbft, PbftConfig, PbftEffect, PbftMessage, PbftPersisted};
use aegis_consensus::{Effect, Env, Input, Outgoing, Protocol};
use aegis_crypto::SecretKey;
use aegis_types::{
    Block, CommitCertificate, ConsensusAlgorithm, ConsensusParams, Genesis, Transaction, TxBody,
    Validator, ValidatorId,
};

pub const CHAIN: &str = "test-chain";

pub fn key(i: usize) -> SecretKey {
    SecretKey::from_bytes([i as u8 + 1; 32])
}

pub fn genesis(n: usize, f: u32, checkpoint_interval: u64, pipeline_depth: u32) -> Genesis {
    Genesis {
        chain_id: CHAIN.into(),
        genesis_time_ms: 0,
        validators: (0..n)
            .map(|i| Validator {
                name: format!("node{i}"),
                public_key: key(i).public_key(),
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

pub fn config(genesis: &Genesis, i: usize) -> PbftConfig {
    PbftConfig::from_genesis(genesis, ValidatorId(i as u16), 1_000, 400).unwrap()
}

pub fn tx(nonce: u64) -> Transaction {
    let client = SecretKey::from_bytes([0xcc; 32]);
    client.sign_transaction(TxBody {
        version: aegis_types::ENCODING_VERSION,
        chain_id: CHAIN.into(),
        sender: client.public_key(),
        nonce,
        payload: vec![1, 2, 3],
    })
}

pub fn env(now_ms: u64) -> Env {
    Env { now_ms, entropy: 7 }
}

/// Messages sent by a step, with their destinations, whether or not they waited for a persist.
pub fn sent(effects: &[PbftEffect]) -> Vec<Outgoing<PbftMessage>> {
    let mut out = Vec::new();
    for effect in effects {
        match effect {
            Effect::Send(o) => out.push(o.clone()),
            Effect::PersistThenSend { messages, .. } => out.extend(messages.iter().cloned()),
            _ => {}
        }
    }
    out
}

pub fn last_persisted(effects: &[PbftEffect]) -> Option<PbftPersisted> {
    effects.iter().rev().find_map(|e| match e {
        Effect::PersistThenSend { state, .. } => Some(state.clone()),
        _ => None,
    })
}

#[derive(Debug)]
pub struct Cluster {
    pub nodes: Vec<Pbft>,
    pub committed: Vec<Vec<(Block, CommitCertificate)>>,
    pub now_ms: u64,
    /// (from, to, message) waiting to be delivered.
    pub queue: std::collections::VecDeque<(usize, usize, PbftMessage)>,
    pub effects: Vec<Vec<PbftEffect>>,
}

impl Cluster {
    pub fn new(genesis: &Genesis) -> Cluster {
        let n = genesis.validators.len();
        let nodes = (0..n)
            .map(|i| Pbft::new(config(genesis, i), key(i)).unwrap())
            .collect();
        let mut cluster = Cluster {
            nodes,
            committed: vec![Vec::new(); n],
            now_ms: 1_000,
            queue: Default::default(),
            effects: vec![Vec::new(); n],
        };
        for i in 0..n {
            cluster.step(i, Input::Start);
        }
        cluster
    }

    pub fn step(&mut self, i: usize, input: Input<PbftMessage, aegis_consensus::pbft::PbftTimer>) {
        let effects = self.nodes[i].step(env(self.now_ms), input);
        for effect in &effects {
            if let Effect::CommitBlock { block, certificate } = effect {
                self.committed[i].push((block.clone(), certificate.clone()));
            }
        }
        let n = self.nodes.len();
        for outgoing in sent(&effects) {
            match outgoing {
                Outgoing::To(to, m) => self.queue.push_back((i, usize::from(to.0), m)),
                Outgoing::All(m) => {
                    for to in (0..n).filter(|j| *j != i) {
                        self.queue.push_back((i, to, m.clone()));
                    }
                }
            }
        }
        self.effects[i].extend(effects);
    }

    /// Delivers queued messages until none are left, skipping those `keep` refuses.
    pub fn deliver_all(&mut self, keep: impl Fn(usize, usize, &PbftMessage) -> bool) {
        let mut budget = 100_000;
        while let Some((from, to, message)) = self.queue.pop_front() {
            budget -= 1;
            assert!(budget > 0, "message storm");
            if keep(from, to, &message) {
                self.step(
                    to,
                    Input::Message {
                        from: ValidatorId(from as u16),
                        message,
                    },
                );
            }
        }
    }

    pub fn submit(&mut self, txs: Vec<Transaction>) {
        for i in 0..self.nodes.len() {
            self.step(i, Input::ClientTransactions(txs.clone()));
        }
    }

    pub fn submit_to(&mut self, i: usize, txs: Vec<Transaction>) {
        self.step(i, Input::ClientTransactions(txs));
    }

    pub fn fire(&mut self, i: usize, timer: aegis_consensus::pbft::PbftTimer, now_ms: u64) {
        self.now_ms = now_ms;
        self.step(i, Input::Timer(timer));
    }

    pub fn height(&self, i: usize) -> u64 {
        self.nodes[i].last_committed().0
    }
}
