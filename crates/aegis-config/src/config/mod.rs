//! Stage two: the file structs into a validated [`NodeConfig`].
//!
//! Every file struct is taken apart by exhaustive destructuring, so adding a key to a file
//! struct without deciding what it becomes here is a compile error.
//!
//! One module per section (`node`, `p2p`, `storage`, `consensus`, `mempool`, `performance`,
//! `security`, `monitoring`, `api`, `logging`): its validated struct, the bounds of its
//! keys (all of them listed in [`bounds`]) and the function that builds it. [`checker`]
//! holds the located checks they share; this module holds the whole [`NodeConfig`] and the
//! rules across sections.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use crate::decode::Ctx;
use crate::error::Location;
use crate::file::FileConfig;

mod api;
mod checker;
mod consensus;
mod logging;
mod mempool;
mod monitoring;
mod node;
mod p2p;
mod performance;
mod security;
mod storage;

pub use api::{ApiConfig, TlsFiles};
pub use consensus::{ConsensusConfig, MAX_BYZANTINE_NODES};
pub use logging::{LogLevel, LoggingConfig};
pub use mempool::MempoolConfig;
pub use monitoring::{MetricKind, MetricSpec, MonitoringConfig};
pub use node::{MAX_NODE_ID_BYTES, NodeSettings};
pub use p2p::{P2pConfig, PeerAddress};
pub use performance::{BufferSizes, CacheConfig, MemoryConfig, PerformanceConfig};
pub use security::{NodeTlsConfig, RateLimitConfig, SecurityConfig};
pub use storage::{StorageBackend, StorageConfig, redact_url};

/// The range of every integer, duration and size key, by section, as the checks apply
/// them and `docs/configuration.md` lists them. Each names its key (`P2P_MAX_PEERS_RANGE` is
/// `p2p.max_peers`) and says why it ends where it does.
pub mod bounds {
    pub use super::api::API_MAX_REQUEST_SIZE_RANGE;
    pub use super::consensus::{
        CONSENSUS_ELECTION_TIMEOUT_RANGE, CONSENSUS_HEARTBEAT_INTERVAL_RANGE,
        CONSENSUS_MAX_BYZANTINE_NODES_RANGE, CONSENSUS_MESSAGE_TIMEOUT_RANGE,
        CONSENSUS_MIN_VALIDATORS_RANGE, CONSENSUS_RETRY_ATTEMPTS_RANGE, CONSENSUS_TIMEOUT_RANGE,
    };
    pub use super::mempool::{
        MEMPOOL_MAX_BYTES_RANGE, MEMPOOL_MAX_TRANSACTION_BYTES_RANGE,
        MEMPOOL_MAX_TRANSACTIONS_RANGE, MEMPOOL_RECENT_COMMITTED_RANGE,
    };
    pub use super::p2p::{
        P2P_BATCH_SIZE_RANGE, P2P_COMPRESSION_THRESHOLD_RANGE, P2P_CONNECTION_TIMEOUT_RANGE,
        P2P_FLUSH_INTERVAL_RANGE, P2P_HANDSHAKE_TIMEOUT_RANGE, P2P_MAX_FRAME_SIZE_RANGE,
        P2P_MAX_PEERS_RANGE, P2P_MAX_RECONNECT_ATTEMPTS_RANGE, P2P_PING_INTERVAL_RANGE,
        P2P_RECONNECT_INTERVAL_RANGE, P2P_SOCKET_BUFFER_SIZE_RANGE,
    };
    pub use super::performance::{
        PERFORMANCE_BUFFER_SIZE_RANGE, PERFORMANCE_CACHE_MAX_SIZE_RANGE,
        PERFORMANCE_CACHE_TTL_RANGE, PERFORMANCE_CONNECTION_POOL_SIZE_RANGE,
        PERFORMANCE_MAX_WORKERS_RANGE, PERFORMANCE_MEMORY_MAX_CACHE_SIZE_RANGE,
        PERFORMANCE_THREAD_POOL_SIZE_RANGE,
    };
    pub use super::security::{
        SECURITY_BLOCK_DURATION_RANGE, SECURITY_BURST_SIZE_RANGE, SECURITY_MAX_FAILURES_RANGE,
        SECURITY_REQUESTS_PER_MINUTE_RANGE,
    };
    pub use super::storage::{
        STORAGE_MAX_OVERFLOW_RANGE, STORAGE_POOL_RECYCLE_RANGE, STORAGE_POOL_SIZE_RANGE,
        STORAGE_POOL_TIMEOUT_RANGE,
    };
    pub use crate::file::{
        DEFAULT_MEMPOOL_MAX_BYTES, DEFAULT_MEMPOOL_MAX_TRANSACTION_BYTES,
        DEFAULT_MEMPOOL_MAX_TRANSACTIONS, DEFAULT_MEMPOOL_RECENT_COMMITTED,
        MEMPOOL_TX_ENVELOPE_BYTES,
    };
}

