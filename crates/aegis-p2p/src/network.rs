//! The peer manager: listener, dialer, authenticated connections, and the engine's
//! interface ([`P2pNetwork`], [`Inbox`]).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use aegis_types::{PublicKey, ValidatorId};
use borsh::{BorshDeserialize, BorshSerialize};
use bytes::{Bytes, BytesMut};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Notify;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_util::sync::CancellationToken;

use crate::auth::{
    self, AuthError, AuthenticatedPeer, EXPORTER_BYTES, EXPORTER_LABEL, Identity, Role,
};
use crate::book::{AddressBook, MAX_ADDRESS_LEN, Source};
use crate::config::P2pConfig;
use crate::inbox::{Delivered, Inbox, InboxShared};
use crate::limits::{BanList, FailureOutcome, RateLimiter};
use crate::metrics::{Direction, P2pMetrics};
use crate::queue::{Outgoing, PeerQueue, Priority, Push};
use crate::tls::{TlsError, TlsStore};
use crate::wire::{self, Compression, FrameBuilder, RecordKind};

/// Target size of one batched frame; a single larger message still gets its own frame.
pub const BATCH_BYTES: usize = 256 * 1024;
/// Most handshakes in progress at once, at least (the bound is `max(this, 2*max_peers)`).
pub const MIN_PENDING_HANDSHAKES: usize = 64;
/// Most handshakes in progress from one IP address.
pub const MAX_HANDSHAKES_PER_IP: usize = 8;
/// Most entries in one peer-exchange message, sent or read.
pub const MAX_EXCHANGED_PEERS: usize = 1024;
/// How often the maintenance loop runs (dials due, ban expiry, peers file).
const TICK: Duration = Duration::from_millis(100);
/// Interval of the `No peers available` warning while there are none.
const NO_PEERS_LOG_INTERVAL: Duration = Duration::from_secs(30);
/// Interval of repeated warnings about one remote address (rate limit, bans).
const REJECTION_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// Most addresses whose rejection warnings are throttled individually.
const MAX_THROTTLED_IPS: usize = 4096;
/// A session that ends sooner than this after authentication counts as a failed dial.
const SHORT_LIVED: Duration = Duration::from_secs(2);
/// First byte of a TLS handshake record.
const TLS_HANDSHAKE_BYTE: u8 = 0x16;

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
    handshakes: usize,
    handshakes_per_ip: HashMap<IpAddr, usize>,
    book: AddressBook,
    warned: HashMap<IpAddr, Instant>,
    no_peers_logged: Option<Instant>,
}

struct Inner {
    config: P2pConfig,
    identity: Identity,
    tls: Arc<TlsStore>,
    acceptor: TlsAcceptor,
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
    max_handshakes: usize,
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

fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
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
        let acceptor = TlsAcceptor::from(tls.server_config()?);
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
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                peers: HashMap::new(),
                limiter: RateLimiter::new(&config.rate_limiting),
                bans: BanList::new(&config.rate_limiting),
                handshakes: 0,
                handshakes_per_ip: HashMap::new(),
                book,
                warned: HashMap::new(),
                no_peers_logged: None,
            }),
            config,
            identity,
            tls,
            acceptor,
            connector,
            metrics,
            inbound,
            queues: std::sync::RwLock::new(HashMap::new()),
            shutdown: CancellationToken::new(),
            local_addr,
            bind_ip,
            next_conn: AtomicU64::new(1),
            tls_reload: Notify::new(),
            max_handshakes,
        });
        tracing::info!(
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

fn bracket(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

fn listen(addr: SocketAddr, config: &P2pConfig) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    // Accepted sockets inherit these buffer sizes from the listener.
    socket.set_send_buffer_size(clamp_u32(config.send_buffer_size_bytes))?;
    socket.set_recv_buffer_size(clamp_u32(config.recv_buffer_size_bytes))?;
    socket.bind(addr)?;
    socket.listen(1024)
}

fn clamp_u32(value: usize) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// Why a connection ended, for the log.
#[derive(Debug)]
enum Ended {
    Closed,
    Shutdown,
    Replaced,
    /// The link failed (I/O error).
    Error(String),
    /// The peer sent bad input after authenticating: garbage, an oversized or truncated
    /// frame, a malformed record. Logged with its address and counted.
    Protocol(String),
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::Closed => write!(f, "closed by peer"),
            Ended::Shutdown => write!(f, "shutting down"),
            Ended::Replaced => write!(f, "replaced or dropped locally"),
            Ended::Error(error) => write!(f, "{error}"),
            Ended::Protocol(error) => write!(f, "protocol violation: {error}"),
        }
    }
}

