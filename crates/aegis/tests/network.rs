//! A real network: four `aegis run` processes agree over TLS and commit transactions
//! submitted to any of them; every node stores the same blocks, each acknowledged
//! transaction exactly once; the guide's commands answer as it expects; a node stopped with
//! SIGTERM exits 0 and catches up when it comes back; the CLI client commits and proves.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use aegis_crypto::SecretKey;
use aegis_testkit::wait::{wait_for, wait_until};
use aegis_types::{Transaction, TxBody};
use common::network::Network;
use common::{aegis, http_get, http_post};
use serde_json::Value;

/// Bound on a transaction's commit on a loaded machine.
const COMMIT_WAIT: Duration = Duration::from_secs(90);

fn chain_id(network: &Network) -> String {
    let (_, body) = http_get(network.api_port(0), "/v1/node").expect("/v1/node answers");
    let node: Value = serde_json::from_str(&body).unwrap();
    node["chain_id"].as_str().expect("a chain_id").to_owned()
}

fn sign(client: &SecretKey, chain_id: &str, nonce: u64) -> Transaction {
    client.sign_transaction(TxBody {
        version: aegis_types::ENCODING_VERSION,
        chain_id: chain_id.to_owned(),
        sender: client.public_key(),
        nonce,
        payload: format!("network test {nonce}").into_bytes(),
    })
}

fn get_json(port: u16, path: &str) -> Option<Value> {
    let (head, body) = http_get(port, path)?;
    head.starts_with("HTTP/1.1 200")
        .then(|| serde_json::from_str(&body).ok())
        .flatten()
}

/// Submits `count` transactions round robin over the nodes; returns their ids.
fn submit(network: &Network, client: &SecretKey, first_nonce: u64, count: u64) -> Vec<String> {
    let chain = chain_id(network);
    (0..count)
        .map(|k| {
            let tx = sign(client, &chain, first_nonce + k);
            let node = (k as usize) % network.n;
            let (status, body) = http_post(
                network.api_port(node),
                "/v1/transactions",
                &serde_json::to_string(&tx).unwrap(),
            )
            .expect("the API answers");
            assert_eq!(status, 202, "{body}");
            let answer: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(answer["status"], "pending", "{body}");
            assert_eq!(answer["id"], tx.id().to_hex(), "{body}");
            tx.id().to_hex()
        })
        .collect()
}

/// Waits until every node reports every id committed; returns the highest height seen.
fn wait_committed(network: &Network, ids: &[String]) -> u64 {
    let mut top = 0;
    for id in ids {
        for node in 0..network.n {
            let committed = wait_for(
                COMMIT_WAIT,
                || {
                    format!(
                        "transaction {id} committed on node{node}; heights {:?}\n{}",
                        (0..network.n)
                            .map(|i| network.height(i))
                            .collect::<Vec<_>>(),
                        network.logs()
                    )
                },
                || {
                    get_json(network.api_port(node), &format!("/v1/transactions/{id}"))
                        .filter(|tx| tx["status"] == "committed")
                },
            );
            top = top.max(committed["height"].as_u64().unwrap());
        }
    }
    top
}

/// Every node's chain up to `height`: (block hash, transaction ids) by height.
fn chain(network: &Network, node: usize, height: u64) -> BTreeMap<u64, (String, Vec<String>)> {
    (1..=height)
        .map(|h| {
            let block = get_json(network.api_port(node), &format!("/v1/blocks/{h}"))
                .unwrap_or_else(|| {
                    panic!(
                        "node{node} serves block {h}: {:?}",
                        http_get(network.api_port(node), &format!("/v1/blocks/{h}"))
                    )
                });
            let ids = block["transactions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|tx| {
                    serde_json::from_value::<Transaction>(tx.clone())
                        .unwrap()
                        .id()
                        .to_hex()
                })
                .collect();
            (h, (block["hash"].as_str().unwrap().to_owned(), ids))
        })
        .collect()
}

