//! SQLite's transaction-id index, maintained in bulk (schema version 2).
//!
//! Transaction ids are hashes, so an ordinary index on them puts every new id on a different
//! leaf page, and every commit rewrote a page of the index per transaction to the WAL. Once
//! the index outgrew the blocks of one commit, that cost grew with the chain: 10,000 blocks
//! of 100 transactions appended at 60-75k tx/s against 230k without the index
//! (`docs/adr/0006-sqlite-deferred-id-index.md`).
//!
//! So on SQLite the index is a table, `transaction_ids (level, id_prefix, block_height,
//! tx_index)`, that covers every block up to `transaction_ids_state.indexed_through`. The
//! blocks above that height (the *tail*) are found through [`RecentIds`], an in-memory map of
//! their ids that the writer fills as it commits and any other process loads from
//! `transactions`. Once the tail holds [`ID_INDEX_MERGE_ROWS`] ids, the writer merges it,
//! sorted by key, into level 1 in one transaction: the random pages are rewritten once per
//! merge instead of once per commit. A level that has reached its capacity
//! ([`ID_INDEX_FANOUT`] times the one above) is first moved down into the next level, so a
//! merge rewrites a small level often and a large one rarely, as in a log-structured
//! merge tree. Each level is a key range of the one B-tree; a lookup seeks each.
//!
//! A lookup asks the table first, then the map. A merge commits before the map forgets the
//! merged ids and every forgetting bumps a generation, so a lookup that raced a merge sees
//! the change and asks again: an id the ledger holds is never reported missing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use aegis_types::Hash;
use sqlx::sqlite::{SqliteConnection, SqlitePool};
use sqlx::{Connection, Row};

use crate::StorageError;

/// Ids in the tail that trigger a merge into `transaction_ids`: bounds the map (about
/// 100 bytes an id, so ~10 MiB, plus at most one commit's ids above it) and the rows a
/// restart reads back to rebuild it.
pub const ID_INDEX_MERGE_ROWS: usize = 100_000;

/// Blocks in the tail that trigger a merge however few ids they hold, so empty blocks do not
/// leave the index ever further behind.
pub(crate) const ID_INDEX_MERGE_BLOCKS: u64 = 10_000;

/// Ids in the tail, as a multiple of the merge size, beyond which the writer refuses to
/// append until a merge succeeds: the bound on the map when merges keep failing.
pub(crate) const ID_INDEX_MAX_TAIL_MERGES: usize = 10;

/// First and longest wait before retrying a failed merge.
const MERGE_RETRY_FIRST: Duration = Duration::from_secs(1);
const MERGE_RETRY_MAX: Duration = Duration::from_secs(60);

// The retry delay doubles from the first wait up to the longest; the other way round the
// "longest" would cut the first wait short.
const _: () = assert!(MERGE_RETRY_FIRST.as_millis() <= MERGE_RETRY_MAX.as_millis());

/// Times a lookup starts over because merges kept moving ids out of the map under it. One
/// retry is enough unless merges run back to back, each taking far longer than a lookup.
pub(crate) const LOOKUP_ATTEMPTS: usize = 8;

// A lookup overtaken by one merge must get its retry, or a stored transaction could be
// reported missing.
const _: () = assert!(LOOKUP_ATTEMPTS >= 2);

/// Where a transaction is: (block height, index in the block).
pub(crate) type Location = (u64, u32);

/// The ids of the blocks above the merged index.
#[derive(Debug)]
pub(crate) struct RecentIds {
    inner: Mutex<Recent>,
    /// Ids in the map that trigger a merge: [`ID_INDEX_MERGE_ROWS`] unless changed.
    merge_rows: AtomicUsize,
}

impl Default for RecentIds {
    fn default() -> Self {
        RecentIds {
            inner: Mutex::default(),
            merge_rows: AtomicUsize::new(ID_INDEX_MERGE_ROWS),
        }
    }
}

