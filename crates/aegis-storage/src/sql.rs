//! The ledger and the `nodes` table on SQLite or PostgreSQL, through sqlx.
//!
//! The SQL text is shared by both backends wherever it can be (sqlx binds `$1` on SQLite
//! too); the differences are the migrations' column types, how a write transaction starts
//! (`BEGIN IMMEDIATE` on SQLite, so the write lock is taken up front) and how a block's
//! transactions are inserted (multi-row `VALUES` on SQLite, one `UNNEST` of arrays on
//! PostgreSQL, each a single cached prepared statement).

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aegis_types::encoding::{decode, encode};
use aegis_types::{
    Block, BlockHeader, CommitCertificate, Hash, PublicKey, Signature, Transaction, TxBody,
    merkle_root,
};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, QueryBuilder, Row, Sqlite};

use crate::StorageError;
use crate::config::{Backend, StoreConfig, redact_url};
use crate::id_index::{self, LOOKUP_ATTEMPTS, RecentIds};
use crate::schema::{
    CREATE_MIGRATIONS_TABLE, MIGRATIONS, MigrationReport, PG_MIGRATION_LOCK, SCHEMA_VERSION,
};
use crate::traits::{
    BlockColumns, Ledger, MAX_RANGE_BLOCKS, NodeRecord, NodeRegistry, StoreFuture, StoredBlock,
    StoredTransaction, Tip,
};

/// Transaction rows per multi-row `INSERT` on SQLite: 9 parameters each, well under
/// SQLite's 32766-parameter limit.
const SQLITE_TX_ROWS_PER_INSERT: usize = 500;

/// The columns [`tx_from_row`] reads, as a literal for `concat!`.
macro_rules! tx_columns {
    () => {
        "block_height, tx_index, id, version, chain_id, sender, nonce, payload, signature"
    };
}

#[derive(Clone, Debug)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The connection every append goes through, outside the pool. One long-lived writer keeps
/// its page cache (SQLite: another connection's write would invalidate it) and its prepared
/// statements warm; it is reopened after any failed append.
enum WriterConn {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

impl std::fmt::Debug for WriterConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WriterConn::Sqlite(_) => "WriterConn::Sqlite",
            WriterConn::Postgres(_) => "WriterConn::Postgres",
        })
    }
}

#[derive(Clone, Debug)]
enum WriterOptions {
    Sqlite(SqliteConnectOptions),
    Postgres(PgConnectOptions),
}

impl WriterOptions {
    async fn connect(&self) -> Result<WriterConn, sqlx::Error> {
        Ok(match self {
            WriterOptions::Sqlite(options) => WriterConn::Sqlite(options.connect().await?),
            WriterOptions::Postgres(options) => WriterConn::Postgres(options.connect().await?),
        })
    }
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
    /// Open an existing database whose schema must be current (offline tools: `verify`).
    Existing,
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

    /// Connects per `mode`; with [`OpenMode::Migrate`] also reports what was migrated.
    pub async fn open_with(
        config: &StoreConfig,
        mode: OpenMode,
    ) -> Result<(SqlStore, MigrationReport), StorageError> {
        let (pool, writer_options) = match &config.backend {
            Backend::Sqlite { path } => {
                let (pool, options) =
                    connect_sqlite(config, path, mode == OpenMode::Migrate).await?;
                (Pool::Sqlite(pool), WriterOptions::Sqlite(options))
            }
            Backend::Postgres { url } => {
                let (pool, options) = connect_postgres(config, url).await?;
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
        if let Pool::Postgres(pool) = &store.pool {
            warn_if_not_durable(pool).await;
        }
        let report = match mode {
            OpenMode::Migrate => store.migrate().await?,
            OpenMode::Existing => {
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
                tracing::debug!(%error, "closing the ledger writer connection failed");
            }
        }
        on_pool!(self, pool => pool.close().await);
    }

    /// Applies pending migrations in one transaction; a no-op when the schema is current.
    pub async fn migrate(&self) -> Result<MigrationReport, StorageError> {
        const CONTEXT: &str = "migrate the ledger schema";
        let postgres = matches!(self.pool, Pool::Postgres(_));
        on_pool!(self, pool => {
            let mut tx = if postgres {
                pool.begin().await.map_err(StorageError::db(CONTEXT))?
            } else {
                pool.begin_with("BEGIN IMMEDIATE").await.map_err(StorageError::db(CONTEXT))?
            };
            if postgres {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(PG_MIGRATION_LOCK)
                    .execute(&mut *tx)
                    .await
                    .map_err(StorageError::db(CONTEXT))?;
            }
            sqlx::query(CREATE_MIGRATIONS_TABLE)
                .execute(&mut *tx)
                .await
                .map_err(StorageError::db(CONTEXT))?;
            let rows = sqlx::query("SELECT version, name, checksum FROM aegis_schema_migrations ORDER BY version")
                .fetch_all(&mut *tx)
                .await
                .map_err(StorageError::db(CONTEXT))?;
            let applied_rows = applied_migrations(&rows, CONTEXT)?;
            let from = check_applied(&applied_rows, postgres)?;
            let mut applied = Vec::new();
            for migration in MIGRATIONS.iter().filter(|m| m.version > from) {
                let sql = if postgres { migration.postgres } else { migration.sqlite };
                sqlx::raw_sql(sql)
                    .execute(&mut *tx)
                    .await
                    .map_err(StorageError::db(CONTEXT))?;
                sqlx::query("INSERT INTO aegis_schema_migrations (version, name, checksum, applied_at_ms) VALUES ($1, $2, $3, $4)")
                    .bind(migration.version)
                    .bind(migration.name)
                    .bind(migration.checksum(postgres))
                    .bind(now_ms())
                    .execute(&mut *tx)
                    .await
                    .map_err(StorageError::db(CONTEXT))?;
                applied.push((migration.version, migration.name));
            }
            tx.commit().await.map_err(StorageError::db(CONTEXT))?;
            if !applied.is_empty() {
                tracing::info!(from, to = SCHEMA_VERSION, backend = self.backend_kind(), "ledger schema migrated");
            }
            Ok(MigrationReport { from, to: SCHEMA_VERSION, applied })
        })
    }

    /// The schema version, which must be this binary's.
    pub async fn check_schema(&self) -> Result<i64, StorageError> {
        const CONTEXT: &str = "read the schema version";
        let postgres = matches!(self.pool, Pool::Postgres(_));
        let exists_sql = if postgres {
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'aegis_schema_migrations'"
        } else {
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'aegis_schema_migrations'"
        };
        on_pool!(self, pool => {
            let exists: i64 = sqlx::query(exists_sql)
                .fetch_one(pool)
                .await
                .and_then(|row| row.try_get(0))
                .map_err(StorageError::db(CONTEXT))?;
            if exists == 0 {
                return Err(StorageError::NoSchema);
            }
            let rows = sqlx::query("SELECT version, name, checksum FROM aegis_schema_migrations ORDER BY version")
                .fetch_all(pool)
                .await
                .map_err(StorageError::db(CONTEXT))?;
            let applied_rows = applied_migrations(&rows, CONTEXT)?;
            let version = check_applied(&applied_rows, postgres)?;
            if version == 0 {
                return Err(StorageError::NoSchema);
            }
            if version < SCHEMA_VERSION {
                return Err(StorageError::SchemaTooOld { found: version, current: SCHEMA_VERSION });
            }
            Ok(version)
        })
    }

    /// Row counts of `nodes`, `blocks` and `transactions`, as the guide's check prints them.
    pub async fn table_counts(&self) -> Result<(u64, u64, u64), StorageError> {
        const CONTEXT: &str = "count rows";
        on_pool!(self, pool => {
            let mut counts = [0u64; 3];
            for (slot, sql) in counts.iter_mut().zip([
                "SELECT COUNT(*) FROM nodes",
                "SELECT COUNT(*) FROM blocks",
                "SELECT COUNT(*) FROM transactions",
            ]) {
                let n: i64 = sqlx::query(sql)
                    .fetch_one(pool)
                    .await
                    .and_then(|row| row.try_get(0))
                    .map_err(StorageError::db(CONTEXT))?;
                *slot = u64::try_from(n).unwrap_or(0);
            }
            Ok((counts[0], counts[1], counts[2]))
        })
    }

    /// Runs one SQL statement with no result, for tests and operator tools (fault injection,
    /// `ANALYZE`), on the connection appends use, so a per-connection setting (SQLite's
    /// `PRAGMA max_page_count`) applies to them. Not for untrusted text.
    pub async fn execute_sql(&self, sql: &str) -> Result<u64, StorageError> {
        const CONTEXT: &str = "run SQL";
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        let mut writer = self.writer.lock().await;
        match self.writer_conn(&mut writer).await? {
            WriterConn::Sqlite(conn) => sqlx::raw_sql(sql)
                .execute(conn)
                .await
                .map(|r| r.rows_affected()),
            WriterConn::Postgres(conn) => sqlx::raw_sql(sql)
                .execute(conn)
                .await
                .map(|r| r.rows_affected()),
        }
        .map_err(StorageError::db(CONTEXT))
    }

    /// The writer connection, opened if there is none.
    async fn writer_conn<'w>(
        &self,
        writer: &'w mut Option<WriterConn>,
    ) -> Result<&'w mut WriterConn, StorageError> {
        if writer.is_none() {
            let conn = self
                .writer_options
                .connect()
                .await
                .map_err(StorageError::db("open the ledger writer connection"))?;
            *writer = Some(conn);
        }
        writer
            .as_mut()
            .ok_or_else(|| StorageError::Config("ledger writer connection missing".to_owned()))
    }

