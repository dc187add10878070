//! The peer manager: listener, dialer, authenticated connections, and the engine's
//! interface ([`P2pNetwork`], [`Inbox`](crate::Inbox)).
//!
//! One shared [`Inner`] (configuration, TLS, metrics, and the [`State`] behind one lock)
//! is driven by tasks defined in the submodules, each named by what it does:
//!
//! - [`handle`]: the public [`P2pNetwork`] handle, start-up, sending, and the message types;
//! - [`listener`]: the accept loop and admission (bans, rate limit, handshake bounds);
//! - [`dialer`]: outgoing connections and their outcome in the address book (backoff);
//! - [`maintenance`]: the periodic tick (dials due, ban expiry, peers file) and TLS reload;
//! - [`peer_table`]: registering and removing authenticated connections (duplicate rule);
//! - [`session`]: one authenticated connection's reader and writer tasks;
//! - [`ping`]: liveness pings and round-trip times;
//! - [`exchange`]: peer exchange (sending and learning validator addresses).

mod dialer;
mod exchange;
mod handle;
mod listener;
mod maintenance;
mod peer_table;
mod ping;
mod session;

pub use handle::{Inbound, Message, P2pError, P2pNetwork, PeerInfo, SendError};

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use aegis_types::{PublicKey, ValidatorId};
use rustls::ServerConfig;
use tokio::sync::Notify;
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

use crate::admission::{HandshakeSlots, RefusalLog, ValidatorAddresses};
use crate::auth::Identity;
use crate::book::AddressBook;
use crate::config::P2pConfig;
use crate::inbox::InboxShared;
use crate::limits::{BanList, RateLimiter};
use crate::metrics::{Direction, P2pMetrics};
use crate::queue::PeerQueue;
use crate::tls::TlsStore;

/// The `logger` of this module's log lines (the tracing target). The network was one
/// module before it was split by purpose, and operators filter on this name
/// (docs/troubleshooting.md), so every submodule logs under it.
const LOG_TARGET: &str = "aegis_p2p::network";
/// Target size of one batched frame; a single larger message still gets its own frame.
pub const BATCH_BYTES: usize = 256 * 1024;
/// Most strangers' handshakes in progress at once, at least (the bound is
/// `max(this, 2*max_peers)`); validator addresses have slots of their own
/// ([`crate::admission::VALIDATOR_ADDRESS_HANDSHAKES`] each).
pub const MIN_PENDING_HANDSHAKES: usize = 64;
/// Most strangers' handshakes in progress from one IP address.
pub const MAX_HANDSHAKES_PER_IP: usize = 8;
/// Most entries in one peer-exchange message, sent or read.
pub const MAX_EXCHANGED_PEERS: usize = 1024;
/// How often the maintenance loop runs (dials due, ban expiry, peers file).
const TICK: Duration = Duration::from_millis(100);
/// Interval of the `No peers available` warning while there are none.
const NO_PEERS_LOG_INTERVAL: Duration = Duration::from_secs(30);
/// A session that ends sooner than this after authentication counts as a failed dial.
const SHORT_LIVED: Duration = Duration::from_secs(2);
/// First byte of a TLS handshake record.
const TLS_HANDSHAKE_BYTE: u8 = 0x16;

struct Peer {
    conn_id: u64,
    id: ValidatorId,
    direction: Direction,
    dialer: PublicKey,
    remote: SocketAddr,
    queue: Arc<PeerQueue>,
    cancel: CancellationToken,
    rtt: Option<Duration>,
    since: Instant,
}

struct State {
    peers: HashMap<PublicKey, Peer>,
    limiter: RateLimiter,
    bans: BanList,
    /// Addresses whose connections take the validator lane (docs/security.md).
    validator_addresses: ValidatorAddresses,
    /// Inbound handshakes in progress, by lane.
    slots: HandshakeSlots,
    /// Refusals and failures logged per address, rate-limited, with counts.
    refusals: RefusalLog,
    book: AddressBook,
    no_peers_logged: Option<Instant>,
}

struct Inner {
    config: P2pConfig,
    identity: Identity,
    tls: Arc<TlsStore>,
    server_config: Arc<ServerConfig>,
    connector: TlsConnector,
    metrics: P2pMetrics,
    state: Mutex<State>,
    inbound: Arc<InboxShared>,
    /// Send queues by validator, read on every send without the state lock.
    queues: std::sync::RwLock<HashMap<ValidatorId, Arc<PeerQueue>>>,
    shutdown: CancellationToken,
    local_addr: SocketAddr,
    bind_ip: Option<IpAddr>,
    next_conn: AtomicU64,
    tls_reload: Notify,
    /// `data/p2p/bans.txt`, when the node has a data directory; the mutex orders writers.
    bans_file: Option<Mutex<std::path::PathBuf>>,
}

fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

fn bracket(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

fn clamp_u32(value: usize) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn name(&self, id: ValidatorId) -> String {
        self.identity
            .validators()
            .get(id)
            .map_or_else(|| id.to_string(), |v| v.name.clone())
    }
}
