//! AEGIS storage.
//!
//! This crate owns everything a node persists:
//! - the **ledger** ([`Ledger`]): committed blocks with their commit certificates and their
//!   transactions, in the `blocks` and `transactions` tables of embedded SQLite
//!   (`$AEGIS_HOME/data/blockchain.db`, the default) or PostgreSQL ([`SqlStore`]), and the
//!   pipelined group commit a node stores its stream of committed blocks through
//!   ([`Ledger::group_commit`], a [`BlockSink`]);
//! - the **`nodes` table** ([`NodeRegistry`]): validators and known peers, last seen;
//! - the schema and its versioned, embedded migrations ([`schema`]);
//! - offline **verification** of a stored chain against its genesis ([`verify_chain`]) and a
//!   cheap start-up check of the tip ([`check_tip`]);
//! - with the `fixtures` feature, valid chains made in-process (`fixtures::ChainFixture`)
//!   and the storage benchmark built on them (`bench`, `bench_storage`).
//!
//! A block is written with its certificate in one database transaction: after a crash it is
//! there whole or not at all. See `docs/storage.md` and
//! `docs/adr/0004-storage-durability.md`.

#[cfg(feature = "fixtures")]
pub mod bench;
pub mod config;
mod error;
#[cfg(feature = "fixtures")]
pub mod fixtures;
mod id_index;
pub mod schema;
mod sql;
mod traits;
pub mod verify;

#[cfg(feature = "testing")]
pub mod testing;

pub use config::{Backend, StoreConfig, redact_url};
pub use error::StorageError;
pub use id_index::{ID_INDEX_FANOUT, ID_INDEX_LEVELS, ID_INDEX_MERGE_ROWS, ID_INDEX_SLICE_MERGES};
pub use schema::{MigrationReport, SCHEMA_VERSION};
pub use sql::admin;
pub use sql::{GroupCommitter, OpenMode, SqlStore, SqliteMemory, sqlite_memory};
pub use traits::{
    BlockColumns, BlockSink, CommitAck, CommitTicket, GROUP_COMMIT_QUEUE_GROUPS, Ledger,
    MAX_GROUP_COMMIT_BLOCKS, MAX_RANGE_BLOCKS, NodeRecord, NodeRegistry, Store, StoreFuture,
    StoredBlock, StoredTransaction, Tip,
};
pub use verify::{ChainFault, VerifyReport, check_tip, verify_chain};

/// `aegis db migrate`: creates the schema or applies pending migrations; idempotent.
pub async fn migrate(config: &StoreConfig) -> Result<MigrationReport, StorageError> {
    let (store, report) = SqlStore::open_with(config, OpenMode::Migrate).await?;
    store.close().await;
    Ok(report)
}

/// `aegis verify`: opens an existing ledger read-only ([`OpenMode::ReadOnly`]: nothing is
/// written, not even the journal mode of an empty file) and verifies the whole chain
/// against `genesis`.
pub async fn verify(
    config: &StoreConfig,
    genesis: &aegis_types::Genesis,
) -> Result<VerifyReport, StorageError> {
    let store = SqlStore::open_read_only(config).await?;
    let report = verify_with_index(&store, genesis).await;
    store.close().await;
    report
}

/// The chain, then (when the chain is sound) SQLite's transaction-id index.
async fn verify_with_index(
    store: &SqlStore,
    genesis: &aegis_types::Genesis,
) -> Result<VerifyReport, StorageError> {
    let mut report = verify_chain(store, genesis).await?;
    if report.is_ok()
        && let Some((height, problem)) = store.check_id_index().await?
    {
        aegis_telemetry::error!(height, problem = %problem, "ledger integrity check failed");
        report.fault = Some(ChainFault { height, problem });
    }
    Ok(report)
}

#[cfg(feature = "fixtures")]
/// `aegis bench storage` (feature `fixtures`): opens (creating) the ledger at `config` and runs the benchmark,
/// extending the chain of `fixture`.
pub async fn bench_storage(
    config: &StoreConfig,
    fixture: &mut fixtures::ChainFixture,
    options: &bench::BenchOptions,
) -> Result<bench::BenchReport, StorageError> {
    let store = SqlStore::open(config).await?;
    let report = bench::run(&store, config.backend.kind(), fixture, options).await;
    store.close().await;
    report
}

/// `CREATE DATABASE name` on the PostgreSQL server of `admin_url` (whose role needs
/// `CREATEDB`); returns the URL of the new database. For tools that set up throwaway
/// networks, such as `aegis bench --storage postgresql`. `name` must be a plain identifier.
pub async fn create_postgres_database(admin_url: &str, name: &str) -> Result<String, String> {
    admin_sql(admin_url, name, &format!("CREATE DATABASE \"{name}\"")).await?;
    Ok(postgres_url_with_database(admin_url, name))
}

/// `DROP DATABASE IF EXISTS name WITH (FORCE)` on the server of `admin_url`.
pub async fn drop_postgres_database(admin_url: &str, name: &str) -> Result<(), String> {
    admin_sql(
        admin_url,
        name,
        &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
    )
    .await
}

async fn admin_sql(admin_url: &str, name: &str, sql: &str) -> Result<(), String> {
    use sqlx::Connection;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "database name {name:?} must be letters, digits and _"
        ));
    }
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .map_err(|e| format!("connect to {}: {e}", redact_url(admin_url)))?;
    let outcome = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .map(|_| ())
        .map_err(|e| format!("{sql} on {}: {e}", redact_url(admin_url)));
    let _ = conn.close().await;
    outcome
}

/// `url` with its database name replaced by `name`.
pub fn postgres_url_with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}