    async fn append_prepared(&self, blocks: &[PreparedBlock<'_>]) -> Result<(), StorageError> {
        if blocks.is_empty() {
            return Ok(());
        }
        let mut writer = self.writer.lock().await;
        if self.recent.overfull() {
            // Merges keep failing and the map of the tail is at its bound: store nothing more
            // until one succeeds. While the retry delay runs, refuse without trying.
            if !self.recent.backing_off(Instant::now())
                && let WriterConn::Sqlite(conn) = self.writer_conn(&mut writer).await?
                && let Err(error) = self.merge_tail(conn).await
            {
                *writer = None;
                self.recent.merge_failed(&error);
            }
            if let Some(fault) = self.recent.fault() {
                return Err(StorageError::IdIndex(fault));
            }
        }
        let reused = writer.is_some();
        let mut result = append_on(self.writer_conn(&mut writer).await?, blocks).await;
        if result.is_err() {
            // Whatever state the failure left the connection in, the next append starts
            // from a fresh one.
            *writer = None;
        }
        // A writer connection that died while idle (server restart, idle timeout) fails the
        // first statement; the pool would have replaced it unseen, so retry once on a fresh
        // one. Safe even if the first attempt's COMMIT went through: blocks already stored
        // with the same hash are skipped.
        if reused && matches!(&result, Err(error) if connection_lost(error)) {
            result = append_on(self.writer_conn(&mut writer).await?, blocks).await;
            if result.is_err() {
                *writer = None;
            }
        }
        result?;
        if let Some(WriterConn::Sqlite(conn)) = writer.as_mut()
            && !self.track_ids(conn, blocks).await
        {
            // A failed merge can leave the connection inside a transaction sqlx could not
            // roll back; the next append starts from a fresh one.
            *writer = None;
        }
        Ok(())
    }

    /// SQLite, after a commit: puts the committed blocks' ids in the map of the tail and
    /// merges the tail into `transaction_ids` once it holds [`crate::ID_INDEX_MERGE_ROWS`]
    /// rows. A failed merge is logged and retried with a growing delay; the blocks are
    /// stored either way and stay findable through the map (until the tail outgrows its
    /// bound: see [`SqlStore::append_prepared`]).
    ///
    /// Returns false if a merge failed (the caller drops the connection).
    async fn track_ids(&self, conn: &mut SqliteConnection, blocks: &[PreparedBlock<'_>]) -> bool {
        let (Some(first), Some(last)) = (blocks.first(), blocks.last()) else {
            return true;
        };
        let from = first.height as u64 - 1;
        if self.recent.loaded_through() < from
            && let Pool::Sqlite(pool) = &self.pool
            && let Err(error) = id_index::catch_up(pool, &self.recent).await
        {
            // An append whose outcome was unknown left blocks the map has not seen; the
            // next lookup loads them.
            tracing::warn!(%error, "reading back the ids of recent blocks failed");
        }
        let rows =
            tx_rows(blocks).map(|(height, index, _, id)| (*id, (height as u64, index as u32)));
        self.recent.insert(rows, from, last.height as u64);
        if self.recent.merge_due(Instant::now())
            && let Err(error) = self.merge_tail(conn).await
        {
            let retry = self.recent.merge_failed(&error);
            tracing::warn!(%error, pending = self.recent.tail_rows(), retry_in_s = retry.as_secs(), "merging recent transaction ids into the id index failed; will retry");
            return false;
        }
        true
    }

    /// Merges the tail into the id index and lets the map forget it.
    async fn merge_tail(&self, conn: &mut SqliteConnection) -> Result<(), StorageError> {
        let started = Instant::now();
        let merged = id_index::merge(conn, self.recent.merge_rows()).await?;
        self.recent.prune(merged.through);
        tracing::debug!(
            through = merged.through,
            moved = merged.moved,
            cascaded = ?merged.cascaded,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "merged recent transaction ids into the id index"
        );
        Ok(())
    }

    async fn blocks_in(&self, from: u64, to: u64) -> Result<Vec<StoredBlock>, StorageError> {
        const CONTEXT: &str = "read blocks";
        if from > to {
            return Ok(Vec::new());
        }
        let to = to.min(from.saturating_add(MAX_RANGE_BLOCKS - 1));
        let (from_i, to_i) = (to_i64(from), to_i64(to));
        on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT height, hash, prev_hash, tx_root, proposer, consensus_view, timestamp_ms, tx_count, header, certificate \
                 FROM blocks WHERE height >= $1 AND height <= $2 ORDER BY height",
            )
            .bind(from_i)
            .bind(to_i)
            .fetch_all(pool)
            .await
            .map_err(StorageError::db(CONTEXT))?;
            let mut partial = Vec::with_capacity(rows.len());
            for row in &rows {
                partial.push(block_from_row(row)?);
            }
            if partial.is_empty() {
                return Ok(Vec::new());
            }
            let tx_rows = sqlx::query(concat!(
                "SELECT ",
                tx_columns!(),
                " FROM transactions WHERE block_height >= $1 AND block_height <= $2 ORDER BY block_height, tx_index",
            ))
            .bind(from_i)
            .bind(to_i)
            .fetch_all(pool)
            .await
            .map_err(StorageError::db(CONTEXT))?;
            let mut txs = Vec::with_capacity(tx_rows.len());
            for row in &tx_rows {
                txs.push(tx_from_row(row)?);
            }
            assemble(partial, txs)
        })
    }
}

