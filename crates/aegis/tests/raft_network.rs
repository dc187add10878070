//! Raft with real processes: three `aegis run` validators from `aegis testnet --algorithm
//! raft` commit transactions submitted to any of them; the leader is killed with SIGKILL
//! under load, another is elected within the election timeout and commits resume; every
//! acknowledged transaction ends in every node's chain exactly once, and `aegis verify`
//! passes on each ledger. `aegis devnet --algorithm raft` runs and stops cleanly.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aegis_crypto::SecretKey;
use aegis_testkit::wait::wait_for;
use aegis_types::{Transaction, TxBody};
use common::network::Network;
use common::{aegis, http_get, http_post};
use serde_json::Value;

/// Bound on a transaction's commit on a loaded machine.
const COMMIT_WAIT: Duration = Duration::from_secs(90);
/// The test network's election timeout (`aegis testnet --algorithm raft` writes 1 s; timeouts
/// are drawn from [1 s, 2 s)); a new leader must be known within twice the longest draw,
/// plus room for a loaded machine.
const NEW_LEADER_WAIT: Duration = Duration::from_secs(10);
/// A client resubmits a transaction still unknown after this long (its node may have died
/// with it in its mempool before passing it on).
const RESUBMIT_AFTER: Duration = Duration::from_secs(10);

fn get_json(port: u16, path: &str) -> Option<Value> {
    let (head, body) = http_get(port, path)?;
    head.starts_with("HTTP/1.1 200")
        .then(|| serde_json::from_str(&body).ok())
        .flatten()
}

