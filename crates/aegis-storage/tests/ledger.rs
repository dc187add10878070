//! The ledger on both backends: append and read back, migrations, tampering caught by
//! verification, the nodes table, the guide's maintenance statements, faults.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::process::Command;
use std::time::Duration;

use aegis_storage::fixtures::ChainFixture;
use aegis_storage::{
    Ledger, NodeRecord, NodeRegistry, OpenMode, SCHEMA_VERSION, SqlStore, StorageError,
    StoreConfig, check_tip, verify_chain,
};
use aegis_testkit::wait_async::retry_until;
use aegis_types::{Hash, PublicKey};
use support::TestDb;

on_both_backends!(
    append_and_read_back,
    appends_that_do_not_follow_the_tip_are_refused,
    migrations_run_twice_are_a_no_op,
    a_newer_schema_is_refused,
    tampered_rows_are_caught_with_their_height,
    nodes_table_records_peers,
    guide_maintenance_statements_keep_the_ledger_valid,
    group_commit_acknowledges_each_block_once_stored,
);

/// The pipelined group committer: every block it acknowledges is stored, in order; a block
/// that does not follow the chain is refused on its own, without taking its group with it.
async fn group_commit_acknowledges_each_block_once_stored(db: TestDb) {
    let store = db.open().await;
    let mut fixture = ChainFixture::new(4, "aegis-test");
    let group = store.group_committer(4);
    let blocks = fixture.next_blocks(10, 3, 64, 1);
    let mut tickets = Vec::new();
    for (block, cert) in blocks.clone() {
        tickets.push(group.submit(block, &cert).await.unwrap());
    }
    // A block that repeats height 5 with different contents, queued behind the rest.
    let mut other = ChainFixture::new(4, "aegis-test");
    let stray = other.next_blocks(5, 1, 8, 1).pop().unwrap();
    let stray_ticket = group.submit(stray.0, &stray.1).await.unwrap();
    for ticket in tickets {
        ticket.wait().await.unwrap();
    }
    let error = stray_ticket.wait().await.unwrap_err();
    assert!(matches!(error, StorageError::NotNext { .. }), "{error}");
    assert!(group.commits() < 11, "{} commits", group.commits());
    // More after the refusal still goes in.
    let (next, cert) = fixture.next_block(2, 16);
    group
        .submit(next, &cert)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    group.finish().await;
    assert_eq!(store.height().await.unwrap(), 11);
    for (block, _) in &blocks {
        let stored = store
            .block_by_height(block.height())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&stored.block, block);
    }
    let report = verify_chain(&store, &fixture.genesis).await.unwrap();
    assert!(
        report.to_string().starts_with("Chain verified: 11 blocks"),
        "{report}"
    );
}