/// The body of [`append_on`], the same text for both backends.
/// The rows of `aegis_schema_migrations` as (version, name, checksum), on either backend.
fn applied_migrations<R>(
    rows: &[R],
    context: &'static str,
) -> Result<Vec<(i64, String, String)>, StorageError>
where
    R: sqlx::Row,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
{
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get::<i64, _>("version")
                    .map_err(StorageError::db(context))?,
                row.try_get::<String, _>("name")
                    .map_err(StorageError::db(context))?,
                row.try_get::<String, _>("checksum")
                    .map_err(StorageError::db(context))?,
            ))
        })
        .collect()
}

macro_rules! append_body {
    ($tx:ident, $blocks:ident) => {{
        let mut tx = $tx;
        let blocks = $blocks;
            let tip = sqlx::query("SELECT height, hash FROM blocks ORDER BY height DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await
                .map_err(StorageError::db(CONTEXT))?;
            let tip = match tip {
                Some(row) => Some(tip_from_row(&row)?),
                None => None,
            };
            // Blocks already stored with the same hash are skipped, so an append retried
            // after an ambiguous failure (the connection died during COMMIT) succeeds.
            let mut skip = 0;
            if let Some(tip) = tip {
                for block in blocks.iter().take_while(|b| b.height as u64 <= tip.height) {
                    let stored: Option<String> = sqlx::query("SELECT hash FROM blocks WHERE height = $1")
                        .bind(block.height)
                        .fetch_optional(&mut *tx)
                        .await
                        .and_then(|row| row.map(|r| r.try_get::<String, _>(0)).transpose())
                        .map_err(StorageError::db(CONTEXT))?;
                    if stored.as_deref() != Some(block.hash.to_hex().as_str()) {
                        return Err(StorageError::NotNext { tip: tip.height, got: block.height as u64 });
                    }
                    skip += 1;
                }
            }
            let blocks = &blocks[skip..];
            let Some(first) = blocks.first() else {
                return Ok(());
            };
            check_follows(tip, first)?;
            for block in blocks {
                sqlx::query(
                    "INSERT INTO blocks (height, hash, prev_hash, tx_root, proposer, consensus_view, timestamp_ms, tx_count, header, certificate) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(block.height)
                .bind(block.hash.to_hex())
                .bind(block.block.header.prev_hash.to_hex())
                .bind(block.block.header.tx_root.to_hex())
                .bind(block.block.header.proposer.to_hex())
                .bind(block.block.header.view as i64)
                .bind(block.block.header.timestamp_ms as i64)
                .bind(block.block.header.tx_count as i32)
                .bind(block.header_bytes.as_slice())
                .bind(block.certificate_bytes.as_slice())
                .execute(&mut *tx)
                .await
                .map_err(StorageError::db(CONTEXT))?;
            }
            // Every transaction row of the commit at once, after the block rows they
            // reference.
            tx.insert_transactions(blocks).await?;
            tx.commit().await.map_err(StorageError::db(CONTEXT))?;
            Ok(())
        }
    }
}

/// Appends `blocks` in one database transaction on the writer connection.
async fn append_on(
    conn: &mut WriterConn,
    blocks: &[PreparedBlock<'_>],
) -> Result<(), StorageError> {
    const CONTEXT: &str = "append block";
    match conn {
        WriterConn::Sqlite(conn) => {
            let tx = Connection::begin_with(conn, "BEGIN IMMEDIATE")
                .await
                .map_err(StorageError::db(CONTEXT))?;
            append_body!(tx, blocks)
        }
        WriterConn::Postgres(conn) => {
            let tx = Connection::begin(conn)
                .await
                .map_err(StorageError::db(CONTEXT))?;
            append_body!(tx, blocks)
        }
    }
}

/// Whether `error` means the connection itself failed (not the statement).
fn connection_lost(error: &StorageError) -> bool {
    matches!(
        error,
        StorageError::Database {
            source: sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed,
            ..
        }
    )
}

/// Checks the recorded migrations against the embedded ones; returns the current version.
fn check_applied(rows: &[(i64, String, String)], postgres: bool) -> Result<i64, StorageError> {
    let mut version = 0;
    for (applied_version, name, checksum) in rows {
        if *applied_version > SCHEMA_VERSION {
            let found = rows.iter().map(|r| r.0).max().unwrap_or(*applied_version);
            return Err(StorageError::SchemaTooNew {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        if let Some(migration) = MIGRATIONS.iter().find(|m| m.version == *applied_version) {
            let embedded = migration.checksum(postgres);
            if *checksum != embedded {
                return Err(StorageError::MigrationChecksum {
                    version: *applied_version,
                    name: name.clone(),
                    recorded: checksum.clone(),
                    embedded,
                });
            }
        }
        version = version.max(*applied_version);
    }
    Ok(version)
}

/// How one backend inserts the transactions of the blocks of one commit.
trait TxInserter {
    fn insert_transactions<'a>(
        &'a mut self,
        blocks: &'a [PreparedBlock<'_>],
    ) -> impl std::future::Future<Output = Result<(), StorageError>> + Send + 'a;
}

/// Every transaction row of `blocks`: (height, index, transaction, id).
fn tx_rows<'a>(
    blocks: &'a [PreparedBlock<'_>],
) -> impl Iterator<Item = (i64, i32, &'a Transaction, &'a Hash)> + 'a {
    blocks.iter().flat_map(|block| {
        block
            .block
            .txs
            .iter()
            .zip(&block.tx_ids)
            .enumerate()
            .map(move |(i, (tx, id))| (block.height, i as i32, tx, id))
    })
}

/// Rows per multi-row `INSERT` for `remaining` rows: the largest power of two up to
/// [`SQLITE_TX_ROWS_PER_INSERT`], so only a handful of statement texts (each prepared once and
/// cached) ever exist.
fn sqlite_chunk(remaining: usize) -> usize {
    if remaining >= SQLITE_TX_ROWS_PER_INSERT {
        SQLITE_TX_ROWS_PER_INSERT
    } else {
        1 << remaining.max(1).ilog2()
    }
}

impl TxInserter for SqliteConnection {
    async fn insert_transactions(
        &mut self,
        blocks: &[PreparedBlock<'_>],
    ) -> Result<(), StorageError> {
        let mut remaining: usize = blocks.iter().map(|b| b.tx_ids.len()).sum();
        let mut rows = tx_rows(blocks).peekable();
        while remaining > 0 {
            let n = sqlite_chunk(remaining);
            let mut builder = QueryBuilder::<Sqlite>::new(
                "INSERT INTO transactions (block_height, tx_index, id, version, chain_id, sender, nonce, payload, signature) ",
            );
            builder.push_values(rows.by_ref().take(n), |mut row, (height, index, tx, id)| {
                let body = &tx.body;
                row.push_bind(height)
                    .push_bind(index)
                    .push_bind(id.0.as_slice())
                    .push_bind(i16::from(body.version))
                    .push_bind(body.chain_id.as_str())
                    .push_bind(body.sender.0.as_slice())
                    .push_bind(body.nonce as i64)
                    .push_bind(body.payload.as_slice())
                    .push_bind(tx.signature.0.as_slice());
            });
            builder
                .build()
                .persistent(true)
                .execute(&mut *self)
                .await
                .map_err(StorageError::db("append block transactions"))?;
            remaining -= n;
        }
        Ok(())
    }
}

impl TxInserter for PgConnection {
    /// One `INSERT ... SELECT FROM UNNEST(arrays)` for all the rows: one round trip. (A
    /// binary `COPY` parses faster on the server, but sqlx sends `CopyDone` as a separate
    /// small write after the data, and with Nagle on the socket that waits out the server's
    /// delayed ACK, about 40 ms per commit.)
    async fn insert_transactions(
        &mut self,
        blocks: &[PreparedBlock<'_>],
    ) -> Result<(), StorageError> {
        let n: usize = blocks.iter().map(|b| b.tx_ids.len()).sum();
        if n == 0 {
            return Ok(());
        }
        let mut heights = Vec::with_capacity(n);
        let mut indexes = Vec::with_capacity(n);
        let mut ids: Vec<&[u8]> = Vec::with_capacity(n);
        let mut versions = Vec::with_capacity(n);
        let mut chain_ids = Vec::with_capacity(n);
        let mut senders: Vec<&[u8]> = Vec::with_capacity(n);
        let mut nonces = Vec::with_capacity(n);
        let mut payloads: Vec<&[u8]> = Vec::with_capacity(n);
        let mut signatures: Vec<&[u8]> = Vec::with_capacity(n);
        for (height, index, tx, id) in tx_rows(blocks) {
            let body = &tx.body;
            heights.push(height);
            indexes.push(index);
            ids.push(id.0.as_slice());
            versions.push(i16::from(body.version));
            chain_ids.push(body.chain_id.as_str());
            senders.push(body.sender.0.as_slice());
            nonces.push(body.nonce as i64);
            payloads.push(body.payload.as_slice());
            signatures.push(tx.signature.0.as_slice());
        }
        sqlx::query(
            "INSERT INTO transactions (block_height, tx_index, id, version, chain_id, sender, nonce, payload, signature) \
             SELECT * FROM UNNEST($1::int8[], $2::int4[], $3::bytea[], $4::int2[], $5::text[], $6::bytea[], $7::int8[], $8::bytea[], $9::bytea[])",
        )
        .bind(heights)
        .bind(indexes)
        .bind(ids)
        .bind(versions)
        .bind(chain_ids)
        .bind(senders)
        .bind(nonces)
        .bind(payloads)
        .bind(signatures)
        .execute(&mut *self)
        .await
        .map_err(StorageError::db("append block transactions"))?;
        Ok(())
    }
}

/// A block checked and encoded, ready to insert.
/// Borrows the block on the direct path; owns it in the [`GroupCommitter`] queue.
pub(crate) struct PreparedBlock<'a> {
    block: Cow<'a, Block>,
    height: i64,
    hash: Hash,
    header_bytes: Vec<u8>,
    certificate_bytes: Vec<u8>,
    /// `block.txs[i].id()`, computed once.
    tx_ids: Vec<Hash>,
}

/// Cheap consistency checks before a block is written: the certificate names this block and
/// the header matches the body. Signatures are the engine's job.
fn prepare<'a>(
    block: Cow<'a, Block>,
    certificate: &CommitCertificate,
) -> Result<PreparedBlock<'a>, StorageError> {
    let header = &block.header;
    let height = header.height;
    let invalid = |reason: String| StorageError::InvalidBlock { height, reason };
    if height == 0 || height > i64::MAX as u64 {
        return Err(invalid(format!("height {height} is out of range")));
    }
    let hash = block.hash();
    if certificate.height != height {
        return Err(invalid(format!(
            "commit certificate is for height {}",
            certificate.height
        )));
    }
    if certificate.block_hash != hash {
        return Err(invalid(format!(
            "commit certificate is for block {}, this block's hash is {hash}",
            certificate.block_hash
        )));
    }
    if header.tx_count as usize != block.txs.len() {
        return Err(invalid(format!(
            "header says {} transactions, body has {}",
            header.tx_count,
            block.txs.len()
        )));
    }
    let tx_ids: Vec<Hash> = block.txs.iter().map(Transaction::id).collect();
    let root = merkle_root(&tx_ids);
    if root != header.tx_root {
        return Err(invalid(format!(
            "transaction root mismatch: header {}, computed {root}",
            header.tx_root
        )));
    }
    let header_bytes = encode(header);
    Ok(PreparedBlock {
        block,
        height: height as i64,
        hash,
        header_bytes,
        certificate_bytes: encode(certificate),
        tx_ids,
    })
}

