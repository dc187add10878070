//! AEGIS deterministic cluster simulator.
//!
//! Runs N nodes, each `aegis-engine`'s real `Driver` over the real consensus core, with
//! simulated I/O (`aegis_engine::memory`: a consensus log and a ledger that lose what was not
//! synced on a crash), one virtual clock and one seeded RNG (ChaCha8): the same seed replays
//! the same run, event for event. All state that decides an outcome lives in ordered maps,
//! never in hash maps. The simulator is generic over the protocol ([`SimProtocol`]); PBFT's
//! adapter and Byzantine behaviours are in [`pbft`], Raft's adapter and invariants (election
//! safety, log matching, leader completeness) in [`raft`]. Around the drivers it simulates
//! the network and the faults (tigerbeetle's `src/testing/` twins):
//!
//! - Network faults: drops, delays, duplicates, reordering, partitions that heal.
//! - Node faults: crash and restart from the last persisted state (losing the rest), a
//!   crash in the middle of a persist ("torn" step), clock skew.
//! - Byzantine nodes (PBFT, at most f in random runs): equivocating primary, conflicting
//!   votes, invalid signatures, replays, silence, floods, and colluders for the f + 1 test.
//!   Raft tolerates crashes only: its random runs have every fault but these.
//! - Checkers: agreement, no gaps and hash links, validity (only submitted transactions,
//!   each at most once), commit certificates that verify offline, honest nodes never
//!   signing two statements for one slot, a consensus log that replays to exactly the core's
//!   state, and liveness (after healing, probe transactions commit on every honest node
//!   within a bound of virtual time).
//!
//! [`run_cli`] is what `aegis simulate` runs; a failure prints its seed and the command that
//! replays it. Arguments it cannot honour are refused with a [`CliError`] before any seed
//! runs.

mod checker;
mod cluster;
mod outcome;
pub mod pbft;
mod protocol;
pub mod raft;
mod scenario;
mod verifier;

use std::fmt;
use std::io::Write;
use std::time::Instant;

pub use aegis_consensus::Reject;
pub use aegis_types::ConsensusAlgorithm;
pub use cluster::Sim;
pub use outcome::Outcome;
pub use protocol::{
    Adversary, CoreSetup, Invariants, NoInvariants, REPLAY_MEMORY, SimProtocol, Statement,
    Transmission,
};
pub use scenario::{Behavior, Crash, NetworkFaults, Partition, Scenario, TestBuilder};
pub use verifier::SharedVerifier;

/// The simulator running PBFT, the protocol `aegis simulate` checks by default.
pub type Simulation = Sim<aegis_consensus::pbft::Pbft>;

/// The simulator running Raft (`aegis simulate --algorithm raft`).
pub type RaftSimulation = Sim<aegis_consensus::raft::Raft>;

/// Fewest validators the simulator runs PBFT on: n >= 3f + 1 with f >= 1, so random runs
/// always have a Byzantine node.
pub const MIN_VALIDATORS: usize = <aegis_consensus::pbft::Pbft as SimProtocol>::MIN_VALIDATORS;

/// Fewest validators the simulator runs Raft on: n >= 2f + 1 with f >= 1, so one may crash.
pub const MIN_RAFT_VALIDATORS: usize = <aegis_consensus::raft::Raft as SimProtocol>::MIN_VALIDATORS;

/// Most validators the simulator runs: the largest validator set a genesis accepts.
pub const MAX_VALIDATORS: usize = aegis_types::validator::MAX_VALIDATORS;

/// Why [`run_cli`] stopped: arguments it refuses (before running any seed), or output that
/// could not be written.
#[derive(Debug)]
pub enum CliError {
    /// The arguments cannot be honoured; the text says why and what is supported.
    InvalidArgs(String),
    Io(std::io::Error),
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::InvalidArgs(why) => write!(f, "simulate: {why}"),
            CliError::Io(error) => write!(f, "simulate: cannot write the report: {error}"),
        }
    }
}

