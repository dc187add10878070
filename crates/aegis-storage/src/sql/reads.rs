//! Reads of the ledger: the [`Ledger`] trait on [`SqlStore`] (its appends go through
//! [`super::writer`], its group commit through [`super::group_commit`]), range reads and
//! the row counts the guide prints.

use std::borrow::Cow;

use aegis_types::{Block, BlockHeader, CommitCertificate, Hash};
use sqlx::Row;

use crate::StorageError;
use crate::traits::{
    BlockSink, Ledger, MAX_RANGE_BLOCKS, StoreFuture, StoredBlock, StoredTransaction, Tip,
};

use super::append::{prepare, prepare_batch};
use super::rows::{assemble, block_from_row, stored_tx, tip_from_row, tx_from_row};
use super::{Pool, SqlStore, to_i64};

impl SqlStore {
    /// Row counts of `nodes`, `blocks` and `transactions`, as the guide's check prints them.
    pub async fn table_counts(&self) -> Result<(u64, u64, u64), StorageError> {
        const CONTEXT: &str = "count rows";
        on_pool!(self, pool => {
            let mut counts = [0u64; 3];
            for (slot, sql) in counts.iter_mut().zip([
                "SELECT COUNT(*) FROM nodes",
                "SELECT COUNT(*) FROM blocks",
                "SELECT COUNT(*) FROM transactions",
            ]) {
                let n: i64 = sqlx::query(sql)
                    .fetch_one(pool)
                    .await
                    .and_then(|row| row.try_get(0))
                    .map_err(StorageError::db(CONTEXT))?;
                *slot = u64::try_from(n).unwrap_or(0);
            }
            Ok((counts[0], counts[1], counts[2]))
        })
    }

    async fn blocks_in(&self, from: u64, to: u64) -> Result<Vec<StoredBlock>, StorageError> {
        const CONTEXT: &str = "read blocks";
        if from > to {
            return Ok(Vec::new());
        }
        let to = to.min(from.saturating_add(MAX_RANGE_BLOCKS - 1));
        let (from_i, to_i) = (to_i64(from), to_i64(to));
        on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT height, hash, prev_hash, tx_root, proposer, consensus_view, timestamp_ms, tx_count, header, certificate \
                 FROM blocks WHERE height >= $1 AND height <= $2 ORDER BY height",
            )
            .bind(from_i)
            .bind(to_i)
            .fetch_all(pool)
            .await
            .map_err(StorageError::db(CONTEXT))?;
            let mut partial = Vec::with_capacity(rows.len());
            for row in &rows {
                partial.push(block_from_row(row)?);
            }
            if partial.is_empty() {
                return Ok(Vec::new());
            }
            let tx_rows = sqlx::query(concat!(
                "SELECT ",
                tx_columns!(),
                " FROM transactions WHERE block_height >= $1 AND block_height <= $2 ORDER BY block_height, tx_index",
            ))
            .bind(from_i)
            .bind(to_i)
            .fetch_all(pool)
            .await
            .map_err(StorageError::db(CONTEXT))?;
            let mut txs = Vec::with_capacity(tx_rows.len());
            for row in &tx_rows {
                txs.push(tx_from_row(row)?);
            }
            assemble(partial, txs)
        })
    }
}

