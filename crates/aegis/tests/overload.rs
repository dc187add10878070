//! Overload with real `aegis run` processes (issue 15): a 202 is a promise. Every node runs
//! with a tiny mempool (`mempool.max_transactions: 20`), so a burst of submissions to every
//! follower at once fills their pools, and what they accepted, forwarded to the primary,
//! finds its pool full and is refused there. The test checks that every
//! transaction the API accepted (202) is eventually in the chain (`GET
//! /v1/transactions/{id}` says `committed`, a deadline wait), and that every one it did not
//! accept got 503 (pool full) or 429 with a reason in the body. Then the primary is stopped
//! and another burst goes to the others: the same holds across the view change. The
//! followers' transactions refused by the primary's full pool reach it when the followers
//! resend them (`docs/mempool.md`, "Forwarding and resending"), so the first part needs no
//! view change.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use std::cell::RefCell;
use std::time::Duration;

use aegis_crypto::SecretKey;
use aegis_testkit::wait::wait_until;
use common::network::Network;
use common::workload::{chain_id, sign};
use common::{http_get, http_post};
use serde_json::Value;

/// The mempool bound every node runs with: a burst of [`BURST`] per node overflows it.
const POOL: usize = 20;
/// Transactions submitted to each node in one request (an array), per burst.
const BURST: usize = 60;
/// Generous bound for accepted transactions to commit on a loaded machine (a view change
/// included: `consensus.timeout` is [`TIMEOUT_SECONDS`] here).
const COMMIT_WAIT: Duration = Duration::from_secs(180);
const TIMEOUT_SECONDS: u64 = 15;

/// What the API answered for one submitted transaction.
#[derive(Debug)]
struct Answer {
    id: String,
    status: u16,
    body: Value,
}

