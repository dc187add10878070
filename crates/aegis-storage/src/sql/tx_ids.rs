//! SQLite's transaction-id index as the store keeps and asks it ([`crate::id_index`] has
//! the index itself): the ids of each commit put in the map of the tail, merges into
//! `transaction_ids`, and lookups by id that race those merges safely.

use std::collections::HashMap;
use std::time::Instant;

use aegis_types::Hash;
use sqlx::sqlite::{SqliteConnection, SqlitePool};

use crate::StorageError;
use crate::id_index::{self, LOOKUP_ATTEMPTS, Location};
use crate::traits::StoredTransaction;

use super::append::PreparedBlock;
use super::rows::{RowExt, stored_tx};
use super::tx_insert::tx_rows;
use super::{Pool, SqlStore, to_i64};

/// Ids looked up by one query of [`crate::Ledger::committed_locations`], at most (each is
/// bound twice on SQLite, well within its 32,766 parameters).
pub(super) const LOOKUP_CHUNK_IDS: usize = 500;

/// `(id, block_height, tx_index)` of a location query.
pub(super) fn location_from_row(row: &impl RowExt) -> Result<(Hash, Location), StorageError> {
    let bad = |what: String| StorageError::corrupt(None, format!("transaction location: {what}"));
    let id = row.bytes_at("id").map_err(|e| bad(e.to_string()))?;
    let id = Hash(
        id.try_into()
            .map_err(|_| bad("an id that is not 32 bytes".into()))?,
    );
    let height = row.i64_at("block_height").map_err(|e| bad(e.to_string()))?;
    let index = row.i32_at("tx_index").map_err(|e| bad(e.to_string()))?;
    let height = u64::try_from(height).map_err(|_| bad(format!("height {height}")))?;
    let index = u32::try_from(index).map_err(|_| bad(format!("index {index}")))?;
    Ok((id, (height, index)))
}

/// Keeps the earlier of two locations of one id (a transaction committed twice).
pub(super) fn keep_earliest(found: &mut HashMap<Hash, Location>, id: Hash, location: Location) {
    found
        .entry(id)
        .and_modify(|known| *known = (*known).min(location))
        .or_insert(location);
}

