//! The syncer: a task that fetches committed blocks from peers when this node is behind.
//!
//! It learns each peer's head (every sync reply carries it; a head probe goes to every peer
//! every [`SYNC_PROBE_INTERVAL`]) and starts a sync session when the node is behind: at
//! start, when the core asks ([`SyncEvent::Wanted`]), or when peers' heads of the previous
//! probe round are still above the ledger. A session splits the heights it lacks into ranges
//! of [`MAX_SYNC_BLOCKS`] and keeps up to [`MAX_SYNC_IN_FLIGHT`] of them in flight across
//! the peers that have them (at most [`MAX_SYNC_IN_FLIGHT_PER_PEER`] each). A reply is
//! checked as a whole, certificates in one batch verification, before any of it is kept; a
//! reply that fails is evidence against its sender (counted, logged, the peer left out of
//! sync for [`INVALID_PEER_EXCLUSION`]) and its range goes to another peer. A peer that
//! does not answer in [`SYNC_REQUEST_TIMEOUT`] gets a strike; [`SYNC_STRIKES`] in a row leave
//! it out for [`SLOW_PEER_EXCLUSION`]. Checked ranges wait in a reorder buffer and go to the
//! engine in height order, never more than [`SYNC_WINDOW_BLOCKS`] beyond the stored ledger.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aegis_crypto::verify_commit_certificates;
use aegis_p2p::{Message, P2pNetwork, tags};
use aegis_telemetry::{debug, info, warn};
use aegis_types::{Block, CommitCertificate, ValidatorId, ValidatorSet};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{MAX_SYNC_BLOCKS, SyncMessage, VoteFence};
use crate::node::NodeShared;

/// Events waiting for the syncer, at most (replies beyond it are dropped: their requests
/// time out and go to another peer).
pub const SYNC_EVENTS: usize = 256;
/// Block ranges requested and not answered, at most, over all peers.
pub const MAX_SYNC_IN_FLIGHT: usize = 8;
/// Block ranges requested from one peer and not answered, at most.
pub const MAX_SYNC_IN_FLIGHT_PER_PEER: usize = 2;
/// Most blocks fetched beyond the stored ledger (in flight, in the reorder buffer, or
/// handed to the engine and not stored yet).
pub const SYNC_WINDOW_BLOCKS: u64 = 1_024;
/// Chunks of blocks handed to the engine and not taken yet, at most.
pub const SYNC_DELIVERY_CHUNKS: usize = 8;
/// A request not answered in this time goes to another peer.
pub const SYNC_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Every peer is asked for its head this often.
pub const SYNC_PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// How often the syncer checks timeouts and the engine's progress.
pub const SYNC_TICK: Duration = Duration::from_millis(50);
/// Requests in a row a peer leaves unanswered before it is left out of sync for a while.
pub const SYNC_STRIKES: u32 = 3;
/// How long a peer that stopped answering is left out of sync.
pub const SLOW_PEER_EXCLUSION: Duration = Duration::from_secs(60);
/// How long a peer that served an invalid block is left out of sync.
pub const INVALID_PEER_EXCLUSION: Duration = Duration::from_secs(600);

type Blocks = Vec<(Block, CommitCertificate)>;

/// What the syncer hears of.
#[derive(Debug)]
pub enum SyncEvent {
    /// The core saw evidence that the network is past `from_height - 1`.
    Wanted { from_height: u64 },
    /// A peer's answer to a request or a head probe.
    Reply {
        from: ValidatorId,
        from_height: u64,
        head: u64,
        blocks: Blocks,
    },
}

/// How the transport and the dispatcher reach the syncer. Never waits.
#[derive(Clone, Debug)]
pub struct SyncHandle {
    events: mpsc::Sender<SyncEvent>,
}

impl SyncHandle {
    /// The core asks for blocks from `from_height` on.
    pub fn wanted(&self, from_height: u64) {
        // Full: the syncer is busy with replies and probes peers anyway.
        let _ = self.events.try_send(SyncEvent::Wanted { from_height });
    }

    /// A peer's sync reply. Dropped when the syncer's queue is full (the request times out
    /// and goes elsewhere).
    pub fn reply(&self, from: ValidatorId, from_height: u64, head: u64, blocks: Blocks) {
        if self
            .events
            .try_send(SyncEvent::Reply {
                from,
                from_height,
                head,
                blocks,
            })
            .is_err()
        {
            debug!(peer_id = %from, from_height, "Sync reply dropped: the syncer's queue is full");
        }
    }
}

