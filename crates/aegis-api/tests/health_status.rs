//! `/health` (checks, readiness thresholds) and `/status` with a node attached, over real
//! sockets, and what they say without one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod client;

use aegis_api::SyncState;
use client::{Harness, Options, get, post_json, tx, tx_json};
use serde_json::json;

#[test]
fn a_running_synced_node_is_healthy_with_four_passing_checks() {
    let h = Harness::start();
    h.commit_filler(2);
    let reply = get(h.api, "/health");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.header("x-response-time").unwrap().ends_with("ms"));
    let health = reply.json();
    assert_eq!(health["status"], "healthy", "{health}");
    for check in ["storage", "peers", "consensus", "sync"] {
        assert_eq!(
            health["checks"][check]["status"], "pass",
            "{check}: {health}"
        );
    }
    assert_eq!(health["checks"]["storage"]["block_height"], 1);
    assert_eq!(health["checks"]["consensus"]["running"], true);
    assert_eq!(health["checks"]["sync"]["sync_status"], "synced");
    assert_eq!(health["block_height"], 1);
    assert_eq!(health["storage"], "ok");
    h.stop();
}

#[test]
fn readiness_fails_with_fewer_peers_or_further_behind_than_asked() {
    let h = Harness::start();
    h.commit_filler(0);
    let reply = get(h.api, "/health?min_peers=1");
    assert_eq!(reply.status, 503);
    let health = reply.json();
    assert_eq!(health["status"], "unhealthy");
    assert_eq!(health["checks"]["peers"]["status"], "fail");
    assert_eq!(health["checks"]["peers"]["min_peers"], 1);
    assert_eq!(get(h.api, "/health?min_peers=0").status, 200);

    h.node.view.lock().unwrap().network_height = 11;
    let reply = get(h.api, "/health?max_blocks_behind=5");
    assert_eq!(reply.status, 503);
    let health = reply.json();
    assert_eq!(health["checks"]["sync"]["status"], "fail");
    assert_eq!(health["checks"]["sync"]["blocks_behind"], 10);
    assert_eq!(get(h.api, "/health?max_blocks_behind=10").status, 200);
    assert_eq!(
        get(h.api, "/health?min_peers=0&max_blocks_behind=20").status,
        200
    );
    get(h.api, "/health?min_peer=1").assert_error(400, "bad_request");
    get(h.api, "/health?max_blocks_behind=x").assert_error(400, "bad_request");
    h.stop();
}

#[test]
fn syncing_or_below_quorum_is_degraded_and_a_stopped_engine_unhealthy() {
    // Four validators, none connected: below the quorum of three.
    let h = Harness::with(Options {
        validators: 4,
        ..Options::default()
    });
    let health = get(h.api, "/health").json();
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["checks"]["peers"]["status"], "warn");
    assert_eq!(health["checks"]["peers"]["quorum"], 3);
    h.stop();

    let h = Harness::start();
    h.node.view.lock().unwrap().sync = SyncState::Syncing { target: 40 };
    let reply = get(h.api, "/health");
    assert_eq!(reply.status, 200);
    let health = reply.json();
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["checks"]["sync"]["status"], "warn");
    assert_eq!(health["sync_status"], "syncing");

    h.node.view.lock().unwrap().running = false;
    let reply = get(h.api, "/health");
    assert_eq!(reply.status, 503);
    let health = reply.json();
    assert_eq!(health["status"], "unhealthy");
    assert_eq!(health["checks"]["consensus"]["status"], "fail");
    h.stop();
}

#[test]
fn a_storage_fault_fails_the_storage_check() {
    let h = Harness::start();
    h.ledger_status
        .set_fault(Some("database unreachable: connection refused".into()));
    let reply = get(h.api, "/health");
    assert_eq!(reply.status, 503);
    let health = reply.json();
    assert_eq!(health["status"], "unhealthy");
    assert_eq!(
        health["checks"]["storage"],
        json!({
            "status": "fail",
            "block_height": 0,
            "fault": "database unreachable: connection refused",
        })
    );
    h.stop();
}

#[test]
fn status_has_what_operators_and_the_guide_read() {
    let h = Harness::start();
    h.commit_filler(1);
    let block = h.commit_filler(2);
    post_json(h.api, "/v1/transactions", &tx_json(&tx(1)));
    {
        let mut view = h.node.view.lock().unwrap();
        view.view = 4;
        view.primary = Some("node0".into());
    }
    let status = get(h.monitoring, "/status").json();
    assert_eq!(status["node_id"], "node0");
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(status["algorithm"], "pbft");
    assert_eq!(status["chain_id"], aegis_testkit::CHAIN);
    assert_eq!(status["block_height"], 2);
    assert_eq!(status["latest_block_hash"], block.hash().to_hex());
    assert_eq!(status["sync_status"], "synced");
    assert_eq!(status["sync_target_height"], serde_json::Value::Null);
    assert_eq!(status["sync_progress"], serde_json::Value::Null);
    assert_eq!(status["view"], 4);
    assert_eq!(status["primary"], "node0");
    assert_eq!(status["peers"], 0);
    assert_eq!(status["validators"], 1);
    let size = aegis_types::encoding::encode(&tx(1)).len();
    assert_eq!(status["mempool"], json!({ "size": 1, "bytes": size }));
    assert_eq!(status["consensus"]["running"], true);
    assert_eq!(status["storage"], "ok");
    assert_eq!(status["p2p"]["peers"], 0);
    // The ledger is SQLite: its page caches are part of the resident size.
    let process = &status["process"];
    let rss = process["rss_bytes"].as_u64().expect("rss_bytes");
    let sqlite = process["sqlite_memory_bytes"]
        .as_u64()
        .expect("sqlite_memory_bytes");
    assert!(sqlite > 0 && sqlite < rss, "{process}");
    let in_use = process["heap_in_use_bytes"]
        .as_u64()
        .expect("heap_in_use_bytes");
    let held = process["heap_held_bytes"]
        .as_u64()
        .expect("heap_held_bytes");
    assert!(0 < in_use && in_use <= held, "{process}");

    h.node.view.lock().unwrap().sync = SyncState::Syncing { target: 90 };
    let status = get(h.monitoring, "/status").json();
    assert_eq!(status["sync_status"], "syncing");
    assert_eq!(status["sync_target_height"], 90);
    let progress = status["sync_progress"]
        .as_f64()
        .expect("a progress while syncing");
    assert!((0.0..=100.0).contains(&progress), "{progress}");
    h.node.view.lock().unwrap().sync = SyncState::Stalled;
    assert_eq!(
        get(h.monitoring, "/status").json()["sync_status"],
        "stalled"
    );
    h.stop();
}

#[test]
fn without_an_engine_status_reads_the_genesis_and_the_ledger() {
    let h = Harness::with(Options {
        attach_node: false,
        ..Options::default()
    });
    let block = h.commit_filler(1);
    let status = get(h.monitoring, "/status").json();
    assert_eq!(status["algorithm"], "pbft");
    assert_eq!(status["block_height"], 1);
    assert_eq!(status["latest_block_hash"], block.hash().to_hex());
    assert_eq!(status["consensus"]["running"], false);
    assert_eq!(status["mempool"], serde_json::Value::Null);
    // A lone validator needs nobody: idle, as before the engine existed.
    assert_eq!(status["sync_status"], "idle");
    let health = get(h.api, "/health").json();
    assert_eq!(health["status"], "healthy");
    assert_eq!(health["checks"]["consensus"]["running"], false);
    h.stop();
}
