//! What the simulator needs from a protocol beyond `aegis_consensus::Protocol`: how to build
//! a core from the scenario's genesis, what a message promises (for the equivocation checker),
//! and how its Byzantine nodes misbehave. PBFT's is in [`crate::pbft`]; Raft adds its own.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::sync::Arc;

use aegis_consensus::{CoreStatus, Protocol};
use aegis_crypto::SecretKey;
use aegis_types::{Genesis, Hash, ValidatorSet};
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

/// A protocol the simulator can run.
pub trait SimProtocol: Protocol + Debug + Sized {
    /// Node `setup.node`'s core, new or restored from what its consensus log replays to.
    fn build(setup: CoreSetup<'_>, restored: Option<Self::Persisted>) -> Result<Self, String>;

    /// The promise a message makes, if it makes one.
    fn statement(message: &Self::Message) -> Option<Statement>;

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
