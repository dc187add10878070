//! Nodes on loopback with real sockets and TLS: connecting, messaging, peer exchange,
//! redial, duplicate resolution.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use aegis_p2p::{Message, P2pNetwork, tags};
use aegis_testkit::net::free_port;
use aegis_testkit::p2p::{Cluster, address, start, wait_port_free};
use aegis_testkit::tls::{KeyKind, self_signed};
use aegis_testkit::wait::POLL_INTERVAL;
use aegis_testkit::wait_async::{retry_until, wait_until};
use aegis_types::ValidatorId;

const WAIT: Duration = Duration::from_secs(15);
/// Polls over which a formed mesh must stay unchanged.
const STABLE_CHECKS: usize = 25;

fn full_mesh(nodes: &[P2pNetwork]) -> bool {
    nodes
        .iter()
        .all(|node| node.peer_count() == nodes.len() - 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_connect_and_exchange_messages() {
    let cluster = Cluster::new(2, 11);
    let (a, mut inbox_a) = start(cluster.config(0, 0, vec![]), cluster.identity(0)).await;
    let (b, mut inbox_b) = start(
        cluster.config(1, 0, vec![address(a.local_addr())]),
        cluster.identity(1),
    )
    .await;
    wait_until(WAIT, "two nodes connected", || {
        a.peer_count() == 1 && b.peer_count() == 1
    })
    .await;

    a.send(
        ValidatorId(1),
        Message::new(tags::CONSENSUS, b"from a".to_vec()),
    )
    .await
    .unwrap();
    let got = inbox_b.recv().await.unwrap();
    assert_eq!(got.from, ValidatorId(0));
    assert_eq!(got.public_key, cluster.keys[0].public_key());
    assert_eq!(got.tag, tags::CONSENSUS);
    assert_eq!(&got.payload[..], b"from a");

    // Many messages in both directions arrive complete and in order (batched frames).
    for i in 0..500u32 {
        b.try_send(
            ValidatorId(0),
            Message::new(tags::SYNC, i.to_be_bytes().to_vec()),
        )
        .unwrap();
    }
    for i in 0..500u32 {
        let got = inbox_a.recv().await.unwrap();
        assert_eq!(got.from, ValidatorId(1));
        assert_eq!(&got.payload[..], &i.to_be_bytes());
    }
    assert_eq!(
        b.broadcast(Message::new(tags::CONSENSUS, vec![7u8; 200_000])),
        1
    );
    assert_eq!(inbox_a.recv().await.unwrap().payload.len(), 200_000);

    // A message above the frame bound is refused at the sender, not sent.
    let too_big = vec![0u8; 17 << 20];
    assert!(matches!(
        a.try_send(ValidatorId(1), Message::new(1, too_big)),
        Err(aegis_p2p::SendError::TooLarge { .. })
    ));
    // Pings measure round trips.
    wait_until(WAIT, "a ping round trip", || {
        a.peers().first().is_some_and(|p| p.rtt.is_some())
    })
    .await;
    a.shutdown();
    b.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_nodes_form_a_full_mesh_from_bootstrap_lists() {
    let cluster = Cluster::new(4, 12);
    let ports: Vec<u16> = (0..4).map(|i| free_port(cluster.ip(i))).collect();
    // Every node lists every node, itself included, so all dial each other at once:
    // self-dials are recognised and duplicate connections resolved to one per pair.
    let all: Vec<String> = (0..4)
        .map(|i| format!("{}:{}", cluster.ip(i), ports[i]))
        .collect();
    let mut nodes = Vec::new();
    let mut inboxes = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let (node, inbox) = start(cluster.config(i, *port, all.clone()), cluster.identity(i)).await;
        nodes.push(node);
        inboxes.push(inbox);
    }
    wait_until(WAIT, "full mesh of 4", || full_mesh(&nodes)).await;
    // Stable: one connection per pair, no flapping. Every check over a window of polls
    // must see the full mesh and exactly three connections per node (the counters never
    // grow past it while duplicates are resolved).
    let connections = |node: &P2pNetwork| {
        node.metrics().connections(aegis_p2p::Direction::Inbound)
            + node.metrics().connections(aegis_p2p::Direction::Outbound)
    };
    for _ in 0..STABLE_CHECKS {
        assert!(full_mesh(&nodes));
        for node in &nodes {
            assert_eq!(connections(node), 3);
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    for (i, node) in nodes.iter().enumerate() {
        assert_eq!(
            node.broadcast(Message::new(tags::CONSENSUS, vec![i as u8; 10])),
            3
        );
    }
    for (i, inbox) in inboxes.iter_mut().enumerate() {
        let mut from: Vec<u16> = Vec::new();
        for _ in 0..3 {
            let got = inbox.recv().await.unwrap();
            assert_eq!(got.payload[0] as u16, got.from.0);
            from.push(got.from.0);
        }
        from.sort_unstable();
        let expected: Vec<u16> = (0..4).filter(|j| *j != i as u16).collect();
        assert_eq!(from, expected);
    }
    for node in &nodes {
        node.shutdown();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_exchange_completes_the_mesh_and_peers_file_survives_restart() {
    let cluster = Cluster::new(4, 13);
    let (seed, _inbox0) = start(cluster.config(0, 0, vec![]), cluster.identity(0)).await;
    let bootstrap = vec![address(seed.local_addr())];
    let mut nodes = vec![seed];
    let mut inboxes = Vec::new();
    let mut ports = vec![nodes[0].local_addr().port()];
    for i in 1..4 {
        let (node, inbox) =
            start(cluster.config(i, 0, bootstrap.clone()), cluster.identity(i)).await;
        ports.push(node.local_addr().port());
        nodes.push(node);
        inboxes.push(inbox);
    }
    wait_until(WAIT, "full mesh through peer exchange", || {
        full_mesh(&nodes)
    })
    .await;
    let peers_file = cluster.node_dir(3).join("data/p2p/peers.json");
    wait_until(WAIT, "peers.json with 3 validators", || {
        std::fs::read_to_string(&peers_file)
            .map(|text| text.matches("public_key").count() >= 3)
            .unwrap_or(false)
    })
    .await;

    // Node 3 restarts with no bootstrap list: the known-peers file is enough.
    nodes[3].shutdown();
    wait_until(WAIT, "others notice node3 left", || {
        nodes[..3].iter().all(|n| n.peer_count() == 2)
    })
    .await;
    wait_port_free(cluster.ip(3), ports[3]).await;
    let (node3, _inbox3) = start(cluster.config(3, ports[3], vec![]), cluster.identity(3)).await;
    nodes[3] = node3;
    wait_until(WAIT, "node3 back from peers.json", || full_mesh(&nodes)).await;
    for node in &nodes {
        node.shutdown();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_peer_is_dropped_and_redialled() {
    let cluster = Cluster::new(2, 14);
    let port_b = free_port(cluster.ip(1));
    let b_address = format!("{}:{}", cluster.ip(1), port_b);
    let (a, _ia) = start(cluster.config(0, 0, vec![b_address]), cluster.identity(0)).await;
    let (b, _ib) = start(cluster.config(1, port_b, vec![]), cluster.identity(1)).await;
    wait_until(WAIT, "connected", || a.peer_count() == 1).await;
    b.shutdown();
    wait_until(WAIT, "a drops the dead peer", || a.peer_count() == 0).await;
    // Restart b on the same port once its listener is gone.
    wait_port_free(cluster.ip(1), port_b).await;
    let (b2, _ib2) = start(cluster.config(1, port_b, vec![]), cluster.identity(1)).await;
    wait_until(WAIT, "a redials b", || {
        a.peer_count() == 1 && b2.peer_count() == 1
    })
    .await;
    a.shutdown();
    b2.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_peer_is_cut_off_and_the_others_keep_receiving() {
    let cluster = Cluster::new(3, 15);
    let mut slow_config = cluster.config(2, 0, vec![]);
    // The slow node never reads its inbox; keep every queue on the way small.
    slow_config.inbound_queue_messages = 8;
    slow_config.inbound_queue_bytes = 64 * 1024;
    let (slow, _never_read) = start(slow_config, cluster.identity(2)).await;
    let mut sender_config = cluster.config(0, 0, vec![address(slow.local_addr())]);
    sender_config.peer_queue_messages = 16;
    sender_config.peer_queue_bytes = 1 << 20;
    let (a, _ia) = start(sender_config, cluster.identity(0)).await;
    let (b, mut ib) = start(
        cluster.config(1, 0, vec![address(a.local_addr())]),
        cluster.identity(1),
    )
    .await;
    wait_until(WAIT, "a connected to b and the slow node", || {
        a.peer_count() == 2
    })
    .await;

    let payload = vec![0u8; 64 * 1024];
    let mut cut_off = false;
    for _ in 0..2000 {
        if a.broadcast(Message::new(tags::SYNC, payload.clone())) < 2 {
            cut_off = true;
            break;
        }
        // b keeps up: it has each message before the next is sent.
        let got = tokio::time::timeout(WAIT, ib.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.payload.len(), payload.len());
    }
    assert!(cut_off, "the slow peer was never disconnected");
    // b is still connected and receiving.
    a.send(
        ValidatorId(1),
        Message::new(tags::CONSENSUS, b"still here".to_vec()),
    )
    .await
    .unwrap();
    retry_until(WAIT, "b to receive \"still here\"", async || {
        let got = tokio::time::timeout(WAIT, ib.recv())
            .await
            .unwrap()
            .unwrap();
        &got.payload[..] == b"still here"
    })
    .await;
    assert!(a.peers().iter().any(|p| p.id == ValidatorId(1)));
    a.shutdown();
    b.shutdown();
    slow.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_answering_pings_is_dropped() {
    use aegis_p2p::auth::{EXPORTER_BYTES, EXPORTER_LABEL, Role, exchange_hello};
    let cluster = Cluster::new(2, 16);
    let mut config = cluster.config(0, 0, vec![]);
    config.ping_interval = Duration::from_millis(600);
    config.ping_timeout = Duration::from_millis(300);
    let (a, _ia) = start(config, cluster.identity(0)).await;

    // Validator 1 authenticates by hand, then goes silent with the socket open.
    let files = self_signed(&cluster.node_dir(1), "zombie", KeyKind::Ecdsa);
    let store = aegis_p2p::TlsStore::load(files).unwrap();
    let connector = tokio_rustls::TlsConnector::from(store.client_config().unwrap());
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::new(cluster.ip(1), 0))
        .unwrap();
    let tcp = socket.connect(a.local_addr()).await.unwrap();
    let server_name = rustls::pki_types::ServerName::try_from("node0").unwrap();
    let mut tls = connector.connect(server_name, tcp).await.unwrap();
    let exporter = tls
        .get_ref()
        .1
        .export_keying_material([0u8; EXPORTER_BYTES], EXPORTER_LABEL, None)
        .unwrap();
    let peer = exchange_hello(&mut tls, &exporter, Role::Dialer, &cluster.identity(1), 0)
        .await
        .unwrap();
    assert_eq!(peer.id, ValidatorId(0));
    wait_until(WAIT, "zombie registered", || a.peer_count() == 1).await;
    wait_until(WAIT, "zombie dropped after the ping timeout", || {
        a.peer_count() == 0
    })
    .await;
    drop(tls);
    a.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_frames_arrive_intact_and_smaller() {
    let cluster = Cluster::new(2, 17);
    let mut config_a = cluster.config(0, 0, vec![]);
    config_a.message_compression = true;
    let (a, mut ia) = start(config_a, cluster.identity(0)).await;
    let mut config_b = cluster.config(1, 0, vec![address(a.local_addr())]);
    config_b.message_compression = true;
    let (b, _ib) = start(config_b, cluster.identity(1)).await;
    wait_until(WAIT, "connected", || {
        a.peer_count() == 1 && b.peer_count() == 1
    })
    .await;
    let sent_before = b.metrics().bytes_total(aegis_p2p::Direction::Outbound);
    let payload: Vec<u8> = (0..1_000_000u32).map(|i| (i % 7) as u8).collect();
    b.send(ValidatorId(0), Message::new(tags::SYNC, payload.clone()))
        .await
        .unwrap();
    let got = tokio::time::timeout(WAIT, ia.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got.payload[..], &payload[..]);
    let sent = b.metrics().bytes_total(aegis_p2p::Direction::Outbound) - sent_before;
    assert!(
        sent < payload.len() as u64 / 10,
        "{sent} bytes on the wire for 1 MB of pattern"
    );
    a.shutdown();
    b.shutdown();
}
