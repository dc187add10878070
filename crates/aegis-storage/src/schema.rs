//! The schema and its versioned migrations, embedded in the binary.
//!
//! sqlx's own migrator needs its `macros` feature to embed files and keeps a different
//! bookkeeping table per backend, so AEGIS keeps its own: `aegis_schema_migrations`
//! (version, name, checksum, applied_at_ms), identical on SQLite and PostgreSQL. Each
//! migration has one SQL file per backend (`migrations/sqlite/`, `migrations/postgres/`)
//! creating the same tables and columns; only the types' spelling differs (BLOB/BYTEA).

use sha2::{Digest, Sha256};

/// One schema step.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

impl Migration {
    /// SHA-256 of the backend's SQL, hex: recorded when applied and checked at every open.
    pub fn checksum(&self, postgres: bool) -> String {
        let sql = if postgres { self.postgres } else { self.sqlite };
        hex::encode(Sha256::digest(sql.as_bytes()))
    }
}

/// Every migration, in order. Append only: never edit one that has shipped.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "ledger",
        sqlite: include_str!("../migrations/sqlite/0001_ledger.sql"),
        postgres: include_str!("../migrations/postgres/0001_ledger.sql"),
    },
    Migration {
        version: 2,
        name: "deferred_id_index",
        sqlite: include_str!("../migrations/sqlite/0002_deferred_id_index.sql"),
        postgres: include_str!("../migrations/postgres/0002_deferred_id_index.sql"),
    },
    Migration {
        version: 3,
        name: "consensus_runs",
        sqlite: include_str!("../migrations/sqlite/0003_consensus_runs.sql"),
        postgres: include_str!("../migrations/postgres/0003_consensus_runs.sql"),
    },
];

/// The schema version this binary writes and reads.
pub const SCHEMA_VERSION: i64 = 3;

/// Tables only SQLite has: its transaction-id index kept as a table filled in bulk
/// (`crate::id_index`). Every other table is on both backends.
pub const SQLITE_ONLY_TABLES: &[&str] = &[
    "transaction_ids",
    "transaction_ids_state",
    "transaction_id_levels",
];

/// The bookkeeping table, the same on both backends.
pub(crate) const CREATE_MIGRATIONS_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS aegis_schema_migrations (
    version        BIGINT NOT NULL PRIMARY KEY,
    name           TEXT   NOT NULL,
    checksum       TEXT   NOT NULL,
    applied_at_ms  BIGINT NOT NULL
)";

/// Key of the PostgreSQL advisory lock that serialises concurrent `migrate` runs
/// (ASCII "AEGISMIG").
pub(crate) const PG_MIGRATION_LOCK: i64 = 0x4145_4749_534d_4947;

/// What `migrate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Schema version before (0 for a new database).
    pub from: i64,
    /// Schema version now.
    pub to: i64,
    /// Migrations applied by this run, as (version, name).
    pub applied: Vec<(i64, &'static str)>,
}

impl std::fmt::Display for MigrationReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.applied.is_empty() {
            write!(f, "Schema is up to date (version {})", self.to)
        } else {
            let names: Vec<String> = self
                .applied
                .iter()
                .map(|(v, n)| format!("{v:04}_{n}"))
                .collect();
            write!(
                f,
                "Migrated schema from version {} to {} ({})",
                self.from,
                self.to,
                names.join(", ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order_and_end_at_schema_version() {
        for (i, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, i as i64 + 1);
        }
        assert_eq!(MIGRATIONS.last().map(|m| m.version), Some(SCHEMA_VERSION));
    }

    #[test]
    fn both_backends_create_the_same_tables() {
        for migration in MIGRATIONS {
            let tables = |sql: &str| -> Vec<String> {
                sql.lines()
                    .filter_map(|l| l.trim().strip_prefix("CREATE TABLE "))
                    .map(|rest| rest.split_whitespace().next().unwrap_or("").to_owned())
                    .collect()
            };
            let sqlite: Vec<String> = tables(migration.sqlite)
                .into_iter()
                .filter(|t| !SQLITE_ONLY_TABLES.contains(&t.as_str()))
                .collect();
            assert_eq!(sqlite, tables(migration.postgres));
        }
    }
}