fn prepare_batch(
    blocks: &[(Block, CommitCertificate)],
) -> Result<Vec<PreparedBlock<'_>>, StorageError> {
    let mut prepared: Vec<PreparedBlock<'_>> = Vec::with_capacity(blocks.len());
    for (block, certificate) in blocks {
        let next = prepare(Cow::Borrowed(block), certificate)?;
        if let Some(previous) = prepared.last() {
            let tip = Tip {
                height: previous.height as u64,
                hash: previous.hash,
            };
            check_follows(Some(tip), &next)?;
        }
        prepared.push(next);
    }
    Ok(prepared)
}

fn check_follows(tip: Option<Tip>, block: &PreparedBlock<'_>) -> Result<(), StorageError> {
    let height = block.height as u64;
    match tip {
        None if height == 1 => Ok(()),
        None => Err(StorageError::NotNext {
            tip: 0,
            got: height,
        }),
        Some(tip) if tip.height + 1 != height => Err(StorageError::NotNext {
            tip: tip.height,
            got: height,
        }),
        Some(tip) if tip.hash != block.block.header.prev_hash => Err(StorageError::BrokenLink {
            height,
            expected: tip.hash,
            got: block.block.header.prev_hash,
        }),
        Some(_) => Ok(()),
    }
}

/// Typed column access that reads the same on both backends.
trait RowExt {
    fn i64_at(&self, column: &str) -> Result<i64, sqlx::Error>;
    fn i32_at(&self, column: &str) -> Result<i32, sqlx::Error>;
    fn i16_at(&self, column: &str) -> Result<i16, sqlx::Error>;
    fn opt_i64_at(&self, column: &str) -> Result<Option<i64>, sqlx::Error>;
    fn bool_at(&self, column: &str) -> Result<bool, sqlx::Error>;
    fn text_at(&self, column: &str) -> Result<String, sqlx::Error>;
    fn bytes_at(&self, column: &str) -> Result<Vec<u8>, sqlx::Error>;
}

