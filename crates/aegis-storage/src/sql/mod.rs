//! The ledger and the `nodes` table on SQLite or PostgreSQL, through sqlx.
//!
//! The SQL text is shared by both backends wherever it can be (sqlx binds `$1` on SQLite
//! too); the differences are the migrations' column types, how a write transaction starts
//! (`BEGIN IMMEDIATE` on SQLite, so the write lock is taken up front) and how a block's
//! transactions are inserted (multi-row `VALUES` on SQLite, one `UNNEST` of arrays on
//! PostgreSQL, each a single cached prepared statement).
//!
//! One module per concern: opening the pools ([`connect`]), the schema's migrations and
//! checks ([`migrate`]), the writer connection every append goes through ([`writer`]), a block
//! checked, encoded and written in one transaction ([`append`]), the multi-row transaction
//! insert of each backend ([`tx_insert`]), decoding rows ([`rows`]), reads of the ledger
//! ([`reads`]), SQLite's transaction-id index as the store keeps and asks it ([`tx_ids`]),
//! the `nodes` table ([`nodes`]) and the pipelined group committer ([`group_commit`]).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::Connection;
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;

use crate::StorageError;
use crate::config::{Backend, StoreConfig};
use crate::id_index::{self, RecentIds};
use crate::schema::MigrationReport;

/// The columns [`rows::tx_from_row`] reads, as a literal for `concat!`.
macro_rules! tx_columns {
    () => {
        "block_height, tx_index, id, version, chain_id, sender, nonce, payload, signature"
    };
}

/// Runs `$body` with `$pool` bound to whichever backend pool the store has.
macro_rules! on_pool {
    ($self:expr, $pool:ident => $body:expr) => {
        match &$self.pool {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

pub mod admin;
mod append;
mod connect;
mod group_commit;
mod memory;
mod migrate;
mod nodes;
mod reads;
mod rows;
mod tx_ids;
mod tx_insert;
mod writer;

pub use group_commit::GroupCommitter;
pub use memory::{SqliteMemory, sqlite_memory};

use connect::{connect_postgres, connect_sqlite, warn_if_not_durable};
use writer::{WriterConn, WriterOptions};

#[derive(Clone, Debug)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The ledger database: SQLite or PostgreSQL.
#[derive(Clone, Debug)]
pub struct SqlStore {
    pool: Pool,
    config: StoreConfig,
    /// The writer connection, opened on first use. Appends are serialised on it, so the tip
    /// read inside the write transaction is never raced by another append of this node.
    writer: Arc<tokio::sync::Mutex<Option<WriterConn>>>,
    writer_options: WriterOptions,
    /// SQLite: the ids of the blocks above the merged id index ([`crate::id_index`]).
    recent: Arc<RecentIds>,
}

/// Whether opening may create or upgrade the schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Create the database (SQLite file) and apply pending migrations: what a node does at
    /// start-up and `aegis db migrate` does.
    Migrate,
    /// Open an existing database whose schema must be current.
    Existing,
    /// Like `Existing`, and nothing is written: SQLite is opened read-only (its journal mode
    /// left as it is, no checkpoints), PostgreSQL with read-only transactions. What the
    /// offline tools (`aegis verify`) use.
    ReadOnly,
}

impl SqlStore {
    /// Connects, creating or upgrading the schema as needed. Refuses a schema newer than this
    /// binary.
    pub async fn open(config: &StoreConfig) -> Result<SqlStore, StorageError> {
        SqlStore::open_with(config, OpenMode::Migrate)
            .await
            .map(|(store, _)| store)
    }

    /// Connects without creating anything; the schema must be exactly this binary's.
    pub async fn open_existing(config: &StoreConfig) -> Result<SqlStore, StorageError> {
        SqlStore::open_with(config, OpenMode::Existing)
            .await
            .map(|(store, _)| store)
    }

    /// Connects read-only ([`OpenMode::ReadOnly`]); the schema must be exactly this binary's.
    pub async fn open_read_only(config: &StoreConfig) -> Result<SqlStore, StorageError> {
        SqlStore::open_with(config, OpenMode::ReadOnly)
            .await
            .map(|(store, _)| store)
    }

    /// Connects per `mode`; with [`OpenMode::Migrate`] also reports what was migrated.
    pub async fn open_with(
        config: &StoreConfig,
        mode: OpenMode,
    ) -> Result<(SqlStore, MigrationReport), StorageError> {
        let (pool, writer_options) = match &config.backend {
            Backend::Sqlite { path } => {
                let (pool, options) = connect_sqlite(config, path, mode).await?;
                (Pool::Sqlite(pool), WriterOptions::Sqlite(options))
            }
            Backend::Postgres { url } => {
                let (pool, options) = connect_postgres(config, url, mode).await?;
                (Pool::Postgres(pool), WriterOptions::Postgres(options))
            }
        };
        let store = SqlStore {
            pool,
            config: config.clone(),
            writer: Arc::new(tokio::sync::Mutex::new(None)),
            writer_options,
            recent: Arc::new(RecentIds::default()),
        };
        if let Pool::Postgres(pool) = &store.pool
            && mode != OpenMode::ReadOnly
        {
            warn_if_not_durable(pool).await;
        }
        let report = match mode {
            OpenMode::Migrate => store.migrate().await?,
            OpenMode::Existing | OpenMode::ReadOnly => {
                let version = store.check_schema().await?;
                MigrationReport {
                    from: version,
                    to: version,
                    applied: Vec::new(),
                }
            }
        };
        if let Pool::Sqlite(pool) = &store.pool {
            id_index::catch_up(pool, &store.recent).await?;
        }
        Ok((store, report))
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// `sqlite` or `postgresql`.
    pub fn backend_kind(&self) -> &'static str {
        self.config.backend.kind()
    }

    /// Closes the writer and every pooled connection (SQLite checkpoints its WAL on the last
    /// close).
    pub async fn close(&self) {
        if let Some(conn) = self.writer.lock().await.take() {
            let closed = match conn {
                WriterConn::Sqlite(conn) => conn.close().await,
                WriterConn::Postgres(conn) => conn.close().await,
            };
            if let Err(error) = closed {
                aegis_telemetry::debug!(%error, "closing the ledger writer connection failed");
            }
        }
        on_pool!(self, pool => pool.close().await);
    }
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