#[derive(Debug, Default)]
struct Recent {
    /// Id -> its first occurrence among the blocks above `pruned_through`.
    map: HashMap<Hash, Location>,
    /// Every block up to this height is in `map` or in the merged index.
    loaded_through: u64,
    /// The merged index covers every block up to this height; the map holds none of them.
    pruned_through: u64,
    /// Bumped whenever the map forgets ids, so a lookup that raced a merge retries.
    generation: u64,
    /// Rows of the blocks in the tail (duplicated ids counted each time): what a merge moves.
    tail_rows: u64,
    /// After a failed merge: consecutive failures, and when to try again.
    failures: u32,
    retry_at: Option<Instant>,
    /// Why the last merge failed, while merges fail.
    last_error: Option<String>,
}

/// The map changed under a lookup: ask again.
#[derive(Debug)]
pub(crate) struct Stale;

impl RecentIds {
    fn lock(&self) -> MutexGuard<'_, Recent> {
        // The critical sections never panic half-way through an update; a poisoned lock
        // still guards a consistent map.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Ids in the map.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Rows in the tail: what a merge would move.
    pub(crate) fn tail_rows(&self) -> u64 {
        self.lock().tail_rows
    }

    /// Whether the tail is long enough to merge, and no failed merge asks to wait.
    pub(crate) fn merge_due(&self, now: Instant) -> bool {
        let merge_rows = self.merge_rows() as u64;
        let recent = self.lock();
        let long = recent.tail_rows >= merge_rows
            || recent.loaded_through - recent.pruned_through.min(recent.loaded_through)
                >= ID_INDEX_MERGE_BLOCKS;
        long && recent.retry_at.is_none_or(|at| now >= at)
    }

    /// Ids the tail may hold before appends wait for a merge.
    pub(crate) fn tail_limit(&self) -> u64 {
        (self.merge_rows() as u64).saturating_mul(ID_INDEX_MAX_TAIL_MERGES as u64)
    }

    /// Whether the tail has outgrown its bound (merges keep failing): appends must wait.
    pub(crate) fn overfull(&self) -> bool {
        self.tail_rows() > self.tail_limit()
    }

    /// Whether a failed merge asks to wait before the next try.
    pub(crate) fn backing_off(&self, now: Instant) -> bool {
        self.lock().retry_at.is_some_and(|at| now < at)
    }

    /// While appends are refused: why, for `/health`.
    pub(crate) fn fault(&self) -> Option<String> {
        if !self.overfull() {
            return None;
        }
        let recent = self.lock();
        let error = recent.last_error.as_deref()?;
        Some(format!(
            "{} transaction ids wait to be merged into the index, over the limit of {}, and merging fails: {error}",
            recent.tail_rows,
            self.tail_limit()
        ))
    }

    /// Records a failed merge; returns how long until the next try (counted from now, after
    /// the failed attempt).
    pub(crate) fn merge_failed(&self, error: &StorageError) -> Duration {
        let now = Instant::now();
        let mut recent = self.lock();
        recent.last_error = Some(error.to_string());
        recent.failures = recent.failures.saturating_add(1);
        let wait = MERGE_RETRY_FIRST
            .saturating_mul(1 << recent.failures.min(8).saturating_sub(1))
            .min(MERGE_RETRY_MAX);
        recent.retry_at = Some(now + wait);
        wait
    }

    pub(crate) fn merge_rows(&self) -> usize {
        self.merge_rows.load(Ordering::Relaxed)
    }

    pub(crate) fn set_merge_rows(&self, rows: usize) {
        self.merge_rows.store(rows.max(1), Ordering::Relaxed);
    }

    pub(crate) fn loaded_through(&self) -> u64 {
        self.lock().loaded_through
    }

    pub(crate) fn pruned_through(&self) -> u64 {
        self.lock().pruned_through
    }