macro_rules! impl_row_ext {
    ($row:ty) => {
        impl RowExt for $row {
            fn i64_at(&self, column: &str) -> Result<i64, sqlx::Error> {
                self.try_get(column)
            }
            fn i32_at(&self, column: &str) -> Result<i32, sqlx::Error> {
                self.try_get(column)
            }
            fn i16_at(&self, column: &str) -> Result<i16, sqlx::Error> {
                self.try_get(column)
            }
            fn opt_i64_at(&self, column: &str) -> Result<Option<i64>, sqlx::Error> {
                self.try_get(column)
            }
            fn bool_at(&self, column: &str) -> Result<bool, sqlx::Error> {
                self.try_get(column)
            }
            fn text_at(&self, column: &str) -> Result<String, sqlx::Error> {
                self.try_get(column)
            }
            fn bytes_at(&self, column: &str) -> Result<Vec<u8>, sqlx::Error> {
                self.try_get(column)
            }
        }
    };
}
impl_row_ext!(SqliteRow);
impl_row_ext!(PgRow);

/// A column that could not be read as its declared type: corrupt data at `height`.
fn column<T>(
    height: Option<u64>,
    name: &str,
    value: Result<T, sqlx::Error>,
) -> Result<T, StorageError> {
    value.map_err(|error| StorageError::corrupt(height, format!("column {name}: {error}")))
}

fn hash_column(height: Option<u64>, name: &str, text: &str) -> Result<Hash, StorageError> {
    Hash::from_hex(text)
        .map_err(|error| StorageError::corrupt(height, format!("column {name} {text:?}: {error}")))
}

fn key_column(height: Option<u64>, name: &str, text: &str) -> Result<PublicKey, StorageError> {
    PublicKey::from_hex(text)
        .map_err(|error| StorageError::corrupt(height, format!("column {name} {text:?}: {error}")))
}

fn tip_from_row(row: &impl RowExt) -> Result<Tip, StorageError> {
    let height = column(None, "height", row.i64_at("height"))? as u64;
    let hash = hash_column(
        Some(height),
        "hash",
        &column(Some(height), "hash", row.text_at("hash"))?,
    )?;
    Ok(Tip { height, hash })
}

/// A `blocks` row decoded, before its transactions are attached.
struct PartialBlock {
    header: BlockHeader,
    certificate: CommitCertificate,
    columns: BlockColumns,
}

fn block_from_row(row: &impl RowExt) -> Result<PartialBlock, StorageError> {
    let height_i = column(None, "height", row.i64_at("height"))?;
    let height = height_i as u64;
    let h = Some(height);
    let header_bytes = column(h, "header", row.bytes_at("header"))?;
    let header: BlockHeader = decode(&header_bytes).map_err(|error| {
        StorageError::corrupt(h, format!("block header does not decode: {error}"))
    })?;
    let certificate_bytes = column(h, "certificate", row.bytes_at("certificate"))?;
    let certificate: CommitCertificate = decode(&certificate_bytes).map_err(|error| {
        StorageError::corrupt(h, format!("commit certificate does not decode: {error}"))
    })?;
    let columns = BlockColumns {
        height,
        hash: hash_column(h, "hash", &column(h, "hash", row.text_at("hash"))?)?,
        prev_hash: hash_column(
            h,
            "prev_hash",
            &column(h, "prev_hash", row.text_at("prev_hash"))?,
        )?,
        tx_root: hash_column(h, "tx_root", &column(h, "tx_root", row.text_at("tx_root"))?)?,
        proposer: key_column(
            h,
            "proposer",
            &column(h, "proposer", row.text_at("proposer"))?,
        )?,
        view: column(h, "consensus_view", row.i64_at("consensus_view"))? as u64,
        timestamp_ms: column(h, "timestamp_ms", row.i64_at("timestamp_ms"))? as u64,
        tx_count: column(h, "tx_count", row.i32_at("tx_count"))? as u32,
        tx_ids: Vec::new(),
    };
    Ok(PartialBlock {
        header,
        certificate,
        columns,
    })
}

/// A `transactions` row: (height, index, stored id, transaction).
fn tx_from_row(row: &impl RowExt) -> Result<(u64, u32, Hash, Transaction), StorageError> {
    let height = column(None, "block_height", row.i64_at("block_height"))? as u64;
    let h = Some(height);
    let index = column(h, "tx_index", row.i32_at("tx_index"))? as u32;
    let id = Hash(fixed_bytes(h, index, "id", row.bytes_at("id"))?);
    let version = column(h, "version", row.i16_at("version"))?;
    let version = u8::try_from(version).map_err(|_| {
        StorageError::corrupt(
            h,
            format!("transaction {index}: version {version} out of range"),
        )
    })?;
    let sender = PublicKey(fixed_bytes(h, index, "sender", row.bytes_at("sender"))?);
    let signature = Signature(fixed_bytes(
        h,
        index,
        "signature",
        row.bytes_at("signature"),
    )?);
    let body = TxBody {
        version,
        chain_id: column(h, "chain_id", row.text_at("chain_id"))?,
        sender,
        nonce: column(h, "nonce", row.i64_at("nonce"))? as u64,
        payload: column(h, "payload", row.bytes_at("payload"))?,
    };
    Ok((height, index, id, Transaction { body, signature }))
}

/// A byte column of exactly `N` bytes (an id, key or signature) of transaction `index`.
fn fixed_bytes<const N: usize>(
    height: Option<u64>,
    index: u32,
    name: &str,
    value: Result<Vec<u8>, sqlx::Error>,
) -> Result<[u8; N], StorageError> {
    let bytes = column(height, name, value)?;
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| {
        StorageError::corrupt(
            height,
            format!(
                "transaction {index}: column {name} holds {} bytes, expected {N}",
                bytes.len()
            ),
        )
    })
}

/// Attaches transaction rows (sorted by height, index) to their blocks.
fn assemble(
    partial: Vec<PartialBlock>,
    txs: Vec<(u64, u32, Hash, Transaction)>,
) -> Result<Vec<StoredBlock>, StorageError> {
    let mut out = Vec::with_capacity(partial.len());
    let mut txs = txs.into_iter().peekable();
    for block in partial {
        let height = block.columns.height;
        // The count comes from the stored header, which may be corrupt: never size memory by it alone.
        let capacity = (block.header.tx_count as usize)
            .min(aegis_types::genesis::MAX_BLOCK_TXS_LIMIT as usize);
        let mut body = Vec::with_capacity(capacity);
        let mut ids = Vec::with_capacity(capacity);
        while let Some((tx_height, _, _, _)) = txs.peek() {
            if *tx_height < height {
                // A transaction row whose block row is missing.
                return Err(StorageError::corrupt(
                    *tx_height,
                    "transaction rows exist for a block that is missing",
                ));
            }
            if *tx_height > height {
                break;
            }
            let Some((_, index, id, tx)) = txs.next() else {
                break;
            };
            if index as usize != body.len() {
                return Err(StorageError::corrupt(
                    height,
                    format!(
                        "transaction index {index} found where {} was expected",
                        body.len()
                    ),
                ));
            }
            body.push(tx);
            ids.push(id);
        }
        let mut columns = block.columns;
        columns.tx_ids = ids;
        out.push(StoredBlock {
            block: Block {
                header: block.header,
                txs: body,
            },
            certificate: block.certificate,
            columns,
        });
    }
    Ok(out)
}