#[test]
fn four_nodes_commit_transactions_submitted_to_any_of_them() {
    let network = Network::start(4);
    let client = SecretKey::generate();
    let ids = submit(&network, &client, 1, 24);
    let top = wait_committed(&network, &ids);
    let reference = chain(&network, 0, top);
    for node in 1..4 {
        assert_eq!(
            chain(&network, node, top),
            reference,
            "node{node} stores the same blocks as node0"
        );
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, ids) in reference.values() {
        for id in ids {
            *seen.entry(id.as_str()).or_default() += 1;
        }
    }
    for id in &ids {
        assert_eq!(
            seen.get(id.as_str()),
            Some(&1),
            "{id} is in the chain exactly once"
        );
    }
    // A block's certificate: a quorum of the genesis validators' signatures.
    let latest = get_json(network.api_port(2), "/v1/blocks/latest").unwrap();
    let signatures = latest["certificate"]["signatures"].as_array().unwrap();
    assert!(signatures.len() >= 3, "{latest}");
    assert_eq!(latest["certificate"]["block_hash"], latest["hash"]);
    // Logs are for operators: one JSON object a line, each naming its function (SPEC.md).
    for node in 0..4 {
        let log = std::fs::read_to_string(network.home(node).join("logs/aegis.log")).unwrap();
        for line in log.lines() {
            let line: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            for key in [
                "timestamp",
                "level",
                "logger",
                "message",
                "module",
                "function",
                "line",
                "node_id",
            ] {
                assert!(!line[key].is_null(), "{key} is set: {line}");
            }
        }
    }
    // A replay of a committed transaction is refused with its id.
    let replay = sign(&client, &chain_id(&network), 1);
    let (status, body) = http_post(
        network.api_port(3),
        "/v1/transactions",
        &serde_json::to_string(&replay).unwrap(),
    )
    .unwrap();
    assert_eq!(status, 409, "{body}");
    assert!(body.contains(&replay.id().to_hex()), "{body}");
}

