//! Where the ledger lives and how connections are pooled.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Which database holds the ledger.
#[derive(Clone, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite, the default: `$AEGIS_HOME/data/blockchain.db`.
    Sqlite { path: PathBuf },
    /// PostgreSQL (`storage.type: postgresql`), from `connection_string: "${DATABASE_URL}"`.
    Postgres { url: String },
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::Sqlite { path } => f.debug_struct("Sqlite").field("path", path).finish(),
            Backend::Postgres { url } => f
                .debug_struct("Postgres")
                .field("url", &redact_url(url))
                .finish(),
        }
    }
}

impl Backend {
    /// Short name for logs and reports: `sqlite` or `postgresql`.
    pub fn kind(&self) -> &'static str {
        match self {
            Backend::Sqlite { .. } => "sqlite",
            Backend::Postgres { .. } => "postgresql",
        }
    }

    /// Where the data is, with any password hidden.
    pub fn location(&self) -> String {
        match self {
            Backend::Sqlite { path } => path.display().to_string(),
            Backend::Postgres { url } => redact_url(url),
        }
    }
}

/// The `storage:` section as the storage layer needs it. The binary builds it from the node
/// configuration; the field names follow the guide's keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    pub backend: Backend,
    /// Connections kept open (`pool_size`, default 10).
    pub pool_size: u32,
    /// Extra connections opened under load (`max_overflow`, default 20). The pool's maximum
    /// is `pool_size + max_overflow`.
    pub max_overflow: u32,
    /// How long to wait for a connection, and how long to keep retrying an unreachable
    /// database at start-up (`pool_timeout`, default 30 s).
    pub pool_timeout: Duration,
    /// Longest life of one connection before it is replaced (`pool_recycle`, default 3600 s).
    pub pool_recycle: Duration,
}

impl StoreConfig {
    /// The guide's defaults for the given backend.
    pub fn new(backend: Backend) -> StoreConfig {
        StoreConfig {
            backend,
            pool_size: 10,
            max_overflow: 20,
            pool_timeout: Duration::from_secs(30),
            pool_recycle: Duration::from_secs(3600),
        }
    }

    /// Embedded SQLite at `path` with default pool settings.
    pub fn sqlite(path: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig::new(Backend::Sqlite { path: path.into() })
    }

    /// PostgreSQL at `url` with default pool settings.
    pub fn postgres(url: impl Into<String>) -> StoreConfig {
        StoreConfig::new(Backend::Postgres { url: url.into() })
    }

    /// Most connections the pool may hold: `pool_size + max_overflow`, at least 1.
    pub fn max_connections(&self) -> u32 {
        self.pool_size.saturating_add(self.max_overflow).max(1)
    }
}

/// A connection string with its password replaced by `***`, for messages and logs.
///
/// Handles URLs (`postgres://user:secret@host/db`, `?password=secret`) and key/value strings
/// (`host=h password=secret`).
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_owned();
    // userinfo password: scheme://user:PASSWORD@host
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..]
            .find(['/', '?'])
            .map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = &out[rest_start..rest_start + at];
            if let Some(colon) = userinfo.find(':') {
                let start = rest_start + colon + 1;
                let end = rest_start + at;
                out.replace_range(start..end, "***");
            }
        }
    }
    // password=... as a query parameter or a key/value pair.
    let lower = out.to_ascii_lowercase();
    if let Some(pos) = lower.find("password=") {
        let start = pos + "password=".len();
        let end = out[start..]
            .find(['&', ' '])
            .map_or(out.len(), |i| start + i);
        out.replace_range(start..end, "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact_url("postgres://aegis:s3cr%40t@db.example:5432/aegis"),
            "postgres://aegis:***@db.example:5432/aegis"
        );
        assert_eq!(
            redact_url("postgresql://aegis@localhost/aegis?password=abc&sslmode=require"),
            "postgresql://aegis@localhost/aegis?password=***&sslmode=require"
        );
        assert_eq!(
            redact_url("host=/tmp password=xyz dbname=a"),
            "host=/tmp password=*** dbname=a"
        );
        assert_eq!(
            redact_url("postgres://localhost/aegis"),
            "postgres://localhost/aegis"
        );
    }

    #[test]
    fn pool_maximum_is_size_plus_overflow() {
        let mut config = StoreConfig::postgres("postgres://localhost/aegis");
        assert_eq!(config.max_connections(), 30);
        config.pool_size = 0;
        config.max_overflow = 0;
        assert_eq!(config.max_connections(), 1);
    }
}