async fn append_and_read_back(db: TestDb) {
    let store = db.open().await;
    assert_eq!(store.height().await.unwrap(), 0);
    assert_eq!(store.tip().await.unwrap(), None);
    assert!(store.block_by_height(1).await.unwrap().is_none());

    let mut fixture = ChainFixture::new(4, "aegis-test");
    let mut appended = Vec::new();
    for txs in [0, 1, 7, 100] {
        let (block, cert) = fixture.next_block(txs, 256);
        store.append_block(&block, &cert).await.unwrap();
        appended.push((block, cert));
    }
    // A batch: several blocks in one transaction.
    let batch = fixture.next_blocks(3, 5, 32, 1);
    store.append_blocks(&batch).await.unwrap();
    appended.extend(batch);

    assert_eq!(store.height().await.unwrap(), 7);
    let tip = store.tip().await.unwrap().unwrap();
    assert_eq!(tip.hash, appended[6].0.hash());

    for (block, cert) in &appended {
        let stored = store
            .block_by_height(block.height())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&stored.block, block);
        assert_eq!(&stored.certificate, cert);
        assert_eq!(stored.columns.hash, block.hash());
        assert_eq!(stored.columns.tx_ids, block.tx_ids());
        let by_hash = store.block_by_hash(&block.hash()).await.unwrap().unwrap();
        assert_eq!(by_hash, stored);
        let (header, header_cert) = store.header(block.height()).await.unwrap().unwrap();
        assert_eq!(&header, &block.header);
        assert_eq!(&header_cert, cert);
        for (index, tx) in block.txs.iter().enumerate() {
            let found = store.transaction(&tx.id()).await.unwrap().unwrap();
            assert_eq!(&found.transaction, tx);
            assert_eq!(found.height, block.height());
            assert_eq!(found.index as usize, index);
        }
    }
    let range = store.blocks(2, 5).await.unwrap();
    assert_eq!(range.len(), 4);
    assert_eq!(range[0].block, appended[1].0);
    assert_eq!(range[3].block, appended[4].0);
    assert_eq!(store.blocks(6, 100).await.unwrap().len(), 2);
    assert!(store.blocks(8, 100).await.unwrap().is_empty());
    assert!(store.transaction(&Hash([7; 32])).await.unwrap().is_none());
    assert!(store.block_by_hash(&Hash([7; 32])).await.unwrap().is_none());

    let (nodes, blocks, txs) = store.table_counts().await.unwrap();
    assert_eq!((nodes, blocks, txs), (0, 7, 108 + 15));

    // Reopening sees the same chain; the whole chain verifies.
    store.close().await;
    let store = SqlStore::open_existing(&db.config).await.unwrap();
    assert_eq!(store.height().await.unwrap(), 7);
    let report = verify_chain(&store, &fixture.genesis).await.unwrap();
    assert!(report.is_ok(), "{report}");
    assert!(
        report.to_string().starts_with("Chain verified: 7 blocks"),
        "{report}"
    );
    assert_eq!(
        check_tip(&store, &fixture.genesis).await.unwrap(),
        Some(tip)
    );
}

async fn appends_that_do_not_follow_the_tip_are_refused(db: TestDb) {
    let store = db.open().await;
    let mut fixture = ChainFixture::new(4, "aegis-test");
    let (b1, c1) = fixture.next_block(2, 16);
    let (b2, c2) = fixture.next_block(2, 16);
    // Height 2 before height 1.
    let error = store.append_block(&b2, &c2).await.unwrap_err();
    assert!(
        matches!(error, StorageError::NotNext { tip: 0, got: 2 }),
        "{error}"
    );
    store.append_block(&b1, &c1).await.unwrap();
    // The same block again (a retry after an unknown outcome) is a no-op.
    store.append_block(&b1, &c1).await.unwrap();
    // Another block at a stored height is refused.
    let mut other_chain = ChainFixture::new(4, "aegis-test");
    let (other1, other_cert1) = other_chain.next_block(1, 1);
    let error = store.append_block(&other1, &other_cert1).await.unwrap_err();
    assert!(
        matches!(error, StorageError::NotNext { tip: 1, got: 1 }),
        "{error}"
    );
    // A certificate for another block.
    let error = store.append_block(&b2, &c1).await.unwrap_err();
    assert!(
        matches!(error, StorageError::InvalidBlock { height: 2, .. }),
        "{error}"
    );
    // A block that does not link to the tip.
    let mut other = ChainFixture::new(4, "aegis-test");
    other.next_block(1, 1);
    let (fork2, fork_cert) = other.next_block(1, 1);
    let error = store.append_block(&fork2, &fork_cert).await.unwrap_err();
    assert!(
        matches!(error, StorageError::BrokenLink { height: 2, .. }),
        "{error}"
    );
    // A body that does not match its header.
    let mut bad = b2.clone();
    bad.txs.pop();
    let error = store.append_block(&bad, &c2).await.unwrap_err();
    assert!(
        matches!(error, StorageError::InvalidBlock { .. }),
        "{error}"
    );
    // Nothing of the refused appends was stored.
    assert_eq!(store.height().await.unwrap(), 1);
    assert_eq!(store.table_counts().await.unwrap(), (0, 1, 2));
    store.append_block(&b2, &c2).await.unwrap();
    assert_eq!(store.height().await.unwrap(), 2);
    // A batch that overlaps the stored tip stores only the new blocks.
    let (b3, c3) = fixture.next_block(2, 16);
    let batch = vec![(b2.clone(), c2.clone()), (b3, c3)];
    store.append_blocks(&batch).await.unwrap();
    assert_eq!(store.height().await.unwrap(), 3);
    assert_eq!(store.table_counts().await.unwrap(), (0, 3, 6));
    let report = verify_chain(&store, &fixture.genesis).await.unwrap();
    assert!(report.is_ok(), "{report}");
}