    /// Adds the ids of blocks `from + 1 ..= to` (every id of those blocks, in any order).
    /// `loaded_through` advances only if the map already covered `from`, so it never skips
    /// a block it has not seen.
    pub(crate) fn insert(
        &self,
        rows: impl IntoIterator<Item = (Hash, Location)>,
        from: u64,
        to: u64,
    ) {
        let mut recent = self.lock();
        let floor = recent.pruned_through;
        // Rows above what the map already covered are new to the tail (counted once even if
        // the writer and a lookup's catch-up both bring them).
        let contiguous = recent.loaded_through >= from;
        let seen = recent.loaded_through;
        let mut fresh = 0u64;
        for (id, location) in rows {
            if location.0 <= floor {
                continue;
            }
            if contiguous && location.0 > seen {
                fresh += 1;
            }
            recent
                .map
                .entry(id)
                .and_modify(|first| *first = (*first).min(location))
                .or_insert(location);
        }
        if contiguous {
            recent.tail_rows += fresh;
            recent.loaded_through = recent.loaded_through.max(to);
        }
    }

    /// Forgets the ids of blocks up to `through`, which the merged index now covers.
    pub(crate) fn prune(&self, through: u64) {
        let mut recent = self.lock();
        if through <= recent.pruned_through {
            return;
        }
        recent.map.retain(|_, location| location.0 > through);
        recent.pruned_through = through;
        recent.loaded_through = recent.loaded_through.max(through);
        recent.generation += 1;
        // What stays is the ids above `through` (an id repeated there counts once).
        recent.tail_rows = recent.map.len() as u64;
        recent.failures = 0;
        recent.retry_at = None;
        recent.last_error = None;
    }

    /// The id's location if it is in the tail; [`Stale`] if the map forgot ids since the
    /// lookup read `generation`.
    pub(crate) fn get(&self, id: &Hash, generation: u64) -> Result<Option<Location>, Stale> {
        let recent = self.lock();
        if recent.generation != generation {
            return Err(Stale);
        }
        Ok(recent.map.get(id).copied())
    }
}

/// `transaction_ids_state.indexed_through` and the tip height, read together.
pub(crate) async fn state<'e>(
    executor: impl sqlx::SqliteExecutor<'e>,
) -> Result<(u64, u64), StorageError> {
    let row = sqlx::query(
        "SELECT indexed_through, (SELECT coalesce(max(height), 0) FROM blocks) FROM transaction_ids_state",
    )
    .fetch_one(executor)
    .await
    .map_err(StorageError::db("read the transaction id index state"))?;
    let indexed: i64 = row
        .try_get(0)
        .map_err(StorageError::db("read the transaction id index state"))?;
    let tip: i64 = row
        .try_get(1)
        .map_err(StorageError::db("read the transaction id index state"))?;
    Ok((
        u64::try_from(indexed).unwrap_or(0),
        u64::try_from(tip).unwrap_or(0),
    ))
}

/// Brings `recent` up to the committed chain: forgets what another process merged and loads
/// the ids of blocks no one has put in the map yet. A no-op in the writer's process, which
/// keeps the map current as it commits.
pub(crate) async fn catch_up(pool: &SqlitePool, recent: &RecentIds) -> Result<(), StorageError> {
    const CONTEXT: &str = "load the ids of recent transactions";
    let (indexed_through, tip) = state(pool).await?;
    if indexed_through > recent.pruned_through() {
        recent.prune(indexed_through);
    }
    let from = recent.loaded_through().max(indexed_through);
    if tip <= from {
        return Ok(());
    }
    let rows = sqlx::query(
        "SELECT id, block_height, tx_index FROM transactions WHERE block_height > $1 AND block_height <= $2",
    )
    .bind(to_i64(from))
    .bind(to_i64(tip))
    .fetch_all(pool)
    .await
    .map_err(StorageError::db(CONTEXT))?;
    let mut loaded = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: Vec<u8> = row.try_get(0).map_err(StorageError::db(CONTEXT))?;
        let height: i64 = row.try_get(1).map_err(StorageError::db(CONTEXT))?;
        let index: i64 = row.try_get(2).map_err(StorageError::db(CONTEXT))?;
        // A malformed row is `aegis verify`'s to report; here it just cannot be found by id.
        let (Ok(id), Ok(height), Ok(index)) = (
            <[u8; 32]>::try_from(id.as_slice()),
            u64::try_from(height),
            u32::try_from(index),
        ) else {
            continue;
        };
        loaded.push((Hash(id), (height, index)));
    }
    recent.insert(loaded, from, tip);
    Ok(())
}

