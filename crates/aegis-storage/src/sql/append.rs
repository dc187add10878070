//! A block checked and encoded ([`prepare`]), and blocks written in one database
//! transaction on the writer connection ([`append_on`]): the tip read, retried blocks
//! skipped, the block rows, then every transaction row at once.

use std::borrow::Cow;

use aegis_types::encoding::encode;
use aegis_types::{Block, CommitCertificate, Hash, Transaction, merkle_root};
use sqlx::{Connection, Row};

use crate::StorageError;
use crate::traits::Tip;

use super::rows::tip_from_row;
use super::tx_insert::TxInserter;
use super::writer::WriterConn;

/// The body of [`append_on`], the same text for both backends.
macro_rules! append_body {
    ($tx:ident, $blocks:ident) => {{
        let mut tx = $tx;
        let blocks = $blocks;
            let tip = sqlx::query("SELECT height, hash FROM blocks ORDER BY height DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await
                .map_err(StorageError::db(CONTEXT))?;
            let tip = match tip {
                Some(row) => Some(tip_from_row(&row)?),
                None => None,
            };
            // Blocks already stored with the same hash are skipped, so an append retried
            // after an ambiguous failure (the connection died during COMMIT) succeeds.
            let mut skip = 0;
            if let Some(tip) = tip {
                for block in blocks.iter().take_while(|b| b.height as u64 <= tip.height) {
                    let stored: Option<String> = sqlx::query("SELECT hash FROM blocks WHERE height = $1")
                        .bind(block.height)
                        .fetch_optional(&mut *tx)
                        .await
                        .and_then(|row| row.map(|r| r.try_get::<String, _>(0)).transpose())
                        .map_err(StorageError::db(CONTEXT))?;
                    if stored.as_deref() != Some(block.hash.to_hex().as_str()) {
                        return Err(StorageError::NotNext { tip: tip.height, got: block.height as u64 });
                    }
                    skip += 1;
                }
            }
            let blocks = &blocks[skip..];
            let Some(first) = blocks.first() else {
                return Ok(());
            };
            check_follows(tip, first)?;
            for block in blocks {
                sqlx::query(
                    "INSERT INTO blocks (height, hash, prev_hash, tx_root, proposer, consensus_view, timestamp_ms, tx_count, header, certificate) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(block.height)
                .bind(block.hash.to_hex())
                .bind(block.block.header.prev_hash.to_hex())
                .bind(block.block.header.tx_root.to_hex())
                .bind(block.block.header.proposer.to_hex())
                .bind(block.block.header.view as i64)
                .bind(block.block.header.timestamp_ms as i64)
                .bind(block.block.header.tx_count as i32)
                .bind(block.header_bytes.as_slice())
                .bind(block.certificate_bytes.as_slice())
                .execute(&mut *tx)
                .await
                .map_err(StorageError::db(CONTEXT))?;
            }
            // Every transaction row of the commit at once, after the block rows they
            // reference.
            tx.insert_transactions(blocks).await?;
            tx.commit().await.map_err(StorageError::db(CONTEXT))?;
            Ok(())
        }
    }
}

/// Appends `blocks` in one database transaction on the writer connection.
pub(super) async fn append_on(
    conn: &mut WriterConn,
    blocks: &[PreparedBlock<'_>],
) -> Result<(), StorageError> {
    const CONTEXT: &str = "append block";
    match conn {
        WriterConn::Sqlite(conn) => {
            let tx = Connection::begin_with(conn, "BEGIN IMMEDIATE")
                .await
                .map_err(StorageError::db(CONTEXT))?;
            append_body!(tx, blocks)
        }
        WriterConn::Postgres(conn) => {
            let tx = Connection::begin(conn)
                .await
                .map_err(StorageError::db(CONTEXT))?;
            append_body!(tx, blocks)
        }
    }
}

/// A block checked and encoded, ready to insert.
/// Borrows the block on the direct path; owns it in the [`super::GroupCommitter`] queue.
pub(crate) struct PreparedBlock<'a> {
    pub(super) block: Cow<'a, Block>,
    pub(super) height: i64,
    pub(super) hash: Hash,
    header_bytes: Vec<u8>,
    certificate_bytes: Vec<u8>,
    /// `block.txs[i].id()`, computed once.
    pub(super) tx_ids: Vec<Hash>,
}

/// Cheap consistency checks before a block is written: the certificate names this block and
/// the header matches the body. Signatures are the engine's job.
pub(super) fn prepare<'a>(
    block: Cow<'a, Block>,
    certificate: &CommitCertificate,
) -> Result<PreparedBlock<'a>, StorageError> {
    let header = &block.header;
    let height = header.height;
    let invalid = |reason: String| StorageError::InvalidBlock { height, reason };
    if height == 0 || height > i64::MAX as u64 {
        return Err(invalid(format!("height {height} is out of range")));
    }
    let hash = block.hash();
    if certificate.height != height {
        return Err(invalid(format!(
            "commit certificate is for height {}",
            certificate.height
        )));
    }
    if certificate.block_hash != hash {
        return Err(invalid(format!(
            "commit certificate is for block {}, this block's hash is {hash}",
            certificate.block_hash
        )));
    }
    if header.tx_count as usize != block.txs.len() {
        return Err(invalid(format!(
            "header says {} transactions, body has {}",
            header.tx_count,
            block.txs.len()
        )));
    }
    let tx_ids: Vec<Hash> = block.txs.iter().map(Transaction::id).collect();
    let root = merkle_root(&tx_ids);
    if root != header.tx_root {
        return Err(invalid(format!(
            "transaction root mismatch: header {}, computed {root}",
            header.tx_root
        )));
    }
    let header_bytes = encode(header);
    Ok(PreparedBlock {
        block,
        height: height as i64,
        hash,
        header_bytes,
        certificate_bytes: encode(certificate),
        tx_ids,
    })
}

pub(super) fn prepare_batch(
    blocks: &[(Block, CommitCertificate)],
) -> Result<Vec<PreparedBlock<'_>>, StorageError> {
    let mut prepared: Vec<PreparedBlock<'_>> = Vec::with_capacity(blocks.len());
    for (block, certificate) in blocks {
        let next = prepare(Cow::Borrowed(block), certificate)?;
        if let Some(previous) = prepared.last() {
            let tip = Tip {
                height: previous.height as u64,
                hash: previous.hash,
            };
            check_follows(Some(tip), &next)?;
        }
        prepared.push(next);
    }
    Ok(prepared)
}

pub(super) fn check_follows(
    tip: Option<Tip>,
    block: &PreparedBlock<'_>,
) -> Result<(), StorageError> {
    let height = block.height as u64;
    match tip {
        None if height == 1 => Ok(()),
        None => Err(StorageError::NotNext {
            tip: 0,
            got: height,
        }),
        Some(tip) if tip.height + 1 != height => Err(StorageError::NotNext {
            tip: tip.height,
            got: height,
        }),
        Some(tip) if tip.hash != block.block.header.prev_hash => Err(StorageError::BrokenLink {
            height,
            expected: tip.hash,
            got: block.block.header.prev_hash,
        }),
        Some(_) => Ok(()),
    }
}
