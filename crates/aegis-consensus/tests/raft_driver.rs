//! Raft on the engine's real driver (the one the node and the simulator run), with the real
//! mempool, an in-memory or file consensus log and an in-memory ledger: the leader learns of
//! its own durability from the driver (`Input::Persisted`), blocks commit with certificates
//! that verify, every log replays to its core's state, and nodes that crash (losing what
//! they did not sync) restart from their logs and keep committing.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::collections::VecDeque;

use aegis_consensus::raft::{Raft, RaftConfig, RaftMessage, RaftPersisted, RaftRole};
use aegis_consensus::{Outgoing, Protocol};
use aegis_engine::memory::{ManualClock, MemoryLedger, MemoryLog, Notices, Outbox};
use aegis_engine::{ConsensusLog, Driver, DriverConfig, FileLog, Io, Parts};
use aegis_mempool::{Mempool, MempoolConfig};
use aegis_testkit::{GenesisBuilder, tx, validator_key};
use aegis_types::{ConsensusAlgorithm, Genesis, ValidatorId};

const HEARTBEAT_MS: u64 = 100;
const ELECTION_MS: u64 = 1_000;

/// The I/O of a test node: log `L`, everything else in memory.
#[derive(Debug)]
struct TestIo<L>(std::marker::PhantomData<L>);

impl<L: ConsensusLog<RaftPersisted>> Io<Raft> for TestIo<L> {
    type Transport = Outbox<RaftMessage>;
    type Log = L;
    type Ledger = MemoryLedger;
    type Clock = ManualClock;
    type Observer = Notices<Raft>;
}

type NodeDriver<L> = Driver<Raft, TestIo<L>>;

fn genesis() -> Genesis {
    GenesisBuilder::new(3)
        .algorithm(ConsensusAlgorithm::Raft)
        .max_byzantine_nodes(0)
        .max_block_txs(10)
        .pipeline_depth(4)
        .build()
}

fn config(g: &Genesis, i: usize) -> RaftConfig {
    RaftConfig::from_genesis(g, ValidatorId(i as u16), HEARTBEAT_MS, ELECTION_MS).unwrap()
}

struct Cluster<L: ConsensusLog<RaftPersisted>> {
    genesis: Genesis,
    nodes: Vec<Option<NodeDriver<L>>>,
    /// What a crashed node left: its log and its ledger.
    down: Vec<Option<(L, MemoryLedger)>>,
    queue: VecDeque<(usize, usize, RaftMessage)>,
    now_ms: u64,
}

impl<L: ConsensusLog<RaftPersisted>> Cluster<L> {
    fn new(mut log: impl FnMut(usize) -> L) -> Self {
        let genesis = genesis();
        let mut cluster = Cluster {
            nodes: Vec::new(),
            down: vec![None, None, None],
            queue: VecDeque::new(),
            now_ms: 1_000,
            genesis,
        };
        for i in 0..3 {
            let core = Raft::new(config(&cluster.genesis, i), validator_key(i)).unwrap();
            let driver = cluster.driver(i, core, log(i), MemoryLedger::new());
            cluster.nodes.push(Some(driver));
            cluster.run(i, NodeDriver::start);
        }
        cluster
    }

    fn driver(&self, i: usize, core: Raft, log: L, ledger: MemoryLedger) -> NodeDriver<L> {
        let mempool =
            Mempool::new(MempoolConfig::default(), self.genesis.chain_id.clone()).unwrap();
        let parts = Parts {
            transport: Outbox::default(),
            log,
            ledger,
            clock: ManualClock::new(self.now_ms, 100 + i as u64),
            observer: Notices::default(),
        };
        Driver::new(core, parts, mempool, DriverConfig::default())
    }

