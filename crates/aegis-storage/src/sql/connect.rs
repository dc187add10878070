//! Opening a store: the connection pools of each backend, the writer connection's options,
//! SQLite's background WAL checkpointer and PostgreSQL's durability warning.

use std::path::Path;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Row};

use super::OpenMode;
use crate::StorageError;
use crate::config::{StoreConfig, redact_url};
use crate::error::{describe, is_sqlite_busy};

pub(super) async fn connect_sqlite(
    config: &StoreConfig,
    path: &Path,
    mode: OpenMode,
) -> Result<(SqlitePool, SqliteConnectOptions), StorageError> {
    match mode {
        OpenMode::Migrate => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|source| StorageError::Io {
                    action: "create directory",
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
        }
        OpenMode::Existing | OpenMode::ReadOnly => {
            let metadata = std::fs::metadata(path).map_err(|source| match source.kind() {
                std::io::ErrorKind::NotFound => StorageError::Missing(path.to_path_buf()),
                _ => StorageError::Io {
                    action: "inspect",
                    path: path.to_path_buf(),
                    source,
                },
            })?;
            // SQLite takes an empty file for an empty database, and the first connection
            // of a writable open would turn it into a WAL database: a check must not.
            if mode == OpenMode::ReadOnly && metadata.is_file() && metadata.len() == 0 {
                return Err(StorageError::EmptyDatabase {
                    path: path.to_path_buf(),
                });
            }
        }
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(mode == OpenMode::Migrate)
        .foreign_keys(true)
        .busy_timeout(config.pool_timeout)
        // The writer's page cache keeps the transaction-id index (random keys) in memory;
        // the pooled readers get a smaller one (below).
        .pragma("cache_size", SQLITE_WRITER_CACHE)
        .disable_statement_logging();
    let options = if mode == OpenMode::ReadOnly {
        // Read-only: no journal mode change, no checkpoints, nothing written to the file.
        options.read_only(true)
    } else {
        // WAL with synchronous=FULL: every commit is fsynced before it is acknowledged, so
        // a block reported stored survives power loss
        // (docs/adr/0004-storage-durability.md). Checkpointing every ~40 MiB of WAL
        // instead of 4 MiB coalesces the rewrites of the id index's pages, which every
        // block scatters across the index.
        options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .pragma("wal_autocheckpoint", SQLITE_FALLBACK_CHECKPOINT_PAGES)
    };
    probe_sqlite(&options, path).await?;
    let started = Instant::now();
    let pool = SqlitePoolOptions::new()
        .max_connections(sqlite_readers(config.max_connections(), available_cores()))
        .acquire_timeout(config.pool_timeout)
        .max_lifetime(config.pool_recycle)
        .connect_with(options.clone().pragma("cache_size", SQLITE_READER_CACHE))
        .await
        .map_err(|error| sqlite_open_error(path, started, &error))?;
    if mode != OpenMode::ReadOnly {
        spawn_sqlite_checkpointer(pool.clone());
    }
    Ok((pool, options))
}

/// Opens one connection and reads the schema table, outside any pool, so that what stops
/// the database from opening is reported as SQLite says it (a lock held by another process,
/// a file that is not a database, a read-only file) instead of as a pool timeout.
async fn probe_sqlite(options: &SqliteConnectOptions, path: &Path) -> Result<(), StorageError> {
    let started = Instant::now();
    let mut conn = options
        .connect()
        .await
        .map_err(|error| sqlite_open_error(path, started, &error))?;
    let read = sqlx::query("SELECT COUNT(*) FROM sqlite_master")
        .fetch_one(&mut conn)
        .await;
    let _ = sqlx::Connection::close(conn).await;
    read.map(|_| ())
        .map_err(|error| sqlite_open_error(path, started, &error))
}

fn sqlite_open_error(path: &Path, started: Instant, error: &sqlx::Error) -> StorageError {
    let waited_secs = started.elapsed().as_secs();
    if is_sqlite_busy(error) {
        StorageError::Locked {
            path: path.to_path_buf(),
            waited_secs,
        }
    } else {
        StorageError::Unreachable {
            url: path.display().to_string(),
            waited_secs,
            reason: describe(error),
        }
    }
}

/// Page cache of the one writer connection (`PRAGMA cache_size`, negative: KiB): 16 MiB.
/// Pages beyond it come from the OS page cache (not the node's memory). 64 MiB kept more of
/// the transaction-id index in the process but cost about 90 MB of resident memory after
/// five minutes at 2,500 tx/s, for no measurable append throughput (docs/performance.md).
pub const SQLITE_WRITER_CACHE: &str = "-16384";
/// Page cache of each pooled (reading) connection: 4 MiB. A connection's cache is dropped
/// whenever another one writes, so a larger one buys readers little, and the pool may hold
/// `pool_size + max_overflow` connections (30 by default: 120 MiB at most, where 64 MiB
/// each allowed 1.9 GiB).
pub const SQLITE_READER_CACHE: &str = "-4096";

/// Pooled (reading) SQLite connections per core. SQLite readers in WAL mode do not wait for
/// each other or for the writer, so connections beyond the cores add no throughput, only
/// memory: each has its own page cache (up to [`SQLITE_READER_CACHE`]) and its own thread.
/// With the pool at the configured 30 connections, bursts kept opening more of them and a
/// node's memory grew for ten minutes at 80% of saturation (docs/performance.md).
pub const SQLITE_READERS_PER_CORE: u32 = 2;
/// Fewest and most pooled SQLite connections whatever the core count.
pub const SQLITE_MIN_READERS: u32 = 4;
pub const SQLITE_MAX_READERS: u32 = 16;

/// The SQLite reader pool's size: `configured` (`pool_size + max_overflow`), but at most
/// [`SQLITE_READERS_PER_CORE`] per core within [`SQLITE_MIN_READERS`]..=[`SQLITE_MAX_READERS`].
/// PostgreSQL pools take the configured size as it is.
pub fn sqlite_readers(configured: u32, cores: usize) -> u32 {
    let by_cores = u32::try_from(cores)
        .unwrap_or(u32::MAX)
        .saturating_mul(SQLITE_READERS_PER_CORE)
        .clamp(SQLITE_MIN_READERS, SQLITE_MAX_READERS);
    configured.clamp(1, by_cores)
}

fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
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
                aegis_telemetry::debug!(%error, "SQLite WAL checkpoint failed; will retry");
            }
        }
    });
}

