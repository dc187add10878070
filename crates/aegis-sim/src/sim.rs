//! The simulation loop: N real PBFT cores, one virtual clock, one seeded RNG, an event queue
//! ordered by (time, insertion), and checkers fed from every effect.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use aegis_consensus::pbft::{
    Batch, Commit, Pbft, PbftConfig, PbftEffect, PbftMessage, PbftPersisted, PbftTimer, PrePrepare,
    Prepare, SignatureCheck,
};
use aegis_consensus::{Effect, Env, Input, Outgoing, Protocol};
use aegis_crypto::{SecretKey, verify, verify_commit_certificate};
use aegis_types::{
    Block, CommitCertificate, ConsensusAlgorithm, ConsensusParams, Genesis, Hash, PublicKey,
    Signature, Transaction, TxBody, Validator, ValidatorId, ValidatorSet,
};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

use crate::scenario::{Behavior, Scenario};

/// Virtual time starts here (milliseconds since the Unix epoch), so block timestamps look real.
const EPOCH_MS: u64 = 1_700_000_000_000;
/// Most blocks one sync reply carries.
const MAX_SYNC_BLOCKS: usize = 16;
/// Messages a replaying Byzantine node remembers.
const REPLAY_MEMORY: usize = 128;
/// Junk messages a flooding node sends per tick.
const FLOOD_PER_TICK: usize = 12;
/// How often Byzantine nodes replay or flood.
const BYZANTINE_TICK_MS: u64 = 250;
/// Hard cap on processed events, so a livelock shows as a violation rather than a hang.
const MAX_EVENTS: u64 = 3_000_000;
/// Signature-check memo entries kept before the memo is cleared.
const MAX_MEMO: usize = 1 << 20;

/// Memoises Ed25519 answers across the simulated nodes: the answer for one (key, message,
/// signature) never changes, so verifying it once per run gives every node the true answer.
#[derive(Debug, Default)]
struct SharedVerifier {
    memo: Mutex<BTreeMap<MemoKey, bool>>,
}

/// Signer, digest of the signed bytes, signature.
type MemoKey = (PublicKey, Hash, [u8; 64]);

impl SignatureCheck for SharedVerifier {
    fn verify(&self, key: &PublicKey, message: &[u8], signature: &Signature) -> bool {
        let entry = (*key, Hash::digest(message), signature.0);
        if let Ok(memo) = self.memo.lock()
            && let Some(answer) = memo.get(&entry)
        {
            return *answer;
        }
        let answer = verify(key, message, signature).is_ok();
        if let Ok(mut memo) = self.memo.lock() {
            if memo.len() >= MAX_MEMO {
                memo.clear();
            }
            memo.insert(entry, answer);
        }
        answer
    }
}

#[derive(Debug, Clone)]
enum Event {
    Deliver {
        to: usize,
        from: usize,
        message: PbftMessage,
    },
    Timer {
        node: usize,
        timer: PbftTimer,
        deadline_ms: u64,
    },
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
}

#[derive(Debug)]
struct Node {
    key: SecretKey,
    core: Option<Pbft>,
    durable: Option<PbftPersisted>,
    ledger: Vec<(Block, CommitCertificate)>,
    timers: BTreeMap<PbftTimer, u64>,
    skew_ms: u64,
    behavior: Option<Behavior>,
    memory: VecDeque<PbftMessage>,
    committed_txs: BTreeSet<Hash>,
}

/// What a run found.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub seed: u64,
    /// Every checker failure, in the order found; empty for a correct run.
    pub violations: Vec<String>,
    /// Each node's committed height at the end.
    pub heights: Vec<u64>,
    /// Each node's view at the end (crashed nodes: their persisted view).
    pub views: Vec<u64>,
    /// Each node's stable checkpoint at the end.
    pub stable_checkpoints: Vec<u64>,
    /// Each node's status at the end ("normal", "view-changing", "down").
    pub statuses: Vec<&'static str>,
    /// Each node's pending transaction count at the end.
    pub pending: Vec<usize>,
    /// Virtual time at which every honest node had committed the probe, if it did.
    pub liveness_ms: Option<u64>,
    pub end_ms: u64,
    pub events: u64,
    pub messages_delivered: u64,
    /// Rejections by reason (the reason's debug name up to its first field).
    pub rejections: BTreeMap<String, u64>,
    pub view_changes_started: u64,
    pub sync_requests: u64,
    pub torn_persists: u64,
}

