//! Helpers for PBFT's tests: genesis, keys, transactions, and a small cluster run by the
//! engine's driver.

#![allow(dead_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail the test loudly"
)]

use aegis_consensus::pbft::{
    Pbft, PbftConfig, PbftEffect, PbftMessage, PbftPersisted, RejectReason,
};
use aegis_consensus::{Effect, Env, Outgoing};
use aegis_crypto::SecretKey;
use aegis_engine::memory::{
    ManualClock, MemoryIo, MemoryLedger, MemoryLog, Notice, Notices, Outbox,
};
use aegis_engine::{ConsensusLog, Driver, DriverConfig, Parts};
use aegis_mempool::{Mempool, MempoolConfig};
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
            Effect::Persist { messages, .. } => out.extend(messages.iter().cloned()),
            _ => {}
        }
    }
    out
}

type NodeDriver = Driver<Pbft, MemoryIo<Pbft>>;

/// A small cluster of real PBFT cores, each run by `aegis-engine`'s driver over in-memory I/O
/// (the same driver the node and the simulator run). Messages wait in one queue and are
/// delivered in order, unless a test filters them.
#[derive(Debug)]
pub struct Cluster {
    nodes: Vec<Option<NodeDriver>>,
    genesis: Genesis,
    pub now_ms: u64,
    /// (from, to, message) waiting to be delivered.
    pub queue: std::collections::VecDeque<(usize, usize, PbftMessage)>,
    /// What each node's core reported, in order.
    pub notices: Vec<Vec<Notice<RejectReason>>>,
}

fn parts(i: usize) -> Parts<Pbft, MemoryIo<Pbft>> {
    Parts {
        transport: Outbox::default(),
        log: MemoryLog::new(),
        ledger: MemoryLedger::new(),
        clock: ManualClock::new(1_000, i as u64),
        observer: Notices::default(),
    }
}

fn driver(genesis: &Genesis, parts: Parts<Pbft, MemoryIo<Pbft>>, core: Pbft) -> NodeDriver {
    let mempool = Mempool::new(MempoolConfig::default(), genesis.chain_id.clone()).unwrap();
    Driver::new(core, parts, mempool, DriverConfig::default())
}

impl Cluster {
    pub fn new(genesis: &Genesis) -> Cluster {
        let n = genesis.validators.len();
        let mut cluster = Cluster {
            nodes: Vec::new(),
            genesis: genesis.clone(),
            now_ms: 1_000,
            queue: Default::default(),
            notices: vec![Vec::new(); n],
        };
        for i in 0..n {
            let core = Pbft::new(config(genesis, i), key(i)).unwrap();
            cluster.nodes.push(Some(driver(genesis, parts(i), core)));
            cluster.run(i, NodeDriver::start);
        }
        cluster
    }

    fn driver(&mut self, i: usize) -> &mut NodeDriver {
        self.nodes[i].as_mut().expect("node is running")
    }

    /// Runs `f` on node `i`'s driver at the cluster's time, flushes, and queues what it sent.
    pub fn run(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut NodeDriver) -> Result<(), aegis_engine::DriverError>,
    ) {
        let now_ms = self.now_ms;
        let n = self.nodes.len();
        let driver = self.driver(i);
        driver.clock_mut().now_ms = now_ms;
        f(driver).unwrap();
        driver.flush().unwrap();
        let messages = std::mem::take(&mut driver.transport_mut().messages);
        let notices = std::mem::take(&mut driver.observer_mut().notices);
        for outgoing in messages {
            match outgoing {
                Outgoing::To(to, m) => self.queue.push_back((i, usize::from(to.0), m)),
                Outgoing::All(m) => {
                    for to in (0..n).filter(|j| *j != i) {
                        self.queue.push_back((i, to, m.clone()));
                    }
                }
            }
        }
        self.notices[i].extend(notices);
    }

    /// Delivers queued messages until none are left, skipping those `keep` refuses.
    pub fn deliver_all(&mut self, keep: impl Fn(usize, usize, &PbftMessage) -> bool) {
        let mut budget = 100_000;
        while let Some((from, to, message)) = self.queue.pop_front() {
            budget -= 1;
            assert!(budget > 0, "message storm");
            if keep(from, to, &message) && self.nodes[to].is_some() {
                self.run(to, |d| d.deliver(ValidatorId(from as u16), message));
            }
        }
    }

    /// Hands the same transactions to every node's mempool.
    pub fn submit(&mut self, txs: Vec<Transaction>) {
        for i in 0..self.nodes.len() {
            self.submit_to(i, txs.clone());
        }
    }

    pub fn submit_to(&mut self, i: usize, txs: Vec<Transaction>) {
        self.run(i, |d| d.submit(txs).map(drop));
    }

    /// Moves node `i`'s clock to `now_ms` and fires its due timers (`timer` among them).
    pub fn fire(&mut self, i: usize, timer: aegis_consensus::pbft::PbftTimer, now_ms: u64) {
        self.now_ms = now_ms;
        let deadline = self.core(i).timer_deadline(timer);
        assert!(
            deadline.is_some_and(|d| d <= now_ms),
            "{timer:?} is not due at {now_ms}"
        );
        self.run(i, NodeDriver::tick);
    }

    pub fn core(&self, i: usize) -> &Pbft {
        self.nodes[i].as_ref().expect("node is running").core()
    }

    /// Stops driving node `i` and hands its core over, to probe it directly.
    pub fn take_core(&mut self, i: usize) -> Pbft {
        self.nodes[i]
            .take()
            .expect("node is running")
            .into_parts()
            .0
    }

    /// Node `i` crashes (losing what it did not sync) and restarts from its consensus log and
    /// ledger.
    pub fn restart(&mut self, i: usize) {
        let (_, mut parts) = self.nodes[i].take().expect("node is running").into_parts();
        parts.log.crash();
        parts.ledger.crash();
        let restored = parts.log.load().unwrap().expect("the log has a snapshot");
        let core = Pbft::restore(config(&self.genesis, i), key(i), restored).unwrap();
        self.nodes[i] = Some(driver(&self.genesis, parts, core));
        self.run(i, NodeDriver::start);
    }

    /// The state node `i`'s consensus log replays to.
    pub fn logged_state(&self, i: usize) -> PbftPersisted {
        let driver = self.nodes[i].as_ref().expect("node is running");
        driver
            .log()
            .durable()
            .cloned()
            .expect("the log has a snapshot")
    }

    /// Node `i`'s ledger.
    pub fn committed(&self, i: usize) -> &[(Block, CommitCertificate)] {
        self.nodes[i]
            .as_ref()
            .expect("node is running")
            .ledger()
            .blocks()
    }

    pub fn height(&self, i: usize) -> u64 {
        self.core(i).last_committed().0
    }
}
