//! The node runner's HTTP endpoints over real sockets: `/metrics`, `/status`, `/health`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aegis_p2p::node::{self, HttpListen, NodeOptions};
use common::{Cluster, address, wait_for};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.to_string(), body.to_string())
}

fn options(cluster: &Cluster, i: usize, bootstrap: Vec<String>) -> NodeOptions {
    let listen = HttpListen {
        host: cluster.ip(i).to_string(),
        port: 0,
    };
    NodeOptions {
        node_id: format!("node{i}"),
        identity: cluster.identity(i),
        p2p: cluster.config(i, 0, bootstrap),
        monitoring: Some(listen.clone()),
        metrics_path: "/metrics".into(),
        api: Some(listen),
        metrics: Arc::new(aegis_telemetry::Metrics::new()),
        ledger: Default::default(),
        drain_inbox: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_status_and_health_reflect_the_mesh() {
    let cluster = Cluster::new(2, 31);
    let a = node::start(options(&cluster, 0, vec![])).await.unwrap();
    let b = node::start(options(&cluster, 1, vec![address(a.network.local_addr())]))
        .await
        .unwrap();
    wait_for(
        Duration::from_secs(15),
        "connected with a ping answered",
        || a.network.peers().first().is_some_and(|p| p.rtt.is_some()),
    )
    .await;

    let (head, metrics) = get(a.metrics_addr.unwrap(), "/metrics").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    for name in [
        "aegis_p2p_peers 1",
        "aegis_p2p_connections{direction=\"inbound\"} 1",
        "aegis_p2p_latency_seconds_bucket",
        "aegis_p2p_messages_total{direction=\"inbound\",type=\"ping\"}",
        "aegis_p2p_bytes_total{direction=\"outbound\"}",
        "aegis_p2p_auth_failures_total 0",
        "aegis_p2p_banned_ips 0",
    ] {
        assert!(metrics.contains(name), "missing {name} in:\n{metrics}");
    }

    let (head, status) = get(a.metrics_addr.unwrap(), "/status").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["block_height"], 0);
    assert_eq!(status["sync_status"], "idle");
    assert_eq!(status["p2p"]["peers"], 1);

    let (head, health) = get(a.api_addr.unwrap(), "/health").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("x-response-time: "),
        "{head}"
    );
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["status"], "healthy");
    b.shutdown();
    a.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_fault_turns_health_unhealthy_until_it_clears() {
    let cluster = Cluster::new(1, 32);
    let mut opts = options(&cluster, 0, vec![]);
    let ledger = Arc::clone(&opts.ledger);
    opts.ledger = Arc::clone(&ledger);
    let a = node::start(opts).await.unwrap();
    ledger.set_height(42);
    ledger.set_fault(Some("database unreachable: connection refused".into()));
    let (head, health) = get(a.api_addr.unwrap(), "/health").await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["status"], "unhealthy");
    assert_eq!(
        health["storage"],
        "database unreachable: connection refused"
    );
    let (_, status) = get(a.metrics_addr.unwrap(), "/status").await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["block_height"], 42);
    assert_eq!(
        status["storage"]["fault"],
        "database unreachable: connection refused"
    );
    ledger.set_fault(None);
    let (head, health) = get(a.api_addr.unwrap(), "/health").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["status"], "healthy");
    a.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_goes_isolated_when_the_only_peer_leaves() {
    let cluster = Cluster::new(2, 33);
    let a = node::start(options(&cluster, 0, vec![])).await.unwrap();
    let b = node::start(options(&cluster, 1, vec![address(a.network.local_addr())]))
        .await
        .unwrap();
    wait_for(Duration::from_secs(15), "connected", || {
        a.network.peer_count() == 1
    })
    .await;

    b.shutdown();
    wait_for(Duration::from_secs(15), "a alone", || {
        a.network.peer_count() == 0
    })
    .await;
    let (_, status) = get(a.metrics_addr.unwrap(), "/status").await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["sync_status"], "isolated");
    a.shutdown();
}