impl Ledger for SqlStore {
    fn append_block<'a>(
        &'a self,
        block: &'a Block,
        certificate: &'a CommitCertificate,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let prepared = prepare(Cow::Borrowed(block), certificate)?;
            self.append_prepared(std::slice::from_ref(&prepared)).await
        })
    }

    fn append_blocks<'a>(
        &'a self,
        blocks: &'a [(Block, CommitCertificate)],
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let prepared = prepare_batch(blocks)?;
            self.append_prepared(&prepared).await
        })
    }

    fn height(&self) -> StoreFuture<'_, u64> {
        Box::pin(async move { Ok(self.tip().await?.map_or(0, |tip| tip.height)) })
    }

    fn tip(&self) -> StoreFuture<'_, Option<Tip>> {
        Box::pin(async move {
            on_pool!(self, pool => {
                let row = sqlx::query("SELECT height, hash FROM blocks ORDER BY height DESC LIMIT 1")
                    .fetch_optional(pool)
                    .await
                    .map_err(StorageError::db("read the chain tip"))?;
                match row {
                    Some(row) => Ok(Some(tip_from_row(&row)?)),
                    None => Ok(None),
                }
            })
        })
    }

    fn block_by_height(&self, height: u64) -> StoreFuture<'_, Option<StoredBlock>> {
        Box::pin(async move {
            if height == 0 || height > i64::MAX as u64 {
                return Ok(None);
            }
            Ok(self.blocks_in(height, height).await?.into_iter().next())
        })
    }

    fn block_by_hash<'a>(&'a self, hash: &'a Hash) -> StoreFuture<'a, Option<StoredBlock>> {
        Box::pin(async move {
            let height: Option<i64> = on_pool!(self, pool => {
                sqlx::query("SELECT height FROM blocks WHERE hash = $1")
                    .bind(hash.to_hex())
                    .fetch_optional(pool)
                    .await
                    .and_then(|row| row.map(|r| r.try_get::<i64, _>(0)).transpose())
                    .map_err(StorageError::db("find block by hash"))?
            });
            match height {
                Some(height) => self.block_by_height(height as u64).await,
                None => Ok(None),
            }
        })
    }

    fn header(&self, height: u64) -> StoreFuture<'_, Option<(BlockHeader, CommitCertificate)>> {
        Box::pin(async move {
            if height == 0 || height > i64::MAX as u64 {
                return Ok(None);
            }
            on_pool!(self, pool => {
                let row = sqlx::query(
                    "SELECT height, hash, prev_hash, tx_root, proposer, consensus_view, timestamp_ms, tx_count, header, certificate \
                     FROM blocks WHERE height = $1",
                )
                .bind(height as i64)
                .fetch_optional(pool)
                .await
                .map_err(StorageError::db("read block header"))?;
                match row {
                    Some(row) => {
                        let partial = block_from_row(&row)?;
                        Ok(Some((partial.header, partial.certificate)))
                    }
                    None => Ok(None),
                }
            })
        })
    }

    fn blocks(&self, from: u64, to: u64) -> StoreFuture<'_, Vec<StoredBlock>> {
        Box::pin(async move {
            let from = from.max(1);
            if from > i64::MAX as u64 {
                return Ok(Vec::new());
            }
            self.blocks_in(from, to.min(i64::MAX as u64)).await
        })
    }

    fn transaction<'a>(&'a self, id: &'a Hash) -> StoreFuture<'a, Option<StoredTransaction>> {
        Box::pin(async move {
            match &self.pool {
                Pool::Sqlite(pool) => self.sqlite_transaction(pool, id).await,
                Pool::Postgres(pool) => {
                    // Through the hash index on the id.
                    let row = sqlx::query(concat!(
                        "SELECT ",
                        tx_columns!(),
                        " FROM transactions WHERE id = $1 ORDER BY block_height, tx_index LIMIT 1"
                    ))
                    .bind(id.0.as_slice())
                    .fetch_optional(pool)
                    .await
                    .map_err(StorageError::db("read transaction"))?;
                    row.as_ref().map(stored_tx).transpose()
                }
            }
        })
    }
}

fn stored_tx(row: &impl RowExt) -> Result<StoredTransaction, StorageError> {
    let (height, index, id, transaction) = tx_from_row(row)?;
    Ok(StoredTransaction {
        transaction,
        id,
        height,
        index,
    })
}

impl SqlStore {
    /// SQLite lookup by id: the merged index (`transaction_ids`), then the map of the tail
    /// ([`crate::id_index`]). Retries when a merge moved ids out of the map under it.
    async fn sqlite_transaction(
        &self,
        pool: &SqlitePool,
        id: &Hash,
    ) -> Result<Option<StoredTransaction>, StorageError> {
        const CONTEXT: &str = "read transaction";
        for _ in 0..LOOKUP_ATTEMPTS {
            let generation = self.recent.generation();
            let indexed = sqlx::query(concat!(
                "SELECT t.block_height, t.tx_index, t.id, t.version, t.chain_id, t.sender, t.nonce, t.payload, t.signature \
                 FROM transaction_ids i CROSS JOIN transactions t \
                 ON t.block_height = i.block_height AND t.tx_index = i.tx_index \
                 WHERE i.level IN ",
                id_index::id_levels!(),
                " AND i.id_prefix = substr($1, 1, 8) AND t.id = $1 \
                 ORDER BY i.block_height, i.tx_index LIMIT 1",
            ))
            .bind(id.0.as_slice())
            .fetch_optional(pool)
            .await
            .map_err(StorageError::db(CONTEXT))?;
            if let Some(row) = indexed {
                return stored_tx(&row).map(Some);
            }
            id_index::catch_up(pool, &self.recent).await?;
            let Ok(located) = self.recent.get(id, generation) else {
                continue;
            };
            let Some((height, index)) = located else {
                return Ok(None);
            };
            let row = sqlx::query(concat!(
                "SELECT ",
                tx_columns!(),
                " FROM transactions WHERE block_height = $1 AND tx_index = $2 AND id = $3"
            ))
            .bind(to_i64(height))
            .bind(i64::from(index))
            .bind(id.0.as_slice())
            .fetch_optional(pool)
            .await
            .map_err(StorageError::db(CONTEXT))?;
            return row.as_ref().map(stored_tx).transpose();
        }
        Err(StorageError::IdIndex(format!(
            "looking up transaction {id} was overtaken by index merges {LOOKUP_ATTEMPTS} times in a row; try again"
        )))
    }

