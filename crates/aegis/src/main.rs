//! `aegis`: the node and its operator tools. This is the only crate that picks concrete
//! implementations (storage backend, transport, clock) and wires them together.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;
mod heap;
mod home_lock;
mod node;
mod ops;
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
    /// Check a node's health (the guide's health_checker.py): JSON report; exit 0 healthy,
    /// 1 warning, 2 unhealthy.
    Health(cmd::health::Args),
    /// Move a stopped node's P2P or consensus state aside (the guide's rm -rf data/p2p/* and
    /// data/consensus/*, made safe); refused while the node runs.
    Reset(cmd::reset::Args),
    /// Check the validators of the genesis: TCP, TLS 1.3, signed Hello and round trip to each.
    #[command(subcommand)]
    Validators(cmd::validators::Command),
    /// Back up the ledger (online, consistent), the configuration and the encrypted key, with
    /// a manifest of heights and sha256 sums.
    Backup(cmd::backup::BackupArgs),
    /// Restore a backup into a stopped node: checked and verified before anything is swapped.
    Restore(cmd::backup::RestoreArgs),
    /// Analyze or follow the node's JSON log (the guide's log_analyzer.sh and
    /// live_log_monitor.sh).
    #[command(subcommand)]
    Logs(cmd::logs::Command),
    /// Write a diagnostics report or bundle with every secret redacted (the guide's
    /// aegis_diagnostics.sh); --assessment prints its disaster assessment.
    Diagnose(cmd::diagnose::Args),
    /// Live terminal view of every node of a network (the guide's live_monitor.sh): status,
    /// height, tx/s, commit latency, peers, CPU, memory, recent errors; q quits.
    Monitor(cmd::monitor::Args),
}

/// Rust's heap is jemalloc's (docs/adr/0022-jemalloc.md): under a node's sustained load it
/// costs less CPU than glibc malloc and keeps fragmentation down; its background threads
/// hand freed pages back to the OS ([`heap::JEMALLOC_CONF`]). C code (SQLite) still
/// allocates from glibc ([`heap`]).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    heap::cap_malloc_arenas();
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
        (Some(Command::Health(args)), _) => cmd::health::run(args),
        (Some(Command::Reset(args)), _) => cmd::reset::run(args),
        (Some(Command::Validators(command)), _) => cmd::validators::run(command),
        (Some(Command::Backup(args)), _) => cmd::backup::backup(args),
        (Some(Command::Restore(args)), _) => cmd::backup::restore(args),
        (Some(Command::Logs(command)), _) => cmd::logs::run(command),
        (Some(Command::Diagnose(args)), _) => cmd::diagnose::run(args),
        (Some(Command::Monitor(args)), _) => cmd::monitor::run(args),
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
