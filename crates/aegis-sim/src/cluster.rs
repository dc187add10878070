//! The simulation loop: N nodes, each the real `aegis-engine` driver over the real core with
//! simulated I/O, one virtual clock, one seeded RNG, and an event queue ordered by (time,
//! insertion). The driver's outbox feeds a faulty network ([`crate::network`]); its consensus
//! log, ledger and notices feed the checkers ([`crate::checker`]) after every step. Crashes
//! come on schedule, at random syncs (torn persists), and aimed at the steps that matter
//! (a proposal, a VIEW-CHANGE, a NEW-VIEW). With a trace on, every event is logged.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use aegis_consensus::{CoreStatus, Role};
use aegis_crypto::SecretKey;
use aegis_engine::memory::{
    ManualClock, MemoryIo, MemoryLedger, MemoryLog, Notice, Notices, Outbox,
};
use aegis_engine::{ConsensusLog, Driver, DriverConfig, DriverError, Ledger, Parts};
use aegis_mempool::{Admission, Mempool, MempoolConfig};
use aegis_types::{
    Block, CommitCertificate, ConsensusParams, Genesis, Hash, Transaction, TxBody, Validator,
    ValidatorId, ValidatorSet,
};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

use crate::protocol::{CoreSetup, Moment, SimProtocol};
use crate::quorum::SignatureMemo;
use crate::scenario::{Behavior, Scenario};
use crate::verifier::SharedVerifier;
use crate::{Outcome, Reject};

/// Virtual time starts here (milliseconds since the Unix epoch), so block timestamps look real.
pub(crate) const EPOCH_MS: u64 = 1_700_000_000_000;
/// How often Byzantine nodes replay or flood.
const BYZANTINE_TICK_MS: u64 = 250;
/// Hard cap on processed events, so a livelock shows as a violation rather than a hang.
const MAX_EVENTS: u64 = 3_000_000;

pub(crate) type SimDriver<P> = Driver<P, MemoryIo<P>>;

#[derive(Debug, Clone)]
pub(crate) enum Event<M> {
    Deliver {
        to: usize,
        from: usize,
        message: M,
    },
    Wake(usize),
    Submit {
        node: usize,
        txs: Vec<Transaction>,
    },
    Load,
    Crash(usize),
    Restart(usize),
    Synced {
        node: usize,
        blocks: Vec<(Block, CommitCertificate)>,
    },
    ByzantineTick(usize),
    Heal,
    Probe,
    /// A slow phase has lasted this long past healing: every honest node must have committed.
    SlowProgress,
}

#[derive(Debug)]
pub(crate) struct Node<P: SimProtocol> {
    pub(crate) driver: Option<SimDriver<P>>,
    /// The I/O of a node that is down: its log and ledger survive the crash.
    parked: Option<Parts<P, MemoryIo<P>>>,
    pub(crate) skew_ms: u64,
    pub(crate) behavior: Option<Behavior>,
    pub(crate) memory: VecDeque<P::Message>,
    entropy_seed: u64,
    /// The earliest wake-up already scheduled (virtual time).
    wake_at: Option<u64>,
    /// Highest ledger height the checkers have seen on this node.
    pub(crate) checked_height: u64,
    /// The consensus log's sync count when the checkers last read its durable state.
    pub(crate) checked_syncs: u64,
    /// Where each committed transaction sits in this node's ledger.
    pub(crate) tx_heights: BTreeMap<Hash, u64>,
    /// Transactions this node's mempool admitted since its last start, with when (virtual
    /// time); a crash loses them with the mempool.
    pub(crate) acknowledged: BTreeMap<Hash, u64>,
    /// The status when the node went down.
    last_status: Option<CoreStatus>,
    last_stable: u64,
}

