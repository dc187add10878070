//! `aegis db migrate --config FILE`: create the ledger schema or upgrade it (idempotent).
//! `aegis db init --config FILE`: the guide's `createdb aegis` and init step in one: creates
//! the PostgreSQL database when it is absent, then migrates (idempotent; on SQLite the same
//! as `migrate`).
//!
//! Also home of the helpers the storage subcommands share: reading the node configuration's
//! `storage:` section into the storage crate's [`StoreConfig`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use aegis_config::{LoadError, NodeConfig, StorageBackend};
use aegis_storage::{Backend, StoreConfig};
use anyhow::Context;

use crate::preflight::NodeEnv;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create the ledger tables (nodes, blocks, transactions) or apply pending migrations.
    /// Safe to run again: an up-to-date schema is left as it is.
    Migrate {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Create the PostgreSQL database if it is absent (the guide's `createdb aegis`), then
    /// migrate. Safe to run again. On SQLite, the same as `migrate`.
    Init {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    let (config, init) = match command {
        Command::Migrate { config } => (config, false),
        Command::Init { config } => (config, true),
    };
    let node = match load_config(&config) {
        Ok(node) => node,
        Err(message) => {
            eprintln!("{message}");
            return Ok(ExitCode::FAILURE);
        }
    };
    // Migrating writes the home: not while a node (or another migration) runs on it.
    let _home_lock = match crate::home_lock::HomeLock::acquire(&node) {
        Ok(lock) => lock,
        Err(error) => {
            eprintln!("error: {error}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let store = store_config(&node);
    let runtime = runtime()?;
    if init && let Backend::Postgres { url } = &store.backend {
        let created = runtime
            .block_on(aegis_storage::admin::create_postgres_database(url))
            .with_context(|| format!("create the database {}", store.backend.location()))?;
        match created {
            aegis_storage::admin::DatabaseCreated::Created => {
                println!("Created database {}", store.backend.location());
            }
            aegis_storage::admin::DatabaseCreated::AlreadyThere => {
                println!("Database {} already exists", store.backend.location());
            }
        }
    }
    let report = runtime
        .block_on(aegis_storage::migrate(&store))
        .with_context(|| format!("migrate the ledger at {}", store.backend.location()))?;
    println!(
        "{report} ({} at {})",
        store.backend.kind(),
        store.backend.location()
    );
    Ok(ExitCode::SUCCESS)
}

/// Reads the configuration file with the node's environment (`$AEGIS_HOME/.env` beneath the
/// process environment). Errors are ready to print: `Missing environment variables: ...`
/// or one `FILE:LINE:COL: KEY: message` line per problem.
pub fn load_config(path: &Path) -> Result<NodeConfig, String> {
    let env = NodeEnv::load(path)?;
    let lookup = |name: &str| env.get(name);
    aegis_config::load(path, &lookup).map_err(|error| match error {
        LoadError::Invalid(errors) => errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
        other => other.to_string(),
    })
}

/// The `storage:` section as the storage layer takes it.
pub fn store_config(node: &NodeConfig) -> StoreConfig {
    let storage = &node.storage;
    let backend = match &storage.backend {
        StorageBackend::Sqlite { path } => Backend::Sqlite { path: path.clone() },
        StorageBackend::Postgres { connection_string } => Backend::Postgres {
            url: connection_string.clone(),
        },
    };
    StoreConfig {
        backend,
        pool_size: storage.pool_size,
        max_overflow: storage.max_overflow,
        pool_timeout: storage.pool_timeout,
        pool_recycle: storage.pool_recycle,
    }
}

/// A small runtime for the one-shot storage commands.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("aegis-db")
        .enable_all()
        .build()
        .context("start the async runtime")
}