/// One request per node in `nodes`, each an array of [`BURST`] fresh transactions, all sent
/// at once from their own threads; the answer for every transaction.
fn burst(net: &Network, nodes: &[usize], client: &SecretKey, first_nonce: u64) -> Vec<Answer> {
    let chain = chain_id(net.api_port(nodes[0]));
    let threads: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            let txs: Vec<_> = (0..BURST as u64)
                .map(|j| {
                    let nonce = first_nonce + (k * BURST) as u64 + j;
                    sign(
                        client,
                        &chain,
                        nonce,
                        format!("overload {nonce}").as_bytes(),
                    )
                })
                .collect();
            let port = net.api_port(i);
            std::thread::spawn(move || {
                let body = serde_json::to_string(&txs).unwrap();
                let (status, text) = http_post(port, "/v1/transactions", &body)
                    .unwrap_or_else(|| panic!("node on API port {port} answers"));
                (txs, status, text)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for thread in threads {
        let (txs, status, text) = thread.join().unwrap();
        let body: Value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("a JSON answer, got {status}: {text}"));
        match body.as_array() {
            // 202: one result per element, in order.
            Some(items) if status == 202 => {
                assert_eq!(items.len(), txs.len(), "one result per transaction: {text}");
                for (tx, item) in txs.iter().zip(items) {
                    let status = if item["status"] == "pending" {
                        202
                    } else {
                        u16::try_from(item["http_status"].as_u64().unwrap_or(0)).unwrap()
                    };
                    answers.push(Answer {
                        id: tx.id().to_hex(),
                        status,
                        body: item.clone(),
                    });
                }
            }
            // The whole request refused (429 rate limited, 503 unavailable).
            _ => {
                for tx in &txs {
                    answers.push(Answer {
                        id: tx.id().to_hex(),
                        status,
                        body: body.clone(),
                    });
                }
            }
        }
    }
    answers
}

/// Checks the refusals, and returns the ids accepted.
fn accepted_ids(answers: &[Answer]) -> Vec<String> {
    for answer in answers.iter().filter(|a| a.status != 202) {
        assert!(
            answer.status == 503 || answer.status == 429,
            "transaction {} neither accepted nor refused for load: {} {}",
            answer.id,
            answer.status,
            answer.body
        );
        let reason = answer.body["message"].as_str().unwrap_or_default();
        assert!(
            !reason.is_empty() && answer.body["error"].is_string(),
            "a refusal without a reason: {}",
            answer.body
        );
    }
    answers
        .iter()
        .filter(|a| a.status == 202)
        .map(|a| a.id.clone())
        .collect()
}

fn committed(net: &Network, node: usize, id: &str) -> bool {
    http_get(net.api_port(node), &format!("/v1/transactions/{id}"))
        .and_then(|(_, body)| serde_json::from_str::<Value>(&body).ok())
        .is_some_and(|tx| tx["status"] == "committed")
}

/// Waits until every id in `ids` is committed as node `node` sees it.
fn wait_all_committed(net: &Network, node: usize, ids: &[String], what: &str) {
    let waiting = RefCell::new(ids.to_vec());
    wait_until(
        COMMIT_WAIT,
        || {
            let waiting = waiting.borrow();
            format!(
                "{what}: {} of {} accepted transactions committed on node{node}; still \
                 waiting for e.g. {:?}\n{}",
                ids.len() - waiting.len(),
                ids.len(),
                waiting.first(),
                net.logs()
            )
        },
        || {
            let mut waiting = waiting.borrow_mut();
            waiting.retain(|id| !committed(net, node, id));
            waiting.is_empty()
        },
    );
}

fn metric(net: &Network, node: usize, name: &str) -> Option<f64> {
    let (_, body) = http_get(net.metrics_port(node), "/metrics")?;
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn every_accepted_transaction_commits_under_overload_and_across_a_view_change() {
    let mut net = Network::generate(4);
    for i in 0..4 {
        let path = net.config(i);
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text.replacen(
            "consensus:\n",
            &format!("consensus:\n  timeout: {TIMEOUT_SECONDS}\n"),
            1,
        );
        std::fs::write(
            &path,
            format!("{text}\nmempool:\n  max_transactions: {POOL}\n"),
        )
        .unwrap();
    }
    for i in 0..4 {
        net.start_node(i);
    }
    net.wait_full_mesh();
    let client = SecretKey::generate();

    // The followers' pools overflow at once (node0 is the primary of view 0): each forwards
    // what it accepted to the primary, whose pool cannot take all of it.
    let answers = burst(&net, &[1, 2, 3], &client, 1);
    let accepted = accepted_ids(&answers);
    assert!(
        accepted.len() < answers.len(),
        "a burst of {BURST} per node over pools of {POOL} must be refused in part"
    );
    assert!(!accepted.is_empty(), "some of the burst must be accepted");
    wait_all_committed(&net, 1, &accepted, "overload");
    // The followers' transactions reached the primary without suspecting it: the view
    // never changed (before the resend, they waited for a view change).
    for i in 0..4 {
        let view = net.status(i).unwrap()["view"].as_u64();
        assert_eq!(view, Some(0), "node{i} changed view under overload");
    }
    eprintln!(
        "overload: {} accepted, {} refused; resent by the followers: {:?}",
        accepted.len(),
        answers.len() - accepted.len(),
        (1..4)
            .map(|i| metric(&net, i, "aegis_mempool_resent_total"))
            .collect::<Vec<_>>()
    );

    // The primary stops; the others take a burst each and must change view to commit it.
    net.stop_node(0);
    let answers = burst(&net, &[1, 2, 3], &client, 1_000_000);
    let accepted = accepted_ids(&answers);
    assert!(
        !accepted.is_empty(),
        "some of the second burst must be accepted"
    );
    wait_all_committed(&net, 2, &accepted, "view change");
    let view = net.status(2).unwrap()["view"].as_u64();
    assert!(
        view.is_some_and(|v| v >= 1),
        "the transactions committed in a later view, /status says view {view:?}"
    );
}
