//! AEGIS deterministic cluster simulator.
//!
//! Runs N nodes, each `aegis-engine`'s real `Driver` over the real consensus core, with
//! simulated I/O (`aegis_engine::memory`: a consensus log and a ledger that lose what was not
//! synced on a crash), one virtual clock and one seeded RNG (ChaCha8): the same seed replays
//! the same run, event for event. All state that decides an outcome lives in ordered maps,
//! never in hash maps. The simulator is generic over the protocol ([`SimProtocol`]); PBFT's
//! adapter and Byzantine behaviours are in [`pbft`]. Around the drivers it simulates the
//! network and the faults (tigerbeetle's `src/testing/` twins):
//!
//! - Network faults: drops, delays, duplicates, reordering, partitions that heal.
//! - Node faults: crash and restart from the last persisted state (losing the rest), a
//!   crash in the middle of a persist ("torn" step), clock skew.
//! - Network faults: drops, delays, duplicates, reordering, partitions that heal, and phases
//!   of a slow but reliable network whose delays exceed the base timeouts.
//! - Node faults: crash and restart from the last persisted state (losing the rest), a
//!   crash in the middle of a persist ("torn" step), crashes and tears aimed at the steps
//!   that matter (a proposal, a VIEW-CHANGE, a NEW-VIEW), clock skew.
//! - Byzantine nodes (at most f in random runs): equivocating primary (some peers see both
//!   batches), conflicting votes, invalid signatures, replays, silence, floods, and f
//!   colluders in a quarter of the seeds (f + 1 in the test that breaks agreement).
//! - Checkers, on every step: agreement, no gaps and hash links, validity (only submitted
//!   transactions, each at most once), commit certificates that verify offline, honest nodes
//!   never signing two statements for one slot, a consensus log that replays to exactly the
//!   core's state, liveness (after healing, probe transactions commit on every honest node
//!   within a bound of virtual time), and each protocol's own invariants from what honest
//!   nodes persist and send ([`Invariants`]; PBFT's in [`pbft::invariants`]). Quorums and
//!   signatures are checked with the checker's own code ([`quorum`]), never the core's.
//!
//! [`run_cli`] is what `aegis simulate` runs; a failure prints its seed, its fault rates and
//! the command that replays it ([`run_one`] with a trace prints the seed's event log).
//! Arguments it cannot honour are refused with a [`CliError`] before any seed runs.

mod checker;
mod cluster;
mod network;
mod outcome;
pub mod pbft;
mod protocol;
pub mod quorum;
mod scenario;
mod verifier;

use std::fmt;
use std::io::Write;
use std::time::Instant;

pub use aegis_consensus::Reject;
pub use cluster::Sim;
pub use outcome::Outcome;
pub use protocol::{
    Adversary, CoreSetup, Invariants, Moment, REPLAY_MEMORY, SimProtocol, Statement, Transmission,
    World,
};
pub use scenario::{Behavior, Crash, NetworkFaults, Partition, Scenario, SlowPhase, TestBuilder};
pub use verifier::SharedVerifier;

/// The simulator running PBFT, the protocol `aegis simulate` checks.
pub type Simulation = Sim<aegis_consensus::pbft::Pbft>;

/// Fewest validators the simulator runs: n >= 3f + 1 with f >= 1, so random runs always have
/// a Byzantine node.
pub const MIN_VALIDATORS: usize = 4;

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

/// Checks `aegis simulate`'s arguments: what [`run_cli`] refuses, and why.
pub fn check_cli_args(validators: usize, seeds: u64, start_seed: u64) -> Result<(), CliError> {
    if validators < MIN_VALIDATORS {
        return Err(CliError::InvalidArgs(format!(
            "--validators {validators} is too few to tolerate a Byzantine fault (n >= 3f + 1 \
             with f >= 1): the simulator runs {MIN_VALIDATORS} to {MAX_VALIDATORS} validators"
        )));
    }
    if validators > MAX_VALIDATORS {
        return Err(CliError::InvalidArgs(format!(
            "--validators {validators} exceeds the supported maximum of {MAX_VALIDATORS}: \
             the simulator runs {MIN_VALIDATORS} to {MAX_VALIDATORS} validators"
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

/// Runs one random scenario (every kind of fault, at most f Byzantine nodes) for `seed`.
pub fn run_seed(validators: usize, seed: u64) -> Outcome {
    Simulation::new(Scenario::random(validators, seed)).run()
}

/// Runs `seeds` random scenarios from `start_seed` on, printing each failure with its fault
/// rates and the command that replays it, and ends with the line `seeds: K, violations: V`.
/// Returns V. Refuses arguments it cannot honour (see [`check_cli_args`]) without running or
/// printing anything.
pub fn run_cli(
    validators: usize,
    seeds: u64,
    start_seed: u64,
    out: &mut dyn Write,
) -> Result<u64, CliError> {
    check_cli_args(validators, seeds, start_seed)?;
    let started = Instant::now();
    let mut totals = Totals::default();
    // `check_cli_args` made sure the last seed fits: every seed counted below is run.
    for seed in (0..seeds).map(|i| start_seed + i) {
        let scenario = Scenario::random(validators, seed);
        totals.add_scenario(&scenario);
        let outcome = Simulation::new(scenario.clone()).run();
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
                "  replay: aegis simulate --validators {validators} --seed {seed} --trace"
            )?;
        }
    }
    totals.write(out)?;
    writeln!(
        out,
        "validators: {validators}, f: {}, blocks: {}, wall time: {:.1} s",
        (validators - 1) / 3,
        totals.blocks,
        started.elapsed().as_secs_f64()
    )?;
    writeln!(out, "seeds: {seeds}, violations: {}", totals.violations)?;
    Ok(totals.violations)
}

/// Replays one seed, printing its fault rates, its event log when `trace` is set, what each
/// node ended with and every violation; ends with `seeds: 1, violations: V`. Returns V.
pub fn run_one(
    validators: usize,
    seed: u64,
    trace: bool,
    out: &mut dyn Write,
) -> Result<u64, CliError> {
    check_cli_args(validators, 1, seed)?;
    let started = Instant::now();
    let scenario = Scenario::random(validators, seed);
    writeln!(out, "seed {seed}: faults: {}", scenario.fault_rates())?;
    let mut simulation = Simulation::new(scenario);
    if trace {
        simulation = simulation.traced();
    }
    let outcome = simulation.run();
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
        "validators: {validators}, f: {}, blocks: {}, wall time: {:.1} s",
        (validators - 1) / 3,
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