    /// SQLite: merge the ids of recent blocks into the id index once `rows` of them are
    /// waiting (default [`crate::ID_INDEX_MERGE_ROWS`]). Smaller values bound the memory
    /// tighter and cost more; tests use them to exercise merges on short chains.
    pub fn set_id_index_merge_rows(&self, rows: usize) {
        self.recent.set_merge_rows(rows);
    }

    /// SQLite: why appends are refused, while the transaction-id index cannot take the ids
    /// of new blocks (merges keep failing and the tail is at its bound); `None` otherwise.
    /// The node's health probe reports it.
    pub fn id_index_fault(&self) -> Option<String> {
        self.recent.fault()
    }

    /// `aegis verify`'s check of SQLite's id index (nothing to check on PostgreSQL): the first
    /// height where `transaction_ids` disagrees with `transactions`, and how.
    pub async fn check_id_index(&self) -> Result<Option<(u64, String)>, StorageError> {
        match &self.pool {
            Pool::Sqlite(pool) => id_index::check(pool).await,
            Pool::Postgres(_) => Ok(None),
        }
    }
}

fn node_from_row(row: &impl RowExt) -> Result<NodeRecord, StorageError> {
    let key_text = column(None, "public_key", row.text_at("public_key"))?;
    Ok(NodeRecord {
        public_key: key_column(None, "nodes.public_key", &key_text)?,
        name: column(None, "name", row.text_at("name"))?,
        p2p_address: column(None, "p2p_address", row.text_at("p2p_address"))?,
        api_address: column(None, "api_address", row.text_at("api_address"))?,
        is_validator: column(None, "is_validator", row.bool_at("is_validator"))?,
        first_seen_ms: column(None, "first_seen_ms", row.i64_at("first_seen_ms"))? as u64,
        last_seen_ms: column(None, "last_seen_ms", row.opt_i64_at("last_seen_ms"))?
            .map(|v| v as u64),
    })
}

impl NodeRegistry for SqlStore {
    fn upsert_node<'a>(&'a self, node: &'a NodeRecord) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            on_pool!(self, pool => {
                sqlx::query(
                    "INSERT INTO nodes (public_key, name, p2p_address, api_address, is_validator, first_seen_ms, last_seen_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (public_key) DO UPDATE SET \
                       name = excluded.name, p2p_address = excluded.p2p_address, api_address = excluded.api_address, \
                       is_validator = excluded.is_validator, \
                       first_seen_ms = CASE WHEN nodes.first_seen_ms < excluded.first_seen_ms THEN nodes.first_seen_ms ELSE excluded.first_seen_ms END, \
                       last_seen_ms = CASE WHEN nodes.last_seen_ms IS NULL THEN excluded.last_seen_ms \
                                           WHEN excluded.last_seen_ms IS NULL THEN nodes.last_seen_ms \
                                           WHEN excluded.last_seen_ms > nodes.last_seen_ms THEN excluded.last_seen_ms \
                                           ELSE nodes.last_seen_ms END",
                )
                .bind(node.public_key.to_hex())
                .bind(node.name.as_str())
                .bind(node.p2p_address.as_str())
                .bind(node.api_address.as_str())
                .bind(node.is_validator)
                .bind(node.first_seen_ms as i64)
                .bind(node.last_seen_ms.map(|v| v as i64))
                .execute(pool)
                .await
                .map_err(StorageError::db("record node"))?;
                Ok(())
            })
        })
    }

    fn mark_seen<'a>(&'a self, public_key: &'a PublicKey, at_ms: u64) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            on_pool!(self, pool => {
                let result = sqlx::query(
                    "UPDATE nodes SET last_seen_ms = $2 WHERE public_key = $1 AND (last_seen_ms IS NULL OR last_seen_ms < $2)",
                )
                .bind(public_key.to_hex())
                .bind(at_ms as i64)
                .execute(pool)
                .await
                .map_err(StorageError::db("record node last seen"))?;
                if result.rows_affected() > 0 {
                    return Ok(true);
                }
                let known: i64 = sqlx::query("SELECT COUNT(*) FROM nodes WHERE public_key = $1")
                    .bind(public_key.to_hex())
                    .fetch_one(pool)
                    .await
                    .and_then(|row| row.try_get(0))
                    .map_err(StorageError::db("record node last seen"))?;
                Ok(known > 0)
            })
        })
    }

    fn nodes(&self) -> StoreFuture<'_, Vec<NodeRecord>> {
        Box::pin(async move {
            on_pool!(self, pool => {
                let rows = sqlx::query(
                    "SELECT public_key, name, p2p_address, api_address, is_validator, first_seen_ms, last_seen_ms \
                     FROM nodes ORDER BY is_validator DESC, name, public_key",
                )
                .fetch_all(pool)
                .await
                .map_err(StorageError::db("read nodes"))?;
                rows.iter().map(node_from_row).collect()
            })
        })
    }
}

async fn connect_sqlite(
    config: &StoreConfig,
    path: &Path,
    create: bool,
) -> Result<(SqlitePool, SqliteConnectOptions), StorageError> {
    if create {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StorageError::Io {
                action: "create directory",
                path: parent.to_path_buf(),
                source,
            })?;
        }
    } else if !path.exists() {
        return Err(StorageError::Missing(path.to_path_buf()));
    }
    // WAL with synchronous=FULL: every commit is fsynced before it is acknowledged, so a
    // block reported stored survives power loss (docs/adr/0004-storage-durability.md).
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(create)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(config.pool_timeout)
        // A 64 MiB page cache per connection keeps the transaction-id index (random keys)
        // in memory; checkpointing every ~40 MiB of WAL instead of 4 MiB coalesces the
        // rewrites of its pages, which every block scatters across the index.
        .pragma("cache_size", "-65536")
        .pragma("wal_autocheckpoint", SQLITE_FALLBACK_CHECKPOINT_PAGES)
        .disable_statement_logging();
    let pool = SqlitePoolOptions::new()
        .max_connections(config.max_connections())
        .acquire_timeout(config.pool_timeout)
        .max_lifetime(config.pool_recycle)
        .connect_with(options.clone())
        .await
        .map_err(|error| StorageError::Unreachable {
            url: path.display().to_string(),
            waited_secs: 0,
            reason: error.to_string(),
        })?;
    spawn_sqlite_checkpointer(pool.clone());
    Ok((pool, options))
}

/// WAL pages after which a committing writer checkpoints by itself: a fallback, set high,
/// because [`spawn_sqlite_checkpointer`] normally keeps the WAL short.
const SQLITE_FALLBACK_CHECKPOINT_PAGES: &str = "50000";
/// How often the background checkpointer runs.
const SQLITE_CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);

/// Copies the WAL back into the database from a separate connection every
/// [`SQLITE_CHECKPOINT_INTERVAL`], so appends do not pay for checkpoints. PASSIVE never waits
/// for or blocks readers and writers. The task ends when the pool is closed.
fn spawn_sqlite_checkpointer(pool: SqlitePool) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        loop {
            tokio::time::sleep(SQLITE_CHECKPOINT_INTERVAL).await;
            if pool.is_closed() {
                break;
            }
            if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                if pool.is_closed() {
                    break;
                }
                tracing::debug!(%error, "SQLite WAL checkpoint failed; will retry");
            }
        }
    });
}

