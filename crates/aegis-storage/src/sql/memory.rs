//! SQLite's own memory figure: what every SQLite connection of this process holds (page
//! caches, prepared statements, schema), as SQLite counts it (`sqlite3_status64` with
//! `SQLITE_STATUS_MEMORY_USED`). `/status` shows it beside the resident size, so an operator
//! (and `aegis bench`'s long runs) can tell the page caches filling up to their configured
//! bound ([`super::connect::SQLITE_WRITER_CACHE`], [`super::connect::SQLITE_READER_CACHE`])
//! from the node's own memory.

/// Bytes SQLite holds now and the most it has held since the process started. `None` when
/// SQLite cannot tell (built without memory statistics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SqliteMemory {
    pub used_bytes: i64,
    pub highwater_bytes: i64,
}

/// SQLite's memory in this process (0 before the first SQLite connection opens).
pub fn sqlite_memory() -> Option<SqliteMemory> {
    let mut used: i64 = 0;
    let mut highwater: i64 = 0;
    // SAFETY: `sqlite3_status64` only writes the two 64-bit integers it is handed, which live
    // on this stack frame for the whole call; it is thread-safe (SQLite's global statistics
    // are read under its own mutex) and needs no open connection or initialisation.
    #[expect(
        unsafe_code,
        reason = "SQLite's process-wide memory statistic has no safe wrapper in sqlx"
    )]
    let rc = unsafe {
        libsqlite3_sys::sqlite3_status64(
            libsqlite3_sys::SQLITE_STATUS_MEMORY_USED,
            &mut used,
            &mut highwater,
            0,
        )
    };
    (rc == libsqlite3_sys::SQLITE_OK).then_some(SqliteMemory {
        used_bytes: used,
        highwater_bytes: highwater,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SqlStore, StoreConfig};

    #[tokio::test]
    async fn sqlite_counts_the_memory_of_an_open_store() {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig::sqlite(dir.path().join("ledger.db"));
        let store = SqlStore::open(&config).await.unwrap();
        let memory = sqlite_memory().expect("SQLite keeps memory statistics");
        assert!(memory.used_bytes > 0, "{memory:?}");
        assert!(memory.highwater_bytes >= memory.used_bytes, "{memory:?}");
        drop(store);
    }
}
