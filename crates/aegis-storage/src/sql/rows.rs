//! Rows into values: typed column access that reads the same on both backends, and the
//! decoding of `blocks` and `transactions` rows, where a value that does not decode is
//! corrupt data at its height.

use aegis_types::encoding::decode;
use aegis_types::{
    Block, BlockHeader, CommitCertificate, Hash, PublicKey, Signature, Transaction, TxBody,
};
use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

use crate::StorageError;
use crate::traits::{BlockColumns, StoredBlock, StoredTransaction, Tip};

/// Typed column access that reads the same on both backends.
pub(super) trait RowExt {
    fn i64_at(&self, column: &str) -> Result<i64, sqlx::Error>;
    fn i32_at(&self, column: &str) -> Result<i32, sqlx::Error>;
    fn i16_at(&self, column: &str) -> Result<i16, sqlx::Error>;
    fn opt_i64_at(&self, column: &str) -> Result<Option<i64>, sqlx::Error>;
    fn bool_at(&self, column: &str) -> Result<bool, sqlx::Error>;
    fn text_at(&self, column: &str) -> Result<String, sqlx::Error>;
    fn bytes_at(&self, column: &str) -> Result<Vec<u8>, sqlx::Error>;
}

macro_rules! impl_row_ext {
    ($row:ty) => {
        impl RowExt for $row {
            fn i64_at(&self, column: &str) -> Result<i64, sqlx::Error> {
                self.try_get(column)
            }
            fn i32_at(&self, column: &str) -> Result<i32, sqlx::Error> {
                self.try_get(column)
            }
            fn i16_at(&self, column: &str) -> Result<i16, sqlx::Error> {
                self.try_get(column)
            }
            fn opt_i64_at(&self, column: &str) -> Result<Option<i64>, sqlx::Error> {
                self.try_get(column)
            }
            fn bool_at(&self, column: &str) -> Result<bool, sqlx::Error> {
                self.try_get(column)
            }
            fn text_at(&self, column: &str) -> Result<String, sqlx::Error> {
                self.try_get(column)
            }
            fn bytes_at(&self, column: &str) -> Result<Vec<u8>, sqlx::Error> {
                self.try_get(column)
            }
        }
    };
}
impl_row_ext!(SqliteRow);
impl_row_ext!(PgRow);

/// A column that could not be read as its declared type: corrupt data at `height`.
pub(super) fn column<T>(
    height: Option<u64>,
    name: &str,
    value: Result<T, sqlx::Error>,
) -> Result<T, StorageError> {
    value.map_err(|error| StorageError::corrupt(height, format!("column {name}: {error}")))
}

fn hash_column(height: Option<u64>, name: &str, text: &str) -> Result<Hash, StorageError> {
    Hash::from_hex(text)
        .map_err(|error| StorageError::corrupt(height, format!("column {name} {text:?}: {error}")))
}

pub(super) fn key_column(
    height: Option<u64>,
    name: &str,
    text: &str,
) -> Result<PublicKey, StorageError> {
    PublicKey::from_hex(text)
        .map_err(|error| StorageError::corrupt(height, format!("column {name} {text:?}: {error}")))
}

pub(super) fn tip_from_row(row: &impl RowExt) -> Result<Tip, StorageError> {
    let height = column(None, "height", row.i64_at("height"))? as u64;
    let hash = hash_column(
        Some(height),
        "hash",
        &column(Some(height), "hash", row.text_at("hash"))?,
    )?;
    Ok(Tip { height, hash })
}

/// A `blocks` row decoded, before its transactions are attached.
pub(super) struct PartialBlock {
    pub(super) header: BlockHeader,
    pub(super) certificate: CommitCertificate,
    columns: BlockColumns,
}

pub(super) fn block_from_row(row: &impl RowExt) -> Result<PartialBlock, StorageError> {
    let height_i = column(None, "height", row.i64_at("height"))?;
    let height = height_i as u64;
    let h = Some(height);
    let header_bytes = column(h, "header", row.bytes_at("header"))?;
    let header: BlockHeader = decode(&header_bytes).map_err(|error| {
        StorageError::corrupt(h, format!("block header does not decode: {error}"))
    })?;
    let certificate_bytes = column(h, "certificate", row.bytes_at("certificate"))?;
    let certificate: CommitCertificate = decode(&certificate_bytes).map_err(|error| {
        StorageError::corrupt(h, format!("commit certificate does not decode: {error}"))
    })?;
    let columns = BlockColumns {
        height,
        hash: hash_column(h, "hash", &column(h, "hash", row.text_at("hash"))?)?,
        prev_hash: hash_column(
            h,
            "prev_hash",
            &column(h, "prev_hash", row.text_at("prev_hash"))?,
        )?,
        tx_root: hash_column(h, "tx_root", &column(h, "tx_root", row.text_at("tx_root"))?)?,
        proposer: key_column(
            h,
            "proposer",
            &column(h, "proposer", row.text_at("proposer"))?,
        )?,
        view: column(h, "consensus_view", row.i64_at("consensus_view"))? as u64,
        timestamp_ms: column(h, "timestamp_ms", row.i64_at("timestamp_ms"))? as u64,
        tx_count: column(h, "tx_count", row.i32_at("tx_count"))? as u32,
        tx_ids: Vec::new(),
    };
    Ok(PartialBlock {
        header,
        certificate,
        columns,
    })
}