/// Levels of `transaction_ids`. The migration's `CHECK`s and [`id_levels!`] spell the same
/// number out.
pub const ID_INDEX_LEVELS: usize = 4;

/// Every level, as the literal SQL list a lookup seeks them with (`level IN ...`), for
/// `concat!`.
macro_rules! id_levels {
    () => {
        "(1, 2, 3, 4)"
    };
}
pub(crate) use id_levels;

/// Level `k` holds up to `merge rows x ID_INDEX_FANOUT^k` ids (1,000,000 for level 1 with the
/// default merge size) before it is moved down into level `k + 1`, a slice at a time; the
/// last level has no limit. Each id is then rewritten about once per level.
pub const ID_INDEX_FANOUT: u64 = 10;

/// A full level is moved down in slices of the key space, one slice per merge, each of about
/// this many merges' worth of ids: a merge then copies at most that many ids per level aside
/// (SQLite copies rows it inserts into the table it reads) and rewrites only the pages of the
/// next level within the slice's key range, so no merge stalls appends for long, however
/// large the levels grow.
pub const ID_INDEX_SLICE_MERGES: usize = 2;

/// What one merge did.
#[derive(Debug, Default)]
pub(crate) struct Merged {
    /// The index now covers every block up to this height.
    pub through: u64,
    /// Ids moved from the tail into level 1.
    pub moved: u64,
    /// Slices of levels moved down into the next one first: (level, ids moved).
    pub cascaded: Vec<(usize, u64)>,
}

/// A level as `transaction_id_levels` records it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Level {
    entries: u64,
    /// While the level is being moved down: its slices (0 when it is not) and the next one.
    moving_slices: u64,
    moving_next: u64,
}

/// The key range `[lo, hi)` of slice `next` of `slices` over the 8-byte prefixes, as blobs
/// compared bytewise (big-endian, so in numeric order). The last slice's upper bound is 9
/// bytes of `0xFF`, above every 8-byte prefix.
fn slice_bounds(next: u64, slices: u64) -> (Vec<u8>, Vec<u8>) {
    let slices = u128::from(slices.max(1));
    let at = |k: u128| ((k << 64) / slices) as u64;
    // The first slice starts below every blob, so even a malformed prefix is moved.
    let lo = if next == 0 {
        Vec::new()
    } else {
        at(u128::from(next)).to_be_bytes().to_vec()
    };
    let hi = if u128::from(next) + 1 >= slices {
        vec![0xFF; 9]
    } else {
        at(u128::from(next) + 1).to_be_bytes().to_vec()
    };
    (lo, hi)
}

