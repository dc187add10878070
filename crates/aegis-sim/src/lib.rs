//! AEGIS deterministic cluster simulator.
//!
//! Runs N instances of the real PBFT core (`aegis-consensus`) against one virtual clock and
//! one seeded RNG (ChaCha8): the same seed replays the same run, event for event. All state
//! that decides an outcome lives in ordered maps, never in hash maps. Around the cores it
//! simulates what the engine and the network would do (tigerbeetle's `src/testing/` twins):
//!
//! - Network faults: drops, delays, duplicates, reordering, partitions that heal.
//! - Node faults: crash and restart from the last persisted state (losing the rest), a
//!   crash in the middle of a persist ("torn" step), clock skew.
//! - Byzantine nodes (at most f in random runs): equivocating primary, conflicting votes,
//!   invalid signatures, replays, silence, floods, and colluders for the f + 1 test.
//! - Checkers: agreement, no gaps and hash links, validity (only submitted transactions,
//!   each at most once), commit certificates that verify offline, honest nodes never
//!   signing two statements for one slot, and liveness (after healing, probe transactions
//!   commit on every honest node within a bound of virtual time).
//!
//! [`run_cli`] is what `aegis simulate` runs; a failure prints its seed and the command that
//! replays it.

mod scenario;
mod sim;

use std::io::Write;
use std::time::Instant;

pub use scenario::{Behavior, Crash, NetworkFaults, Partition, Scenario, TestBuilder};
pub use sim::{Outcome, Simulation};

/// Runs one random scenario (every kind of fault, at most f Byzantine nodes) for `seed`.
pub fn run_seed(validators: usize, seed: u64) -> Outcome {
    Simulation::new(Scenario::random(validators, seed)).run()
}

/// Runs `seeds` random scenarios from `start_seed` on, printing each failure with the command
/// that replays it, and ends with the line `seeds: K, violations: V`. Returns V.
pub fn run_cli(
    validators: usize,
    seeds: u64,
    start_seed: u64,
    out: &mut dyn Write,
) -> std::io::Result<u64> {
    if validators < 4 {
        writeln!(
            out,
            "simulate: need at least 4 validators to tolerate a Byzantine fault, got {validators}"
        )?;
        writeln!(out, "seeds: 0, violations: 0")?;
        return Ok(0);
    }
    let started = Instant::now();
    let mut violations = 0u64;
    let mut blocks = 0u64;
    for seed in start_seed..start_seed.saturating_add(seeds) {
        let outcome = run_seed(validators, seed);
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
                "  replay: aegis simulate --validators {validators} --seeds 1 --start-seed {seed}"
            )?;
        }
    }
    writeln!(
        out,
        "validators: {validators}, f: {}, blocks: {blocks}, wall time: {:.1} s",
        (validators - 1) / 3,
        started.elapsed().as_secs_f64()
    )?;
    writeln!(out, "seeds: {seeds}, violations: {violations}")?;
    Ok(violations)
}