async fn migrations_run_twice_are_a_no_op(db: TestDb) {
    let (store, report) = SqlStore::open_with(&db.config, OpenMode::Migrate)
        .await
        .unwrap();
    assert_eq!(report.from, 0);
    assert_eq!(report.to, SCHEMA_VERSION);
    assert_eq!(report.applied.len(), SCHEMA_VERSION as usize);
    let mut fixture = ChainFixture::new(1, "aegis-test");
    let (block, cert) = fixture.next_block(3, 10);
    store.append_block(&block, &cert).await.unwrap();
    let again = store.migrate().await.unwrap();
    assert!(again.applied.is_empty(), "{again}");
    assert_eq!(
        again.to_string(),
        format!("Schema is up to date (version {SCHEMA_VERSION})")
    );
    let (_, third) = SqlStore::open_with(&db.config, OpenMode::Migrate)
        .await
        .unwrap();
    assert!(third.applied.is_empty());
    assert_eq!(store.table_counts().await.unwrap(), (0, 1, 3));
    assert_eq!(store.check_schema().await.unwrap(), SCHEMA_VERSION);
}

async fn a_newer_schema_is_refused(db: TestDb) {
    let store = db.open().await;
    store
        .execute_sql("INSERT INTO aegis_schema_migrations (version, name, checksum, applied_at_ms) VALUES (99, 'from_the_future', 'x', 0)")
        .await
        .unwrap();
    store.close().await;
    for mode in [OpenMode::Migrate, OpenMode::Existing] {
        let error = SqlStore::open_with(&db.config, mode).await.unwrap_err();
        assert!(
            matches!(error, StorageError::SchemaTooNew { found: 99, .. }),
            "{error}"
        );
        assert!(
            error.to_string().contains("newer than this aegis binary"),
            "{error}"
        );
    }
}