/// Moves the tail into level 1 of `transaction_ids` in one transaction on the writer
/// connection. First, every level that is full, or being moved down, moves one slice of
/// its key space into the next level (deepest first, so each has room). The caller then
/// prunes the map.
pub(crate) async fn merge(
    conn: &mut SqliteConnection,
    merge_rows: usize,
) -> Result<Merged, StorageError> {
    const CONTEXT: &str = "merge recent transaction ids into the id index";
    let db = StorageError::db(CONTEXT);
    let mut tx = Connection::begin_with(conn, "BEGIN IMMEDIATE")
        .await
        .map_err(db)?;
    let (indexed, tip) = state(&mut *tx).await?;
    let mut merged = Merged {
        through: indexed.max(tip),
        ..Merged::default()
    };
    if tip <= indexed {
        return Ok(merged);
    }
    let mut levels = read_levels(&mut tx).await?;
    let slice_ids = (merge_rows.max(1) as u64).saturating_mul(ID_INDEX_SLICE_MERGES as u64);
    let mut capacity = merge_rows.max(1) as u64;
    for level in levels.iter_mut().take(ID_INDEX_LEVELS - 1) {
        capacity = capacity.saturating_mul(ID_INDEX_FANOUT);
        if level.moving_slices == 0 && level.entries >= capacity {
            level.moving_slices = level.entries.div_ceil(slice_ids).max(1);
            level.moving_next = 0;
        }
    }
    for i in (0..ID_INDEX_LEVELS - 1).rev() {
        let level = levels[i];
        if level.moving_slices == 0 {
            continue;
        }
        let (lo, hi) = slice_bounds(level.moving_next, level.moving_slices);
        let number = i as i64 + 1;
        let moved = sqlx::query(
            "INSERT INTO transaction_ids (level, id_prefix, block_height, tx_index) \
             SELECT $2, id_prefix, block_height, tx_index FROM transaction_ids \
             WHERE level = $1 AND id_prefix >= $3 AND id_prefix < $4 \
             ORDER BY id_prefix, block_height, tx_index",
        )
        .bind(number)
        .bind(number + 1)
        .bind(lo.as_slice())
        .bind(hi.as_slice())
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        sqlx::query(
            "DELETE FROM transaction_ids WHERE level = $1 AND id_prefix >= $2 AND id_prefix < $3",
        )
        .bind(number)
        .bind(lo.as_slice())
        .bind(hi.as_slice())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        levels[i].entries = levels[i].entries.saturating_sub(moved);
        levels[i + 1].entries = levels[i + 1].entries.saturating_add(moved);
        levels[i].moving_next += 1;
        if levels[i].moving_next >= levels[i].moving_slices {
            levels[i].moving_slices = 0;
            levels[i].moving_next = 0;
        }
        merged.cascaded.push((i + 1, moved));
    }
    // Sorted by key, so level 1's pages are filled in order.
    merged.moved = sqlx::query(
        "INSERT INTO transaction_ids (level, id_prefix, block_height, tx_index) \
         SELECT 1, substr(id, 1, 8), block_height, tx_index FROM transactions \
         WHERE block_height > $1 AND block_height <= $2 ORDER BY 2, 3, 4",
    )
    .bind(to_i64(indexed))
    .bind(to_i64(tip))
    .execute(&mut *tx)
    .await
    .map_err(db)?
    .rows_affected();
    levels[0].entries = levels[0].entries.saturating_add(merged.moved);
    for (i, level) in levels.iter().enumerate() {
        sqlx::query(
            "UPDATE transaction_id_levels SET entries = $2, moving_slices = $3, moving_next = $4 WHERE level = $1",
        )
        .bind(i as i64 + 1)
        .bind(to_i64(level.entries))
        .bind(to_i64(level.moving_slices))
        .bind(to_i64(level.moving_next))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    }
    sqlx::query("UPDATE transaction_ids_state SET indexed_through = $1")
        .bind(to_i64(tip))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(merged)
}

