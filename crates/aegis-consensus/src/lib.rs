//! AEGIS consensus cores.
//!
//! This crate owns the agreement protocols as pure state machines: [`Protocol::step`] takes
//! one [`Input`] (a peer's message, a timer that fired, client transactions, a synced block)
//! together with an [`Env`] carrying the current time and fresh randomness, and returns the
//! [`Effect`]s the driver must carry out (send, persist-then-send, commit a block, set a timer,
//! request sync). Nothing in here touches a clock, a socket, a file or a random source: a
//! driver (the engine, or the deterministic simulator in `aegis-sim`) owns all of that, so a
//! seed replays a run exactly (see `docs/adr/0003-pbft-core.md`).
//!
//! The ordering rule of the architecture lives in the effect type: every message that commits
//! its sender to something (a pre-prepare, prepare, commit, view change, new view, checkpoint)
//! leaves the core inside [`Effect::PersistThenSend`], together with the state it commits to.
//! The driver must make that state durable before it sends those messages (raft-rs calls this
//! `must_sync`). A node restarted from its last persisted state therefore never signs two
//! different messages for one slot.
//!
//! [`pbft`] is Castro and Liskov's Practical Byzantine Fault Tolerance (OSDI '99, with the
//! signature-based variant of TOCS 2002). Raft comes next behind the same trait.

use std::fmt::Debug;

use aegis_types::{Block, CommitCertificate, Hash, Transaction, ValidatorId};
use borsh::{BorshDeserialize, BorshSerialize};

pub mod pbft;

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
    /// Client transactions admitted by the mempool, to be ordered ("propose batch").
    ClientTransactions(Vec<Transaction>),
    /// The driver has made every [`Effect::PersistThenSend`] up to and including this
    /// sequence number durable. PBFT sends its messages in the effect itself and ignores this;
    /// Raft counts the leader's own durable log towards its commit quorum with it.
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect<M, S, T, R> {
    /// Send a message that commits the sender to nothing new (a retransmission, a forwarded
    /// certificate): no persistence needed first.
    Send(Outgoing<M>),
    /// Make `state` durable (fsync), then send `messages`. If the process dies before the
    /// state is durable the messages must not be sent. `sequence` grows with each such effect
    /// and is what [`Input::Persisted`] acknowledges.
    PersistThenSend {
        sequence: u64,
        state: S,
        messages: Vec<Outgoing<M>>,
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
    /// A message was refused without changing state; log it and count it by reason.
    Rejected { from: ValidatorId, reason: R },
    /// A view change started (the node suspects the primary); for logs and metrics.
    ViewChangeStarted { view: u64 },
    /// A new view is installed with this primary; for logs and metrics.
    ViewChanged { view: u64, primary: ValidatorId },
}

/// A consensus protocol as the engine sees it: a deterministic state machine.
///
/// The engine never knows whether PBFT or Raft runs: it feeds [`Input`]s, executes
/// [`Effect`]s in order, stores [`Protocol::Persisted`] under `data/consensus/`, and on restart
/// rebuilds the core from the last stored value with the protocol's own constructor.
pub trait Protocol {
    /// The wire message, encoded with borsh in P2P frames.
    type Message: Clone + Debug + PartialEq + BorshSerialize + BorshDeserialize;
    /// Everything the core must find again after a crash to keep its promises.
    type Persisted: Clone + Debug + PartialEq + BorshSerialize + BorshDeserialize;
    /// Names of the core's timers.
    type Timer: Clone + Copy + Debug + PartialEq + Eq + PartialOrd + Ord;
    /// Why a message was refused.
    type Reject: Clone + Debug + PartialEq;

    /// Applies one input and returns the effects to carry out, in order.
    fn step(&mut self, env: Env, input: Input<Self::Message, Self::Timer>) -> Vec<EffectOf<Self>>;

    /// The state that [`Effect::PersistThenSend`] last asked to persist, as it is now.
    fn persisted(&self) -> Self::Persisted;

    /// Height and hash of the last block this node committed (0 and the genesis hash at first).
    fn last_committed(&self) -> (u64, Hash);

    /// This node's validator id.
    fn id(&self) -> ValidatorId;
}

/// The effect type of a protocol.
pub type EffectOf<P> = Effect<
    <P as Protocol>::Message,
    <P as Protocol>::Persisted,
    <P as Protocol>::Timer,
    <P as Protocol>::Reject,
>;

/// The input type of a protocol.
pub type InputOf<P> = Input<<P as Protocol>::Message, <P as Protocol>::Timer>;