impl std::error::Error for CliError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CliError::InvalidArgs(_) => None,
            CliError::Io(error) => Some(error),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(error: std::io::Error) -> CliError {
        CliError::Io(error)
    }
}

/// Checks `aegis simulate`'s arguments for PBFT: what [`run_cli`] refuses, and why.
pub fn check_cli_args(validators: usize, seeds: u64, start_seed: u64) -> Result<(), CliError> {
    check_cli_args_for(ConsensusAlgorithm::Pbft, validators, seeds, start_seed)
}

/// Fewest validators the simulator runs `algorithm` on, and the fault it must tolerate.
fn minimum(algorithm: ConsensusAlgorithm) -> (usize, &'static str) {
    match algorithm {
        ConsensusAlgorithm::Pbft => (
            MIN_VALIDATORS,
            "too few to tolerate a Byzantine fault (n >= 3f + 1 with f >= 1)",
        ),
        ConsensusAlgorithm::Raft => (
            MIN_RAFT_VALIDATORS,
            "too few to tolerate a crash (n >= 2f + 1 with f >= 1)",
        ),
    }
}

/// Checks `aegis simulate --algorithm A`'s arguments: what [`run_cli_for`] refuses, and why.
pub fn check_cli_args_for(
    algorithm: ConsensusAlgorithm,
    validators: usize,
    seeds: u64,
    start_seed: u64,
) -> Result<(), CliError> {
    let (min, why_min) = minimum(algorithm);
    let name = algorithm.as_str();
    if validators < min {
        return Err(CliError::InvalidArgs(format!(
            "--validators {validators} is {why_min}: the simulator runs {name} on {min} to \
             {MAX_VALIDATORS} validators"
        )));
    }
    if validators > MAX_VALIDATORS {
        return Err(CliError::InvalidArgs(format!(
            "--validators {validators} exceeds the supported maximum of {MAX_VALIDATORS}: \
             the simulator runs {name} on {min} to {MAX_VALIDATORS} validators"
        )));
    }
    if seeds == 0 {
        return Err(CliError::InvalidArgs(
            "--seeds 0 runs nothing; give at least 1".into(),
        ));
    }
    // Seeds start_seed ..= start_seed + seeds - 1 must all be u64 values.
    if start_seed.checked_add(seeds - 1).is_none() {
        let most = u64::MAX - start_seed + 1;
        return Err(CliError::InvalidArgs(format!(
            "--start-seed {start_seed} with --seeds {seeds} goes past the last seed, {} \
             (u64::MAX): at most {most} seed(s) from there",
            u64::MAX
        )));
    }
    Ok(())
}

/// Runs one random PBFT scenario (every kind of fault, at most f Byzantine nodes) for `seed`.
pub fn run_seed(validators: usize, seed: u64) -> Outcome {
    run_seed_with::<aegis_consensus::pbft::Pbft>(validators, seed)
}

/// Runs one random scenario of protocol `P` for `seed`: every kind of fault, with as many
/// Byzantine nodes as `P` tolerates (none for Raft).
pub fn run_seed_with<P: SimProtocol>(validators: usize, seed: u64) -> Outcome {
    let byzantine = P::random_byzantine(validators);
    Sim::<P>::new(Scenario::random_with(validators, seed, byzantine)).run()
}

/// Runs `seeds` random PBFT scenarios from `start_seed` on (see [`run_cli_for`]).
pub fn run_cli(
    validators: usize,
    seeds: u64,
    start_seed: u64,
    out: &mut dyn Write,
) -> Result<u64, CliError> {
    run_cli_for(ConsensusAlgorithm::Pbft, validators, seeds, start_seed, out)
}