/// The operators' guide: `curl -s localhost:8080/health`, `curl -s localhost:9090/metrics |
/// grep aegis_p2p_peers`, `curl -s localhost:9090/status | jq .block_height` and
/// `jq .sync_status`, on this network's ports.
#[test]
fn the_guides_commands_answer_as_it_expects() {
    let network = Network::start(4);
    let client = SecretKey::generate();
    let ids = submit(&network, &client, 100, 4);
    wait_committed(&network, &ids);
    let shell = |script: String| {
        let output = Command::new("sh").args(["-c", &script]).output().unwrap();
        assert!(output.status.success(), "{script}: {output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let health = shell(format!("curl -s localhost:{}/health", network.api_port(0)));
    let health: Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["status"], "healthy", "{health}");
    for check in ["storage", "peers", "consensus", "sync"] {
        assert!(
            health["checks"][check].is_object() || health["checks"][check].is_string(),
            "{health}"
        );
    }
    let peers = shell(format!(
        "curl -s localhost:{}/metrics | grep aegis_p2p_peers",
        network.metrics_port(0)
    ));
    assert!(
        peers.lines().any(|l| l.starts_with("aegis_p2p_peers 3")),
        "{peers}"
    );
    let height = shell(format!(
        "curl -s localhost:{}/status | jq .block_height",
        network.metrics_port(1)
    ));
    assert!(height.trim().parse::<u64>().unwrap() >= 1, "{height}");
    let sync = shell(format!(
        "curl -s localhost:{}/status | jq .sync_status",
        network.metrics_port(1)
    ));
    assert!(
        sync.contains("synced") || sync.contains("syncing"),
        "{sync}"
    );
}

#[test]
fn a_node_stopped_with_sigterm_exits_0_and_catches_up_when_it_returns() {
    let mut network = Network::start(4);
    let client = SecretKey::generate();
    let first = submit(&network, &client, 200, 4);
    wait_committed(&network, &first);
    let status = network.stop_node(3);
    assert!(
        status.success(),
        "SIGTERM exits 0: {status}\n{}",
        network.logs()
    );
    let log = std::fs::read_to_string(network.home(3).join("logs/aegis.log")).unwrap();
    assert!(log.contains("Consensus engine stopped cleanly"), "{log}");
    // The other three go on (3 of 4 is a quorum).
    let more: Vec<String> = (0..8)
        .map(|k| {
            let tx = sign(&client, &chain_id(&network), 300 + k);
            let (status, body) = http_post(
                network.api_port((k as usize) % 3),
                "/v1/transactions",
                &serde_json::to_string(&tx).unwrap(),
            )
            .unwrap();
            assert_eq!(status, 202, "{body}");
            tx.id().to_hex()
        })
        .collect();
    for id in &more {
        for node in 0..3 {
            wait_until(
                COMMIT_WAIT,
                || format!("{id} committed on node{node}\n{}", network.logs()),
                || {
                    get_json(network.api_port(node), &format!("/v1/transactions/{id}"))
                        .is_some_and(|tx| tx["status"] == "committed")
                },
            );
        }
    }
    let target = network.height(0).unwrap();
    network.start_node(3);
    wait_until(
        COMMIT_WAIT,
        || {
            format!(
                "node3 back at height {target}: {:?}\n{}",
                network.height(3),
                network.logs()
            )
        },
        || network.height(3).is_some_and(|h| h >= target),
    );
    let log = std::fs::read_to_string(network.home(3).join("logs/aegis.log")).unwrap();
    assert!(log.contains("restored from the consensus log"), "{log}");
}

#[test]
fn the_cli_client_commits_a_transaction_and_prints_its_proof() {
    let network = Network::start(4);
    let key = network.dir.path().join("client-key.json");
    let output = aegis()
        .args([
            "tx",
            "submit",
            "--node",
            &network.api_url(1),
            "--payload",
            "hello aegis",
        ])
        .arg("--key")
        .arg(&key)
        .args(["--wait", "--timeout", "90"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let id = stdout.lines().next().unwrap().trim().to_owned();
    assert_eq!(id.len(), 64, "{stdout}");
    assert!(stdout.contains("height: "), "{stdout}");
    assert!(stdout.contains("proof: {"), "{stdout}");
    assert!(key.is_file(), "the client key is created on first use");
    let got = aegis()
        .args(["tx", "get", "--node", &network.api_url(2), &id])
        .output()
        .unwrap();
    assert!(got.status.success());
    let got: Value = serde_json::from_slice(&got.stdout).unwrap();
    assert_eq!(got["status"], "committed");
    let block = aegis()
        .args(["block", "get", "--node", &network.api_url(3), "latest"])
        .output()
        .unwrap();
    assert!(block.status.success());
    let block: Value = serde_json::from_slice(&block.stdout).unwrap();
    assert!(block["header"]["height"].as_u64().unwrap() >= 1, "{block}");
    // An unknown transaction: the node's 404 answer is printed and the command fails.
    let missing = aegis()
        .args(["tx", "get", "--node", &network.api_url(0), &"0".repeat(64)])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stdout).contains("error"));
}

/// The Python client of `docs/examples/client.py`, written from the docs alone, commits a
/// transaction and checks its inclusion proof and the block's certificate against the
/// genesis keys.
#[test]
fn the_python_client_from_the_docs_commits_and_verifies() {
    let network = Network::start(4);
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples/client.py");
    let output = Command::new("python3")
        .arg(&script)
        .args(["--node", &network.api_url(2), "--genesis"])
        .arg(network.out.join("genesis.json"))
        .args(["--payload", "from python", "--timeout", "90"])
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{stdout}\n{stderr}\n{}",
        network.logs()
    );
    assert!(stdout.contains("inclusion proof: ok"), "{stdout}");
    assert!(stdout.contains("commit certificate: ok"), "{stdout}");
}
