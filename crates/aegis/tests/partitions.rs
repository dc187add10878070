//! Primary failure and network partitions with real `aegis run` processes (issue 14).
//!
//! Each node runs on its own loopback address, `127.0.<net>.<i + 1>` (`aegis testnet
//! --hosts`), and dials from it, so a link between two nodes is exactly the TCP traffic
//! between their addresses and P2P ports; [`Partition`] cuts links with nftables `drop` rules
//! of this test's own (root and `nft`, as in CI). The API and metrics ports stay reachable,
//! so the test watches every node all along.
//!
//! In every case, while the test runs, every block any node stores is compared with what
//! every other node stored at that height (no fork, ever), and at the end: every node is at
//! the same head within a bound after the heal (a deadline wait, never a timed assertion),
//! every transaction a node acknowledged as committed is in every node's chain exactly once,
//! and no chain holds a transaction twice. Transactions come through the client API from a
//! background workload, round robin over the nodes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use aegis_testkit::partition::{Endpoint, Partition};
use aegis_testkit::wait::wait_until;
use common::http_get_at;
use common::network::Network;
use common::workload::Workload;
use serde_json::Value;

/// This file's loopback networks (`127.0.<net>.x`), one per test, unique in the workspace.
const NET_PRIMARY_KILLED: u8 = 61;
const NET_PRIMARY_ISOLATED: u8 = 62;
const NET_BACKUP_ISOLATED: u8 = 63;
const NET_SPLIT: u8 = 64;
const NET_FLAPPING: u8 = 65;
const NET_RAFT_LEADER_KILLED: u8 = 66;
const NET_RAFT_LEADER_ISOLATED: u8 = 67;
const NET_RAFT_FOLLOWER_ISOLATED: u8 = 68;
const NET_RAFT_SPLIT: u8 = 69;
const NET_RAFT_FLAPPING: u8 = 70;

/// Bound on any convergence on a loaded machine: commits resuming after a failure, a node
/// reaching the head after a heal.
const CONVERGE_WAIT: Duration = Duration::from_secs(180);
/// How often the waits below look at the nodes (each look is a few HTTP requests per node).
const LOOK_EVERY: Duration = Duration::from_millis(250);
/// One transaction this often from the workload.
const SUBMIT_EVERY: Duration = Duration::from_millis(100);

/// Blocks the others commit while a backup is cut off (more than a checkpoint window and
/// several sync replies of 64 blocks), and while the primary is.
const BEHIND_BACKUP: u64 = 150;
const BEHIND_PRIMARY: u64 = 70;

/// Timers short enough that view changes and dead links are seen within seconds:
/// request timeout 2 s, view-change wait 2 s; a dead link noticed within 3 s (ping every
/// 2 s, 1 s timeout) and redialled every 200 ms (no backoff growth within a test).
const CONSENSUS_TIMERS: &str = "  timeout: 2s\n  message_timeout: 2s\n";
const P2P_TIMERS: &str = "  reconnect_interval: 200ms\n  max_reconnect_attempts: 1000\n  \
                          connection_timeout: 1s\n  handshake_timeout: 2s\n  \
                          ping_interval: 2s\n  ping_timeout: 1s\n";

fn get_json(bed: &Testbed, node: usize, port: u16, path: &str) -> Option<Value> {
    let (head, body) = http_get_at(bed.network.ip(node), port, path)?;
    head.starts_with("HTTP/1.1 200")
        .then(|| serde_json::from_str(&body).ok())
        .flatten()
}

/// Four validators on their own addresses, the links between them, and what the test has
/// seen of their chains.
struct Testbed {
    network: Network,
    partition: Option<Partition>,
    /// Block hash by height, as first seen, and on which node.
    seen: BTreeMap<u64, (String, usize)>,
    /// Per node, the highest height compared with `seen`.
    checked: Vec<u64>,
    /// Transactions a node reported committed: id -> height.
    acknowledged: BTreeMap<String, u64>,
    /// Which node acknowledged each, and its answer (for the failure message).
    answers: BTreeMap<String, (usize, String)>,
    /// Accepted ids already found committed (not asked again).
    asked: BTreeSet<String>,
    started: Instant,
}

