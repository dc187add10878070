//! The driver: the one place that feeds inputs to a consensus core and carries out its
//! effects in the order they demand. The node runs it on its own thread; the simulator runs
//! it for every simulated node; so every simulated seed proves the code that runs in
//! production.
//!
//! The rules it keeps:
//! - **Persist, then send.** Records of an [`Effect::Persist`] are appended to the consensus
//!   log; its messages, and every message after them, wait until [`Driver::flush`] has synced
//!   the log. One sync covers every step run since the last one.
//! - **Store a decided block before what follows it.** Committed blocks go to the ledger in
//!   order; a flush makes the ledger durable *before* it syncs the consensus log, so the log
//!   never claims a block the ledger could lose.
//! - **Durable, then acknowledged.** A core that asks for it ([`Protocol::ACKNOWLEDGE_PERSISTED`],
//!   Raft) hears [`Input::Persisted`] after each sync, with the last persist it covered.
//! - **Timers** are kept here ([`TimerTable`]) and fired by [`Driver::tick`].
//! - **Batches** for the leader come from the mempool, which the driver owns: admission
//!   answers clients, [`Effect::ProposalWanted`] is answered at once with the oldest pending
//!   transactions not handed out yet.

use std::collections::BTreeSet;
use std::fmt;

use aegis_consensus::{CoreStatus, Effect, EffectOf, Env, Input, InputOf, Outgoing, Protocol};
use aegis_mempool::{Admission, Mempool};
use aegis_types::{Block, CommitCertificate, Hash, Transaction, ValidatorId};

use crate::io::{Clock, ConsensusLog, Io, IoError, Ledger, Observer, Parts, Transport};
use crate::timers::TimerTable;

/// Most messages held back for a sync before the driver syncs on its own, so a long batch
/// of steps cannot grow the queue without bound.
pub const MAX_HELD_MESSAGES: usize = 4_096;
/// Most record bytes appended and not synced before the driver syncs on its own.
pub const MAX_UNSYNCED_LOG_BYTES: u64 = 16 * 1024 * 1024;
/// A log below this size is never compacted just for its size.
pub const MIN_COMPACTION_LOG_BYTES: u64 = 64 * 1024 * 1024;
/// Most proposals answered in one step: a core asks again only after a proposal it took, so
/// its pipeline bounds this; the constant is a guard against a core that keeps asking.
pub const MAX_PROPOSALS_PER_STEP: usize = 1_024;
/// Default for [`DriverConfig::max_batch_bytes`]: well under a P2P frame, so a PRE-PREPARE
/// carrying the batch always fits.
pub const DEFAULT_MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Most rounds of one flush: what the core does on hearing that its records are durable
/// (commit, answer) may need another sync; anything left waits for the next flush.
pub const MAX_FLUSH_ROUNDS: usize = 4;

const _: () = assert!(MAX_UNSYNCED_LOG_BYTES < MIN_COMPACTION_LOG_BYTES);
const _: () = assert!((DEFAULT_MAX_BATCH_BYTES as u64) < MAX_UNSYNCED_LOG_BYTES);

/// The driver's own settings: how the leader cuts blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DriverConfig {
    /// Most bytes of transactions (canonical encoding) in one proposed batch.
    pub max_batch_bytes: usize,
    /// Least time between two proposals that are not full (`consensus.block_interval`):
    /// under light load the leader waits this long to gather more transactions into one
    /// block. 0 proposes as soon as the pipeline has room.
    pub block_interval_ms: u64,
}

impl Default for DriverConfig {
    fn default() -> DriverConfig {
        DriverConfig {
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
            block_interval_ms: 0,
        }
    }
}

/// Why the driver stopped. Every one is fatal for the node: it logs it and exits, and a
/// restart resumes from what is durable.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: IoError,
    },
    #[error(
        "the consensus log is at height {consensus}, above the ledger's {ledger}: the ledger \
         lost committed blocks (restore it, or resync this node)"
    )]
    LedgerBehind { consensus: u64, ledger: u64 },
}