/// Tampers one row at a time, from the top down, so each tamper is the lowest fault.
async fn tampered_rows_are_caught_with_their_height(db: TestDb) {
    let store = db.open().await;
    let mut fixture = ChainFixture::new(4, "aegis-test");
    for _ in 0..12 {
        let (block, cert) = fixture.next_block(5, 40);
        store.append_block(&block, &cert).await.unwrap();
    }
    let report = verify_chain(&store, &fixture.genesis).await.unwrap();
    assert!(
        report
            .to_string()
            .starts_with("Chain verified: 12 blocks, 60 transactions"),
        "{report}"
    );

    let postgres = db.kind == "postgresql";
    let blob = |hex: &str| {
        if postgres {
            format!("'\\x{hex}'::bytea")
        } else {
            format!("X'{hex}'")
        }
    };
    let tampers: Vec<(u64, String, &[&str])> = vec![
        // The tip's certificate bytes replaced by garbage.
        (
            12,
            format!(
                "UPDATE blocks SET certificate = {} WHERE height = 12",
                blob("00ff")
            ),
            &["corrupt"],
        ),
        // A transaction's signature.
        (
            11,
            format!(
                "UPDATE transactions SET signature = {} WHERE block_height = 11 AND tx_index = 2",
                blob(&"11".repeat(64))
            ),
            &["integrity", "signature"],
        ),
        // A payload (the id no longer matches the contents).
        (
            9,
            format!(
                "UPDATE transactions SET payload = {} WHERE block_height = 9 AND tx_index = 4",
                blob("deadbeef")
            ),
            &["checksum"],
        ),
        // The readable hash column.
        (
            7,
            format!(
                "UPDATE blocks SET hash = '{}' WHERE height = 7",
                "ab".repeat(32)
            ),
            &["checksum"],
        ),
        // A readable column that is not hashed anywhere.
        (
            6,
            "UPDATE blocks SET consensus_view = consensus_view + 1 WHERE height = 6".to_owned(),
            &["corrupt", "consensus_view"],
        ),
        // A deleted transaction row.
        (
            5,
            "DELETE FROM transactions WHERE block_height = 5 AND tx_index = 0".to_owned(),
            &["corrupt"],
        ),
        // A nonce changed in place (id and signature both break; the id is checked first).
        (
            3,
            "UPDATE transactions SET nonce = nonce + 1 WHERE block_height = 3 AND tx_index = 1"
                .to_owned(),
            &["checksum"],
        ),
        // A sender that is not a 32-byte key.
        (
            2,
            "UPDATE transactions SET sender = 'not hex' WHERE block_height = 2 AND tx_index = 0"
                .to_owned(),
            &["corrupt"],
        ),
    ];
    for (height, sql, words) in tampers {
        assert_eq!(store.execute_sql(&sql).await.unwrap(), 1, "{sql}");
        let report = verify_chain(&store, &fixture.genesis).await.unwrap();
        let fault = report
            .fault
            .clone()
            .unwrap_or_else(|| panic!("not caught: {sql}"));
        assert_eq!(fault.height, height, "{sql}: {report}");
        assert_eq!(report.blocks_verified, height - 1, "{report}");
        let text = report.to_string();
        assert!(text.contains(&format!("at height {height}")), "{text}");
        for word in words {
            assert!(text.contains(word), "{sql}: expected {word:?} in {text}");
        }
        assert!(
            ["integrity", "corrupt", "checksum"]
                .iter()
                .any(|w| text.contains(w)),
            "{text}"
        );
    }
    // The start-up check looks at the tip, whose certificate was the first thing broken.
    let error = check_tip(&store, &fixture.genesis).await.unwrap_err();
    assert!(
        matches!(
            error,
            StorageError::Corrupt {
                height: Some(12),
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("corrupt"), "{error}");
}

async fn nodes_table_records_peers(db: TestDb) {
    let store = db.open().await;
    let a = NodeRecord {
        public_key: PublicKey([1; 32]),
        name: "node0".into(),
        p2p_address: "10.0.0.1:8000".into(),
        api_address: "10.0.0.1:8080".into(),
        is_validator: true,
        first_seen_ms: 1_000,
        last_seen_ms: None,
    };
    let b = NodeRecord {
        public_key: PublicKey([2; 32]),
        name: "peer-x".into(),
        p2p_address: "10.0.0.9:8000".into(),
        api_address: String::new(),
        is_validator: false,
        first_seen_ms: 2_000,
        last_seen_ms: Some(2_500),
    };
    store.upsert_node(&b).await.unwrap();
    store.upsert_node(&a).await.unwrap();
    assert!(store.mark_seen(&a.public_key, 5_000).await.unwrap());
    // An older sighting does not move last_seen back; an unknown key is reported.
    assert!(store.mark_seen(&a.public_key, 4_000).await.unwrap());
    assert!(!store.mark_seen(&PublicKey([9; 32]), 1).await.unwrap());
    // Re-upserting with a new address keeps first_seen and the later last_seen.
    let moved = NodeRecord {
        p2p_address: "10.0.0.2:8000".into(),
        first_seen_ms: 3_000,
        last_seen_ms: Some(4_500),
        ..a.clone()
    };
    store.upsert_node(&moved).await.unwrap();
    let nodes = store.nodes().await.unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0].name, "node0");
    assert_eq!(nodes[0].p2p_address, "10.0.0.2:8000");
    assert_eq!(nodes[0].first_seen_ms, 1_000);
    assert_eq!(nodes[0].last_seen_ms, Some(5_000));
    assert_eq!(nodes[1], b);
    assert_eq!(store.table_counts().await.unwrap().0, 2);
    // Consensus runs: per key, recorded once and kept across reopening.
    assert!(!store.consensus_ran(&a.public_key).await.unwrap());
    store
        .record_consensus_run(&a.public_key, 6_000)
        .await
        .unwrap();
    store
        .record_consensus_run(&a.public_key, 7_000)
        .await
        .unwrap();
    assert!(store.consensus_ran(&a.public_key).await.unwrap());
    assert!(!store.consensus_ran(&b.public_key).await.unwrap());
    store.close().await;
    let store = db.open().await;
    assert!(store.consensus_ran(&a.public_key).await.unwrap());
}

