//! AEGIS consensus cores.
//!
//! This crate owns the agreement protocols as pure state machines: [`Protocol::step`] takes
//! one [`Input`] (a peer's message, a timer that fired, transactions waiting in the mempool, a
//! batch to propose, a synced block) together with an [`Env`] carrying the current time and
//! fresh randomness, and returns the [`Effect`]s the driver must carry out (send, persist then
//! send, commit a block, set a timer, request sync, ask for a batch). Nothing in here touches a
//! clock, a socket, a file or a random source: a driver (`aegis-engine`'s `Driver`, which both
//! the node and the deterministic simulator run) owns all of that, so a seed replays a run
//! exactly (see `docs/adr/0003-pbft-core.md` and `docs/adr/0007-engine-driver-and-consensus-log.md`).
//!
//! The interface is protocol-neutral: PBFT's view and Raft's term are both an *epoch*, the
//! primary and the Raft leader are both the *leader*. [`CoreStatus`] is what `/status` shows.
//!
//! The ordering rule of the architecture lives in the effect type: every message that commits
//! its sender to something (a pre-prepare, prepare, commit, view change, new view, checkpoint)
//! leaves the core inside [`Effect::Persist`], together with the records of the state that
//! changed. The driver appends those records to the consensus log and makes them durable
//! before it sends those messages (raft-rs calls this `must_sync`). A node restarted from its
//! log therefore never signs two different messages for one slot.
//!
//! [`pbft`] is Castro and Liskov's Practical Byzantine Fault Tolerance (OSDI '99, with the
//! signature-based variant of TOCS 2002). [`raft`] is Ongaro and Ousterhout's Raft (USENIX
//! ATC 2014) with PreVote and CheckQuorum, for networks that need crash tolerance only.

use std::fmt::{Debug, Display};

use aegis_types::{Block, CommitCertificate, Hash, Transaction, ValidatorId};
use borsh::{BorshDeserialize, BorshSerialize};

pub mod pbft;
pub mod raft;
pub mod verifier;

/// What the driver tells the core about the world at the moment of a step. Time and
/// randomness are inputs, never read by the core itself (tigerbeetle's determinism rule).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Env {
    /// The node's clock, milliseconds since the Unix epoch (virtual time in the simulator).
    pub now_ms: u64,
    /// Fresh randomness drawn by the driver for this step (timer jitter, election jitter).
    pub entropy: u64,
}

/// One event fed to a protocol core.
#[allow(
    clippy::large_enum_variant,
    reason = "inputs are moved into `step` once and never stored in bulk"
)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input<M, T> {
    /// The driver has built or restored the core and starts driving it: arm timers, resend
    /// what the restored state owes its peers.
    Start,
    /// A message from an authenticated peer.
    Message { from: ValidatorId, message: M },
    /// A timer set by [`Effect::SetTimer`] fired.
    Timer(T),
    /// Transactions the mempool admitted (structure and signatures already checked), by id.
    /// The core keeps only what its request timers need; the transactions stay in the
    /// mempool until committed.
    TransactionsPending(Vec<Hash>),
    /// The answer to [`Effect::ProposalWanted`]: the oldest pending transactions the mempool
    /// has not handed out yet (possibly none), for the leader to order.
    Proposal(Vec<Transaction>),
    /// The driver has made every [`Effect::Persist`] up to and including this sequence number
    /// durable. PBFT sends its messages in the effect itself and ignores this; Raft counts
    /// the leader's own durable log towards its commit quorum with it.
    Persisted { up_to: u64 },
    /// A block fetched from a peer during sync, with the certificate that proves it committed.
    SyncedBlock {
        block: Block,
        certificate: CommitCertificate,
    },
}

/// A message on its way out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outgoing<M> {
    /// To one validator.
    To(ValidatorId, M),
    /// To every validator except the sender.
    All(M),
}

/// What the driver must do, in the order given.
#[allow(
    clippy::large_enum_variant,
    reason = "effects are moved to the driver once and never stored in bulk"
)]
#[must_use = "effects must be carried out by the driver, in order"]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect<M, R, T, J> {
    /// Send a message that commits the sender to nothing new (a retransmission, a forwarded
    /// certificate): no persistence needed first. The driver still keeps it behind any
    /// message that waits for a sync, so messages leave in the order the core produced them.
    Send(Outgoing<M>),
    /// Append `records` (what changed in the durable state, in order) to the consensus log.
    /// `messages` leave only once the records are durable; `must_sync` says the records must be
    /// synced before the driver carries out anything that depends on them even when no
    /// message waits. If the process dies before the sync, the messages must not be sent.
    /// `sequence` grows by one with each such effect and is what [`Input::Persisted`]
    /// acknowledges; `compact` says the log may be rewritten from a snapshot now (a stable
    /// checkpoint moved, so the state shrank).
    Persist {
        sequence: u64,
        records: Vec<R>,
        must_sync: bool,
        messages: Vec<Outgoing<M>>,
        compact: bool,
    },
    /// A block is decided: store it with its certificate (one storage transaction) before
    /// carrying out the effects that follow it. Heights arrive in order, without gaps.
    CommitBlock {
        block: Block,
        certificate: CommitCertificate,
    },
    /// Fire [`Input::Timer`] with `timer` once the node's clock reaches `deadline_ms`,
    /// replacing any earlier deadline of the same timer.
    SetTimer { timer: T, deadline_ms: u64 },
    /// Forget the timer.
    CancelTimer { timer: T },
    /// The node is behind: fetch committed blocks with certificates from `from_height` on and
    /// feed them back as [`Input::SyncedBlock`].
    RequestSync { from_height: u64 },
    /// The leader may order a batch of at most `max_txs` transactions now: answer with
    /// [`Input::Proposal`] (a later input, malachite's `GetValue`).
    ProposalWanted { max_txs: u32 },
    /// A message or a synced block was refused without changing state; log it and count it
    /// by [`Reject::label`]. `from` is the peer that sent it, `None` for a synced block (the
    /// driver knows which peer served it).
    Rejected {
        from: Option<ValidatorId>,
        reason: J,
    },
    /// The node suspects the leader and moves to `epoch` (PBFT: a view change starts; Raft:
    /// an election starts). For logs and metrics.
    LeaderSuspected { epoch: u64 },
    /// `leader` leads `epoch` (PBFT: a new view is installed; Raft: a leader is known).
    LeaderChanged { epoch: u64, leader: ValidatorId },
}