/// Connects to PostgreSQL, retrying a database that does not answer for up to
/// `pool_timeout`; errors that retrying cannot fix (bad password, no such database) end it
/// at once.
async fn connect_postgres(
    config: &StoreConfig,
    url: &str,
) -> Result<(PgPool, PgConnectOptions), StorageError> {
    let shown = redact_url(url);
    let options: PgConnectOptions = url.parse().map_err(|error| {
        StorageError::Config(format!("connection_string {shown} is not valid: {error}"))
    })?;
    let options = options.disable_statement_logging();
    let started = Instant::now();
    let mut delay = Duration::from_millis(250);
    loop {
        let attempt = PgPoolOptions::new()
            .max_connections(config.max_connections())
            .min_connections(0)
            .acquire_timeout(config.pool_timeout)
            .max_lifetime(config.pool_recycle)
            .idle_timeout(Duration::from_secs(600))
            .connect_with(options.clone())
            .await;
        let error = match attempt {
            Ok(pool) => {
                if started.elapsed() > Duration::from_secs(1) {
                    tracing::info!(url = %shown, "connected to PostgreSQL");
                }
                return Ok((pool, options));
            }
            Err(error) => error,
        };
        let retryable = !matches!(
            error,
            sqlx::Error::Database(_) | sqlx::Error::Configuration(_) | sqlx::Error::Tls(_)
        );
        let waited = started.elapsed();
        if !retryable || waited + delay > config.pool_timeout {
            return Err(StorageError::Unreachable {
                url: shown,
                waited_secs: waited.as_secs(),
                reason: error.to_string(),
            });
        }
        tracing::warn!(
            url = %shown,
            error = %error,
            retry_for_secs = config.pool_timeout.saturating_sub(waited).as_secs(),
            "PostgreSQL is not reachable yet; retrying"
        );
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// Logs a warning when the server would acknowledge a commit before it is on disk: then a
/// power loss can lose acknowledged blocks (docs/adr/0004-storage-durability.md).
async fn warn_if_not_durable(pool: &PgPool) {
    for sql in ["SHOW fsync", "SHOW synchronous_commit"] {
        let value: Option<String> = sqlx::query(sql)
            .fetch_one(pool)
            .await
            .and_then(|row| row.try_get(0))
            .ok();
        if value.as_deref() == Some("off") {
            tracing::warn!(
                setting = sql.trim_start_matches("SHOW "),
                "PostgreSQL acknowledges commits before they are durable: a power loss can lose \
                 committed blocks (set fsync = on and synchronous_commit = on)"
            );
        }
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

/// Blocks a [`GroupCommitter`] queues, in groups of its `max_blocks`: enough for the caller
/// to keep submitting while a group is synced or an id index merge (a few hundred ms) runs.
pub const GROUP_COMMIT_QUEUE_GROUPS: usize = 4;

/// A pipelined append stream: blocks are queued in chain order and one writer task commits
/// whatever is queued, up to `max_blocks`, in one database transaction (one disk sync).
///
/// This is what a pipelined commit stream gives storage: while one group is being synced,
/// the next blocks are checked and encoded ([`GroupCommitter::submit`] does that in the
/// caller's task) and wait in the queue. A block is acknowledged, by its
/// [`CommitTicket`], only once the transaction holding it has committed: the guarantee is the
/// same as [`Ledger::append_block`]'s (the block is durable, whole, with its certificate),
/// but an acknowledgement can wait for the blocks queued with it. If a group fails, its
/// blocks are retried one by one, so each gets its own verdict.
#[derive(Debug)]
pub struct GroupCommitter {
    queue: tokio::sync::mpsc::Sender<Queued>,
    commits: Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

struct Queued {
    block: PreparedBlock<'static>,
    done: tokio::sync::oneshot::Sender<Result<(), StorageError>>,
}

/// Resolves when the submitted block is durable, or with the error that kept it out.
#[derive(Debug)]
pub struct CommitTicket(tokio::sync::oneshot::Receiver<Result<(), StorageError>>);

impl CommitTicket {
    pub async fn wait(self) -> Result<(), StorageError> {
        self.0.await.unwrap_or_else(|_| {
            Err(StorageError::Config(
                "the group commit writer stopped before storing the block".to_owned(),
            ))
        })
    }
}

impl SqlStore {
    /// Starts a [`GroupCommitter`] on this store (needs a Tokio runtime). Appends through it
    /// and through [`Ledger::append_block`] are serialised on the same writer connection.
    pub fn group_committer(&self, max_blocks: usize) -> GroupCommitter {
        let max_blocks = max_blocks.max(1);
        let (queue, mut rx) =
            tokio::sync::mpsc::channel::<Queued>(max_blocks * GROUP_COMMIT_QUEUE_GROUPS);
        let commits = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let store = self.clone();
        let counter = commits.clone();
        let task = tokio::spawn(async move {
            let mut group: Vec<Queued> = Vec::with_capacity(max_blocks);
            while let Some(first) = rx.recv().await {
                group.push(first);
                while group.len() < max_blocks {
                    match rx.try_recv() {
                        Ok(next) => group.push(next),
                        Err(_) => break,
                    }
                }
                let linked = group.windows(2).all(|pair| {
                    let tip = Tip {
                        height: pair[0].block.height as u64,
                        hash: pair[0].block.hash,
                    };
                    check_follows(Some(tip), &pair[1].block).is_ok()
                });
                let (blocks, done): (Vec<_>, Vec<_>) =
                    group.drain(..).map(|q| (q.block, q.done)).unzip();
                let together = if linked && blocks.len() > 1 {
                    store.append_prepared(&blocks).await
                } else {
                    Err(StorageError::Config("append one by one".to_owned()))
                };
                if together.is_ok() {
                    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    for done in done {
                        let _ = done.send(Ok(()));
                    }
                    continue;
                }
                for (block, done) in blocks.iter().zip(done) {
                    let result = store.append_prepared(std::slice::from_ref(block)).await;
                    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let _ = done.send(result);
                }
            }
        });
        GroupCommitter {
            queue,
            commits,
            task,
        }
    }
}

impl GroupCommitter {
    /// Checks and encodes the next block, then queues it (waiting while the queue is full).
    /// An invalid block is refused here, before it is queued.
    pub async fn submit(
        &self,
        block: Block,
        certificate: &CommitCertificate,
    ) -> Result<CommitTicket, StorageError> {
        let block = prepare(Cow::Owned(block), certificate)?;
        let (done, ticket) = tokio::sync::oneshot::channel();
        self.queue
            .send(Queued { block, done })
            .await
            .map_err(|_| StorageError::Config("the group commit writer has stopped".to_owned()))?;
        Ok(CommitTicket(ticket))
    }

    /// Database transactions committed so far.
    pub fn commits(&self) -> u64 {
        self.commits.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stores everything queued, then stops the writer task.
    pub async fn finish(self) {
        drop(self.queue);
        let _ = self.task.await;
    }
}
