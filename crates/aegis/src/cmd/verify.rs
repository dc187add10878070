//! `aegis verify --config FILE`: check the stored chain offline against the genesis.
//!
//! Prints `Chain verified: N blocks, T transactions` and exits 0, or the first bad height and
//! what is wrong (the words integrity / corrupt / checksum) and exits 1.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::cmd::db::{load_config, runtime, store_config};
use crate::preflight::load_genesis;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The node's configuration file; its `storage:` section and `node.genesis_file` are used.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let node = match load_config(&args.config) {
        Ok(node) => node,
        Err(message) => {
            eprintln!("{message}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let genesis = match load_genesis(&node.node.genesis_file) {
        Ok(genesis) => genesis,
        Err(message) => {
            eprintln!("{message}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let store = store_config(&node);
    let report = runtime()?
        .block_on(aegis_storage::verify(&store, &genesis))
        .with_context(|| format!("verify the ledger at {}", store.backend.location()))?;
    if report.is_ok() {
        println!("{report}");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{report}");
        Ok(ExitCode::FAILURE)
    }
}
