//! Opening a store: the connection pools of each backend, the writer connection's options,
//! SQLite's background WAL checkpointer and PostgreSQL's durability warning.

use std::path::Path;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Row};

use crate::StorageError;
use crate::config::{StoreConfig, redact_url};

pub(super) async fn connect_sqlite(
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
pub(super) async fn connect_postgres(
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
pub(super) async fn warn_if_not_durable(pool: &PgPool) {
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
