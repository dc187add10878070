//! Offline verification of a stored chain against its genesis.
//!
//! Every block is checked for: a header that decodes and matches its readable columns, the
//! hash link to the block below (the genesis hash for height 1), the chain id, the
//! transaction ids and Merkle root, every transaction signature (in batches, on all cores),
//! and a commit certificate for that exact block signed by a quorum of the genesis
//! validators. The first bad height is reported with what is wrong, in messages that carry
//! the words *integrity*, *corrupt* or *checksum*.

use std::fmt;

use aegis_crypto::{BatchVerifier, verify_commit_certificate};
use aegis_types::{Genesis, Hash, ValidatorSet, merkle_root};

use crate::StorageError;
use crate::traits::{Ledger, StoredBlock, Tip};

/// Blocks read and checked per round trip.
const VERIFY_CHUNK_BLOCKS: u64 = 200;

// A chunk is read with one `Ledger::blocks` call, which returns at most MAX_RANGE_BLOCKS: a
// larger chunk would come back short and its missing blocks would look like a gap.
const _: () = assert!(VERIFY_CHUNK_BLOCKS <= crate::MAX_RANGE_BLOCKS);

/// The first problem found in a stored chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainFault {
    pub height: u64,
    /// What is wrong, with the word integrity, corrupt or checksum in it.
    pub problem: String,
}

/// The outcome of [`verify_chain`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Blocks that verified (all of them when `fault` is `None`).
    pub blocks_verified: u64,
    pub transactions_verified: u64,
    /// Height of the stored tip.
    pub tip_height: u64,
    pub fault: Option<ChainFault>,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.fault.is_none()
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.fault {
            None => write!(
                f,
                "Chain verified: {} blocks, {} transactions",
                self.blocks_verified, self.transactions_verified
            ),
            // The blocks themselves all verified; the fault is in a derived structure (SQLite's
            // transaction-id index).
            Some(fault) if self.blocks_verified >= self.tip_height => write!(
                f,
                "Chain integrity check failed at height {} of {}: {} (all {} blocks and {} transactions verified)",
                fault.height,
                self.tip_height,
                fault.problem,
                self.blocks_verified,
                self.transactions_verified
            ),
            Some(fault) => write!(
                f,
                "Chain integrity check failed at height {} of {}: {} ({} blocks below it verified)",
                fault.height, self.tip_height, fault.problem, self.blocks_verified
            ),
        }
    }
}

/// Verifies the whole stored chain. `Err` only when the store cannot be read at all (for
/// example the database is unreachable); bad data is reported in the [`VerifyReport`].
pub async fn verify_chain<L: Ledger + ?Sized>(
    store: &L,
    genesis: &Genesis,
) -> Result<VerifyReport, StorageError> {
    let validators = genesis
        .validator_set()
        .map_err(|error| StorageError::Config(format!("genesis validator set: {error}")))?;
    let tip_height = store.tip().await?.map_or(0, |tip| tip.height);
    let mut report = VerifyReport {
        blocks_verified: 0,
        transactions_verified: 0,
        tip_height,
        fault: None,
    };
    let mut prev_hash = genesis.hash();
    let mut height = 1;
    while height <= tip_height {
        let to = (height + VERIFY_CHUNK_BLOCKS - 1).min(tip_height);
        let (blocks, read_fault) = read_chunk(store, height, to).await?;
        let outcome = check_blocks(&blocks, height, prev_hash, genesis, &validators);
        report.blocks_verified += outcome.verified_blocks;
        report.transactions_verified += outcome.verified_txs;
        let fault = match (outcome.fault, read_fault) {
            (Some(a), Some(b)) => Some(if a.height <= b.height { a } else { b }),
            (a, b) => a.or(b),
        };
        if let Some(fault) = fault {
            aegis_telemetry::error!(height = fault.height, problem = %fault.problem, "ledger integrity check failed");
            report.fault = Some(fault);
            return Ok(report);
        }
        // A chunk with fewer blocks than asked for, and no fault, means a gap at its end.
        let expected = to - height + 1;
        if (blocks.len() as u64) < expected {
            let missing = height + blocks.len() as u64;
            report.fault = Some(ChainFault {
                height: missing,
                problem: format!(
                    "integrity error: block {missing} is missing below the tip {tip_height}"
                ),
            });
            return Ok(report);
        }
        if let Some(last) = blocks.last() {
            prev_hash = last.columns.hash;
        }
        height = to + 1;
    }
    Ok(report)
}