/// One simulated cluster running protocol `P`.
#[derive(Debug)]
pub struct Sim<P: SimProtocol> {
    pub(crate) scenario: Scenario,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) now_ms: u64,
    counter: u64,
    queue: BTreeMap<(u64, u64), Event<P::Message>>,
    pub(crate) nodes: Vec<Node<P>>,
    pub(crate) keys: Vec<SecretKey>,
    genesis: Genesis,
    pub(crate) validators: ValidatorSet,
    pub(crate) chain_id: String,
    pub(crate) genesis_hash: Hash,
    verifier: Arc<SharedVerifier>,
    client: SecretKey,
    nonce: u64,
    pub(crate) submitted: BTreeSet<Hash>,
    pub(crate) probe: BTreeSet<Hash>,
    pub(crate) healed: bool,
    pub(crate) canonical: BTreeMap<u64, Hash>,
    /// Honest nodes' signed statements: (node, kind, epoch, slot) -> digest.
    pub(crate) statements: BTreeMap<(usize, &'static str, u64, u64), Hash>,
    /// The protocol's own invariant checkers.
    pub(crate) invariants: P::Invariants,
    /// The checkers' own signature checks (never the cores' verifier).
    pub(crate) memo: SignatureMemo,
    /// Crashes still to aim at interesting moments.
    aimed_left: u32,
    /// Each node's committed height when the network healed.
    heights_at_heal: Vec<u64>,
    /// The event log, when tracing.
    trace: Option<Vec<String>>,
    pub(crate) outcome: Outcome,
}

