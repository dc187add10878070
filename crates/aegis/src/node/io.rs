//! The node's I/O for the engine's driver: TLS P2P as the transport, the SQL ledger through
//! its group committer, the wall clock with OS randomness, and an observer that logs
//! consensus events for operators. All of it runs on the driver's own thread; async calls go
//! through the runtime's handle (`block_on` is allowed there: that thread is not a runtime
//! worker).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use std::marker::PhantomData;

use aegis_consensus::{Outgoing, Reject};
use aegis_engine::{Clock, FileLog, Io, IoError, Ledger, Observer, Transport};
use aegis_p2p::{Message, P2pNetwork, tags};
use aegis_storage::{BlockSink, CommitTicket};
use aegis_telemetry::{info, warn};
use aegis_types::{Block, CommitCertificate, Hash, ValidatorId, ValidatorSet};
use rand_core::{OsRng, RngCore};
use tokio::runtime::Handle;

use super::NodeShared;
use super::protocol::NodeProtocol;
use super::sync::{SyncHandle, VoteFence};

/// The node's I/O types for `Driver<P, NodeIo<P>>`.
#[derive(Debug)]
pub struct NodeIo<P>(PhantomData<fn() -> P>);

impl<P: NodeProtocol> Io<P> for NodeIo<P> {
    type Transport = P2pTransport;
    type Log = FileLog<P::Persisted>;
    type Ledger = SinkLedger;
    type Clock = WallClock;
    type Observer = NodeObserver;
}

/// Consensus messages over the P2P layer, and the core's sync requests to the syncer. Sends
/// never wait: a peer whose queue is full or who is not connected misses the message, and
/// the core retransmits what matters (PBFT assumes a lossy network, §4.1). While the vote
/// fence is raised (the node lost its consensus log), nothing is sent.
#[derive(Debug)]
pub struct P2pTransport {
    pub network: P2pNetwork,
    sync: SyncHandle,
    fence: Arc<VoteFence>,
    shared: Arc<NodeShared>,
    /// When a consensus message too large for one P2P frame was last logged.
    oversize_logged: Option<std::time::Instant>,
}

/// A consensus message too large to send is logged at most this often (the core
/// retransmits it).
pub const OVERSIZE_LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

impl P2pTransport {
    pub fn new(
        network: P2pNetwork,
        sync: SyncHandle,
        fence: Arc<VoteFence>,
        shared: Arc<NodeShared>,
    ) -> P2pTransport {
        P2pTransport {
            network,
            sync,
            fence,
            shared,
            oversize_logged: None,
        }
    }
}

impl<M: borsh::BorshSerialize> Transport<M> for P2pTransport {
    fn send(&mut self, message: Outgoing<M>) {
        if !self.fence.allows(self.shared.stored_height()) {
            return;
        }
        let (to, message) = match message {
            Outgoing::To(to, message) => (Some(to), message),
            Outgoing::All(message) => (None, message),
        };
        let bytes = aegis_types::encoding::encode(&message);
        let max = self.network.max_payload_bytes();
        if bytes.len() > max
            && self
                .oversize_logged
                .is_none_or(|at| at.elapsed() >= OVERSIZE_LOG_INTERVAL)
        {
            self.oversize_logged = Some(std::time::Instant::now());
            // The P2P layer drops it (aegis_p2p_dropped_messages_total{reason="too_large"}).
            aegis_telemetry::error!(
                bytes = bytes.len(),
                max_bytes = max,
                "Consensus message of {} bytes does not fit in one P2P frame ({max} bytes, \
                 p2p.max_frame_size) and is not sent: a VIEW-CHANGE or NEW-VIEW carries every \
                 batch above the stable checkpoint (docs/performance.md, \"View changes under \
                 load\")",
                bytes.len()
            );
        }
        let message = Message::new(tags::CONSENSUS, bytes);
        match to {
            Some(to) => {
                // Not connected or a full queue: retransmission covers it.
                let _ = self.network.try_send(to, message);
            }
            None => {
                self.network.broadcast(message);
            }
        }
    }

    fn request_sync(&mut self, from_height: u64) {
        self.sync.wanted(from_height);
    }
}

/// What the node announces about a block once it is durable (its event, the metrics, the
/// height `/health` reports), taken from the block when it is handed to storage.
#[derive(Debug)]
pub struct StoredBlock {
    pub height: u64,
    pub hash: Hash,
    pub timestamp_ms: u64,
    pub tx_ids: Vec<Hash>,
}

impl StoredBlock {
    fn of(block: &Block) -> StoredBlock {
        StoredBlock {
            height: block.height(),
            hash: block.hash(),
            timestamp_ms: block.header.timestamp_ms,
            tx_ids: block.tx_ids(),
        }
    }
}

/// The ledger through the group committer: appends are submitted in order and acknowledged
/// by tickets; a flush waits for every ticket, so one storage transaction (one disk sync)
/// covers many blocks. Blocks at or below the stored height (replayed at start) are skipped.
pub struct SinkLedger {
    runtime: Handle,
    store: aegis_storage::SqlStore,
    sink: Box<dyn BlockSink>,
    tickets: VecDeque<(StoredBlock, CommitTicket)>,
    /// Height of the last block handed to the sink.
    queued_height: u64,
    shared: Arc<NodeShared>,
}

impl std::fmt::Debug for SinkLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkLedger")
            .field("queued_height", &self.queued_height)
            .field("tickets", &self.tickets.len())
            .finish_non_exhaustive()
    }
}

/// Most blocks in one storage transaction of the group committer.
pub const GROUP_COMMIT_BLOCKS: usize = 128;

