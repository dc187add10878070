//! `aegis simulate [--algorithm pbft|raft] --validators N --seeds K [--start-seed S]`: runs the
//! deterministic cluster simulator (`aegis-sim`) on K seeds and exits 0 only when no checker
//! found a violation. A failing seed is printed with the command that replays it. Arguments
//! the simulator cannot honour (N outside 4..=1024 for PBFT or 3..=1024 for Raft, an empty
//! seed range or one past u64::MAX) are an error: one `error:` line on stderr, exit 1,
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
    /// How many seeds to run (at least 1; the last, S + K - 1, must fit in a u64).
    #[arg(long, default_value_t = 100)]
    pub seeds: u64,
    /// First seed.
    #[arg(long, default_value_t = 0)]
    pub start_seed: u64,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    let algorithm = match args.algorithm.as_str() {
        "raft" => aegis_sim::ConsensusAlgorithm::Raft,
        _ => aegis_sim::ConsensusAlgorithm::Pbft,
    };
    let violations = aegis_sim::run_cli_for(
        algorithm,
        args.validators,
        args.seeds,
        args.start_seed,
        &mut stdout,
    )?;
    Ok(if violations == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
