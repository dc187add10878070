//! What the simulator needs from a protocol beyond `aegis_consensus::Protocol`: how to build
//! a core from the scenario's genesis, what a message promises (for the equivocation checker),
//! the protocol's own invariants, and how its Byzantine nodes misbehave. PBFT's is in
//! [`crate::pbft`], Raft's in [`crate::raft`].

use std::collections::VecDeque;
use std::fmt::Debug;
use std::sync::Arc;

use aegis_consensus::{CoreStatus, Protocol};
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

/// A signed promise an honest node makes: it must never make two different ones with the same
/// `kind`, `epoch` and `slot`, even across restarts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Statement {
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

/// Protocol-specific invariants, checked on every step of an honest node (PBFT has none
/// beyond the common checkers; Raft's are in [`crate::raft`]). Each returns the violations it
/// found, as text starting with the checker's name and a colon.
pub trait Invariants<P: SimProtocol>: Debug + Default {
    /// Honest `node`'s core after a step.
    fn stepped(&mut self, node: usize, core: &P) -> Vec<String>;

    /// Honest `node` stored `block` with `certificate` at the next height of its ledger.
    fn committed(
        &mut self,
        node: usize,
        block: &Block,
        certificate: &CommitCertificate,
    ) -> Vec<String>;
}

/// No invariants beyond the common checkers.
#[derive(Debug, Default)]
pub struct NoInvariants;

impl<P: SimProtocol> Invariants<P> for NoInvariants {
    fn stepped(&mut self, _node: usize, _core: &P) -> Vec<String> {
        Vec::new()
    }

    fn committed(
        &mut self,
        _node: usize,
        _block: &Block,
        _certificate: &CommitCertificate,
    ) -> Vec<String> {
        Vec::new()
    }
}

/// A protocol the simulator can run.
pub trait SimProtocol: Protocol + Debug + Sized {
    /// The genesis `algorithm` of the simulated chain.
    const ALGORITHM: ConsensusAlgorithm;

    /// Fewest validators a random run uses (PBFT: 4, so f >= 1 Byzantine; Raft: 3, so one may
    /// crash).
    const MIN_VALIDATORS: usize;

    /// The protocol's own invariant checkers.
    type Invariants: Invariants<Self>;

    /// The genesis `max_byzantine_nodes` for `validators` (PBFT: (n - 1) / 3; Raft: 0).
    fn genesis_byzantine(validators: usize) -> usize;

    /// Byzantine validators a random run may have (Raft tolerates crashes only: none).
    fn random_byzantine(validators: usize) -> usize;

    /// Node `setup.node`'s core, new or restored from what its consensus log replays to.
    fn build(setup: CoreSetup<'_>, restored: Option<Self::Persisted>) -> Result<Self, String>;

    /// The promises a message makes (a Raft response carries one commit vote per block).
    fn statements(message: &Self::Message) -> Vec<Statement>;

    /// The height below which the node's log is garbage collected (PBFT's stable checkpoint).
    fn stable_height(&self) -> u64;

    /// Epoch and stable height of a durable state (for a node that is down).
    fn durable_summary(state: &Self::Persisted) -> (u64, u64);

    /// Flips a bit of the message's signature.
    fn corrupt_signature(message: &mut Self::Message);

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
