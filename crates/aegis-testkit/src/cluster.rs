//! A small cluster of real PBFT cores, each run by `aegis-engine`'s driver (the one the node
//! and the simulator run), over in-memory transport and ledger and a consensus log of the
//! test's choice ([`MemoryLog`] or the real [`FileLog`]). Messages wait in one queue and are
//! delivered in order, unless a test filters them; time moves only when a test moves it.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::path::PathBuf;

use aegis_consensus::pbft::{
    Pbft, PbftConfig, PbftMessage, PbftPersisted, PbftTimer, RejectReason,
};
use aegis_consensus::{Env, Outgoing};
use aegis_engine::memory::{ManualClock, MemoryLedger, MemoryLog, Notice, Notices, Outbox};
use aegis_engine::{ConsensusLog, Driver, DriverConfig, DriverError, FileLog, Io, Parts};
use aegis_mempool::{Mempool, MempoolConfig};
use aegis_types::{Block, CommitCertificate, Genesis, Transaction, ValidatorId};

use crate::validator_key;

/// Node `i`'s PBFT configuration: request timeout 1 s, view-change timeout 400 ms.
pub fn pbft_config(genesis: &Genesis, i: usize) -> PbftConfig {
    PbftConfig::from_genesis(genesis, ValidatorId(i as u16), 1_000, 400).unwrap()
}

/// The environment of a step at `now_ms`.
pub fn env(now_ms: u64) -> Env {
    Env { now_ms, entropy: 7 }
}

/// A consensus log a test can crash.
pub trait TestLog: ConsensusLog<PbftPersisted> + Sized {
    /// The process died and restarts: the log as the restarted process finds it.
    fn crash(self) -> Self;
    /// The state the durable part of the log replays to.
    fn durable_state(&self) -> Option<PbftPersisted>;
}

impl TestLog for MemoryLog<PbftPersisted> {
    fn crash(mut self) -> Self {
        MemoryLog::crash(&mut self);
        self
    }

    fn durable_state(&self) -> Option<PbftPersisted> {
        self.durable().cloned()
    }
}

impl TestLog for FileLog<PbftPersisted> {
    fn crash(self) -> Self {
        let dir: PathBuf = self
            .path()
            .parent()
            .expect("the log is in a directory")
            .into();
        drop(self);
        FileLog::open(dir).expect("reopen the consensus log").0
    }

    fn durable_state(&self) -> Option<PbftPersisted> {
        self.replay().expect("replay the consensus log")
    }
}

/// The I/O of a test node: log `L`, everything else in memory.
#[derive(Debug)]
pub struct TestIo<L>(PhantomData<fn() -> L>);

impl<L: TestLog> Io<Pbft> for TestIo<L> {
    type Transport = Outbox<PbftMessage>;
    type Log = L;
    type Ledger = MemoryLedger;
    type Clock = ManualClock;
    type Observer = Notices<Pbft>;
}

pub type NodeDriver<L> = Driver<Pbft, TestIo<L>>;

/// A cluster of drivers; see the module documentation.
#[derive(Debug)]
pub struct Cluster<L: TestLog = MemoryLog<PbftPersisted>> {
    nodes: Vec<Option<NodeDriver<L>>>,
    genesis: Genesis,
    pub now_ms: u64,
    /// (from, to, message) waiting to be delivered.
    pub queue: VecDeque<(usize, usize, PbftMessage)>,
    /// What each node's core reported, in order.
    pub notices: Vec<Vec<Notice<RejectReason>>>,
    /// When set, every persist also counts what writing the whole durable state would have
    /// cost (the consensus state before records): see [`Cluster::full_state_bytes`].
    pub measure_full_state: bool,
    /// Bytes of the whole durable state, summed over every persist (when measured).
    pub full_state_bytes: u64,
}

fn driver<L: TestLog>(genesis: &Genesis, core: Pbft, log: L, clock: ManualClock) -> NodeDriver<L> {
    let mempool = Mempool::new(MempoolConfig::default(), genesis.chain_id.clone()).unwrap();
    let parts = Parts {
        transport: Outbox::default(),
        log,
        ledger: MemoryLedger::new(),
        clock,
        observer: Notices::default(),
    };
    Driver::new(core, parts, mempool, DriverConfig::default())
}

impl Cluster {
    /// The validators of `genesis`, with in-memory consensus logs, started.
    pub fn new(genesis: &Genesis) -> Cluster {
        Cluster::with_logs(genesis, |_| MemoryLog::new())
    }
}

