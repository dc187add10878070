//! AEGIS mempool.
//!
//! This crate owns the pool of client transactions that are valid but not yet committed: the
//! admission rules a submitted transaction must pass (structure, size, replay, duplicate,
//! capacity, signature), the bounds on the pool (transactions, bytes, one transaction's bytes,
//! remembered committed ids), the first-in first-out batches a proposer orders, and the
//! "full, retry after" answer the API turns into a 503. `docs/mempool.md` states the rules.
//!
//! It is pure: no async runtime, no clock, no randomness, no I/O, and only ordered
//! collections, so the simulator replays a seed exactly. Time comes in as `now_ms` arguments;
//! signatures are checked with `aegis-crypto`'s batch verifier, whose verdicts are
//! deterministic (ZIP-215 makes batch and single verification agree).
//!
//! The callers:
//! - the API submits one transaction or an array with [`Mempool::admit`] and maps each
//!   [`Admission`] to an HTTP status;
//! - the proposer takes [`Mempool::next_batch_excluding`] (oldest first, skipping the ids of
//!   its blocks still in flight); transactions stay pending until committed;
//! - the engine reports every committed block with [`Mempool::remove_committed`];
//! - a node that receives a proposal skips re-verifying the signatures of transactions for
//!   which [`Mempool::contains`] holds: they were verified when admitted.

mod config;
mod drain;
mod pool;
mod recent;
mod size;

pub use config::{
    ConfigError, DEFAULT_MAX_BYTES, DEFAULT_MAX_TRANSACTION_BYTES, DEFAULT_MAX_TRANSACTIONS,
    DEFAULT_RECENT_COMMITTED, MAX_BYTES_LIMIT, MAX_RECENT_COMMITTED_LIMIT,
    MAX_TRANSACTION_BYTES_LIMIT, MAX_TRANSACTIONS_LIMIT, MempoolConfig, TX_ENVELOPE_BYTES,
};
pub use drain::{
    DRAIN_HORIZON_MS, DRAIN_SAMPLES_MAX, RETRY_AFTER_DEFAULT_MS, RETRY_AFTER_MAX_MS,
    RETRY_AFTER_MIN_MS,
};
pub use pool::{Admission, Mempool, Refusal};
pub use size::{TX_FIXED_ENCODED_BYTES, encoded_len};
