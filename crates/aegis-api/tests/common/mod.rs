//! Shared helpers: real nodes on loopback (a genesis for N validators, self-signed
//! certificates, the P2P layer) with this crate's HTTP endpoints in front of them.
//!
//! Every node gets its own loopback address (127.0.<net>.<i>, all routed to `lo` on Linux)
//! and ephemeral ports, so concurrent test runs never collide on fixed ports.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aegis_api::{HttpEndpoints, HttpListen, HttpOptions, LedgerStatus, NodeStatus};
use aegis_crypto::SecretKey;
use aegis_p2p::{Identity, Inbox, P2pConfig, P2pMetrics, P2pNetwork, TlsFiles};
use aegis_types::{ConsensusParams, Genesis, Validator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub keys: Vec<SecretKey>,
    pub genesis: Genesis,
    /// Third octet of this test's addresses.
    pub net: u8,
}

impl Cluster {
    pub fn new(n: usize, net: u8) -> Cluster {
        let keys: Vec<SecretKey> = (0..n).map(|_| SecretKey::generate()).collect();
        let genesis = Genesis {
            chain_id: "aegis-test".into(),
            genesis_time_ms: 0,
            validators: keys
                .iter()
                .enumerate()
                .map(|(i, key)| Validator {
                    name: format!("node{i}"),
                    public_key: key.public_key(),
                    p2p_address: format!("127.0.{net}.{}:8000", i + 1),
                    api_address: format!("127.0.{net}.{}:8080", i + 1),
                })
                .collect(),
            consensus: ConsensusParams {
                max_byzantine_nodes: ((n.max(1) - 1) / 3) as u32,
                ..ConsensusParams::default()
            },
        };
        Cluster {
            dir: tempfile::tempdir().unwrap(),
            keys,
            genesis,
            net,
        }
    }

    pub fn ip(&self, i: usize) -> IpAddr {
        IpAddr::from([127, 0, self.net, (i + 1) as u8])
    }

    /// Starts node `i` (P2P on an ephemeral port, bootstrapping from `bootstrap`) with both
    /// HTTP endpoints on ephemeral ports of its address.
    pub async fn start(&self, i: usize, bootstrap: Vec<String>) -> Node {
        let identity = Identity::new(self.keys[i].clone(), &self.genesis).unwrap();
        let validators = identity.validators().clone();
        let metrics = Arc::new(aegis_telemetry::Metrics::new());
        let p2p_metrics = P2pMetrics::new();
        p2p_metrics.register(&metrics);
        let (network, inbox) = P2pNetwork::start(self.config(i, bootstrap), identity, p2p_metrics)
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
            host: self.ip(i).to_string(),
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

    fn config(&self, i: usize, bootstrap: Vec<String>) -> P2pConfig {
        let dir = self.dir.path().join(format!("node{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec![format!("node{i}"), "localhost".into()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let cert_file = dir.join("node.crt");
        let key_file = dir.join("node.key");
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        let mut config = P2pConfig::new(TlsFiles {
            cert_file,
            key_file,
            ca_file: None,
        });
        config.host = self.ip(i).to_string();
        config.port = 0;
        config.bootstrap_nodes = bootstrap;
        config.reconnect_interval = Duration::from_millis(200);
        config.connection_timeout = Duration::from_secs(2);
        config.handshake_timeout = Duration::from_secs(3);
        config.ping_interval = Duration::from_secs(3);
        config.ping_timeout = Duration::from_secs(2);
        config.data_dir = Some(dir.join("data/p2p"));
        config
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

/// How often [`wait_for`] checks its condition.
pub const POLL: Duration = Duration::from_millis(20);

/// Polls `condition` every [`POLL`] until it holds; panics after `timeout`.
pub async fn wait_for(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(POLL).await;
    }
}
