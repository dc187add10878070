//! The configuration file as written: every key optional, each with its default.
//!
//! These structs hold what the file says, merely typed (integers, durations, sizes). Ranges,
//! cross-key rules and path resolution happen in [`crate::config`], which turns them into a
//! [`crate::NodeConfig`].

use std::time::Duration;

use aegis_types::tx::MAX_TX_PAYLOAD_BYTES;

use crate::decode::{ByteSize, Millis, Seconds, file_section};

const fn secs(seconds: u64) -> Seconds {
    Seconds(Duration::from_secs(seconds))
}

file_section! {
    /// The whole file.
    struct FileConfig {
        node: NodeFile = NodeFile::default(),
        p2p: P2pFile = P2pFile::default(),
        storage: StorageFile = StorageFile::default(),
        consensus: ConsensusFile = ConsensusFile::default(),
        mempool: MempoolFile = MempoolFile::default(),
        performance: PerformanceFile = PerformanceFile::default(),
        security: SecurityFile = SecurityFile::default(),
        monitoring: MonitoringFile = MonitoringFile::default(),
        api: ApiFile = ApiFile::default(),
        logging: LoggingFile = LoggingFile::default(),
    }
}

file_section! {
    struct NodeFile {
        /// Empty: taken from the genesis validator whose key matches the node key.
        id: String = String::new(),
        key_file: String = "config/node_key.json".to_owned(),
        genesis_file: String = "config/genesis.json".to_owned(),
        data_dir: String = "data".to_owned(),
    }
}

file_section! {
    struct P2pFile {
        host: String = "0.0.0.0".to_owned(),
        port: u64 = 8000,
        bootstrap_nodes: Vec<String> = Vec::new(),
        reconnect_interval: Seconds = secs(30),
        max_reconnect_attempts: u64 = 10,
        connection_timeout: Seconds = secs(15),
        handshake_timeout: Seconds = secs(10),
        max_peers: u64 = 50,
        message_compression: bool = false,
        compression_threshold: ByteSize = ByteSize(1024),
        batch_size: u64 = 100,
        flush_interval: Millis = Millis(Duration::from_millis(100)),
        send_buffer_size: ByteSize = ByteSize(65_536),
        recv_buffer_size: ByteSize = ByteSize(65_536),
        max_frame_size: ByteSize = ByteSize(16 << 20),
        ping_interval: Seconds = secs(30),
        ping_timeout: Seconds = secs(10),
    }
}

file_section! {
    struct StorageFile {
        kind as "type": String = "sqlite".to_owned(),
        path: String = "data/blockchain.db".to_owned(),
        connection_string: Option<String> = None,
        pool_size: u64 = 10,
        max_overflow: u64 = 20,
        pool_timeout: Seconds = secs(30),
        pool_recycle: Seconds = secs(3600),
    }
}

file_section! {
    struct ConsensusFile {
        algorithm: String = "pbft".to_owned(),
        timeout: Seconds = secs(30),
        heartbeat_interval: Seconds = secs(5),
        election_timeout: Seconds = secs(15),
        max_byzantine_nodes: u64 = 1,
        min_validators: u64 = 3,
        message_timeout: Seconds = secs(10),
        retry_attempts: u64 = 3,
        block_interval: Millis = Millis(Duration::ZERO),
        max_block_bytes: ByteSize = ByteSize(4 << 20),
    }
}

/// Bytes an encoded transaction holds besides its payload: the version, chain id (at most
/// 64 bytes), sender, nonce, length prefixes and signature take about 180, and the rest is
/// room for later fields.
pub const MEMPOOL_TX_ENVELOPE_BYTES: u64 = 1024;
/// `mempool.max_transactions` by default.
pub const DEFAULT_MEMPOOL_MAX_TRANSACTIONS: u64 = 10_000;
/// `mempool.max_bytes` by default: 64 MiB.
pub const DEFAULT_MEMPOOL_MAX_BYTES: u64 = 64 << 20;
/// `mempool.max_transaction_bytes` by default: the largest payload plus the envelope.
pub const DEFAULT_MEMPOOL_MAX_TRANSACTION_BYTES: u64 =
    MAX_TX_PAYLOAD_BYTES as u64 + MEMPOOL_TX_ENVELOPE_BYTES;
/// `mempool.recent_committed` by default.
pub const DEFAULT_MEMPOOL_RECENT_COMMITTED: u64 = 100_000;

file_section! {
    struct MempoolFile {
        max_transactions: u64 = DEFAULT_MEMPOOL_MAX_TRANSACTIONS,
        max_bytes: ByteSize = ByteSize(DEFAULT_MEMPOOL_MAX_BYTES),
        max_transaction_bytes: ByteSize = ByteSize(DEFAULT_MEMPOOL_MAX_TRANSACTION_BYTES),
        recent_committed: u64 = DEFAULT_MEMPOOL_RECENT_COMMITTED,
    }
}

file_section! {
    struct PerformanceFile {
        max_workers: u64 = 4,
        thread_pool_size: u64 = 8,
        connection_pool_size: u64 = 10,
        cache: CacheFile = CacheFile::default(),
        memory: MemoryFile = MemoryFile::default(),
        buffer_sizes: BufferSizesFile = BufferSizesFile::default(),
    }
}

file_section! {
    struct CacheFile {
        enabled: bool = true,
        max_size: u64 = 1000,
        ttl: Seconds = secs(300),
    }
}

file_section! {
    struct MemoryFile {
        /// Megabytes.
        max_cache_size: u64 = 500,
        gc_threshold: f64 = 0.8,
    }
}

file_section! {
    struct BufferSizesFile {
        network: ByteSize = ByteSize(64 << 10),
        storage: ByteSize = ByteSize(128 << 10),
        consensus: ByteSize = ByteSize(32 << 10),
    }
}

file_section! {
    struct SecurityFile {
        rate_limiting: RateLimitingFile = RateLimitingFile::default(),
        tls: SecurityTlsFile = SecurityTlsFile::default(),
    }
}

file_section! {
    struct RateLimitingFile {
        enabled: bool = true,
        requests_per_minute: u64 = 100,
        burst_size: u64 = 20,
        block_duration: Seconds = secs(3600),
        max_failures: u64 = 5,
    }
}

file_section! {
    struct SecurityTlsFile {
        cert_file: String = "config/tls/node.crt".to_owned(),
        key_file: String = "config/tls/node.key".to_owned(),
        ca_file: Option<String> = None,
    }
}

file_section! {
    struct MonitoringFile {
        enabled: bool = true,
        host: String = "0.0.0.0".to_owned(),
        metrics_port: u64 = 9090,
        metrics_path: String = "/metrics".to_owned(),
        metrics: Vec<MetricFile> = Vec::new(),
    }
}

file_section! {
    /// One entry of `monitoring.metrics`; `name` and `type` are required.
    struct MetricFile {
        name: Option<String> = None,
        kind as "type": Option<String> = None,
        description: String = String::new(),
    }
}

file_section! {
    struct ApiFile {
        host: String = "0.0.0.0".to_owned(),
        port: u64 = 8080,
        max_request_size: ByteSize = ByteSize(1 << 20),
        tls: ApiTlsFile = ApiTlsFile::default(),
    }
}

file_section! {
    struct ApiTlsFile {
        enabled: bool = false,
        cert_file: Option<String> = None,
        key_file: Option<String> = None,
    }
}

file_section! {
    struct LoggingFile {
        file: String = "/var/log/aegis/aegis.log".to_owned(),
        level: String = "info".to_owned(),
        console: bool = true,
    }
}