/// Cheap start-up check: the tip block is whole, links to the block below, matches its
/// certificate, and its signatures verify. Returns the tip, or a
/// [`StorageError::Corrupt`] naming the height.
pub async fn check_tip<L: Ledger + ?Sized>(
    store: &L,
    genesis: &Genesis,
) -> Result<Option<Tip>, StorageError> {
    let validators = genesis
        .validator_set()
        .map_err(|error| StorageError::Config(format!("genesis validator set: {error}")))?;
    let Some(tip) = store.tip().await? else {
        return Ok(None);
    };
    let prev_hash = if tip.height <= 1 {
        genesis.hash()
    } else {
        match store.header(tip.height - 1).await? {
            Some((header, _)) => header.hash(),
            None => {
                return Err(StorageError::corrupt(
                    tip.height,
                    format!("block {} below the tip is missing", tip.height - 1),
                ));
            }
        }
    };
    let Some(block) = store.block_by_height(tip.height).await? else {
        return Err(StorageError::corrupt(
            tip.height,
            "the tip block disappeared while reading it",
        ));
    };
    let outcome = check_blocks(
        std::slice::from_ref(&block),
        tip.height,
        prev_hash,
        genesis,
        &validators,
    );
    match outcome.fault {
        Some(fault) => Err(StorageError::corrupt(fault.height, fault.problem)),
        None => Ok(Some(tip)),
    }
}

/// Reads `from..=to`; if a row is corrupt, falls back to block-by-block reads so the blocks
/// below it are still checked and the fault is pinned to its height.
async fn read_chunk<L: Ledger + ?Sized>(
    store: &L,
    from: u64,
    to: u64,
) -> Result<(Vec<StoredBlock>, Option<ChainFault>), StorageError> {
    match store.blocks(from, to).await {
        Ok(blocks) => Ok((blocks, None)),
        Err(StorageError::Corrupt { .. }) => {
            let mut blocks = Vec::new();
            for height in from..=to {
                match store.block_by_height(height).await {
                    Ok(Some(block)) => blocks.push(block),
                    Ok(None) => break,
                    Err(StorageError::Corrupt { height: at, detail }) => {
                        let fault = ChainFault {
                            height: at.unwrap_or(height),
                            problem: format!("corrupt stored data: {detail}"),
                        };
                        return Ok((blocks, Some(fault)));
                    }
                    Err(other) => return Err(other),
                }
            }
            Ok((blocks, None))
        }
        Err(other) => Err(other),
    }
}

struct ChunkOutcome {
    verified_blocks: u64,
    verified_txs: u64,
    fault: Option<ChainFault>,
}

/// Checks consecutive blocks starting at `first_height` whose predecessor has `prev_hash`.
fn check_blocks(
    blocks: &[StoredBlock],
    first_height: u64,
    mut prev_hash: Hash,
    genesis: &Genesis,
    validators: &ValidatorSet,
) -> ChunkOutcome {
    // Structure first (cheap), then every signature below the first structural fault.
    let mut structural: Option<ChainFault> = None;
    let mut checked = 0usize;
    for (offset, stored) in blocks.iter().enumerate() {
        let expected_height = first_height + offset as u64;
        if let Err(problem) =
            check_structure(stored, expected_height, prev_hash, genesis, validators)
        {
            structural = Some(ChainFault {
                height: expected_height,
                problem,
            });
            break;
        }
        prev_hash = stored.columns.hash;
        checked += 1;
    }
    let good = &blocks[..checked];
    if let Some(fault) = first_bad_signature(good) {
        let verified_blocks = fault.height - first_height;
        let verified_txs = good
            .iter()
            .take(verified_blocks as usize)
            .map(|b| b.block.txs.len() as u64)
            .sum();
        return ChunkOutcome {
            verified_blocks,
            verified_txs,
            fault: Some(fault),
        };
    }
    ChunkOutcome {
        verified_blocks: checked as u64,
        verified_txs: good.iter().map(|b| b.block.txs.len() as u64).sum(),
        fault: structural,
    }
}

