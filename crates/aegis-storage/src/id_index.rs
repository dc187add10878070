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

use aegis_types::Hash;
use sqlx::sqlite::{SqliteConnection, SqlitePool};
use sqlx::{Connection, Row};

use crate::StorageError;

/// Ids in the tail that trigger a merge into `transaction_ids`: bounds the map (about
/// 100 bytes an id, so ~10 MiB, plus at most one commit's ids above it) and the rows a
/// restart reads back to rebuild it.
pub const ID_INDEX_MERGE_ROWS: usize = 100_000;

/// Times a lookup starts over because merges kept moving ids out of the map under it. One
/// retry is enough unless merges run back to back, each taking far longer than a lookup.
pub(crate) const LOOKUP_ATTEMPTS: usize = 8;

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

    /// Ids in the map: what a merge would move.
    pub(crate) fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether the map holds enough ids to merge them into the index.
    pub(crate) fn merge_due(&self) -> bool {
        self.len() >= self.merge_rows()
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
        for (id, location) in rows {
            if location.0 <= floor {
                continue;
            }
            recent
                .map
                .entry(id)
                .and_modify(|first| *first = (*first).min(location))
                .or_insert(location);
        }
        if recent.loaded_through >= from {
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
pub(crate) async fn state(pool: &SqlitePool) -> Result<(u64, u64), StorageError> {
    let row = sqlx::query(
        "SELECT indexed_through, (SELECT coalesce(max(height), 0) FROM blocks) FROM transaction_ids_state",
    )
    .fetch_one(pool)
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
/// default merge size) before it is moved down into level `k + 1`; the last level has no
/// limit. Each id is then rewritten about once per level, and a merge into a level rewrites
/// at most that level's pages.
pub const ID_INDEX_FANOUT: u64 = 10;

/// What one merge did.
#[derive(Debug, Default)]
pub(crate) struct Merged {
    /// The index now covers every block up to this height.
    pub through: u64,
    /// Ids moved from the tail into level 1.
    pub moved: u64,
    /// Levels moved down into the next one first, with their entries.
    pub cascaded: Vec<(usize, u64)>,
}

/// Moves the tail into level 1 of `transaction_ids`, first moving down every level that has
/// reached its capacity (deepest first, so each has room), all in one transaction on the
/// writer connection. The caller then prunes the map.
pub(crate) async fn merge(
    conn: &mut SqliteConnection,
    merge_rows: usize,
) -> Result<Merged, StorageError> {
    const CONTEXT: &str = "merge recent transaction ids into the id index";
    let db = StorageError::db(CONTEXT);
    let mut tx = Connection::begin_with(conn, "BEGIN IMMEDIATE")
        .await
        .map_err(db)?;
    let row = sqlx::query(
        "SELECT indexed_through, (SELECT coalesce(max(height), 0) FROM blocks) FROM transaction_ids_state",
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(db)?;
    let indexed: i64 = row.try_get(0).map_err(db)?;
    let tip: i64 = row.try_get(1).map_err(db)?;
    let mut merged = Merged {
        through: u64::try_from(indexed.max(tip)).unwrap_or(0),
        ..Merged::default()
    };
    if tip <= indexed {
        return Ok(merged);
    }
    let mut entries = level_entries(&mut tx).await?;
    let mut capacity = merge_rows as u64;
    let capacities: Vec<u64> = (0..ID_INDEX_LEVELS)
        .map(|_| {
            capacity = capacity.saturating_mul(ID_INDEX_FANOUT);
            capacity
        })
        .collect();
    for level in (1..ID_INDEX_LEVELS).rev() {
        let (i, held) = (level - 1, entries[level - 1]);
        if held < capacities[i] {
            continue;
        }
        // SQLite copies the selected rows aside before inserting into the same table.
        sqlx::query(
            "INSERT INTO transaction_ids (level, id_prefix, block_height, tx_index) \
             SELECT $2, id_prefix, block_height, tx_index FROM transaction_ids WHERE level = $1 \
             ORDER BY id_prefix, block_height, tx_index",
        )
        .bind(level as i64)
        .bind(level as i64 + 1)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query("DELETE FROM transaction_ids WHERE level = $1")
            .bind(level as i64)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        entries[i + 1] = entries[i + 1].saturating_add(held);
        entries[i] = 0;
        merged.cascaded.push((level, held));
    }
    // Sorted by key, so level 1's pages are filled in order.
    merged.moved = sqlx::query(
        "INSERT INTO transaction_ids (level, id_prefix, block_height, tx_index) \
         SELECT 1, substr(id, 1, 8), block_height, tx_index FROM transactions \
         WHERE block_height > $1 AND block_height <= $2 ORDER BY 2, 3, 4",
    )
    .bind(indexed)
    .bind(tip)
    .execute(&mut *tx)
    .await
    .map_err(db)?
    .rows_affected();
    entries[0] = entries[0].saturating_add(merged.moved);
    for (i, count) in entries.iter().enumerate() {
        sqlx::query("UPDATE transaction_id_levels SET entries = $2 WHERE level = $1")
            .bind(i as i64 + 1)
            .bind(to_i64(*count))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
    }
    sqlx::query("UPDATE transaction_ids_state SET indexed_through = $1")
        .bind(tip)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(merged)
}

/// The recorded entries of each level, level 1 first.
async fn level_entries(conn: &mut SqliteConnection) -> Result<Vec<u64>, StorageError> {
    const CONTEXT: &str = "read the transaction id index levels";
    let rows = sqlx::query("SELECT level, entries FROM transaction_id_levels ORDER BY level")
        .fetch_all(&mut *conn)
        .await
        .map_err(StorageError::db(CONTEXT))?;
    let mut entries = Vec::with_capacity(ID_INDEX_LEVELS);
    for (i, row) in rows.iter().enumerate() {
        let level: i64 = row.try_get(0).map_err(StorageError::db(CONTEXT))?;
        let count: i64 = row.try_get(1).map_err(StorageError::db(CONTEXT))?;
        if level != i as i64 + 1 {
            break;
        }
        entries.push(u64::try_from(count).unwrap_or(0));
    }
    if entries.len() != ID_INDEX_LEVELS {
        return Err(StorageError::Corrupt {
            height: None,
            detail: format!(
                "corrupt transaction id index: transaction_id_levels must have one row for each level 1 to {ID_INDEX_LEVELS}"
            ),
        });
    }
    Ok(entries)
}

/// Checks `transaction_ids` against `transactions` for `aegis verify`: every transaction of
/// an indexed block has exactly one entry and no entry is stray, the recorded level sizes are
/// right, and the index claims no block above the tip. Returns the height concerned and what
/// is wrong, if anything.
pub(crate) async fn check(pool: &SqlitePool) -> Result<Option<(u64, String)>, StorageError> {
    const CONTEXT: &str = "check the transaction id index";
    let db = StorageError::db(CONTEXT);
    let (indexed_through, tip) = state(pool).await?;
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
    .fetch_optional(pool)
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
    .fetch_optional(pool)
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
    .fetch_all(pool)
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
            .fetch_one(pool)
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
