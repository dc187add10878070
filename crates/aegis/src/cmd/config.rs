//! `aegis config check`.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Validate a configuration file and print every error.
    Check {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Check { config } => {
            anyhow::bail!("config check for {} is being wired", config.display())
        }
    }
}