/// The role a node plays in its current epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// PBFT's primary, Raft's leader.
    Leader,
    /// PBFT's backup, Raft's follower.
    Follower,
    /// Between leaders: a PBFT view change, a Raft election.
    Electing,
}

impl Role {
    /// Stable name for `/status` and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Electing => "electing",
        }
    }
}

/// What a core says about itself, for `/status`, metrics and the simulator's report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoreStatus {
    /// Height of the last committed block (0 before the first).
    pub height: u64,
    /// Hash of that block (the genesis hash before the first).
    pub last_hash: Hash,
    /// PBFT's view, Raft's term.
    pub epoch: u64,
    /// The leader of `epoch`, when known.
    pub leader: Option<ValidatorId>,
    pub role: Role,
    /// Transaction ids the core tracks for its request timers.
    pub pending: usize,
}

/// Why a core refused an input. The label is a stable, low-cardinality name for metrics
/// (never parsed from `Debug` text); the `Display` text is for logs.
pub trait Reject: Clone + Debug + Display + PartialEq {
    /// Every label, one per variant, with whether a refusal of that kind can be evidence of
    /// a Byzantine peer: the node exports each as a metric series at zero from the start,
    /// before any refusal (`aegis_consensus_rejected_total`, and
    /// `aegis_consensus_byzantine_events_total` for the ones that can be evidence).
    const LABELS: &'static [(&'static str, bool)];
    /// `snake_case`, one per variant, stable across releases.
    fn label(&self) -> &'static str;
    /// Whether the refusal is evidence of a Byzantine peer (logged with the word
    /// "byzantine"), as opposed to staleness or loss.
    fn is_byzantine_evidence(&self) -> bool;
}

/// The durable state of a core, rebuilt after a restart from a snapshot plus the records the
/// core handed out since (raft-rs: the hard state and the unstable entries).
pub trait DurableState: Clone + Debug + PartialEq + BorshSerialize + BorshDeserialize {
    /// One change to the state, as [`Effect::Persist`] carries it.
    type Record: Clone + Debug + PartialEq + BorshSerialize + BorshDeserialize;

    /// Applies the records of one [`Effect::Persist`] with its sequence number. Replaying
    /// every record handed out since a snapshot, in order, onto that snapshot gives exactly
    /// the core's state at the last of them. Records that do not fit (a damaged or foreign
    /// log) are an error, never a panic.
    fn apply(&mut self, sequence: u64, records: &[Self::Record]) -> Result<(), ReplayError>;
}

/// A consensus log that does not replay.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("consensus log does not replay at sequence {sequence}: {detail}")]
pub struct ReplayError {
    pub sequence: u64,
    pub detail: String,
}

/// A consensus protocol as the engine sees it: a deterministic state machine.
///
/// The engine never knows whether PBFT or Raft runs: it feeds [`Input`]s, carries out
/// [`Effect`]s in order, appends [`DurableState::Record`]s to the consensus log under
/// `data/consensus/`, and on restart the node rebuilds the core from the replayed
/// [`Protocol::Persisted`] with the protocol's own constructor.
pub trait Protocol {
    /// The wire message, encoded with borsh in P2P frames.
    type Message: Clone + Debug + PartialEq + BorshSerialize + BorshDeserialize;
    /// Everything the core must find again after a crash to keep its promises.
    type Persisted: DurableState;
    /// Names of the core's timers.
    type Timer: Clone + Copy + Debug + PartialEq + Eq + PartialOrd + Ord;
    /// Why a message was refused.
    type Reject: Reject;

    /// Whether the driver tells the core, with [`Input::Persisted`], which persists became
    /// durable after each sync of the consensus log. Raft's leader counts its own log towards
    /// the commit quorum with it; PBFT sends everything inside [`Effect::Persist`] and does
    /// not need the extra step.
    const ACKNOWLEDGE_PERSISTED: bool = false;

    /// Applies one input and returns the effects to carry out, in order.
    #[must_use = "effects must be carried out by the driver, in order"]
    fn step(&mut self, env: Env, input: InputOf<Self>) -> Vec<EffectOf<Self>>;

    /// The whole durable state as it is now: what a compacted log starts from.
    fn snapshot(&self) -> Self::Persisted;

    /// Height, epoch, leader and role.
    fn status(&self) -> CoreStatus;

    /// This node's validator id.
    fn id(&self) -> ValidatorId;
}

/// A record of a protocol's durable state.
pub type RecordOf<P> = <<P as Protocol>::Persisted as DurableState>::Record;

/// The effect type of a protocol.
pub type EffectOf<P> =
    Effect<<P as Protocol>::Message, RecordOf<P>, <P as Protocol>::Timer, <P as Protocol>::Reject>;

/// The input type of a protocol.
pub type InputOf<P> = Input<<P as Protocol>::Message, <P as Protocol>::Timer>;
