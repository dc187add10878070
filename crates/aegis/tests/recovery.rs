//! Recovery with real processes, for PBFT (4 validators) and Raft (3): a validator killed with SIGKILL under load, one that lost
//! its consensus log, one started on an empty database, each comes back to the same chain by
//! itself; every transaction the network committed is in every node's chain exactly once,
//! and `aegis verify` passes on the recovered ledger.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aegis_testkit::wait::{wait_for, wait_until};
use aegis_types::Transaction;
use common::network::Network;
use common::workload::Workload;
use common::{aegis, http_get};
use serde_json::Value;

/// Bound on catching up on a loaded machine.
const CATCH_UP_WAIT: Duration = Duration::from_secs(180);
/// One transaction per this interval while a test runs under load.
const LOAD_EVERY: Duration = Duration::from_millis(10);

fn get_json(port: u16, path: &str) -> Option<Value> {
    let (head, body) = http_get(port, path)?;
    head.starts_with("HTTP/1.1 200")
        .then(|| serde_json::from_str(&body).ok())
        .flatten()
}

fn api_ports(network: &Network) -> Vec<u16> {
    (0..network.n).map(|i| network.api_port(i)).collect()
}

fn log_of(network: &Network, node: usize) -> String {
    std::fs::read_to_string(network.home(node).join("logs/aegis.log")).unwrap_or_default()
}

/// Waits until node `node`'s log holds `text`.
fn wait_log(network: &Network, node: usize, text: &str) {
    wait_until(
        CATCH_UP_WAIT,
        || format!("node{node}'s log says {text:?}\n{}", log_of(network, node)),
        || log_of(network, node).contains(text),
    );
}

/// Waits until node `node` is at least at `height`.
fn wait_height(network: &Network, node: usize, height: u64) {
    wait_until(
        CATCH_UP_WAIT,
        || {
            format!(
                "node{node} at height {height}: heights {:?}\n{}",
                (0..network.n)
                    .map(|i| network.height(i))
                    .collect::<Vec<_>>(),
                network.logs()
            )
        },
        || network.height(node).is_some_and(|h| h >= height),
    );
}

/// Once the load stopped: waits until every running node is at the same height; returns it.
fn settle(network: &Network, nodes: &[usize]) -> u64 {
    wait_for(
        CATCH_UP_WAIT,
        || {
            format!(
                "nodes {nodes:?} at one height: {:?}\n{}",
                nodes.iter().map(|i| network.height(*i)).collect::<Vec<_>>(),
                network.logs()
            )
        },
        || {
            let heights: Vec<Option<u64>> = nodes.iter().map(|i| network.height(*i)).collect();
            let first = heights[0]?;
            let pending: u64 = nodes
                .iter()
                .filter_map(|i| network.status(*i))
                .map(|status| status["mempool"]["transactions"].as_u64().unwrap_or(0))
                .sum();
            (heights.iter().all(|h| *h == Some(first)) && pending == 0).then_some(first)
        },
    )
}

