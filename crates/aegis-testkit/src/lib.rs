//! AEGIS test support, for tests only: every crate takes it as a dev-dependency, never as a
//! normal one. It owns what tests share, so no test file writes its own:
//!
//! - [`wait`]: polling waits that fail at a deadline, naming what they waited for, instead
//!   of sleeping for a guessed time; `wait_async` (feature `tokio`) for async tests;
//! - [`net`]: loopback addresses per test and free ports;
//! - [`partition`]: network partitions between real processes, cut and healed with
//!   nftables rules of the test's own, removed when the test ends;
//! - [`purity`]: the check that a pure crate has no I/O, clock or randomness;
//! - feature `chain`: validator keys, genesis documents (`GenesisBuilder`) and signed
//!   transactions;
//! - feature `cluster`: a PBFT cluster run by the engine's driver over in-memory or
//!   file-backed I/O (`cluster`);
//! - feature `p2p`: `aegis-p2p` nodes on loopback (`p2p`) and their TLS certificates
//!   (`tls`).
//!
//! Without features the crate depends on nothing; each feature brings only its own
//! dependencies, so a test crate compiles nothing it does not use.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test support fails the test loudly, with the reason"
)]

#[cfg(feature = "chain")]
mod chain;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod net;
#[cfg(feature = "p2p")]
pub mod p2p;
pub mod partition;
pub mod purity;
#[cfg(feature = "p2p")]
pub mod tls;
pub mod wait;
#[cfg(feature = "tokio")]
pub mod wait_async;

#[cfg(feature = "chain")]
pub use chain::{CHAIN, GenesisBuilder, client_key, genesis, signed_tx, tx, validator_key};
