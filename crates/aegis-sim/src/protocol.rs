//! What the simulator needs from a protocol beyond `aegis_consensus::Protocol`: how to build
//! a core from the scenario's genesis, what a message promises (for the equivocation checker),
//! the protocol's own invariants, and how its Byzantine nodes misbehave. PBFT's is in
//! [`crate::pbft`], Raft's in [`crate::raft`].

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Debug;
use std::sync::Arc;

use aegis_consensus::{CoreStatus, Protocol, RecordOf};
use aegis_crypto::SecretKey;
use aegis_types::{Block, CommitCertificate, ConsensusAlgorithm, Genesis, Hash, ValidatorSet};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::Rng;

use crate::scenario::{Behavior, Scenario};
use crate::verifier::SharedVerifier;

/// Everything needed to build one node's core.
#[derive(Debug)]
pub struct CoreSetup<'a> {
    pub genesis: &'a Genesis,
    pub scenario: &'a Scenario,
    /// The node's index, which is its validator id.
    pub node: usize,
    pub key: SecretKey,
    /// Signature checks shared by every simulated node (same answers as Ed25519, memoised).
    pub verifier: Arc<SharedVerifier>,
}

/// A signed promise: its `signer` must never make two different ones with the same `kind`,
/// `epoch` and `slot`, even across restarts. A node that forwards another's message (PBFT
/// relays NEW-VIEWs and checkpoint proofs) makes no statement of its own by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Statement {
    pub signer: usize,
    pub kind: &'static str,
    pub epoch: u64,
    pub slot: u64,
    pub digest: Hash,
}

/// A message put on the simulated wire: (from, to, message).
pub type Transmission<M> = (usize, usize, M);

/// What Byzantine behaviour may use: every key (a Byzantine node signs with its own; colluders
/// with each other's), the cluster's view of each node, and the run's RNG.
#[derive(Debug)]
pub struct Adversary<'a, M> {
    pub scenario: &'a Scenario,
    pub keys: &'a [SecretKey],
    pub chain_id: &'a str,
    pub validators: &'a ValidatorSet,
    pub genesis_hash: Hash,
    pub behaviors: &'a [Option<Behavior>],
    /// Each node's status, `None` while it is down.
    pub status: &'a [Option<CoreStatus>],
    pub rng: &'a mut ChaCha8Rng,
    /// Messages the acting node received or sent lately (for replays), at most
    /// [`REPLAY_MEMORY`].
    pub memory: &'a mut VecDeque<M>,
}

/// Messages a replaying Byzantine node remembers.
pub const REPLAY_MEMORY: usize = 128;

impl<M> Adversary<'_, M> {
    pub fn chance(&mut self, per_mille: u32) -> bool {
        per_mille > 0 && self.rng.next_u64() % 1000 < u64::from(per_mille)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.rng.next_u64() % n.max(1)
    }

    pub fn remember(&mut self, message: M) {
        if self.memory.len() >= REPLAY_MEMORY {
            self.memory.pop_front();
        }
        self.memory.push_back(message);
    }

    /// Indices of nodes that behave as `behavior`.
    pub fn nodes_with(&self, behavior: Option<Behavior>) -> Vec<usize> {
        (0..self.behaviors.len())
            .filter(|i| self.behaviors[*i] == behavior)
            .collect()
    }
}

/// A moment worth crashing at: the fault injector aims crashes and torn writes at the steps
/// that persisted one of these (PBFT: a primary's proposal, a VIEW-CHANGE, a NEW-VIEW).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Moment {
    /// The leader just ordered a new batch or entry.
    Proposing,
    /// The node just asked to leave its epoch (PBFT's VIEW-CHANGE, Raft's vote request).
    LeavingEpoch,
    /// The node just entered a new epoch (PBFT's NEW-VIEW; Raft: it granted its vote to
    /// another candidate of a new term).
    EnteringEpoch,
}

impl Moment {
    pub fn as_str(self) -> &'static str {
        match self {
            Moment::Proposing => "proposing",
            Moment::LeavingEpoch => "leaving-epoch",
            Moment::EnteringEpoch => "entering-epoch",
        }
    }
}

/// What protocol invariants see of the world: the cluster's fixed parameters, the acting
/// node's ledger, and the chain honest nodes agreed on. Nothing here is the core's code:
/// the quorum arithmetic and signature checks are the checker's own ([`crate::quorum`]).
#[derive(Debug)]
pub struct World<'a> {
    pub scenario: &'a Scenario,
    pub chain_id: &'a str,
    pub genesis_hash: Hash,
    /// The validators' keys and names; only [`crate::quorum`] says how many make a quorum.
    pub validators: &'a ValidatorSet,
    /// The acting node's ledger: block `h` at index `h - 1`.
    pub blocks: &'a [(Block, CommitCertificate)],
    /// Where each transaction sits in the acting node's ledger.
    pub tx_heights: &'a BTreeMap<Hash, u64>,
    /// The block hash honest nodes committed at each height.
    pub canonical: &'a BTreeMap<u64, Hash>,
}

impl World<'_> {
    /// The hash of the acting node's block `height` (the genesis hash for 0).
    pub fn block_hash(&self, height: u64) -> Option<Hash> {
        if height == 0 {
            return Some(self.genesis_hash);
        }
        let index = usize::try_from(height - 1).ok()?;
        self.blocks.get(index).map(|(block, _)| block.hash())
    }

    /// The timestamp of the acting node's block `height` (0 for the genesis).
    pub fn block_timestamp_ms(&self, height: u64) -> Option<u64> {
        if height == 0 {
            return Some(0);
        }
        let index = usize::try_from(height - 1).ok()?;
        self.blocks
            .get(index)
            .map(|(block, _)| block.header.timestamp_ms)
    }
}