impl Testbed {
    /// Generates four validators in loopback network `net` with fast timers, starts them
    /// and waits for the full mesh; checks every node dials from its own address.
    fn start(net: u8, algorithm: &'static str) -> Testbed {
        let mut network = Network::generate_on_own_addresses(4, net, algorithm);
        for i in 0..network.n {
            let path = network.config(i);
            let config = std::fs::read_to_string(&path).unwrap();
            let config = config
                .replacen(
                    "consensus:\n",
                    &format!("consensus:\n{CONSENSUS_TIMERS}"),
                    1,
                )
                .replacen("p2p:\n", &format!("p2p:\n{P2P_TIMERS}"), 1);
            std::fs::write(&path, config).unwrap();
        }
        for i in 0..network.n {
            network.start_node(i);
        }
        network.wait_full_mesh();
        let bed = Testbed {
            checked: vec![0; network.n],
            network,
            partition: None,
            seen: BTreeMap::new(),
            acknowledged: BTreeMap::new(),
            answers: BTreeMap::new(),
            asked: BTreeSet::new(),
            started: Instant::now(),
        };
        bed.check_dial_addresses();
        bed
    }

    /// Every inbound connection comes from the dialling node's own address: the P2P layer
    /// binds outgoing connections to its listen address, which is what makes per-address
    /// firewall rules (and the cuts below) work.
    fn check_dial_addresses(&self) {
        for i in 0..self.network.n {
            let status = self.network.status(i).unwrap();
            for peer in status["p2p"]["connected"].as_array().unwrap() {
                let id = peer["validator_id"].as_u64().unwrap() as usize;
                let remote: std::net::SocketAddr =
                    peer["remote"].as_str().unwrap().parse().unwrap();
                assert_eq!(
                    remote.ip(),
                    self.network.ip(id),
                    "node{i} sees node{id} at its own address ({}): {status}",
                    peer["direction"]
                );
            }
        }
    }

    fn n(&self) -> usize {
        self.network.n
    }

    fn endpoint(&self, i: usize) -> Endpoint {
        Endpoint::new(self.network.ip(i), self.network.p2p_port(i))
    }

    fn endpoints(&self) -> Vec<Endpoint> {
        (0..self.n()).map(|i| self.endpoint(i)).collect()
    }

    fn partition(&mut self) -> &mut Partition {
        self.partition
            .get_or_insert_with(|| Partition::new().unwrap_or_else(|error| panic!("{error}")))
    }

    fn workload(&self) -> Workload {
        let apis = (0..self.n())
            .map(|i| (self.network.ip(i), self.network.api_port(i)))
            .collect();
        Workload::start_at(apis, SUBMIT_EVERY)
    }

    fn height(&self, i: usize) -> Option<u64> {
        self.network.height(i)
    }

    fn heights(&self) -> Vec<Option<u64>> {
        (0..self.n()).map(|i| self.height(i)).collect()
    }

    /// The highest height any answering node reports.
    fn head(&self) -> u64 {
        self.heights().into_iter().flatten().max().unwrap_or(0)
    }

    /// The primary as node `i` sees it.
    fn primary_seen_by(&self, i: usize) -> Option<usize> {
        let status = self.network.status(i)?;
        let name = status["primary"].as_str()?;
        name.strip_prefix("node")?.parse().ok()
    }

    /// `aegis_consensus_view_changes_total` of node `i`.
    fn view_changes(&self, i: usize) -> u64 {
        let (_, body) =
            http_get_at(self.network.ip(i), self.network.metrics_port(i), "/metrics").unwrap();
        body.lines()
            .find_map(|line| line.strip_prefix("aegis_consensus_view_changes_total "))
            .and_then(|value| value.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("node{i} exports aegis_consensus_view_changes_total"))
            as u64
    }