impl<P: SimProtocol> Sim<P> {
    pub fn new(scenario: Scenario) -> Sim<P> {
        let mut rng = ChaCha8Rng::seed_from_u64(scenario.seed);
        let n = scenario.validators;
        let keys: Vec<SecretKey> = (0..n)
            .map(|i| {
                let mut seed = [0u8; 32];
                seed[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
                seed[8] = 0xae;
                SecretKey::from_bytes(seed)
            })
            .collect();
        let genesis = Genesis {
            chain_id: "aegis-sim".into(),
            genesis_time_ms: EPOCH_MS,
            validators: keys
                .iter()
                .enumerate()
                .map(|(i, key)| Validator {
                    name: format!("node{i}"),
                    public_key: key.public_key(),
                    p2p_address: format!("10.0.0.{i}:8000"),
                    api_address: format!("10.0.0.{i}:8080"),
                })
                .collect(),
            consensus: ConsensusParams {
                algorithm: P::ALGORITHM,
                max_byzantine_nodes: P::genesis_byzantine(n) as u32,
                checkpoint_interval: scenario.checkpoint_interval,
                max_block_txs: scenario.max_block_txs,
                pipeline_depth: scenario.pipeline_depth,
            },
        };
        let mut nodes = Vec::new();
        for i in 0..n {
            let skew_ms = if scenario.clock_skew_max_ms == 0 {
                0
            } else {
                rng.next_u64() % scenario.clock_skew_max_ms
            };
            nodes.push(Node {
                driver: None,
                parked: None,
                skew_ms,
                behavior: scenario.behavior(i),
                memory: VecDeque::new(),
                entropy_seed: rng.next_u64(),
                wake_at: None,
                checked_height: 0,
                checked_syncs: 0,
                tx_heights: BTreeMap::new(),
                acknowledged: BTreeMap::new(),
                last_status: None,
                last_stable: 0,
            });
        }
        let validators = match genesis.validator_set() {
            Ok(set) => set,
            Err(error) => unreachable_config(&error.to_string()),
        };
        let outcome = Outcome {
            seed: scenario.seed,
            ..Outcome::default()
        };
        Sim {
            chain_id: genesis.chain_id.clone(),
            genesis_hash: genesis.hash(),
            genesis,
            scenario,
            rng,
            now_ms: 0,
            counter: 0,
            queue: BTreeMap::new(),
            nodes,
            keys,
            validators,
            verifier: Arc::new(SharedVerifier::default()),
            client: SecretKey::from_bytes([0xc1; 32]),
            nonce: 0,
            submitted: BTreeSet::new(),
            probe: BTreeSet::new(),
            healed: false,
            canonical: BTreeMap::new(),
            statements: BTreeMap::new(),
            invariants: P::Invariants::default(),
            memo: SignatureMemo::default(),
            aimed_left: 0,
            heights_at_heal: Vec::new(),
            trace: None,
            outcome,
        }
    }

    /// Logs every event of the run into [`Outcome::trace`].
    pub fn traced(mut self) -> Sim<P> {
        self.trace = Some(Vec::new());
        self
    }

    /// Adds a line to the event log, if tracing (the line is built only then).
    pub(crate) fn trace(&mut self, line: impl FnOnce() -> String) {
        let now_ms = self.now_ms;
        if let Some(trace) = self.trace.as_mut() {
            trace.push(format!("{now_ms:>7} ms  {}", line()));
        }
    }

    pub(crate) fn schedule(&mut self, at_ms: u64, event: Event<P::Message>) {
        self.counter += 1;
        self.queue.insert((at_ms, self.counter), event);
    }

    pub(crate) fn chance(&mut self, per_mille: u32) -> bool {
        per_mille > 0 && self.rng.next_u64() % 1000 < u64::from(per_mille)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.rng.next_u64() % n.max(1)
    }

    pub(crate) fn violation(&mut self, text: String) {
        self.trace(|| format!("VIOLATION {text}"));
        if self.outcome.violations.len() < 20 {
            self.outcome.violations.push(text);
        }
    }

    fn local_now(&self, node: usize) -> u64 {
        EPOCH_MS + self.now_ms + self.nodes[node].skew_ms
    }

    /// Runs to the end and checks everything.
    pub fn run(mut self) -> Outcome {
        self.aimed_left = self.scenario.aimed_crash_budget;
        for i in 0..self.nodes.len() {
            self.start_node(i);
            if matches!(
                self.nodes[i].behavior,
                Some(Behavior::Replay | Behavior::Flood)
            ) {
                self.schedule(BYZANTINE_TICK_MS, Event::ByzantineTick(i));
            }
        }
        self.schedule(10, Event::Load);
        for crash in self.scenario.crashes.clone() {
            self.schedule(crash.at_ms, Event::Crash(crash.node));
            self.schedule(
                crash.restart_ms.max(crash.at_ms + 1),
                Event::Restart(crash.node),
            );
        }
        let heal_ms = self.scenario.heal_ms;
        self.schedule(heal_ms, Event::Heal);
        self.schedule(heal_ms + 100, Event::Probe);
        // Liveness is owed once the network is good again: after healing and after any slow
        // phase still running then; during such a phase, progress is owed (see SlowProgress).
        let slow_until = self.scenario.slow_after_heal_until();
        let good_from = slow_until.unwrap_or(0).max(heal_ms + 100);
        let deadline = good_from + self.scenario.liveness_bound_ms;
        let progress_at = heal_ms + self.scenario.slow_progress_bound_ms;
        if slow_until.is_some_and(|until| until >= progress_at) {
            self.schedule(progress_at, Event::SlowProgress);
        }
        while let Some(((at_ms, _), event)) = self.queue.pop_first() {
            if at_ms > deadline || self.outcome.events >= MAX_EVENTS {
                break;
            }
            self.now_ms = at_ms;
            self.outcome.events += 1;
            self.handle(event);
            if self.outcome.liveness_ms.is_some() {
                break;
            }
        }
        if self.outcome.liveness_ms.is_none() {
            let heights = self.honest_heights();
            self.violation(format!(
                "liveness: probe transactions not committed by every honest node within {} ms of healing and the end of slow phases (heights {heights:?}, events {})",
                self.scenario.liveness_bound_ms, self.outcome.events
            ));
        }
        self.finish()
    }

    fn honest_heights(&self) -> Vec<(usize, u64)> {
        (0..self.nodes.len())
            .filter(|i| !self.scenario.is_byzantine(*i))
            .map(|i| (i, self.nodes[i].checked_height))
            .collect()
    }

    fn finish(mut self) -> Outcome {
        for node in &self.nodes {
            let (status, stable) = match &node.driver {
                Some(driver) => (Some(driver.status()), driver.core().stable_height()),
                None => (node.last_status, node.last_stable),
            };
            self.outcome.heights.push(node.checked_height);
            self.outcome
                .views
                .push(status.map_or(0, |status| status.epoch));
            self.outcome.statuses.push(match (&node.driver, status) {
                (None, _) => "down",
                (Some(_), Some(status)) if status.role == Role::Electing => "view-changing",
                (Some(_), _) => "normal",
            });
            self.outcome
                .pending
                .push(node.driver.as_ref().map_or(0, |d| d.mempool().len()));
            self.outcome.stable_checkpoints.push(stable);
            let log = node
                .driver
                .as_ref()
                .map(|d| d.log())
                .or(node.parked.as_ref().map(|p| &p.log));
            if let Some(log) = log {
                self.outcome.log_bytes += log.written_bytes;
                self.outcome.log_syncs += log.syncs;
                self.outcome.log_compactions += log.compactions;
            }
        }
        self.outcome.end_ms = self.now_ms;
        self.outcome.signatures_checked = self.memo.verified;
        self.outcome.trace = self.trace.take().unwrap_or_default();
        self.outcome
    }

    // ------------------------------------------------------------------- nodes

    fn start_node(&mut self, i: usize) {
        let mut parts = self.nodes[i].parked.take().unwrap_or_else(|| Parts {
            transport: Outbox::default(),
            log: MemoryLog::new(),
            ledger: MemoryLedger::new(),
            clock: ManualClock::new(0, self.nodes[i].entropy_seed),
            observer: Notices::default(),
        });
        let restored = match parts.log.load() {
            Ok(restored) => restored,
            Err(error) => {
                self.violation(format!("restart: node {i}'s consensus log: {error}"));
                None
            }
        };
        let setup = CoreSetup {
            genesis: &self.genesis,
            scenario: &self.scenario,
            node: i,
            key: self.keys[i].clone(),
            verifier: Arc::clone(&self.verifier),
        };
        let core = match P::build(setup, restored) {
            Ok(core) => core,
            Err(error) => unreachable_config(&error),
        };
        let mempool = match Mempool::new(MempoolConfig::default(), self.chain_id.clone()) {
            Ok(mempool) => mempool,
            Err(error) => unreachable_config(&error.to_string()),
        };
        self.nodes[i].driver = Some(Driver::new(core, parts, mempool, DriverConfig::default()));
        self.nodes[i].wake_at = None;
        self.call(i, SimDriver::start);
    }

    /// Runs `f` on node `i`'s driver, then (unless the node tears) flushes it and carries its
    /// output into the simulated world.
    fn call(&mut self, i: usize, f: impl FnOnce(&mut SimDriver<P>) -> Result<(), DriverError>) {
        let local_now = self.local_now(i);
        let Some(driver) = self.nodes[i].driver.as_mut() else {
            return;
        };
        driver.clock_mut().now_ms = local_now;
        if let Err(error) = f(driver) {
            self.violation(format!("driver: node {i}: {error}"));
            self.crash(i);
            return;
        }
        let Some(driver) = self.nodes[i].driver.as_mut() else {
            return;
        };
        let needs_sync = driver.needs_sync();
        let aimed_at = self.scenario.aimed_at;
        let core = driver.core();
        let moment = driver
            .log()
            .unsynced_records()
            .filter_map(|record| core.moment(i, record))
            .find(|moment| aimed_at.is_none_or(|wanted| wanted == *moment));
        let may_tear = needs_sync && !self.healed && self.nodes[i].behavior.is_none();
        if may_tear && self.chance(self.scenario.torn_persist_per_mille) {
            // The process dies before the sync: the log's unsynced records, the ledger's
            // unflushed blocks and the messages waiting for them are lost.
            self.outcome.torn_persists += 1;
            self.trace(|| format!("torn persist: node {i} crashes before its sync"));
            self.send_unheld(i);
            self.crash(i);
            let restart = self.now_ms + 50 + self.below(500);
            self.schedule(restart, Event::Restart(i));
            return;
        }
        // A crash aimed at this step: before its sync (torn) or right after its messages left.
        let aimed = match moment {
            Some(moment) if self.aim_crash(i) => Some((moment, self.chance(500))),
            _ => None,
        };
        if let Some((moment, true)) = aimed {
            self.send_unheld(i);
            self.aimed_crash(i, moment, "before its sync");
            return;
        }
        let flushed = self.nodes[i].driver.as_mut().map(SimDriver::flush);
        if let Some(Err(error)) = flushed {
            self.violation(format!("driver: node {i}: flush: {error}"));
            self.crash(i);
            return;
        }
        self.drain(i);
        if let Some((moment, false)) = aimed {
            self.aimed_crash(i, moment, "after its messages left");
        }
    }

    /// What the driver sent at once during a step (nothing waited for a sync) is on the wire
    /// before any crash that follows.
    fn send_unheld(&mut self, i: usize) {
        let Some(driver) = self.nodes[i].driver.as_mut() else {
            return;
        };
        let messages = std::mem::take(&mut driver.transport_mut().messages);
        for outgoing in messages {
            self.send(i, outgoing);
        }
    }

    /// Whether to crash honest node `i` at the interesting step it just took.
    fn aim_crash(&mut self, i: usize) -> bool {
        if self.aimed_left == 0 || self.healed || self.nodes[i].behavior.is_some() {
            return false;
        }
        self.chance(self.scenario.aimed_crash_per_mille)
    }

    fn aimed_crash(&mut self, i: usize, moment: Moment, when: &str) {
        self.aimed_left -= 1;
        self.outcome.aimed_crashes += 1;
        self.trace(|| format!("aimed crash: node {i} {} {when}", moment.as_str()));
        self.crash(i);
        let restart = self.now_ms + 50 + self.below(800);
        self.schedule(restart, Event::Restart(i));
    }

    /// Carries a driver's output into the world: committed blocks to the checkers, notices
    /// to the counters, messages to the network, sync requests to peers, the next timer
    /// deadline to the event queue.
    fn drain(&mut self, i: usize) {
        let Some(driver) = self.nodes[i].driver.as_mut() else {
            return;
        };
        let messages = std::mem::take(&mut driver.transport_mut().messages);
        let sync_requests = std::mem::take(&mut driver.transport_mut().sync_requests);
        let appended = driver.ledger_mut().take_appended();
        let notices = std::mem::take(&mut driver.observer_mut().notices);
        let deadline = driver.next_deadline();
        let replay_differs = self.scenario.check_replay
            && driver.log().unsynced_bytes() == 0
            && driver.log().durable() != Some(&driver.core().snapshot());
        if replay_differs {
            self.violation(format!(
                "consensus log: node {i}'s log replays to another state than its core's"
            ));
        }
        // What the node persisted first: a message it sends is checked against it.
        self.check_persisted(i);
        self.check_core(i);
        for (block, certificate) in appended {
            self.trace(|| {
                format!(
                    "node {i} committed height {} view {} ({} txs)",
                    block.height(),
                    certificate.view,
                    block.txs.len()
                )
            });
            self.check_commit(i, &block, &certificate);
        }
        for notice in notices {
            match notice {
                Notice::Rejected { reason, .. } => {
                    *self
                        .outcome
                        .rejections
                        .entry(reason.label().to_owned())
                        .or_default() += 1;
                }
                Notice::LeaderSuspected { epoch } => {
                    self.outcome.view_changes_started += 1;
                    self.trace(|| format!("node {i} suspects the leader, moves to epoch {epoch}"));
                }
                Notice::LeaderChanged { epoch, leader } => {
                    self.trace(|| format!("node {i} enters epoch {epoch}, leader {}", leader.0));
                }
                Notice::Committed { .. } => {}
            }
        }
        for outgoing in messages {
            self.send(i, outgoing);
        }
        for from_height in sync_requests {
            self.outcome.sync_requests += 1;
            self.serve_sync(i, from_height);
        }
        if let Some(deadline) = deadline {
            let at = self.now_ms + deadline.saturating_sub(self.local_now(i));
            if self.nodes[i]
                .wake_at
                .is_none_or(|w| at < w || w < self.now_ms)
            {
                self.nodes[i].wake_at = Some(at);
                self.schedule(at, Event::Wake(i));
            }
        }
    }

    fn crash(&mut self, node: usize) {
        if self.nodes[node].behavior.is_some() {
            return;
        }
        let Some(driver) = self.nodes[node].driver.take() else {
            return;
        };
        let (core, mut parts) = driver.into_parts();
        self.nodes[node].last_status = Some(aegis_consensus::Protocol::status(&core));
        self.nodes[node].last_stable = core.stable_height();
        parts.log.crash();
        parts.ledger.crash();
        parts.transport = Outbox::default();
        parts.observer = Notices::default();
        let durable = parts.ledger.height().unwrap_or(0);
        self.trace(|| format!("node {node} is down (ledger height {durable})"));
        self.nodes[node].checked_height = durable;
        self.nodes[node].tx_heights.retain(|_, h| *h <= durable);
        self.nodes[node].parked = Some(parts);
        self.nodes[node].wake_at = None;
        self.nodes[node].acknowledged.clear();
    }

    // ------------------------------------------------------------------ events

    fn handle(&mut self, event: Event<P::Message>) {
        match event {
            Event::Deliver { to, from, message } => {
                if self.nodes[to].driver.is_none() {
                    self.trace(|| format!("lost {from}->{to} (down) {}", P::describe(&message)));
                    return;
                }
                self.trace(|| format!("deliver {from}->{to} {}", P::describe(&message)));
                self.outcome.messages_delivered += 1;
                if let Some(behavior) = self.nodes[to].behavior {
                    self.with_adversary(to, |adversary| {
                        P::observe(adversary, to, behavior, &message);
                    });
                }
                let from = ValidatorId(from as u16);
                self.call(to, |driver| driver.deliver(from, message));
            }
            Event::Wake(node) => {
                if self.nodes[node].wake_at == Some(self.now_ms) {
                    self.nodes[node].wake_at = None;
                }
                self.call(node, SimDriver::tick);
            }
            Event::Submit { node, txs } => {
                self.trace(|| format!("submit {} transaction(s) to node {node}", txs.len()));
                let mut accepted = Vec::new();
                self.call(node, |driver| {
                    accepted = driver
                        .submit(txs)?
                        .into_iter()
                        .filter_map(|admission| match admission {
                            Admission::Accepted { id } => Some(id),
                            Admission::Refused(_) => None,
                        })
                        .collect();
                    Ok(())
                });
                // A node that crashed in this step lost its mempool, and with it these.
                if self.nodes[node].driver.is_some() {
                    let now_ms = self.now_ms;
                    let acknowledged = &mut self.nodes[node].acknowledged;
                    acknowledged.extend(accepted.into_iter().map(|id| (id, now_ms)));
                }
            }
            Event::Load => {
                if self.now_ms < self.scenario.heal_ms || self.scenario.load_after_heal {
                    let txs = self.new_txs(self.scenario.txs_per_submit);
                    // Usually every node hears of a transaction (mempool gossip); sometimes
                    // only some do, so only a later primary can order it.
                    let everyone = !self.chance(100);
                    for node in 0..self.nodes.len() {
                        if everyone || self.chance(500) {
                            let delay = self.below(20);
                            self.schedule(
                                self.now_ms + delay,
                                Event::Submit {
                                    node,
                                    txs: txs.clone(),
                                },
                            );
                        }
                    }
                    self.schedule(self.now_ms + self.scenario.tx_interval_ms, Event::Load);
                }
            }
            Event::Crash(node) => {
                self.trace(|| format!("scheduled crash of node {node}"));
                self.crash(node);
            }
            Event::Restart(node) => {
                if self.nodes[node].driver.is_none() {
                    self.trace(|| format!("node {node} restarts from its consensus log"));
                    self.start_node(node);
                }
            }
            Event::Synced { node, blocks } => {
                for (block, certificate) in blocks {
                    self.call(node, |driver| driver.synced_block(block, certificate));
                }
            }
            Event::ByzantineTick(node) => {
                self.byzantine_tick(node);
                self.schedule(self.now_ms + BYZANTINE_TICK_MS, Event::ByzantineTick(node));
            }
            Event::Heal => {
                self.trace(|| "heal: partitions, drops, duplicates and crashes end".into());
                self.healed = true;
                self.heights_at_heal = self.nodes.iter().map(|n| n.checked_height).collect();
                for node in 0..self.nodes.len() {
                    if self.nodes[node].driver.is_none() {
                        self.start_node(node);
                    }
                }
            }
            Event::SlowProgress => {
                let bound = self.scenario.slow_progress_bound_ms;
                for i in 0..self.nodes.len() {
                    let before = self.heights_at_heal.get(i).copied().unwrap_or(0);
                    if self.nodes[i].behavior.is_none() && self.nodes[i].checked_height <= before {
                        self.violation(format!(
                            "liveness: honest node {i} committed nothing within {bound} ms of healing on a slow but reliable network (height {before})"
                        ));
                    }
                }
            }
            Event::Probe => {
                let txs = self.new_txs(2);
                self.trace(|| "probe: two transactions to every node".into());
                self.probe = txs.iter().map(Transaction::id).collect();
                for node in 0..self.nodes.len() {
                    self.schedule(
                        self.now_ms + 1,
                        Event::Submit {
                            node,
                            txs: txs.clone(),
                        },
                    );
                }
                self.check_liveness();
            }
        }
    }

    fn new_txs(&mut self, count: usize) -> Vec<Transaction> {
        (0..count)
            .map(|_| {
                self.nonce += 1;
                let tx = self.client.sign_transaction(TxBody {
                    version: aegis_types::ENCODING_VERSION,
                    chain_id: self.chain_id.clone(),
                    sender: self.client.public_key(),
                    nonce: self.nonce,
                    payload: self.scenario.seed.to_le_bytes().to_vec(),
                });
                self.submitted.insert(tx.id());
                tx
            })
            .collect()
    }
}

#[cold]
#[allow(
    clippy::panic,
    reason = "the simulator builds its own genesis; a bad one is a bug in the simulator"
)]
fn unreachable_config(error: &str) -> ! {
    panic!("simulator built an invalid configuration: {error}");
}