#[derive(Debug)]
struct Peer {
    name: String,
    /// The head it reported last in this run.
    head: Option<u64>,
    in_flight: usize,
    strikes: u32,
    excluded_until: Option<Instant>,
}

impl Peer {
    fn usable(&self, now: Instant) -> bool {
        self.excluded_until.is_none_or(|until| until <= now)
    }
}

#[derive(Debug)]
struct Request {
    peer: ValidatorId,
    last: u64,
    sent: Instant,
}

#[derive(Debug)]
struct Session {
    started: Instant,
    from: u64,
    target: u64,
    /// The target when the session started (it drops when the peers that claimed it are
    /// left out).
    wanted: u64,
    blocks: u64,
    served: BTreeMap<String, u64>,
}

/// The syncer's state; [`Syncer::run`] drives it.
#[derive(Debug)]
pub struct Syncer {
    network: P2pNetwork,
    events: mpsc::Receiver<SyncEvent>,
    out: mpsc::Sender<Blocks>,
    shared: Arc<NodeShared>,
    fence: Arc<VoteFence>,
    /// Slots beyond its ledger a validator may have voted for (the fence's margin).
    fence_window: u64,
    chain_id: String,
    validators: ValidatorSet,
    peers: HashMap<ValidatorId, Peer>,
    /// Requests in flight, by their first height.
    requests: BTreeMap<u64, Request>,
    /// Ranges (first, last) to request again.
    retry: BTreeSet<(u64, u64)>,
    /// Highest height requested in this session.
    requested_through: u64,
    /// Checked ranges waiting for their turn, by first height.
    ready: BTreeMap<u64, Blocks>,
    /// The next height to hand to the engine.
    next_deliver: u64,
    session: Option<Session>,
    last_probe: Option<Instant>,
    /// Highest head reported before the last probe round: still above the ledger at the
    /// next one means the node does not keep up by itself.
    probe_mark: u64,
    /// Sync as soon as any peer is ahead (at start, and when the core asked).
    eager: bool,
}

/// What a [`Syncer`] needs besides the network and the engine's channel.
#[derive(Debug)]
pub struct SyncerConfig {
    pub chain_id: String,
    pub validators: ValidatorSet,
    pub fence: Arc<VoteFence>,
    pub fence_window: u64,
}

impl Syncer {
    /// A syncer, its handle, and the channel of checked blocks in height order.
    pub fn new(
        network: P2pNetwork,
        shared: Arc<NodeShared>,
        config: SyncerConfig,
    ) -> (Syncer, SyncHandle, mpsc::Receiver<Blocks>) {
        let (events_tx, events) = mpsc::channel(SYNC_EVENTS);
        let (out, blocks) = mpsc::channel(SYNC_DELIVERY_CHUNKS);
        let next_deliver = shared.stored_height() + 1;
        let syncer = Syncer {
            network,
            events,
            out,
            shared,
            fence: config.fence,
            fence_window: config.fence_window,
            chain_id: config.chain_id,
            validators: config.validators,
            peers: HashMap::new(),
            requests: BTreeMap::new(),
            retry: BTreeSet::new(),
            requested_through: 0,
            ready: BTreeMap::new(),
            next_deliver,
            session: None,
            last_probe: None,
            probe_mark: 0,
            eager: true,
        };
        (syncer, SyncHandle { events: events_tx }, blocks)
    }

