//! State the P2P layer keeps across restarts and the address it dials from (issue 14):
//! bans survive a restart through `data/p2p/bans.txt`; a node listening on a specific
//! address connects from it, one listening on `0.0.0.0` leaves the choice to the kernel.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::IpAddr;
use std::time::Duration;

use aegis_p2p::Direction;
use aegis_p2p::ban_file::{self, BANS_FILE};
use aegis_testkit::p2p::{Cluster, address, start, test_config, wait_port_free};
use aegis_testkit::tls::{KeyKind, self_signed};
use aegis_testkit::wait_async::wait_until;

const WAIT: Duration = Duration::from_secs(15);

/// A stranger banned after failed authentications is still banned after the node restarts
/// (same `data/p2p/`), for what was left of its ban; a bad line of the file is skipped, the
/// rest applies; with `data/p2p/` deleted the node starts with no bans.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_survives_a_restart_through_the_ban_file() {
    let cluster = Cluster::new(1, 48);
    let mut config = cluster.config(0, 0, vec![]);
    config.rate_limiting.max_failures = 2;
    config.rate_limiting.block_duration = Duration::from_secs(3600);
    let data_dir = config.data_dir.clone().unwrap();
    let (a, _ia) = start(config.clone(), cluster.identity(0)).await;
    let port = a.local_addr().port();

    let rogue_ip = IpAddr::from([127, 0, 48, 66]);
    let rogue_config = test_config(
        rogue_ip,
        0,
        vec![address(a.local_addr())],
        self_signed(cluster.dir.path(), "rogue", KeyKind::Ecdsa),
        None,
    );
    let (rogue, _ir) = start(rogue_config, cluster.outsider_identity()).await;
    wait_until(WAIT, "the outsider banned", || a.is_banned(rogue_ip)).await;
    rogue.shutdown();
    let file = data_dir.join(BANS_FILE);
    wait_until(WAIT, "the ban written to data/p2p/bans.txt", || {
        std::fs::read_to_string(&file).is_ok_and(|text| text.contains(&format!("\n{rogue_ip} ")))
    })
    .await;
    a.shutdown();
    wait_port_free(cluster.ip(0), port).await;

    // A bad line (an operator's edit gone wrong) is skipped; the good one applies.
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{text}not-an-ip 1\n")).unwrap();
    config.port = port;
    let (a, _ia) = start(config.clone(), cluster.identity(0)).await;
    assert!(a.is_banned(rogue_ip), "the ban survived the restart");
    assert!(!a.is_banned(IpAddr::from([127, 0, 48, 67])));
    assert_eq!(a.banned_count(), 1);
    assert_eq!(a.metrics().banned_ips.get(), 1);
    let loaded = ban_file::load(&file);
    assert_eq!(loaded.bans.len(), 1);
    let left_ms = loaded.bans[0].until_ms.saturating_sub(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64,
    );
    assert!(
        left_ms > 3_000_000 && left_ms <= 3_600_000,
        "the ban keeps what it had left of its hour: {left_ms} ms"
    );
    a.shutdown();
    wait_port_free(cluster.ip(0), port).await;

    // data/p2p/ deleted: no bans. (The stopped node's last write of its peer list may
    // land while the directory is being removed: remove until it stays removed.)
    wait_until(WAIT, "data/p2p/ removed", || {
        std::fs::remove_dir_all(&data_dir).is_ok() || !data_dir.exists()
    })
    .await;
    let (a, _ia) = start(config, cluster.identity(0)).await;
    assert!(!a.is_banned(rogue_ip));
    assert_eq!(a.banned_count(), 0);
    a.shutdown();
}

/// A node listening on a specific address dials from it: the peer sees the connection come
/// from that address, not from 127.0.0.1 (per-address firewall rules depend on it). A node
/// listening on 0.0.0.0 binds nothing: the kernel picks its source (127.0.0.1 on loopback).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outgoing_connections_come_from_the_listen_address_when_it_is_specific() {
    let cluster = Cluster::new(3, 49);
    let (a, _ia) = start(cluster.config(0, 0, vec![]), cluster.identity(0)).await;
    let (b, _ib) = start(
        cluster.config(1, 0, vec![address(a.local_addr())]),
        cluster.identity(1),
    )
    .await;
    let mut any = cluster.config(2, 0, vec![address(a.local_addr())]);
    any.host = "0.0.0.0".into();
    let (c, _ic) = start(any, cluster.identity(2)).await;
    wait_until(WAIT, "b and c connected to a", || a.peer_count() == 2).await;
    for peer in a.peers() {
        let expected = match peer.id.0 {
            1 => cluster.ip(1),
            2 => IpAddr::from([127, 0, 0, 1]),
            other => panic!("unexpected peer {other}"),
        };
        // Whichever side's connection survived duplicate resolution, b's is at its own
        // address; c's inbound connection comes from the kernel's choice.
        if peer.direction == Direction::Inbound || peer.id.0 == 1 {
            assert_eq!(peer.remote_addr.ip(), expected, "{peer:?}");
        }
    }
    let b_seen_by_a = a.peers().into_iter().find(|p| p.id.0 == 1).unwrap();
    assert_eq!(b_seen_by_a.remote_addr.ip(), cluster.ip(1));
    for node in [a, b, c] {
        node.shutdown();
    }
}