fn io(what: &'static str) -> impl FnOnce(IoError) -> DriverError {
    move |source| DriverError::Io { what, source }
}

/// What the driver did, for the figures in the ADR and the simulator's report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DriverStats {
    pub steps: u64,
    /// `Effect::Persist` carried out, and the records they held.
    pub persists: u64,
    pub records: u64,
    /// Consensus log syncs and compactions.
    pub syncs: u64,
    pub compactions: u64,
    pub flushes: u64,
    pub committed_blocks: u64,
    pub messages_sent: u64,
}

/// One node's driver over the core `P` and the I/O `I`.
pub struct Driver<P: Protocol, I: Io<P>> {
    core: P,
    transport: I::Transport,
    log: I::Log,
    ledger: I::Ledger,
    clock: I::Clock,
    observer: I::Observer,
    mempool: Mempool,
    config: DriverConfig,
    timers: TimerTable<P::Timer>,
    /// Ids handed to the core in proposals and not committed yet: the mempool skips them.
    /// A subset of the mempool's ids, so bounded by its size; cleared when the leader changes,
    /// since a new leader proposes afresh.
    handed_out: BTreeSet<Hash>,
    /// Messages waiting for the next sync, in the order the core produced them.
    held: Vec<Outgoing<P::Message>>,
    /// Records that must be durable before anything that depends on them were appended.
    must_sync: bool,
    ledger_unflushed: bool,
    /// The core said the log may be compacted (a stable checkpoint moved).
    compact_hint: bool,
    /// The sequence of the last `Effect::Persist` carried out, the last one known durable
    /// (every record appended up to it synced), and the last one the core was told of.
    last_persist: Option<u64>,
    durable_persist: Option<u64>,
    acknowledged_persist: Option<u64>,
    /// The log's size right after the last compaction (the snapshot's size).
    snapshot_bytes: u64,
    /// When the leader last handed out a batch, and when to ask the core again for one that
    /// waited for [`DriverConfig::block_interval_ms`].
    last_proposal_ms: u64,
    proposal_wake_ms: Option<u64>,
    stats: DriverStats,
}

