//! The running node's consensus side: the engine's driver on its own thread ([`engine`]) over
//! TLS P2P, the consensus log under `data/consensus/` and the SQL ledger's group committer
//! ([`io`]); a dispatcher task that turns P2P messages into commands for it; block sync
//! ([`sync`]); and the [`NodeApi`] the HTTP endpoints use.

pub mod engine;
pub mod io;
pub mod metrics;
pub mod protocol;
pub mod sync;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use aegis_api::{ApiError, CommittedBlock, ConsensusView, NodeApi, NodeFuture, SyncState};
use aegis_consensus::pbft::Pbft;
use aegis_consensus::raft::Raft;
use aegis_consensus::verifier::{Remembered, SignatureCheck};
use aegis_engine::{Driver, DriverConfig, FileLog, Parts};
use aegis_mempool::{Admission, Mempool, MempoolConfig};
use aegis_p2p::{Inbox, P2pNetwork, tags};
use aegis_telemetry::{info, warn};
use aegis_types::{Block, Hash, Transaction, ValidatorId};
use anyhow::Context;
use tokio::sync::{Semaphore, broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::preflight::Preflight;
use engine::{COMMAND_QUEUE, Command, MAX_GOSSIP_TXS, NodeDriver};
use io::{NodeObserver, P2pTransport, SinkLedger, StoredBlock, WallClock};
use metrics::NodeMetrics;
use protocol::NodeProtocol;
use sync::{SyncHandle, SyncMessage, Syncer, VoteFence, fetch::SyncerConfig};

/// Committed blocks kept for slow event subscribers before they are told they lagged.
pub const EVENTS_CHANNEL: usize = 1_024;
/// Sync requests served at once; further ones wait (each reads up to 64 blocks).
pub const MAX_SYNC_SERVING: usize = 4;
/// Behind the network with no commit for this long: `sync_status` is `stalled`.
pub const STALLED_AFTER: Duration = Duration::from_secs(30);

/// What the engine's thread, the dispatcher and the HTTP endpoints share.
#[derive(Debug)]
pub struct NodeShared {
    pub metrics: NodeMetrics,
    /// Signatures verified once (at admission, or in a proposal), never verified again.
    pub verified: Arc<Remembered>,
    view: RwLock<ConsensusView>,
    events: broadcast::Sender<Arc<CommittedBlock>>,
    running: AtomicBool,
    stopping: AtomicBool,
    /// Validator names by id, for `primary` and log lines.
    names: Vec<String>,
    /// Last stored height, and when it last moved.
    height: AtomicU64,
    last_commit: RwLock<Option<(Instant, u64)>>,
    ledger: Arc<aegis_api::LedgerStatus>,
    /// The height the current sync session fetches up to (0: no session).
    sync_target: AtomicU64,
    /// Bytes of peers' forwarded transactions in the command queue, at most
    /// [`engine::MAX_QUEUED_FORWARDED_BYTES`].
    forwarded_bytes: AtomicUsize,
    /// Bytes of this node's clients' submissions waiting for the engine's answer, at most
    /// [`engine::MAX_QUEUED_SUBMITTED_BYTES`].
    submitted_bytes: AtomicUsize,
}

impl NodeShared {
    fn new(names: Vec<String>, genesis_hash: Hash, ledger: Arc<aegis_api::LedgerStatus>) -> Self {
        let (events, _) = broadcast::channel(EVENTS_CHANNEL);
        NodeShared {
            metrics: NodeMetrics::default(),
            verified: Arc::new(Remembered::default()),
            view: RwLock::new(ConsensusView {
                algorithm: "pbft",
                running: false,
                height: 0,
                latest_hash: genesis_hash,
                view: 0,
                primary: None,
                role: "follower",
                sync: SyncState::Synced,
                network_height: 0,
                mempool_transactions: 0,
                mempool_bytes: 0,
                last_commit_ms: None,
            }),
            events,
            running: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            names,
            height: AtomicU64::new(0),
            last_commit: RwLock::new(None),
            ledger,
            sync_target: AtomicU64::new(0),
            forwarded_bytes: AtomicUsize::new(0),
            submitted_bytes: AtomicUsize::new(0),
        }
    }

    /// Charges `bytes` of a forwarded batch to the command queue's budget; `false` (nothing
    /// charged) when it has no room for them.
    fn forwarded_queued(&self, bytes: usize) -> bool {
        self.forwarded_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                let total = queued.checked_add(bytes)?;
                (total <= engine::MAX_QUEUED_FORWARDED_BYTES).then_some(total)
            })
            .is_ok()
    }

    /// The engine took a command that was charged `bytes`.
    pub(super) fn forwarded_taken(&self, bytes: usize) {
        if bytes > 0 {
            self.forwarded_bytes.fetch_sub(bytes, Ordering::AcqRel);
        }
    }

    /// Height of the last block the ledger stored.
    pub fn stored_height(&self) -> u64 {
        self.height.load(Ordering::Acquire)
    }

    /// The ledger's height, when blocks were stored outside the engine (at start).
    fn set_stored_height(&self, height: u64) {
        self.height.store(height, Ordering::Release);
        self.ledger.set_height(height);
    }

    /// While the ledger is refilled before the engine starts: `/status` says `syncing` up
    /// to `target`.
    fn prefilling(&self, target: u64) {
        let mut view = self.view.write().unwrap_or_else(PoisonError::into_inner);
        view.sync = SyncState::Syncing { target };
        view.network_height = target;
    }

    /// The height the syncer fetches up to (0 when it does not sync).
    pub fn set_sync_target(&self, target: u64) {
        self.sync_target.store(target, Ordering::Release);
    }

    fn set_running(&self, running: bool) {
        self.running.store(running, Ordering::Release);
        self.view
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .running = running;
    }

    /// Blocks the ledger made durable: events for subscribers, metrics, the height `/health`
    /// reports.
    fn blocks_stored(&self, blocks: Vec<StoredBlock>) {
        let now_ms = aegis_engine::Clock::now_ms(&mut WallClock);
        let last_timestamp_ms = blocks.last().map(|block| block.timestamp_ms);
        for block in blocks {
            let height = block.height;
            let latency = now_ms
                .checked_sub(block.timestamp_ms)
                .map(|ms| ms as f64 / 1000.0);
            self.metrics.committed(block.tx_ids.len(), latency);
            self.height.store(height, Ordering::Release);
            self.ledger.set_height(height);
            // No subscriber is fine: events are for whoever listens.
            let _ = self.events.send(Arc::new(CommittedBlock {
                height,
                hash: block.hash,
                tx_ids: block.tx_ids,
            }));
        }
        if let Some(timestamp_ms) = last_timestamp_ms {
            *self
                .last_commit
                .write()
                .unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), timestamp_ms));
        }
    }

    /// Publishes the driver's state after a flush, for `/status`, `/health` and the metrics.
    fn publish<P: NodeProtocol>(&self, driver: &NodeDriver<P>) {
        let status = driver.status();
        let height = status.height;
        let network_height = driver
            .core()
            .network_height()
            .max(self.sync_target.load(Ordering::Acquire))
            .max(height);
        let last_commit = *self
            .last_commit
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let sync = if network_height <= height {
            SyncState::Synced
        } else if last_commit.is_some_and(|(at, _)| at.elapsed() < STALLED_AFTER) {
            SyncState::Syncing {
                target: network_height,
            }
        } else {
            SyncState::Stalled
        };
        let mempool = driver.mempool();
        self.metrics.height(height);
        self.metrics.view(status.epoch);
        self.metrics.mempool(mempool.len(), mempool.bytes());
        self.metrics.sync_progress(height, network_height);
        let mut view = self.view.write().unwrap_or_else(PoisonError::into_inner);
        *view = ConsensusView {
            algorithm: P::ALGORITHM,
            running: self.running.load(Ordering::Acquire),
            height,
            latest_hash: status.last_hash,
            view: status.epoch,
            primary: status
                .leader
                .and_then(|id| self.names.get(usize::from(id.0)).cloned()),
            role: status.role.as_str(),
            sync,
            network_height,
            mempool_transactions: mempool.len(),
            mempool_bytes: mempool.bytes(),
            last_commit_ms: last_commit.map(|(_, ms)| ms),
        };
    }
}

