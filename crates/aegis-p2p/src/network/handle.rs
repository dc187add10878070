//! The public handle of the P2P layer ([`P2pNetwork`]): start-up, sending to one or all
//! validators, and what callers can see of the peers; with the message and error types.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use aegis_types::{PublicKey, ValidatorId};
use bytes::Bytes;
use tokio::sync::Notify;
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

use super::listener::listen;
use super::{
    Inner, LOG_TARGET, MAX_HANDSHAKES_PER_IP, MIN_PENDING_HANDSHAKES, State, bracket, canonical,
};
use crate::admission::{HandshakeSlots, RefusalLog, ValidatorAddresses};
use crate::auth::Identity;
use crate::ban_file;
use crate::book::AddressBook;
use crate::config::P2pConfig;
use crate::inbox::{Inbox, InboxShared};
use crate::limits::{BanList, RateLimiter};
use crate::metrics::{Direction, P2pMetrics};
use crate::queue::{Outgoing, PeerQueue, Priority, Push};
use crate::tls::{TlsError, TlsStore};
use crate::wire::{self, RecordKind};

/// A message for a peer: opaque bytes, a tag naming its kind (for metrics, see [`crate::tags`]),
/// and how it may be treated under backpressure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub tag: u8,
    pub payload: Bytes,
    pub priority: Priority,
}

impl Message {
    /// A critical message (never dropped while the connection lives).
    pub fn new(tag: u8, payload: impl Into<Bytes>) -> Message {
        Message {
            tag,
            payload: payload.into(),
            priority: Priority::Critical,
        }
    }

    /// A message that may be evicted when the peer's queue is full.
    pub fn bulk(tag: u8, payload: impl Into<Bytes>) -> Message {
        Message {
            tag,
            payload: payload.into(),
            priority: Priority::Bulk,
        }
    }
}

/// A message received from an authenticated validator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inbound {
    pub from: ValidatorId,
    pub public_key: PublicKey,
    pub tag: u8,
    pub payload: Bytes,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SendError {
    #[error("validator {0} is not connected")]
    NotConnected(ValidatorId),
    #[error("validator {0} is not in the validator set")]
    UnknownValidator(ValidatorId),
    #[error("message of {size} bytes exceeds the maximum of {max}")]
    TooLarge { size: usize, max: usize },
    #[error("send queue of validator {0} is full")]
    QueueFull(ValidatorId),
    #[error("validator {0} is too slow: its queue stayed full, so it was disconnected")]
    SlowPeer(ValidatorId),
}

#[derive(Debug, thiserror::Error)]
pub enum P2pError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("listen on {address}: {error}")]
    Bind {
        address: String,
        error: std::io::Error,
    },
}

/// One connected peer, as reported to callers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    pub id: ValidatorId,
    pub name: String,
    pub public_key: PublicKey,
    pub direction: Direction,
    pub remote_addr: SocketAddr,
    /// Last ping round trip, once one was answered.
    pub rtt: Option<Duration>,
    /// Messages waiting in its send queue.
    pub queued: usize,
}

/// Handle to the running P2P layer. Cheap to clone; [`shutdown`](Self::shutdown) stops it.
#[derive(Clone)]
pub struct P2pNetwork {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for P2pNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("P2pNetwork")
            .field("local_addr", &self.inner.local_addr)
            .field("public_key", &self.inner.identity.public_key())
            .finish_non_exhaustive()
    }
}