/// Connects to PostgreSQL, retrying a database that does not answer for up to
/// `pool_timeout`; errors that retrying cannot fix (bad password, no such database) end it
/// at once.
pub(super) async fn connect_postgres(
    config: &StoreConfig,
    url: &str,
    mode: OpenMode,
) -> Result<(PgPool, PgConnectOptions), StorageError> {
    let shown = redact_url(url);
    let options: PgConnectOptions = url.parse().map_err(|error| {
        StorageError::Config(format!("connection_string {shown} is not valid: {error}"))
    })?;
    let mut options = options.disable_statement_logging();
    if mode == OpenMode::ReadOnly {
        // Every transaction of a read-only command is read-only on the server too.
        options = options.options([("default_transaction_read_only", "on")]);
    }
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
                    aegis_telemetry::info!(url = %shown, "connected to PostgreSQL");
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
        aegis_telemetry::warn!(
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
pub(super) async fn warn_if_not_durable(pool: &PgPool) {
    for sql in ["SHOW fsync", "SHOW synchronous_commit"] {
        let value: Option<String> = sqlx::query(sql)
            .fetch_one(pool)
            .await
            .and_then(|row| row.try_get(0))
            .ok();
        if value.as_deref() == Some("off") {
            aegis_telemetry::warn!(
                setting = sql.trim_start_matches("SHOW "),
                "PostgreSQL acknowledges commits before they are durable: a power loss can lose \
                 committed blocks (set fsync = on and synchronous_commit = on)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sqlite_reader_pool_follows_the_cores_within_its_bounds() {
        // The default configuration (10 + 20) on this project's 2-core machine: 4.
        assert_eq!(sqlite_readers(30, 2), 4);
        assert_eq!(sqlite_readers(30, 1), SQLITE_MIN_READERS);
        assert_eq!(sqlite_readers(30, 6), 12);
        assert_eq!(sqlite_readers(30, 64), SQLITE_MAX_READERS);
        assert_eq!(sqlite_readers(u32::MAX, usize::MAX), SQLITE_MAX_READERS);
        // A smaller configured pool is kept as it is.
        assert_eq!(sqlite_readers(3, 8), 3);
        assert_eq!(sqlite_readers(1, 2), 1);
        assert_eq!(sqlite_readers(0, 2), 1);
    }
}
