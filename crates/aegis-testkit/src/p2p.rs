//! `aegis-p2p` nodes on loopback (feature `p2p`): a genesis of validators with generated
//! keys, each at its own loopback address ([`crate::net::loopback`]), with a self-signed
//! certificate, a data directory and fast timers, so tests see connections, redials and
//! ping timeouts within seconds.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use aegis_crypto::SecretKey;
use aegis_p2p::{Identity, Inbox, P2pConfig, P2pMetrics, P2pNetwork, TlsFiles};
use aegis_types::Genesis;

use crate::chain::GenesisBuilder;
use crate::tls::{KeyKind, self_signed};

/// The validators of one test: their genesis, keys and files. Nodes start when the test
/// starts them ([`Cluster::config`], [`start`]).
#[derive(Debug)]
pub struct Cluster {
    /// Every node's files (certificates, known peers), removed when the cluster is dropped.
    pub dir: tempfile::TempDir,
    /// Generated, so nodes of other tests that reach this one's addresses are refused.
    pub keys: Vec<SecretKey>,
    pub genesis: Genesis,
    /// The third octet of this test's addresses: unique to the test.
    pub net: u8,
}

impl Cluster {
    /// `n` validators (f = (n - 1) / 3, chain [`crate::CHAIN`]) in loopback network `net`.
    pub fn new(n: usize, net: u8) -> Cluster {
        let (genesis, keys) = GenesisBuilder::new(n)
            .generated_keys()
            .loopback(net)
            .build_with_keys();
        Cluster {
            dir: tempfile::tempdir().expect("create the cluster's directory"),
            keys,
            genesis,
            net,
        }
    }

    /// Node `i`'s address (any index; outsiders use high ones).
    pub fn ip(&self, i: usize) -> IpAddr {
        crate::net::loopback(self.net, i)
    }

    /// Validator `i`'s identity.
    pub fn identity(&self, i: usize) -> Identity {
        Identity::new(self.keys[i].clone(), &self.genesis).expect("a validator's identity")
    }

    /// The identity of a node outside the validator set.
    pub fn outsider_identity(&self) -> Identity {
        Identity::new(SecretKey::generate(), &self.genesis).expect("an outsider's identity")
    }

    /// Node `i`'s directory, created.
    pub fn node_dir(&self, i: usize) -> PathBuf {
        let dir = self.dir.path().join(format!("node{i}"));
        std::fs::create_dir_all(&dir).expect("create the node's directory");
        dir
    }

    /// Node `i`'s configuration: listening on `port` of its address (0 for an ephemeral
    /// one), dialling `bootstrap`, a new self-signed ECDSA certificate, known peers in
    /// `node<i>/data/p2p`, fast timers ([`test_config`]).
    pub fn config(&self, i: usize, port: u16, bootstrap: Vec<String>) -> P2pConfig {
        let dir = self.node_dir(i);
        let tls = self_signed(&dir, &format!("node{i}"), KeyKind::Ecdsa);
        test_config(self.ip(i), port, bootstrap, tls, Some(dir.join("data/p2p")))
    }
}

/// A configuration listening on `ip:port` with timers short enough for tests: redial every
/// 200 ms (5 attempts), connect within 2 s, handshake within 3 s, ping every 3 s with a 2 s
/// timeout.
pub fn test_config(
    ip: IpAddr,
    port: u16,
    bootstrap: Vec<String>,
    tls: TlsFiles,
    data_dir: Option<PathBuf>,
) -> P2pConfig {
    let mut config = P2pConfig::new(tls);
    config.host = ip.to_string();
    config.port = port;
    config.bootstrap_nodes = bootstrap;
    config.reconnect_interval = Duration::from_millis(200);
    config.max_reconnect_attempts = 5;
    config.connection_timeout = Duration::from_secs(2);
    config.handshake_timeout = Duration::from_secs(3);
    config.ping_interval = Duration::from_secs(3);
    config.ping_timeout = Duration::from_secs(2);
    config.data_dir = data_dir;
    config
}

/// Starts a node with fresh metrics.
pub async fn start(config: P2pConfig, identity: Identity) -> (P2pNetwork, Inbox) {
    P2pNetwork::start(config, identity, P2pMetrics::new())
        .await
        .expect("start the P2P node")
}

/// `addr` as a bootstrap entry.
pub fn address(addr: SocketAddr) -> String {
    addr.to_string()
}

/// Waits until `ip:port` can be bound again: a node that was shut down releases its
/// listener when its accept task ends, which may be a little after `shutdown` returns.
pub async fn wait_port_free(ip: IpAddr, port: u16) {
    crate::wait_async::wait_until(
        Duration::from_secs(15),
        format!("{ip}:{port} released"),
        || crate::net::port_is_free(ip, port),
    )
    .await;
}
