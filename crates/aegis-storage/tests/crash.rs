//! Crash safety: a writer process killed with SIGKILL in the middle of appends leaves a
//! ledger that verifies, holds every block the writer reported stored, and accepts the next
//! block. The writer is this test binary re-executed with `AEGIS_CRASH_CHILD` set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use aegis_crypto::SecretKey;
use aegis_storage::fixtures::ChainFixture;
use aegis_storage::{Backend, Ledger, SqlStore, StoreConfig, check_tip, verify_chain};
use aegis_testkit::wait_async::retry_until;
use aegis_types::Genesis;
use support::TestDb;

const CHILD_ENV: &str = "AEGIS_CRASH_CHILD";

on_both_backends!(sigkill_during_appends_leaves_a_valid_resumable_ledger);

/// On PostgreSQL the server may still be finishing a COMMIT the killed writer had sent: wait
/// until its session is gone, so the ledger no longer changes under the checks.
async fn wait_for_other_sessions(db: &TestDb) {
    use sqlx::Connection;
    let Some(url) = db.url() else { return };
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    retry_until(
        Duration::from_secs(10),
        "the killed writer's database session to close",
        async || {
            let others: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .fetch_one(&mut conn)
            .await
            .unwrap();
            others == 0
        },
    )
    .await;
}

/// The writer: appends blocks forever, printing `APPENDED <height>` after each one returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut lines = spec.lines();
    let backend = lines.next().unwrap();
    let location = lines.next().unwrap();
    let genesis_path = lines.next().unwrap();
    let keys: Vec<SecretKey> = lines
        .next()
        .unwrap()
        .split(',')
        .map(|k| {
            let bytes: [u8; 32] = hex::decode(k).unwrap().try_into().unwrap();
            SecretKey::from_bytes(bytes)
        })
        .collect();
    let config = match backend {
        "sqlite" => StoreConfig::sqlite(location),
        _ => StoreConfig::postgres(location),
    };
    let genesis = Genesis::from_json(&std::fs::read_to_string(genesis_path).unwrap()).unwrap();
    let store = SqlStore::open(&config).await.unwrap();
    let mut fixture = ChainFixture::from_parts(genesis, keys);
    fixture.resume(store.tip().await.unwrap());
    let mut stdout = std::io::stdout();
    loop {
        let (block, cert) = fixture.next_block(50, 200);
        store.append_block(&block, &cert).await.unwrap();
        writeln!(stdout, "APPENDED {}", block.height()).unwrap();
        stdout.flush().unwrap();
    }
}

async fn sigkill_during_appends_leaves_a_valid_resumable_ledger(db: TestDb) {
    let fixture = ChainFixture::new(4, "aegis-crash");
    let genesis_path = db.dir.path().join("genesis.json");
    std::fs::write(&genesis_path, fixture.genesis.to_json_pretty()).unwrap();
    let (backend, location) = match &db.config.backend {
        Backend::Sqlite { path } => ("sqlite", path.display().to_string()),
        Backend::Postgres { url } => ("postgresql", url.clone()),
    };
    let keys: Vec<String> = fixture
        .validator_keys
        .iter()
        .map(|k| hex::encode(k.to_bytes()))
        .collect();
    let spec = format!(
        "{backend}\n{location}\n{}\n{}",
        genesis_path.display(),
        keys.join(",")
    );

    let mut acknowledged = 0u64;
    // Kill after a different number of acknowledged blocks each round, so the kill lands at
    // different points of the write path.
    for (round, kill_after) in [(1u64, 5u64), (2, 13), (3, 2)] {
        let exe = std::env::current_exe().unwrap();
        let mut child = Command::new(exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &spec)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let last_seen = tokio::task::spawn_blocking(move || {
            let mut last = 0u64;
            let mut count = 0u64;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(height) = line.strip_prefix("APPENDED ") {
                    last = height.trim().parse().unwrap();
                    count += 1;
                    if count >= kill_after {
                        break;
                    }
                }
            }
            last
        });
        let last = tokio::time::timeout(Duration::from_secs(120), last_seen)
            .await
            .expect("writer made no progress")
            .unwrap();
        // A few more milliseconds of appends in flight, then SIGKILL.
        tokio::time::sleep(Duration::from_millis(3 * round)).await;
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success());
        wait_for_other_sessions(&db).await;
        assert!(
            last > acknowledged,
            "round {round}: no new block acknowledged"
        );
        acknowledged = last;

        let store = SqlStore::open(&db.config).await.unwrap();
        let height = store.height().await.unwrap();
        assert!(
            height >= acknowledged,
            "round {round}: block {acknowledged} was acknowledged but the ledger ends at {height}"
        );
        let tip = check_tip(&store, &fixture.genesis).await.unwrap();
        assert_eq!(tip.map(|t| t.height), Some(height));
        let report = verify_chain(&store, &fixture.genesis).await.unwrap();
        assert!(report.is_ok(), "round {round}: {report}");
        assert_eq!(report.blocks_verified, height);
        store.close().await;
    }

    // The parent resumes where the killed writer stopped.
    let store = SqlStore::open(&db.config).await.unwrap();
    let mut resumed =
        ChainFixture::from_parts(fixture.genesis.clone(), fixture.validator_keys.clone());
    resumed.resume(store.tip().await.unwrap());
    let (block, cert) = resumed.next_block(5, 10);
    store.append_block(&block, &cert).await.unwrap();
    let report = verify_chain(&store, &fixture.genesis).await.unwrap();
    assert!(report.is_ok(), "{report}");
}
