//! Lookup of transactions by id while SQLite's id index is filled in bulk (schema version 2):
//! across merges, from a second store on the same database, under concurrent appends, after
//! a reopen and after upgrading a version-1 ledger; and `aegis verify` catching a damaged
//! index. The backend-neutral tests also run on PostgreSQL, where there is nothing to merge.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::cell::RefCell;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aegis_storage::fixtures::ChainFixture;
use aegis_storage::{Ledger, SqlStore, StorageError, StoredTransaction};
use aegis_testkit::wait_async::retry_until;
use aegis_types::{Block, Hash};
use support::TestDb;

on_both_backends!(
    every_transaction_is_found_across_merges,
    lookups_racing_appends_and_merges_never_miss,
);

/// Asserts that `store` finds every transaction of `blocks` where it is, one by one and all
/// at once (`committed_locations`, with unknown ids among them).
async fn assert_all_found(store: &SqlStore, blocks: &[Block], who: &str) {
    let mut ids = vec![Hash([9; 32])];
    let mut expected = vec![None];
    for block in blocks {
        for (index, tx) in block.txs.iter().enumerate() {
            ids.push(tx.id());
            expected.push(Some((block.height(), index as u32)));
            ids.push(Hash([(index % 7) as u8 + 10; 32]));
            expected.push(None);
        }
    }
    assert_eq!(
        store.committed_locations(&ids).await.unwrap(),
        expected,
        "{who}: committed_locations"
    );
    for block in blocks {
        for (index, tx) in block.txs.iter().enumerate() {
            let found: StoredTransaction = store
                .transaction(&tx.id())
                .await
                .unwrap()
                .unwrap_or_else(|| {
                    panic!(
                        "{who}: transaction {index} of block {} not found",
                        block.height()
                    )
                });
            assert_eq!(&found.transaction, tx);
            assert_eq!(
                (found.height, found.index as usize),
                (block.height(), index)
            );
        }
    }
}

async fn count(db: &TestDb, store: &SqlStore, sql: &str) -> i64 {
    assert_eq!(db.kind, "sqlite");
    let aegis_storage::Backend::Sqlite { path } = &store.config().backend else {
        unreachable!()
    };
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg("import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])")
        .arg(path)
        .arg(sql)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap()
}

/// Merges every 5 ids (so level 1 holds 50, level 2 500), so a chain of 25 rounds of 7
/// transactions crosses many merges and moves level 1 down into level 2 several times: each
/// transaction is found after every append, by the writer and by a second store opened on
/// the same database (as `aegis verify` or another tool would), and again after a reopen.
async fn every_transaction_is_found_across_merges(db: TestDb) {
    let store = db.open().await;
    store.set_id_index_merge_rows(5);
    let other = SqlStore::open_existing(&db.config).await.unwrap();
    let mut fixture = ChainFixture::new(4, "aegis-test");
    let mut blocks = Vec::new();
    for round in 0..25 {
        if round % 5 == 4 {
            // Several blocks in one commit.
            let batch = fixture.next_blocks(3, 7, 16, 1);
            store.append_blocks(&batch).await.unwrap();
            blocks.extend(batch.into_iter().map(|(block, _)| block));
        } else {
            let (block, cert) = fixture.next_block(7, 16);
            store.append_block(&block, &cert).await.unwrap();
            blocks.push(block);
        }
        assert_all_found(&store, &blocks, "writer").await;
        assert_all_found(&other, &blocks, "second store").await;
    }
    assert!(
        store.transaction(&Hash([9; 32])).await.unwrap().is_none(),
        "an unknown id is not found"
    );
    if db.kind == "sqlite" {
        // The index covers whole merges; the rest is the tail.
        let indexed = count(
            &db,
            &store,
            "SELECT indexed_through FROM transaction_ids_state",
        )
        .await;
        assert!(indexed > 0, "no merge happened");
        let entries = count(&db, &store, "SELECT COUNT(*) FROM transaction_ids").await;
        assert_eq!(entries, indexed * 7);
        let level_2 = count(
            &db,
            &store,
            "SELECT COUNT(*) FROM transaction_ids WHERE level = 2",
        )
        .await;
        assert!(level_2 >= 50, "level 1 was never moved down: {level_2}");
    }
    other.close().await;
    store.close().await;
    let store = SqlStore::open_existing(&db.config).await.unwrap();
    assert_all_found(&store, &blocks, "reopened").await;
    let report = aegis_storage::verify(&db.config, &fixture.genesis)
        .await
        .unwrap();
    assert!(report.is_ok(), "{report}");
    store.close().await;
}

