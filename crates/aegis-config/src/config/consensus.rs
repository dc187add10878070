//! `consensus:`: local timers and the fault bounds this node expects the genesis to meet.

use std::ops::RangeInclusive;
use std::time::Duration;

use aegis_types::ConsensusAlgorithm;
use aegis_types::genesis::MAX_BLOCK_BYTES;
use aegis_types::validator::MAX_VALIDATORS;

use crate::decode::Millis;
use crate::file::ConsensusFile;

use super::checker::{Checker, show_duration, up_to};

/// Largest f accepted: a set of [`MAX_VALIDATORS`] validators tolerates this many faults.
pub const MAX_BYZANTINE_NODES: u32 = ((MAX_VALIDATORS - 1) / 3) as u32;

/// `consensus.timeout`: a round that has not finished in ten minutes needs a view change,
/// not a longer wait; meanwhile the network commits nothing.
pub const CONSENSUS_TIMEOUT_RANGE: RangeInclusive<Duration> = up_to(Duration::from_secs(600));
/// `consensus.heartbeat_interval`: a leader silent for a minute is not a live leader.
pub const CONSENSUS_HEARTBEAT_INTERVAL_RANGE: RangeInclusive<Duration> =
    up_to(Duration::from_secs(60));
/// `consensus.election_timeout`: the network is leaderless this long after a leader fails.
pub const CONSENSUS_ELECTION_TIMEOUT_RANGE: RangeInclusive<Duration> =
    up_to(Duration::from_secs(600));
/// `consensus.max_byzantine_nodes`: f, up to what the largest validator set tolerates.
pub const CONSENSUS_MAX_BYZANTINE_NODES_RANGE: RangeInclusive<u64> = 0..=MAX_BYZANTINE_NODES as u64;
/// `consensus.min_validators`: at least one, at most the largest validator set.
pub const CONSENSUS_MIN_VALIDATORS_RANGE: RangeInclusive<u64> = 1..=MAX_VALIDATORS as u64;
/// `consensus.message_timeout`: as `timeout`, a wait of more than ten minutes stalls rounds.
pub const CONSENSUS_MESSAGE_TIMEOUT_RANGE: RangeInclusive<Duration> =
    up_to(Duration::from_secs(600));
/// `consensus.retry_attempts`: a message that a hundred retries did not deliver needs a view
/// change or a resync, not more retries.
pub const CONSENSUS_RETRY_ATTEMPTS_RANGE: RangeInclusive<u64> = 0..=100;
/// `consensus.block_interval`: 0 proposes as soon as the pipeline has room; a leader that
/// waits more than ten seconds to fill a block only adds latency.
pub const CONSENSUS_BLOCK_INTERVAL_MAX: Duration = Duration::from_secs(10);
/// `consensus.max_block_bytes`: from 128 KiB (a block holds any single transaction) to the
/// protocol's bound, [`MAX_BLOCK_BYTES`], which every validator enforces.
pub const CONSENSUS_MAX_BLOCK_BYTES_RANGE: RangeInclusive<u64> = 128 << 10..=MAX_BLOCK_BYTES as u64;
/// Room a P2P frame needs around a block's transactions in a pre-prepare (header fields,
/// signatures, encoding prefixes).
pub const BLOCK_FRAME_OVERHEAD_BYTES: u64 = 64 << 10;

// The largest transaction fits in the smallest block.
const _: () = assert!(
    aegis_types::tx::MAX_TX_PAYLOAD_BYTES as u64 + crate::file::MEMPOOL_TX_ENVELOPE_BYTES
        <= *CONSENSUS_MAX_BLOCK_BYTES_RANGE.start()
);

// The election timeout must be longer than the heartbeat interval; with the largest heartbeat
// allowed there must still be election timeouts that satisfy the rule.
const _: () = assert!(
    CONSENSUS_HEARTBEAT_INTERVAL_RANGE.end().as_millis()
        < CONSENSUS_ELECTION_TIMEOUT_RANGE.end().as_millis()
);
// The largest f accepted must be tolerable by the largest validator set: n >= 3f + 1, that
// is 3f < n.
const _: () = assert!(3 * (MAX_BYZANTINE_NODES as usize) < MAX_VALIDATORS);

