//! The small I/O traits the driver runs over. The node implements them with TLS P2P, the
//! consensus log file under `data/consensus/`, SQLite or PostgreSQL through the group
//! committer, and the wall clock; the simulator with a simulated network, in-memory logs that
//! tear on a crash, and virtual time ([`crate::memory`] has the shared in-memory ones).
//!
//! All of them are synchronous: the driver runs on its own thread (or inside the simulator's
//! loop) and blocks where the I/O does.

use aegis_consensus::{DurableState, Outgoing, Protocol};
use aegis_types::{Block, CommitCertificate, ValidatorId};

/// What an I/O implementation reports when it fails: the driver stops and says which
/// operation failed, the node logs it and exits.
pub type IoError = Box<dyn std::error::Error + Send + Sync>;

/// Messages to peers and requests for blocks.
pub trait Transport<M> {
    /// Queues a message for one peer or for all; delivery is best effort (the core
    /// retransmits what matters).
    fn send(&mut self, message: Outgoing<M>);

    /// Asks peers for committed blocks with certificates from `from_height` on; they come
    /// back through [`crate::Driver::synced_block`].
    fn request_sync(&mut self, from_height: u64);
}

/// The consensus log under `data/consensus/`: a snapshot followed by the records the core
/// handed out since, in order.
pub trait ConsensusLog<S: DurableState> {
    /// Adds the records of one [`aegis_consensus::Effect::Persist`]. They are durable only
    /// after the next [`ConsensusLog::sync`]; a crash before it may lose them (all of them
    /// from the first lost one on: a log always replays to a prefix of what was appended).
    fn append(&mut self, sequence: u64, records: Vec<S::Record>) -> Result<(), IoError>;

    /// Makes everything appended durable (one disk sync for all of it).
    fn sync(&mut self) -> Result<(), IoError>;

    /// Replaces the whole log by `snapshot`, durably and atomically (a crash leaves the old log
    /// or the new one). Called after a sync, so nothing appended is lost by it.
    fn compact(&mut self, snapshot: &S) -> Result<(), IoError>;

    /// The state the log replays to, `None` when the log is empty (a new node).
    fn load(&mut self) -> Result<Option<S>, IoError>;

    /// Bytes the log holds on disk (or would), snapshot included.
    fn size_bytes(&self) -> u64;

    /// Bytes appended and not synced yet.
    fn unsynced_bytes(&self) -> u64;
}

/// The ledger: committed blocks with their certificates.
pub trait Ledger {
    /// Queues the next block for storage; heights arrive in order without gaps.
    fn append(&mut self, block: Block, certificate: CommitCertificate) -> Result<(), IoError>;

    /// Makes every appended block durable (the group committer's tickets resolve).
    fn flush(&mut self) -> Result<(), IoError>;

    /// Height of the last stored block (0 when there is none).
    fn height(&self) -> Result<u64, IoError>;

    /// A stored block with its certificate.
    fn block(&self, height: u64) -> Result<Option<(Block, CommitCertificate)>, IoError>;
}

/// Time and randomness: inputs of the core, never read by it (tigerbeetle's rule).
pub trait Clock {
    /// Milliseconds since the Unix epoch (virtual in the simulator).
    fn now_ms(&mut self) -> u64;

    /// Fresh randomness for one step (seeded in the simulator).
    fn entropy(&mut self) -> u64;
}

/// What the core reports for logs and metrics; every method has a default that does nothing.
pub trait Observer<P: Protocol> {
    /// A message (or, with `from` `None`, a synced block) was refused without changing state.
    fn rejected(&mut self, from: Option<ValidatorId>, reason: &P::Reject) {
        let _ = (from, reason);
    }

    /// The node suspects the leader and moved to `epoch`.
    fn leader_suspected(&mut self, epoch: u64) {
        let _ = epoch;
    }

    /// `leader` leads `epoch`.
    fn leader_changed(&mut self, epoch: u64, leader: ValidatorId) {
        let _ = (epoch, leader);
    }

    /// A block was decided and handed to the ledger.
    fn committed(&mut self, block: &Block, certificate: &CommitCertificate) {
        let _ = (block, certificate);
    }
}

/// An observer that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct Quiet;

impl<P: Protocol> Observer<P> for Quiet {}

/// The I/O a driver runs over, as one type: `Driver<P, I>` holds one of each.
pub trait Io<P: Protocol> {
    type Transport: Transport<P::Message>;
    type Log: ConsensusLog<P::Persisted>;
    type Ledger: Ledger;
    type Clock: Clock;
    type Observer: Observer<P>;
}

/// The I/O parts a driver is built from and handed back by [`crate::Driver::into_parts`].
pub struct Parts<P: Protocol, I: Io<P>> {
    pub transport: I::Transport,
    pub log: I::Log,
    pub ledger: I::Ledger,
    pub clock: I::Clock,
    pub observer: I::Observer,
}

impl<P: Protocol, I: Io<P>> std::fmt::Debug for Parts<P, I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parts").finish_non_exhaustive()
    }
}