    fn run(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut NodeDriver<L>) -> Result<(), aegis_engine::DriverError>,
    ) {
        let now = self.now_ms;
        let driver = self.nodes[i].as_mut().unwrap();
        driver.clock_mut().now_ms = now;
        f(driver).unwrap();
        self.after(i);
    }

    /// Flushes node `i`, queues what it sent, and serves its sync requests from the longest
    /// ledger of another running node.
    fn after(&mut self, i: usize) {
        let driver = self.nodes[i].as_mut().unwrap();
        driver.flush().unwrap();
        let requests = std::mem::take(&mut driver.transport_mut().sync_requests);
        for outgoing in std::mem::take(&mut driver.transport_mut().messages) {
            match outgoing {
                Outgoing::To(to, m) => self.queue.push_back((i, usize::from(to.0), m)),
                Outgoing::All(m) => {
                    for to in (0..3).filter(|j| *j != i) {
                        self.queue.push_back((i, to, m.clone()));
                    }
                }
            }
        }
        for from_height in requests {
            let best = (0..3)
                .filter(|j| *j != i)
                .filter_map(|j| self.nodes[j].as_ref())
                .map(|d| d.ledger().blocks().to_vec())
                .max_by_key(Vec::len)
                .unwrap_or_default();
            let driver = self.nodes[i].as_mut().unwrap();
            for (block, certificate) in best.into_iter().skip(from_height as usize - 1) {
                driver.synced_block(block, certificate).unwrap();
            }
            self.after(i);
        }
    }

    /// Delivers in rounds, as the node's event loop does: every message queued, then one
    /// flush per node.
    fn deliver(&mut self) {
        let mut rounds = 0;
        while !self.queue.is_empty() {
            rounds += 1;
            assert!(rounds < 10_000, "message storm");
            let queued = std::mem::take(&mut self.queue);
            let mut inboxes: Vec<Vec<(usize, RaftMessage)>> = vec![Vec::new(); 3];
            for (from, to, m) in queued {
                inboxes[to].push((from, m));
            }
            for (to, inbox) in inboxes.into_iter().enumerate() {
                if inbox.is_empty() || self.nodes[to].is_none() {
                    continue;
                }
                self.run(to, |d| {
                    for (from, m) in inbox {
                        d.deliver(ValidatorId(from as u16), m)?;
                    }
                    Ok(())
                });
            }
        }
    }

    /// Moves time in steps of half a heartbeat, ticking every node and delivering.
    fn run_for(&mut self, ms: u64) {
        let end = self.now_ms + ms;
        while self.now_ms < end {
            self.now_ms += HEARTBEAT_MS / 2;
            for i in 0..3 {
                if self.nodes[i].is_some() {
                    self.run(i, NodeDriver::tick);
                }
            }
            self.deliver();
        }
    }

    /// Hands `txs` to every running node's mempool, as the node's gossip passes a client's
    /// transactions on to every validator.
    fn submit(&mut self, txs: Vec<aegis_types::Transaction>) {
        for i in 0..3 {
            if self.nodes[i].is_some() {
                let txs = txs.clone();
                self.run(i, |d| d.submit(txs).map(drop));
            }
        }
    }

    fn leader(&self) -> Option<usize> {
        (0..3).find(|i| {
            self.nodes[*i]
                .as_ref()
                .is_some_and(|d| d.core().role() == RaftRole::Leader)
        })
    }

    fn height(&self, i: usize) -> u64 {
        self.nodes[i].as_ref().unwrap().ledger().blocks().len() as u64
    }
}

impl Cluster<MemoryLog<RaftPersisted>> {
    /// Node `i` crashes: its log loses what was not synced, its ledger what was not flushed.
    fn crash(&mut self, i: usize) {
        let (_, mut parts) = self.nodes[i].take().unwrap().into_parts();
        parts.log.crash();
        parts.ledger.crash();
        self.down[i] = Some((parts.log, parts.ledger));
        self.queue.retain(|(_, to, _)| *to != i);
    }

    fn restart(&mut self, i: usize) {
        let (mut log, ledger) = self.down[i].take().unwrap();
        let state = log.load().unwrap().expect("a snapshot");
        let core = Raft::restore(config(&self.genesis, i), validator_key(i), state).unwrap();
        let driver = self.driver(i, core, log, ledger);
        self.nodes[i] = Some(driver);
        self.run(i, NodeDriver::start);
    }

    /// Every log replays to its core's state once nothing is left unsynced.
    fn assert_logs_replay(&mut self) {
        for driver in self.nodes.iter_mut().flatten() {
            driver.close().unwrap();
            assert_eq!(driver.log().durable(), Some(&driver.core().snapshot()));
        }
    }
}

fn assert_agreement<L: ConsensusLog<RaftPersisted>>(cluster: &Cluster<L>) {
    let validators = cluster.genesis.validator_set().unwrap();
    let ledgers: Vec<_> = cluster
        .nodes
        .iter()
        .flatten()
        .map(|d| d.ledger().blocks().to_vec())
        .collect();
    for ledger in &ledgers {
        for (block, certificate) in ledger {
            aegis_crypto::verify_commit_certificate(
                certificate,
                &cluster.genesis.chain_id,
                &validators,
            )
            .unwrap();
            assert_eq!(certificate.block_hash, block.hash());
        }
        for other in &ledgers {
            for (a, b) in ledger.iter().zip(other) {
                assert_eq!(a.0.hash(), b.0.hash());
            }
        }
    }
}

