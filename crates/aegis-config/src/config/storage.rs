//! `storage:`: the ledger database and its connection pool.

use std::fmt;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use crate::file::StorageFile;

use super::checker::{Checker, up_to};

/// `storage.pool_size`: on PostgreSQL every connection is a server process (the server's
/// default `max_connections` is 100); a thousand is beyond what one node can use.
pub const STORAGE_POOL_SIZE_RANGE: RangeInclusive<u64> = 1..=1000;
/// `storage.max_overflow`: the same reasoning as `pool_size`.
pub const STORAGE_MAX_OVERFLOW_RANGE: RangeInclusive<u64> = 0..=1000;
/// `storage.pool_timeout`: an append waits this long for a connection, and an unreachable
/// database is retried this long at start-up; ten minutes of either is an outage.
pub const STORAGE_POOL_TIMEOUT_RANGE: RangeInclusive<Duration> = up_to(Duration::from_secs(600));
/// `storage.pool_recycle`: connections are replaced at least daily, so a failover or a
/// server's per-connection memory growth is picked up.
pub const STORAGE_POOL_RECYCLE_RANGE: RangeInclusive<Duration> =
    up_to(Duration::from_secs(24 * 3600));

/// Which database holds the ledger.
#[derive(Clone, PartialEq, Eq)]
pub enum StorageBackend {
    /// Embedded SQLite (`type: sqlite` or `embedded`), the default.
    Sqlite { path: PathBuf },
    /// PostgreSQL (`type: postgresql` or `postgres`).
    Postgres {
        /// `postgres://` or `postgresql://` URL. May hold a password: `Debug` redacts it.
        connection_string: String,
    },
}

impl fmt::Debug for StorageBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageBackend::Sqlite { path } => {
                f.debug_struct("Sqlite").field("path", path).finish()
            }
            StorageBackend::Postgres { connection_string } => f
                .debug_struct("Postgres")
                .field("connection_string", &redact_url(connection_string))
                .finish(),
        }
    }
}

/// The URL with any password replaced by `***`, for logs and `Debug`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// `storage:` — the ledger database and its connection pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageConfig {
    pub backend: StorageBackend,
    pub pool_size: u32,
    pub max_overflow: u32,
    pub pool_timeout: Duration,
    pub pool_recycle: Duration,
}

pub(super) fn build_storage(ck: &mut Checker<'_, '_>, file: StorageFile) -> StorageConfig {
    let StorageFile {
        kind,
        path,
        connection_string,
        pool_size,
        max_overflow,
        pool_timeout,
        pool_recycle,
    } = file;
    #[derive(Clone, Copy)]
    enum Kind {
        Sqlite,
        Postgres,
    }
    let kind = ck.choice(
        "storage.type",
        &kind,
        &[
            ("sqlite", Kind::Sqlite),
            ("embedded", Kind::Sqlite),
            ("postgresql", Kind::Postgres),
            ("postgres", Kind::Postgres),
        ],
        Kind::Sqlite,
    );
    let backend = match kind {
        Kind::Sqlite => StorageBackend::Sqlite {
            path: ck.path("storage.path", &path),
        },
        Kind::Postgres => {
            let connection_string = connection_string.unwrap_or_default().trim().to_owned();
            if connection_string.is_empty() {
                let key = if ck.cx.locations.contains_key("storage.connection_string") {
                    "storage.connection_string"
                } else {
                    "storage.type"
                };
                let message = if key == "storage.type" {
                    "postgresql needs storage.connection_string (such as \"${DATABASE_URL}\")"
                } else {
                    "must not be empty when storage.type is postgresql"
                };
                ck.error(key, message);
            } else if !(connection_string.starts_with("postgres://")
                || connection_string.starts_with("postgresql://"))
            {
                let scheme = connection_string
                    .split_once("://")
                    .map_or("no scheme", |(scheme, _)| scheme);
                ck.error(
                    "storage.connection_string",
                    format!("must start with postgres:// or postgresql://, found {scheme:?}"),
                );
            }
            StorageBackend::Postgres { connection_string }
        }
    };
    StorageConfig {
        backend,
        pool_size: ck.int("storage.pool_size", pool_size, STORAGE_POOL_SIZE_RANGE),
        max_overflow: ck.int(
            "storage.max_overflow",
            max_overflow,
            STORAGE_MAX_OVERFLOW_RANGE,
        ),
        pool_timeout: ck.seconds(
            "storage.pool_timeout",
            pool_timeout,
            STORAGE_POOL_TIMEOUT_RANGE,
        ),
        pool_recycle: ck.seconds(
            "storage.pool_recycle",
            pool_recycle,
            STORAGE_POOL_RECYCLE_RANGE,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction() {
        assert_eq!(
            redact_url("postgresql://aegis:s3cret@db:5432/aegis?sslmode=require"),
            "postgresql://aegis:***@db:5432/aegis?sslmode=require"
        );
        assert_eq!(redact_url("postgres://db/aegis"), "postgres://db/aegis");
    }
}