/// The guide's maintenance statements, run by an operator's `psql` (or `sqlite3`) while the
/// node has the database open, leave it usable and valid.
async fn guide_maintenance_statements_keep_the_ledger_valid(db: TestDb) {
    let store = db.open().await;
    let mut fixture = ChainFixture::new(4, "aegis-test");
    for _ in 0..5 {
        let (block, cert) = fixture.next_block(20, 64);
        store.append_block(&block, &cert).await.unwrap();
    }
    match db.url() {
        Some(url) => {
            let database = url.rsplit('/').next().unwrap().split('?').next().unwrap();
            for sql in [
                "SELECT COUNT(*) FROM nodes".to_owned(),
                "SELECT COUNT(*) FROM blocks".to_owned(),
                "SELECT COUNT(*) FROM transactions".to_owned(),
                format!("REINDEX DATABASE {database}"),
                "ANALYZE".to_owned(),
                "VACUUM FULL".to_owned(),
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
                    .to_owned(),
            ] {
                psql(url, &sql);
            }
            let tables = psql(
                url,
                "SELECT string_agg(table_name, ',' ORDER BY table_name) FROM information_schema.tables WHERE table_schema = 'public'",
            );
            let tables: Vec<&str> = tables.trim().split(',').collect();
            for table in ["nodes", "blocks", "transactions"] {
                assert!(tables.contains(&table), "{table} missing from {tables:?}");
            }
        }
        None => {
            for sql in [
                "REINDEX",
                "ANALYZE",
                "VACUUM",
                "PRAGMA wal_checkpoint(TRUNCATE)",
            ] {
                store.execute_sql(sql).await.unwrap();
            }
        }
    }
    // The open store keeps working after the statements.
    let (block, cert) = fixture.next_block(20, 64);
    store.append_block(&block, &cert).await.unwrap();
    let report = verify_chain(&store, &fixture.genesis).await.unwrap();
    assert!(
        report.to_string().starts_with("Chain verified: 6 blocks"),
        "{report}"
    );
}