impl<L: TestLog> Cluster<L> {
    /// The validators of `genesis`, node `i` with the log `log(i)`, started.
    pub fn with_logs(genesis: &Genesis, mut log: impl FnMut(usize) -> L) -> Cluster<L> {
        let n = genesis.validators.len();
        let mut cluster = Cluster {
            nodes: Vec::new(),
            genesis: genesis.clone(),
            now_ms: 1_000,
            queue: VecDeque::new(),
            notices: vec![Vec::new(); n],
            measure_full_state: false,
            full_state_bytes: 0,
        };
        for i in 0..n {
            let core = Pbft::new(pbft_config(genesis, i), validator_key(i)).unwrap();
            let clock = ManualClock::new(cluster.now_ms, i as u64);
            cluster
                .nodes
                .push(Some(driver(genesis, core, log(i), clock)));
            cluster.run(i, NodeDriver::start);
        }
        cluster
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn driver(&self, i: usize) -> &NodeDriver<L> {
        self.nodes[i].as_ref().expect("node is running")
    }

    fn driver_mut(&mut self, i: usize) -> &mut NodeDriver<L> {
        self.nodes[i].as_mut().expect("node is running")
    }

    /// Runs `f` on node `i`'s driver at the cluster's time, flushes, and queues what it sent.
    pub fn run(&mut self, i: usize, f: impl FnOnce(&mut NodeDriver<L>) -> Result<(), DriverError>) {
        let now_ms = self.now_ms;
        let n = self.nodes.len();
        let measure = self.measure_full_state;
        let driver = self.driver_mut(i);
        driver.clock_mut().now_ms = now_ms;
        let persists_before = driver.stats().persists;
        f(driver).unwrap();
        driver.flush().unwrap();
        let persists = driver.stats().persists - persists_before;
        let full_state = if measure && persists > 0 {
            let bytes = aegis_types::encoding::encode(&driver.core().persisted()).len() as u64;
            persists * bytes
        } else {
            0
        };
        let messages = std::mem::take(&mut driver.transport_mut().messages);
        let notices = std::mem::take(&mut driver.observer_mut().notices);
        self.full_state_bytes += full_state;
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

    /// Delivers queued messages until none are left, skipping those `keep` refuses and those
    /// for nodes that are down.
    pub fn deliver_all(&mut self, keep: impl Fn(usize, usize, &PbftMessage) -> bool) {
        let mut budget = 1_000_000;
        while let Some((from, to, message)) = self.queue.pop_front() {
            budget -= 1;
            assert!(budget > 0, "message storm");
            if keep(from, to, &message) && self.nodes[to].is_some() {
                self.run(to, |d| d.deliver(ValidatorId(from as u16), message));
            }
        }
    }

    /// Delivers queued messages in rounds, as the node's event loop does: each round takes
    /// everything queued, and each node steps through all of its messages before one flush
    /// (one sync of its consensus log). Returns the number of rounds.
    pub fn deliver_batched(&mut self) -> usize {
        let mut rounds = 0;
        while !self.queue.is_empty() {
            rounds += 1;
            assert!(rounds < 100_000, "message storm");
            let queued = std::mem::take(&mut self.queue);
            let mut inboxes: Vec<Vec<(usize, PbftMessage)>> = vec![Vec::new(); self.nodes.len()];
            for (from, to, message) in queued {
                inboxes[to].push((from, message));
            }
            for (to, inbox) in inboxes.into_iter().enumerate() {
                if inbox.is_empty() || self.nodes[to].is_none() {
                    continue;
                }
                self.run(to, |d| {
                    for (from, message) in inbox {
                        d.deliver(ValidatorId(from as u16), message)?;
                    }
                    Ok(())
                });
            }
        }
        rounds
    }

    /// Hands the same transactions to every running node's mempool.
    pub fn submit(&mut self, txs: Vec<Transaction>) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].is_some() {
                self.submit_to(i, txs.clone());
            }
        }
    }

    pub fn submit_to(&mut self, i: usize, txs: Vec<Transaction>) {
        self.run(i, |d| d.submit(txs).map(drop));
    }

    /// Moves the cluster's clock to `now_ms` and fires node `i`'s due timers, `timer` among
    /// them.
    pub fn fire(&mut self, i: usize, timer: PbftTimer, now_ms: u64) {
        self.now_ms = now_ms;
        let deadline = self.core(i).timer_deadline(timer);
        assert!(
            deadline.is_some_and(|d| d <= now_ms),
            "{timer:?} is not due at {now_ms} (deadline {deadline:?})"
        );
        self.run(i, NodeDriver::tick);
    }

    pub fn core(&self, i: usize) -> &Pbft {
        self.driver(i).core()
    }

    /// Stops driving node `i` and hands its core over, to probe it directly.
    pub fn take_core(&mut self, i: usize) -> Pbft {
        self.nodes[i]
            .take()
            .expect("node is running")
            .into_parts()
            .0
    }

    /// Node `i` crashes, losing what it did not sync; it stays down until [`Cluster::restart`].
    pub fn crash(&mut self, i: usize) -> (L, MemoryLedger, ManualClock) {
        let (_, mut parts) = self.nodes[i].take().expect("node is running").into_parts();
        parts.ledger.crash();
        (parts.log.crash(), parts.ledger, parts.clock)
    }

    /// Node `i` crashes and restarts from its consensus log and ledger.
    pub fn restart(&mut self, i: usize) {
        let (mut log, ledger, clock) = self.crash(i);
        let restored = log.load().unwrap().expect("the log has a snapshot");
        let core =
            Pbft::restore(pbft_config(&self.genesis, i), validator_key(i), restored).unwrap();
        let mut driver = driver(&self.genesis, core, log, clock);
        *driver.ledger_mut() = ledger;
        self.nodes[i] = Some(driver);
        self.run(i, NodeDriver::start);
    }

    /// The state node `i`'s consensus log replays to.
    pub fn logged_state(&self, i: usize) -> PbftPersisted {
        self.driver(i)
            .log()
            .durable_state()
            .expect("the log has a snapshot")
    }

    /// Node `i`'s ledger.
    pub fn committed(&self, i: usize) -> &[(Block, CommitCertificate)] {
        self.driver(i).ledger().blocks()
    }

    pub fn height(&self, i: usize) -> u64 {
        self.core(i).last_committed().0
    }
}
