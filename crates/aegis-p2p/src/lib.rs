//! AEGIS P2P: the node-to-node transport on port 8000.
//!
//! This crate owns:
//!
//! - **Transport** ([`tls`]): TCP + TLS 1.3 only, rustls on the ring provider, mutual
//!   authentication. Certificates may be self-signed per node or issued by a network CA
//!   (`security.tls.ca_file`); RSA, ECDSA and Ed25519 certificates are accepted. The
//!   certificate, key and CA are reloaded on change or SIGHUP without a restart.
//! - **Identity** ([`auth`]): after the TLS handshake both ends exchange a Hello signed with
//!   their genesis validator key over the session's TLS exporter secret, so a node is
//!   known by its Ed25519 key and the proof cannot be moved to another session
//!   (docs/adr/0005-p2p-authentication.md).
//! - **Framing** ([`wire`]): length-prefixed frames bounded by `max_frame_size`, a
//!   versioned envelope, batching of small messages, lz4 compression above a threshold.
//! - **Peers** ([`P2pNetwork`]): bootstrap dialling, redial with backoff and jitter, peer
//!   exchange, the known-peers file `data/p2p/peers.json`, pings measuring round trips,
//!   duplicate-connection resolution, bounded per-peer send queues.
//! - **Admission and abuse limits** ([`admission`], [`limits`]): genesis validators'
//!   addresses get handshake slots of their own and are never refused by a ban or rate
//!   limit meant for strangers; strangers get a per-IP connection rate limit, handshake
//!   bounds and bans. Failures are logged as `Authentication failed for peer from <IP>:
//!   <reason>`, refusals as `Unauthorized access from <IP>: connection refused: <reason>`
//!   and bans as `Unauthorized access from <IP>: banned for <N> s`, rate-limited per
//!   address with counts (the shipped fail2ban filter reads those lines). Bans are kept in
//!   `data/p2p/bans.txt` ([`ban_file`]) and survive a restart.
//!
//! The HTTP endpoints that report on this layer (`/metrics`, `/status`, `/health`) are
//! `aegis-api`'s; the `aegis` binary wires the two together.
//!
//! Messages are opaque bytes with a one-byte tag ([`tags`]) used only for metrics, so the
//! consensus and sync layers define their own encodings.

pub mod admission;
pub mod auth;
pub mod ban_file;
mod book;
pub mod config;
mod inbox;
pub mod limits;
pub mod metrics;
mod network;
pub mod probe;
mod queue;
pub mod tls;
pub mod tls_check;
pub mod wire;

pub use auth::{AuthError, Identity, PROTOCOL_VERSION, Purpose};
pub use config::{P2pConfig, RateLimitConfig};
pub use inbox::Inbox;
pub use metrics::{Direction, P2pMetrics};
pub use network::{Inbound, Message, P2pError, P2pNetwork, PeerInfo, SendError};
pub use queue::Priority;
pub use tls::{TlsFiles, TlsStore, install_default_provider};
pub use tls_check::{MAX_TLS_FILE_BYTES, TlsFileKind, TlsProblem, check_tls_files};

/// Message tags: which layer a [`Message`] belongs to. Only used to label metrics
/// (`aegis_p2p_messages_total{type}`); the payload is the layer's own encoding.
pub mod tags {
    pub const CONSENSUS: u8 = 1;
    pub const SYNC: u8 = 2;
    pub const MEMPOOL: u8 = 3;

    /// The metric label of a tag; unknown tags share `other` so labels stay bounded.
    pub fn label(tag: u8) -> &'static str {
        match tag {
            CONSENSUS => "consensus",
            SYNC => "sync",
            MEMPOOL => "mempool",
            _ => "other",
        }
    }
}