fn psql(url: &str, sql: &str) -> String {
    let output = Command::new(aegis_storage::testing::pg_tool("psql"))
        .args([
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            url,
            "-c",
            sql,
        ])
        .output()
        .expect("run psql");
    assert!(
        output.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_dump_and_pg_restore_round_trip_verifies() {
    let source = TestDb::postgres().await;
    let store = source.open().await;
    let mut fixture = ChainFixture::new(4, "aegis-test");
    for _ in 0..8 {
        let (block, cert) = fixture.next_block(10, 100);
        store.append_block(&block, &cert).await.unwrap();
    }
    store
        .upsert_node(&NodeRecord {
            public_key: PublicKey([3; 32]),
            name: "node0".into(),
            p2p_address: "127.0.0.1:8000".into(),
            api_address: "127.0.0.1:8080".into(),
            is_validator: true,
            first_seen_ms: 1,
            last_seen_ms: Some(2),
        })
        .await
        .unwrap();
    let dump = source.dir.path().join("aegis_backup_latest.sql");
    // The guide's backup is a custom-format dump (`pg_restore` reads it).
    let status = Command::new(aegis_storage::testing::pg_tool("pg_dump"))
        .args(["-Fc", "-f"])
        .arg(&dump)
        .arg(source.url().unwrap())
        .status()
        .unwrap();
    assert!(status.success());

    // `createdb aegis; pg_restore -d aegis backup` into a fresh database.
    let target = TestDb::postgres().await;
    let output = Command::new(aegis_storage::testing::pg_tool("pg_restore"))
        .args(["--no-owner", "-d"])
        .arg(target.url().unwrap())
        .arg(&dump)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        psql(target.url().unwrap(), "SELECT COUNT(*) FROM nodes").trim(),
        "1"
    );

    let restored = SqlStore::open_existing(&target.config).await.unwrap();
    assert_eq!(restored.table_counts().await.unwrap(), (1, 8, 80));
    let report = verify_chain(&restored, &fixture.genesis).await.unwrap();
    assert!(
        report.to_string().starts_with("Chain verified: 8 blocks"),
        "{report}"
    );
    // The restored ledger accepts the next block.
    let (block, cert) = fixture.next_block(10, 100);
    restored.append_block(&block, &cert).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_postgres_is_retried_then_reported_without_the_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config =
        StoreConfig::postgres(format!("postgres://aegis:hunter2@127.0.0.1:{port}/aegis"));
    config.pool_timeout = Duration::from_secs(2);
    let started = std::time::Instant::now();
    let error = SqlStore::open(&config).await.unwrap_err();
    let waited = started.elapsed();
    let text = error.to_string();
    assert!(matches!(error, StorageError::Unreachable { .. }), "{text}");
    assert!(
        text.contains(&format!("postgres://aegis:***@127.0.0.1:{port}/aegis")),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
    assert!(waited >= Duration::from_secs(1), "gave up after {waited:?}");
    // It gives up: the bound is loose so a loaded machine cannot fail it.
    assert!(
        waited < Duration::from_secs(60),
        "still retrying after {waited:?}"
    );
}

/// A full database (SQLite's page limit stands in for a full disk) makes appends fail
/// without damage; raising the limit lets them continue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_full_disk_fails_appends_then_recovers() {
    let mut db = TestDb::sqlite().await;
    db.config.pool_size = 1;
    db.config.max_overflow = 0;
    let store = db.open().await;
    let mut fixture = ChainFixture::new(4, "aegis-test");
    let (block, cert) = fixture.next_block(10, 100);
    store.append_block(&block, &cert).await.unwrap();
    store
        .execute_sql("PRAGMA max_page_count = 1")
        .await
        .unwrap();
    let (big, big_cert) = fixture.next_block(200, 4096);
    let error = store.append_block(&big, &big_cert).await.unwrap_err();
    assert!(error.is_transient(), "{error}");
    assert!(error.to_string().contains("full"), "{error}");
    assert_eq!(store.height().await.unwrap(), 1);
    store
        .execute_sql("PRAGMA max_page_count = 1073741823")
        .await
        .unwrap();
    store.append_block(&big, &big_cert).await.unwrap();
    let report = verify_chain(&store, &fixture.genesis).await.unwrap();
    assert!(
        report.to_string().starts_with("Chain verified: 2 blocks"),
        "{report}"
    );
}

/// The database server going away mid-run: appends fail, nothing is damaged, and appends
/// work again once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_lost_mid_run_fails_appends_then_recovers() {
    // Always its own throwaway cluster (even when AEGIS_TEST_DATABASE_URL names a shared
    // one), since the test stops and starts the server.
    let cluster = tokio::task::spawn_blocking(|| aegis_storage::testing::PgCluster::start(false))
        .await
        .unwrap()
        .unwrap();
    aegis_storage::testing::create_database(&cluster.url("postgres"), "aegis")
        .await
        .unwrap();
    let mut config = StoreConfig::postgres(cluster.url("aegis"));
    config.pool_timeout = Duration::from_secs(3);
    let store = SqlStore::open(&config).await.unwrap();
    let mut fixture = ChainFixture::new(4, "aegis-test");
    let (block, cert) = fixture.next_block(10, 100);
    store.append_block(&block, &cert).await.unwrap();

    let pg_ctl = |action: &str| {
        let mut command = match &cluster.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"])
                    .arg(cluster.bin_dir.join("pg_ctl"));
                c
            }
            None => Command::new(cluster.bin_dir.join("pg_ctl")),
        };
        command.arg("-D").arg(cluster.dir.join("data"));
        if action == "stop" {
            command.args(["-m", "fast", "-w", "stop"]);
        } else {
            command
                .arg("-o")
                .arg(format!(
                    "-p {} -k {} -c listen_addresses=127.0.0.1",
                    cluster.port,
                    cluster.dir.display()
                ))
                .arg("-l")
                .arg(cluster.dir.join("server.log"))
                .args(["-w", "start"]);
        }
        assert!(command.status().unwrap().success(), "pg_ctl {action}");
    };
    pg_ctl("stop");
    let (next, next_cert) = fixture.next_block(10, 100);
    let error = store.append_block(&next, &next_cert).await.unwrap_err();
    assert!(error.is_transient(), "{error}");
    pg_ctl("start");
    // The pool replaces its dead connections; retry as the engine would.
    retry_until(
        Duration::from_secs(30),
        "an append to succeed after the server came back",
        async || store.append_block(&next, &next_cert).await.is_ok(),
    )
    .await;
    let report = verify_chain(&store, &fixture.genesis).await.unwrap();
    assert!(
        report.to_string().starts_with("Chain verified: 2 blocks"),
        "{report}"
    );
    store.close().await;
    cluster.stop();
}
