//! How each backend inserts the transaction rows of one commit: multi-row `VALUES` on
//! SQLite, one `UNNEST` of arrays on PostgreSQL, each a single cached prepared statement.

use aegis_types::{Hash, Transaction};
use sqlx::postgres::PgConnection;
use sqlx::sqlite::SqliteConnection;
use sqlx::{QueryBuilder, Sqlite};

use crate::StorageError;

use super::append::PreparedBlock;

/// Transaction rows per multi-row `INSERT` on SQLite: 9 parameters each, well under
/// SQLite's 32766-parameter limit.
const SQLITE_TX_ROWS_PER_INSERT: usize = 500;

/// Parameters one row of `transactions` binds: its nine columns.
const TX_ROW_PARAMETERS: usize = 9;

/// Most parameters one SQLite statement may bind (`SQLITE_MAX_VARIABLE_NUMBER`, 32766 since
/// SQLite 3.32; the bundled SQLite is newer).
const SQLITE_MAX_PARAMETERS: usize = 32_766;

// A full multi-row insert must stay within SQLite's parameter limit, or the largest chunk
// of a big block would fail to prepare.
const _: () = assert!(SQLITE_TX_ROWS_PER_INSERT * TX_ROW_PARAMETERS <= SQLITE_MAX_PARAMETERS);

/// How one backend inserts the transactions of the blocks of one commit.
pub(super) trait TxInserter {
    fn insert_transactions<'a>(
        &'a mut self,
        blocks: &'a [PreparedBlock<'_>],
    ) -> impl std::future::Future<Output = Result<(), StorageError>> + Send + 'a;
}

/// Every transaction row of `blocks`: (height, index, transaction, id).
pub(super) fn tx_rows<'a>(
    blocks: &'a [PreparedBlock<'_>],
) -> impl Iterator<Item = (i64, i32, &'a Transaction, &'a Hash)> + 'a {
    blocks.iter().flat_map(|block| {
        block
            .block
            .txs
            .iter()
            .zip(&block.tx_ids)
            .enumerate()
            .map(move |(i, (tx, id))| (block.height, i as i32, tx, id))
    })
}

/// Rows per multi-row `INSERT` for `remaining` rows: the largest power of two up to
/// [`SQLITE_TX_ROWS_PER_INSERT`], so only a handful of statement texts (each prepared once and
/// cached) ever exist.
fn sqlite_chunk(remaining: usize) -> usize {
    if remaining >= SQLITE_TX_ROWS_PER_INSERT {
        SQLITE_TX_ROWS_PER_INSERT
    } else {
        1 << remaining.max(1).ilog2()
    }
}

impl TxInserter for SqliteConnection {
    async fn insert_transactions(
        &mut self,
        blocks: &[PreparedBlock<'_>],
    ) -> Result<(), StorageError> {
        let mut remaining: usize = blocks.iter().map(|b| b.tx_ids.len()).sum();
        let mut rows = tx_rows(blocks).peekable();
        while remaining > 0 {
            let n = sqlite_chunk(remaining);
            let mut builder = QueryBuilder::<Sqlite>::new(
                "INSERT INTO transactions (block_height, tx_index, id, version, chain_id, sender, nonce, payload, signature) ",
            );
            builder.push_values(rows.by_ref().take(n), |mut row, (height, index, tx, id)| {
                let body = &tx.body;
                row.push_bind(height)
                    .push_bind(index)
                    .push_bind(id.0.as_slice())
                    .push_bind(i16::from(body.version))
                    .push_bind(body.chain_id.as_str())
                    .push_bind(body.sender.0.as_slice())
                    .push_bind(body.nonce as i64)
                    .push_bind(body.payload.as_slice())
                    .push_bind(tx.signature.0.as_slice());
            });
            builder
                .build()
                .persistent(true)
                .execute(&mut *self)
                .await
                .map_err(StorageError::db("append block transactions"))?;
            remaining -= n;
        }
        Ok(())
    }
}

impl TxInserter for PgConnection {
    /// One `INSERT ... SELECT FROM UNNEST(arrays)` for all the rows: one round trip. (A
    /// binary `COPY` parses faster on the server, but sqlx sends `CopyDone` as a separate
    /// small write after the data, and with Nagle on the socket that waits out the server's
    /// delayed ACK, about 40 ms per commit.)
    async fn insert_transactions(
        &mut self,
        blocks: &[PreparedBlock<'_>],
    ) -> Result<(), StorageError> {
        let n: usize = blocks.iter().map(|b| b.tx_ids.len()).sum();
        if n == 0 {
            return Ok(());
        }
        let mut heights = Vec::with_capacity(n);
        let mut indexes = Vec::with_capacity(n);
        let mut ids: Vec<&[u8]> = Vec::with_capacity(n);
        let mut versions = Vec::with_capacity(n);
        let mut chain_ids = Vec::with_capacity(n);
        let mut senders: Vec<&[u8]> = Vec::with_capacity(n);
        let mut nonces = Vec::with_capacity(n);
        let mut payloads: Vec<&[u8]> = Vec::with_capacity(n);
        let mut signatures: Vec<&[u8]> = Vec::with_capacity(n);
        for (height, index, tx, id) in tx_rows(blocks) {
            let body = &tx.body;
            heights.push(height);
            indexes.push(index);
            ids.push(id.0.as_slice());
            versions.push(i16::from(body.version));
            chain_ids.push(body.chain_id.as_str());
            senders.push(body.sender.0.as_slice());
            nonces.push(body.nonce as i64);
            payloads.push(body.payload.as_slice());
            signatures.push(tx.signature.0.as_slice());
        }
        sqlx::query(
            "INSERT INTO transactions (block_height, tx_index, id, version, chain_id, sender, nonce, payload, signature) \
             SELECT * FROM UNNEST($1::int8[], $2::int4[], $3::bytea[], $4::int2[], $5::text[], $6::bytea[], $7::int8[], $8::bytea[], $9::bytea[])",
        )
        .bind(heights)
        .bind(indexes)
        .bind(ids)
        .bind(versions)
        .bind(chain_ids)
        .bind(senders)
        .bind(nonces)
        .bind(payloads)
        .bind(signatures)
        .execute(&mut *self)
        .await
        .map_err(StorageError::db("append block transactions"))?;
        Ok(())
    }
}
