//! `consensus:`: local timers and the fault bounds this node expects the genesis to meet.

use std::time::Duration;

use aegis_types::ConsensusAlgorithm;
use aegis_types::validator::MAX_VALIDATORS;

use crate::file::ConsensusFile;

use super::checker::{Checker, show_duration};

/// Largest f accepted: a set of [`MAX_VALIDATORS`] validators tolerates this many faults.
pub const MAX_BYZANTINE_NODES: u32 = ((MAX_VALIDATORS - 1) / 3) as u32;

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
    } = file;
    let algorithm = ck.choice(
        "consensus.algorithm",
        &algorithm,
        &[
            ("pbft", ConsensusAlgorithm::Pbft),
            ("raft", ConsensusAlgorithm::Raft),
        ],
        ConsensusAlgorithm::Pbft,
    );
    let heartbeat_interval = ck.seconds("consensus.heartbeat_interval", heartbeat_interval);
    let election_timeout = ck.seconds("consensus.election_timeout", election_timeout);
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
        timeout: ck.seconds("consensus.timeout", timeout),
        heartbeat_interval,
        election_timeout,
        max_byzantine_nodes: ck.int(
            "consensus.max_byzantine_nodes",
            max_byzantine_nodes,
            0,
            u64::from(MAX_BYZANTINE_NODES),
        ),
        min_validators: ck.int(
            "consensus.min_validators",
            min_validators,
            1,
            MAX_VALIDATORS as u64,
        ),
        message_timeout: ck.seconds("consensus.message_timeout", message_timeout),
        retry_attempts: ck.int(
            "consensus.retry_attempts",
            retry_attempts,
            0,
            u64::from(u32::MAX),
        ),
    }
}
