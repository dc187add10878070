//! AEGIS engine: the one driver of a consensus core.
//!
//! [`Driver`] is the only code that feeds inputs to a core (`aegis_consensus::Protocol`) and
//! carries out its effects, in the order they demand: persist then send, store a decided block
//! before what follows it, timers, sync requests, batches from the mempool. It is synchronous
//! and deterministic over small I/O traits ([`io`]): the node plugs in TLS P2P, the consensus
//! log file ([`FileLog`]) and the ledger through the group committer; the simulator
//! (`aegis-sim`) plugs in simulated I/O ([`memory`]). So every simulated seed runs the code
//! that runs in production (tigerbeetle's rule: the simulator runs the real replica).
//!
//! The consensus log keeps the core's durable state as a snapshot plus the records of what
//! changed since ([`log_format`]); see `docs/adr/0007-engine-driver-and-consensus-log.md`.

pub mod driver;
pub mod file_log;
pub mod io;
pub mod log_format;
pub mod memory;
pub mod timers;

pub use driver::{
    DEFAULT_MAX_BATCH_BYTES, Driver, DriverConfig, DriverError, DriverStats, MAX_HELD_MESSAGES,
    MAX_PROPOSALS_PER_STEP, MAX_UNSYNCED_LOG_BYTES, MIN_COMPACTION_LOG_BYTES,
};
pub use file_log::{FileLog, LogError, LogStats, OpenReport};
pub use io::{Clock, ConsensusLog, Io, IoError, Ledger, Observer, Parts, Quiet, Transport};
pub use timers::TimerTable;