/// Two readers look up transactions already acknowledged while the writer keeps appending
/// and merging every 30 ids: none is ever reported missing.
async fn lookups_racing_appends_and_merges_never_miss(db: TestDb) {
    let store = db.open().await;
    store.set_id_index_merge_rows(30);
    let mut fixture = ChainFixture::new(4, "aegis-test");
    let blocks: Vec<_> = fixture.next_blocks(60, 5, 16, 2);
    let acknowledged: Arc<Mutex<Vec<(Hash, u64)>>> = Arc::default();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for reader in 0..2u64 {
        let store = store.clone();
        let acknowledged = acknowledged.clone();
        let done = done.clone();
        readers.push(tokio::spawn(async move {
            let mut lookups = 0u64;
            let mut i = reader;
            loop {
                let finished = done.load(std::sync::atomic::Ordering::Acquire);
                let sample: Vec<(Hash, u64)> = {
                    let all = acknowledged.lock().unwrap();
                    // The newest ids (likely in the map) and an older one (likely merged).
                    let n = all.len();
                    [
                        n.checked_sub(1),
                        n.checked_sub(6),
                        (n > 0).then(|| i as usize % n),
                    ]
                    .into_iter()
                    .flatten()
                    .filter_map(|k| all.get(k).copied())
                    .collect()
                };
                for (id, height) in sample {
                    let found = store.transaction(&id).await.unwrap();
                    assert_eq!(found.map(|t| t.height), Some(height), "{id} missed");
                    lookups += 1;
                }
                i = i
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                if finished {
                    return lookups;
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    for (block, cert) in &blocks {
        store.append_block(block, cert).await.unwrap();
        let mut all = acknowledged.lock().unwrap();
        all.extend(block.txs.iter().map(|tx| (tx.id(), block.height())));
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    for reader in readers {
        let lookups = reader.await.unwrap();
        assert!(lookups > 0);
    }
    store.close().await;
}

/// How docs/storage.md rebuilds the index by hand.
const REBUILD: &str = "DELETE FROM transaction_ids; \
    INSERT INTO transaction_ids SELECT 4, substr(id, 1, 8), block_height, tx_index FROM transactions ORDER BY 2, 3, 4; \
    INSERT OR REPLACE INTO transaction_id_levels (level, entries, moving_slices, moving_next) \
        VALUES (1, 0, 0, 0), (2, 0, 0, 0), (3, 0, 0, 0), (4, (SELECT COUNT(*) FROM transaction_ids), 0, 0); \
    INSERT OR REPLACE INTO transaction_ids_state (singleton, indexed_through) \
        VALUES (1, (SELECT coalesce(max(height), 0) FROM blocks));";

/// `aegis verify` reports a damaged index with the height, and the words it greps for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_id_index_is_reported_by_verify() {
    let db = TestDb::sqlite().await;
    let store = db.open().await;
    store.set_id_index_merge_rows(10);
    let mut fixture = ChainFixture::new(4, "aegis-test");
    for (block, cert) in fixture.next_blocks(8, 4, 16, 1) {
        store.append_block(&block, &cert).await.unwrap();
    }
    let verify = || aegis_storage::verify(&db.config, &fixture.genesis);
    assert!(verify().await.unwrap().is_ok());
    let damages = [
        (
            "DELETE FROM transaction_ids WHERE block_height = 2 AND tx_index = 1",
            2,
            "corrupt transaction id index: transaction 1 of block 2 has no entry",
        ),
        (
            "UPDATE transaction_ids SET id_prefix = X'0000000000000000' WHERE block_height = 3 AND tx_index = 0",
            3,
            "corrupt transaction id index: its entry for transaction 0 of block 3 does not match",
        ),
        (
            "UPDATE transaction_ids_state SET indexed_through = 99",
            9,
            "integrity error: the transaction id index claims blocks up to 99, the chain ends at 8",
        ),
        (
            "INSERT INTO transaction_ids SELECT 3, id_prefix, block_height, tx_index FROM transaction_ids WHERE level != 3 AND block_height = 5",
            8,
            "corrupt transaction id index: level 3 holds 4 entries, transaction_id_levels says 0",
        ),
        (
            "INSERT INTO transaction_ids SELECT 3, id_prefix, block_height, tx_index FROM transaction_ids WHERE level != 3 AND block_height = 5; \
             UPDATE transaction_id_levels SET entries = 4 WHERE level = 3",
            8,
            "corrupt transaction id index: 36 entries in 4 levels for 32 transactions up to block 8",
        ),
    ];
    for (damage, height, problem) in damages {
        store.execute_sql(damage).await.unwrap();
        let report = verify().await.unwrap();
        let fault = report
            .fault
            .clone()
            .unwrap_or_else(|| panic!("{damage}: not caught"));
        assert_eq!(fault.height, height, "{damage}: {report}");
        assert!(fault.problem.starts_with(problem), "{damage}: {report}");
        assert!(
            report
                .to_string()
                .ends_with("(all 8 blocks and 32 transactions verified)"),
            "{report}"
        );
        // Repair it the way it was damaged, from the transactions themselves.
        store.execute_sql(REBUILD).await.unwrap();
        assert!(verify().await.unwrap().is_ok(), "{damage}: repair");
    }
    store.close().await;
}

/// When merges keep failing, appends go on (the ids wait in the map, still found) until the
/// tail reaches its bound; then appends are refused with the reason, and they resume once
/// the index is repaired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_stop_at_the_tail_bound_while_merges_fail() {
    let db = TestDb::sqlite().await;
    let store = db.open().await;
    store.set_id_index_merge_rows(5);
    let mut fixture = ChainFixture::new(4, "aegis-test");
    let (block, cert) = fixture.next_block(7, 16);
    store.append_block(&block, &cert).await.unwrap();
    // Merges now fail: a level's row is gone.
    store
        .execute_sql("DELETE FROM transaction_id_levels WHERE level = 2")
        .await
        .unwrap();
    let mut stored = vec![block];
    let (refused, (block, cert)) = loop {
        let (block, cert) = fixture.next_block(7, 16);
        match store.append_block(&block, &cert).await {
            Ok(()) => stored.push(block),
            Err(error) => break (error, (block, cert)),
        }
        assert!(stored.len() < 20, "appends never stopped");
    };
    assert_eq!(
        store.height().await.unwrap(),
        stored.len() as u64,
        "nothing stored"
    );
    let message = refused.to_string();
    assert!(
        message.contains("wait to be merged into the index, over the limit of 50")
            && message.contains("transaction_id_levels must have one row for each level"),
        "{message}"
    );
    assert_all_found(&store, &stored, "while merges fail").await;
    let fault = store
        .id_index_fault()
        .expect("the fault is reported for /health");
    assert!(fault.contains("over the limit of 50"), "{fault}");
    // Refused again at once while the retry delay runs, nothing stored.
    let again = store.append_block(&block, &cert).await.unwrap_err();
    assert!(matches!(again, StorageError::IdIndex(_)), "{again}");
    assert_eq!(store.height().await.unwrap(), stored.len() as u64);
    store.execute_sql(REBUILD).await.unwrap();
    // The writer tries again once the retry delay (1 s after the first failure) has passed.
    let last_error = RefCell::new(String::new());
    retry_until(
        Duration::from_secs(60),
        || {
            format!(
                "appends to resume; the last one failed: {}",
                last_error.borrow()
            )
        },
        async || match store.append_block(&block, &cert).await {
            Ok(()) => true,
            Err(error) => {
                assert!(matches!(error, StorageError::IdIndex(_)), "{error}");
                *last_error.borrow_mut() = error.to_string();
                false
            }
        },
    )
    .await;
    stored.push(block);
    assert_all_found(&store, &stored, "after the repair").await;
    assert_eq!(store.id_index_fault(), None);
    let report = aegis_storage::verify(&db.config, &fixture.genesis)
        .await
        .unwrap();
    assert!(report.is_ok(), "{report}");
    store.close().await;
}

/// A ledger written by a version-1 binary (an ordinary index on the id) is upgraded at open:
/// its index is rebuilt as the table and every transaction is still found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_ledger_is_upgraded_with_its_index() {
    let db = TestDb::sqlite().await;
    let store = db.open().await;
    let mut fixture = ChainFixture::new(4, "aegis-test");
    let batch = fixture.next_blocks(6, 5, 16, 1);
    store.append_blocks(&batch).await.unwrap();
    // Back to what version 1 left on disk.
    store
        .execute_sql(
            "DROP TABLE transaction_ids; DROP TABLE transaction_ids_state; DROP TABLE transaction_id_levels; \
             CREATE INDEX transactions_id_idx ON transactions (substr(id, 1, 8)); \
             DROP TABLE consensus_runs; \
             DELETE FROM aegis_schema_migrations WHERE version >= 2",
        )
        .await
        .unwrap();
    store.close().await;
    let (store, report) = SqlStore::open_with(&db.config, aegis_storage::OpenMode::Migrate)
        .await
        .unwrap();
    assert_eq!(
        (report.from, report.to),
        (1, aegis_storage::SCHEMA_VERSION),
        "{report}"
    );
    let blocks: Vec<Block> = batch.into_iter().map(|(block, _)| block).collect();
    assert_all_found(&store, &blocks, "upgraded").await;
    assert_eq!(
        count(
            &db,
            &store,
            "SELECT COUNT(*) FROM transaction_ids WHERE level = 4"
        )
        .await,
        30
    );
    assert_eq!(
        count(
            &db,
            &store,
            "SELECT indexed_through FROM transaction_ids_state"
        )
        .await,
        6
    );
    let report = aegis_storage::verify(&db.config, &fixture.genesis)
        .await
        .unwrap();
    assert!(report.is_ok(), "{report}");
    store.close().await;
}
