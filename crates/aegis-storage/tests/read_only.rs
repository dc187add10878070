//! Issue 10, finding 7: read-only opens write nothing, a database held locked by another
//! process is reported as locked, and a database error is told once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use aegis_storage::fixtures::ChainFixture;
use aegis_storage::{Ledger, NodeRecord, NodeRegistry, OpenMode, SqlStore, StorageError};
use sqlx::{Connection, Executor};
use support::TestDb;

on_both_backends!(a_read_only_store_reads_and_refuses_writes);

/// Reads work; a write fails with the database's message, said once.
async fn a_read_only_store_reads_and_refuses_writes(db: TestDb) {
    let store = db.open().await;
    let mut fixture = ChainFixture::new(4, "aegis-test");
    let (block, cert) = fixture.next_block(3, 16);
    store.append_block(&block, &cert).await.unwrap();
    store.close().await;
    let reader = SqlStore::open_read_only(&db.config).await.unwrap();
    assert_eq!(reader.height().await.unwrap(), 1);
    let report = aegis_storage::verify(&db.config, &fixture.genesis)
        .await
        .unwrap();
    assert!(report.is_ok(), "{report}");
    let record = NodeRecord {
        public_key: fixture.genesis.validators[0].public_key,
        name: "node0".into(),
        p2p_address: "127.0.0.1:8000".into(),
        api_address: "127.0.0.1:8080".into(),
        is_validator: true,
        first_seen_ms: 0,
        last_seen_ms: None,
    };
    let error = reader.upsert_node(&record).await.unwrap_err().to_string();
    let phrase = if db.kind == "sqlite" {
        "attempt to write a readonly database"
    } else {
        "read-only transaction"
    };
    assert_eq!(error.matches(phrase).count(), 1, "{error}");
    reader.close().await;
}

#[tokio::test]
async fn verifying_an_empty_file_leaves_it_empty() {
    let db = TestDb::sqlite().await;
    let aegis_storage::Backend::Sqlite { path } = &db.config.backend else {
        unreachable!()
    };
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, b"").unwrap();
    let genesis = ChainFixture::new(4, "aegis-test").genesis;
    let error = aegis_storage::verify(&db.config, &genesis)
        .await
        .unwrap_err();
    assert!(
        matches!(error, StorageError::EmptyDatabase { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("is an empty file"), "{error}");
    assert_eq!(std::fs::metadata(path).unwrap().len(), 0);
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut side = path.clone().into_os_string();
        side.push(suffix);
        assert!(!std::path::Path::new(&side).exists(), "{suffix} created");
    }
}

/// A rollback-journal database held by `BEGIN EXCLUSIVE` in another connection: the open
/// fails after `pool_timeout` naming the lock, instead of a pool timeout.
#[tokio::test]
async fn a_locked_database_is_reported_as_locked() {
    let mut db = TestDb::sqlite().await;
    let store = db.open().await;
    store.close().await;
    let aegis_storage::Backend::Sqlite { path } = db.config.backend.clone() else {
        unreachable!()
    };
    let mut holder =
        sqlx::sqlite::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
    holder.execute("PRAGMA journal_mode=DELETE").await.unwrap();
    holder.execute("BEGIN EXCLUSIVE").await.unwrap();
    holder
        .execute("UPDATE transaction_ids_state SET indexed_through = indexed_through")
        .await
        .unwrap();
    db.config.pool_timeout = Duration::from_secs(1);
    let genesis = ChainFixture::new(4, "aegis-test").genesis;
    for mode in [OpenMode::ReadOnly, OpenMode::Migrate] {
        let error = match mode {
            OpenMode::ReadOnly => aegis_storage::verify(&db.config, &genesis)
                .await
                .unwrap_err(),
            _ => SqlStore::open_with(&db.config, mode).await.unwrap_err(),
        };
        assert!(
            matches!(error, StorageError::Locked { .. }),
            "{mode:?}: {error}"
        );
        let text = error.to_string();
        assert!(
            text.contains("is locked by another process") && !text.contains("pool timed out"),
            "{text}"
        );
    }
    holder.execute("ROLLBACK").await.unwrap();
    holder.close().await.unwrap();
}