impl P2pNetwork {
    /// Binds the listener, loads the TLS files and starts accepting, dialling and
    /// maintaining the mesh. Must run inside a tokio runtime.
    pub async fn start(
        config: P2pConfig,
        identity: Identity,
        metrics: P2pMetrics,
    ) -> Result<(P2pNetwork, Inbox), P2pError> {
        let config = config.normalized();
        let tls = TlsStore::load(config.tls.clone())?;
        let server_config = tls.server_config()?;
        let connector = TlsConnector::from(tls.client_config()?);
        let listen_address = format!("{}:{}", bracket(&config.host), config.port);
        let bind_error = |error| P2pError::Bind {
            address: listen_address.clone(),
            error,
        };
        let addr = tokio::net::lookup_host(&listen_address)
            .await
            .map_err(bind_error)?
            .next()
            .ok_or_else(|| bind_error(std::io::Error::other("address resolves to nothing")))?;
        let listener = listen(addr, &config).map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        let bind_ip = (!addr.ip().is_unspecified()).then_some(addr.ip());
        let now = Instant::now();
        let book = AddressBook::load(config.data_dir.as_deref(), &config.bootstrap_nodes, now);
        let inbound = InboxShared::new(config.inbound_queue_messages, config.inbound_queue_bytes);
        let inbox = Inbox::new(Arc::clone(&inbound));
        let max_handshakes = MIN_PENDING_HANDSHAKES.max(2 * config.max_peers);
        let (genesis_ips, genesis_hosts) = genesis_addresses(&identity);
        let bans_file = config.data_dir.as_deref().map(ban_file::path_in);
        let bans = restore_bans(&config, bans_file.as_deref(), now);
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                peers: HashMap::new(),
                limiter: RateLimiter::new(&config.rate_limiting),
                bans,
                validator_addresses: ValidatorAddresses::new(genesis_ips),
                slots: HandshakeSlots::new(max_handshakes, MAX_HANDSHAKES_PER_IP),
                refusals: RefusalLog::new(config.refusal_log_interval),
                book,
                no_peers_logged: None,
            }),
            config,
            identity,
            tls,
            server_config,
            connector,
            metrics,
            inbound,
            queues: std::sync::RwLock::new(HashMap::new()),
            shutdown: CancellationToken::new(),
            local_addr,
            bind_ip,
            next_conn: AtomicU64::new(1),
            tls_reload: Notify::new(),
            bans_file: bans_file.map(Mutex::new),
        });
        inner
            .metrics
            .banned_ips
            .set(inner.lock().bans.banned_count() as i64);
        if !genesis_hosts.is_empty() {
            tokio::spawn(Arc::clone(&inner).resolve_genesis_hosts(genesis_hosts));
        }
        aegis_telemetry::info!(
            target: LOG_TARGET,
            address = %local_addr,
            public_key = %inner.identity.public_key(),
            validator = ?inner.identity.validator_id(),
            "P2P listening (TLS 1.3, mutual authentication)"
        );
        tokio::spawn(Arc::clone(&inner).accept_loop(listener));
        tokio::spawn(Arc::clone(&inner).maintenance_loop());
        tokio::spawn(Arc::clone(&inner).tls_reload_loop());
        Ok((P2pNetwork { inner }, inbox))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    pub fn public_key(&self) -> PublicKey {
        self.inner.identity.public_key()
    }

    pub fn validator_id(&self) -> Option<ValidatorId> {
        self.inner.identity.validator_id()
    }

    /// The largest message payload a frame can carry (from `max_frame_size`).
    pub fn max_payload_bytes(&self) -> usize {
        wire::max_payload(self.inner.config.max_frame_size_bytes)
    }

    pub fn metrics(&self) -> &P2pMetrics {
        &self.inner.metrics
    }

    /// Queues `message` for validator `to`, waiting while its queue is full of critical
    /// messages (backpressure). If it stays full for `ping_timeout`, the peer is
    /// disconnected as too slow and [`SendError::SlowPeer`] returned.
    pub async fn send(&self, to: ValidatorId, message: Message) -> Result<(), SendError> {
        let (queue, key) = self.queue_for(to, &message)?;
        let outgoing = match queue.try_push(outgoing(message)) {
            Ok(push) => return self.inner.push_result(to, push),
            Err(back) => back,
        };
        match tokio::time::timeout(self.inner.config.ping_timeout, queue.push_wait(outgoing)).await
        {
            Ok(push) => self.inner.push_result(to, push),
            Err(_) => {
                self.inner.disconnect_slow(&key);
                Err(SendError::SlowPeer(to))
            }
        }
    }

    /// Queues `message` for validator `to` without waiting: [`SendError::QueueFull`] if
    /// its queue is full of critical messages.
    pub fn try_send(&self, to: ValidatorId, message: Message) -> Result<(), SendError> {
        let (queue, _) = self.queue_for(to, &message)?;
        match queue.push(outgoing(message)) {
            Push::Full => Err(SendError::QueueFull(to)),
            other => self.inner.push_result(to, other),
        }
    }

    /// Queues `message` for every connected validator without waiting. A peer whose queue
    /// is full of critical messages is disconnected as too slow (and redialled). Returns
    /// how many peers it was queued for.
    pub fn broadcast(&self, message: Message) -> usize {
        let max = wire::max_payload(self.inner.config.max_frame_size_bytes);
        if message.payload.len() > max {
            self.inner.metrics.dropped("too_large", 1);
            return 0;
        }
        let targets: Vec<(PublicKey, ValidatorId, Arc<PeerQueue>)> = self
            .inner
            .lock()
            .peers
            .iter()
            .map(|(key, peer)| (*key, peer.id, Arc::clone(&peer.queue)))
            .collect();
        let outgoing = outgoing(message);
        let mut queued = 0;
        for (key, id, queue) in targets {
            match queue.push(outgoing.clone()) {
                Push::Full => self.inner.disconnect_slow(&key),
                other => {
                    if self.inner.push_result(id, other).is_ok() {
                        queued += 1;
                    }
                }
            }
        }
        queued
    }

    fn queue_for(
        &self,
        to: ValidatorId,
        message: &Message,
    ) -> Result<(Arc<PeerQueue>, PublicKey), SendError> {
        let max = wire::max_payload(self.inner.config.max_frame_size_bytes);
        if message.payload.len() > max {
            self.inner.metrics.dropped("too_large", 1);
            return Err(SendError::TooLarge {
                size: message.payload.len(),
                max,
            });
        }
        let key = self
            .inner
            .identity
            .validators()
            .get(to)
            .map(|v| v.public_key)
            .ok_or(SendError::UnknownValidator(to))?;
        let queues = self
            .inner
            .queues
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let queue = queues.get(&to).ok_or_else(|| {
            self.inner.metrics.dropped("no_peer", 1);
            SendError::NotConnected(to)
        })?;
        Ok((Arc::clone(queue), key))
    }

    /// The connected peers, ordered by validator id.
    pub fn peers(&self) -> Vec<PeerInfo> {
        let state = self.inner.lock();
        let mut peers: Vec<PeerInfo> = state
            .peers
            .iter()
            .map(|(key, peer)| PeerInfo {
                id: peer.id,
                name: self.inner.name(peer.id),
                public_key: *key,
                direction: peer.direction,
                remote_addr: peer.remote,
                rtt: peer.rtt,
                queued: peer.queue.len(),
            })
            .collect();
        peers.sort_by_key(|p| p.id);
        peers
    }

    pub fn peer_count(&self) -> usize {
        self.inner.lock().peers.len()
    }

    /// Addresses banned now.
    pub fn banned_count(&self) -> usize {
        self.inner.lock().bans.banned_count()
    }

    /// Whether `ip` is banned now.
    pub fn is_banned(&self, ip: IpAddr) -> bool {
        self.inner
            .lock()
            .bans
            .is_banned(canonical(ip), Instant::now())
    }

    /// Reloads the certificate, key and CA files now (also done on change and SIGHUP).
    pub fn reload_tls(&self) -> Result<bool, TlsError> {
        self.inner.tls.reload(true)
    }

    /// A callback that asks for a TLS reload; subscribe it to the SIGHUP hub.
    pub fn tls_reload_trigger(&self) -> impl Fn() + Send + Sync + 'static {
        let inner = Arc::downgrade(&self.inner);
        move || {
            if let Some(inner) = inner.upgrade() {
                inner.tls_reload.notify_one();
            }
        }
    }

    /// Stops listening, dialling and every connection.
    pub fn shutdown(&self) {
        self.inner.save_bans(true);
        self.inner.shutdown.cancel();
        self.inner.inbound.close();
        let state = self.inner.lock();
        for peer in state.peers.values() {
            peer.cancel.cancel();
            peer.queue.close();
        }
    }
}

