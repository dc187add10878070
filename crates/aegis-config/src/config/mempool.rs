//! `mempool:`: the bounds of the pool of transactions waiting for a block, and of the memory
//! of committed transaction ids that refuses replays.

use std::ops::RangeInclusive;

use aegis_types::genesis::MAX_BLOCK_TXS_LIMIT;
use aegis_types::tx::{MAX_CHAIN_ID_BYTES, MAX_TX_PAYLOAD_BYTES};

use crate::file::{
    DEFAULT_MEMPOOL_MAX_BYTES, DEFAULT_MEMPOOL_MAX_TRANSACTION_BYTES,
    DEFAULT_MEMPOOL_MAX_TRANSACTIONS, DEFAULT_MEMPOOL_RECENT_COMMITTED, MEMPOOL_TX_ENVELOPE_BYTES,
    MempoolFile,
};

use super::checker::Checker;

/// `mempool.max_transactions`: a million pending transactions is far more than blocks of
/// at most 10,000 drain in any reasonable time, and each costs memory and a map entry.
pub const MEMPOOL_MAX_TRANSACTIONS_RANGE: RangeInclusive<u64> = 1..=1_000_000;
/// `mempool.max_bytes`: from 1 MiB (a pool that holds a transaction of any allowed size) to
/// 1 GiB of memory (`aegis_mempool::MAX_BYTES_LIMIT`).
pub const MEMPOOL_MAX_BYTES_RANGE: RangeInclusive<u64> = 1 << 20..=1 << 30;
/// `mempool.max_transaction_bytes`: from 1 KiB (the envelope with a small payload) to the
/// largest transaction the types allow, the payload limit plus the envelope
/// (`aegis_mempool::MAX_TRANSACTION_BYTES_LIMIT`): a larger setting could admit nothing more.
pub const MEMPOOL_MAX_TRANSACTION_BYTES_RANGE: RangeInclusive<u64> =
    1 << 10..=MAX_TX_PAYLOAD_BYTES as u64 + MEMPOOL_TX_ENVELOPE_BYTES;
/// `mempool.recent_committed`: at least a thousand ids, so a replay of something just
/// committed is always caught; at most ten million, about a gigabyte of memory.
pub const MEMPOOL_RECENT_COMMITTED_RANGE: RangeInclusive<u64> = 1000..=10_000_000;

// Any pool the file allows must hold one transaction of any size the file allows, so the
// largest transaction setting may not exceed the smallest pool setting.
const _: () =
    assert!(*MEMPOOL_MAX_TRANSACTION_BYTES_RANGE.end() <= *MEMPOOL_MAX_BYTES_RANGE.start());
// The envelope must hold everything of an encoded transaction but its payload: version (1),
// chain id (4 + at most MAX_CHAIN_ID_BYTES), sender (32), nonce (8), the payload's length
// prefix (4) and the signature (64).
const _: () =
    assert!(1 + 4 + MAX_CHAIN_ID_BYTES as u64 + 32 + 8 + 4 + 64 <= MEMPOOL_TX_ENVELOPE_BYTES);
// A transaction with the largest payload the types allow must be admissible at the largest
// setting; the default admits exactly it.
const _: () = assert!(
    MAX_TX_PAYLOAD_BYTES as u64 + MEMPOOL_TX_ENVELOPE_BYTES
        <= *MEMPOOL_MAX_TRANSACTION_BYTES_RANGE.end()
);
// The default pool holds a full block of the largest size a genesis may set, so a leader
// with a default configuration can always propose a full block.
const _: () = assert!(MAX_BLOCK_TXS_LIMIT as u64 <= DEFAULT_MEMPOOL_MAX_TRANSACTIONS);
// Every default lies within its range.
const _: () = assert!(
    DEFAULT_MEMPOOL_MAX_TRANSACTIONS >= *MEMPOOL_MAX_TRANSACTIONS_RANGE.start()
        && DEFAULT_MEMPOOL_MAX_TRANSACTIONS <= *MEMPOOL_MAX_TRANSACTIONS_RANGE.end()
        && DEFAULT_MEMPOOL_MAX_BYTES >= *MEMPOOL_MAX_BYTES_RANGE.start()
        && DEFAULT_MEMPOOL_MAX_BYTES <= *MEMPOOL_MAX_BYTES_RANGE.end()
        && DEFAULT_MEMPOOL_MAX_TRANSACTION_BYTES >= *MEMPOOL_MAX_TRANSACTION_BYTES_RANGE.start()
        && DEFAULT_MEMPOOL_MAX_TRANSACTION_BYTES <= *MEMPOOL_MAX_TRANSACTION_BYTES_RANGE.end()
        && DEFAULT_MEMPOOL_RECENT_COMMITTED >= *MEMPOOL_RECENT_COMMITTED_RANGE.start()
        && DEFAULT_MEMPOOL_RECENT_COMMITTED <= *MEMPOOL_RECENT_COMMITTED_RANGE.end()
);

/// `mempool:` — how much the pool of pending transactions may hold. Read and checked now;
/// `aegis run` uses it once the node wires the mempool in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MempoolConfig {
    /// Most transactions waiting at once.
    pub max_transactions: usize,
    /// Most bytes of encoded transactions waiting at once.
    pub max_bytes: usize,
    /// Largest encoded transaction admitted.
    pub max_transaction_bytes: usize,
    /// Ids of committed transactions remembered, so a replay of one is refused.
    pub recent_committed: usize,
}

pub(super) fn build_mempool(ck: &mut Checker<'_, '_>, file: MempoolFile) -> MempoolConfig {
    let MempoolFile {
        max_transactions,
        max_bytes,
        max_transaction_bytes,
        recent_committed,
    } = file;
    MempoolConfig {
        max_transactions: ck.int(
            "mempool.max_transactions",
            max_transactions,
            MEMPOOL_MAX_TRANSACTIONS_RANGE,
        ),
        max_bytes: ck.size("mempool.max_bytes", max_bytes, MEMPOOL_MAX_BYTES_RANGE),
        max_transaction_bytes: ck.size(
            "mempool.max_transaction_bytes",
            max_transaction_bytes,
            MEMPOOL_MAX_TRANSACTION_BYTES_RANGE,
        ),
        recent_committed: ck.int(
            "mempool.recent_committed",
            recent_committed,
            MEMPOOL_RECENT_COMMITTED_RANGE,
        ),
    }
}