    /// `aegis_p2p_messages_total{direction="inbound",type="sync"}` of node `i`.
    fn sync_messages_received(&self, i: usize) -> u64 {
        let (_, body) =
            http_get_at(self.network.ip(i), self.network.metrics_port(i), "/metrics").unwrap();
        body.lines()
            .filter(|line| {
                line.starts_with("aegis_p2p_messages_total{")
                    && line.contains("\"inbound\"")
                    && line.contains("\"sync\"")
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// `aegis_consensus_view_changes_total` rose: on every one of `nodes` with PBFT (every
    /// backup takes part in a view change); with Raft on at least one (the candidate that
    /// won; the others only vote).
    fn check_view_changes(&self, algorithm: &str, nodes: &[usize], before: &[u64]) {
        let after: Vec<u64> = (0..self.n())
            .map(|i| {
                if nodes.contains(&i) {
                    self.view_changes(i)
                } else {
                    0
                }
            })
            .collect();
        let rose = |i: &usize| after[*i] > before[*i];
        let held = if algorithm == "pbft" {
            nodes.iter().all(rose)
        } else {
            nodes.iter().any(rose)
        };
        assert!(
            held,
            "{algorithm}: view changes rose on nodes {nodes:?}: {before:?} -> {after:?}"
        );
    }

    fn block_hash(&self, node: usize, height: u64) -> Option<String> {
        let block = get_json(
            self,
            node,
            self.network.api_port(node),
            &format!("/v1/blocks/{height}"),
        )?;
        Some(block["hash"].as_str()?.to_owned())
    }

    /// Compares every block stored since the last look with what the other nodes stored at
    /// that height: two different blocks at one height fail the test at once.
    fn look(&mut self) {
        for i in 0..self.n() {
            let Some(height) = self.height(i) else {
                continue;
            };
            for h in self.checked[i] + 1..=height {
                let Some(hash) = self.block_hash(i, h) else {
                    break;
                };
                match self.seen.get(&h) {
                    Some((first, on)) => assert_eq!(
                        &hash,
                        first,
                        "fork at height {h}: node{i} stores {hash}, node{on} stored {first}\n{}",
                        self.network.logs()
                    ),
                    None => {
                        self.seen.insert(h, (hash, i));
                    }
                }
                self.checked[i] = h;
            }
        }
    }

    /// Waits for `condition`, looking at the chains every [`LOOK_EVERY`] meanwhile.
    fn wait(&mut self, what: &str, mut condition: impl FnMut(&mut Testbed) -> bool) {
        let mut last = Instant::now() - LOOK_EVERY;
        let bed = std::cell::RefCell::new(self);
        wait_until(
            CONVERGE_WAIT,
            || {
                let bed = bed.borrow();
                format!(
                    "{what}: heights {:?}, primaries {:?}, peers {:?}, view changes {:?}\n{}",
                    bed.heights(),
                    (0..bed.n())
                        .map(|i| bed.primary_seen_by(i))
                        .collect::<Vec<_>>(),
                    (0..bed.n())
                        .map(|i| bed.network.peers(i))
                        .collect::<Vec<_>>(),
                    (0..bed.n())
                        .map(|i| bed.network.status(i).map(|_| bed.view_changes(i)))
                        .collect::<Vec<_>>(),
                    bed.network.logs()
                )
            },
            || {
                if last.elapsed() < LOOK_EVERY {
                    return false;
                }
                last = Instant::now();
                let mut bed = bed.borrow_mut();
                bed.look();
                condition(&mut bed)
            },
        );
    }

    /// Asks, for each transaction accepted so far and not yet found committed, whether a
    /// node reports it committed (each node in turn; all answer through the API).
    fn acknowledge(&mut self, workload: &Workload) {
        self.acknowledge_ids(workload.accepted_ids());
    }

    fn acknowledge_ids(&mut self, ids: Vec<String>) {
        for (k, id) in ids.into_iter().enumerate() {
            if self.asked.contains(&id) {
                continue;
            }
            let node = k % self.n();
            let path = format!("/v1/transactions/{id}");
            if let Some(tx) = get_json(self, node, self.network.api_port(node), &path)
                && tx["status"] == "committed"
            {
                let height = tx["height"].as_u64().unwrap();
                self.acknowledged.insert(id.clone(), height);
                self.answers.insert(id.clone(), (node, tx.to_string()));
                self.asked.insert(id);
            }
        }
    }

    /// The transaction ids of block `height` on `node`.
    fn block_txs(&self, node: usize, height: u64) -> Vec<String> {
        let block = get_json(
            self,
            node,
            self.network.api_port(node),
            &format!("/v1/blocks/{height}"),
        )
        .unwrap_or_else(|| panic!("node{node} serves block {height}"));
        block["transactions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|tx| {
                serde_json::from_value::<aegis_types::Transaction>(tx.clone())
                    .unwrap()
                    .id()
                    .to_hex()
            })
            .collect()
    }

    /// Stops the workload, waits for every node to hold the same head, and checks the
    /// chains: same block at every height, every acknowledged transaction exactly once at
    /// the height it was acknowledged at, no transaction twice.
    fn finish(mut self, workload: Workload) {
        let ids = workload.finish();
        // What the nodes acknowledged once the workload stopped; blocks may still come
        // (pending transactions), so the head checked is the one every node reached past
        // every acknowledged height, whatever follows it.
        self.acknowledge_ids(ids);
        let last_acknowledged = self.acknowledged.values().copied().max().unwrap_or(0);
        self.wait(
            "every node at the same head, past every acknowledged height",
            |bed| {
                let heights = bed.heights();
                heights.iter().all(|h| h.is_some() && *h == heights[0])
                    && heights[0].unwrap() >= last_acknowledged
                    && (0..bed.n()).all(|i| bed.checked[i] >= heights[0].unwrap())
            },
        );
        self.look();
        let head = self.checked.iter().copied().min().unwrap_or(0);
        for i in 0..self.n() {
            assert_eq!(
                self.block_hash(i, head).as_deref(),
                self.seen.get(&head).map(|(hash, _)| hash.as_str()),
                "node{i} holds the same block at the head {head}"
            );
        }
        let mut chains: Vec<BTreeMap<String, Vec<u64>>> = Vec::new();
        for i in 0..self.n() {
            let mut positions: BTreeMap<String, Vec<u64>> = BTreeMap::new();
            for h in 1..=head {
                for id in self.block_txs(i, h) {
                    positions.entry(id).or_default().push(h);
                }
            }
            for (id, heights) in &positions {
                assert_eq!(
                    heights.len(),
                    1,
                    "node{i} holds {id} once, not at {heights:?}"
                );
            }
            chains.push(positions);
        }
        assert!(
            !self.acknowledged.is_empty(),
            "the workload's transactions were committed"
        );
        for (id, height) in &self.acknowledged {
            for (i, chain) in chains.iter().enumerate() {
                assert_eq!(
                    chain.get(id),
                    Some(&vec![*height]),
                    "{id}, acknowledged committed at height {height} by node{} ({}), is in node{i}'s \
                     chain exactly once there; node{i}'s block {height} holds {:?}; chains end at {head}",
                    self.answers[id].0,
                    self.answers[id].1,
                    self.block_txs(i, *height)
                );
            }
        }
        // How the nodes caught up: block sync messages each received (for the report).
        let synced: Vec<u64> = (0..self.n())
            .map(|i| self.sync_messages_received(i))
            .collect();
        eprintln!(
            "partitions: {} blocks, {} acknowledged transactions, {:?} since the mesh formed, \
             sync messages received per node {synced:?}",
            head,
            self.acknowledged.len(),
            self.started.elapsed()
        );
    }
}

/// Kills the primary with SIGKILL under load: the survivors change view
/// (`aegis_consensus_view_changes_total` rises on each) and keep committing; the old
/// primary restarts, rejoins as a backup and catches up.
fn primary_killed(net: u8, algorithm: &'static str) {
    let mut bed = Testbed::start(net, algorithm);
    let workload = bed.workload();
    bed.wait("first commits", |bed| bed.head() >= 3);
    let primary = bed.primary_seen_by(0).expect("node0 names the primary");
    let survivors: Vec<usize> = (0..bed.n()).filter(|i| *i != primary).collect();
    let before: Vec<u64> = (0..bed.n()).map(|i| bed.view_changes(i)).collect();
    bed.network.kill_node(primary);
    let at_kill = bed.head();
    bed.wait("commits resume on the survivors", |bed| {
        survivors
            .iter()
            .all(|i| bed.height(*i).is_some_and(|h| h >= at_kill + 3))
    });
    bed.check_view_changes(algorithm, &survivors, &before);
    for i in &survivors {
        assert_ne!(
            bed.primary_seen_by(*i),
            Some(primary),
            "node{i} has a new primary"
        );
    }
    bed.acknowledge(&workload);
    bed.network.start_node(primary);
    let at_restart = bed.head();
    bed.wait("the old primary catches up", |bed| {
        bed.height(primary).is_some_and(|h| h > at_restart)
    });
    let status = bed.network.status(primary).unwrap();
    assert_ne!(
        bed.primary_seen_by(primary),
        Some(primary),
        "the old primary rejoins as a backup: {status}"
    );
    bed.finish(workload);
}

/// The primary cut off from every other node: the others change view and keep committing;
/// after the heal it follows the new primary and reaches the head.
fn primary_isolated(net: u8, algorithm: &'static str) {
    let mut bed = Testbed::start(net, algorithm);
    let workload = bed.workload();
    bed.wait("first commits", |bed| bed.head() >= 3);
    let primary = bed.primary_seen_by(0).expect("node0 names the primary");
    let others: Vec<usize> = (0..bed.n()).filter(|i| *i != primary).collect();
    let before: Vec<u64> = (0..bed.n()).map(|i| bed.view_changes(i)).collect();
    let (node, all) = (bed.endpoint(primary), bed.endpoints());
    bed.partition().isolate(node, &all);
    let at_cut = bed.head();
    bed.wait(
        "commits go on without the isolated primary, which lost every peer",
        |bed| {
            bed.network.peers(primary) == Some(0)
                && others.iter().all(|i| {
                    bed.network.peers(*i) == Some(2)
                        && bed.height(*i).is_some_and(|h| h >= at_cut + BEHIND_PRIMARY)
                })
        },
    );
    bed.check_view_changes(algorithm, &others, &before);
    let isolated = bed.height(primary).unwrap();
    assert!(
        isolated <= at_cut + 1,
        "the isolated primary committed nothing alone: {isolated} (head at the cut {at_cut})"
    );
    bed.acknowledge(&workload);
    bed.partition().heal_all();
    let at_heal = bed.head();
    bed.wait(
        "the old primary reconnects and passes the head of the heal",
        |bed| {
            bed.network.peers(primary) == Some(3)
                && bed.height(primary).is_some_and(|h| h > at_heal)
        },
    );
    bed.finish(workload);
}

/// One backup cut off: the other three (a quorum) keep committing without a view change
/// being needed; after the heal the backup catches up.
fn backup_isolated(net: u8, algorithm: &'static str) {
    let mut bed = Testbed::start(net, algorithm);
    let workload = bed.workload();
    bed.wait("first commits", |bed| bed.head() >= 3);
    let primary = bed.primary_seen_by(0).expect("node0 names the primary");
    let backup = (primary + 1) % bed.n();
    let others: Vec<usize> = (0..bed.n()).filter(|i| *i != backup).collect();
    let (node, all) = (bed.endpoint(backup), bed.endpoints());
    bed.partition().isolate(node, &all);
    let at_cut = bed.head();
    bed.wait(
        "the other three keep committing, the backup lost every peer",
        |bed| {
            bed.network.peers(backup) == Some(0)
                && others.iter().all(|i| {
                    bed.network.peers(*i) == Some(2)
                        && bed.height(*i).is_some_and(|h| h >= at_cut + BEHIND_BACKUP)
                })
        },
    );
    let isolated = bed.height(backup).unwrap();
    assert!(
        isolated <= at_cut + 1,
        "the isolated backup committed nothing alone: {isolated} (head at the cut {at_cut})"
    );
    bed.acknowledge(&workload);
    bed.partition().heal_all();
    let at_heal = bed.head();
    bed.wait(
        "the backup reconnects and passes the head of the heal",
        |bed| {
            bed.network.peers(backup) == Some(3) && bed.height(backup).is_some_and(|h| h > at_heal)
        },
    );
    bed.finish(workload);
}

/// A 2-2 split: neither half has a quorum, so nothing commits (both halves try view changes
/// and get nowhere) and nothing forks; after the heal the network commits again.
fn two_two_split(net: u8, algorithm: &'static str) {
    let mut bed = Testbed::start(net, algorithm);
    let workload = bed.workload();
    bed.wait("first commits", |bed| bed.head() >= 3);
    let primary = bed.primary_seen_by(0).expect("node0 names the primary");
    let partner = (primary + 1) % bed.n();
    let left = [bed.endpoint(primary), bed.endpoint(partner)];
    let right: Vec<Endpoint> = (0..bed.n())
        .filter(|i| *i != primary && *i != partner)
        .map(|i| bed.endpoint(i))
        .collect();
    bed.partition().split(&left, &right);
    let at_cut = bed.head();
    let before: Vec<u64> = (0..bed.n()).map(|i| bed.view_changes(i)).collect();
    // Long enough to see, with the workload submitting to both halves meanwhile:
    // PBFT: every node's request timer fired and it started a view change that cannot
    // complete (2 of 4 VIEW-CHANGEs are not a quorum, so no node names a primary);
    // Raft: no node names a leader (the old one stepped down without a majority; the
    // other half's pre-votes cannot win 3 of 4, so no election starts and no term moves).
    let accepted = workload.accepted();
    bed.wait(
        "every node stuck in a view change (PBFT) or the leaderless half in elections (Raft) \
         during the split, with more submissions",
        |bed| {
            let stuck = if algorithm == "pbft" {
                (0..bed.n())
                    .all(|i| bed.view_changes(i) > before[i] && bed.primary_seen_by(i).is_none())
            } else {
                (0..bed.n()).all(|i| bed.primary_seen_by(i).is_none())
            };
            stuck
                && (0..bed.n()).all(|i| bed.network.peers(i) == Some(1))
                && workload.accepted() >= accepted + 20
        },
    );
    // At most a block that was already decided when the links went down.
    let during = bed.head();
    assert!(
        during <= at_cut + 1,
        "nothing committed during the split: head {during}, at the cut {at_cut}"
    );
    bed.acknowledge(&workload);
    bed.partition().heal_all();
    bed.wait(
        "the mesh re-forms and commits resume on every node",
        |bed| {
            (0..bed.n()).all(|i| {
                bed.network.peers(i) == Some(3) && bed.height(i).is_some_and(|h| h >= during + 3)
            })
        },
    );
    bed.finish(workload);
}

/// A flapping link between the primary and a backup: cut and healed again and again while
/// the network commits; no fork, and every node is at the head in the end.
fn flapping_link(net: u8, algorithm: &'static str) {
    const FLAPS: usize = 5;
    let mut bed = Testbed::start(net, algorithm);
    let workload = bed.workload();
    bed.wait("first commits", |bed| bed.head() >= 3);
    for flap in 0..FLAPS {
        // The primary as it is now: view changes may have moved it.
        let primary = bed.primary_seen_by(0).unwrap_or(0);
        let backup = (primary + 1) % bed.n();
        let (a, b) = (bed.endpoint(primary), bed.endpoint(backup));
        bed.partition().cut(a, b);
        let at_cut = bed.head();
        bed.wait(
            &format!("flap {flap}: both ends see the link down, commits go on"),
            |bed| {
                bed.network.peers(primary) == Some(2)
                    && bed.network.peers(backup) == Some(2)
                    && bed.head() >= at_cut + 2
            },
        );
        bed.partition().heal(a, b);
        let at_heal = bed.head();
        bed.wait(
            &format!("flap {flap}: the link is back and commits go on"),
            |bed| {
                bed.network.peers(primary) == Some(3)
                    && bed.network.peers(backup) == Some(3)
                    && bed.head() > at_heal
            },
        );
    }
    bed.acknowledge(&workload);
    bed.finish(workload);
}

// The cases for PBFT (primary, backups, view changes) and for Raft (leader, followers,
// elections: `primary` and `aegis_consensus_view_changes_total` report them the same way).

#[test]
fn the_primary_killed_under_load_is_replaced_and_rejoins_as_a_backup() {
    primary_killed(NET_PRIMARY_KILLED, "pbft");
}

#[test]
fn raft_the_leader_killed_under_load_is_replaced_and_rejoins_as_a_follower() {
    primary_killed(NET_RAFT_LEADER_KILLED, "raft");
}

#[test]
fn an_isolated_primary_is_replaced_and_catches_up_after_the_heal() {
    primary_isolated(NET_PRIMARY_ISOLATED, "pbft");
}

#[test]
fn raft_an_isolated_leader_is_replaced_and_catches_up_after_the_heal() {
    primary_isolated(NET_RAFT_LEADER_ISOLATED, "raft");
}

#[test]
fn an_isolated_backup_catches_up_after_the_heal() {
    backup_isolated(NET_BACKUP_ISOLATED, "pbft");
}

#[test]
fn raft_an_isolated_follower_catches_up_after_the_heal() {
    backup_isolated(NET_RAFT_FOLLOWER_ISOLATED, "raft");
}

#[test]
fn a_two_two_split_commits_nothing_and_resumes_after_the_heal() {
    two_two_split(NET_SPLIT, "pbft");
}

#[test]
fn raft_a_two_two_split_commits_nothing_and_resumes_after_the_heal() {
    two_two_split(NET_RAFT_SPLIT, "raft");
}

#[test]
fn a_flapping_link_neither_forks_nor_stalls_the_network() {
    flapping_link(NET_FLAPPING, "pbft");
}

#[test]
fn raft_a_flapping_link_neither_forks_nor_stalls_the_network() {
    flapping_link(NET_RAFT_FLAPPING, "raft");
}
