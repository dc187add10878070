//! What the operator tools do to a database as a whole: create the PostgreSQL database
//! (`aegis db init`, the guide's `createdb aegis`), take a consistent copy of a live SQLite
//! ledger (`VACUUM INTO`) and hold a PostgreSQL snapshot while `pg_dump` exports it
//! (`aegis backup`).

use std::path::Path;

use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, Row};

use super::Pool;
use super::rows::tip_from_row;
use crate::config::redact_url;
use crate::{StorageError, Tip};

/// Whether [`create_postgres_database`] had to create it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatabaseCreated {
    Created,
    AlreadyThere,
}

/// Maintenance databases tried, in order, to run `CREATE DATABASE` from (as `createdb` does).
const MAINTENANCE_DATABASES: [&str; 2] = ["postgres", "template1"];

/// The database named by `url`, and its name.
fn parse_url(url: &str) -> Result<(PgConnectOptions, String), StorageError> {
    let shown = redact_url(url);
    let options: PgConnectOptions = url.parse().map_err(|error| {
        StorageError::Config(format!("connection_string {shown} is not valid: {error}"))
    })?;
    let name = options
        .get_database()
        .map(str::to_owned)
        // PostgreSQL's default: the database named after the user.
        .unwrap_or_else(|| options.get_username().to_owned());
    if name.is_empty() {
        return Err(StorageError::Config(format!(
            "connection_string {shown} names no database"
        )));
    }
    Ok((options.disable_statement_logging(), name))
}

/// Connects to a maintenance database of the server at `url`.
async fn maintenance(url: &str) -> Result<sqlx::PgConnection, StorageError> {
    let (options, _) = parse_url(url)?;
    let mut last = None;
    for database in MAINTENANCE_DATABASES {
        match options.clone().database(database).connect().await {
            Ok(conn) => return Ok(conn),
            Err(error) => last = Some(error),
        }
    }
    Err(StorageError::Unreachable {
        url: redact_url(url),
        waited_secs: 0,
        reason: last.map_or_else(String::new, |error| error.to_string()),
    })
}

/// A PostgreSQL identifier, quoted.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Creates the database `url` names unless it exists (the guide's `createdb aegis`). The
/// role needs `CREATEDB` only when the database is absent.
pub async fn create_postgres_database(url: &str) -> Result<DatabaseCreated, StorageError> {
    let (_, name) = parse_url(url)?;
    let mut conn = maintenance(url).await?;
    let exists = sqlx::query("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_optional(&mut conn)
        .await
        .map_err(StorageError::db("look the database up in pg_database"))?
        .is_some();
    let outcome = if exists {
        DatabaseCreated::AlreadyThere
    } else {
        let sql = format!("CREATE DATABASE {}", quote_ident(&name));
        match sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
        {
            Ok(_) => DatabaseCreated::Created,
            // Created meanwhile by someone else: what was asked for is there.
            Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some("42P04") => {
                DatabaseCreated::AlreadyThere
            }
            Err(error) => {
                let _ = conn.close().await;
                return Err(StorageError::Database {
                    context: "create the database",
                    error,
                });
            }
        }
    };
    let _ = conn.close().await;
    Ok(outcome)
}

/// Drops the database `url` names if it exists (`aegis restore` removes its scratch
/// database with this). Refused for the maintenance databases.
pub async fn drop_postgres_database(url: &str) -> Result<(), StorageError> {
    let (_, name) = parse_url(url)?;
    if MAINTENANCE_DATABASES.contains(&name.as_str()) {
        return Err(StorageError::Config(format!(
            "refusing to drop the maintenance database {name}"
        )));
    }
    let mut conn = maintenance(url).await?;
    let sql = format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        quote_ident(&name)
    );
    let dropped = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await
        .map_err(StorageError::db("drop the database"));
    let _ = conn.close().await;
    dropped.map(|_| ())
}

/// Writes a consistent copy of the SQLite ledger at `source` to `destination` (which must
/// not exist) with `VACUUM INTO`, while a node may be committing: the copy is one read
/// transaction's snapshot, compacted. Returns the copy's tip, read from the copy itself.
pub async fn sqlite_copy(source: &Path, destination: &Path) -> Result<Option<Tip>, StorageError> {
    let options = SqliteConnectOptions::new()
        .filename(source)
        .read_only(true)
        .busy_timeout(std::time::Duration::from_secs(30))
        .disable_statement_logging();
    let mut conn = options
        .connect()
        .await
        .map_err(StorageError::db("open the ledger to copy it"))?;
    let target = destination.to_str().ok_or_else(|| {
        StorageError::Config(format!(
            "backup path {} is not UTF-8",
            destination.display()
        ))
    })?;
    let copied = sqlx::query("VACUUM INTO $1")
        .bind(target)
        .execute(&mut conn)
        .await
        .map_err(StorageError::db("copy the ledger (VACUUM INTO)"));
    let _ = conn.close().await;
    copied?;
    let options = SqliteConnectOptions::new()
        .filename(destination)
        .read_only(true)
        .disable_statement_logging();
    let mut copy = options
        .connect()
        .await
        .map_err(StorageError::db("open the copy"))?;
    let row = sqlx::query("SELECT height, hash FROM blocks ORDER BY height DESC LIMIT 1")
        .fetch_optional(&mut copy)
        .await
        .map_err(StorageError::db("read the copy's chain tip"));
    let _ = copy.close().await;
    match row? {
        Some(row) => Ok(Some(tip_from_row(&row)?)),
        None => Ok(None),
    }
}

