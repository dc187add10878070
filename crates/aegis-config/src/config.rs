//! Stage two: the file structs into a validated [`NodeConfig`].
//!
//! Every file struct is taken apart by exhaustive destructuring, so adding a key to a file
//! struct without deciding what it becomes here is a compile error.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aegis_types::ConsensusAlgorithm;
use aegis_types::validator::MAX_VALIDATORS;

use crate::decode::{ByteSize, Ctx, Millis, Seconds};
use crate::env::resolve_path;
use crate::error::Location;
use crate::file::*;

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

/// `node:` — who this node is and where its own files live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSettings {
    /// The validator name; `None` (key absent or empty) means: find the genesis validator
    /// whose public key matches the node key.
    pub id: Option<String>,
    pub key_file: PathBuf,
    pub genesis_file: PathBuf,
    pub data_dir: PathBuf,
}

/// A `host:port` peer address. The host may be a DNS name, an IPv4 address or a bracketed
/// IPv6 address (`[::1]:8000`); it is not resolved here.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PeerAddress {
    /// The host without brackets.
    pub host: String,
    pub port: u16,
}

impl fmt::Display for PeerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// `p2p:` — the node-to-node TLS listener and peer management.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct P2pConfig {
    pub host: String,
    pub port: u16,
    pub bootstrap_nodes: Vec<PeerAddress>,
    pub reconnect_interval: Duration,
    pub max_reconnect_attempts: u32,
    pub connection_timeout: Duration,
    pub handshake_timeout: Duration,
    pub max_peers: u32,
    pub message_compression: bool,
    /// Frames at least this large are compressed when compression is on.
    pub compression_threshold_bytes: usize,
    pub batch_size: u32,
    /// Bare integers in the file are milliseconds for this key.
    pub flush_interval: Duration,
    pub send_buffer_size_bytes: usize,
    pub recv_buffer_size_bytes: usize,
    pub max_frame_size_bytes: usize,
    pub ping_interval: Duration,
    /// Always shorter than `ping_interval`.
    pub ping_timeout: Duration,
}

/// Which database holds the ledger.
#[derive(Clone, PartialEq, Eq)]
pub enum StorageBackend {
    /// Embedded SQLite (`type: sqlite` or `embedded`), the default.
    Sqlite { path: PathBuf },
    /// PostgreSQL (`type: postgresql` or `postgres`).
    Postgres {
        /// `postgres://` or `postgresql://` URL. May hold a password: `Debug` redacts it.
        connection_string: String,
    },
}

impl fmt::Debug for StorageBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageBackend::Sqlite { path } => {
                f.debug_struct("Sqlite").field("path", path).finish()
            }
            StorageBackend::Postgres { connection_string } => f
                .debug_struct("Postgres")
                .field("connection_string", &redact_url(connection_string))
                .finish(),
        }
    }
}

/// The URL with any password replaced by `***`, for logs and `Debug`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// `storage:` — the ledger database and its connection pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageConfig {
    pub backend: StorageBackend,
    pub pool_size: u32,
    pub max_overflow: u32,
    pub pool_timeout: Duration,
    pub pool_recycle: Duration,
}

/// `consensus:` — local timers and the fault bounds this node expects the genesis to meet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsensusConfig {
    pub algorithm: ConsensusAlgorithm,
    pub timeout: Duration,
    pub heartbeat_interval: Duration,
    /// Always longer than `heartbeat_interval`.
    pub election_timeout: Duration,
    /// f: the validator set must have n >= 3f + 1 (checked by [`crate::check_against_genesis`]).
    pub max_byzantine_nodes: u32,
    pub min_validators: u32,
    pub message_timeout: Duration,
    pub retry_attempts: u32,
}