impl Ledger for SqlStore {
    fn append_block<'a>(
        &'a self,
        block: &'a Block,
        certificate: &'a CommitCertificate,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let prepared = prepare(Cow::Borrowed(block), certificate)?;
            self.append_prepared(std::slice::from_ref(&prepared)).await
        })
    }

    fn append_blocks<'a>(
        &'a self,
        blocks: &'a [(Block, CommitCertificate)],
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let prepared = prepare_batch(blocks)?;
            self.append_prepared(&prepared).await
        })
    }

    fn height(&self) -> StoreFuture<'_, u64> {
        Box::pin(async move { Ok(self.tip().await?.map_or(0, |tip| tip.height)) })
    }

    fn tip(&self) -> StoreFuture<'_, Option<Tip>> {
        Box::pin(async move {
            on_pool!(self, pool => {
                let row = sqlx::query("SELECT height, hash FROM blocks ORDER BY height DESC LIMIT 1")
                    .fetch_optional(pool)
                    .await
                    .map_err(StorageError::db("read the chain tip"))?;
                match row {
                    Some(row) => Ok(Some(tip_from_row(&row)?)),
                    None => Ok(None),
                }
            })
        })
    }

    fn block_by_height(&self, height: u64) -> StoreFuture<'_, Option<StoredBlock>> {
        Box::pin(async move {
            if height == 0 || height > i64::MAX as u64 {
                return Ok(None);
            }
            Ok(self.blocks_in(height, height).await?.into_iter().next())
        })
    }

    fn block_by_hash<'a>(&'a self, hash: &'a Hash) -> StoreFuture<'a, Option<StoredBlock>> {
        Box::pin(async move {
            let height: Option<i64> = on_pool!(self, pool => {
                sqlx::query("SELECT height FROM blocks WHERE hash = $1")
                    .bind(hash.to_hex())
                    .fetch_optional(pool)
                    .await
                    .and_then(|row| row.map(|r| r.try_get::<i64, _>(0)).transpose())
                    .map_err(StorageError::db("find block by hash"))?
            });
            match height {
                Some(height) => self.block_by_height(height as u64).await,
                None => Ok(None),
            }
        })
    }

    fn header(&self, height: u64) -> StoreFuture<'_, Option<(BlockHeader, CommitCertificate)>> {
        Box::pin(async move {
            if height == 0 || height > i64::MAX as u64 {
                return Ok(None);
            }
            on_pool!(self, pool => {
                let row = sqlx::query(
                    "SELECT height, hash, prev_hash, tx_root, proposer, consensus_view, timestamp_ms, tx_count, header, certificate \
                     FROM blocks WHERE height = $1",
                )
                .bind(height as i64)
                .fetch_optional(pool)
                .await
                .map_err(StorageError::db("read block header"))?;
                match row {
                    Some(row) => {
                        let partial = block_from_row(&row)?;
                        Ok(Some((partial.header, partial.certificate)))
                    }
                    None => Ok(None),
                }
            })
        })
    }

    fn blocks(&self, from: u64, to: u64) -> StoreFuture<'_, Vec<StoredBlock>> {
        Box::pin(async move {
            let from = from.max(1);
            if from > i64::MAX as u64 {
                return Ok(Vec::new());
            }
            self.blocks_in(from, to.min(i64::MAX as u64)).await
        })
    }

    fn transaction<'a>(&'a self, id: &'a Hash) -> StoreFuture<'a, Option<StoredTransaction>> {
        Box::pin(async move {
            match &self.pool {
                Pool::Sqlite(pool) => self.sqlite_transaction(pool, id).await,
                Pool::Postgres(pool) => {
                    // Through the hash index on the id.
                    let row = sqlx::query(concat!(
                        "SELECT ",
                        tx_columns!(),
                        " FROM transactions WHERE id = $1 ORDER BY block_height, tx_index LIMIT 1"
                    ))
                    .bind(id.0.as_slice())
                    .fetch_optional(pool)
                    .await
                    .map_err(StorageError::db("read transaction"))?;
                    row.as_ref().map(stored_tx).transpose()
                }
            }
        })
    }

    fn committed_locations<'a>(
        &'a self,
        ids: &'a [Hash],
    ) -> StoreFuture<'a, Vec<Option<(u64, u32)>>> {
        Box::pin(async move {
            match &self.pool {
                Pool::Sqlite(pool) => self.sqlite_committed_locations(pool, ids).await,
                Pool::Postgres(pool) => {
                    let mut found = std::collections::HashMap::with_capacity(ids.len());
                    for chunk in ids.chunks(super::tx_ids::LOOKUP_CHUNK_IDS) {
                        let keys: Vec<&[u8]> = chunk.iter().map(|id| id.0.as_slice()).collect();
                        // Through the hash index on the id, one probe per id.
                        let rows = sqlx::query(
                            "SELECT id, block_height, tx_index FROM transactions WHERE id = ANY($1)",
                        )
                        .bind(keys)
                        .fetch_all(pool)
                        .await
                        .map_err(StorageError::db("read transaction locations"))?;
                        for row in rows {
                            let (id, location) = super::tx_ids::location_from_row(&row)?;
                            super::tx_ids::keep_earliest(&mut found, id, location);
                        }
                    }
                    Ok(ids.iter().map(|id| found.get(id).copied()).collect())
                }
            }
        })
    }

    fn group_commit(&self, max_blocks: usize) -> Result<Box<dyn BlockSink>, StorageError> {
        self.group_commit_sink(max_blocks)
    }
}
