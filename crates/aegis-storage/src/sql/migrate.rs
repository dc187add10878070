//! The schema's versioned migrations applied to a live database, and the check that a
//! database's schema is exactly this binary's.

use sqlx::Row;

use crate::StorageError;
use crate::schema::{
    CREATE_MIGRATIONS_TABLE, MIGRATIONS, MigrationReport, PG_MIGRATION_LOCK, SCHEMA_VERSION,
};

use super::{Pool, SqlStore, now_ms};

impl SqlStore {
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
                aegis_telemetry::info!(from, to = SCHEMA_VERSION, backend = self.backend_kind(), "ledger schema migrated");
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
}

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