fn chain_id(network: &Network) -> String {
    get_json(network.api_port(0), "/v1/node").unwrap()["chain_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn sign(client: &SecretKey, chain_id: &str, nonce: u64) -> Transaction {
    client.sign_transaction(TxBody {
        version: aegis_types::ENCODING_VERSION,
        chain_id: chain_id.to_owned(),
        sender: client.public_key(),
        nonce,
        payload: format!("raft test {nonce}").into_bytes(),
    })
}

/// Posts `tx` to node `node`: whether it was acknowledged (202 pending, or 409 because it
/// is already committed).
fn post(network: &Network, node: usize, tx: &Transaction) -> bool {
    http_post(
        network.api_port(node),
        "/v1/transactions",
        &serde_json::to_string(tx).unwrap(),
    )
    .is_some_and(|(status, _)| status == 202 || status == 409)
}

/// The leader as the running nodes see it: (node, term) once one says it leads.
fn leader(network: &Network) -> Option<(usize, u64)> {
    (0..network.n)
        .filter(|i| network.is_running(*i))
        .find_map(|i| {
            let status = network.status(i)?;
            (status["role"] == "leader").then(|| (i, status["view"].as_u64().unwrap()))
        })
}

fn committed_height(network: &Network, node: usize, id: &str) -> Option<u64> {
    get_json(network.api_port(node), &format!("/v1/transactions/{id}"))
        .filter(|tx| tx["status"] == "committed")
        .and_then(|tx| tx["height"].as_u64())
}

/// Every node's chain up to `height`: (block hash, transaction ids) by height.
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

/// A client that keeps submitting, round robin over the nodes that answer; it records the
/// transactions a node acknowledged, with the node.
struct Load {
    stop: Arc<AtomicBool>,
    acknowledged: Arc<Mutex<Vec<(usize, Transaction)>>>,
    thread: std::thread::JoinHandle<()>,
}

impl Load {
    fn start(network: &Network, client: SecretKey) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(Mutex::new(Vec::new()));
        let chain = chain_id(network);
        let ports: Vec<u16> = (0..network.n).map(|i| network.api_port(i)).collect();
        let (thread_stop, thread_acks) = (Arc::clone(&stop), Arc::clone(&acknowledged));
        let thread = std::thread::spawn(move || {
            let mut nonce = 0u64;
            while !thread_stop.load(Ordering::Acquire) {
                nonce += 1;
                let tx = sign(&client, &chain, nonce);
                let node = nonce as usize % ports.len();
                let answer = http_post(
                    ports[node],
                    "/v1/transactions",
                    &serde_json::to_string(&tx).unwrap(),
                );
                if answer.is_some_and(|(status, _)| status == 202) {
                    thread_acks.lock().unwrap().push((node, tx));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Load {
            stop,
            acknowledged,
            thread,
        }
    }

    fn stop(self) -> Vec<(usize, Transaction)> {
        self.stop.store(true, Ordering::Release);
        self.thread.join().unwrap();
        std::mem::take(&mut *self.acknowledged.lock().unwrap())
    }

    fn count(&self) -> usize {
        self.acknowledged.lock().unwrap().len()
    }
}

#[test]
fn three_raft_validators_commit_and_replace_a_killed_leader_under_load() {
    let mut network = Network::start_with(3, "raft");
    let (first_leader, first_term) = wait_for(
        NEW_LEADER_WAIT,
        || format!("a leader\n{}", network.logs()),
        || leader(&network),
    );
    let status = network.status((first_leader + 1) % 3).unwrap();
    assert_eq!(status["algorithm"], "raft", "{status}");
    assert_eq!(status["role"], "follower", "{status}");
    assert_eq!(status["primary"], format!("node{first_leader}"), "{status}");
    assert_eq!(status["view"], first_term, "the term as view: {status}");

    let load = Load::start(&network, SecretKey::generate());
    wait_for(
        COMMIT_WAIT,
        || format!("commits under load\n{}", network.logs()),
        || (network.height(first_leader)? >= 5).then_some(()),
    );
    let before_kill = network.height((first_leader + 1) % 3).unwrap();
    network.kill_node(first_leader);
    let killed_at = Instant::now();
    let (new_leader, new_term) = wait_for(
        NEW_LEADER_WAIT,
        || {
            format!(
                "a new leader after node{first_leader} was killed\n{}",
                network.logs()
            )
        },
        || leader(&network).filter(|(i, _)| *i != first_leader),
    );
    let elected_after = killed_at.elapsed();
    assert!(new_term > first_term);
    let acknowledged_then = load.count();
    wait_for(
        COMMIT_WAIT,
        || format!("commits resume under node{new_leader}\n{}", network.logs()),
        || {
            (network.height(new_leader)? > before_kill + 5 && load.count() > acknowledged_then + 10)
                .then_some(())
        },
    );
    let acknowledged = load.stop();
    eprintln!(
        "leader node{first_leader} (term {first_term}) killed; node{new_leader} leads term \
         {new_term} after {elected_after:?}; {} transactions acknowledged",
        acknowledged.len()
    );

    // The killed node returns and catches up. A transaction a surviving node acknowledged
    // was passed on to every validator and commits as it is; one the killed node acknowledged
    // may have died with it before it passed it on: its client resubmits it when no node
    // knows it after a while (a 202 promises admission to that node's mempool only).
    network.start_node(first_leader);
    let mut resubmitted = 0;
    for (acknowledged_by, tx) in &acknowledged {
        let id = tx.id().to_hex();
        let mut last_submit = Instant::now();
        for node in 0..network.n {
            wait_for(
                COMMIT_WAIT,
                || {
                    format!(
                        "transaction {id} (acknowledged by node{acknowledged_by}) committed on \
                         node{node}\n{}",
                        network.logs()
                    )
                },
                || {
                    let found = committed_height(&network, node, &id);
                    if found.is_none()
                        && *acknowledged_by == first_leader
                        && node != first_leader
                        && last_submit.elapsed() > RESUBMIT_AFTER
                    {
                        if post(&network, new_leader, tx) {
                            resubmitted += 1;
                        }
                        last_submit = Instant::now();
                    }
                    found
                },
            );
        }
    }
    eprintln!("{resubmitted} acknowledged by the killed leader resubmitted after the kill");

    // Every node ends at the same height with the same blocks; the whole chain is checked.
    let top = wait_for(
        COMMIT_WAIT,
        || format!("every node at one height\n{}", network.logs()),
        || {
            let heights: Vec<u64> = (0..network.n)
                .map(|i| network.height(i))
                .collect::<Option<_>>()?;
            heights
                .iter()
                .all(|h| *h == heights[0])
                .then_some(heights[0])
        },
    );
    let reference = chain(&network, new_leader, top);
    for node in 0..network.n {
        assert_eq!(
            chain(&network, node, top),
            reference,
            "node{node} stores the same blocks"
        );
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, ids) in reference.values() {
        for id in ids {
            *seen.entry(id.as_str()).or_default() += 1;
        }
    }
    for (_, tx) in &acknowledged {
        let id = tx.id().to_hex();
        assert_eq!(
            seen.get(id.as_str()),
            Some(&1),
            "{id} is in the chain exactly once"
        );
    }
    // A certificate is a majority of the genesis validators' commit votes, the term as view.
    let latest = get_json(network.api_port(0), "/v1/blocks/latest").unwrap();
    assert!(
        latest["certificate"]["signatures"]
            .as_array()
            .unwrap()
            .len()
            >= 2,
        "{latest}"
    );

    for node in 0..network.n {
        let status = network.stop_node(node);
        assert!(status.success(), "node{node} exits 0 on SIGTERM: {status}");
    }
    for node in 0..network.n {
        let output = aegis()
            .args(["verify", "--config"])
            .arg(network.config(node))
            .output()
            .expect("run aegis verify");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "aegis verify on node{node}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains("Chain verified"), "{stdout}");
    }
}

/// `aegis devnet --algorithm raft`: three validators come up, commit the workload, and stop
/// with exit 0 on Ctrl-C.
#[test]
fn aegis_devnet_runs_raft() {
    let dir = tempfile::tempdir().unwrap();
    let base = common::network::base_port(3);
    let mut devnet = aegis()
        .args([
            "devnet",
            "--algorithm",
            "raft",
            "--validators",
            "3",
            "--rate",
            "50",
        ])
        .arg("--base-port")
        .arg(base.to_string())
        .arg("--dir")
        .arg(dir.path().join("devnet"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start aegis devnet");
    let stdout = devnet.stdout.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let seen = std::cell::RefCell::new(Vec::<String>::new());
    let committing = wait_for(
        COMMIT_WAIT,
        || {
            format!(
                "devnet progress with commits:\n{}",
                seen.borrow().join("\n")
            )
        },
        || {
            let mut seen = seen.borrow_mut();
            while let Ok(line) = lines_rx.try_recv() {
                seen.push(line);
            }
            seen.iter()
                .find(|line| {
                    line.starts_with("height ")
                        && !line.starts_with("height 0 ")
                        && !line.contains(" 0.0 tx/s committed")
                })
                .cloned()
        },
    );
    let seen = seen.into_inner();
    assert!(
        seen.iter()
            .any(|l| l.contains("Generated a raft devnet of 3 validators"))
    );
    eprintln!("{committing}");
    let status = std::process::Command::new("kill")
        .args(["-INT", &devnet.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = devnet.wait().unwrap();
    assert!(exit.success(), "devnet exits 0 on Ctrl-C: {exit}");
}
