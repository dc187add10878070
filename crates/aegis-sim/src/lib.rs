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
//! - Network faults: drops, delays, duplicates, reordering, partitions that heal, and phases
//!   of a slow but reliable network whose delays exceed the base timeouts.
//! - Node faults: crash and restart from the last persisted state (losing the rest), a
//!   crash in the middle of a persist ("torn" step), crashes and tears aimed at the steps
//!   that matter (a proposal, a VIEW-CHANGE, a NEW-VIEW; Raft: a new entry, a vote request),
//!   clock skew.
//! - Byzantine nodes (PBFT, at most f in random runs): equivocating primary (some peers see
//!   both batches), conflicting votes, invalid signatures, replays, silence, floods, and f
//!   colluders in a quarter of the seeds (f + 1 in the test that breaks agreement). Raft
//!   tolerates crashes only: its random runs have every fault but these.
//! - Checkers, on every step: agreement, no gaps and hash links, validity (only submitted
//!   transactions, each at most once), commit certificates that verify offline, honest nodes
//!   never signing two statements for one slot, a consensus log that replays to exactly the
//!   core's state, liveness (after healing, probe transactions commit on every honest node
//!   within a bound of virtual time), and each protocol's own invariants from what honest
//!   nodes persist, send and say about themselves ([`Invariants`]; PBFT's in
//!   [`pbft::invariants`], Raft's in [`raft`]). Quorums and signatures are checked with the
//!   checker's own code ([`quorum`], f = 0 for Raft: a majority), never the core's.
//!
//! [`run_cli_for`] is what `aegis simulate` runs; a failure prints its seed, its fault rates
//! and the command that replays it ([`run_one_for`] with a trace prints the seed's event log).
//! Arguments it cannot honour are refused with a [`CliError`] before any seed runs.

mod checker;
mod cluster;
mod network;
mod outcome;
pub mod pbft;
mod protocol;
pub mod quorum;
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
    Adversary, CoreSetup, Invariants, Moment, NoInvariants, REPLAY_MEMORY, SimProtocol, Statement,
    Transmission, World,
};
pub use scenario::{Behavior, Crash, NetworkFaults, Partition, Scenario, SlowPhase, TestBuilder};
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
    Sim::<P>::new(random_scenario::<P>(validators, seed)).run()
}

/// The random scenario of protocol `P` for `seed`.
fn random_scenario<P: SimProtocol>(validators: usize, seed: u64) -> Scenario {
    let mut scenario = Scenario::random_with(validators, seed, P::random_byzantine(validators));
    P::fit_random(&mut scenario);
    scenario
}

/// What one algorithm's CLI runs: its random scenarios, how they run, how the summary names
/// what it tolerates, and what the replay command adds.
struct Runner {
    scenario: fn(usize, u64) -> Scenario,
    run: fn(Scenario, bool) -> Outcome,
    tolerated: String,
    replay_algorithm: &'static str,
}

fn run_traced<P: SimProtocol>(scenario: Scenario, trace: bool) -> Outcome {
    let simulation = Sim::<P>::new(scenario);
    if trace {
        simulation.traced().run()
    } else {
        simulation.run()
    }
}

