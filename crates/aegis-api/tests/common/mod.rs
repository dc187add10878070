//! Shared helpers: real nodes on loopback (`aegis_testkit::p2p`: a genesis, certificates,
//! the P2P layer) with this crate's HTTP endpoints in front of them, on ephemeral ports of
//! each node's own loopback address.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;

use aegis_api::{HttpEndpoints, HttpListen, HttpOptions, LedgerStatus, NodeStatus};
use aegis_p2p::{Inbox, P2pMetrics, P2pNetwork};
use aegis_testkit::p2p::Cluster;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Starts `cluster`'s node `i` (P2P on an ephemeral port, bootstrapping from `bootstrap`)
/// with both HTTP endpoints on ephemeral ports of its address.
pub async fn start_node(cluster: &Cluster, i: usize, bootstrap: Vec<String>) -> Node {
    let identity = cluster.identity(i);
    let validators = identity.validators().clone();
    let metrics = Arc::new(aegis_telemetry::Metrics::new());
    let p2p_metrics = P2pMetrics::new();
    p2p_metrics.register(&metrics);
    let (network, inbox) =
        P2pNetwork::start(cluster.config(i, 0, bootstrap), identity, p2p_metrics)
            .await
            .unwrap();
    let ledger = Arc::new(LedgerStatus::default());
    let status = Arc::new(NodeStatus::new(
        format!("node{i}"),
        &validators,
        network.clone(),
        Arc::clone(&ledger),
        metrics,
    ));
    let listen = HttpListen {
        host: cluster.ip(i).to_string(),
        port: 0,
    };
    let http = aegis_api::start(
        HttpOptions {
            api: Some(listen.clone()),
            monitoring: Some(listen),
            metrics_path: "/metrics".into(),
        },
        status,
    )
    .await
    .unwrap();
    Node {
        network,
        _inbox: inbox,
        ledger,
        http,
    }
}

/// A running node: its P2P handle, the ledger status its endpoints report, and the
/// endpoints.
pub struct Node {
    pub network: P2pNetwork,
    /// Kept so the P2P layer has a receiver (nothing sends data messages in these tests).
    _inbox: Inbox,
    pub ledger: Arc<LedgerStatus>,
    pub http: HttpEndpoints,
}

impl Node {
    pub fn api(&self) -> SocketAddr {
        self.http.api_addr.unwrap()
    }

    pub fn monitoring(&self) -> SocketAddr {
        self.http.metrics_addr.unwrap()
    }

    pub async fn stop(self) {
        self.http.stop().await;
        self.network.shutdown();
    }
}

/// `method path` over a real socket: the response head and body.
pub async fn request(addr: SocketAddr, method: &str, path: &str) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.to_string(), body.to_string())
}

pub async fn get(addr: SocketAddr, path: &str) -> (String, String) {
    request(addr, "GET", path).await
}
