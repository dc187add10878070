//! The `nodes` table: validators and known peers, with when each was first and last seen.

use aegis_types::PublicKey;
use sqlx::Row;

use crate::StorageError;
use crate::traits::{NodeRecord, NodeRegistry, StoreFuture};

use super::rows::{RowExt, column, key_column};
use super::{Pool, SqlStore};

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

    fn consensus_ran<'a>(&'a self, public_key: &'a PublicKey) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            on_pool!(self, pool => {
                let count: i64 = sqlx::query("SELECT COUNT(*) FROM consensus_runs WHERE public_key = $1")
                    .bind(public_key.to_hex())
                    .fetch_one(pool)
                    .await
                    .and_then(|row| row.try_get(0))
                    .map_err(StorageError::db("read consensus runs"))?;
                Ok(count > 0)
            })
        })
    }

    fn record_consensus_run<'a>(
        &'a self,
        public_key: &'a PublicKey,
        at_ms: u64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            on_pool!(self, pool => {
                sqlx::query(
                    "INSERT INTO consensus_runs (public_key, first_run_ms, last_run_ms) VALUES ($1, $2, $2) \
                     ON CONFLICT (public_key) DO UPDATE SET last_run_ms = excluded.last_run_ms",
                )
                .bind(public_key.to_hex())
                .bind(at_ms as i64)
                .execute(pool)
                .await
                .map_err(StorageError::db("record a consensus run"))?;
                Ok(())
            })
        })
    }
}