/// The levels as recorded, level 1 first.
async fn read_levels(conn: &mut SqliteConnection) -> Result<Vec<Level>, StorageError> {
    const CONTEXT: &str = "read the transaction id index levels";
    let db = StorageError::db(CONTEXT);
    let rows = sqlx::query(
        "SELECT level, entries, moving_slices, moving_next FROM transaction_id_levels ORDER BY level",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let mut levels = Vec::with_capacity(ID_INDEX_LEVELS);
    for (i, row) in rows.iter().enumerate() {
        let number: i64 = row.try_get(0).map_err(db)?;
        let value = |column: usize| -> Result<u64, StorageError> {
            let v: i64 = row.try_get(column).map_err(db)?;
            Ok(u64::try_from(v).unwrap_or(0))
        };
        if number != i as i64 + 1 {
            break;
        }
        levels.push(Level {
            entries: value(1)?,
            moving_slices: value(2)?,
            moving_next: value(3)?,
        });
    }
    if levels.len() != ID_INDEX_LEVELS {
        return Err(StorageError::Corrupt {
            height: None,
            detail: format!(
                "corrupt transaction id index: transaction_id_levels must have one row for each level 1 to {ID_INDEX_LEVELS}; rebuild the index as docs/storage.md shows"
            ),
        });
    }
    Ok(levels)
}

/// Checks `transaction_ids` against `transactions` for `aegis verify`: every transaction of
/// an indexed block has exactly one entry and no entry is stray, the recorded level sizes are
/// right, and the index claims no block above the tip. Returns the height concerned and what
/// is wrong, if anything.
pub(crate) async fn check(pool: &SqlitePool) -> Result<Option<(u64, String)>, StorageError> {
    const CONTEXT: &str = "check the transaction id index";
    let db = StorageError::db(CONTEXT);
    // One read transaction: a merge by a running node does not move the index between the
    // queries below.
    let mut tx = pool.begin().await.map_err(db)?;
    let (indexed_through, tip) = state(&mut *tx).await?;
    if indexed_through > tip {
        return Ok(Some((
            tip + 1,
            format!(
                "integrity error: the transaction id index claims blocks up to {indexed_through}, the chain ends at {tip}"
            ),
        )));
    }
    // An entry that points at no transaction, or at one with another id.
    let stray = sqlx::query(
        "SELECT i.block_height, i.tx_index FROM transaction_ids i \
         LEFT JOIN transactions t ON t.block_height = i.block_height AND t.tx_index = i.tx_index \
         WHERE t.id IS NULL OR substr(t.id, 1, 8) != i.id_prefix OR i.block_height > $1 \
         ORDER BY i.block_height LIMIT 1",
    )
    .bind(to_i64(indexed_through))
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?;
    if let Some(row) = stray {
        let (height, index) = location(&row, CONTEXT)?;
        return Ok(Some((
            height,
            format!(
                "corrupt transaction id index: its entry for transaction {index} of block {height} does not match the stored transaction"
            ),
        )));
    }
    // A transaction of an indexed block with no entry.
    let missing = sqlx::query(concat!(
        "SELECT t.block_height, t.tx_index FROM transactions t \
         WHERE t.block_height <= $1 AND NOT EXISTS (SELECT 1 FROM transaction_ids i \
           WHERE i.level IN ",
        id_levels!(),
        " AND i.id_prefix = substr(t.id, 1, 8) \
           AND i.block_height = t.block_height AND i.tx_index = t.tx_index) \
         ORDER BY t.block_height, t.tx_index LIMIT 1",
    ))
    .bind(to_i64(indexed_through))
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?;
    if let Some(row) = missing {
        let (height, index) = location(&row, CONTEXT)?;
        return Ok(Some((
            height,
            format!(
                "corrupt transaction id index: transaction {index} of block {height} has no entry"
            ),
        )));
    }
    // Entries per level, against what merges recorded; more entries than transactions means
    // one is indexed twice.
    let counted = sqlx::query(
        "SELECT l.level, l.entries, (SELECT COUNT(*) FROM transaction_ids i WHERE i.level = l.level) \
         FROM transaction_id_levels l ORDER BY l.level",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?;
    let mut total = 0i64;
    for row in &counted {
        let level: i64 = row.try_get(0).map_err(db)?;
        let recorded: i64 = row.try_get(1).map_err(db)?;
        let actual: i64 = row.try_get(2).map_err(db)?;
        if recorded != actual {
            return Ok(Some((
                indexed_through,
                format!(
                    "corrupt transaction id index: level {level} holds {actual} entries, transaction_id_levels says {recorded}"
                ),
            )));
        }
        total += actual;
    }
    let indexed_txs: i64 =
        sqlx::query("SELECT COUNT(*) FROM transactions WHERE block_height <= $1")
            .bind(to_i64(indexed_through))
            .fetch_one(&mut *tx)
            .await
            .and_then(|row| row.try_get(0))
            .map_err(db)?;
    if counted.len() != ID_INDEX_LEVELS || total != indexed_txs {
        return Ok(Some((
            indexed_through,
            format!(
                "corrupt transaction id index: {total} entries in {} levels for {indexed_txs} transactions up to block {indexed_through}",
                counted.len()
            ),
        )));
    }
    Ok(None)
}

fn location(
    row: &sqlx::sqlite::SqliteRow,
    context: &'static str,
) -> Result<(u64, i64), StorageError> {
    let height: i64 = row.try_get(0).map_err(StorageError::db(context))?;
    let index: i64 = row.try_get(1).map_err(StorageError::db(context))?;
    Ok((u64::try_from(height).unwrap_or(0), index))
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> Hash {
        Hash([n; 32])
    }

    #[test]
    fn slices_cover_the_key_space_in_order_without_overlap() {
        for slices in 1..=9u64 {
            let bounds: Vec<_> = (0..slices).map(|k| slice_bounds(k, slices)).collect();
            assert!(bounds[0].0.is_empty());
            assert_eq!(bounds[slices as usize - 1].1, vec![0xFF; 9]);
            for pair in bounds.windows(2) {
                assert_eq!(pair[0].1, pair[1].0, "{slices} slices");
                assert!(pair[0].0 < pair[0].1);
            }
        }
        // Every 8-byte prefix falls in exactly one slice.
        for prefix in [[0u8; 8], [0x7F; 8], [0x80, 0, 0, 0, 0, 0, 0, 0], [0xFF; 8]] {
            let holding = (0..3)
                .map(|k| slice_bounds(k, 3))
                .filter(|(lo, hi)| lo.as_slice() <= &prefix[..] && &prefix[..] < hi.as_slice())
                .count();
            assert_eq!(holding, 1, "{prefix:?}");
        }
    }

    #[test]
    fn the_level_list_names_every_level() {
        let levels: Vec<String> = (1..=ID_INDEX_LEVELS).map(|l| l.to_string()).collect();
        assert_eq!(id_levels!(), format!("({})", levels.join(", ")));
        let migration = include_str!("../migrations/sqlite/0002_deferred_id_index.sql");
        assert!(migration.contains(&format!("level BETWEEN 1 AND {ID_INDEX_LEVELS}")));
    }

    #[test]
    fn keeps_the_first_occurrence_and_advances_only_contiguously() {
        let recent = RecentIds::default();
        recent.insert([(id(1), (2, 0)), (id(2), (1, 5))], 0, 2);
        assert_eq!(recent.loaded_through(), 2);
        recent.insert([(id(1), (3, 0))], 2, 3);
        let generation = recent.generation();
        assert_eq!(recent.get(&id(1), generation).ok().flatten(), Some((2, 0)));
        // A gap (blocks 4..=5 not seen) leaves loaded_through where it was.
        recent.insert([(id(3), (6, 0))], 5, 6);
        assert_eq!(recent.loaded_through(), 3);
        assert_eq!(recent.get(&id(3), generation).ok().flatten(), Some((6, 0)));
    }

    #[test]
    fn pruning_forgets_merged_ids_and_makes_a_racing_lookup_retry() {
        let recent = RecentIds::default();
        recent.insert([(id(1), (1, 0)), (id(2), (2, 0))], 0, 2);
        let before = recent.generation();
        recent.prune(1);
        assert!(recent.get(&id(2), before).is_err(), "stale generation");
        let now = recent.generation();
        assert_eq!(recent.get(&id(1), now).ok().flatten(), None);
        assert_eq!(recent.get(&id(2), now).ok().flatten(), Some((2, 0)));
        assert_eq!(recent.len(), 1);
        // Rows of merged blocks are not taken back in.
        recent.insert([(id(1), (1, 0))], 0, 1);
        assert_eq!(recent.len(), 1);
        // Pruning again at the same height changes nothing.
        recent.prune(1);
        assert_eq!(recent.generation(), now);
    }
}