use api::build_api;
use checker::Checker;
use consensus::build_consensus;
use logging::build_logging;
use mempool::build_mempool;
use monitoring::build_monitoring;
use node::build_node;
use p2p::build_p2p;
use performance::build_performance;
use security::build_security;
use storage::build_storage;

/// A node's validated configuration. Paths are absolute, anchored at [`NodeConfig::home`].
#[derive(Clone, Debug, PartialEq)]
pub struct NodeConfig {
    /// The configuration file as the operator named it; errors quote this name.
    pub source: PathBuf,
    /// The installation directory (`AEGIS_HOME`) that relative paths were resolved against.
    pub home: PathBuf,
    pub node: NodeSettings,
    pub p2p: P2pConfig,
    pub storage: StorageConfig,
    pub consensus: ConsensusConfig,
    pub mempool: MempoolConfig,
    pub performance: PerformanceConfig,
    pub security: SecurityConfig,
    pub monitoring: MonitoringConfig,
    pub api: ApiConfig,
    pub logging: LoggingConfig,
    /// Where each key set in the file has its value, for errors found after loading.
    pub(crate) locations: KeyLocations,
}

/// Positions of the keys a file sets. They are not part of the configuration's meaning:
/// two configurations that differ only in layout compare equal, and `Debug` stays short.
#[derive(Clone, Default)]
pub(crate) struct KeyLocations(pub(crate) BTreeMap<String, Location>);

impl PartialEq for KeyLocations {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl fmt::Debug for KeyLocations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} keys set in the file>", self.0.len())
    }
}

impl NodeConfig {
    /// Where the file sets `key` (dotted, such as `consensus.max_byzantine_nodes`), or
    /// `None` if the key took its default.
    pub fn location(&self, key: &str) -> Option<Location> {
        self.locations.0.get(key).copied()
    }
}

/// Builds the validated configuration from the decoded file. Reports into `cx`.
pub(crate) fn build(
    file: FileConfig,
    source: PathBuf,
    home: PathBuf,
    cx: &mut Ctx<'_>,
) -> NodeConfig {
    let FileConfig {
        node,
        p2p,
        storage,
        consensus,
        mempool,
        performance,
        security,
        monitoring,
        api,
        logging,
    } = file;
    let mut ck = Checker { cx, home: &home };
    let node = build_node(&mut ck, node);
    let p2p = build_p2p(&mut ck, p2p);
    let storage = build_storage(&mut ck, storage);
    let consensus = build_consensus(&mut ck, consensus);
    let mempool = build_mempool(&mut ck, mempool);
    let performance = build_performance(&mut ck, performance);
    let security = build_security(&mut ck, security);
    let monitoring = build_monitoring(&mut ck, monitoring);
    let api = build_api(&mut ck, api);
    let logging = build_logging(&mut ck, logging);
    check_ports(&mut ck, &p2p, &api, &monitoring);
    // A pre-prepare carries a whole block's transactions in one P2P frame.
    let needed = consensus.max_block_bytes as u64 + consensus::BLOCK_FRAME_OVERHEAD_BYTES;
    if p2p.max_frame_size_bytes > 0 && needed > p2p.max_frame_size_bytes as u64 {
        ck.error(
            "consensus.max_block_bytes",
            format!(
                "{} bytes does not fit in a P2P frame: p2p.max_frame_size ({} bytes) must be at \
                 least {needed} bytes",
                consensus.max_block_bytes, p2p.max_frame_size_bytes
            ),
        );
    }
    let locations = KeyLocations(ck.cx.locations.clone());
    NodeConfig {
        source,
        home,
        node,
        p2p,
        storage,
        consensus,
        mempool,
        performance,
        security,
        monitoring,
        api,
        logging,
        locations,
    }
}

/// The three listeners must not collide: same port on hosts that overlap (equal, or either
/// one a wildcard address). The metrics listener counts only when monitoring is enabled.
fn check_ports(
    ck: &mut Checker<'_, '_>,
    p2p: &P2pConfig,
    api: &ApiConfig,
    monitoring: &MonitoringConfig,
) {
    let mut listeners = vec![
        ("p2p.port", p2p.host.as_str(), p2p.port),
        ("api.port", api.host.as_str(), api.port),
    ];
    if monitoring.enabled {
        listeners.push((
            "monitoring.metrics_port",
            monitoring.host.as_str(),
            monitoring.metrics_port,
        ));
    }
    for (i, (later_key, later_host, later_port)) in listeners.iter().enumerate() {
        for (earlier_key, earlier_host, earlier_port) in &listeners[..i] {
            if later_port == earlier_port && hosts_overlap(later_host, earlier_host) {
                ck.error(
                    later_key,
                    format!(
                        "{later_port} is also {earlier_key}; p2p.port, api.port and monitoring.metrics_port must differ"
                    ),
                );
            }
        }
    }
}

fn hosts_overlap(a: &str, b: &str) -> bool {
    let wildcard = |host: &str| host.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified());
    a.eq_ignore_ascii_case(b) || wildcard(a) || wildcard(b)
}