fn outgoing(message: Message) -> Outgoing {
    Outgoing {
        kind: RecordKind::Data,
        tag: message.tag,
        payload: message.payload,
        priority: message.priority,
    }
}

impl Inner {
    fn push_result(&self, to: ValidatorId, push: Push) -> Result<(), SendError> {
        match push {
            Push::Queued { evicted } => {
                if evicted > 0 {
                    self.metrics.dropped("queue_full", evicted as u64);
                }
                Ok(())
            }
            Push::DroppedBulk => {
                self.metrics.dropped("queue_full", 1);
                Ok(())
            }
            Push::Full => Err(SendError::QueueFull(to)),
            Push::Closed => {
                self.metrics.dropped("no_peer", 1);
                Err(SendError::NotConnected(to))
            }
        }
    }

    fn disconnect_slow(&self, key: &PublicKey) {
        let state = self.lock();
        if let Some(peer) = state.peers.get(key) {
            let dropped = peer.queue.close();
            peer.cancel.cancel();
            self.metrics.dropped("slow_peer", dropped as u64);
            aegis_telemetry::warn!(
                target: LOG_TARGET,
                peer_id = %self.name(peer.id),
                queued = dropped,
                "Disconnecting slow peer: its send queue stayed full"
            );
        }
    }
}