impl<P: Protocol + fmt::Debug, I: Io<P>> fmt::Debug for Driver<P, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Driver")
            .field("core", &self.core)
            .field("mempool", &self.mempool)
            .field("held", &self.held.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<P: Protocol, I: Io<P>> Driver<P, I> {
    /// A driver for `core` (new, or restored from what `parts.log` replays to).
    pub fn new(core: P, parts: Parts<P, I>, mempool: Mempool, config: DriverConfig) -> Self {
        let snapshot_bytes = parts.log.size_bytes();
        Driver {
            core,
            transport: parts.transport,
            log: parts.log,
            ledger: parts.ledger,
            clock: parts.clock,
            observer: parts.observer,
            mempool,
            config,
            timers: TimerTable::default(),
            handed_out: BTreeSet::new(),
            held: Vec::new(),
            must_sync: false,
            ledger_unflushed: false,
            compact_hint: false,
            last_persist: None,
            durable_persist: None,
            acknowledged_persist: None,
            snapshot_bytes,
            last_proposal_ms: 0,
            proposal_wake_ms: None,
            stats: DriverStats::default(),
        }
    }

    /// Starts driving: a new log gets the core's snapshot as its base; blocks the ledger
    /// stored but the consensus log does not know of (a crash between the two) are fed back
    /// as synced blocks; then the core starts, and what it owes its peers is flushed.
    pub fn start(&mut self) -> Result<(), DriverError> {
        if self.log.size_bytes() == 0 {
            self.log
                .compact(&self.core.snapshot())
                .map_err(io("write the consensus log's first snapshot"))?;
            self.snapshot_bytes = self.log.size_bytes();
        }
        let ledger = self.ledger.height().map_err(io("read the ledger height"))?;
        let consensus = self.core.status().height;
        if consensus > ledger {
            return Err(DriverError::LedgerBehind { consensus, ledger });
        }
        for height in consensus + 1..=ledger {
            let stored = self
                .ledger
                .block(height)
                .map_err(io("read a stored block to replay"))?;
            let Some((block, certificate)) = stored else {
                return Err(DriverError::LedgerBehind {
                    consensus: height,
                    ledger: height - 1,
                });
            };
            self.step(Input::SyncedBlock { block, certificate })?;
        }
        self.step(Input::Start)?;
        self.flush()
    }

    /// Client transactions: the mempool answers each one (accepted, or why not, with a
    /// retry-after when full); the accepted ones are handed to the core by id.
    pub fn submit(
        &mut self,
        transactions: Vec<Transaction>,
    ) -> Result<Vec<Admission>, DriverError> {
        let now_ms = self.clock.now_ms();
        let admissions = self.mempool.admit(transactions, now_ms);
        let ids: Vec<Hash> = admissions
            .iter()
            .filter_map(|admission| match admission {
                Admission::Accepted { id } => Some(*id),
                Admission::Refused(_) => None,
            })
            .collect();
        if !ids.is_empty() {
            self.step(Input::TransactionsPending(ids))?;
        }
        Ok(admissions)
    }

    /// A message from an authenticated peer.
    pub fn deliver(&mut self, from: ValidatorId, message: P::Message) -> Result<(), DriverError> {
        self.step(Input::Message { from, message })
    }

    /// A block a peer served in answer to [`Transport::request_sync`].
    pub fn synced_block(
        &mut self,
        block: Block,
        certificate: CommitCertificate,
    ) -> Result<(), DriverError> {
        self.step(Input::SyncedBlock { block, certificate })
    }

    /// Fires every timer due by the clock now, earliest first, and asks for a batch that
    /// waited for the block interval.
    pub fn tick(&mut self) -> Result<(), DriverError> {
        let now_ms = self.clock.now_ms();
        if self.proposal_wake_ms.is_some_and(|wake| wake <= now_ms) {
            self.proposal_wake_ms = None;
            // No new transactions: the core only looks again whether it can propose.
            self.step(Input::TransactionsPending(Vec::new()))?;
        }
        // A fired timer may re-arm itself; it waits for the next tick.
        let mut due = Vec::new();
        while let Some(timer) = self.timers.pop_due(now_ms) {
            due.push(timer);
        }
        for timer in due {
            self.step(Input::Timer(timer))?;
        }
        Ok(())
    }

    /// When [`Driver::tick`] has something to fire next (node clock, milliseconds).
    pub fn next_deadline(&self) -> Option<u64> {
        match (self.timers.next_deadline(), self.proposal_wake_ms) {
            (Some(timer), Some(wake)) => Some(timer.min(wake)),
            (timer, wake) => timer.or(wake),
        }
    }

    /// Whether a flush has durable work to do (a sync or a ledger flush) before it can send.
    pub fn needs_sync(&self) -> bool {
        self.ledger_unflushed
            || (self.log.unsynced_bytes() > 0 && (self.must_sync || !self.held.is_empty()))
    }

    /// Makes what the steps since the last flush decided durable, then sends what waited for
    /// it: the ledger first, then one sync of the consensus log, then compaction when due,
    /// then the held messages in order. A core that asked for it then hears which persists
    /// are durable ([`Input::Persisted`]); what it does on that is flushed too, for at most
    /// [`MAX_FLUSH_ROUNDS`] rounds.
    pub fn flush(&mut self) -> Result<(), DriverError> {
        for _ in 0..MAX_FLUSH_ROUNDS {
            self.flush_once()?;
            if !self.acknowledge_persisted()? || !self.has_flush_work() {
                break;
            }
        }
        Ok(())
    }

    /// Whether a flush would write or send anything.
    fn has_flush_work(&self) -> bool {
        self.needs_sync() || !self.held.is_empty()
    }

    /// Tells the core which persists are durable, when it asked to know and something new
    /// is; returns whether it stepped the core.
    fn acknowledge_persisted(&mut self) -> Result<bool, DriverError> {
        if !P::ACKNOWLEDGE_PERSISTED {
            return Ok(false);
        }
        let Some(up_to) = self.durable_persist else {
            return Ok(false);
        };
        if self
            .acknowledged_persist
            .is_some_and(|known| known >= up_to)
        {
            return Ok(false);
        }
        self.acknowledged_persist = Some(up_to);
        self.step(Input::Persisted { up_to })?;
        Ok(true)
    }

    fn flush_once(&mut self) -> Result<(), DriverError> {
        if self.ledger_unflushed {
            self.ledger
                .flush()
                .map_err(io("flush committed blocks to the ledger"))?;
            self.ledger_unflushed = false;
        }
        let wanted = self.must_sync
            || !self.held.is_empty()
            || self.compact_hint
            || self.log.unsynced_bytes() > MAX_UNSYNCED_LOG_BYTES;
        if wanted && self.log.unsynced_bytes() > 0 {
            self.log.sync().map_err(io("sync the consensus log"))?;
            self.stats.syncs += 1;
        }
        if self.log.unsynced_bytes() == 0 {
            self.durable_persist = self.last_persist;
        }
        self.must_sync = false;
        if self.compaction_due() {
            self.log
                .compact(&self.core.snapshot())
                .map_err(io("compact the consensus log"))?;
            self.snapshot_bytes = self.log.size_bytes();
            self.stats.compactions += 1;
        }
        self.compact_hint = false;
        for message in std::mem::take(&mut self.held) {
            self.transport.send(message);
            self.stats.messages_sent += 1;
        }
        self.stats.flushes += 1;
        Ok(())
    }

    /// Stops cleanly (SIGTERM): flushes, and syncs every record still buffered, so the log
    /// replays to exactly the core's state and a restart resends nothing it need not.
    pub fn close(&mut self) -> Result<(), DriverError> {
        self.flush()?;
        if self.log.unsynced_bytes() > 0 {
            self.log.sync().map_err(io("sync the consensus log"))?;
            self.stats.syncs += 1;
        }
        Ok(())
    }

    /// At a stable checkpoint once the records since the last snapshot outweigh it (so
    /// compaction at most doubles what is written), and regardless of checkpoints once the
    /// log is four times its snapshot and past [`MIN_COMPACTION_LOG_BYTES`].
    fn compaction_due(&self) -> bool {
        let size = self.log.size_bytes();
        (self.compact_hint && size > 2 * self.snapshot_bytes)
            || size > MIN_COMPACTION_LOG_BYTES.max(4 * self.snapshot_bytes)
    }

    fn step(&mut self, input: InputOf<P>) -> Result<(), DriverError> {
        let mut next = Some(input);
        let mut proposals = 0;
        while let Some(input) = next.take() {
            let env = Env {
                now_ms: self.clock.now_ms(),
                entropy: self.clock.entropy(),
            };
            let effects = self.core.step(env, input);
            self.stats.steps += 1;
            let wanted = self.carry_out(effects)?;
            if let Some(max_txs) = wanted
                && proposals < MAX_PROPOSALS_PER_STEP
            {
                proposals += 1;
                next = Some(Input::Proposal(self.batch(max_txs)));
            }
        }
        if self.held.len() > MAX_HELD_MESSAGES || self.log.unsynced_bytes() > MAX_UNSYNCED_LOG_BYTES
        {
            self.flush()?;
        }
        Ok(())
    }

    /// The batch for a leader that asked for at most `max_txs`: the oldest pending
    /// transactions not handed out yet. A batch that is not full waits until the block
    /// interval since the last proposal has passed (then the core is asked again).
    fn batch(&mut self, max_txs: u32) -> Vec<Transaction> {
        let max_bytes = self.config.max_batch_bytes;
        let batch =
            self.mempool
                .next_batch_excluding(&self.handed_out, max_txs as usize, max_bytes);
        if batch.is_empty() {
            return batch;
        }
        let now_ms = self.clock.now_ms();
        let bytes: usize = batch.iter().map(aegis_mempool::encoded_len).sum();
        let full = batch.len() >= max_txs as usize
            || bytes + self.mempool.config().max_transaction_bytes > max_bytes;
        let ready_at = self
            .last_proposal_ms
            .saturating_add(self.config.block_interval_ms);
        if !full && now_ms < ready_at {
            self.proposal_wake_ms = Some(ready_at);
            return Vec::new();
        }
        self.last_proposal_ms = now_ms;
        self.handed_out.extend(batch.iter().map(Transaction::id));
        batch
    }

    /// Carries out one step's effects in order; returns the batch size the core asked for.
    fn carry_out(&mut self, effects: Vec<EffectOf<P>>) -> Result<Option<u32>, DriverError> {
        let mut proposal = None;
        for effect in effects {
            match effect {
                Effect::Send(message) => self.send(message),
                Effect::Persist {
                    sequence,
                    records,
                    must_sync,
                    messages,
                    compact,
                } => {
                    self.stats.persists += 1;
                    self.stats.records += records.len() as u64;
                    if !records.is_empty() {
                        self.log
                            .append(sequence, records)
                            .map_err(io("append to the consensus log"))?;
                    }
                    self.last_persist = Some(sequence);
                    self.must_sync |= must_sync;
                    self.compact_hint |= compact;
                    self.held.extend(messages);
                }
                Effect::CommitBlock { block, certificate } => {
                    let ids = block.tx_ids();
                    let now_ms = self.clock.now_ms();
                    self.mempool.remove_committed(&ids, now_ms);
                    for id in &ids {
                        self.handed_out.remove(id);
                    }
                    self.observer.committed(&block, &certificate);
                    self.ledger
                        .append(block, certificate)
                        .map_err(io("store a committed block"))?;
                    self.ledger_unflushed = true;
                    self.stats.committed_blocks += 1;
                }
                Effect::SetTimer { timer, deadline_ms } => self.timers.set(timer, deadline_ms),
                Effect::CancelTimer { timer } => self.timers.cancel(timer),
                Effect::RequestSync { from_height } => self.transport.request_sync(from_height),
                Effect::ProposalWanted { max_txs } => proposal = Some(max_txs),
                Effect::Rejected { from, reason } => self.observer.rejected(from, &reason),
                Effect::LeaderSuspected { epoch } => self.observer.leader_suspected(epoch),
                Effect::LeaderChanged { epoch, leader } => {
                    self.handed_out.clear();
                    self.observer.leader_changed(epoch, leader);
                }
            }
        }
        Ok(proposal)
    }

    /// Sends now, unless something waits for a sync: then behind it, in order.
    fn send(&mut self, message: Outgoing<P::Message>) {
        if self.held.is_empty() {
            self.transport.send(message);
            self.stats.messages_sent += 1;
        } else {
            self.held.push(message);
        }
    }

    pub fn core(&self) -> &P {
        &self.core
    }

    pub fn status(&self) -> CoreStatus {
        self.core.status()
    }

    pub fn mempool(&self) -> &Mempool {
        &self.mempool
    }

    pub fn stats(&self) -> DriverStats {
        self.stats
    }

    pub fn transport(&self) -> &I::Transport {
        &self.transport
    }

    pub fn transport_mut(&mut self) -> &mut I::Transport {
        &mut self.transport
    }

    pub fn log(&self) -> &I::Log {
        &self.log
    }

    pub fn ledger(&self) -> &I::Ledger {
        &self.ledger
    }

    pub fn ledger_mut(&mut self) -> &mut I::Ledger {
        &mut self.ledger
    }

    pub fn clock_mut(&mut self) -> &mut I::Clock {
        &mut self.clock
    }

    pub fn observer_mut(&mut self) -> &mut I::Observer {
        &mut self.observer
    }

    /// Stops driving and hands the I/O back, with the core. What is held for a sync is
    /// dropped, as a crash would drop it.
    pub fn into_parts(self) -> (P, Parts<P, I>) {
        let parts = Parts {
            transport: self.transport,
            log: self.log,
            ledger: self.ledger,
            clock: self.clock,
            observer: self.observer,
        };
        (self.core, parts)
    }
}