impl SinkLedger {
    pub fn new(
        runtime: Handle,
        store: aegis_storage::SqlStore,
        shared: Arc<NodeShared>,
    ) -> Result<SinkLedger, IoError> {
        use aegis_storage::Ledger as _;
        let height = runtime.block_on(store.height())?;
        let sink = {
            let _entered = runtime.enter();
            store.group_commit(GROUP_COMMIT_BLOCKS)?
        };
        Ok(SinkLedger {
            runtime,
            store,
            sink,
            tickets: VecDeque::new(),
            queued_height: height,
            shared,
        })
    }

    /// Stops the group committer once everything queued is stored.
    pub fn finish(self) {
        let SinkLedger { runtime, sink, .. } = self;
        if let Err(error) = runtime.block_on(sink.finish()) {
            warn!(error = %error, "The ledger's group committer stopped with an error");
        }
    }
}

impl Ledger for SinkLedger {
    fn append(&mut self, block: Block, certificate: CommitCertificate) -> Result<(), IoError> {
        let height = block.height();
        if height <= self.queued_height {
            return Ok(());
        }
        let started = std::time::Instant::now();
        // What the node announces once the block is durable; the block itself goes to the
        // sink (no copy of its transactions waits here).
        let stored = StoredBlock::of(&block);
        let ticket = self
            .runtime
            .block_on(self.sink.submit(block, &certificate))?;
        self.shared
            .metrics
            .storage_submit_seconds(started.elapsed().as_secs_f64());
        self.queued_height = height;
        self.tickets.push_back((stored, ticket));
        Ok(())
    }

    fn flush(&mut self) -> Result<(), IoError> {
        let started = std::time::Instant::now();
        let mut stored = Vec::with_capacity(self.tickets.len());
        while let Some((block, ticket)) = self.tickets.pop_front() {
            self.runtime.block_on(ticket.wait())?;
            stored.push(block);
        }
        if !stored.is_empty() {
            self.shared
                .metrics
                .storage_write_seconds(started.elapsed().as_secs_f64());
            self.shared.blocks_stored(stored);
        }
        Ok(())
    }

    fn height(&self) -> Result<u64, IoError> {
        Ok(self.queued_height)
    }

    fn block(&self, height: u64) -> Result<Option<(Block, CommitCertificate)>, IoError> {
        use aegis_storage::Ledger as _;
        let stored = self.runtime.block_on(self.store.block_by_height(height))?;
        Ok(stored.map(|stored| (stored.block, stored.certificate)))
    }
}

/// The wall clock, and randomness from the OS.
#[derive(Debug, Default)]
pub struct WallClock;

impl Clock for WallClock {
    fn now_ms(&mut self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    fn entropy(&mut self) -> u64 {
        OsRng.next_u64()
    }
}

/// Consensus events for operators: JSON log lines with the words the troubleshooting guide
/// greps for (consensus, byzantine, view change), and the metrics.
#[derive(Debug)]
pub struct NodeObserver {
    pub shared: Arc<NodeShared>,
    pub validators: ValidatorSet,
    /// To name the address a misbehaving peer connects from.
    pub network: P2pNetwork,
}

impl NodeObserver {
    fn name(&self, id: ValidatorId) -> String {
        self.validators
            .get(id)
            .map_or_else(|| id.to_string(), |v| v.name.clone())
    }

    /// The address validator `id` is connected from, if it is.
    fn address(&self, id: ValidatorId) -> Option<String> {
        self.network
            .peers()
            .into_iter()
            .find(|peer| peer.id == id)
            .map(|peer| peer.remote_addr.ip().to_string())
    }
}

impl<P: NodeProtocol> Observer<P> for NodeObserver {
    fn rejected(&mut self, from: Option<ValidatorId>, reason: &P::Reject) {
        let peer_id = from.map(|id| self.name(id));
        self.shared
            .metrics
            .rejected(reason.label(), reason.is_byzantine_evidence());
        if reason.is_byzantine_evidence() {
            let ip = from.and_then(|id| self.address(id));
            warn!(
                peer_id = peer_id.as_deref().unwrap_or("sync"),
                peer_ip = ip.as_deref().unwrap_or("-"),
                reason = reason.label(),
                "Consensus: byzantine evidence from {} ({}): {reason}",
                peer_id.as_deref().unwrap_or("a synced block"),
                ip.as_deref().unwrap_or("address unknown")
            );
        } else {
            aegis_telemetry::debug!(
                peer_id = peer_id.as_deref().unwrap_or("sync"),
                reason = reason.label(),
                "Consensus message refused: {reason}"
            );
        }
    }

    fn leader_suspected(&mut self, epoch: u64) {
        self.shared.metrics.view_change();
        if P::ALGORITHM == "raft" {
            warn!(
                view = epoch,
                "Consensus election started: campaigning in term {epoch}"
            );
        } else {
            warn!(
                view = epoch,
                "Consensus view change started: moving to view {epoch}"
            );
        }
    }

    fn leader_changed(&mut self, epoch: u64, leader: ValidatorId) {
        let primary = self.name(leader);
        self.shared.metrics.view(epoch);
        if P::ALGORITHM == "raft" {
            info!(view = epoch, primary = %primary, "Consensus leader: {primary} leads term {epoch}");
        } else {
            info!(view = epoch, primary = %primary, "Consensus view change done: view {epoch}, primary {primary}");
        }
    }

    fn committed(&mut self, block: &Block, _certificate: &CommitCertificate) {
        aegis_telemetry::debug!(
            height = block.height(),
            transactions = block.txs.len(),
            "Consensus committed block {}",
            block.height()
        );
    }
}