impl Runner {
    fn for_algorithm(algorithm: ConsensusAlgorithm, validators: usize) -> Runner {
        match algorithm {
            ConsensusAlgorithm::Pbft => Runner {
                scenario: random_scenario::<aegis_consensus::pbft::Pbft>,
                run: run_traced::<aegis_consensus::pbft::Pbft>,
                tolerated: format!("f: {}", (validators - 1) / 3),
                replay_algorithm: "",
            },
            ConsensusAlgorithm::Raft => Runner {
                scenario: random_scenario::<aegis_consensus::raft::Raft>,
                run: run_traced::<aegis_consensus::raft::Raft>,
                tolerated: format!("f: {} crashed", (validators - 1) / 2),
                replay_algorithm: " --algorithm raft",
            },
        }
    }
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
/// with its fault rates and the command that replays it, and ends with the line
/// `seeds: K, violations: V`. Returns V. Refuses arguments it cannot honour (see
/// [`check_cli_args_for`]) without running or printing anything.
pub fn run_cli_for(
    algorithm: ConsensusAlgorithm,
    validators: usize,
    seeds: u64,
    start_seed: u64,
    out: &mut dyn Write,
) -> Result<u64, CliError> {
    check_cli_args_for(algorithm, validators, seeds, start_seed)?;
    let runner = Runner::for_algorithm(algorithm, validators);
    let started = Instant::now();
    let mut totals = Totals::default();
    // `check_cli_args_for` made sure the last seed fits: every seed counted below is run.
    for seed in (0..seeds).map(|i| start_seed + i) {
        let scenario = (runner.scenario)(validators, seed);
        totals.add_scenario(&scenario);
        let outcome = (runner.run)(scenario.clone(), false);
        totals.add_outcome(&outcome);
        if !outcome.violations.is_empty() {
            writeln!(
                out,
                "seed {seed}: {} violation(s)",
                outcome.violations.len()
            )?;
            writeln!(out, "  faults: {}", scenario.fault_rates())?;
            for violation in &outcome.violations {
                writeln!(out, "  {violation}")?;
            }
            writeln!(
                out,
                "  replay: aegis simulate{} --validators {validators} --seed {seed} --trace",
                runner.replay_algorithm
            )?;
        }
    }
    totals.write(out)?;
    let acknowledged = if totals.acknowledged > 0 {
        format!(
            ", leader-acknowledged transactions checked: {}",
            totals.acknowledged
        )
    } else {
        String::new()
    };
    writeln!(
        out,
        "algorithm: {}, validators: {validators}, {}, blocks: {}{acknowledged}, wall time: {:.1} s",
        algorithm.as_str(),
        runner.tolerated,
        totals.blocks,
        started.elapsed().as_secs_f64()
    )?;
    writeln!(out, "seeds: {seeds}, violations: {}", totals.violations)?;
    Ok(totals.violations)
}

/// Replays one PBFT seed (see [`run_one_for`]).
pub fn run_one(
    validators: usize,
    seed: u64,
    trace: bool,
    out: &mut dyn Write,
) -> Result<u64, CliError> {
    run_one_for(ConsensusAlgorithm::Pbft, validators, seed, trace, out)
}

/// Replays one seed of `algorithm`, printing its fault rates, its event log when `trace` is
/// set, what each node ended with and every violation; ends with `seeds: 1, violations: V`.
/// Returns V.
pub fn run_one_for(
    algorithm: ConsensusAlgorithm,
    validators: usize,
    seed: u64,
    trace: bool,
    out: &mut dyn Write,
) -> Result<u64, CliError> {
    check_cli_args_for(algorithm, validators, 1, seed)?;
    let runner = Runner::for_algorithm(algorithm, validators);
    let started = Instant::now();
    let scenario = (runner.scenario)(validators, seed);
    writeln!(out, "seed {seed}: faults: {}", scenario.fault_rates())?;
    let outcome = (runner.run)(scenario, trace);
    for line in &outcome.trace {
        writeln!(out, "{line}")?;
    }
    writeln!(
        out,
        "heights {:?}, views {:?}, statuses {:?}, stable checkpoints {:?}",
        outcome.heights, outcome.views, outcome.statuses, outcome.stable_checkpoints
    )?;
    writeln!(
        out,
        "events {}, messages {}, view changes {}, syncs {}, torn persists {}, aimed crashes {}, liveness at {}",
        outcome.events,
        outcome.messages_delivered,
        outcome.view_changes_started,
        outcome.sync_requests,
        outcome.torn_persists,
        outcome.aimed_crashes,
        outcome
            .liveness_ms
            .map_or("never".to_owned(), |ms| format!("{ms} ms"))
    )?;
    for violation in &outcome.violations {
        writeln!(out, "  {violation}")?;
    }
    writeln!(
        out,
        "algorithm: {}, validators: {validators}, {}, blocks: {}, wall time: {:.1} s",
        algorithm.as_str(),
        runner.tolerated,
        outcome.heights.iter().copied().max().unwrap_or(0),
        started.elapsed().as_secs_f64()
    )?;
    let violations = outcome.violations.len() as u64;
    writeln!(out, "seeds: 1, violations: {violations}")?;
    Ok(violations)
}

/// What a batch of seeds went through, for the summary: each seed's faults are in its
/// scenario; these say the sharper ones were not rare.
#[derive(Debug, Default)]
struct Totals {
    violations: u64,
    blocks: u64,
    acknowledged: u64,
    colluder_seeds: u64,
    slow_seeds: u64,
    aimed_crashes: u64,
    torn_persists: u64,
    view_changes: u64,
    signatures_checked: u64,
}

impl Totals {
    fn add_scenario(&mut self, scenario: &Scenario) {
        if scenario
            .byzantine
            .iter()
            .any(|(_, b)| *b == Behavior::Colluding)
        {
            self.colluder_seeds += 1;
        }
        if !scenario.slow_phases.is_empty() {
            self.slow_seeds += 1;
        }
    }

    fn add_outcome(&mut self, outcome: &Outcome) {
        self.violations += outcome.violations.len() as u64;
        self.blocks += outcome.heights.iter().copied().max().unwrap_or(0);
        self.acknowledged += outcome.acknowledged_checked;
        self.aimed_crashes += outcome.aimed_crashes;
        self.torn_persists += outcome.torn_persists;
        self.view_changes += outcome.view_changes_started;
        self.signatures_checked += outcome.signatures_checked;
    }

    fn write(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(
            out,
            "faults: {} seeds with f colluders, {} with a slow phase, {} aimed crashes, {} torn persists, {} view changes started; checkers verified {} signatures",
            self.colluder_seeds,
            self.slow_seeds,
            self.aimed_crashes,
            self.torn_persists,
            self.view_changes,
            self.signatures_checked
        )
    }
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