/// Runs `seeds` random scenarios of `algorithm` from `start_seed` on, printing each failure
/// with the command that replays it, and ends with the line `seeds: K, violations: V`.
/// Returns V. Refuses arguments it cannot honour (see [`check_cli_args_for`]) without running
/// or printing anything.
pub fn run_cli_for(
    algorithm: ConsensusAlgorithm,
    validators: usize,
    seeds: u64,
    start_seed: u64,
    out: &mut dyn Write,
) -> Result<u64, CliError> {
    check_cli_args_for(algorithm, validators, seeds, start_seed)?;
    let run: fn(usize, u64) -> Outcome = match algorithm {
        ConsensusAlgorithm::Pbft => run_seed_with::<aegis_consensus::pbft::Pbft>,
        ConsensusAlgorithm::Raft => run_seed_with::<aegis_consensus::raft::Raft>,
    };
    let (tolerated, replay_algorithm) = match algorithm {
        ConsensusAlgorithm::Pbft => (format!("f: {}", (validators - 1) / 3), ""),
        ConsensusAlgorithm::Raft => (
            format!("f: {} crashed", (validators - 1) / 2),
            " --algorithm raft",
        ),
    };
    let started = Instant::now();
    let mut violations = 0u64;
    let mut blocks = 0u64;
    // `check_cli_args_for` made sure the last seed fits: every seed counted below is run.
    for seed in (0..seeds).map(|i| start_seed + i) {
        let outcome = run(validators, seed);
        blocks += outcome.heights.iter().copied().max().unwrap_or(0);
        if !outcome.violations.is_empty() {
            violations += outcome.violations.len() as u64;
            writeln!(
                out,
                "seed {seed}: {} violation(s)",
                outcome.violations.len()
            )?;
            for violation in &outcome.violations {
                writeln!(out, "  {violation}")?;
            }
            writeln!(
                out,
                "  replay: aegis simulate{replay_algorithm} --validators {validators} --seeds 1 --start-seed {seed}"
            )?;
        }
    }
    writeln!(
        out,
        "algorithm: {}, validators: {validators}, {tolerated}, blocks: {blocks}, wall time: {:.1} s",
        algorithm.as_str(),
        started.elapsed().as_secs_f64()
    )?;
    writeln!(out, "seeds: {seeds}, violations: {violations}")?;
    Ok(violations)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_validators_than_a_genesis_accepts_are_refused_before_running() {
        // (Simulation::new(Scenario::random(MAX_VALIDATORS, 0)) builds; it takes ~20 s in a
        // debug build, so it is not run here.)
        let mut out = Vec::new();
        let refused = run_cli(MAX_VALIDATORS + 1, 1, 0, &mut out);
        assert!(
            matches!(&refused, Err(CliError::InvalidArgs(why)) if why.contains("maximum of 1024")),
            "{refused:?}"
        );
        assert!(out.is_empty(), "nothing printed before the refusal");
    }

    #[test]
    fn too_few_validators_are_refused_without_a_summary() {
        for validators in [0, 1, 3] {
            let mut out = Vec::new();
            let refused = run_cli(validators, 1, 0, &mut out);
            assert!(
                matches!(&refused, Err(CliError::InvalidArgs(why)) if why.contains("4 to 1024")),
                "{validators}: {refused:?}"
            );
            assert!(out.is_empty(), "no 'seeds: 0, violations: 0' line");
        }
    }

    #[test]
    fn a_seed_range_past_u64_max_or_empty_is_refused() {
        let max = u64::MAX;
        assert!(
            check_cli_args(4, 1, max).is_ok(),
            "the last seed alone fits"
        );
        assert!(check_cli_args(4, 2, max - 1).is_ok());
        for (seeds, start) in [(2, max), (3, max - 1), (max, 2), (0, 0)] {
            let mut out = Vec::new();
            let refused = run_cli(4, seeds, start, &mut out);
            assert!(
                matches!(&refused, Err(CliError::InvalidArgs(_))),
                "{seeds} from {start}: {refused:?}"
            );
            assert!(out.is_empty());
        }
    }
}
