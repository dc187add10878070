//! Helpers for Raft's tests: genesis and logs, one core stepped by hand (`Node`), and a small
//! network of cores (`Net`) that delivers messages in order unless a test filters them.
//!
//! Every step replays the records it handed out onto a copy of the node's durable state and
//! checks that the copy equals the core's own `persisted()`: no test can change the term, the
//! vote or the log without the journal saying so. Persistence is immediate: the node hears
//! `Input::Persisted` right after each persist, as from a driver whose sync never waits.

#![allow(dead_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail the test loudly"
)]

use std::collections::VecDeque;

use aegis_consensus::raft::{
    AppendEntries, AppendResponse, Raft, RaftConfig, RaftEffect, RaftInput, RaftMessage,
    RaftPersisted, RaftTimer, RejectReason, VoteSignature,
};
use aegis_consensus::{DurableState, Effect, Env, Input, Outgoing};
use aegis_types::{
    Block, CommitCertificate, CommitVote, ConsensusAlgorithm, Genesis, Hash, Transaction,
    ValidatorId,
};

pub use aegis_testkit::{CHAIN, tx, validator_key as key};

/// Election timeout T (timeouts are drawn from [T, 2T)) and heartbeat interval of the tests.
pub const ELECTION_MS: u64 = 1_000;
pub const HEARTBEAT_MS: u64 = 100;

/// A Raft genesis of `n` validators: f = 0, at most 10 transactions a block, 4 blocks in flight.
pub fn genesis(n: usize) -> Genesis {
    aegis_testkit::GenesisBuilder::new(n)
        .algorithm(ConsensusAlgorithm::Raft)
        .max_byzantine_nodes(0)
        .max_block_txs(10)
        .pipeline_depth(4)
        .build()
}

/// Node `i`'s configuration, PreVote and CheckQuorum on.
pub fn config(genesis: &Genesis, i: usize) -> RaftConfig {
    RaftConfig::from_genesis(genesis, id(i), HEARTBEAT_MS, ELECTION_MS).unwrap()
}

/// Node `i`'s configuration as the paper has it: no PreVote, no CheckQuorum.
pub fn paper_config(genesis: &Genesis, i: usize) -> RaftConfig {
    RaftConfig {
        pre_vote: false,
        check_quorum: false,
        ..config(genesis, i)
    }
}

pub fn id(i: usize) -> ValidatorId {
    ValidatorId(i as u16)
}

/// A log whose entry `k` (index k + 1) has term `terms[k]`: empty blocks by validator 0,
/// chained from the genesis. Equal prefixes of terms give equal blocks, as Log Matching says.
pub fn chain(genesis: &Genesis, terms: &[u64]) -> Vec<Block> {
    let mut prev = genesis.hash();
    let mut blocks = Vec::new();
    for (k, term) in terms.iter().enumerate() {
        let height = k as u64 + 1;
        let block = Block::new(
            &genesis.chain_id,
            height,
            prev,
            key(0).public_key(),
            *term,
            height,
            Vec::new(),
        );
        prev = block.hash();
        blocks.push(block);
    }
    blocks
}

/// A durable state in `term` with `voted_for` and the log of `terms`, nothing committed.
pub fn state(
    genesis: &Genesis,
    term: u64,
    voted_for: Option<usize>,
    terms: &[u64],
) -> RaftPersisted {
    RaftPersisted {
        term,
        voted_for: voted_for.map(id),
        entries: chain(genesis, terms),
        ..RaftPersisted::genesis(genesis.hash())
    }
}