#[derive(BorshSerialize, BorshDeserialize)]
struct PeerList {
    peers: Vec<(String, [u8; 32])>,
}

/// Decrements the handshake counters when an inbound handshake ends, however it ends.
struct HandshakeSlot {
    inner: Arc<Inner>,
    ip: IpAddr,
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let mut state = self.inner.lock();
        state.handshakes = state.handshakes.saturating_sub(1);
        if let Some(count) = state.handshakes_per_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                state.handshakes_per_ip.remove(&self.ip);
            }
        }
    }
}

enum Registered {
    Yes(Arc<PeerQueue>, CancellationToken, u64),
    SelfConnection,
    Duplicate,
    Full,
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
            tracing::warn!(
                peer_id = %self.name(peer.id),
                queued = dropped,
                "Disconnecting slow peer: its send queue stayed full"
            );
        }
    }

    /// Logs at most once per [`REJECTION_LOG_INTERVAL`] per address.
    fn should_warn(state: &mut State, ip: IpAddr, now: Instant) -> bool {
        if let Some(last) = state.warned.get(&ip)
            && now.saturating_duration_since(*last) < REJECTION_LOG_INTERVAL
        {
            return false;
        }
        if state.warned.len() >= MAX_THROTTLED_IPS {
            state
                .warned
                .retain(|_, last| now.saturating_duration_since(*last) < REJECTION_LOG_INTERVAL);
            if state.warned.len() >= MAX_THROTTLED_IPS {
                return false;
            }
        }
        state.warned.insert(ip, now);
        true
    }

    async fn accept_loop(self: Arc<Self>, listener: TcpListener) {
        loop {
            let accepted = tokio::select! {
                () = self.shutdown.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, remote)) => self.on_accept(stream, remote),
                Err(error) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    tracing::warn!(%error, "P2P accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn on_accept(self: &Arc<Self>, stream: TcpStream, remote: SocketAddr) {
        let ip = canonical(remote.ip());
        let now = Instant::now();
        let limits = self.config.rate_limiting.enabled;
        let mut state = self.lock();
        let refusal = if limits && state.bans.is_banned(ip, now) {
            Some(("banned", "Refused connection from banned peer"))
        } else if limits && !state.limiter.allow(ip, now) {
            Some(("rate_limited", "Connection rate limit exceeded for peer"))
        } else if state.handshakes >= self.max_handshakes
            || state.handshakes_per_ip.get(&ip).copied().unwrap_or(0) >= MAX_HANDSHAKES_PER_IP
        {
            Some((
                "handshake_limit",
                "Too many handshakes in progress; refusing peer",
            ))
        } else {
            None
        };
        if let Some((reason, text)) = refusal {
            self.metrics.rejected(reason);
            if Self::should_warn(&mut state, ip, now) {
                tracing::warn!(
                    reason,
                    "{text} {ip} (further refusals of this address are not logged for {}s)",
                    REJECTION_LOG_INTERVAL.as_secs()
                );
            }
            return;
        }
        state.handshakes += 1;
        *state.handshakes_per_ip.entry(ip).or_insert(0) += 1;
        drop(state);
        let slot = HandshakeSlot {
            inner: Arc::clone(self),
            ip,
        };
        let inner = Arc::clone(self);
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let timeout = inner.config.handshake_timeout;
            let handshake = tokio::time::timeout(timeout, inner.accept_handshake(stream));
            let result = tokio::select! {
                () = inner.shutdown.cancelled() => return,
                result = handshake => result.unwrap_or(Err(Some(AuthError::Timeout(timeout)))),
            };
            drop(slot);
            match result {
                Ok((stream, peer)) => {
                    inner.lock().bans.record_success(ip);
                    inner
                        .run_peer(stream, peer, Direction::Inbound, remote, None)
                        .await;
                }
                Err(Some(error)) => inner.auth_failed(ip, &error),
                Err(None) => {
                    tracing::debug!(%ip, "P2P connection closed before sending anything");
                }
            }
        });
    }

    /// TLS handshake and Hello on an accepted socket. `Err(None)`: the peer closed without
    /// sending a byte (a port probe), which is not an authentication failure.
    async fn accept_handshake(
        &self,
        stream: TcpStream,
    ) -> Result<
        (
            tokio_rustls::server::TlsStream<TcpStream>,
            AuthenticatedPeer,
        ),
        Option<AuthError>,
    > {
        let mut first = [0u8; 1];
        match stream.peek(&mut first).await {
            Ok(0) => return Err(None),
            Ok(_) if first[0] != TLS_HANDSHAKE_BYTE => {
                return Err(Some(AuthError::NotTls(first[0])));
            }
            Ok(_) => {}
            Err(error) => return Err(Some(AuthError::Io(error))),
        }
        let mut tls = self
            .acceptor
            .accept(stream)
            .await
            .map_err(|error| Some(AuthError::Tls(error.to_string())))?;
        let (_, connection) = tls.get_ref();
        if connection
            .peer_certificates()
            .is_none_or(|certs| certs.is_empty())
        {
            return Err(Some(AuthError::NoClientCertificate));
        }
        let exporter = connection
            .export_keying_material([0u8; EXPORTER_BYTES], EXPORTER_LABEL, None)
            .map_err(|error| Some(AuthError::Exporter(error.to_string())))?;
        let peer = auth::exchange_hello(
            &mut tls,
            &exporter,
            Role::Acceptor,
            &self.identity,
            self.local_addr.port(),
        )
        .await
        .map_err(Some)?;
        Ok((tls, peer))
    }

    /// Logs `Authentication failed for peer from <IP>: <reason>`, counts it, and bans the
    /// address after `max_failures` failures.
    fn auth_failed(&self, ip: IpAddr, error: &AuthError) {
        tracing::warn!("Authentication failed for peer from {ip}: {error}");
        self.metrics.auth_failures.inc();
        let mut state = self.lock();
        // An address a validator is connected from is never banned by the node (a shared
        // NAT, or every node of a testnet on 127.0.0.1): the failure is logged and counted,
        // the honest validator keeps its connection and can redial.
        if state
            .peers
            .values()
            .any(|peer| canonical(peer.remote.ip()) == ip)
        {
            tracing::debug!(%ip, "Not counting towards a ban: a validator is connected from this address");
            return;
        }
        if let FailureOutcome::Banned { duration } = state.bans.record_failure(ip, Instant::now()) {
            self.metrics
                .banned_ips
                .set(state.bans.banned_count() as i64);
            drop(state);
            tracing::warn!(
                "Unauthorized access from {ip}: banned for {} s",
                duration.as_secs()
            );
        }
    }

    async fn maintenance_loop(self: Arc<Self>) {
        let mut interval = tokio::time::interval(TICK);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_sweep = Instant::now();
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => break,
                _ = interval.tick() => {}
            }
            let now = Instant::now();
            let mut dials = Vec::new();
            {
                let mut state = self.lock();
                if now.saturating_duration_since(last_sweep) >= Duration::from_secs(1) {
                    last_sweep = now;
                    for ip in state.bans.sweep(now) {
                        tracing::info!("Ban lifted for {ip}");
                    }
                    self.metrics
                        .banned_ips
                        .set(state.bans.banned_count() as i64);
                    state.limiter.sweep(now);
                    state.book.save_if_dirty();
                }
                if state.peers.is_empty() {
                    let due = state.no_peers_logged.is_none_or(|last| {
                        now.saturating_duration_since(last) >= NO_PEERS_LOG_INTERVAL
                    });
                    if due {
                        state.no_peers_logged = Some(now);
                        tracing::warn!(address = %self.local_addr, "No peers available");
                    }
                } else {
                    state.no_peers_logged = None;
                }
                let room = self.config.max_peers.saturating_sub(state.peers.len());
                let State { book, peers, .. } = &mut *state;
                for (address, entry) in book.entries.iter_mut() {
                    if dials.len() >= room {
                        break;
                    }
                    let connected = entry.key.is_some_and(|key| peers.contains_key(&key));
                    if entry.dialing || entry.is_self || connected || now < entry.next_dial {
                        continue;
                    }
                    entry.dialing = true;
                    tracing::debug!(%address, source = ?entry.source, attempts = entry.attempts, "Dialling peer");
                    dials.push(address.clone());
                }
            }
            for address in dials {
                tokio::spawn(Arc::clone(&self).dial(address));
            }
        }
        self.lock().book.save_if_dirty();
    }

    async fn tls_reload_loop(self: Arc<Self>) {
        let mut last_error: Option<String> = None;
        loop {
            let forced = tokio::select! {
                () = self.shutdown.cancelled() => return,
                () = tokio::time::sleep(self.config.tls_reload_interval) => false,
                () = self.tls_reload.notified() => true,
            };
            match self.tls.reload(forced) {
                Ok(true) => {
                    last_error = None;
                    let expiry = self
                        .tls
                        .certificate()
                        .and_then(|cert| crate::tls::seconds_until_expiry(&cert));
                    tracing::info!(
                        cert_file = %self.tls.files().cert_file.display(),
                        expires_in_s = expiry,
                        "TLS certificate reloaded"
                    );
                }
                Ok(false) => {}
                Err(error) => {
                    let text = error.to_string();
                    if forced || last_error.as_deref() != Some(text.as_str()) {
                        tracing::error!(
                            error = %text,
                            "TLS certificate reload failed; keeping the current certificate"
                        );
                    }
                    last_error = Some(text);
                }
            }
        }
    }

    async fn connect(&self, address: &str) -> std::io::Result<TcpStream> {
        let mut last_error = std::io::Error::other("address resolves to nothing");
        for remote in tokio::net::lookup_host(address).await? {
            let socket = if remote.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            socket.set_send_buffer_size(clamp_u32(self.config.send_buffer_size_bytes))?;
            socket.set_recv_buffer_size(clamp_u32(self.config.recv_buffer_size_bytes))?;
            if let Some(ip) = self.bind_ip
                && ip.is_ipv4() == remote.is_ipv4()
            {
                socket.bind(SocketAddr::new(ip, 0))?;
            }
            match socket.connect(remote).await {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    return Ok(stream);
                }
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    async fn dial(self: Arc<Self>, address: String) {
        let result = tokio::select! {
            () = self.shutdown.cancelled() => return,
            result = self.dial_inner(&address) => result,
        };
        let now = Instant::now();
        match result {
            Ok((stream, peer, remote)) => {
                if peer.public_key == self.identity.public_key() {
                    tracing::info!(%address, "Bootstrap address is this node itself; not dialling it again");
                    self.lock().book.dial_found_self(&address);
                    return;
                }
                self.lock().book.dial_succeeded(&address, peer.public_key);
                self.run_peer(stream, peer, Direction::Outbound, remote, Some(address))
                    .await;
            }
            Err(error) => {
                let mut state = self.lock();
                let attempts = state
                    .book
                    .entries
                    .get(&address)
                    .map_or(0, |entry| entry.attempts + 1);
                state.book.dial_failed(
                    &address,
                    self.config.reconnect_interval,
                    self.config.max_reconnect_attempts,
                    now,
                );
                drop(state);
                match error {
                    DialError::Auth(ip, error) => tracing::warn!(
                        %address,
                        attempts,
                        "Authentication failed for peer at {address} ({ip}): {error}"
                    ),
                    DialError::Connect(error) => {
                        if attempts <= 1 || attempts.is_multiple_of(10) {
                            tracing::warn!(%address, attempts, %error, "Cannot connect to peer {address}: {error}");
                        } else {
                            tracing::debug!(%address, attempts, %error, "Cannot connect to peer");
                        }
                    }
                }
            }
        }
    }

    async fn dial_inner(
        &self,
        address: &str,
    ) -> Result<
        (
            tokio_rustls::client::TlsStream<TcpStream>,
            AuthenticatedPeer,
            SocketAddr,
        ),
        DialError,
    > {
        let stream = tokio::time::timeout(self.config.connection_timeout, self.connect(address))
            .await
            .map_err(|_| {
                DialError::Connect(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "connect timed out after {:?}",
                        self.config.connection_timeout
                    ),
                ))
            })?
            .map_err(DialError::Connect)?;
        let remote = stream.peer_addr().map_err(DialError::Connect)?;
        let ip = canonical(remote.ip());
        let host = address
            .rsplit_once(':')
            .map_or(address, |(host, _)| host)
            .trim_start_matches('[')
            .trim_end_matches(']');
        let server_name = ServerName::try_from(host.to_string())
            .or_else(|_| ServerName::try_from("aegis-peer".to_string()))
            .map_err(|error| DialError::Auth(ip, AuthError::Tls(error.to_string())))?;
        let timeout = self.config.handshake_timeout;
        let handshake = async {
            let mut tls = self
                .connector
                .connect(server_name, stream)
                .await
                .map_err(|error| AuthError::Tls(error.to_string()))?;
            let (_, connection) = tls.get_ref();
            let exporter = connection
                .export_keying_material([0u8; EXPORTER_BYTES], EXPORTER_LABEL, None)
                .map_err(|error| AuthError::Exporter(error.to_string()))?;
            let peer = auth::exchange_hello(
                &mut tls,
                &exporter,
                Role::Dialer,
                &self.identity,
                self.local_addr.port(),
            )
            .await?;
            Ok::<_, AuthError>((tls, peer))
        };
        let (tls, peer) = tokio::time::timeout(timeout, handshake)
            .await
            .map_err(|_| DialError::Auth(ip, AuthError::Timeout(timeout)))?
            .map_err(|error| DialError::Auth(ip, error))?;
        Ok((tls, peer, remote))
    }

    /// Adds an authenticated connection to the peer table, applying the duplicate rule:
    /// between two validators, the connection dialled by the lower key is kept, so both
    /// ends choose the same one when they dial each other at the same time.
    fn register(
        &self,
        peer: &AuthenticatedPeer,
        direction: Direction,
        remote: SocketAddr,
        dialed_address: Option<&str>,
    ) -> Registered {
        let own = self.identity.public_key();
        if peer.public_key == own {
            return Registered::SelfConnection;
        }
        let dialer = match direction {
            Direction::Outbound => own,
            Direction::Inbound => peer.public_key,
        };
        let lower = own.0.min(peer.public_key.0);
        let mut state = self.lock();
        if let Some(existing) = state.peers.get(&peer.public_key) {
            let existing_preferred = existing.dialer.0 == lower;
            let new_preferred = dialer.0 == lower;
            if existing_preferred && !new_preferred {
                return Registered::Duplicate;
            }
            existing.cancel.cancel();
            existing.queue.close();
        } else if state.peers.len() >= self.config.max_peers {
            return Registered::Full;
        }
        let now = Instant::now();
        if direction == Direction::Inbound && peer.listen_port != 0 {
            let address = format!(
                "{}:{}",
                bracket(&canonical(remote.ip()).to_string()),
                peer.listen_port
            );
            state
                .book
                .learn(address, peer.public_key, Source::Inbound, now);
        }
        if let Some(address) = dialed_address {
            state
                .book
                .learn(address.to_string(), peer.public_key, Source::Exchange, now);
        }
        let conn_id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let queue = Arc::new(PeerQueue::new(
            self.config.peer_queue_messages,
            self.config.peer_queue_bytes,
        ));
        let cancel = self.shutdown.child_token();
        let replaced = state.peers.insert(
            peer.public_key,
            Peer {
                conn_id,
                id: peer.id,
                direction,
                dialer,
                remote,
                queue: Arc::clone(&queue),
                cancel: cancel.clone(),
                rtt: None,
                since: now,
            },
        );
        if let Some(old) = replaced {
            self.metrics.connection_closed(old.direction);
        } else {
            self.metrics.peers.inc();
        }
        self.queues
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(peer.id, Arc::clone(&queue));
        self.metrics.connection_opened(direction);
        Registered::Yes(queue, cancel, conn_id)
    }

    fn unregister(&self, key: &PublicKey, conn_id: u64) -> bool {
        let mut state = self.lock();
        let mine = state
            .peers
            .get(key)
            .is_some_and(|peer| peer.conn_id == conn_id);
        if !mine {
            return false;
        }
        let removed = state.peers.remove(key);
        if let Some(peer) = &removed {
            self.metrics.peers.dec();
            self.metrics.connection_closed(peer.direction);
            let mut queues = self.queues.write().unwrap_or_else(PoisonError::into_inner);
            if queues
                .get(&peer.id)
                .is_some_and(|q| Arc::ptr_eq(q, &peer.queue))
            {
                queues.remove(&peer.id);
            }
        }
        if let Some(peer) = removed {
            let now = Instant::now();
            // Shorter than one ping round: the peer (or we) refused the session.
            let short_lived = now.saturating_duration_since(peer.since) < SHORT_LIVED;
            state.book.disconnected(
                key,
                short_lived,
                self.config.reconnect_interval,
                self.config.max_reconnect_attempts,
                now,
            );
        }
        true
    }

    fn peer_list_for(&self, recipient: &PublicKey) -> Bytes {
        let state = self.lock();
        let mut peers: Vec<(String, [u8; 32])> = state
            .book
            .known()
            .into_iter()
            .filter(|(_, key)| key != recipient)
            .map(|(address, key)| (address, key.0))
            .collect();
        peers.truncate(MAX_EXCHANGED_PEERS);
        Bytes::from(borsh::to_vec(&PeerList { peers }).unwrap_or_default())
    }

    fn learn_peers(&self, from: &PublicKey, payload: &[u8]) -> Result<(), String> {
        let list =
            PeerList::try_from_slice(payload).map_err(|_| "malformed peer list".to_string())?;
        if list.peers.len() > MAX_EXCHANGED_PEERS {
            return Err(format!("peer list of {} entries", list.peers.len()));
        }
        let own = self.identity.public_key();
        let now = Instant::now();
        let mut state = self.lock();
        for (address, key) in list.peers {
            let key = PublicKey(key);
            if key == own || key == *from || address.len() > MAX_ADDRESS_LEN {
                continue;
            }
            if self.identity.validators().id_of(&key).is_none() {
                continue;
            }
            if state
                .book
                .learn(address.clone(), key, Source::Exchange, now)
            {
                tracing::debug!(%address, "Learned peer address from peer exchange");
            }
        }
        Ok(())
    }

    /// Runs an authenticated connection until it ends, then cleans up.
    async fn run_peer<S>(
        self: &Arc<Self>,
        stream: S,
        peer: AuthenticatedPeer,
        direction: Direction,
        remote: SocketAddr,
        dialed_address: Option<String>,
    ) where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let name = self.name(peer.id);
        let (queue, cancel, conn_id) = match self.register(
            &peer,
            direction,
            remote,
            dialed_address.as_deref(),
        ) {
            Registered::Yes(queue, cancel, conn_id) => (queue, cancel, conn_id),
            Registered::SelfConnection => {
                tracing::debug!("Dropped a connection to this node itself");
                return;
            }
            Registered::Duplicate => {
                tracing::debug!(peer_id = %name, ?direction, "Dropped duplicate connection; keeping the one dialled by the lower key");
                return;
            }
            Registered::Full => {
                self.metrics.rejected("max_peers");
                let ip = canonical(remote.ip());
                tracing::warn!(
                    peer_id = %name,
                    max_peers = self.config.max_peers,
                    "Refused peer from {ip}: max_peers reached"
                );
                return;
            }
        };
        tracing::info!(
            peer_id = %name,
            validator = %peer.id,
            remote = %remote,
            direction = direction.label(),
            "Peer connected"
        );
        queue.push_control(Outgoing {
            kind: RecordKind::Peers,
            tag: 0,
            payload: self.peer_list_for(&peer.public_key),
            priority: Priority::Critical,
        });
        let (reader, writer) = tokio::io::split(stream);
        let pings = Arc::new(Mutex::new(PingState::default()));
        let writer_task =
            tokio::spawn(Arc::clone(self).write_loop(writer, Arc::clone(&queue), cancel.clone()));
        let ping_task = tokio::spawn(Arc::clone(self).ping_loop(
            peer.public_key,
            name.clone(),
            Arc::clone(&queue),
            cancel.clone(),
            Arc::clone(&pings),
        ));
        let ended = self.read_loop(reader, &peer, &queue, &cancel, &pings).await;
        cancel.cancel();
        queue.close();
        let _ = writer_task.await;
        let _ = ping_task.await;
        let removed = self.unregister(&peer.public_key, conn_id);
        let ended = if matches!(ended, Ended::Replaced) && self.shutdown.is_cancelled() {
            Ended::Shutdown
        } else {
            ended
        };
        if let Ended::Protocol(error) = &ended {
            // Bad input from an authenticated peer: same treatment as bad input before
            // authentication (logged with the address, counted), but no ban: the address
            // belongs to a validator, which may be restarted with a fixed build.
            self.metrics.protocol_violations.inc();
            let ip = canonical(remote.ip());
            tracing::warn!(
                peer_id = %name,
                remote = %remote,
                "Protocol violation by peer from {ip}: {error}; disconnected"
            );
        }
        if removed {
            tracing::info!(peer_id = %name, reason = %ended, "Peer disconnected: {ended}");
            if self.lock().peers.is_empty() && !self.shutdown.is_cancelled() {
                let mut state = self.lock();
                state.no_peers_logged = Some(Instant::now());
                drop(state);
                tracing::warn!(address = %self.local_addr, "No peers available");
            }
        } else {
            tracing::debug!(peer_id = %name, reason = %ended, "Superseded connection closed");
        }
    }

    async fn read_loop<R: AsyncRead + Unpin>(
        &self,
        mut reader: R,
        peer: &AuthenticatedPeer,
        queue: &PeerQueue,
        cancel: &CancellationToken,
        pings: &Mutex<PingState>,
    ) -> Ended {
        let mut buffer = BytesMut::with_capacity(self.config.recv_buffer_size_bytes);
        let mut delivery: Vec<Inbound> = Vec::new();
        let max = self.config.max_frame_size_bytes;
        let mut reader =
            tokio::io::BufReader::with_capacity(self.config.recv_buffer_size_bytes, &mut reader);
        loop {
            let frame = tokio::select! {
                () = cancel.cancelled() => return Ended::Replaced,
                frame = wire::read_frame(&mut reader, &mut buffer, max) => frame,
            };
            let frame = match frame {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ended::Closed,
                Err(wire::FrameError::Io(error)) => {
                    return Ended::Error(format!("receive failed: {error}"));
                }
                Err(error) => return Ended::Protocol(error.to_string()),
            };
            self.metrics
                .bytes(Direction::Inbound, frame.len() + wire::LENGTH_PREFIX_BYTES);
            let records = match wire::decode_frame(frame, max) {
                Ok(records) => records,
                Err(error) => return Ended::Protocol(error.to_string()),
            };
            for record in records {
                self.metrics
                    .message(Direction::Inbound, record.kind, record.tag);
                match record.kind {
                    RecordKind::Data => {
                        delivery.push(Inbound {
                            from: peer.id,
                            public_key: peer.public_key,
                            tag: record.tag,
                            payload: record.payload,
                        });
                    }
                    RecordKind::Ping => {
                        queue.push_control(Outgoing {
                            kind: RecordKind::Pong,
                            tag: 0,
                            payload: record.payload,
                            priority: Priority::Critical,
                        });
                    }
                    RecordKind::Pong => {
                        let Ok(nonce) = <[u8; 8]>::try_from(&record.payload[..]) else {
                            return Ended::Protocol("malformed pong".into());
                        };
                        let rtt = pings
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .answered(u64::from_be_bytes(nonce));
                        if let Some(rtt) = rtt {
                            self.metrics.latency.observe(rtt.as_secs_f64());
                            if let Some(entry) = self.lock().peers.get_mut(&peer.public_key) {
                                entry.rtt = Some(rtt);
                            }
                        }
                    }
                    RecordKind::Peers => {
                        if let Err(error) = self.learn_peers(&peer.public_key, &record.payload) {
                            return Ended::Protocol(error);
                        }
                    }
                    RecordKind::Hello => {
                        return Ended::Protocol("second Hello".into());
                    }
                }
            }
            match self.inbound.push_all(&mut delivery, cancel).await {
                Delivered::Yes => {}
                Delivered::NoReceiver => self.metrics.dropped("no_receiver", 1),
                Delivered::Cancelled => return Ended::Replaced,
            }
        }
    }

    async fn write_loop<W: AsyncWrite + Unpin>(
        self: Arc<Self>,
        writer: W,
        queue: Arc<PeerQueue>,
        cancel: CancellationToken,
    ) {
        let result = tokio::select! {
            () = cancel.cancelled() => Ok(()),
            result = self.write_frames(writer, &queue) => result,
        };
        if let Err(error) = result {
            tracing::debug!(%error, "P2P send failed");
        }
        cancel.cancel();
    }

    async fn write_frames<W: AsyncWrite + Unpin>(
        &self,
        writer: W,
        queue: &PeerQueue,
    ) -> std::io::Result<()> {
        let config = &self.config;
        let compression = Compression {
            enabled: config.message_compression,
            threshold_bytes: config.compression_threshold_bytes,
        };
        let max_frame = config.max_frame_size_bytes;
        let mut writer = BufWriter::with_capacity(config.send_buffer_size_bytes, writer);
        let mut builder = FrameBuilder::new();
        let mut batch = Vec::with_capacity(config.batch_size);
        let mut last_flush = Instant::now();
        let mut unflushed = false;
        loop {
            batch.clear();
            if !queue
                .next_batch(&mut batch, config.batch_size, BATCH_BYTES)
                .await
            {
                break;
            }
            for message in batch.drain(..) {
                if !builder.is_empty()
                    && builder.encoded_len() + wire::record_len(message.payload.len()) > max_frame
                {
                    let n = builder.write_to(&mut writer, compression).await?;
                    self.metrics.bytes(Direction::Outbound, n);
                }
                self.metrics
                    .message(Direction::Outbound, message.kind, message.tag);
                builder.push(message.kind, message.tag, &message.payload);
            }
            if !builder.is_empty() {
                let n = builder.write_to(&mut writer, compression).await?;
                self.metrics.bytes(Direction::Outbound, n);
                unflushed = true;
            }
            // Flush when nothing else is waiting (no added latency) or when data has sat in
            // the buffer for flush_interval under sustained load.
            if unflushed && queue.is_empty() {
                // Let senders that are running right now add to this flush: a TLS record
                // and a write system call per message would cost more than the message.
                tokio::task::yield_now().await;
            }
            if unflushed && (queue.is_empty() || last_flush.elapsed() >= config.flush_interval) {
                writer.flush().await?;
                last_flush = Instant::now();
                unflushed = false;
            }
        }
        let _ = writer.shutdown().await;
        Ok(())
    }

    async fn ping_loop(
        self: Arc<Self>,
        key: PublicKey,
        name: String,
        queue: Arc<PeerQueue>,
        cancel: CancellationToken,
        pings: Arc<Mutex<PingState>>,
    ) {
        let mut nonce = 0u64;
        let mut exchange_every = 0u32;
        loop {
            nonce += 1;
            pings
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .sent(nonce, Instant::now());
            queue.push_control(Outgoing {
                kind: RecordKind::Ping,
                tag: 0,
                payload: Bytes::copy_from_slice(&nonce.to_be_bytes()),
                priority: Priority::Critical,
            });
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(self.config.ping_timeout) => {}
            }
            let answered = pings
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .outstanding
                .is_none();
            if !answered {
                tracing::warn!(
                    peer_id = %name,
                    timeout_ms = self.config.ping_timeout.as_millis() as u64,
                    "Peer did not answer ping in time; dropping it and redialling"
                );
                cancel.cancel();
                queue.close();
                return;
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(self.config.ping_interval.saturating_sub(self.config.ping_timeout)) => {}
            }
            exchange_every += 1;
            if exchange_every.is_multiple_of(10) {
                queue.push_control(Outgoing {
                    kind: RecordKind::Peers,
                    tag: 0,
                    payload: self.peer_list_for(&key),
                    priority: Priority::Critical,
                });
            }
        }
    }
}

#[derive(Debug)]
enum DialError {
    Connect(std::io::Error),
    Auth(IpAddr, AuthError),
}

#[derive(Debug, Default)]
struct PingState {
    outstanding: Option<(u64, Instant)>,
}

impl PingState {
    fn sent(&mut self, nonce: u64, at: Instant) {
        self.outstanding = Some((nonce, at));
    }

    fn answered(&mut self, nonce: u64) -> Option<Duration> {
        match self.outstanding {
            Some((expected, at)) if expected == nonce => {
                self.outstanding = None;
                Some(at.elapsed())
            }
            _ => None,
        }
    }
}