/// `performance:` — worker counts, caches and buffer sizes.
#[derive(Clone, Debug, PartialEq)]
pub struct PerformanceConfig {
    pub max_workers: u32,
    pub thread_pool_size: u32,
    pub connection_pool_size: u32,
    pub cache: CacheConfig,
    pub memory: MemoryConfig,
    pub buffer_sizes: BufferSizes,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    pub enabled: bool,
    /// Entries.
    pub max_size: u64,
    pub ttl: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MemoryConfig {
    /// `memory.max_cache_size`, in megabytes (MiB).
    pub max_cache_size_mb: u64,
    /// Fraction of memory in use that triggers cache eviction; 0 < x <= 1.
    pub gc_threshold: f64,
}

/// `performance.buffer_sizes`, in bytes (the file's "64KB" is 64 × 1024).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BufferSizes {
    pub network_bytes: usize,
    pub storage_bytes: usize,
    pub consensus_bytes: usize,
}

/// `security:` — abuse limits and the node's TLS identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityConfig {
    pub rate_limiting: RateLimitConfig,
    pub tls: NodeTlsConfig,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimitConfig {
    pub enabled: bool,
    pub requests_per_minute: u32,
    pub burst_size: u32,
    /// How long an address stays banned after `max_failures` failures.
    pub block_duration: Duration,
    pub max_failures: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeTlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// The network's CA bundle, when peers' certificates are issued by a CA.
    pub ca_file: Option<PathBuf>,
}

/// `monitoring:` — the `/metrics` and `/status` listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MonitoringConfig {
    pub enabled: bool,
    pub host: String,
    pub metrics_port: u16,
    /// Starts with `/`.
    pub metrics_path: String,
    /// Metrics the operator declared (the guide lists some); kept for the telemetry crate.
    pub metrics: Vec<MetricSpec>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricSpec {
    pub name: String,
    pub kind: MetricKind,
    pub description: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
    Info,
    Summary,
}

impl MetricKind {
    const ALL: [(&'static str, MetricKind); 5] = [
        ("counter", MetricKind::Counter),
        ("gauge", MetricKind::Gauge),
        ("histogram", MetricKind::Histogram),
        ("info", MetricKind::Info),
        ("summary", MetricKind::Summary),
    ];

    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, kind)| *kind == self)
            .map_or("", |(name, _)| name)
    }
}

/// `api:` — the client API and `/health` listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiConfig {
    pub host: String,
    pub port: u16,
    pub max_request_size_bytes: usize,
    /// `Some` when `api.tls.enabled` is true.
    pub tls: Option<TlsFiles>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// `logging:`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggingConfig {
    pub file: PathBuf,
    pub level: LogLevel,
    pub console: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// Largest f accepted: a set of [`MAX_VALIDATORS`] validators tolerates this many faults.
pub const MAX_BYZANTINE_NODES: u32 = ((MAX_VALIDATORS - 1) / 3) as u32;

/// Longest `node.id` accepted, in bytes.
pub const MAX_NODE_ID_BYTES: usize = 64;

/// Checks and converts with located errors. Errors on keys already reported in stage one
/// are skipped.
struct Checker<'c, 'e> {
    cx: &'c mut Ctx<'e>,
    home: &'c Path,
}

impl Checker<'_, '_> {
    fn location(&self, key: &str) -> Location {
        self.cx
            .locations
            .get(key)
            .copied()
            .unwrap_or(Location::START)
    }

    fn error(&mut self, key: &str, message: impl Into<String>) {
        if self.cx.failed.contains(key) {
            return;
        }
        let location = self.location(key);
        self.cx.error(location, key, message);
    }

    /// An integer in `min..=max`, converted to `T`.
    fn int<T>(&mut self, key: &str, value: u64, min: u64, max: u64) -> T
    where
        T: TryFrom<u64> + Default,
    {
        if value < min || value > max {
            self.error(key, format!("{value} is out of range ({min}-{max})"));
        }
        T::try_from(value.clamp(min, max)).unwrap_or_default()
    }

    fn port(&mut self, key: &str, value: u64) -> u16 {
        self.int(key, value, 1, u64::from(u16::MAX))
    }

    fn count(&mut self, key: &str, value: u64) -> u32 {
        self.int(key, value, 1, u64::from(u32::MAX))
    }