    /// Runs until `stop` is cancelled or the engine's channel closes.
    pub async fn run(mut self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(SYNC_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                event = self.events.recv() => match event {
                    Some(event) => self.on_event(event),
                    None => return,
                },
                _ = tick.tick() => self.on_tick(),
            }
            if !self.advance() {
                return;
            }
        }
    }

    fn on_event(&mut self, event: SyncEvent) {
        match event {
            SyncEvent::Wanted { from_height } => {
                debug!(from_height, "Sync wanted by the consensus core");
                self.eager = true;
                // Ask every peer for its head now rather than at the next round.
                self.last_probe = None;
            }
            SyncEvent::Reply {
                from,
                from_height,
                head,
                blocks,
            } => self.on_reply(from, from_height, head, blocks),
        }
    }

    fn peer(&mut self, id: ValidatorId) -> &mut Peer {
        let name = self
            .validators
            .get(id)
            .map_or_else(|| id.to_string(), |v| v.name.clone());
        self.peers.entry(id).or_insert_with(|| Peer {
            name,
            head: None,
            in_flight: 0,
            strikes: 0,
            excluded_until: None,
        })
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        // Requests not answered in time go elsewhere.
        let expired: Vec<u64> = self
            .requests
            .iter()
            .filter(|(_, request)| now.duration_since(request.sent) >= SYNC_REQUEST_TIMEOUT)
            .map(|(first, _)| *first)
            .collect();
        for first in expired {
            if let Some(request) = self.requests.remove(&first) {
                self.retry.insert((first, request.last));
                let peer = self.peer(request.peer);
                peer.in_flight = peer.in_flight.saturating_sub(1);
                self.strike(request.peer, now);
            }
        }
        if self
            .last_probe
            .is_none_or(|at| now.duration_since(at) >= SYNC_PROBE_INTERVAL)
        {
            self.probe(now);
        }
    }

    /// Asks every connected, usable peer for its head (a request for no block at height 0,
    /// which no block request uses).
    fn probe(&mut self, now: Instant) {
        let stored = self.shared.stored_height();
        let target = self.best_head(now);
        if target <= stored && self.last_probe.is_some() && self.session.is_none() {
            self.eager = false;
        }
        self.probe_mark = target;
        self.last_probe = Some(now);
        let request = aegis_types::encoding::encode(&SyncMessage::Request {
            from_height: 0,
            max_blocks: 0,
        });
        for info in self.network.peers() {
            if !self.peer(info.id).usable(now) {
                continue;
            }
            let _ = self
                .network
                .try_send(info.id, Message::bulk(tags::SYNC, request.clone()));
        }
    }

    /// The highest head a usable peer reported.
    fn best_head(&self, now: Instant) -> u64 {
        self.peers
            .values()
            .filter(|peer| peer.usable(now))
            .filter_map(|peer| peer.head)
            .max()
            .unwrap_or(0)
    }

    fn strike(&mut self, id: ValidatorId, now: Instant) {
        let peer = self.peer(id);
        peer.strikes += 1;
        if peer.strikes >= SYNC_STRIKES {
            peer.strikes = 0;
            let name = peer.name.clone();
            info!(
                peer_id = %name,
                "Sync: {name} left {SYNC_STRIKES} requests in a row unanswered; it is left out of sync for {} s",
                SLOW_PEER_EXCLUSION.as_secs()
            );
            self.exclude(id, now + SLOW_PEER_EXCLUSION);
        }
    }

    /// Leaves `id` out of sync until `until`; its requests go to others.
    fn exclude(&mut self, id: ValidatorId, until: Instant) {
        let peer = self.peer(id);
        peer.excluded_until = Some(until);
        peer.head = None;
        peer.in_flight = 0;
        let theirs: Vec<u64> = self
            .requests
            .iter()
            .filter(|(_, request)| request.peer == id)
            .map(|(first, _)| *first)
            .collect();
        for first in theirs {
            if let Some(request) = self.requests.remove(&first) {
                self.retry.insert((first, request.last));
            }
        }
    }

    fn on_reply(&mut self, from: ValidatorId, from_height: u64, head: u64, blocks: Blocks) {
        let now = Instant::now();
        if !self.peer(from).usable(now) {
            return;
        }
        self.peer(from).head = Some(head);
        let request = match self.requests.get(&from_height) {
            Some(request) if request.peer == from => self.requests.remove(&from_height),
            // A head probe, or an answer that came after its request went elsewhere.
            _ => None,
        };
        let Some(request) = request else {
            return;
        };
        let peer = self.peer(from);
        peer.in_flight = peer.in_flight.saturating_sub(1);
        if let Err((height, why)) = self.check(from_height, request.last, &blocks) {
            self.invalid(from, height, &why, now);
            self.retry.insert((from_height, request.last));
            return;
        }
        let count = blocks.len() as u64;
        if count == 0 {
            self.retry.insert((from_height, request.last));
            if head >= from_height {
                // It claims the blocks and sends none.
                self.strike(from, now);
            }
            return;
        }
        let last = from_height + count - 1;
        if last < request.last {
            // A reply stops at its byte limit: the rest is asked for again.
            self.retry.insert((last + 1, request.last));
        }
        let peer = self.peer(from);
        peer.strikes = 0;
        let name = peer.name.clone();
        if let Some(session) = &mut self.session {
            *session.served.entry(name).or_default() += count;
            session.blocks += count;
        }
        self.shared.metrics.blocks_fetched(count as usize);
        self.ready.insert(from_height, blocks);
    }

    /// Checks a reply to a request for `first..=last` as a whole: the heights asked for, in
    /// order, well formed, of this chain, linked, each with its own certificate, and every
    /// certificate signed by a quorum of the genesis validators (one batch verification).
    /// Names the first bad height and what is wrong with it.
    fn check(&self, first: u64, last: u64, blocks: &Blocks) -> Result<(), (u64, String)> {
        let asked = last - first + 1;
        if blocks.len() as u64 > asked {
            return Err((
                first,
                format!("{} blocks for a request of {asked}", blocks.len()),
            ));
        }
        let mut previous = None;
        for (offset, (block, certificate)) in blocks.iter().enumerate() {
            let height = first + offset as u64;
            if block.height() != height {
                return Err((
                    height,
                    format!("the block there has height {}", block.height()),
                ));
            }
            if let Err(error) = block.check_structure() {
                return Err((height, format!("the block is malformed: {error}")));
            }
            if block.header.chain_id != self.chain_id {
                return Err((
                    height,
                    format!("the block is of chain {:?}", block.header.chain_id),
                ));
            }
            if previous.is_some_and(|hash| block.header.prev_hash != hash) {
                return Err((
                    height,
                    "the block does not link to the block before it".to_owned(),
                ));
            }
            let hash = block.hash();
            if certificate.height != height || certificate.block_hash != hash {
                return Err((
                    height,
                    "its commit certificate is for another block".to_owned(),
                ));
            }
            previous = Some(hash);
        }
        let certificates: Vec<CommitCertificate> =
            blocks.iter().map(|(_, cert)| cert.clone()).collect();
        verify_commit_certificates(&certificates, &self.chain_id, &self.validators).map_err(
            |(index, error)| {
                (
                    first + index as u64,
                    format!("its commit certificate does not verify: {error}"),
                )
            },
        )
    }

    fn invalid(&mut self, from: ValidatorId, height: u64, why: &str, now: Instant) {
        self.shared.metrics.sync.invalid_blocks.inc();
        let name = self.peer(from).name.clone();
        let ip = self
            .network
            .peers()
            .into_iter()
            .find(|peer| peer.id == from)
            .map_or_else(
                || "address unknown".to_owned(),
                |peer| peer.remote_addr.ip().to_string(),
            );
        warn!(
            peer_id = %name,
            peer_ip = %ip,
            height,
            "Sync: byzantine evidence: {name} ({ip}) served an invalid block at height {height}: {why}; the block is dropped and {name} is left out of sync for {} s",
            INVALID_PEER_EXCLUSION.as_secs()
        );
        self.exclude(from, now + INVALID_PEER_EXCLUSION);
    }

    /// Follows the stored ledger, hands checked blocks to the engine, starts and ends
    /// sessions, keeps requests in flight, and moves the vote fence. False when the engine
    /// is gone.
    fn advance(&mut self) -> bool {
        let now = Instant::now();
        let stored = self.shared.stored_height();
        if self.next_deliver <= stored {
            // Consensus (or an earlier delivery) stored these: nothing below is needed.
            self.next_deliver = stored + 1;
            self.ready = self
                .ready
                .split_off(&(stored + 1).saturating_sub(u64::from(MAX_SYNC_BLOCKS)));
            self.retry.retain(|(_, last)| *last > stored);
        }
        if !self.deliver() {
            return false;
        }
        self.session_bounds(now, stored);
        self.request(now, stored);
        self.move_fence(now, stored);
        true
    }

    /// Hands the ready blocks that come next to the engine, in order, while it takes them.
    fn deliver(&mut self) -> bool {
        while let Some(entry) = self.ready.first_entry() {
            let first = *entry.key();
            if first > self.next_deliver {
                break;
            }
            let mut blocks = entry.remove();
            let skip = (self.next_deliver - first) as usize;
            if skip >= blocks.len() {
                continue;
            }
            blocks.drain(..skip);
            let count = blocks.len() as u64;
            match self.out.try_send(blocks) {
                Ok(()) => self.next_deliver += count,
                Err(mpsc::error::TrySendError::Full(blocks)) => {
                    self.ready.insert(self.next_deliver, blocks);
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return false,
            }
        }
        true
    }

    fn session_bounds(&mut self, now: Instant, stored: u64) {
        let best = self.best_head(now);
        if let Some(session) = &mut self.session
            && best < session.target
        {
            // The peers that claimed more were left out: sync to what the others have.
            session.target = best.max(stored);
            self.shared.set_sync_target(session.target);
        }
        if let Some(session) = self.session.take_if(|session| stored >= session.target) {
            let seconds = session.started.elapsed().as_secs_f64().max(0.001);
            let served: Vec<String> = session
                .served
                .iter()
                .map(|(name, blocks)| format!("{name}: {blocks}"))
                .collect();
            let served = if served.is_empty() {
                "none".to_owned()
            } else {
                served.join(", ")
            };
            if stored >= session.wanted {
                info!(
                    height = stored,
                    blocks = session.blocks,
                    seconds,
                    "Sync finished at height {stored}: {} blocks from peers ({served}) in {seconds:.1} s, {:.0} blocks/s",
                    session.blocks,
                    (stored + 1).saturating_sub(session.from) as f64 / seconds
                );
                self.eager = false;
            } else {
                // Sync again as soon as a usable peer has more.
                warn!(
                    height = stored,
                    target = session.wanted,
                    "Sync stopped at height {stored} short of {}: no usable peer has those blocks now ({} fetched from {served})",
                    session.wanted,
                    session.blocks
                );
                self.eager = true;
            }
            self.retry.clear();
            self.shared.set_sync_target(0);
        }
        if self.session.is_some() {
            return;
        }
        let target = self.best_head(now);
        let behind = target > stored && (self.eager || stored < self.probe_mark);
        if !behind {
            return;
        }
        let from = stored + 1;
        let peers: Vec<String> = self
            .peers
            .values()
            .filter(|peer| peer.usable(now) && peer.head.is_some_and(|head| head >= from))
            .map(|peer| peer.name.clone())
            .collect();
        info!(
            height = stored,
            target,
            "Sync started: {} blocks behind, fetching heights {from}..={target} from {}",
            target - stored,
            peers.join(", ")
        );
        self.session = Some(Session {
            started: now,
            from,
            target,
            wanted: target,
            blocks: 0,
            served: BTreeMap::new(),
        });
        self.requested_through = stored;
        self.shared.set_sync_target(target);
    }

    /// Keeps up to [`MAX_SYNC_IN_FLIGHT`] ranges requested from the peers that have them.
    fn request(&mut self, now: Instant, stored: u64) {
        let Some(session) = &self.session else {
            return;
        };
        let limit = session.target.min(stored + SYNC_WINDOW_BLOCKS);
        self.requested_through = self.requested_through.max(self.next_deliver - 1);
        while self.requests.len() < MAX_SYNC_IN_FLIGHT {
            let (first, last) = if let Some(range) = self.retry.pop_first() {
                range
            } else if self.requested_through < limit {
                let first = self.requested_through + 1;
                let last = (first + u64::from(MAX_SYNC_BLOCKS) - 1).min(limit);
                self.requested_through = last;
                (first, last)
            } else {
                break;
            };
            let first = first.max(self.next_deliver);
            if first > last {
                continue;
            }
            let Some(peer) = self.pick(first, now) else {
                self.retry.insert((first, last));
                break;
            };
            let request = aegis_types::encoding::encode(&SyncMessage::Request {
                from_height: first,
                max_blocks: (last - first + 1) as u32,
            });
            if self
                .network
                .try_send(peer, Message::bulk(tags::SYNC, request))
                .is_err()
            {
                self.retry.insert((first, last));
                self.strike(peer, now);
                break;
            }
            self.peer(peer).in_flight += 1;
            self.requests.insert(
                first,
                Request {
                    peer,
                    last,
                    sent: now,
                },
            );
        }
    }

    /// The connected, usable peer with a head at `first` or above and the fewest requests.
    fn pick(&self, first: u64, now: Instant) -> Option<ValidatorId> {
        self.network
            .peers()
            .into_iter()
            .filter_map(|info| {
                let peer = self.peers.get(&info.id)?;
                (peer.usable(now)
                    && peer.in_flight < MAX_SYNC_IN_FLIGHT_PER_PEER
                    && peer.head.is_some_and(|head| head >= first))
                .then_some((peer.in_flight, peer.strikes, info.id))
            })
            .min()
            .map(|(_, _, id)| id)
    }

    /// Sets the height of a raised vote fence once f+1 peers told their heads, and lifts it
    /// once the ledger reaches it.
    fn move_fence(&mut self, now: Instant, stored: u64) {
        if self.fence.height_unknown() {
            let heads: Vec<u64> = self
                .peers
                .values()
                .filter(|peer| peer.usable(now))
                .filter_map(|peer| peer.head)
                .collect();
            if heads.len() > self.validators.max_faulty() {
                let head = heads.iter().copied().max().unwrap_or(0).max(stored);
                let until = head + self.fence_window;
                self.fence.set_height(until);
                warn!(
                    height = stored,
                    fence = until,
                    "Vote fence: this validator lost its consensus log, so it may have voted for slots it no longer knows of; it will not vote until its ledger reaches height {until} (peers' head {head} + log window {})",
                    self.fence_window
                );
            }
        } else if let Some(until) = self.fence.height()
            && stored >= until
        {
            self.fence.lift();
            info!(
                height = stored,
                "Vote fence lifted at height {stored}: this validator votes again"
            );
        }
    }
}
