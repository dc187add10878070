//! `aegis`: the node and its operator tools. This is the only crate that picks concrete
//! implementations (storage backend, transport, clock) and wires them together.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;
mod home_lock;
mod node;
mod preflight;
mod service;
mod startup;

/// AEGIS: a permissioned ledger node (PBFT or Raft, SQLite or PostgreSQL, TLS 1.3 P2P).
#[derive(Debug, Parser)]
#[command(name = "aegis", version, about, propagate_version = true)]
struct Cli {
    /// Run the node with this configuration file (same as `aegis run --config FILE`).
    #[arg(long, value_name = "FILE", global = false)]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the node.
    Run(cmd::run::Args),
    /// Generate a node key and write it encrypted with AEGIS_ENCRYPTION_KEY.
    Keygen(cmd::keygen::Args),
    /// Generate a local test network: genesis, keys, TLS certificates and one home per node.
    Testnet(cmd::testnet::Args),
    /// Run a live local network: start the validators, send a light workload, show
    /// progress until Ctrl-C.
    Devnet(cmd::devnet::Args),
    /// Work with configuration files.
    #[command(subcommand)]
    Config(cmd::config::Command),
    /// Ledger database maintenance.
    #[command(subcommand)]
    Db(cmd::db::Command),
    /// Verify the stored chain offline: hash links, transaction roots and ids, signatures,
    /// commit certificates against the genesis validators.
    Verify(cmd::verify::Args),
    /// Benchmarks: a network under load (no subcommand), Ed25519 (`crypto`), the ledger
    /// (`storage`).
    Bench(Box<cmd::bench::Args>),
    /// Run the deterministic consensus simulator on many seeds; exit 0 only with no violation.
    Simulate(cmd::simulate::Args),
    /// Submit and read transactions through a node's API.
    #[command(subcommand)]
    Tx(cmd::client::TxCommand),
    /// Read blocks through a node's API.
    #[command(subcommand)]
    Block(cmd::client::BlockCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Exactly one rustls crypto provider (ring) for the whole process, before any TLS use:
    // the node's P2P and the HTTP client of `tx`, `block` and `devnet`.
    aegis_p2p::install_default_provider();
    let result = match (cli.command, cli.config) {
        (Some(Command::Run(args)), _) => cmd::run::run(args),
        (None, Some(config)) => cmd::run::run(cmd::run::Args { config }),
        (Some(Command::Keygen(args)), _) => cmd::keygen::run(args),
        (Some(Command::Testnet(args)), _) => cmd::testnet::run(args),
        (Some(Command::Devnet(args)), _) => cmd::devnet::run(args),
        (Some(Command::Config(command)), _) => cmd::config::run(command),
        (Some(Command::Db(command)), _) => cmd::db::run(command),
        (Some(Command::Verify(args)), _) => cmd::verify::run(args),
        (Some(Command::Bench(args)), _) => cmd::bench::run(*args),
        (Some(Command::Simulate(args)), _) => cmd::simulate::run(args),
        (Some(Command::Tx(command)), _) => cmd::client::tx(command),
        (Some(Command::Block(command)), _) => cmd::client::block(command),
        (None, None) => {
            eprintln!(
                "error: give a subcommand, or --config FILE to run the node (see `aegis --help`)"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", render_chain(&error));
            ExitCode::FAILURE
        }
    }
}

/// The whole context chain on one line ("start logging: cannot open log file X: denied"),
/// skipping a cause whose text its parent already quotes: many error types embed their
/// source in their own message.
fn render_chain(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}