/// The consensus side of a running node, whichever protocol it runs.
#[derive(Debug)]
pub struct ConsensusNode {
    pub api: Arc<dyn NodeApi>,
    shared: Arc<NodeShared>,
    stop: CancellationToken,
    engine: Option<std::thread::JoinHandle<Result<(), aegis_engine::DriverError>>>,
    dispatcher: tokio::task::JoinHandle<()>,
}

impl ConsensusNode {
    /// Stops the engine cleanly: new submissions are refused (503), the engine flushes what
    /// it decided, syncs its log and ends. Returns the engine's error if it had failed.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shared.stopping.store(true, Ordering::Release);
        self.stop.cancel();
        self.dispatcher.abort();
        let engine = self.engine.take();
        let joined = tokio::task::spawn_blocking(move || engine.map(std::thread::JoinHandle::join))
            .await
            .context("wait for the engine thread")?;
        match joined {
            Some(Ok(result)) => result.context("the consensus engine failed"),
            Some(Err(_)) => anyhow::bail!("the consensus engine thread panicked"),
            None => Ok(()),
        }
    }

    /// Resolves when the engine stops on its own (a fatal error): the node must exit.
    pub async fn failed(&self) {
        loop {
            if self
                .engine
                .as_ref()
                .is_none_or(std::thread::JoinHandle::is_finished)
                && !self.shared.stopping.load(Ordering::Acquire)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Starts the engine with the genesis's consensus algorithm.
pub async fn start(
    node: &Preflight,
    store: aegis_storage::SqlStore,
    network: P2pNetwork,
    inbox: Inbox,
    registry: &aegis_telemetry::Metrics,
    ledger: Arc<aegis_api::LedgerStatus>,
) -> anyhow::Result<ConsensusNode> {
    match node.genesis.consensus.algorithm {
        aegis_types::ConsensusAlgorithm::Pbft => {
            start_with::<Pbft>(node, store, network, inbox, registry, ledger).await
        }
        aegis_types::ConsensusAlgorithm::Raft => {
            start_with::<Raft>(node, store, network, inbox, registry, ledger).await
        }
    }
}

/// Starts the engine of protocol `P`: opens the consensus log under `data/consensus/`,
/// restores the core from it (or starts at genesis), and runs the driver on its own thread;
/// P2P messages from `inbox` go to it through the dispatcher.
pub async fn start_with<P: NodeProtocol>(
    node: &Preflight,
    store: aegis_storage::SqlStore,
    network: P2pNetwork,
    inbox: Inbox,
    registry: &aegis_telemetry::Metrics,
    ledger: Arc<aegis_api::LedgerStatus>,
) -> anyhow::Result<ConsensusNode> {
    let config = &node.config;
    let names = node
        .genesis
        .validators
        .iter()
        .map(|v| v.name.clone())
        .collect();
    let shared = Arc::new(NodeShared::new(names, node.genesis.hash(), ledger));
    shared.metrics.register(registry);
    shared
        .metrics
        .declare_rejections(<P::Reject as aegis_consensus::Reject>::LABELS);
    let mempool_config = mempool_config(&config.mempool);
    let mempool = Mempool::new(mempool_config, node.genesis.chain_id.clone())
        .context("configure the mempool")?;
    let log_dir = config.node.data_dir.join("consensus");
    let (log, report) = tokio::task::spawn_blocking(move || FileLog::<P::Persisted>::open(log_dir))
        .await
        .context("open the consensus log")?
        .context("open the consensus log")?;
    if report.torn_bytes > 0 {
        warn!(
            torn_bytes = report.torn_bytes,
            log = %log.path().display(),
            "Consensus log: cut {} bytes written after the last sync (the node stopped mid-write)",
            report.torn_bytes
        );
    }
    let restored = log.replay().context("replay the consensus log")?;
    let resumed = restored.is_some();
    let core = P::build(
        node,
        restored,
        Arc::clone(&shared.verified) as Arc<dyn SignatureCheck>,
    )?;
    info!(
        resumed,
        algorithm = P::ALGORITHM,
        height = core.status().height,
        view = core.status().epoch,
        log = %log.path().display(),
        "Consensus state {}",
        if resumed { "restored from the consensus log" } else { "starts at genesis" }
    );
    let driver_config = DriverConfig {
        max_batch_bytes: config.consensus.max_block_bytes,
        block_interval_ms: config.consensus.block_interval.as_millis() as u64,
    };
    let validators = node
        .genesis
        .validator_set()
        .context("read the validator set")?;
    let stored = {
        use aegis_storage::Ledger as _;
        store.height().await.context("read the ledger height")?
    };
    shared.set_stored_height(stored);
    // A validator whose engine ran on this ledger before, with no consensus log now, lost
    // it: it must not vote until it is past every slot it could have signed (ADR 0013).
    use aegis_storage::NodeRegistry as _;
    let public_key = node.secret.public_key();
    let lost_log = !resumed
        && store
            .consensus_ran(&public_key)
            .await
            .context("read the consensus runs")?;
    let fence = Arc::new(if lost_log {
        warn!(
            height = stored,
            "Consensus log missing on a ledger this validator's engine ran on: it catches up from its peers before it votes again"
        );
        VoteFence::raised()
    } else {
        VoteFence::open()
    });
    store
        .record_consensus_run(&public_key, aegis_engine::Clock::now_ms(&mut WallClock))
        .await
        .context("record this consensus run")?;

    let stop = CancellationToken::new();
    let (syncer, sync_handle, mut synced) = Syncer::new(
        network.clone(),
        Arc::clone(&shared),
        SyncerConfig {
            chain_id: node.genesis.chain_id.clone(),
            validators: validators.clone(),
            fence: Arc::clone(&fence),
            fence_window: core.vote_window(),
        },
    );
    let syncer = tokio::spawn(syncer.run(stop.clone()));
    tokio::spawn(async move {
        if let Err(error) = syncer.await
            && error.is_panic()
        {
            aegis_telemetry::error!(error = %error, "Block sync stopped: {error}");
        }
    });
    let (commands, receiver) = mpsc::channel(COMMAND_QUEUE);
    let dispatcher = tokio::spawn(dispatch::<P>(
        inbox,
        commands.clone(),
        store.clone(),
        network.clone(),
        sync_handle.clone(),
        Arc::clone(&shared),
    ));
    let consensus_height = core.status().height;
    if consensus_height > stored {
        prefill(&store, &shared, &mut synced, stored, consensus_height).await?;
    }
    {
        let commands = commands.clone();
        tokio::spawn(async move {
            while let Some(blocks) = synced.recv().await {
                if commands.send(Command::Synced { blocks }).await.is_err() {
                    return;
                }
            }
        });
    }

    let thread_stop = stop.clone();
    let runtime = tokio::runtime::Handle::current();
    let thread_shared = Arc::clone(&shared);
    let thread_store = store.clone();
    let transport = P2pTransport::new(network.clone(), sync_handle, fence, Arc::clone(&shared));
    let observer_network = network.clone();
    let engine = std::thread::Builder::new()
        .name("aegis-engine".into())
        .spawn(move || {
            let ledger = SinkLedger::new(runtime.clone(), thread_store, Arc::clone(&thread_shared))
                .map_err(|source| aegis_engine::DriverError::Io {
                    what: "start the ledger's group committer",
                    source,
                })?;
            let parts = Parts {
                transport,
                log,
                ledger,
                clock: WallClock,
                observer: NodeObserver {
                    shared: Arc::clone(&thread_shared),
                    validators,
                    network: observer_network,
                },
            };
            let driver: NodeDriver<P> = Driver::new(core, parts, mempool, driver_config);
            engine::run(driver, receiver, thread_stop, runtime, thread_shared)
        })
        .context("start the consensus engine thread")?;
    Ok(ConsensusNode {
        api: Arc::new(NodeHandle {
            commands,
            shared: Arc::clone(&shared),
        }),
        shared,
        stop,
        engine: Some(engine),
        dispatcher,
    })
}

/// Most blocks stored in one transaction while the ledger is filled before consensus starts.
pub const PREFILL_TRANSACTION_BLOCKS: usize = 512;
/// How often a node that waits for peers to fill its ledger says so.
pub const PREFILL_REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// Fills a ledger that is behind the consensus log (its database was emptied or restored
/// from an older backup) with blocks fetched by the syncer, in large transactions, up to the
/// height the consensus log is at; the engine replays the rest.
async fn prefill(
    store: &aegis_storage::SqlStore,
    shared: &NodeShared,
    synced: &mut mpsc::Receiver<Vec<(Block, aegis_types::CommitCertificate)>>,
    stored: u64,
    consensus_height: u64,
) -> anyhow::Result<()> {
    use aegis_storage::Ledger as _;
    warn!(
        height = stored,
        target = consensus_height,
        "Ledger behind the consensus log (ledger at {stored}, consensus at {consensus_height}): fetching the missing blocks from peers before consensus starts"
    );
    let started = Instant::now();
    let mut height = stored;
    shared.prefilling(consensus_height);
    while height < consensus_height {
        let first = tokio::time::timeout(PREFILL_REPORT_INTERVAL, synced.recv()).await;
        let mut blocks = match first {
            Ok(Some(blocks)) => blocks,
            Ok(None) => anyhow::bail!("block sync stopped before the ledger caught up"),
            Err(_) => {
                info!(
                    height,
                    target = consensus_height,
                    "Waiting for peers to serve blocks {}..={consensus_height}",
                    height + 1
                );
                continue;
            }
        };
        while blocks.len() < PREFILL_TRANSACTION_BLOCKS {
            match synced.try_recv() {
                Ok(more) => blocks.extend(more),
                Err(_) => break,
            }
        }
        store
            .append_blocks(&blocks)
            .await
            .with_context(|| format!("store synced blocks from height {}", height + 1))?;
        height = blocks.last().map_or(height, |(block, _)| block.height());
        shared.set_stored_height(height);
    }
    info!(
        height,
        seconds = started.elapsed().as_secs_f64(),
        "Ledger filled up to the consensus log at height {height} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The mempool's bounds from `mempool:` (destructured so a new key cannot be forgotten).
fn mempool_config(config: &aegis_config::MempoolConfig) -> MempoolConfig {
    let aegis_config::MempoolConfig {
        max_transactions,
        max_bytes,
        max_transaction_bytes,
        recent_committed,
    } = config.clone();
    MempoolConfig {
        max_transactions,
        max_bytes,
        max_transaction_bytes,
        recent_committed,
    }
}

/// Turns P2P messages into engine commands: consensus messages, sync requests (served from
/// the ledger, at most [`MAX_SYNC_SERVING`] at once) and replies, forwarded transactions.
/// Anything that does not decode is logged with the peer and counted, never passed on.
async fn dispatch<P: NodeProtocol>(
    mut inbox: Inbox,
    commands: mpsc::Sender<Command<P::Message>>,
    store: aegis_storage::SqlStore,
    network: P2pNetwork,
    sync: SyncHandle,
    shared: Arc<NodeShared>,
) {
    let serving = Arc::new(Semaphore::new(MAX_SYNC_SERVING));
    while let Some(inbound) = inbox.recv().await {
        let from = inbound.from;
        let command = match inbound.tag {
            tags::CONSENSUS => match borsh::from_slice::<P::Message>(&inbound.payload) {
                Ok(message) => Some(Command::Deliver { from, message }),
                Err(error) => {
                    undecodable(&network, from, "consensus", &error);
                    None
                }
            },
            tags::SYNC => match borsh::from_slice::<SyncMessage>(&inbound.payload) {
                Ok(SyncMessage::Request {
                    from_height,
                    max_blocks,
                }) => {
                    if let Ok(permit) = Arc::clone(&serving).try_acquire_owned() {
                        let (store, network) = (store.clone(), network.clone());
                        tokio::spawn(async move {
                            sync::serve(store, network, from, from_height, max_blocks).await;
                            drop(permit);
                        });
                    }
                    None
                }
                Ok(SyncMessage::Blocks {
                    from_height,
                    head,
                    blocks,
                }) => {
                    sync.reply(from, from_height, head, blocks);
                    None
                }
                Err(error) => {
                    undecodable(&network, from, "sync", &error);
                    None
                }
            },
            tags::MEMPOOL => match borsh::from_slice::<Vec<Transaction>>(&inbound.payload) {
                Ok(transactions) if transactions.len() <= MAX_GOSSIP_TXS => {
                    let bytes = inbound.payload.len();
                    if shared.forwarded_queued(bytes) {
                        Some(Command::Submit {
                            transactions,
                            forward: false,
                            reply: None,
                            queued_bytes: bytes,
                        })
                    } else {
                        shared.metrics.forwarded_dropped(transactions.len());
                        None
                    }
                }
                Ok(transactions) => {
                    warn!(peer_id = %from, transactions = transactions.len(), "Forwarded transaction batch over the limit refused");
                    None
                }
                Err(error) => {
                    undecodable(&network, from, "mempool", &error);
                    None
                }
            },
            other => {
                aegis_telemetry::debug!(peer_id = %from, tag = other, "Message with an unknown tag ignored");
                None
            }
        };
        // Before the engine runs (its ledger is being filled), what is for it is dropped
        // rather than queued: the queue would fill and hold up the sync replies. Peers
        // retransmit.
        if !shared.running.load(Ordering::Acquire) && !shared.stopping.load(Ordering::Acquire) {
            if let Some(Command::Submit { queued_bytes, .. }) = &command {
                shared.forwarded_taken(*queued_bytes);
            }
            continue;
        }
        if let Some(command) = command
            && commands.send(command).await.is_err()
        {
            // The engine is gone; the node is stopping.
            return;
        }
    }
}

fn undecodable(network: &P2pNetwork, from: ValidatorId, kind: &str, error: &std::io::Error) {
    let ip = network
        .peers()
        .into_iter()
        .find(|peer| peer.id == from)
        .map_or_else(
            || "address unknown".to_owned(),
            |peer| peer.remote_addr.ip().to_string(),
        );
    warn!(
        peer_id = %from,
        peer_ip = %ip,
        "Consensus: byzantine evidence: undecodable {kind} message from validator {from} ({ip}): {error}"
    );
}

/// Bytes of this node's clients' submissions held from the HTTP handler until the engine
/// answered them, released on drop (the handler may be cancelled while it waits).
struct SubmitBytes<'a> {
    shared: &'a NodeShared,
    bytes: usize,
}

impl<'a> SubmitBytes<'a> {
    /// Holds `bytes` of [`engine::MAX_QUEUED_SUBMITTED_BYTES`]; `None` when they do not fit.
    /// A submission larger than the whole bound is let through alone (the API's body limit
    /// bounds it), so it cannot be refused forever.
    fn hold(shared: &'a NodeShared, bytes: usize) -> Option<SubmitBytes<'a>> {
        shared
            .submitted_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                let total = held.checked_add(bytes)?;
                (total <= engine::MAX_QUEUED_SUBMITTED_BYTES || held == 0).then_some(total)
            })
            .ok()?;
        Some(SubmitBytes { shared, bytes })
    }
}

impl Drop for SubmitBytes<'_> {
    fn drop(&mut self) {
        self.shared
            .submitted_bytes
            .fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// The node as the HTTP endpoints see it (`M`: the protocol's message).
#[derive(Debug)]
pub struct NodeHandle<M> {
    commands: mpsc::Sender<Command<M>>,
    shared: Arc<NodeShared>,
}

fn unavailable(message: &str) -> ApiError {
    ApiError::Unavailable {
        message: message.to_owned(),
        retry_after: Some(Duration::from_secs(1)),
    }
}

impl<M: Send + std::fmt::Debug + 'static> NodeApi for NodeHandle<M> {
    fn submit(&self, transactions: Vec<Transaction>) -> NodeFuture<'_, Vec<Admission>> {
        Box::pin(async move {
            if self.shared.stopping.load(Ordering::Acquire) {
                return Err(unavailable("the node is shutting down"));
            }
            if !self.shared.running.load(Ordering::Acquire) {
                return Err(unavailable("the consensus engine is not running"));
            }
            let bytes: usize = transactions.iter().map(aegis_mempool::encoded_len).sum();
            let Some(_held) = SubmitBytes::hold(&self.shared, bytes) else {
                self.shared.metrics.submissions_busy(transactions.len());
                return Err(unavailable(&format!(
                    "the node is busy: {} MiB of submitted transactions already wait for the \
                     consensus engine (engine::MAX_QUEUED_SUBMITTED_BYTES); retry later",
                    engine::MAX_QUEUED_SUBMITTED_BYTES >> 20
                )));
            };
            let (reply, answer) = oneshot::channel();
            self.commands
                .send(Command::Submit {
                    transactions,
                    forward: true,
                    reply: Some(reply),
                    queued_bytes: 0,
                })
                .await
                .map_err(|_| unavailable("the consensus engine is not running"))?;
            answer
                .await
                .map_err(|_| unavailable("the consensus engine stopped"))
        })
    }

    fn pending(&self, id: Hash) -> NodeFuture<'_, Option<Transaction>> {
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            self.commands
                .send(Command::Pending { id, reply })
                .await
                .map_err(|_| unavailable("the consensus engine is not running"))?;
            answer
                .await
                .map_err(|_| unavailable("the consensus engine stopped"))
        })
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<CommittedBlock>> {
        self.shared.events.subscribe()
    }

    fn consensus(&self) -> ConsensusView {
        self.shared
            .view
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