/// The genesis validators' P2P addresses: IP literals, and host names to resolve.
fn genesis_addresses(identity: &Identity) -> (Vec<IpAddr>, Vec<String>) {
    let mut ips = Vec::new();
    let mut hosts = Vec::new();
    for validator in identity.validators().validators() {
        let address = validator.p2p_address.as_str();
        match address.parse::<SocketAddr>() {
            Ok(socket) => ips.push(canonical(socket.ip())),
            Err(_) => hosts.push(address.to_owned()),
        }
    }
    (ips, hosts)
}

impl Inner {
    /// Resolves the genesis validators' host names once, in the background, and adds their
    /// addresses to the validator lane. One that does not resolve is skipped: its
    /// validator's address is learned when it authenticates (in either direction).
    async fn resolve_genesis_hosts(self: Arc<Self>, hosts: Vec<String>) {
        for host in hosts {
            let lookup = tokio::time::timeout(
                self.config.connection_timeout,
                tokio::net::lookup_host(host.clone()),
            );
            let resolved = tokio::select! {
                () = self.shutdown.cancelled() => return,
                resolved = lookup => resolved,
            };
            match resolved {
                Ok(Ok(addresses)) => {
                    let mut state = self.lock();
                    for address in addresses {
                        state
                            .validator_addresses
                            .add_genesis(canonical(address.ip()));
                    }
                }
                Ok(Err(error)) => aegis_telemetry::warn!(
                    target: LOG_TARGET,
                    address = %host,
                    %error,
                    "Cannot resolve a genesis validator's address; its connections are treated as a stranger's until it authenticates"
                ),
                Err(_) => aegis_telemetry::warn!(
                    target: LOG_TARGET,
                    address = %host,
                    "Resolving a genesis validator's address timed out; its connections are treated as a stranger's until it authenticates"
                ),
            }
        }
    }
}

/// The ban list at start: empty, plus the live bans of `data/p2p/bans.txt` (each for what it
/// had left, at most `block_duration`). Problems with the file are logged with its path (and
/// line and field) and never stop the start.
fn restore_bans(config: &P2pConfig, path: Option<&std::path::Path>, now: Instant) -> BanList {
    let mut bans = BanList::new(&config.rate_limiting);
    let Some(path) = path else {
        return bans;
    };
    let loaded = ban_file::load(path);
    for problem in &loaded.problems {
        aegis_telemetry::warn!(target: LOG_TARGET, path = %path.display(), "Ban file: {problem}");
    }
    if loaded.bans.is_empty() {
        return bans;
    }
    if !bans.enabled() {
        aegis_telemetry::info!(
            target: LOG_TARGET,
            path = %path.display(),
            bans = loaded.bans.len(),
            "Bans of {} not applied: security.rate_limiting.enabled is false",
            path.display()
        );
        return bans;
    }
    let now_ms = crate::book::now_ms();
    let restored = loaded
        .bans
        .iter()
        .filter(|ban| {
            let left = std::time::Duration::from_millis(ban.until_ms.saturating_sub(now_ms));
            bans.restore(ban.ip, left, now)
        })
        .count();
    aegis_telemetry::info!(
        target: LOG_TARGET,
        path = %path.display(),
        restored,
        expired = loaded.bans.len() - restored,
        "Restored {restored} P2P bans from {}",
        path.display()
    );
    bans
}
