//! Group commit as the engine sees it: only through the storage traits (`dyn Ledger`), from a
//! synchronous driver on its own thread, with every block's verdict on its ticket.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use aegis_storage::fixtures::ChainFixture;
use aegis_storage::{Ledger, MAX_GROUP_COMMIT_BLOCKS, StorageError, verify_chain};
use support::TestDb;

on_both_backends!(
    blocks_submitted_through_the_traits_are_stored_when_their_tickets_resolve,
    every_refusal_and_failure_reaches_the_tickets_of_its_block,
);

/// Committers obtained from `dyn Ledger`, one after another on two handles of the store (the
/// second continues the chain the first left): every block whose ticket resolved is stored
/// and reads back as submitted.
async fn blocks_submitted_through_the_traits_are_stored_when_their_tickets_resolve(db: TestDb) {
    let store = db.open().await;
    let ledgers: [Arc<dyn Ledger>; 2] = [Arc::new(store.clone()), Arc::new(store.clone())];
    let mut fixture = ChainFixture::new(4, "aegis-test");
    let mut submitted = Vec::new();
    for ledger in &ledgers {
        let sink = ledger.group_commit(4).unwrap();
        let blocks = fixture.next_blocks(6, 3, 64, 1);
        let mut tickets = Vec::new();
        for (block, certificate) in blocks.clone() {
            tickets.push(sink.submit(block, &certificate).await.unwrap());
        }
        for ticket in tickets {
            ticket.wait().await.unwrap();
        }
        assert!(
            (1..=6).contains(&sink.commits()),
            "{} commits",
            sink.commits()
        );
        sink.finish().await.unwrap();
        submitted.extend(blocks);
    }
    for ledger in &ledgers {
        assert_eq!(ledger.height().await.unwrap(), 12);
        for (block, certificate) in &submitted {
            let stored = ledger
                .block_by_height(block.height())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(&stored.block, block);
            assert_eq!(&stored.certificate, certificate);
            let tx = &block.txs[0];
            let found = ledger.transaction(&tx.id()).await.unwrap().unwrap();
            assert_eq!((&found.transaction, found.height), (tx, block.height()));
        }
    }
    let report = verify_chain(&store, &fixture.genesis).await.unwrap();
    assert!(
        report.to_string().starts_with("Chain verified: 12 blocks"),
        "{report}"
    );
}

/// A block refused before it is queued, a block that does not follow the chain and a block
/// the database fails to store each get their error on their own ticket; the committer goes
/// on, and the failed block goes in once the database is back.
async fn every_refusal_and_failure_reaches_the_tickets_of_its_block(db: TestDb) {
    let store = db.open().await;
    let ledger: &dyn Ledger = &store;
    let mut fixture = ChainFixture::new(4, "aegis-test");
    let sink = ledger.group_commit(8).unwrap();
    let (b1, c1) = fixture.next_block(2, 16);
    let (b2, c2) = fixture.next_block(2, 16);
    sink.submit(b1, &c1).await.unwrap().wait().await.unwrap();

    // A certificate for another block: refused before it is queued.
    let error = sink.submit(b2.clone(), &c1).await.unwrap().wait().await;
    let error = error.unwrap_err();
    assert!(
        matches!(error, StorageError::InvalidBlock { height: 2, .. }),
        "{error}"
    );

    // Height 1 of another chain: refused by the writer, which has height 1 stored.
    let mut other = ChainFixture::new(4, "aegis-test");
    let (stray, stray_cert) = other.next_block(1, 8);
    let error = sink.submit(stray, &stray_cert).await.unwrap().wait().await;
    let error = error.unwrap_err();
    assert!(
        matches!(error, StorageError::NotNext { tip: 1, got: 1 }),
        "{error}"
    );

    // The database fails: the table appends write is renamed away, then back.
    store
        .execute_sql("ALTER TABLE blocks RENAME TO blocks_away")
        .await
        .unwrap();
    let error = sink.submit(b2.clone(), &c2).await.unwrap().wait().await;
    let error = error.unwrap_err();
    assert!(matches!(error, StorageError::Database { .. }), "{error}");
    store
        .execute_sql("ALTER TABLE blocks_away RENAME TO blocks")
        .await
        .unwrap();

    let (b3, c3) = fixture.next_block(3, 16);
    let retried = sink.submit(b2, &c2).await.unwrap();
    let next = sink.submit(b3, &c3).await.unwrap();
    retried.wait().await.unwrap();
    next.wait().await.unwrap();
    sink.finish().await.unwrap();
    assert_eq!(ledger.height().await.unwrap(), 3);
    let report = verify_chain(&store, &fixture.genesis).await.unwrap();
    assert!(
        report.to_string().starts_with("Chain verified: 3 blocks"),
        "{report}"
    );
}

/// The engine is a synchronous driver on a thread of its own. It enters the node's runtime,
/// starts a committer through the trait, submits and waits with `Handle::block_on`. Outside
/// any runtime, or with a group size out of range, starting one is refused with the reason.
#[test]
fn a_synchronous_driver_on_its_own_thread_commits_through_the_trait() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let db = runtime.block_on(TestDb::sqlite());
    let ledger: Arc<dyn Ledger> = Arc::new(runtime.block_on(db.open()));
    let error = ledger.group_commit(4).unwrap_err();
    assert!(error.to_string().contains("no Tokio runtime"), "{error}");

    let mut fixture = ChainFixture::new(4, "aegis-test");
    let blocks = fixture.next_blocks(10, 2, 32, 1);
    let handle = runtime.handle().clone();
    let driver = std::thread::spawn({
        let ledger = ledger.clone();
        let blocks = blocks.clone();
        move || {
            let _entered = handle.enter();
            for max_blocks in [0, MAX_GROUP_COMMIT_BLOCKS + 1] {
                let error = ledger.group_commit(max_blocks).unwrap_err();
                assert!(
                    error.to_string().contains(&format!(
                        "group commit of {max_blocks} blocks per transaction is out of range (1-{MAX_GROUP_COMMIT_BLOCKS})"
                    )),
                    "{error}"
                );
            }
            let sink = ledger.group_commit(4).unwrap();
            let tickets: Vec<_> = blocks
                .into_iter()
                .map(|(block, certificate)| handle.block_on(sink.submit(block, &certificate)))
                .collect::<Result<_, _>>()
                .unwrap();
            for ticket in tickets {
                handle.block_on(ticket.wait()).unwrap();
            }
            handle.block_on(sink.finish()).unwrap();
        }
    });
    driver.join().unwrap();
    assert_eq!(runtime.block_on(ledger.height()).unwrap(), 10);
    for (block, _) in &blocks {
        let stored = runtime
            .block_on(ledger.block_by_height(block.height()))
            .unwrap()
            .unwrap();
        assert_eq!(&stored.block, block);
    }
}
