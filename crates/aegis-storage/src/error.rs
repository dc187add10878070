//! Storage errors.

use std::path::PathBuf;

use aegis_types::Hash;

/// Why a storage operation failed.
///
/// Integrity problems ([`StorageError::Corrupt`], [`StorageError::MigrationChecksum`]) use the
/// words *integrity*, *corrupt* and *checksum* in their messages, as the operators' guide
/// greps for them.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database could not be reached within `pool_timeout`. `url` has its password hidden.
    #[error("cannot reach the database at {url} (retried for {waited_secs} s): {reason}")]
    Unreachable {
        url: String,
        waited_secs: u64,
        reason: String,
    },
    /// A query failed (disk full, connection lost, lock timeout, ...). Nothing partial is kept:
    /// every write runs in one transaction. The database's message is shown once: sqlx's
    /// own `Display` repeats it through its source chain, which is not exposed here.
    #[error("{context}: {}", describe(error))]
    Database {
        context: &'static str,
        error: sqlx::Error,
    },
    /// SQLite could not get the database's lock within `pool_timeout`: another process
    /// holds it (a node on the same file, a `sqlite3` shell inside a transaction).
    #[error(
        "the SQLite database {} is locked by another process (waited {waited_secs} s for the lock): \
         another aegis process on this file, or a sqlite3 shell inside a transaction, holds it; \
         stop it and retry",
        path.display()
    )]
    Locked { path: PathBuf, waited_secs: u64 },
    /// A read-only command was pointed at an empty file.
    #[error(
        "{} is an empty file, not an AEGIS ledger; run `aegis db migrate --config FILE` or start the node once",
        path.display()
    )]
    EmptyDatabase { path: PathBuf },
    #[error(
        "database schema version {found} is newer than this aegis binary supports (version {supported}); \
         refusing to start: upgrade aegis, or use a database written by this version"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    #[error(
        "database schema version {found} is older than this binary's version {current}; \
         run `aegis db migrate --config FILE` first"
    )]
    SchemaTooOld { found: i64, current: i64 },
    #[error("the database has no AEGIS schema; run `aegis db migrate --config FILE` first")]
    NoSchema,
    #[error(
        "migration {version} ({name}) checksum mismatch: the database recorded {recorded}, \
         this binary has {embedded}; the schema was altered or comes from another build (integrity)"
    )]
    MigrationChecksum {
        version: i64,
        name: String,
        recorded: String,
        embedded: String,
    },
    /// Appending a block that is not the next one.
    #[error("block at height {got} does not follow the stored tip at height {tip}")]
    NotNext { tip: u64, got: u64 },
    /// Appending a block whose `prev_hash` is not the stored tip's hash.
    #[error(
        "block {height} links to previous hash {got}, but the stored block below it has hash {expected}"
    )]
    BrokenLink {
        height: u64,
        expected: Hash,
        got: Hash,
    },
    /// Appending a block whose certificate is for another block, or a block whose header
    /// disagrees with its body.
    #[error("refusing to store block {height}: {reason}")]
    InvalidBlock { height: u64, reason: String },
    /// Stored data that does not decode or does not match what it should.
    #[error("integrity error: corrupt ledger data{}: {detail}", height.map(|h| format!(" at height {h}")).unwrap_or_default())]
    Corrupt { height: Option<u64>, detail: String },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid storage configuration: {0}")]
    Config(String),
    #[error(
        "no ledger database at {0}; run `aegis db migrate --config FILE` or start the node once"
    )]
    Missing(PathBuf),
    #[error("background task failed: {0}")]
    Task(String),
    /// SQLite's transaction-id index cannot keep up: merges keep failing, or lookups keep
    /// being overtaken by merges. Transient; the message says what to check.
    #[error("transaction id index: {0}")]
    IdIndex(String),
}

/// A database error's message once: the server's or SQLite's own text with its code, or
/// sqlx's description of anything else.
pub(crate) fn describe(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(database) => match database.code() {
            Some(code) => format!("{} (code {code})", database.message()),
            None => database.message().to_owned(),
        },
        other => other.to_string(),
    }
}

/// Whether `error` is SQLite's "the database is locked" (SQLITE_BUSY or SQLITE_LOCKED).
pub(crate) fn is_sqlite_busy(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(database) => {
            matches!(database.code().as_deref(), Some("5" | "6" | "261" | "517"))
                || database.message().contains("database is locked")
        }
        _ => false,
    }
}

impl StorageError {
    pub(crate) fn db(context: &'static str) -> impl FnOnce(sqlx::Error) -> StorageError + Copy {
        move |error| StorageError::Database { context, error }
    }

    pub(crate) fn corrupt(
        height: impl Into<Option<u64>>,
        detail: impl Into<String>,
    ) -> StorageError {
        StorageError::Corrupt {
            height: height.into(),
            detail: detail.into(),
        }
    }

    /// True for faults that may clear by themselves (connection lost, disk full, pool
    /// exhausted): the caller may retry the same operation later.
    pub fn is_transient(&self) -> bool {
        match self {
            StorageError::Unreachable { .. } | StorageError::Io { .. } => true,
            StorageError::Locked { .. } => true,
            StorageError::Database { error, .. } => !matches!(
                error,
                sqlx::Error::RowNotFound
                    | sqlx::Error::ColumnDecode { .. }
                    | sqlx::Error::ColumnNotFound(_)
                    | sqlx::Error::TypeNotFound { .. }
            ),
            _ => false,
        }
    }
}