/// One simulated cluster.
#[derive(Debug)]
pub struct Simulation {
    scenario: Scenario,
    rng: ChaCha8Rng,
    now_ms: u64,
    counter: u64,
    queue: BTreeMap<(u64, u64), Event>,
    nodes: Vec<Node>,
    configs: Vec<PbftConfig>,
    validators: ValidatorSet,
    chain_id: String,
    genesis_hash: Hash,
    verifier: Arc<SharedVerifier>,
    client: SecretKey,
    nonce: u64,
    submitted: BTreeSet<Hash>,
    probe: BTreeSet<Hash>,
    healed: bool,
    canonical: BTreeMap<u64, Hash>,
    verified_certs: BTreeSet<Hash>,
    /// Honest nodes' signed statements: (node, kind, view, seq) -> digest.
    statements: BTreeMap<(usize, &'static str, u64, u64), Hash>,
    outcome: Outcome,
}

impl Simulation {
    pub fn new(scenario: Scenario) -> Simulation {
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
                algorithm: ConsensusAlgorithm::Pbft,
                max_byzantine_nodes: scenario.max_faulty() as u32,
                checkpoint_interval: scenario.checkpoint_interval,
                max_block_txs: scenario.max_block_txs,
                pipeline_depth: scenario.pipeline_depth,
            },
        };
        let mut configs = Vec::new();
        let mut nodes = Vec::new();
        let verifier = Arc::new(SharedVerifier::default());
        for (i, key) in keys.into_iter().enumerate() {
            let mut config = match PbftConfig::from_genesis(
                &genesis,
                ValidatorId(i as u16),
                scenario.progress_timeout_ms,
                scenario.message_timeout_ms,
            ) {
                Ok(config) => config,
                Err(error) => unreachable_config(&error.to_string()),
            };
            config.retransmit_interval_ms = scenario.message_timeout_ms / 2;
            configs.push(config);
            let skew_ms = if scenario.clock_skew_max_ms == 0 {
                0
            } else {
                rng.next_u64() % scenario.clock_skew_max_ms
            };
            nodes.push(Node {
                key,
                core: None,
                durable: None,
                ledger: Vec::new(),
                timers: BTreeMap::new(),
                skew_ms,
                behavior: scenario.behavior(i),
                memory: VecDeque::new(),
                committed_txs: BTreeSet::new(),
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
        let client = SecretKey::from_bytes([0xc1; 32]);
        Simulation {
            chain_id: genesis.chain_id.clone(),
            genesis_hash: genesis.hash(),
            scenario,
            rng,
            now_ms: 0,
            counter: 0,
            queue: BTreeMap::new(),
            nodes,
            configs,
            validators,
            verifier,
            client,
            nonce: 0,
            submitted: BTreeSet::new(),
            probe: BTreeSet::new(),
            healed: false,
            canonical: BTreeMap::new(),
            verified_certs: BTreeSet::new(),
            statements: BTreeMap::new(),
            outcome,
        }
    }

    fn schedule(&mut self, at_ms: u64, event: Event) {
        self.counter += 1;
        self.queue.insert((at_ms, self.counter), event);
    }

    fn chance(&mut self, per_mille: u32) -> bool {
        per_mille > 0 && self.rng.next_u64() % 1000 < u64::from(per_mille)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.rng.next_u64() % n.max(1)
    }

    fn violation(&mut self, text: String) {
        if self.outcome.violations.len() < 20 {
            self.outcome.violations.push(text);
        }
    }

    /// Runs to the end and checks everything.
    pub fn run(mut self) -> Outcome {
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
        self.schedule(self.scenario.heal_ms, Event::Heal);
        self.schedule(self.scenario.heal_ms + 100, Event::Probe);
        let deadline = self.scenario.heal_ms + 100 + self.scenario.liveness_bound_ms;
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
                "liveness: probe transactions not committed by every honest node within {} ms of healing (heights {heights:?}, events {})",
                self.scenario.liveness_bound_ms, self.outcome.events
            ));
        }
        self.finish()
    }

    fn honest_heights(&self) -> Vec<(usize, u64)> {
        (0..self.nodes.len())
            .filter(|i| !self.scenario.is_byzantine(*i))
            .map(|i| (i, self.nodes[i].ledger.len() as u64))
            .collect()
    }

    fn finish(mut self) -> Outcome {
        for node in &self.nodes {
            self.outcome.heights.push(node.ledger.len() as u64);
            let (view, stable) = match (&node.core, &node.durable) {
                (Some(core), _) => (core.view(), core.stable_checkpoint()),
                (None, Some(durable)) => (durable.view, durable.stable.seq),
                (None, None) => (0, 0),
            };
            self.outcome.views.push(view);
            self.outcome.statuses.push(match &node.core {
                Some(core) if core.status() == aegis_consensus::pbft::Status::Normal => "normal",
                Some(_) => "view-changing",
                None => "down",
            });
            self.outcome
                .pending
                .push(node.core.as_ref().map_or(0, Pbft::pending_txs));
            self.outcome.stable_checkpoints.push(stable);
        }
        self.outcome.end_ms = self.now_ms;
        self.outcome
    }

    fn start_node(&mut self, i: usize) {
        let config = self.configs[i].clone();
        let key = self.nodes[i].key.clone();
        let built = match self.nodes[i].durable.clone() {
            Some(state) => Pbft::restore(config, key, state),
            None => Pbft::new(config, key),
        };
        let core = match built {
            Ok(core) => core.with_verifier(self.verifier.clone()),
            Err(error) => unreachable_config(&error.to_string()),
        };
        let executed = core.last_committed().0;
        self.nodes[i].core = Some(core);
        self.nodes[i].timers.clear();
        // Blocks stored in the ledger but not yet in the persisted consensus state (a crash
        // between the two writes) are fed back as synced blocks, as the engine does.
        let replay: Vec<(Block, CommitCertificate)> = self.nodes[i]
            .ledger
            .iter()
            .skip(executed as usize)
            .cloned()
            .collect();
        for (block, certificate) in replay {
            self.step(i, Input::SyncedBlock { block, certificate });
        }
        self.step(i, Input::Start);
    }

    fn step(&mut self, i: usize, input: Input<PbftMessage, PbftTimer>) {
        let env = Env {
            now_ms: EPOCH_MS + self.now_ms + self.nodes[i].skew_ms,
            entropy: self.rng.next_u64(),
        };
        let Some(core) = self.nodes[i].core.as_mut() else {
            return;
        };
        let effects = core.step(env, input);
        self.apply(i, effects);
    }

    fn apply(&mut self, i: usize, effects: Vec<PbftEffect>) {
        for effect in effects {
            if self.nodes[i].core.is_none() {
                return;
            }
            match effect {
                Effect::Send(outgoing) => self.send(i, outgoing),
                Effect::PersistThenSend {
                    state, messages, ..
                } => {
                    let may_tear = !self.healed
                        && self.nodes[i].behavior.is_none()
                        && self.chance(self.scenario.torn_persist_per_mille);
                    if may_tear {
                        // The process dies before the write is durable: state and messages
                        // of this step are lost.
                        self.outcome.torn_persists += 1;
                        self.crash(i);
                        let restart = self.now_ms + 50 + self.below(500);
                        self.schedule(restart, Event::Restart(i));
                        return;
                    }
                    self.nodes[i].durable = Some(state);
                    for outgoing in messages {
                        self.send(i, outgoing);
                    }
                }
                Effect::CommitBlock { block, certificate } => {
                    self.on_commit(i, block, certificate);
                }
                Effect::SetTimer { timer, deadline_ms } => {
                    self.nodes[i].timers.insert(timer, deadline_ms);
                    let local_now = EPOCH_MS + self.now_ms + self.nodes[i].skew_ms;
                    let at = self.now_ms + deadline_ms.saturating_sub(local_now);
                    self.schedule(
                        at,
                        Event::Timer {
                            node: i,
                            timer,
                            deadline_ms,
                        },
                    );
                }
                Effect::CancelTimer { timer } => {
                    self.nodes[i].timers.remove(&timer);
                }
                Effect::RequestSync { from_height } => {
                    self.outcome.sync_requests += 1;
                    self.serve_sync(i, from_height);
                }
                Effect::Rejected { reason, .. } => {
                    let text = format!("{reason:?}");
                    let name = text
                        .split(|c: char| !c.is_alphanumeric())
                        .next()
                        .unwrap_or("")
                        .to_owned();
                    *self.outcome.rejections.entry(name).or_default() += 1;
                }
                Effect::ViewChangeStarted { .. } => self.outcome.view_changes_started += 1,
                Effect::ViewChanged { .. } => {}
            }
        }
    }

    // ------------------------------------------------------------------ events

    fn handle(&mut self, event: Event) {
        match event {
            Event::Deliver { to, from, message } => {
                if self.nodes[to].core.is_none() {
                    return;
                }
                self.outcome.messages_delivered += 1;
                if self.nodes[to].behavior == Some(Behavior::Replay) {
                    self.remember(to, message.clone());
                }
                let from = ValidatorId(from as u16);
                self.step(to, Input::Message { from, message });
            }
            Event::Timer {
                node,
                timer,
                deadline_ms,
            } => {
                if self.nodes[node].timers.get(&timer) == Some(&deadline_ms) {
                    self.nodes[node].timers.remove(&timer);
                    self.step(node, Input::Timer(timer));
                }
            }
            Event::Submit { node, txs } => self.step(node, Input::ClientTransactions(txs)),
            Event::Load => {
                if self.now_ms < self.scenario.heal_ms {
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
            Event::Crash(node) => self.crash(node),
            Event::Restart(node) => {
                if self.nodes[node].core.is_none() {
                    self.start_node(node);
                }
            }
            Event::Synced { node, blocks } => {
                for (block, certificate) in blocks {
                    self.step(node, Input::SyncedBlock { block, certificate });
                }
            }
            Event::ByzantineTick(node) => {
                self.byzantine_tick(node);
                self.schedule(self.now_ms + BYZANTINE_TICK_MS, Event::ByzantineTick(node));
            }
            Event::Heal => {
                self.healed = true;
                for node in 0..self.nodes.len() {
                    if self.nodes[node].core.is_none() {
                        self.start_node(node);
                    }
                }
            }
            Event::Probe => {
                let txs = self.new_txs(2);
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

    fn crash(&mut self, node: usize) {
        if self.nodes[node].behavior.is_some() {
            return;
        }
        self.nodes[node].core = None;
        self.nodes[node].timers.clear();
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

    // ----------------------------------------------------------------- network

    fn partitioned(&self, a: usize, b: usize) -> bool {
        if self.healed {
            return false;
        }
        self.scenario.partitions.iter().any(|p| {
            p.at_ms <= self.now_ms
                && self.now_ms < p.heal_ms
                && p.side.contains(&a) != p.side.contains(&b)
        })
    }

    fn send(&mut self, from: usize, outgoing: Outgoing<PbftMessage>) {
        let (targets, message): (Vec<usize>, PbftMessage) = match outgoing {
            Outgoing::To(to, message) => (vec![usize::from(to.0)], message),
            Outgoing::All(message) => (
                (0..self.nodes.len()).filter(|j| *j != from).collect(),
                message,
            ),
        };
        match self.nodes[from].behavior {
            None => {
                self.record_statement(from, &message);
                for to in targets {
                    self.transmit(from, to, message.clone());
                }
            }
            Some(behavior) => self.send_byzantine(from, behavior, targets, message),
        }
    }

    /// Puts one message on the wire with the scenario's faults.
    fn transmit(&mut self, from: usize, to: usize, message: PbftMessage) {
        if to >= self.nodes.len() || to == from || self.partitioned(from, to) {
            return;
        }
        let faults = self.scenario.network.clone();
        if !self.healed && self.chance(faults.drop_per_mille) {
            return;
        }
        let copies = if !self.healed && self.chance(faults.duplicate_per_mille) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut delay = faults.min_delay_ms
                + self.below(faults.max_delay_ms.saturating_sub(faults.min_delay_ms) + 1);
            if !self.healed && self.chance(faults.reorder_per_mille) {
                delay += self.below(10 * faults.max_delay_ms + 1);
            }
            self.schedule(
                self.now_ms + delay,
                Event::Deliver {
                    to,
                    from,
                    message: message.clone(),
                },
            );
        }
    }

    fn serve_sync(&mut self, node: usize, from_height: u64) {
        let peers: Vec<usize> = (0..self.nodes.len())
            .filter(|p| *p != node && self.nodes[*p].core.is_some() && !self.partitioned(node, *p))
            .collect();
        if peers.is_empty() {
            return;
        }
        let peer = peers[self.below(peers.len() as u64) as usize];
        let start = from_height.saturating_sub(1) as usize;
        let mut blocks: Vec<(Block, CommitCertificate)> = self.nodes[peer]
            .ledger
            .iter()
            .skip(start)
            .take(MAX_SYNC_BLOCKS)
            .cloned()
            .collect();
        if blocks.is_empty() {
            return;
        }
        if self.nodes[peer].behavior == Some(Behavior::InvalidSignatures) {
            for (_, certificate) in &mut blocks {
                for signature in &mut certificate.signatures {
                    signature.signature.0[0] ^= 1;
                }
            }
        }
        let delay = 20 + self.below(100);
        self.schedule(self.now_ms + delay, Event::Synced { node, blocks });
    }

    // ---------------------------------------------------------------- checkers

    /// Honest nodes never sign two different statements for one slot, even across restarts.
    fn record_statement(&mut self, node: usize, message: &PbftMessage) {
        let (kind, view, seq, digest) = match message {
            PbftMessage::PrePrepare(pp) if pp.batch.view == pp.view => {
                ("pre-prepare", pp.view, pp.seq, pp.batch.digest())
            }
            PbftMessage::Prepare(p) => ("prepare", p.view, p.seq, p.digest),
            PbftMessage::Commit(c) => ("commit", c.view, c.seq, c.block_hash),
            PbftMessage::Checkpoint(c) => ("checkpoint", 0, c.seq, c.block_hash),
            PbftMessage::NewView(nv) => (
                "new-view",
                nv.view,
                0,
                Hash::digest(&aegis_types::encoding::encode(nv)),
            ),
            _ => return,
        };
        let key = (node, kind, view, seq);
        match self.statements.get(&key) {
            Some(previous) if *previous != digest => {
                self.violation(format!(
                    "equivocation: honest node {node} sent two different {kind} messages for view {view}, sequence {seq}"
                ));
            }
            Some(_) => {}
            None => {
                self.statements.insert(key, digest);
            }
        }
    }

    fn on_commit(&mut self, i: usize, block: Block, certificate: CommitCertificate) {
        let height = block.height();
        let hash = block.hash();
        let honest = self.nodes[i].behavior.is_none();
        let have = self.nodes[i].ledger.len() as u64;
        if height <= have {
            // Re-committed after a restart: must be the block already stored.
            let stored = self.nodes[i].ledger[height as usize - 1].0.hash();
            if honest && stored != hash {
                self.violation(format!(
                    "agreement: node {i} re-committed a different block at height {height}"
                ));
            }
            return;
        }
        if honest {
            if height != have + 1 {
                self.violation(format!(
                    "gap: node {i} committed height {height} after {have}"
                ));
            }
            let expected_prev = self.nodes[i]
                .ledger
                .last()
                .map_or(self.genesis_hash, |(b, _)| b.hash());
            if block.header.prev_hash != expected_prev {
                self.violation(format!(
                    "chain: node {i}'s block {height} does not link to its block {have}"
                ));
            }
            match self.canonical.get(&height) {
                Some(existing) if *existing != hash => {
                    self.violation(format!(
                        "agreement: fork at height {height}: honest nodes committed different blocks (node {i} has {hash:?}, another {existing:?})"
                    ));
                }
                Some(_) => {}
                None => {
                    self.canonical.insert(height, hash);
                }
            }
            if !self.verified_certs.contains(&hash) {
                let ok = certificate.block_hash == hash
                    && certificate.height == height
                    && verify_commit_certificate(&certificate, &self.chain_id, &self.validators)
                        .is_ok();
                if ok {
                    self.verified_certs.insert(hash);
                } else {
                    self.violation(format!(
                        "certificate: node {i}'s block {height} carries a certificate that does not verify"
                    ));
                }
            }
            for tx in &block.txs {
                let id = tx.id();
                if !self.submitted.contains(&id) {
                    self.violation(format!(
                        "validity: node {i} committed a transaction nobody submitted at height {height}"
                    ));
                }
                if !self.nodes[i].committed_txs.insert(id) {
                    self.violation(format!(
                        "validity: node {i} committed transaction {id:?} twice (height {height})"
                    ));
                }
            }
        }
        self.nodes[i].ledger.push((block, certificate));
        if !self.probe.is_empty() {
            self.check_liveness();
        }
    }

    fn check_liveness(&mut self) {
        if self.outcome.liveness_ms.is_some() || self.probe.is_empty() {
            return;
        }
        let done = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].behavior.is_none())
            .all(|i| {
                self.probe
                    .iter()
                    .all(|id| self.nodes[i].committed_txs.contains(id))
            });
        if done {
            self.outcome.liveness_ms = Some(self.now_ms);
        }
    }

    // --------------------------------------------------------------- byzantine

    fn remember(&mut self, node: usize, message: PbftMessage) {
        let memory = &mut self.nodes[node].memory;
        if memory.len() >= REPLAY_MEMORY {
            memory.pop_front();
        }
        memory.push_back(message);
    }

    fn send_byzantine(
        &mut self,
        from: usize,
        behavior: Behavior,
        targets: Vec<usize>,
        message: PbftMessage,
    ) {
        let chain_id = self.chain_id.clone();
        let me = ValidatorId(from as u16);
        match behavior {
            Behavior::Silent => {}
            Behavior::Replay | Behavior::Flood => {
                if behavior == Behavior::Replay {
                    self.remember(from, message.clone());
                }
                for to in targets {
                    self.transmit(from, to, message.clone());
                }
            }
            Behavior::InvalidSignatures => {
                for to in targets {
                    let mut copy = message.clone();
                    if self.chance(500) {
                        corrupt_signature(&mut copy);
                    }
                    self.transmit(from, to, copy);
                }
            }
            Behavior::EquivocatingPrimary => {
                let PbftMessage::PrePrepare(pp) = &message else {
                    for to in targets {
                        self.transmit(from, to, message.clone());
                    }
                    return;
                };
                let other = self.variant(pp);
                let half = targets.len() / 2;
                for (k, to) in targets.into_iter().enumerate() {
                    let chosen = if k < half {
                        message.clone()
                    } else {
                        PbftMessage::PrePrepare(other.clone())
                    };
                    self.transmit(from, to, chosen);
                }
            }
            Behavior::ConflictingVotes => {
                let half = targets.len() / 2;
                let conflicting = match &message {
                    PbftMessage::Prepare(p) => Some(PbftMessage::Prepare(Prepare::new_signed(
                        &chain_id,
                        &self.nodes[from].key,
                        me,
                        p.view,
                        p.seq,
                        Hash::digest(&p.digest.0),
                    ))),
                    PbftMessage::Commit(c) => Some(PbftMessage::Commit(Commit::new_signed(
                        &chain_id,
                        &self.nodes[from].key,
                        me,
                        c.view,
                        c.seq,
                        Hash::digest(&c.block_hash.0),
                    ))),
                    _ => None,
                };
                for (k, to) in targets.into_iter().enumerate() {
                    let chosen = match (&conflicting, k < half) {
                        (Some(c), false) => c.clone(),
                        _ => message.clone(),
                    };
                    self.transmit(from, to, chosen);
                }
            }
            Behavior::Colluding => self.send_colluding(from, targets, message),
        }
    }

    /// A second, well-signed pre-prepare for the same slot.
    fn variant(&self, pp: &PrePrepare) -> PrePrepare {
        let mut batch = pp.batch.clone();
        batch.timestamp_ms += 1;
        let key = &self.nodes[usize::from(batch.proposer.0)].key;
        PrePrepare::new_signed(&self.chain_id, key, pp.view, pp.seq, batch)
    }

    /// The colluders' split: the honest nodes are cut in two halves, each shown its own
    /// batch, and every colluder prepares and commits both.
    fn send_colluding(&mut self, from: usize, targets: Vec<usize>, message: PbftMessage) {
        match &message {
            PbftMessage::Prepare(_) | PbftMessage::Commit(_) => {}
            PbftMessage::PrePrepare(pp) if pp.batch.view == pp.view => {
                let colluders: Vec<usize> = (0..self.nodes.len())
                    .filter(|i| self.nodes[*i].behavior == Some(Behavior::Colluding))
                    .collect();
                let honest: Vec<usize> = (0..self.nodes.len())
                    .filter(|i| self.nodes[*i].behavior.is_none())
                    .collect();
                let prev_hash = self.nodes[from]
                    .core
                    .as_ref()
                    .map_or(self.genesis_hash, |c| c.last_committed().1);
                let other = self.variant(pp);
                let halves = [pp.clone(), other];
                let split = honest.len() / 2;
                for (k, to) in honest.iter().enumerate() {
                    let pp = &halves[usize::from(k >= split)];
                    self.transmit(from, *to, PbftMessage::PrePrepare(pp.clone()));
                    let digest = pp.batch.digest();
                    let block = self.block_for(&pp.batch, pp.seq, prev_hash);
                    for c in &colluders {
                        let key = self.nodes[*c].key.clone();
                        let id = ValidatorId(*c as u16);
                        if id != self.validators.primary(pp.view) {
                            let p = Prepare::new_signed(
                                &self.chain_id,
                                &key,
                                id,
                                pp.view,
                                pp.seq,
                                digest,
                            );
                            self.transmit(*c, *to, PbftMessage::Prepare(p));
                        }
                        let commit =
                            Commit::new_signed(&self.chain_id, &key, id, pp.view, pp.seq, block);
                        self.transmit(*c, *to, PbftMessage::Commit(commit));
                    }
                }
            }
            _ => {
                for to in targets {
                    self.transmit(from, to, message.clone());
                }
            }
        }
    }

    fn block_for(&self, batch: &Batch, height: u64, prev_hash: Hash) -> Hash {
        let proposer = self
            .validators
            .get(batch.proposer)
            .map_or(PublicKey([0; 32]), |v| v.public_key);
        batch
            .to_block(&self.chain_id, height, prev_hash, proposer, |_| true)
            .hash()
    }

    fn byzantine_tick(&mut self, node: usize) {
        let Some(behavior) = self.nodes[node].behavior else {
            return;
        };
        let n = self.nodes.len() as u64;
        match behavior {
            Behavior::Replay => {
                for _ in 0..4 {
                    let len = self.nodes[node].memory.len() as u64;
                    if len == 0 {
                        return;
                    }
                    let pick = self.below(len) as usize;
                    let message = self.nodes[node].memory[pick].clone();
                    let to = self.below(n) as usize;
                    self.transmit(node, to, message);
                }
            }
            Behavior::Flood => {
                let view = self.nodes[node].core.as_ref().map_or(0, Pbft::view);
                let me = ValidatorId(node as u16);
                for _ in 0..FLOOD_PER_TICK {
                    let to = self.below(n) as usize;
                    let seq = self.below(40);
                    let v = view + self.below(3);
                    let junk = Hash::digest(&self.rng.next_u64().to_le_bytes());
                    let key = self.nodes[node].key.clone();
                    let message = match self.below(4) {
                        0 => PbftMessage::Prepare(Prepare::new_signed(
                            &self.chain_id,
                            &key,
                            me,
                            v,
                            seq,
                            junk,
                        )),
                        1 => PbftMessage::Commit(Commit::new_signed(
                            &self.chain_id,
                            &key,
                            me,
                            v,
                            seq,
                            junk,
                        )),
                        2 => {
                            PbftMessage::Checkpoint(aegis_consensus::pbft::Checkpoint::new_signed(
                                &self.chain_id,
                                &key,
                                me,
                                seq,
                                junk,
                            ))
                        }
                        _ => PbftMessage::PrePrepare(PrePrepare::new_signed(
                            &self.chain_id,
                            &key,
                            v,
                            seq,
                            Batch {
                                proposer: me,
                                view: v,
                                timestamp_ms: 0,
                                txs: Vec::new(),
                            },
                        )),
                    };
                    self.transmit(node, to, message);
                }
            }
            _ => {}
        }
    }
}

fn corrupt_signature(message: &mut PbftMessage) {
    let signature = match message {
        PbftMessage::PrePrepare(m) => &mut m.signature,
        PbftMessage::Prepare(m) => &mut m.signature,
        PbftMessage::Commit(m) => &mut m.signature,
        PbftMessage::Checkpoint(m) => &mut m.signature,
        PbftMessage::ViewChange(m) => &mut m.signature,
        PbftMessage::NewView(m) => &mut m.signature,
    };
    signature.0[0] ^= 0x01;
}

#[cold]
#[allow(
    clippy::panic,
    reason = "the simulator builds its own genesis; a bad one is a bug in the simulator"
)]
fn unreachable_config(error: &str) -> ! {
    panic!("simulator built an invalid configuration: {error}");
}