/// `consensus:` — local timers and the fault bounds this node expects the genesis to meet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsensusConfig {
    pub algorithm: ConsensusAlgorithm,
    pub timeout: Duration,
    pub heartbeat_interval: Duration,
    /// Always longer than `heartbeat_interval`.
    pub election_timeout: Duration,
    /// f: the validator set must have n >= 3f + 1 (checked by [`crate::check_against_genesis`]).
    pub max_byzantine_nodes: u32,
    pub min_validators: u32,
    pub message_timeout: Duration,
    pub retry_attempts: u32,
    /// Least time between two blocks that are not full (0: as soon as there is room).
    pub block_interval: Duration,
    /// Most bytes of transactions a block this node proposes carries.
    pub max_block_bytes: usize,
}

pub(super) fn build_consensus(ck: &mut Checker<'_, '_>, file: ConsensusFile) -> ConsensusConfig {
    let ConsensusFile {
        algorithm,
        timeout,
        heartbeat_interval,
        election_timeout,
        max_byzantine_nodes,
        min_validators,
        message_timeout,
        retry_attempts,
        block_interval,
        max_block_bytes,
    } = file;
    let Millis(block_interval) = block_interval;
    if block_interval > CONSENSUS_BLOCK_INTERVAL_MAX {
        ck.error(
            "consensus.block_interval",
            format!(
                "{} is out of range (0-{})",
                show_duration(block_interval),
                show_duration(CONSENSUS_BLOCK_INTERVAL_MAX)
            ),
        );
    }
    let max_block_bytes = ck.size(
        "consensus.max_block_bytes",
        max_block_bytes,
        CONSENSUS_MAX_BLOCK_BYTES_RANGE,
    );
    let algorithm = ck.choice(
        "consensus.algorithm",
        &algorithm,
        &[
            ("pbft", ConsensusAlgorithm::Pbft),
            ("raft", ConsensusAlgorithm::Raft),
        ],
        ConsensusAlgorithm::Pbft,
    );
    let heartbeat_interval = ck.seconds(
        "consensus.heartbeat_interval",
        heartbeat_interval,
        CONSENSUS_HEARTBEAT_INTERVAL_RANGE,
    );
    let election_timeout = ck.seconds(
        "consensus.election_timeout",
        election_timeout,
        CONSENSUS_ELECTION_TIMEOUT_RANGE,
    );
    if election_timeout <= heartbeat_interval && !election_timeout.is_zero() {
        ck.error(
            "consensus.election_timeout",
            format!(
                "{} must be longer than consensus.heartbeat_interval ({})",
                show_duration(election_timeout),
                show_duration(heartbeat_interval)
            ),
        );
    }
    ConsensusConfig {
        algorithm,
        timeout: ck.seconds("consensus.timeout", timeout, CONSENSUS_TIMEOUT_RANGE),
        heartbeat_interval,
        election_timeout,
        max_byzantine_nodes: ck.int(
            "consensus.max_byzantine_nodes",
            max_byzantine_nodes,
            CONSENSUS_MAX_BYZANTINE_NODES_RANGE,
        ),
        min_validators: ck.int(
            "consensus.min_validators",
            min_validators,
            CONSENSUS_MIN_VALIDATORS_RANGE,
        ),
        message_timeout: ck.seconds(
            "consensus.message_timeout",
            message_timeout,
            CONSENSUS_MESSAGE_TIMEOUT_RANGE,
        ),
        retry_attempts: ck.int(
            "consensus.retry_attempts",
            retry_attempts,
            CONSENSUS_RETRY_ATTEMPTS_RANGE,
        ),
        block_interval,
        max_block_bytes,
    }
}
