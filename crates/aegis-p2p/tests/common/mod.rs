//! Shared helpers: a genesis for N validators, certificates, node configs on loopback.
//!
//! Every node gets its own loopback address (127.0.<net>.<i>, all routed to `lo` on Linux)
//! and an ephemeral port, so per-IP limits and bans of one node do not touch the others,
//! and concurrent test runs never collide on fixed ports.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aegis_crypto::SecretKey;
use aegis_p2p::{Identity, Inbox, P2pConfig, P2pMetrics, P2pNetwork, TlsFiles};
use aegis_types::{ConsensusParams, Genesis, Validator};

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

    pub fn identity(&self, i: usize) -> Identity {
        Identity::new(self.keys[i].clone(), &self.genesis).unwrap()
    }

    pub fn outsider_identity(&self) -> Identity {
        Identity::new(SecretKey::generate(), &self.genesis).unwrap()
    }

    pub fn node_dir(&self, i: usize) -> PathBuf {
        let dir = self.dir.path().join(format!("node{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A config for node `i` (any index; outsiders use high ones) with fast timers.
    pub fn config(&self, i: usize, port: u16, bootstrap: Vec<String>) -> P2pConfig {
        let dir = self.node_dir(i);
        let tls = self_signed(&dir, &format!("node{i}"), KeyKind::Ecdsa);
        test_config(self.ip(i), port, bootstrap, tls, Some(dir.join("data/p2p")))
    }
}

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

#[derive(Clone, Copy, Debug)]
pub enum KeyKind {
    Ecdsa,
    Ed25519,
}

/// Writes a self-signed certificate and key; returns their paths.
pub fn self_signed(dir: &Path, name: &str, kind: KeyKind) -> TlsFiles {
    let key = match kind {
        KeyKind::Ecdsa => rcgen::KeyPair::generate().unwrap(),
        KeyKind::Ed25519 => rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap(),
    };
    let params = rcgen::CertificateParams::new(vec![name.to_string(), "localhost".into()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    write_pair(dir, name, &cert.pem(), &key.serialize_pem())
}

/// Writes a certificate valid only in the past.
pub fn expired(dir: &Path, name: &str) -> TlsFiles {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let cert = params.self_signed(&key).unwrap();
    write_pair(dir, name, &cert.pem(), &key.serialize_pem())
}

pub fn write_pair(dir: &Path, name: &str, cert: &str, key: &str) -> TlsFiles {
    std::fs::create_dir_all(dir).unwrap();
    let cert_file = dir.join(format!("{name}.crt"));
    let key_file = dir.join(format!("{name}.key"));
    std::fs::write(&cert_file, cert).unwrap();
    std::fs::write(&key_file, key).unwrap();
    TlsFiles {
        cert_file,
        key_file,
        ca_file: None,
    }
}

/// A network CA and certificates it issues.
pub struct Ca {
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
    pub pem: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Ca {
            params,
            key,
            pem: cert.pem(),
        }
    }

    /// Issues a node certificate and writes it with its key and this CA's bundle.
    pub fn issue(&self, dir: &Path, name: &str) -> TlsFiles {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        let mut files = write_pair(dir, name, &cert.pem(), &key.serialize_pem());
        let ca_file = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&ca_file, &self.pem).unwrap();
        files.ca_file = Some(ca_file);
        files
    }
}

/// A free port on `ip`, for tests that must know every address before starting nodes.
/// Each test uses its own loopback address, so nothing else races for it.
pub fn free_port(ip: IpAddr) -> u16 {
    let listener = std::net::TcpListener::bind(SocketAddr::new(ip, 0)).unwrap();
    listener.local_addr().unwrap().port()
}

/// Waits until `ip:port` can be bound again: a node that was shut down releases its
/// listener when its accept task ends, which may be a little after `shutdown` returns.
pub async fn wait_port_free(ip: IpAddr, port: u16) {
    wait_for(Duration::from_secs(15), "the port released", || {
        std::net::TcpListener::bind(SocketAddr::new(ip, port)).is_ok()
    })
    .await;
}

pub async fn start(config: P2pConfig, identity: Identity) -> (P2pNetwork, Inbox) {
    P2pNetwork::start(config, identity, P2pMetrics::new())
        .await
        .unwrap()
}

/// How often [`wait_for`] checks its condition.
pub const POLL: Duration = Duration::from_millis(20);

/// Polls `condition` every [`POLL`] until it holds or `timeout` passes; returns the time
/// right after the check that saw it hold (so it became true before that).
pub async fn wait_for(timeout: Duration, what: &str, condition: impl FnMut() -> bool) -> Instant {
    wait_for_onset(Instant::now(), timeout, what, condition).await;
    Instant::now()
}

/// Like [`wait_for`], but returns the time of the last check that saw `condition` false,
/// or `known_false_at` (a time the caller knows it was false) if none did: the condition
/// became true after the returned instant. With [`wait_for`] for its end, this bounds how
/// long a state lasted from above, whatever the polling delays on a loaded machine.
pub async fn wait_for_onset(
    known_false_at: Instant,
    timeout: Duration,
    what: &str,
    mut condition: impl FnMut() -> bool,
) -> Instant {
    let deadline = Instant::now() + timeout;
    let mut last_false = known_false_at;
    loop {
        let checked = Instant::now();
        if condition() {
            return last_false;
        }
        last_false = checked;
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Installs (once per test binary) a global subscriber writing the node's real JSON log
/// (aegis-telemetry's `JsonLayer` into a `LogFile`, as `aegis run` does) and returns the
/// file's path. Tests of one binary share it, so each looks only at lines naming its own
/// addresses (every test has its own `127.0.<net>.*`).
pub fn capture_log() -> &'static Path {
    use tracing_subscriber::layer::SubscriberExt;
    static LOG: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "aegis-p2p-test-{}-{}.log",
            std::env::args()
                .next()
                .and_then(|arg| Path::new(&arg)
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned()))
                .unwrap_or_default(),
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        let file = aegis_telemetry::LogFile::open(&path).unwrap();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::filter::LevelFilter::INFO)
            .with(aegis_telemetry::JsonLayer::new("test", file));
        tracing::subscriber::set_global_default(subscriber).unwrap();
        path
    })
}

/// The JSON lines of the log file at `path`.
pub fn log_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// Whether `line` is a WARNING whose message contains `text`.
pub fn is_warning_with(line: &serde_json::Value, text: &str) -> bool {
    line["level"] == "WARNING" && line["message"].as_str().is_some_and(|m| m.contains(text))
}

/// Polls the log at `path` until a WARNING line's message contains every one of `texts`.
pub async fn wait_for_warning(path: &Path, texts: &[&str]) {
    let what = format!("a WARNING log line containing {texts:?}");
    let found = || {
        log_lines(path)
            .iter()
            .any(|line| texts.iter().all(|text| is_warning_with(line, text)))
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while !found() {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(path).unwrap_or_default();
            panic!("timed out waiting for {what} in {}:\n{log}", path.display());
        }
        tokio::time::sleep(POLL).await;
    }
}

pub fn address(addr: SocketAddr) -> String {
    addr.to_string()
}