/// Everything but transaction signatures; `Err` holds the problem's description.
fn check_structure(
    stored: &StoredBlock,
    height: u64,
    prev_hash: Hash,
    genesis: &Genesis,
    validators: &ValidatorSet,
) -> Result<(), String> {
    let header = &stored.block.header;
    let columns = &stored.columns;
    if columns.height != height {
        return Err(format!(
            "integrity error: block {height} is missing (next stored block is {})",
            columns.height
        ));
    }
    if header.height != height {
        return Err(format!(
            "corrupt block: row at height {height} holds the header of height {}",
            header.height
        ));
    }
    let hash = header.hash();
    if columns.hash != hash {
        return Err(format!(
            "checksum mismatch: stored block hash {} but the header hashes to {hash}",
            columns.hash
        ));
    }
    if header.chain_id != genesis.chain_id {
        return Err(format!(
            "integrity error: block belongs to chain {:?}, the genesis is for {:?}",
            header.chain_id, genesis.chain_id
        ));
    }
    if header.prev_hash != prev_hash {
        return Err(format!(
            "integrity error: hash link broken: block links to {}, the block below hashes to {prev_hash}",
            header.prev_hash
        ));
    }
    let mismatched = [
        ("prev_hash", columns.prev_hash != header.prev_hash),
        ("tx_root", columns.tx_root != header.tx_root),
        ("proposer", columns.proposer != header.proposer),
        ("consensus_view", columns.view != header.view),
        ("timestamp_ms", columns.timestamp_ms != header.timestamp_ms),
        ("tx_count", columns.tx_count != header.tx_count),
    ];
    if let Some((name, _)) = mismatched.iter().find(|(_, bad)| *bad) {
        return Err(format!(
            "corrupt column blocks.{name}: it disagrees with the canonical header"
        ));
    }
    if stored.block.txs.len() != header.tx_count as usize {
        return Err(format!(
            "integrity error: header says {} transactions, {} are stored",
            header.tx_count,
            stored.block.txs.len()
        ));
    }
    let ids = stored.block.tx_ids();
    for (index, (computed, recorded)) in ids.iter().zip(&columns.tx_ids).enumerate() {
        if computed != recorded {
            return Err(format!(
                "checksum mismatch: transaction {index} is stored with id {recorded} but its contents hash to {computed}"
            ));
        }
    }
    let root = merkle_root(&ids);
    if root != header.tx_root {
        return Err(format!(
            "checksum mismatch: transaction root in the header is {}, the stored transactions give {root}",
            header.tx_root
        ));
    }
    if let Err(error) = stored.block.check_structure() {
        return Err(format!("corrupt block: {error}"));
    }
    let certificate = &stored.certificate;
    if certificate.height != height || certificate.block_hash != hash {
        return Err(format!(
            "integrity error: commit certificate is for block {} at height {}, not this block",
            certificate.block_hash, certificate.height
        ));
    }
    if let Err(error) = verify_commit_certificate(certificate, &genesis.chain_id, validators) {
        return Err(format!(
            "integrity error: commit certificate rejected: {error}"
        ));
    }
    Ok(())
}

/// The first block (lowest height) holding a transaction whose signature does not verify.
/// Signatures are batch-verified, split across the machine's cores.
fn first_bad_signature(blocks: &[StoredBlock]) -> Option<ChainFault> {
    let total: usize = blocks.iter().map(|b| b.block.txs.len()).sum();
    if total == 0 {
        return None;
    }
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    // Split by blocks so that each part holds about total / threads transactions.
    let per_part = total.div_ceil(threads);
    let mut parts: Vec<&[StoredBlock]> = Vec::new();
    let mut start = 0;
    let mut count = 0;
    for (i, block) in blocks.iter().enumerate() {
        count += block.block.txs.len();
        if count >= per_part {
            parts.push(&blocks[start..=i]);
            start = i + 1;
            count = 0;
        }
    }
    if start < blocks.len() {
        parts.push(&blocks[start..]);
    }
    let all_good = std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .iter()
            .map(|part| scope.spawn(move || batch_ok(part)))
            .collect();
        handles.into_iter().all(|h| h.join().unwrap_or(false))
    });
    if all_good {
        return None;
    }
    // Some batch failed: find the first bad block and transaction, one block at a time.
    for stored in blocks {
        if batch_ok(std::slice::from_ref(stored)) {
            continue;
        }
        let bad = stored
            .block
            .txs
            .iter()
            .position(|tx| aegis_crypto::verify_transaction(tx).is_err())
            .unwrap_or(0);
        let id = stored
            .block
            .txs
            .get(bad)
            .map(|tx| tx.id())
            .unwrap_or_default();
        return Some(ChainFault {
            height: stored.block.header.height,
            problem: format!(
                "integrity error: transaction {bad} ({id}) has a signature that does not verify"
            ),
        });
    }
    None
}

fn batch_ok(blocks: &[StoredBlock]) -> bool {
    let mut batch = BatchVerifier::with_capacity(blocks.iter().map(|b| b.block.txs.len()).sum());
    for stored in blocks {
        for tx in &stored.block.txs {
            batch.queue(tx.body.sender, tx.body.signing_bytes(), tx.signature);
        }
    }
    batch.verify().is_ok()
}