/// A PostgreSQL snapshot held open for `pg_dump --snapshot`: the tip it sees and its id.
#[derive(Debug)]
pub struct PgSnapshot {
    conn: sqlx::PgConnection,
    /// The id to give `pg_dump --snapshot=`.
    pub id: String,
    /// The chain's tip in that snapshot.
    pub tip: Option<Tip>,
}

impl PgSnapshot {
    /// Opens a repeatable-read transaction on `url`, exports its snapshot and reads the tip
    /// in it: a `pg_dump --snapshot` of the id sees exactly that chain.
    pub async fn begin(url: &str) -> Result<PgSnapshot, StorageError> {
        let (options, _) = parse_url(url)?;
        let mut conn = options
            .connect()
            .await
            .map_err(|error| StorageError::Unreachable {
                url: redact_url(url),
                waited_secs: 0,
                reason: error.to_string(),
            })?;
        sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut conn)
            .await
            .map_err(StorageError::db("begin the backup's snapshot"))?;
        let id: String = sqlx::query("SELECT pg_export_snapshot()")
            .fetch_one(&mut conn)
            .await
            .and_then(|row| row.try_get(0))
            .map_err(StorageError::db("export the backup's snapshot"))?;
        let row = sqlx::query("SELECT height, hash FROM blocks ORDER BY height DESC LIMIT 1")
            .fetch_optional(&mut conn)
            .await
            .map_err(StorageError::db("read the chain tip"))?;
        let tip = match row {
            Some(row) => Some(tip_from_row(&row)?),
            None => None,
        };
        Ok(PgSnapshot { conn, id, tip })
    }

    /// Ends the transaction (the snapshot is released).
    pub async fn finish(mut self) {
        let _ = sqlx::raw_sql("COMMIT").execute(&mut self.conn).await;
        let _ = self.conn.close().await;
    }
}

/// Facts about the ledger's database for `aegis diagnose`, read-only: the server's version
/// and connections (PostgreSQL), the schema version, the chain's height and tip. Waits at
/// most `config.pool_timeout` for the database.
pub async fn database_facts(
    config: &crate::StoreConfig,
) -> Result<Vec<(String, String)>, StorageError> {
    use crate::Ledger as _;
    let mut config = config.clone();
    config.pool_size = 1;
    config.max_overflow = 0;
    config.pool_timeout = config.pool_timeout.min(std::time::Duration::from_secs(5));
    let store = super::SqlStore::open_read_only(&config).await?;
    let mut facts = Vec::new();
    let version_sql = match &store.pool {
        super::Pool::Sqlite(_) => "SELECT 'SQLite ' || sqlite_version()",
        super::Pool::Postgres(_) => "SELECT version()",
    };
    let version: Result<String, _> = on_pool!(store, pool => sqlx::query(version_sql)
        .fetch_one(pool)
        .await
        .and_then(|row| row.try_get(0)));
    facts.push((
        "database version".to_owned(),
        version.unwrap_or_else(|error| format!("unknown ({error})")),
    ));
    if let super::Pool::Postgres(pool) = &store.pool {
        let connections: Result<i64, _> = sqlx::query("SELECT count(*) FROM pg_stat_activity")
            .fetch_one(pool)
            .await
            .and_then(|row| row.try_get(0));
        facts.push((
            "active connections (pg_stat_activity)".to_owned(),
            connections.map_or_else(|error| format!("unknown ({error})"), |n| n.to_string()),
        ));
    }
    let schema = store.check_schema().await;
    facts.push((
        "schema version".to_owned(),
        schema.map_or_else(|error| format!("unknown ({error})"), |v| v.to_string()),
    ));
    let tip = store.tip().await;
    store.close().await;
    match tip? {
        Some(tip) => {
            facts.push(("chain height".to_owned(), tip.height.to_string()));
            facts.push(("chain tip hash".to_owned(), tip.hash.to_hex()));
        }
        None => facts.push(("chain height".to_owned(), "0 (no blocks)".to_owned())),
    }
    Ok(facts)
}
