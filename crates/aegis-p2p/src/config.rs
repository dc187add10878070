//! The settings this crate runs with: plain data, filled by the binary from the node's
//! validated configuration (`p2p:` and `security:` sections) or by tests directly.

use std::path::PathBuf;
use std::time::Duration;

use crate::tls::TlsFiles;

/// `p2p:` and the parts of `security:` the P2P layer enforces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct P2pConfig {
    /// Address to listen on (`p2p.host`); an IP address, or `0.0.0.0` / `::`. When it is a
    /// specific address, outgoing connections are also made from it.
    pub host: String,
    /// `p2p.port`; 0 picks a free port (tests).
    pub port: u16,
    /// `host:port` of nodes to dial at start; DNS names allowed.
    pub bootstrap_nodes: Vec<String>,
    /// Wait between redials of a lost or unreachable peer, for the first
    /// `max_reconnect_attempts` attempts; after that, exponential backoff with jitter.
    pub reconnect_interval: Duration,
    pub max_reconnect_attempts: u32,
    /// Bound on a TCP connect.
    pub connection_timeout: Duration,
    /// Bound on the TLS handshake plus the Hello exchange.
    pub handshake_timeout: Duration,
    /// Most authenticated peers at once.
    pub max_peers: usize,
    pub message_compression: bool,
    /// Frame bodies at least this large are compressed when compression is on.
    pub compression_threshold_bytes: usize,
    /// Most messages in one frame.
    pub batch_size: usize,
    /// Longest a written frame may sit in the send buffer before it is flushed while more
    /// messages keep coming; with an idle queue every frame is flushed at once.
    pub flush_interval: Duration,
    /// `SO_SNDBUF` / `SO_RCVBUF` of P2P sockets, and the user-space buffer sizes.
    pub send_buffer_size_bytes: usize,
    pub recv_buffer_size_bytes: usize,
    /// Largest frame sent or accepted (a message plus 8 bytes of headers must fit).
    pub max_frame_size_bytes: usize,
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    /// Most messages waiting in one peer's send queue (see docs/p2p.md, "Slow peers").
    pub peer_queue_messages: usize,
    /// Most payload bytes waiting in one peer's send queue.
    pub peer_queue_bytes: usize,
    /// Messages received from all peers waiting for the engine.
    pub inbound_queue_messages: usize,
    /// Payload bytes received from all peers waiting for the engine.
    pub inbound_queue_bytes: usize,
    pub rate_limiting: RateLimitConfig,
    pub tls: TlsFiles,
    /// `data/p2p/`: the known-peers file lives here. `None` keeps peers in memory only.
    pub data_dir: Option<PathBuf>,
    /// How often the certificate files are checked for changes (SIGHUP also reloads).
    pub tls_reload_interval: Duration,
    /// Window of the refusal log ([`crate::admission::REFUSAL_LOG_INTERVAL`] by default;
    /// tests shorten it to see the counted lines).
    pub refusal_log_interval: Duration,
}

/// `security.rate_limiting`, applied per remote IP to incoming P2P connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// When false, neither the connection rate limit nor bans apply.
    pub enabled: bool,
    /// Sustained new connections per minute from one IP.
    pub requests_per_minute: u32,
    /// Connections one IP may open in a burst above the sustained rate.
    pub burst_size: u32,
    /// Ban length after `max_failures` authentication failures.
    pub block_duration: Duration,
    pub max_failures: u32,
    /// Failures older than this are forgotten (fail2ban's `findtime`).
    pub failure_window: Duration,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            enabled: true,
            requests_per_minute: 100,
            burst_size: 20,
            block_duration: Duration::from_secs(3600),
            max_failures: 5,
            failure_window: Duration::from_secs(600),
        }
    }
}

impl P2pConfig {
    /// The guide's defaults, with the given TLS files.
    pub fn new(tls: TlsFiles) -> P2pConfig {
        P2pConfig {
            host: "0.0.0.0".into(),
            port: 8000,
            bootstrap_nodes: Vec::new(),
            reconnect_interval: Duration::from_secs(30),
            max_reconnect_attempts: 10,
            connection_timeout: Duration::from_secs(15),
            handshake_timeout: Duration::from_secs(10),
            max_peers: 50,
            message_compression: false,
            compression_threshold_bytes: 1024,
            batch_size: 100,
            flush_interval: Duration::from_millis(100),
            send_buffer_size_bytes: 65_536,
            recv_buffer_size_bytes: 65_536,
            max_frame_size_bytes: 16 << 20,
            ping_interval: Duration::from_secs(30),
            ping_timeout: Duration::from_secs(10),
            peer_queue_messages: 4096,
            peer_queue_bytes: 64 << 20,
            inbound_queue_messages: 16_384,
            inbound_queue_bytes: 256 << 20,
            rate_limiting: RateLimitConfig::default(),
            tls,
            data_dir: None,
            tls_reload_interval: Duration::from_secs(10),
            refusal_log_interval: crate::admission::REFUSAL_LOG_INTERVAL,
        }
    }

    /// Clamps values that would make the layer misbehave (zero sizes, a ping timeout
    /// longer than the interval) to sane minimums.
    pub(crate) fn normalized(mut self) -> P2pConfig {
        self.max_frame_size_bytes = self
            .max_frame_size_bytes
            .clamp(crate::wire::MIN_MAX_FRAME_SIZE, u32::MAX as usize);
        self.batch_size = self.batch_size.max(1);
        self.max_peers = self.max_peers.max(1);
        self.peer_queue_messages = self.peer_queue_messages.max(1);
        self.peer_queue_bytes = self.peer_queue_bytes.max(self.max_frame_size_bytes);
        self.inbound_queue_messages = self.inbound_queue_messages.max(1);
        self.inbound_queue_bytes = self.inbound_queue_bytes.max(1);
        self.send_buffer_size_bytes = self.send_buffer_size_bytes.max(4096);
        self.recv_buffer_size_bytes = self.recv_buffer_size_bytes.max(4096);
        self.reconnect_interval = self.reconnect_interval.max(Duration::from_millis(50));
        self.ping_interval = self.ping_interval.max(Duration::from_millis(50));
        self.ping_timeout = self
            .ping_timeout
            .clamp(Duration::from_millis(10), self.ping_interval);
        self.flush_interval = self.flush_interval.max(Duration::from_millis(1));
        self.tls_reload_interval = self.tls_reload_interval.max(Duration::from_millis(100));
        self.refusal_log_interval = self.refusal_log_interval.max(Duration::from_millis(100));
        self.rate_limiting.burst_size = self.rate_limiting.burst_size.max(1);
        self.rate_limiting.max_failures = self.rate_limiting.max_failures.max(1);
        self
    }
}