    fn positive(&mut self, key: &str, value: Duration) -> Duration {
        if value.is_zero() {
            self.error(key, "must be greater than 0");
        }
        value
    }

    fn seconds(&mut self, key: &str, value: Seconds) -> Duration {
        self.positive(key, value.0)
    }

    fn size(&mut self, key: &str, value: ByteSize) -> usize {
        if value.0 == 0 {
            self.error(key, "must be greater than 0");
        }
        match usize::try_from(value.0) {
            Ok(bytes) => bytes,
            Err(_) => {
                self.error(key, format!("{} bytes is too large", value.0));
                0
            }
        }
    }

    fn host(&mut self, key: &str, host: String) -> String {
        if !is_valid_host(&host) {
            self.error(
                key,
                format!("{host:?} is not a valid IP address or host name"),
            );
        }
        host
    }

    fn path(&mut self, key: &str, path: &str) -> PathBuf {
        if path.trim().is_empty() {
            self.error(key, "must not be empty");
        }
        resolve_path(self.home, Path::new(path))
    }

    fn choice<T: Copy>(&mut self, key: &str, value: &str, choices: &[(&str, T)], default: T) -> T {
        let lowered = value.trim().to_ascii_lowercase();
        if let Some((_, chosen)) = choices.iter().find(|(name, _)| *name == lowered) {
            return *chosen;
        }
        let names: Vec<String> = choices
            .iter()
            .map(|(name, _)| format!("{name:?}"))
            .collect();
        self.error(
            key,
            format!("expected one of {}, found {value:?}", names.join(", ")),
        );
        default
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
    let performance = build_performance(&mut ck, performance);
    let security = build_security(&mut ck, security);
    let monitoring = build_monitoring(&mut ck, monitoring);
    let api = build_api(&mut ck, api);
    let logging = build_logging(&mut ck, logging);
    check_ports(&mut ck, &p2p, &api, &monitoring);
    let locations = KeyLocations(ck.cx.locations.clone());
    NodeConfig {
        source,
        home,
        node,
        p2p,
        storage,
        consensus,
        performance,
        security,
        monitoring,
        api,
        logging,
        locations,
    }
}

fn build_node(ck: &mut Checker<'_, '_>, file: NodeFile) -> NodeSettings {
    let NodeFile {
        id,
        key_file,
        genesis_file,
        data_dir,
    } = file;
    let id = id.trim().to_owned();
    let id = if id.is_empty() {
        None
    } else {
        let valid = id.len() <= MAX_NODE_ID_BYTES
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !valid {
            ck.error(
                "node.id",
                format!(
                    "{id:?} is not a valid node id (1 to {MAX_NODE_ID_BYTES} characters of A-Z, a-z, 0-9, '.', '_', '-')"
                ),
            );
        }
        Some(id)
    };
    NodeSettings {
        id,
        key_file: ck.path("node.key_file", &key_file),
        genesis_file: ck.path("node.genesis_file", &genesis_file),
        data_dir: ck.path("node.data_dir", &data_dir),
    }
}

fn build_p2p(ck: &mut Checker<'_, '_>, file: P2pFile) -> P2pConfig {
    let P2pFile {
        host,
        port,
        bootstrap_nodes,
        reconnect_interval,
        max_reconnect_attempts,
        connection_timeout,
        handshake_timeout,
        max_peers,
        message_compression,
        compression_threshold,
        batch_size,
        flush_interval,
        send_buffer_size,
        recv_buffer_size,
        max_frame_size,
        ping_interval,
        ping_timeout,
    } = file;
    let mut peers = Vec::with_capacity(bootstrap_nodes.len());
    for (i, entry) in bootstrap_nodes.iter().enumerate() {
        let key = format!("p2p.bootstrap_nodes[{i}]");
        match parse_peer_address(entry) {
            Ok(peer) => peers.push(peer),
            Err(message) => ck.error(&key, message),
        }
    }
    let ping_interval = ck.seconds("p2p.ping_interval", ping_interval);
    let ping_timeout = ck.seconds("p2p.ping_timeout", ping_timeout);
    if ping_timeout >= ping_interval && !ping_interval.is_zero() {
        ck.error(
            "p2p.ping_timeout",
            format!(
                "{} must be shorter than p2p.ping_interval ({})",
                show_duration(ping_timeout),
                show_duration(ping_interval)
            ),
        );
    }
    let Millis(flush_interval) = flush_interval;
    let compression_threshold_bytes = ck.size("p2p.compression_threshold", compression_threshold);
    let send_buffer_size_bytes = ck.size("p2p.send_buffer_size", send_buffer_size);
    let recv_buffer_size_bytes = ck.size("p2p.recv_buffer_size", recv_buffer_size);
    let max_frame_size_bytes = ck.size("p2p.max_frame_size", max_frame_size);
    P2pConfig {
        host: ck.host("p2p.host", host),
        port: ck.port("p2p.port", port),
        bootstrap_nodes: peers,
        reconnect_interval: ck.seconds("p2p.reconnect_interval", reconnect_interval),
        max_reconnect_attempts: ck.int(
            "p2p.max_reconnect_attempts",
            max_reconnect_attempts,
            0,
            u64::from(u32::MAX),
        ),
        connection_timeout: ck.seconds("p2p.connection_timeout", connection_timeout),
        handshake_timeout: ck.seconds("p2p.handshake_timeout", handshake_timeout),
        max_peers: ck.count("p2p.max_peers", max_peers),
        message_compression,
        compression_threshold_bytes,
        batch_size: ck.count("p2p.batch_size", batch_size),
        flush_interval: ck.positive("p2p.flush_interval", flush_interval),
        send_buffer_size_bytes,
        recv_buffer_size_bytes,
        max_frame_size_bytes,
        ping_interval,
        ping_timeout,
    }
}

fn build_storage(ck: &mut Checker<'_, '_>, file: StorageFile) -> StorageConfig {
    let StorageFile {
        kind,
        path,
        connection_string,
        pool_size,
        max_overflow,
        pool_timeout,
        pool_recycle,
    } = file;
    #[derive(Clone, Copy)]
    enum Kind {
        Sqlite,
        Postgres,
    }
    let kind = ck.choice(
        "storage.type",
        &kind,
        &[
            ("sqlite", Kind::Sqlite),
            ("embedded", Kind::Sqlite),
            ("postgresql", Kind::Postgres),
            ("postgres", Kind::Postgres),
        ],
        Kind::Sqlite,
    );
    let backend = match kind {
        Kind::Sqlite => StorageBackend::Sqlite {
            path: ck.path("storage.path", &path),
        },
        Kind::Postgres => {
            let connection_string = connection_string.unwrap_or_default().trim().to_owned();
            if connection_string.is_empty() {
                let key = if ck.cx.locations.contains_key("storage.connection_string") {
                    "storage.connection_string"
                } else {
                    "storage.type"
                };
                let message = if key == "storage.type" {
                    "postgresql needs storage.connection_string (such as \"${DATABASE_URL}\")"
                } else {
                    "must not be empty when storage.type is postgresql"
                };
                ck.error(key, message);
            } else if !(connection_string.starts_with("postgres://")
                || connection_string.starts_with("postgresql://"))
            {
                let scheme = connection_string
                    .split_once("://")
                    .map_or("no scheme", |(scheme, _)| scheme);
                ck.error(
                    "storage.connection_string",
                    format!("must start with postgres:// or postgresql://, found {scheme:?}"),
                );
            }
            StorageBackend::Postgres { connection_string }
        }
    };
    StorageConfig {
        backend,
        pool_size: ck.count("storage.pool_size", pool_size),
        max_overflow: ck.int("storage.max_overflow", max_overflow, 0, u64::from(u32::MAX)),
        pool_timeout: ck.seconds("storage.pool_timeout", pool_timeout),
        pool_recycle: ck.seconds("storage.pool_recycle", pool_recycle),
    }
}

fn build_consensus(ck: &mut Checker<'_, '_>, file: ConsensusFile) -> ConsensusConfig {
    let ConsensusFile {
        algorithm,
        timeout,
        heartbeat_interval,
        election_timeout,
        max_byzantine_nodes,
        min_validators,
        message_timeout,
        retry_attempts,
    } = file;
    let algorithm = ck.choice(
        "consensus.algorithm",
        &algorithm,
        &[
            ("pbft", ConsensusAlgorithm::Pbft),
            ("raft", ConsensusAlgorithm::Raft),
        ],
        ConsensusAlgorithm::Pbft,
    );
    let heartbeat_interval = ck.seconds("consensus.heartbeat_interval", heartbeat_interval);
    let election_timeout = ck.seconds("consensus.election_timeout", election_timeout);
    if election_timeout <= heartbeat_interval && !election_timeout.is_zero() {
        ck.error(
            "consensus.election_timeout",
            format!(
                "{} must be longer than consensus.heartbeat_interval ({})",
                show_duration(election_timeout),
                show_duration(heartbeat_interval)
            ),
        );
    }
    ConsensusConfig {
        algorithm,
        timeout: ck.seconds("consensus.timeout", timeout),
        heartbeat_interval,
        election_timeout,
        max_byzantine_nodes: ck.int(
            "consensus.max_byzantine_nodes",
            max_byzantine_nodes,
            0,
            u64::from(MAX_BYZANTINE_NODES),
        ),
        min_validators: ck.int(
            "consensus.min_validators",
            min_validators,
            1,
            MAX_VALIDATORS as u64,
        ),
        message_timeout: ck.seconds("consensus.message_timeout", message_timeout),
        retry_attempts: ck.int(
            "consensus.retry_attempts",
            retry_attempts,
            0,
            u64::from(u32::MAX),
        ),
    }
}

fn build_performance(ck: &mut Checker<'_, '_>, file: PerformanceFile) -> PerformanceConfig {
    let PerformanceFile {
        max_workers,
        thread_pool_size,
        connection_pool_size,
        cache,
        memory,
        buffer_sizes,
    } = file;
    let CacheFile {
        enabled,
        max_size,
        ttl,
    } = cache;
    let MemoryFile {
        max_cache_size,
        gc_threshold,
    } = memory;
    let BufferSizesFile {
        network,
        storage,
        consensus,
    } = buffer_sizes;
    if !(gc_threshold > 0.0 && gc_threshold <= 1.0) {
        ck.error(
            "performance.memory.gc_threshold",
            format!("{gc_threshold} is out of range (greater than 0, at most 1)"),
        );
    }
    PerformanceConfig {
        max_workers: ck.count("performance.max_workers", max_workers),
        thread_pool_size: ck.count("performance.thread_pool_size", thread_pool_size),
        connection_pool_size: ck.count("performance.connection_pool_size", connection_pool_size),
        cache: CacheConfig {
            enabled,
            max_size,
            ttl: ck.seconds("performance.cache.ttl", ttl),
        },
        memory: MemoryConfig {
            max_cache_size_mb: ck.int(
                "performance.memory.max_cache_size",
                max_cache_size,
                1,
                u64::MAX >> 20,
            ),
            gc_threshold,
        },
        buffer_sizes: BufferSizes {
            network_bytes: ck.size("performance.buffer_sizes.network", network),
            storage_bytes: ck.size("performance.buffer_sizes.storage", storage),
            consensus_bytes: ck.size("performance.buffer_sizes.consensus", consensus),
        },
    }
}

fn build_security(ck: &mut Checker<'_, '_>, file: SecurityFile) -> SecurityConfig {
    let SecurityFile { rate_limiting, tls } = file;
    let RateLimitingFile {
        enabled,
        requests_per_minute,
        burst_size,
        block_duration,
        max_failures,
    } = rate_limiting;
    let SecurityTlsFile {
        cert_file,
        key_file,
        ca_file,
    } = tls;
    SecurityConfig {
        rate_limiting: RateLimitConfig {
            enabled,
            requests_per_minute: ck.count(
                "security.rate_limiting.requests_per_minute",
                requests_per_minute,
            ),
            burst_size: ck.count("security.rate_limiting.burst_size", burst_size),
            block_duration: ck.seconds("security.rate_limiting.block_duration", block_duration),
            max_failures: ck.count("security.rate_limiting.max_failures", max_failures),
        },
        tls: NodeTlsConfig {
            cert_file: ck.path("security.tls.cert_file", &cert_file),
            key_file: ck.path("security.tls.key_file", &key_file),
            ca_file: ca_file
                .filter(|ca| !ca.trim().is_empty())
                .map(|ca| ck.path("security.tls.ca_file", &ca)),
        },
    }
}

fn build_monitoring(ck: &mut Checker<'_, '_>, file: MonitoringFile) -> MonitoringConfig {
    let MonitoringFile {
        enabled,
        host,
        metrics_port,
        metrics_path,
        metrics,
    } = file;
    if !metrics_path.starts_with('/') || metrics_path.contains(char::is_whitespace) {
        ck.error(
            "monitoring.metrics_path",
            format!("{metrics_path:?} must start with '/' and contain no spaces"),
        );
    }
    let mut specs = Vec::with_capacity(metrics.len());
    let mut names = BTreeSet::new();
    for (i, metric) in metrics.into_iter().enumerate() {
        let item = format!("monitoring.metrics[{i}]");
        let MetricFile {
            name,
            kind,
            description,
        } = metric;
        let name_key = format!("{item}.name");
        let kind_key = format!("{item}.type");
        let name = match name {
            None => {
                if !ck.cx.failed.contains(&name_key) {
                    ck.error(&item, "missing required key `name`");
                }
                None
            }
            Some(name) if !is_metric_name(&name) => {
                ck.error(
                    &name_key,
                    format!(
                        "{name:?} is not a valid metric name (letters, digits, '_' and ':', not starting with a digit)"
                    ),
                );
                None
            }
            Some(name) if !names.insert(name.clone()) => {
                ck.error(&name_key, format!("metric {name:?} is declared twice"));
                None
            }
            Some(name) => Some(name),
        };
        let kind = match kind {
            None => {
                if !ck.cx.failed.contains(&kind_key) {
                    ck.error(&item, "missing required key `type`");
                }
                None
            }
            Some(kind) => Some(ck.choice(&kind_key, &kind, &MetricKind::ALL, MetricKind::Gauge)),
        };
        if let (Some(name), Some(kind)) = (name, kind) {
            specs.push(MetricSpec {
                name,
                kind,
                description,
            });
        }
    }
    MonitoringConfig {
        enabled,
        host: ck.host("monitoring.host", host),
        metrics_port: ck.port("monitoring.metrics_port", metrics_port),
        metrics_path,
        metrics: specs,
    }
}

fn build_api(ck: &mut Checker<'_, '_>, file: ApiFile) -> ApiConfig {
    let ApiFile {
        host,
        port,
        max_request_size,
        tls,
    } = file;
    let ApiTlsFile {
        enabled,
        cert_file,
        key_file,
    } = tls;
    let tls = if enabled {
        let required = |ck: &mut Checker<'_, '_>, key: &str, value: Option<String>| match value
            .filter(|v| !v.trim().is_empty())
        {
            Some(path) => ck.path(key, &path),
            None => {
                ck.error(key, "required when api.tls.enabled is true");
                PathBuf::new()
            }
        };
        let cert_file = required(ck, "api.tls.cert_file", cert_file);
        let key_file = required(ck, "api.tls.key_file", key_file);
        Some(TlsFiles {
            cert_file,
            key_file,
        })
    } else {
        None
    };
    ApiConfig {
        host: ck.host("api.host", host),
        port: ck.port("api.port", port),
        max_request_size_bytes: ck.size("api.max_request_size", max_request_size),
        tls,
    }
}

fn build_logging(ck: &mut Checker<'_, '_>, file: LoggingFile) -> LoggingConfig {
    let LoggingFile {
        file,
        level,
        console,
    } = file;
    let level = ck.choice(
        "logging.level",
        &level,
        &[
            ("trace", LogLevel::Trace),
            ("debug", LogLevel::Debug),
            ("info", LogLevel::Info),
            ("warn", LogLevel::Warn),
            ("warning", LogLevel::Warn),
            ("error", LogLevel::Error),
        ],
        LogLevel::Info,
    );
    LoggingConfig {
        file: ck.path("logging.file", &file),
        level,
        console,
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

/// An IP address or a DNS name (letters, digits, `-`, `_`; labels of 1 to 63 characters).
fn is_valid_host(host: &str) -> bool {
    if host.parse::<IpAddr>().is_ok() {
        return true;
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Parses `host:port` (`[v6]:port` for IPv6).
pub(crate) fn parse_peer_address(text: &str) -> Result<PeerAddress, String> {
    let shape = || format!("expected \"host:port\", found {text:?}");
    let trimmed = text.trim();
    let (host, port) = if let Some(rest) = trimmed.strip_prefix('[') {
        let (host, port) = rest.split_once("]:").ok_or_else(shape)?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{host:?} in {text:?} is not an IPv6 address"));
        }
        (host, port)
    } else {
        let (host, port) = trimmed.rsplit_once(':').ok_or_else(shape)?;
        if host.contains(':') {
            return Err(format!(
                "expected \"host:port\", found {text:?} (write an IPv6 address in brackets: \"[::1]:8000\")"
            ));
        }
        if !is_valid_host(host) {
            return Err(format!(
                "{host:?} in {text:?} is not a valid IP address or host name"
            ));
        }
        (host, port)
    };
    let port = match port.parse::<u64>() {
        Ok(port) if (1..=65535).contains(&port) => port as u16,
        Ok(port) => return Err(format!("port {port} is out of range (1-65535) in {text:?}")),
        Err(_) => return Err(shape()),
    };
    Ok(PeerAddress {
        host: host.to_owned(),
        port,
    })
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `100ms`, `30s`, `5m`, `1h`: the largest unit that divides the duration.
pub(crate) fn show_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms == 0 {
        "0s".to_owned()
    } else if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_addresses() {
        assert_eq!(
            parse_peer_address("node1.aegis.network:8000").unwrap(),
            PeerAddress {
                host: "node1.aegis.network".into(),
                port: 8000
            }
        );
        assert_eq!(parse_peer_address("10.0.0.1:9").unwrap().port, 9);
        let v6 = parse_peer_address("[::1]:8000").unwrap();
        assert_eq!(v6.host, "::1");
        assert_eq!(v6.to_string(), "[::1]:8000");
        assert_eq!(
            parse_peer_address("node1").unwrap_err(),
            "expected \"host:port\", found \"node1\""
        );
        assert_eq!(
            parse_peer_address("node1:0").unwrap_err(),
            "port 0 is out of range (1-65535) in \"node1:0\""
        );
        assert!(parse_peer_address("node1:http").is_err());
        assert!(parse_peer_address("::1:8000").is_err());
        assert!(parse_peer_address("bad host:8000").is_err());
        assert!(parse_peer_address(":8000").is_err());
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact_url("postgresql://aegis:s3cret@db:5432/aegis?sslmode=require"),
            "postgresql://aegis:***@db:5432/aegis?sslmode=require"
        );
        assert_eq!(redact_url("postgres://db/aegis"), "postgres://db/aegis");
    }

    #[test]
    fn durations_display() {
        assert_eq!(show_duration(Duration::from_millis(100)), "100ms");
        assert_eq!(show_duration(Duration::from_secs(90)), "90s");
        assert_eq!(show_duration(Duration::from_secs(300)), "5m");
        assert_eq!(show_duration(Duration::from_secs(7200)), "2h");
    }
}
