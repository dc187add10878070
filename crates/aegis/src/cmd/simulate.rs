//! `aegis simulate --validators N --seeds K [--start-seed S]`: runs the deterministic cluster
//! simulator (`aegis-sim`) on K seeds and exits 0 only when no checker found a violation.
//! A failing seed is printed with the command that replays it.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Validators in the simulated cluster (f = (N - 1) / 3 of them may be Byzantine).
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// How many seeds to run.
    #[arg(long, default_value_t = 100)]
    pub seeds: u64,
    /// First seed.
    #[arg(long, default_value_t = 0)]
    pub start_seed: u64,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    let violations = aegis_sim::run_cli(args.validators, args.seeds, args.start_seed, &mut stdout)?;
    Ok(if violations == 0 && args.validators >= 4 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