/// Protocol-specific invariants, checked on every step from what honest nodes persist and
/// send (PBFT's are in [`crate::pbft`], Raft's in [`crate::raft`]). Each returns the
/// violations it found, as text starting with the checker's name and a colon. A hook a
/// protocol has nothing to say about keeps its default: no violation.
pub trait Invariants<P: SimProtocol>: Debug + Default {
    /// Honest `node`'s durable state after a sync (what its consensus log replays to).
    fn persisted(
        &mut self,
        _world: &World<'_>,
        _node: usize,
        _state: &P::Persisted,
    ) -> Vec<String> {
        Vec::new()
    }

    /// Honest `node` puts `message` on the wire (first copies and retransmissions alike);
    /// `first` says the message makes a statement this node had not made before.
    fn sent(
        &mut self,
        _world: &World<'_>,
        _node: usize,
        _message: &P::Message,
        _first: bool,
    ) -> Vec<String> {
        Vec::new()
    }

    /// Honest `node`'s core after a step: what it says about itself (status, accessors, the
    /// timers the driver holds for it) must agree with its state and with the ledger.
    fn stepped(
        &mut self,
        _world: &World<'_>,
        _node: usize,
        _core: &P,
        _next_deadline: Option<u64>,
    ) -> Vec<String> {
        Vec::new()
    }

    /// Honest `node` stored `block` with `certificate` at the next height of its ledger.
    fn committed(
        &mut self,
        _world: &World<'_>,
        _node: usize,
        _block: &Block,
        _certificate: &CommitCertificate,
    ) -> Vec<String> {
        Vec::new()
    }
}

/// No invariants beyond the common checkers.
#[derive(Debug, Default)]
pub struct NoInvariants;

impl<P: SimProtocol> Invariants<P> for NoInvariants {}

/// A protocol the simulator can run.
pub trait SimProtocol: Protocol + Debug + Sized {
    /// The genesis `algorithm` of the simulated chain.
    const ALGORITHM: ConsensusAlgorithm;

    /// Fewest validators a random run uses (PBFT: 4, so f >= 1 Byzantine; Raft: 3, so one may
    /// crash).
    const MIN_VALIDATORS: usize;

    /// The protocol's own invariant checkers.
    type Invariants: Invariants<Self>;

    /// Whether the run checks that every transaction the final leader acknowledged (admitted
    /// to its mempool since its last start) before the liveness probe is committed on every
    /// honest node once the probe is: the leader orders its own mempool oldest first.
    const CHECK_LEADER_ACKNOWLEDGED: bool = false;

    /// The genesis `max_byzantine_nodes` for `validators` (PBFT: (n - 1) / 3; Raft: 0): also
    /// the f of the checker's own quorum arithmetic ([`crate::quorum`]).
    fn genesis_byzantine(validators: usize) -> usize;

    /// Byzantine validators a random run may have (Raft tolerates crashes only: none).
    fn random_byzantine(validators: usize) -> usize;

    /// Fits a random scenario's faults to the timing the protocol assumes (PBFT assumes none:
    /// its timeouts grow; Raft needs a broadcast time below its election timeout, §5.6).
    fn fit_random(_scenario: &mut Scenario) {}

    /// Node `setup.node`'s core, new or restored from what its consensus log replays to.
    fn build(setup: CoreSetup<'_>, restored: Option<Self::Persisted>) -> Result<Self, String>;

    /// The promises a message node `sender` puts on the wire makes, with who signed them,
    /// among `validators` nodes (a PBFT NEW-VIEW makes one for itself and one for each
    /// PRE-PREPARE in it; a Raft response carries one commit vote per block, its sender's).
    fn statements(message: &Self::Message, sender: usize, validators: usize) -> Vec<Statement>;

    /// The moment a record of node `node`'s durable state marks, if it is one the fault
    /// injector aims crashes at; `self` is the node's core after the step that wrote it.
    fn moment(&self, node: usize, record: &RecordOf<Self>) -> Option<Moment>;

    /// One line for the event log (`--trace`).
    fn describe(message: &Self::Message) -> String;

    /// The height below which the node's log is garbage collected (PBFT's stable checkpoint).
    fn stable_height(&self) -> u64;

    /// Epoch and stable height of a durable state (for a node that is down).
    fn durable_summary(state: &Self::Persisted) -> (u64, u64);

    /// Flips a bit of the message's signature.
    fn corrupt_signature(message: &mut Self::Message);

    /// What Byzantine `node` remembers of a message delivered to it (replays, or a colluding
    /// primary's pick of VIEW-CHANGEs).
    fn observe(
        adversary: &mut Adversary<'_, Self::Message>,
        node: usize,
        behavior: Behavior,
        message: &Self::Message,
    );

    /// What a Byzantine node puts on the wire instead of `message` (addressed to `targets`).
    fn misbehave(
        adversary: &mut Adversary<'_, Self::Message>,
        from: usize,
        behavior: Behavior,
        targets: Vec<usize>,
        message: Self::Message,
    ) -> Vec<Transmission<Self::Message>>;

    /// What a replaying or flooding Byzantine node sends on its own, every tick.
    fn byzantine_tick(
        adversary: &mut Adversary<'_, Self::Message>,
        node: usize,
        behavior: Behavior,
    ) -> Vec<Transmission<Self::Message>>;
}