/// One core, stepped by hand.
#[derive(Debug)]
pub struct Node {
    pub core: Raft,
    pub now_ms: u64,
    entropy: u64,
    /// What the records handed out so far replay to.
    pub durable: RaftPersisted,
    /// Blocks committed, with their certificates, in order.
    pub ledger: Vec<(Block, CommitCertificate)>,
    /// Whether the node hears `Persisted` right after each persist.
    pub auto_persist: bool,
    /// The last persist that asked for a sync, and the last one acknowledged: a message sent
    /// directly (not inside a persist) while the first is above the second breaks
    /// persist-then-send, and every step checks it.
    must_sync_sequence: u64,
    acknowledged_sequence: u64,
    /// Messages sent directly, and inside persists, over the node's life.
    pub sent_directly: usize,
    pub sent_after_persist: usize,
}

impl Node {
    pub fn new(config: RaftConfig) -> Node {
        let genesis_hash = config.genesis_hash;
        Node::restore(config, RaftPersisted::genesis(genesis_hash))
    }

    pub fn restore(config: RaftConfig, state: RaftPersisted) -> Node {
        let me = usize::from(config.me.0);
        let core = Raft::restore(config, key(me), state.clone()).unwrap();
        let sequence = state.persist_sequence;
        Node {
            core,
            now_ms: 1_000,
            entropy: me as u64 + 1,
            durable: state,
            ledger: Vec::new(),
            auto_persist: true,
            must_sync_sequence: sequence,
            acknowledged_sequence: sequence,
            sent_directly: 0,
            sent_after_persist: 0,
        }
    }

    pub fn id(&self) -> ValidatorId {
        aegis_consensus::Protocol::id(&self.core)
    }