/// Node `node`'s chain up to `height`: (block hash, transaction ids) by height.
fn chain(network: &Network, node: usize, height: u64) -> BTreeMap<u64, (String, Vec<String>)> {
    (1..=height)
        .map(|h| {
            let block = get_json(network.api_port(node), &format!("/v1/blocks/{h}"))
                .unwrap_or_else(|| panic!("node{node} serves block {h}"));
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

/// Every node in `nodes` holds the same block at every height up to `height` (or the
/// highest height an accepted transaction committed at); every accepted transaction the
/// network reports committed is in that chain exactly once, and no transaction is in it
/// twice. Returns how many were committed.
fn same_chain_each_committed_once(
    network: &Network,
    nodes: &[usize],
    height: u64,
    accepted: &[String],
) -> usize {
    let committed: Vec<(String, u64)> = accepted
        .iter()
        .filter_map(|id| {
            let tx = get_json(
                network.api_port(nodes[0]),
                &format!("/v1/transactions/{id}"),
            )?;
            (tx["status"] == "committed").then(|| (id.clone(), tx["height"].as_u64().unwrap()))
        })
        .collect();
    let height = committed.iter().map(|(_, h)| *h).fold(height, u64::max);
    for node in nodes {
        wait_height(network, *node, height);
    }
    let reference = chain(network, nodes[0], height);
    for node in &nodes[1..] {
        let other = chain(network, *node, height);
        for (h, block) in &reference {
            assert_eq!(
                Some(block),
                other.get(h),
                "node{} and node{node} differ at height {h}",
                nodes[0]
            );
        }
    }
    let mut seen: HashMap<&str, u64> = HashMap::new();
    for (h, (_, ids)) in &reference {
        for id in ids {
            if let Some(first) = seen.insert(id, *h) {
                panic!("transaction {id} committed twice: at {first} and {h}");
            }
        }
    }
    for (id, at) in &committed {
        assert_eq!(
            seen.get(id.as_str()),
            Some(at),
            "{id} reported committed at {at}, the chain has it at {:?}",
            seen.get(id.as_str())
        );
    }
    committed.len()
}

/// `aegis verify` on node `node`'s ledger (stopped first).
fn verify(network: &mut Network, node: usize) {
    let status = network.stop_node(node);
    assert!(
        status.success(),
        "node{node} stops cleanly: {status}\n{}",
        log_of(network, node)
    );
    let output = aegis()
        .args(["verify", "--config"])
        .arg(network.config(node))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "aegis verify on node{node}: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// SIGTERM to node `node`; it must exit 0.
fn stop(network: &mut Network, node: usize) {
    let status = network.stop_node(node);
    assert!(
        status.success(),
        "node{node} stops cleanly: {status}\n{}\n{}",
        log_of(network, node),
        network.logs()
    );
}

fn metric(network: &Network, node: usize, name: &str) -> f64 {
    let (_, body) = http_get(network.metrics_port(node), "/metrics").expect("/metrics answers");
    body.lines()
        .find_map(|line| {
            let (key, value) = line.split_once(' ')?;
            (key == name).then(|| value.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}

/// Times node2 (the victim) is killed, each after the previous restart caught up.
const KILLS: usize = 3;

/// The validators of a test network of `n` (PBFT: 4, Raft: 3).
fn all(n: usize) -> Vec<usize> {
    (0..n).collect()
}

fn killed_with_sigkill_under_load(n: usize, algorithm: &'static str) {
    let mut network = Network::start_with(n, algorithm);
    let victim = n - 1;
    let load = Workload::start(api_ports(&network), LOAD_EVERY);
    wait_height(&network, 0, 5);
    for _ in 0..KILLS {
        network.kill_node(victim);
        let at_kill = network.height(0).unwrap();
        // The others are a quorum: they go on.
        wait_height(&network, 0, at_kill + 10);
        network.start_node(victim);
        let target = network.height(0).unwrap() + 10;
        wait_height(&network, victim, target);
    }
    let accepted = load.finish();
    let height = settle(&network, &all(n));
    let committed = same_chain_each_committed_once(&network, &all(n), height, &accepted);
    assert!(committed > 0, "transactions were committed");
    let log = log_of(&network, victim);
    assert_eq!(
        log.matches("restored from the consensus log").count(),
        KILLS,
        "{log}"
    );
    // Restarted from what it stored, it never sent a vote contradicting an earlier one: the
    // others saw no evidence against it.
    for node in 0..victim {
        let log = log_of(&network, node);
        assert!(!log.contains("byzantine evidence"), "node{node}: {log}");
    }
    verify(&mut network, victim);
}

#[test]
fn a_validator_killed_with_sigkill_under_load_restarts_and_catches_up() {
    killed_with_sigkill_under_load(4, "pbft");
}

#[test]
fn raft_a_validator_killed_with_sigkill_under_load_restarts_and_catches_up() {
    killed_with_sigkill_under_load(3, "raft");
}

fn lost_consensus_log(n: usize, algorithm: &'static str) {
    let mut network = Network::start_with(n, algorithm);
    let victim = n - 1;
    let load = Workload::start(api_ports(&network), LOAD_EVERY);
    wait_height(&network, 0, 5);
    stop(&mut network, victim);
    std::fs::remove_dir_all(network.home(victim).join("data/consensus")).unwrap();
    wait_height(&network, 0, network.height(0).unwrap() + 5);
    network.start_node(victim);
    // It knows it ran before and waits to be past every slot it could have voted for.
    wait_log(
        &network,
        victim,
        "Vote fence: this validator lost its consensus log",
    );
    wait_log(&network, victim, "Vote fence lifted");
    let accepted = load.finish();
    let height = settle(&network, &all(n));
    same_chain_each_committed_once(&network, &all(n), height, &accepted);
    // A restart with its new log is an ordinary restart: no fence.
    stop(&mut network, victim);
    network.start_node(victim);
    wait_until(
        CATCH_UP_WAIT,
        || {
            format!(
                "node{victim} restarts from its new log\n{}",
                log_of(&network, victim)
            )
        },
        || {
            log_of(&network, victim)
                .matches("restored from the consensus log")
                .count()
                == 1
                && network
                    .status(victim)
                    .is_some_and(|s| s["consensus"]["running"] == true)
        },
    );
    verify(&mut network, victim);
    let log = log_of(&network, victim);
    assert_eq!(
        log.matches("Vote fence: this validator lost").count(),
        1,
        "{log}"
    );
}

#[test]
fn a_validator_that_lost_its_consensus_log_resyncs_before_it_votes_again() {
    lost_consensus_log(4, "pbft");
}

#[test]
fn raft_a_validator_that_lost_its_consensus_log_resyncs_before_it_votes_again() {
    lost_consensus_log(3, "raft");
}

fn empty_database(n: usize, algorithm: &'static str) {
    let mut network = Network::start_with(n, algorithm);
    let victim = 1;
    let load = Workload::start(api_ports(&network), LOAD_EVERY);
    wait_height(&network, 0, 20);
    stop(&mut network, victim);
    for name in ["blockchain.db", "blockchain.db-wal", "blockchain.db-shm"] {
        let path = network.home(victim).join("data").join(name);
        if path.exists() {
            std::fs::remove_file(path).unwrap();
        }
    }
    network.start_node(victim);
    wait_log(&network, victim, "Ledger filled up to the consensus log");
    wait_height(&network, victim, network.height(0).unwrap());
    let accepted = load.finish();
    let height = settle(&network, &all(n));
    same_chain_each_committed_once(&network, &all(n), height, &accepted);
    assert!(metric(&network, victim, "aegis_sync_blocks_fetched_total") >= 20.0);
    let log = log_of(&network, victim);
    assert!(log.contains("Sync started"), "{log}");
    verify(&mut network, victim);
}

#[test]
fn a_node_started_on_an_empty_database_refills_it_from_its_peers() {
    empty_database(4, "pbft");
}

#[test]
fn raft_a_node_started_on_an_empty_database_refills_it_from_its_peers() {
    empty_database(3, "raft");
}

/// Runs one SQL statement on a stopped node's SQLite ledger (with Python's sqlite3).
fn sql(db: &std::path::Path, statement: &str) -> String {
    let script = "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nr = c.execute(sys.argv[2]).fetchall()\nc.commit()\nprint(r)";
    let output = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(db)
        .arg(statement)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn lying_peer(n: usize, algorithm: &'static str) {
    let mut network = Network::start_with(n, algorithm);
    let (liar, behind) = (1, n - 1);
    stop(&mut network, behind);
    let load = Workload::start(api_ports(&network)[..behind].to_vec(), LOAD_EVERY);
    wait_height(&network, 0, 150);
    let accepted = load.finish();
    let up: Vec<usize> = (0..behind).collect();
    let height = settle(&network, &up);
    for node in &up {
        stop(&mut network, *node);
    }
    // The liar: below its tip, blocks at odd heights carry altered transactions, and at
    // even heights a certificate with a forged signature byte.
    let db = network.home(liar).join("data/blockchain.db");
    sql(
        &db,
        &format!(
            "UPDATE transactions SET payload = X'6c6965' WHERE block_height < {height} AND block_height % 2 = 1"
        ),
    );
    sql(
        &db,
        &format!(
            "UPDATE blocks SET certificate = substr(certificate, 1, length(certificate) - 1) || \
             CASE WHEN substr(certificate, -1) = X'00' THEN X'01' ELSE X'00' END \
             WHERE height < {height} AND height % 2 = 0"
        ),
    );
    // The node behind can sync only from the liar first.
    network.start_node(liar);
    network.start_node(behind);
    wait_log(
        &network,
        behind,
        &format!("Sync: byzantine evidence: node{liar}"),
    );
    let invalid = metric(&network, behind, "aegis_sync_invalid_blocks_total");
    assert!(invalid >= 1.0, "invalid replies counted: {invalid}");
    let before_honest = network.height(behind).unwrap_or(0);
    assert!(
        before_honest < height,
        "nothing of the liar's was taken: node{behind} at {before_honest} of {height}\n{}",
        log_of(&network, behind)
    );
    // The honest ones come back: sync completes from them.
    for node in up.iter().filter(|node| **node != liar) {
        network.start_node(*node);
    }
    wait_height(&network, behind, height);
    let reference = chain(&network, 0, height);
    assert_eq!(
        chain(&network, behind, height),
        reference,
        "node{behind} holds node0's chain"
    );
    let log = log_of(&network, behind);
    assert!(log.contains("Sync finished"), "{log}");
    assert!(
        same_chain_each_committed_once(&network, &[0, behind], height, &accepted) > 0,
        "transactions were committed"
    );
    verify(&mut network, behind);
}

#[test]
fn a_lying_peer_is_refused_and_sync_completes_from_honest_ones() {
    lying_peer(4, "pbft");
}

#[test]
fn raft_a_lying_peer_is_refused_and_sync_completes_from_honest_ones() {
    lying_peer(3, "raft");
}
