//! The writer connection every append goes through, and the append path on it: refusals
//! while the id index is overfull, a retry on a connection that died while idle, and the
//! bookkeeping of SQLite's transaction-id index after each commit.

use std::time::Instant;

use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

use crate::StorageError;

use super::SqlStore;
use super::append::{PreparedBlock, append_on};

/// The connection every append goes through, outside the pool. One long-lived writer keeps
/// its page cache (SQLite: another connection's write would invalidate it) and its prepared
/// statements warm; it is reopened after any failed append.
pub(super) enum WriterConn {
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
pub(super) enum WriterOptions {
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

impl SqlStore {
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

    pub(super) async fn append_prepared(
        &self,
        blocks: &[PreparedBlock<'_>],
    ) -> Result<(), StorageError> {
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
}

/// Whether `error` means the connection itself failed (not the statement).
fn connection_lost(error: &StorageError) -> bool {
    matches!(
        error,
        StorageError::Database {
            error: sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed,
            ..
        }
    )
}