    fn next_entropy(&mut self) -> u64 {
        // SplitMix64, as the engine's manual clock.
        self.entropy = self.entropy.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.entropy;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// One input; with `auto_persist`, then `Persisted` for what it persisted. Returns every
    /// effect of both steps.
    pub fn step(&mut self, input: RaftInput) -> Vec<RaftEffect> {
        if let Input::Persisted { up_to } = &input {
            self.acknowledged_sequence = self.acknowledged_sequence.max(*up_to);
        }
        let env = Env {
            now_ms: self.now_ms,
            entropy: self.next_entropy(),
        };
        let effects = aegis_consensus::Protocol::step(&mut self.core, env, input);
        let persisted = self.absorb(&effects);
        let mut all = effects;
        if self.auto_persist
            && let Some(up_to) = persisted
        {
            let env = Env {
                now_ms: self.now_ms,
                entropy: self.next_entropy(),
            };
            self.acknowledged_sequence = self.acknowledged_sequence.max(up_to);
            let more =
                aegis_consensus::Protocol::step(&mut self.core, env, Input::Persisted { up_to });
            self.absorb(&more);
            all.extend(more);
        }
        all
    }

    /// Applies what a step persisted and committed; checks the journal against the core.
    fn absorb(&mut self, effects: &[RaftEffect]) -> Option<u64> {
        let mut persisted = None;
        for effect in effects {
            match effect {
                Effect::Persist {
                    sequence,
                    records,
                    must_sync,
                    messages,
                    ..
                } => {
                    if !records.is_empty() {
                        self.durable.apply(*sequence, records).unwrap();
                    }
                    if *must_sync {
                        self.must_sync_sequence = *sequence;
                    }
                    self.sent_after_persist += messages.len();
                    persisted = Some(*sequence);
                }
                Effect::Send(Outgoing::To(_, message) | Outgoing::All(message)) => {
                    let promise_free = matches!(
                        message,
                        RaftMessage::RequestVote(r) if r.pre_vote
                    ) || matches!(message, RaftMessage::Vote(v) if v.pre_vote);
                    assert!(
                        promise_free || self.must_sync_sequence <= self.acknowledged_sequence,
                        "persist-then-send: {message:?} sent while persist {} is not durable \
                         (acknowledged up to {})",
                        self.must_sync_sequence,
                        self.acknowledged_sequence
                    );
                    self.sent_directly += 1;
                }
                Effect::CommitBlock { block, certificate } => {
                    assert_eq!(
                        block.height(),
                        self.ledger.len() as u64 + 1,
                        "commits in order"
                    );
                    self.ledger.push((block.clone(), certificate.clone()));
                }
                _ => {}
            }
        }
        assert!(
            effects
                .iter()
                .filter(|e| matches!(e, Effect::ProposalWanted { .. }))
                .count()
                <= 1,
            "a batch is asked for at most once per step"
        );
        assert_eq!(
            self.durable,
            self.core.persisted(),
            "the records replay to the core's durable state"
        );
        persisted
    }

    pub fn start(&mut self) -> Vec<RaftEffect> {
        self.step(Input::Start)
    }

    pub fn deliver(&mut self, from: usize, message: RaftMessage) -> Vec<RaftEffect> {
        self.step(Input::Message {
            from: id(from),
            message,
        })
    }

    /// Moves the clock to `timer`'s deadline (when it is later) and fires it.
    pub fn fire(&mut self, timer: RaftTimer) -> Vec<RaftEffect> {
        let deadline = self
            .core
            .timer_deadline(timer)
            .unwrap_or_else(|| panic!("{timer:?} is not armed"));
        self.now_ms = self.now_ms.max(deadline);
        self.step(Input::Timer(timer))
    }

    /// Hands the leader transactions, as the driver would: their ids, then the batch it asks
    /// for.
    pub fn propose(&mut self, txs: Vec<Transaction>) -> Vec<RaftEffect> {
        let ids = txs.iter().map(Transaction::id).collect();
        let mut effects = self.step(Input::TransactionsPending(ids));
        if effects
            .iter()
            .any(|e| matches!(e, Effect::ProposalWanted { .. }))
        {
            effects.extend(self.step(Input::Proposal(txs)));
        }
        effects
    }

    pub fn committed_height(&self) -> u64 {
        self.core.committed().height
    }

    /// Terms of the whole log: committed ones from the ledger, then the uncommitted ones.
    pub fn log_terms(&self) -> Vec<u64> {
        let committed = self.ledger.iter().map(|(b, _)| b.header.view);
        let uncommitted = self
            .core
            .uncommitted_entries()
            .into_iter()
            .map(|(_, t, _)| t);
        committed.chain(uncommitted).collect()
    }
}

/// Every message a step sent, with the peers `All` stands for.
pub fn messages(
    effects: &[RaftEffect],
    n: usize,
    me: ValidatorId,
) -> Vec<(ValidatorId, RaftMessage)> {
    let mut out = Vec::new();
    let mut push = |outgoing: &Outgoing<RaftMessage>| match outgoing {
        Outgoing::To(to, m) => out.push((*to, m.clone())),
        Outgoing::All(m) => {
            for to in (0..n).map(id).filter(|to| *to != me) {
                out.push((to, m.clone()));
            }
        }
    };
    for effect in effects {
        match effect {
            Effect::Send(o) => push(o),
            Effect::Persist { messages, .. } => messages.iter().for_each(&mut push),
            _ => {}
        }
    }
    out
}

/// The AppendEntries a step sent, by destination.
pub fn appends(
    effects: &[RaftEffect],
    n: usize,
    me: ValidatorId,
) -> Vec<(ValidatorId, AppendEntries)> {
    messages(effects, n, me)
        .into_iter()
        .filter_map(|(to, m)| match m {
            RaftMessage::Append(a) => Some((to, a)),
            _ => None,
        })
        .collect()
}

/// The reasons a step refused its input for, in order.
pub fn rejections(effects: &[RaftEffect]) -> Vec<RejectReason> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Rejected { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

/// The AppendEntries responses a step sent.
pub fn append_responses(effects: &[RaftEffect], n: usize, me: ValidatorId) -> Vec<AppendResponse> {
    messages(effects, n, me)
        .into_iter()
        .filter_map(|(_, m)| match m {
            RaftMessage::AppendResponse(r) => Some(r),
            _ => None,
        })
        .collect()
}

/// Follower `from`'s acceptance of `append` from `leader` (etcd's `acceptAndReply`): a match
/// up to the append's last entry, with commit votes for the entries above the leader's commit
/// when that last entry is of the message's term (a follower holding the leader's log).
pub fn accept_and_reply(from: usize, append: &AppendEntries, leader: &Raft) -> RaftMessage {
    let index = append.prev_index + append.entries.len() as u64;
    let mut votes = Vec::new();
    if leader.term_at(index) == Some(append.term) {
        for (height, _, hash) in leader.uncommitted_entries() {
            if height > append.leader_commit && height <= index {
                let vote = CommitVote::new(CHAIN, height, append.term, hash);
                let signature = key(from).sign_commit_vote(id(from), &vote).signature;
                votes.push(VoteSignature { height, signature });
            }
        }
    }
    RaftMessage::AppendResponse(AppendResponse {
        term: append.term,
        success: true,
        index,
        hint: 0,
        committed: 0,
        votes,
    })
}

impl Node {
    /// Delivers the acceptance of every append in `effects` by the followers `from` allows.
    pub fn accept(
        &mut self,
        effects: &[RaftEffect],
        n: usize,
        from: impl Fn(usize) -> bool,
    ) -> Vec<RaftEffect> {
        let mut after = Vec::new();
        for (to, append) in appends(effects, n, self.id()) {
            let to = usize::from(to.0);
            if from(to) {
                let reply = accept_and_reply(to, &append, &self.core);
                after.extend(self.deliver(to, reply));
            }
        }
        after
    }
}

/// The commit certificate the validators `signers` give the block `block` in `term`.
pub fn certificate(block: &Block, term: u64, signers: &[usize]) -> CommitCertificate {
    let vote = CommitVote::new(CHAIN, block.height(), term, block.hash());
    CommitCertificate {
        height: block.height(),
        view: term,
        block_hash: block.hash(),
        signatures: signers
            .iter()
            .map(|i| key(*i).sign_commit_vote(id(*i), &vote))
            .collect(),
    }
}

/// Whether any effect is a sync request.
pub fn sync_requested(effects: &[RaftEffect]) -> Option<u64> {
    effects.iter().find_map(|e| match e {
        Effect::RequestSync { from_height } => Some(*from_height),
        _ => None,
    })
}

/// What a crashed node finds again: its durable state and its ledger.
pub type Disk = (RaftPersisted, Vec<(Block, CommitCertificate)>);

/// A network of nodes with one clock: messages wait in a queue and are delivered in order,
/// sync requests are served at once from the longest ledger of a running peer.
#[derive(Debug)]
pub struct Net {
    pub nodes: Vec<Option<Node>>,
    /// What a crashed node's disk holds: its durable state and its ledger.
    pub disks: Vec<Option<Disk>>,
    pub configs: Vec<RaftConfig>,
    pub queue: VecDeque<(usize, usize, RaftMessage)>,
    pub now_ms: u64,
    /// Every step's effects, by node, when a test asks for them.
    pub history: Option<Vec<(usize, Vec<RaftEffect>)>>,
    /// The leader seen in each term (Election Safety, §5.2: at most one).
    pub leaders_by_term: std::collections::BTreeMap<u64, usize>,
}

impl Net {
    /// `configs.len()` nodes, started.
    pub fn new(configs: Vec<RaftConfig>) -> Net {
        let n = configs.len();
        let mut net = Net {
            nodes: configs
                .iter()
                .cloned()
                .map(|c| Some(Node::new(c)))
                .collect(),
            disks: vec![None; n],
            configs,
            queue: VecDeque::new(),
            now_ms: 1_000,
            history: None,
            leaders_by_term: Default::default(),
        };
        for i in 0..n {
            net.run(i, Input::Start);
        }
        net
    }

    /// Nodes restored from `states`, started.
    pub fn restored(configs: Vec<RaftConfig>, states: Vec<RaftPersisted>) -> Net {
        let n = configs.len();
        let mut net = Net {
            nodes: configs
                .iter()
                .cloned()
                .zip(states)
                .map(|(c, s)| Some(Node::restore(c, s)))
                .collect(),
            disks: vec![None; n],
            configs,
            queue: VecDeque::new(),
            now_ms: 1_000,
            history: None,
            leaders_by_term: Default::default(),
        };
        for i in 0..n {
            net.run(i, Input::Start);
        }
        net
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn node(&self, i: usize) -> &Node {
        self.nodes[i].as_ref().expect("node is running")
    }

    pub fn node_mut(&mut self, i: usize) -> &mut Node {
        self.nodes[i].as_mut().expect("node is running")
    }

    pub fn core(&self, i: usize) -> &Raft {
        &self.node(i).core
    }

    /// Steps node `i` at the network's time and queues what it sent.
    pub fn run(&mut self, i: usize, input: RaftInput) -> Vec<RaftEffect> {
        let n = self.len();
        let now = self.now_ms;
        let node = self.node_mut(i);
        node.now_ms = node.now_ms.max(now);
        let effects = node.step(input);
        let me = node.id();
        if node.core.role() == aegis_consensus::raft::RaftRole::Leader {
            let term = node.core.term();
            let first = *self.leaders_by_term.entry(term).or_insert(i);
            assert_eq!(
                first, i,
                "two leaders in term {term} (Election Safety, §5.2)"
            );
        }
        if let Some(history) = &mut self.history {
            history.push((i, effects.clone()));
        }
        for (to, message) in messages(&effects, n, me) {
            self.queue.push_back((i, usize::from(to.0), message));
        }
        if let Some(from_height) = sync_requested(&effects) {
            self.serve_sync(i, from_height);
        }
        effects
    }

    fn serve_sync(&mut self, i: usize, from_height: u64) {
        let best = (0..self.len())
            .filter(|j| *j != i)
            .filter_map(|j| self.nodes[j].as_ref())
            .max_by_key(|node| node.ledger.len())
            .map(|node| node.ledger.clone())
            .unwrap_or_default();
        for (block, certificate) in best
            .into_iter()
            .skip(from_height.saturating_sub(1) as usize)
        {
            self.run(i, Input::SyncedBlock { block, certificate });
        }
    }

    /// Delivers queued messages until none are left, skipping those `keep` refuses and those
    /// to nodes that are down.
    pub fn deliver_all(&mut self, keep: impl Fn(usize, usize, &RaftMessage) -> bool) {
        let mut budget = 100_000;
        while let Some((from, to, message)) = self.queue.pop_front() {
            budget -= 1;
            assert!(budget > 0, "message storm");
            if keep(from, to, &message) && self.nodes[to].is_some() {
                self.run(
                    to,
                    Input::Message {
                        from: id(from),
                        message,
                    },
                );
            }
        }
    }

    pub fn deliver_everything(&mut self) {
        self.deliver_all(|_, _, _| true);
    }

    /// Moves the clock by `ms`, firing every due timer of every running node in deadline
    /// order (messages stay queued).
    pub fn advance(&mut self, ms: u64) {
        let target = self.now_ms + ms;
        loop {
            let due = (0..self.len())
                .filter_map(|i| {
                    let node = self.nodes[i].as_ref()?;
                    [
                        RaftTimer::Election,
                        RaftTimer::Heartbeat,
                        RaftTimer::CheckQuorum,
                    ]
                    .into_iter()
                    .filter_map(|t| node.core.timer_deadline(t).map(|d| (d, i, t)))
                    .filter(|(d, _, _)| *d <= target)
                    .min()
                })
                .min();
            let Some((deadline, i, timer)) = due else {
                break;
            };
            self.now_ms = self.now_ms.max(deadline);
            self.run(i, Input::Timer(timer));
        }
        self.now_ms = target;
    }

    /// Moves the clock in heartbeat steps, delivering what `keep` allows after each.
    pub fn run_for(&mut self, ms: u64, keep: impl Fn(usize, usize, &RaftMessage) -> bool) {
        let mut left = ms;
        while left > 0 {
            let step = left.min(HEARTBEAT_MS / 2);
            self.advance(step);
            self.deliver_all(&keep);
            left -= step;
        }
    }

    /// Node `i` times out and campaigns; every message is delivered. Returns the leader.
    pub fn elect(&mut self, i: usize) -> usize {
        let deadline = self
            .core(i)
            .timer_deadline(RaftTimer::Election)
            .expect("armed");
        self.now_ms = self.now_ms.max(deadline);
        self.run(i, Input::Timer(RaftTimer::Election));
        self.deliver_everything();
        assert_eq!(self.core(i).role(), aegis_consensus::raft::RaftRole::Leader);
        i
    }

    /// Hands `txs` to node `i` as the driver would and delivers everything.
    pub fn propose(&mut self, i: usize, txs: Vec<Transaction>) {
        let ids = txs.iter().map(Transaction::id).collect();
        let effects = self.run(i, Input::TransactionsPending(ids));
        if effects
            .iter()
            .any(|e| matches!(e, Effect::ProposalWanted { .. }))
        {
            self.run(i, Input::Proposal(txs));
        }
    }

    /// Node `i` crashes: what it persisted and its ledger stay on its disk.
    pub fn crash(&mut self, i: usize) {
        let node = self.nodes[i].take().expect("node is running");
        self.disks[i] = Some((node.durable, node.ledger));
        self.queue.retain(|(_, to, _)| *to != i);
    }

    /// Node `i` restarts from its disk: the state its records replay to, its ledger.
    pub fn restart(&mut self, i: usize) {
        let (state, ledger) = self.disks[i].take().expect("node is down");
        let mut node = Node::restore(self.configs[i].clone(), state);
        node.now_ms = self.now_ms;
        let committed = node.core.committed().height as usize;
        let replay: Vec<_> = ledger[committed..].to_vec();
        node.ledger = ledger[..committed].to_vec();
        self.nodes[i] = Some(node);
        for (block, certificate) in replay {
            self.run(i, Input::SyncedBlock { block, certificate });
        }
        self.run(i, Input::Start);
    }

    /// The leaders among running nodes, by term.
    pub fn leaders(&self) -> Vec<(u64, usize)> {
        (0..self.len())
            .filter_map(|i| {
                let node = self.nodes[i].as_ref()?;
                (node.core.role() == aegis_consensus::raft::RaftRole::Leader)
                    .then(|| (node.core.term(), i))
            })
            .collect()
    }

    /// Every running node's ledger agrees with every other on the heights both hold, and
    /// every certificate verifies with the genesis alone.
    pub fn assert_agreement(&self, genesis: &Genesis) {
        let validators = genesis.validator_set().unwrap();
        let ledgers: Vec<&Vec<(Block, CommitCertificate)>> =
            self.nodes.iter().flatten().map(|n| &n.ledger).collect();
        for ledger in &ledgers {
            for (block, certificate) in ledger.iter() {
                aegis_crypto::verify_commit_certificate(
                    certificate,
                    &genesis.chain_id,
                    &validators,
                )
                .unwrap();
                assert_eq!(certificate.block_hash, block.hash());
            }
        }
        for a in &ledgers {
            for b in &ledgers {
                for (x, y) in a.iter().zip(b.iter()) {
                    assert_eq!(x.0.hash(), y.0.hash(), "ledgers agree at {}", x.0.height());
                }
            }
        }
    }
}

/// The id of `block`'s transactions, for assertions.
pub fn tx_ids(block: &Block) -> Vec<Hash> {
    block.tx_ids()
}
