//! `aegis bench`: benchmarks.
//! - `aegis bench`: throughput and latency of a running network under load ([`load`]).
//! - `aegis bench crypto`: Ed25519 verifications per second on this machine ([`crypto`]).
//! - `aegis bench storage`: ledger append and read throughput on SQLite or PostgreSQL.
//! - `aegis bench sync`: catch-up speed ([`crate::cmd::bench_sync`]).
//!
//! With `--keep DIR` the run leaves a 4-validator testnet in DIR (as `aegis testnet` writes
//! it) whose node0 holds the benchmark chain, so
//! `aegis verify --config DIR/node0/config/production.yaml` can check it.

use std::path::PathBuf;
use std::process::ExitCode;

use aegis_storage::bench::BenchOptions;
use aegis_storage::fixtures::ChainFixture;
use aegis_storage::{StoreConfig, redact_url};
use anyhow::{Context, bail};

use crate::cmd::db::runtime;
use crate::cmd::testnet;

pub mod crypto;
pub mod load;
pub mod procfs;

/// `aegis bench`: with no subcommand, the load run of [`load`].
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub load: load::LoadArgs,
}

/// At most this many blocks per database transaction under group commit, by default.
pub const DEFAULT_GROUP_COMMIT: usize = 128;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Ed25519 single and batch verifications per second on this machine, and the bound they
    /// put on a network's throughput.
    Crypto(crypto::CryptoArgs),
    /// Append signed blocks to a fresh ledger and read transactions back by id.
    Storage(StorageArgs),
    /// Catch-up speed: a node 10,000 blocks behind syncs from three others.
    Sync(crate::cmd::bench_sync::SyncArgs),
}

#[derive(Debug, clap::Args)]
pub struct StorageArgs {
    #[arg(long, default_value = "sqlite", value_parser = ["sqlite", "postgresql"])]
    pub backend: String,
    #[arg(long, default_value_t = 10_000)]
    pub blocks: u64,
    #[arg(long, default_value_t = 100)]
    pub txs_per_block: usize,
    /// Payload bytes per transaction.
    #[arg(long, default_value_t = 256)]
    pub tx_size: usize,
    /// Transactions read back by id for the latency figures.
    #[arg(long, default_value_t = 10_000)]
    pub reads: usize,
    /// Blocks per database transaction through `append_blocks`, as catch-up writes them,
    /// instead of the pipelined group commit.
    #[arg(long, value_name = "K", conflicts_with = "group_commit")]
    pub blocks_per_commit: Option<usize>,
    /// Pipelined group commit, the way a node stores its stream of committed blocks: blocks
    /// are queued as fast as storage takes them and each database transaction stores
    /// whatever is queued, at most N blocks. Each block is acknowledged once durable;
    /// latencies are per block. 0 commits each block on its own.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_GROUP_COMMIT)]
    pub group_commit: usize,
    /// Keep the result: a testnet in DIR whose node0 holds the benchmark chain.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
    /// PostgreSQL database to fill (default: DATABASE_URL). It should be empty.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(Command::Storage(args)) => storage(args),
        Some(Command::Crypto(args)) => crypto::run(args),
        Some(Command::Sync(args)) => crate::cmd::bench_sync::sync(args),
        None => load::run(args.load),
    }
}

fn storage(args: StorageArgs) -> anyhow::Result<ExitCode> {
    if args.tx_size > aegis_types::MAX_TX_PAYLOAD_BYTES {
        bail!(
            "--tx-size must be at most {} bytes",
            aegis_types::MAX_TX_PAYLOAD_BYTES
        );
    }
    let postgres_url = if args.backend == "postgresql" {
        let url = args
            .database_url
            .clone()
            .or_else(|| std::env::var("DATABASE_URL").ok())
            .filter(|u| !u.is_empty());
        match url {
            Some(url) => Some(url),
            None => bail!("--backend postgresql needs --database-url URL or DATABASE_URL"),
        }
    } else {
        None
    };
    let scratch = tempfile::tempdir().context("create a temporary directory")?;
    let (mut fixture, sqlite_path) = match &args.keep {
        Some(dir) => {
            let generated = testnet::generate(&testnet::Args {
                validators: 4,
                out: dir.clone(),
                base_port: 8000,
                host: "127.0.0.1".to_owned(),
                hosts: Vec::new(),
                chain_id: "aegis-bench".to_owned(),
                algorithm: "pbft".to_owned(),
            })
            .context("generate the testnet for --keep")?;
            let node0 = generated
                .homes
                .first()
                .cloned()
                .context("testnet has no node0")?;
            if let Some(url) = &postgres_url {
                point_node_at_postgres(&node0)?;
                eprintln!(
                    "note: node0 uses PostgreSQL via \"${{DATABASE_URL}}\"; set DATABASE_URL={} to verify it",
                    redact_url(url)
                );
            }
            (
                ChainFixture::from_parts(generated.genesis, generated.keys),
                node0.join("data/blockchain.db"),
            )
        }
        None => (
            ChainFixture::new(4, "aegis-bench"),
            scratch.path().join("data/blockchain.db"),
        ),
    };
    let config = match postgres_url {
        Some(url) => StoreConfig::postgres(url),
        None => StoreConfig::sqlite(sqlite_path),
    };
    let options = BenchOptions {
        blocks: args.blocks,
        txs_per_block: args.txs_per_block,
        tx_size: args.tx_size,
        reads: args.reads,
        blocks_per_commit: args.blocks_per_commit.unwrap_or(1),
        group_commit: if args.blocks_per_commit.is_some() {
            0
        } else {
            args.group_commit
        },
    };
    let report = runtime()?
        .block_on(aegis_storage::bench_storage(
            &config,
            &mut fixture,
            &options,
        ))
        .with_context(|| format!("benchmark the ledger at {}", config.backend.location()))?;
    println!("{report}");
    if let Some(dir) = &args.keep {
        println!(
            "Kept: aegis verify --config {}",
            dir.join("node0/config/production.yaml").display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Switches node0's `storage:` section from the testnet's SQLite to `${DATABASE_URL}`.
pub(crate) fn point_node_at_postgres(home: &std::path::Path) -> anyhow::Result<()> {
    let path = home.join("config/production.yaml");
    let text =
        aegis_fs::read_regular_file_to_string(&path, aegis_config::MAX_CONFIG_FILE_BYTES as u64)?;
    let Some(start) = text.find("\nstorage:\n") else {
        bail!(
            "{} has no storage: section to point at PostgreSQL",
            path.display()
        );
    };
    let body_start = start + "\nstorage:\n".len();
    let end = text[body_start..]
        .find("\n\n")
        .map_or(text.len(), |i| body_start + i);
    let replaced = format!(
        "{}\nstorage:\n  type: postgresql\n  connection_string: \"${{DATABASE_URL}}\"{}",
        &text[..start],
        &text[end..]
    );
    std::fs::write(&path, replaced).with_context(|| format!("write {}", path.display()))
}
