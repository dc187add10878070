//! `aegis simulate [--algorithm pbft|raft] --validators N --seeds K [--start-seed S]`: runs the
//! deterministic cluster simulator (`aegis-sim`) on K seeds and exits 0 only when no checker
//! found a violation. A failing seed is printed with its fault rates and the command that
//! replays it: `aegis simulate [--algorithm raft] --validators N --seed S --trace` runs that
//! one seed again, event for event, and prints its event log. Arguments the simulator cannot
//! honour (N outside 4..=1024 for PBFT or 3..=1024 for Raft, an empty seed range or one past
//! u64::MAX) are an error: one `error:` line on stderr, exit 1,
//! nothing run and no summary printed.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Consensus algorithm: pbft (Byzantine nodes among the faults), or raft (crashes only).
    #[arg(long, default_value = "pbft", value_parser = ["pbft", "raft"])]
    pub algorithm: String,
    /// Validators in the simulated cluster: PBFT 4 to 1024 (f = (N - 1) / 3 of them may be
    /// Byzantine), Raft 3 to 1024 (f = (N - 1) / 2 may crash).
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// How many seeds to run (at least 1; the last, S + K - 1, must fit in a u64); 100 by
    /// default.
    #[arg(long)]
    pub seeds: Option<u64>,
    /// First seed (0 by default).
    #[arg(long)]
    pub start_seed: Option<u64>,
    /// Replay this one seed instead, printing its fault rates and how each node ended.
    #[arg(long)]
    pub seed: Option<u64>,
    /// With --seed: print the seed's event log (every delivery, drop, crash, commit and
    /// violation, in virtual time).
    #[arg(long)]
    pub trace: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    let algorithm = match args.algorithm.as_str() {
        "raft" => aegis_sim::ConsensusAlgorithm::Raft,
        _ => aegis_sim::ConsensusAlgorithm::Pbft,
    };
    let violations = match (args.seed, args.seeds, args.start_seed) {
        (Some(seed), None, None) => {
            aegis_sim::run_one_for(algorithm, args.validators, seed, args.trace, &mut stdout)?
        }
        (Some(_), _, _) => anyhow::bail!(
            "simulate: --seed S replays one seed; it does not combine with --seeds or --start-seed"
        ),
        (None, _, _) if args.trace => anyhow::bail!(
            "simulate: --trace prints one seed's event log; give that seed with --seed S"
        ),
        (None, seeds, start_seed) => aegis_sim::run_cli_for(
            algorithm,
            args.validators,
            seeds.unwrap_or(100),
            start_seed.unwrap_or(0),
            &mut stdout,
        )?,
    };
    Ok(if violations == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