#[test]
fn three_nodes_on_the_driver_elect_commit_and_replay_their_logs() {
    let mut cluster = Cluster::new(|_| MemoryLog::new());
    cluster.run_for(3 * ELECTION_MS);
    let leader = cluster.leader().expect("a leader");
    for nonce in 0..30 {
        cluster.submit(vec![tx(nonce)]);
    }
    cluster.run_for(ELECTION_MS);
    let committed: usize = cluster.nodes[leader]
        .as_ref()
        .unwrap()
        .ledger()
        .blocks()
        .iter()
        .map(|(b, _)| b.txs.len())
        .sum();
    assert_eq!(committed, 30, "every transaction once");
    for i in 0..3 {
        assert_eq!(cluster.height(i), cluster.height(leader));
        assert_eq!(cluster.nodes[i].as_ref().unwrap().mempool().len(), 0);
    }
    assert_agreement(&cluster);
    cluster.assert_logs_replay();
}

#[test]
fn nodes_that_crash_lose_only_what_they_did_not_sync_and_keep_committing() {
    let mut cluster = Cluster::new(|_| MemoryLog::new());
    cluster.run_for(3 * ELECTION_MS);
    let mut nonce = 0;
    for round in 0..6 {
        let leader = cluster.leader().expect("a leader");
        for _ in 0..5 {
            nonce += 1;
            cluster.submit(vec![tx(nonce)]);
        }
        // Crash a node mid-round, before its flushes reach everyone: the leader every other
        // round, a follower otherwise.
        cluster.deliver();
        let victim = if round % 2 == 0 {
            leader
        } else {
            (leader + 1) % 3
        };
        cluster.crash(victim);
        // A survivor's pre-votes go unanswered while the other still trusts the dead leader
        // (its lease, one timeout T); the next try, within 2T, succeeds.
        cluster.run_for(5 * ELECTION_MS);
        assert!(
            cluster.leader().is_some(),
            "round {round}: the others elect a leader"
        );
        cluster.restart(victim);
        cluster.run_for(2 * ELECTION_MS);
        assert_agreement(&cluster);
    }
    let leader = cluster.leader().unwrap();
    for i in 0..3 {
        assert_eq!(
            cluster.height(i),
            cluster.height(leader),
            "node {i} caught up"
        );
    }
    let ids: Vec<_> = cluster.nodes[leader]
        .as_ref()
        .unwrap()
        .ledger()
        .blocks()
        .iter()
        .flat_map(|(b, _)| b.tx_ids())
        .collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "no transaction twice");
    cluster.assert_logs_replay();
}

#[test]
fn a_node_restarts_from_its_log_file() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let open = |i: usize| FileLog::<RaftPersisted>::open(dirs[i].path()).unwrap().0;
    let mut cluster = Cluster::new(open);
    cluster.run_for(3 * ELECTION_MS);
    for nonce in 0..10 {
        cluster.submit(vec![tx(nonce)]);
    }
    cluster.run_for(ELECTION_MS);
    let height = cluster.height(0);
    assert!(height >= 1);
    // Stop node 1 cleanly and reopen its file.
    let (core, mut parts) = {
        let mut driver = cluster.nodes[1].take().unwrap();
        driver.close().unwrap();
        driver.into_parts()
    };
    let term = core.term();
    drop(parts.log);
    let (log, report) = FileLog::<RaftPersisted>::open(dirs[1].path()).unwrap();
    assert_eq!(report.torn_bytes, 0);
    let state = log.replay().unwrap().expect("a snapshot");
    assert_eq!(
        state,
        core.snapshot(),
        "the file replays to the core's state"
    );
    assert_eq!(state.term, term);
    let restored = Raft::restore(config(&cluster.genesis, 1), validator_key(1), state).unwrap();
    let ledger = std::mem::take(&mut parts.ledger);
    let driver = cluster.driver(1, restored, log, ledger);
    cluster.nodes[1] = Some(driver);
    cluster.run(1, NodeDriver::start);
    for nonce in 10..20 {
        cluster.submit(vec![tx(nonce)]);
    }
    cluster.run_for(2 * ELECTION_MS);
    assert!(cluster.height(1) > height);
    assert_eq!(cluster.height(1), cluster.height(0));
    assert_agreement(&cluster);
}