impl SqlStore {
    /// SQLite, after a commit: puts the committed blocks' ids in the map of the tail and
    /// merges the tail into `transaction_ids` once it holds [`crate::ID_INDEX_MERGE_ROWS`]
    /// rows. A failed merge is logged and retried with a growing delay; the blocks are
    /// stored either way and stay findable through the map (until the tail outgrows its
    /// bound: see [`SqlStore::append_prepared`]).
    ///
    /// Returns false if a merge failed (the caller drops the connection).
    pub(super) async fn track_ids(
        &self,
        conn: &mut SqliteConnection,
        blocks: &[PreparedBlock<'_>],
    ) -> bool {
        let (Some(first), Some(last)) = (blocks.first(), blocks.last()) else {
            return true;
        };
        let from = first.height as u64 - 1;
        if self.recent.loaded_through() < from
            && let Pool::Sqlite(pool) = &self.pool
            && let Err(error) = id_index::catch_up(pool, &self.recent).await
        {
            // An append whose outcome was unknown left blocks the map has not seen; the
            // next lookup loads them.
            aegis_telemetry::warn!(%error, "reading back the ids of recent blocks failed");
        }
        let rows =
            tx_rows(blocks).map(|(height, index, _, id)| (*id, (height as u64, index as u32)));
        self.recent.insert(rows, from, last.height as u64);
        if self.recent.merge_due(Instant::now())
            && let Err(error) = self.merge_tail(conn).await
        {
            let retry = self.recent.merge_failed(&error);
            aegis_telemetry::warn!(%error, pending = self.recent.tail_rows(), retry_in_s = retry.as_secs(), "merging recent transaction ids into the id index failed; will retry");
            return false;
        }
        true
    }

    /// Merges the tail into the id index and lets the map forget it.
    pub(super) async fn merge_tail(&self, conn: &mut SqliteConnection) -> Result<(), StorageError> {
        let started = Instant::now();
        let merged = id_index::merge(conn, self.recent.merge_rows()).await?;
        self.recent.prune(merged.through);
        aegis_telemetry::debug!(
            through = merged.through,
            moved = merged.moved,
            cascaded = ?merged.cascaded,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "merged recent transaction ids into the id index"
        );
        Ok(())
    }

    /// SQLite lookup by id: the merged index (`transaction_ids`), then the map of the tail
    /// ([`crate::id_index`]). Retries when a merge moved ids out of the map under it.
    pub(super) async fn sqlite_transaction(
        &self,
        pool: &SqlitePool,
        id: &Hash,
    ) -> Result<Option<StoredTransaction>, StorageError> {
        const CONTEXT: &str = "read transaction";
        for _ in 0..LOOKUP_ATTEMPTS {
            let generation = self.recent.generation();
            let indexed = sqlx::query(concat!(
                "SELECT t.block_height, t.tx_index, t.id, t.version, t.chain_id, t.sender, t.nonce, t.payload, t.signature \
                 FROM transaction_ids i CROSS JOIN transactions t \
                 ON t.block_height = i.block_height AND t.tx_index = i.tx_index \
                 WHERE i.level IN ",
                id_index::id_levels!(),
                " AND i.id_prefix = substr($1, 1, 8) AND t.id = $1 \
                 ORDER BY i.block_height, i.tx_index LIMIT 1",
            ))
            .bind(id.0.as_slice())
            .fetch_optional(pool)
            .await
            .map_err(StorageError::db(CONTEXT))?;
            if let Some(row) = indexed {
                return stored_tx(&row).map(Some);
            }
            id_index::catch_up(pool, &self.recent).await?;
            let Ok(located) = self.recent.get(id, generation) else {
                continue;
            };
            let Some((height, index)) = located else {
                return Ok(None);
            };
            let row = sqlx::query(concat!(
                "SELECT ",
                tx_columns!(),
                " FROM transactions WHERE block_height = $1 AND tx_index = $2 AND id = $3"
            ))
            .bind(to_i64(height))
            .bind(i64::from(index))
            .bind(id.0.as_slice())
            .fetch_optional(pool)
            .await
            .map_err(StorageError::db(CONTEXT))?;
            return row.as_ref().map(stored_tx).transpose();
        }
        Err(StorageError::IdIndex(format!(
            "looking up transaction {id} was overtaken by index merges {LOOKUP_ATTEMPTS} times in a row; try again"
        )))
    }

    /// SQLite lookup of many ids: one query of the merged index per
    /// [`LOOKUP_CHUNK_IDS`] ids, then the map of the tail for those not found, with the
    /// same retry as [`SqlStore::sqlite_transaction`] when a merge overtakes it.
    pub(super) async fn sqlite_committed_locations(
        &self,
        pool: &SqlitePool,
        ids: &[Hash],
    ) -> Result<Vec<Option<Location>>, StorageError> {
        const CONTEXT: &str = "read transaction locations";
        'attempt: for _ in 0..LOOKUP_ATTEMPTS {
            let generation = self.recent.generation();
            let mut found = HashMap::with_capacity(ids.len());
            for chunk in ids.chunks(LOOKUP_CHUNK_IDS) {
                let numbered = |form: &dyn Fn(usize) -> String| {
                    (1..=chunk.len()).map(form).collect::<Vec<_>>().join(", ")
                };
                let sql = format!(
                    "SELECT t.id, t.block_height, t.tx_index \
                     FROM transaction_ids i CROSS JOIN transactions t \
                     ON t.block_height = i.block_height AND t.tx_index = i.tx_index \
                     WHERE i.level IN {} AND i.id_prefix IN ({}) AND t.id IN ({})",
                    id_index::id_levels!(),
                    numbered(&|n| format!("substr(${n}, 1, 8)")),
                    numbered(&|n| format!("${n}")),
                );
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for id in chunk {
                    query = query.bind(id.0.as_slice());
                }
                let rows = query
                    .fetch_all(pool)
                    .await
                    .map_err(StorageError::db(CONTEXT))?;
                for row in rows {
                    let (id, location) = location_from_row(&row)?;
                    keep_earliest(&mut found, id, location);
                }
            }
            if found.len() < ids.len() {
                id_index::catch_up(pool, &self.recent).await?;
                for id in ids {
                    if found.contains_key(id) {
                        continue;
                    }
                    match self.recent.get(id, generation) {
                        Ok(Some(location)) => {
                            found.insert(*id, location);
                        }
                        Ok(None) => {}
                        Err(_) => continue 'attempt,
                    }
                }
            }
            return Ok(ids.iter().map(|id| found.get(id).copied()).collect());
        }
        Err(StorageError::IdIndex(format!(
            "looking up {} transactions was overtaken by index merges {LOOKUP_ATTEMPTS} times in a row; try again",
            ids.len()
        )))
    }

    /// SQLite: merge the ids of recent blocks into the id index once `rows` of them are
    /// waiting (default [`crate::ID_INDEX_MERGE_ROWS`]). Smaller values bound the memory
    /// tighter and cost more; tests use them to exercise merges on short chains.
    pub fn set_id_index_merge_rows(&self, rows: usize) {
        self.recent.set_merge_rows(rows);
    }

    /// SQLite: why appends are refused, while the transaction-id index cannot take the ids
    /// of new blocks (merges keep failing and the tail is at its bound); `None` otherwise.
    /// The node's health probe reports it.
    pub fn id_index_fault(&self) -> Option<String> {
        self.recent.fault()
    }

    /// `aegis verify`'s check of SQLite's id index (nothing to check on PostgreSQL): the first
    /// height where `transaction_ids` disagrees with `transactions`, and how.
    pub async fn check_id_index(&self) -> Result<Option<(u64, String)>, StorageError> {
        match &self.pool {
            Pool::Sqlite(pool) => id_index::check(pool).await,
            Pool::Postgres(_) => Ok(None),
        }
    }
}