/// A `transactions` row: (height, index, stored id, transaction).
pub(super) fn tx_from_row(
    row: &impl RowExt,
) -> Result<(u64, u32, Hash, Transaction), StorageError> {
    let height = column(None, "block_height", row.i64_at("block_height"))? as u64;
    let h = Some(height);
    let index = column(h, "tx_index", row.i32_at("tx_index"))? as u32;
    let id = Hash(fixed_bytes(h, index, "id", row.bytes_at("id"))?);
    let version = column(h, "version", row.i16_at("version"))?;
    let version = u8::try_from(version).map_err(|_| {
        StorageError::corrupt(
            h,
            format!("transaction {index}: version {version} out of range"),
        )
    })?;
    let sender = PublicKey(fixed_bytes(h, index, "sender", row.bytes_at("sender"))?);
    let signature = Signature(fixed_bytes(
        h,
        index,
        "signature",
        row.bytes_at("signature"),
    )?);
    let body = TxBody {
        version,
        chain_id: column(h, "chain_id", row.text_at("chain_id"))?,
        sender,
        nonce: column(h, "nonce", row.i64_at("nonce"))? as u64,
        payload: column(h, "payload", row.bytes_at("payload"))?,
    };
    Ok((height, index, id, Transaction { body, signature }))
}

/// A byte column of exactly `N` bytes (an id, key or signature) of transaction `index`.
fn fixed_bytes<const N: usize>(
    height: Option<u64>,
    index: u32,
    name: &str,
    value: Result<Vec<u8>, sqlx::Error>,
) -> Result<[u8; N], StorageError> {
    let bytes = column(height, name, value)?;
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| {
        StorageError::corrupt(
            height,
            format!(
                "transaction {index}: column {name} holds {} bytes, expected {N}",
                bytes.len()
            ),
        )
    })
}

/// Attaches transaction rows (sorted by height, index) to their blocks.
pub(super) fn assemble(
    partial: Vec<PartialBlock>,
    txs: Vec<(u64, u32, Hash, Transaction)>,
) -> Result<Vec<StoredBlock>, StorageError> {
    let mut out = Vec::with_capacity(partial.len());
    let mut txs = txs.into_iter().peekable();
    for block in partial {
        let height = block.columns.height;
        // The count comes from the stored header, which may be corrupt: never size memory by it alone.
        let capacity = (block.header.tx_count as usize)
            .min(aegis_types::genesis::MAX_BLOCK_TXS_LIMIT as usize);
        let mut body = Vec::with_capacity(capacity);
        let mut ids = Vec::with_capacity(capacity);
        while let Some((tx_height, _, _, _)) = txs.peek() {
            if *tx_height < height {
                // A transaction row whose block row is missing.
                return Err(StorageError::corrupt(
                    *tx_height,
                    "transaction rows exist for a block that is missing",
                ));
            }
            if *tx_height > height {
                break;
            }
            let Some((_, index, id, tx)) = txs.next() else {
                break;
            };
            if index as usize != body.len() {
                return Err(StorageError::corrupt(
                    height,
                    format!(
                        "transaction index {index} found where {} was expected",
                        body.len()
                    ),
                ));
            }
            body.push(tx);
            ids.push(id);
        }
        let mut columns = block.columns;
        columns.tx_ids = ids;
        out.push(StoredBlock {
            block: Block {
                header: block.header,
                txs: body,
            },
            certificate: block.certificate,
            columns,
        });
    }
    Ok(out)
}

pub(super) fn stored_tx(row: &impl RowExt) -> Result<StoredTransaction, StorageError> {
    let (height, index, id, transaction) = tx_from_row(row)?;
    Ok(StoredTransaction {
        transaction,
        id,
        height,
        index,
    })
}
