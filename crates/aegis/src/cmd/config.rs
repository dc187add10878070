//! `aegis config check`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::preflight::{PreflightError, preflight};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Validate a configuration file, its environment, genesis, node key and TLS files, and
    /// print every problem (exit 1) or `Configuration is valid` (exit 0).
    Check {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Check { config } => match preflight(&config) {
            Ok(_) => {
                println!("Configuration is valid");
                Ok(ExitCode::SUCCESS)
            }
            Err(failure) => {
                match failure.error {
                    error @ PreflightError::MissingEnv(_) => println!("{error}"),
                    error => eprintln!("{error}"),
                }
                Ok(ExitCode::FAILURE)
            }
        },
    }
}
