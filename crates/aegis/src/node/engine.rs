//! The engine's thread: the driver runs here, alone, fed by a bounded command queue from the
//! tokio tasks that own the sockets and the HTTP endpoints (ARCHITECTURE.md). Each turn takes
//! every command waiting (up to [`MAX_COMMANDS_PER_TURN`]), steps the core through them,
//! fires due timers, then flushes once: the ledger, one sync of the consensus log, the
//! messages that waited. Between turns it sleeps until a command or the next timer.

use std::sync::Arc;
use std::time::Duration;

use aegis_engine::{Driver, DriverError};
use aegis_mempool::Admission;
use aegis_p2p::{Message, tags};
use aegis_telemetry::{error, info};
use aegis_types::{Block, CommitCertificate, Hash, Transaction, ValidatorId};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::NodeShared;
use super::io::NodeIo;
use super::protocol::NodeProtocol;

/// Commands waiting for the engine, at most (senders wait when it is full: backpressure
/// reaches the P2P inbox and the HTTP handlers).
pub const COMMAND_QUEUE: usize = 4_096;
/// Most commands handled in one turn, before one flush.
pub const MAX_COMMANDS_PER_TURN: usize = 512;
/// Longest sleep between turns when no timer is due sooner (status is republished then).
pub const IDLE_TURN: Duration = Duration::from_millis(500);
/// Most transactions forwarded to the other validators in one message.
pub const MAX_GOSSIP_TXS: usize = 1_024;
/// A pending transaction not committed this long after its admission is sent again to the
/// leader: the first forward may have been refused by the leader's full pool, or dropped
/// from a P2P queue (gossip is bulk). Well under `consensus.timeout`, so the leader gets it
/// before this node's request timer suspects it.
pub const RESEND_AFTER_MS: u64 = 2_000;
/// How often the engine looks for transactions to send again.
pub const RESEND_INTERVAL_MS: u64 = 500;
/// Most transactions sent again per [`RESEND_INTERVAL_MS`] (a round over the pool continues
/// at the next interval), and most bytes.
pub const RESEND_MAX_TXS: usize = 2 * MAX_GOSSIP_TXS;
pub const RESEND_MAX_BYTES: usize = 2 << 20;
/// Most bytes of peers' forwarded transactions waiting in the command queue (encoded, as
/// received). The queue's length alone does not bound memory (a command may carry
/// [`MAX_GOSSIP_TXS`] transactions of up to 64 KiB); a forwarded batch that finds no room
/// is dropped and counted (`aegis_mempool_forwarded_dropped_total`): the node that accepted
/// those transactions keeps them and sends them again ([`RESEND_AFTER_MS`]).
pub const MAX_QUEUED_FORWARDED_BYTES: usize = 16 << 20;
/// Most bytes of this node's clients' submissions waiting for the engine's answer (encoded).
/// A submission that finds no room is refused at once with 503 and `Retry-After` (counted
/// in `aegis_api_submissions_busy_total`) instead of waiting in memory: under overload the
/// HTTP handlers would otherwise hold up to [`COMMAND_QUEUE`] requests of up to 100
/// transactions each.
pub const MAX_QUEUED_SUBMITTED_BYTES: usize = 16 << 20;

/// What the tokio side asks of the engine (`M`: the protocol's message).
#[derive(Debug)]
pub enum Command<M> {
    /// A consensus message from an authenticated validator.
    Deliver { from: ValidatorId, message: M },
    /// Blocks peers served for sync, checked by the syncer, in height order.
    Synced {
        blocks: Vec<(Block, CommitCertificate)>,
    },
    /// Client transactions (`forward`: from this node's API, to be passed on to the other
    /// validators) or forwarded ones (from a peer's mempool). Each gets its admission.
    Submit {
        transactions: Vec<Transaction>,
        forward: bool,
        reply: Option<oneshot::Sender<Vec<Admission>>>,
        /// Bytes charged to [`MAX_QUEUED_FORWARDED_BYTES`] (a peer's forwarded batch; 0 for
        /// this node's clients), given back once the engine took the command.
        queued_bytes: usize,
    },
    /// A transaction waiting in the mempool.
    Pending {
        id: Hash,
        reply: oneshot::Sender<Option<Transaction>>,
    },
}

pub type NodeDriver<P> = Driver<P, NodeIo<P>>;

/// What ends the engine's wait between turns.
enum Wake<C> {
    Command(Option<C>),
    Stop,
    Timer,
}

/// Runs the driver until `stop` is cancelled (then it flushes and syncs everything) or a
/// fatal error (which it logs and returns).
pub fn run<P: NodeProtocol>(
    mut driver: NodeDriver<P>,
    mut commands: mpsc::Receiver<Command<P::Message>>,
    stop: CancellationToken,
    runtime: Handle,
    shared: Arc<NodeShared>,
) -> Result<(), DriverError> {
    let result = turn_loop(&mut driver, &mut commands, &stop, &runtime, &shared);
    shared.set_running(false);
    if let Err(error) = &result {
        shared.metrics.engine_failure();
        error!(error = %error, "Consensus engine stopped: {error}");
    }
    let (_, parts) = driver.into_parts();
    parts.ledger.finish();
    result
}

fn turn_loop<P: NodeProtocol>(
    driver: &mut NodeDriver<P>,
    commands: &mut mpsc::Receiver<Command<P::Message>>,
    stop: &CancellationToken,
    runtime: &Handle,
    shared: &Arc<NodeShared>,
) -> Result<(), DriverError> {
    driver.start()?;
    shared.publish(driver);
    shared.set_running(true);
    info!(
        height = driver.status().height,
        view = driver.status().epoch,
        "Consensus engine started"
    );
    let mut resend = Resend::default();
    loop {
        let now_ms = aegis_engine::Clock::now_ms(&mut super::io::WallClock);
        let wait = driver
            .next_deadline()
            .map_or(IDLE_TURN, |deadline| {
                Duration::from_millis(deadline.saturating_sub(now_ms))
            })
            .min(IDLE_TURN);
        let first = runtime.block_on(async {
            tokio::select! {
                command = commands.recv() => Wake::Command(command),
                () = stop.cancelled() => Wake::Stop,
                () = tokio::time::sleep(wait) => Wake::Timer,
            }
        });
        let mut batch = Vec::new();
        match first {
            Wake::Command(Some(command)) => batch.push(command),
            // Every sender is gone: the node is shutting down.
            Wake::Command(None) => return driver.close(),
            Wake::Stop | Wake::Timer => {}
        }
        while batch.len() < MAX_COMMANDS_PER_TURN {
            match commands.try_recv() {
                Ok(command) => batch.push(command),
                Err(_) => break,
            }
        }
        let mut gossip = Vec::new();
        for command in batch {
            if let Command::Submit { queued_bytes, .. } = &command {
                shared.forwarded_taken(*queued_bytes);
            }
            match command {
                Command::Deliver { from, message } => driver.deliver(from, message)?,
                Command::Synced { blocks } => {
                    for (block, certificate) in blocks {
                        // Consensus may have committed it meanwhile.
                        if block.height() > driver.status().height {
                            driver.synced_block(block, certificate)?;
                        }
                    }
                }
                Command::Submit {
                    transactions,
                    forward,
                    reply,
                    queued_bytes: _,
                } => {
                    let admissions = driver.submit(transactions.clone())?;
                    // The mempool verified these in one batch: proposals carrying them are
                    // not verified again.
                    for (tx, admission) in transactions.iter().zip(&admissions) {
                        if let Admission::Accepted { id } = admission {
                            shared.verified.remember(tx.body.sender, *id, tx.signature);
                        }
                    }
                    if forward {
                        gossip.extend(
                            transactions
                                .into_iter()
                                .zip(&admissions)
                                .filter(|(_, admission)| admission.is_accepted())
                                .map(|(tx, _)| tx),
                        );
                    }
                    if let Some(reply) = reply {
                        // The client may have gone; its transactions stay admitted.
                        let _ = reply.send(admissions);
                    }
                }
                Command::Pending { id, reply } => {
                    let _ = reply.send(driver.mempool().get(&id).cloned());
                }
            }
        }
        driver.tick()?;
        driver.flush()?;
        forward(driver, gossip);
        resend.run(driver, shared);
        shared.publish(driver);
        if stop.is_cancelled() {
            driver.close()?;
            info!("Consensus engine stopped cleanly");
            return Ok(());
        }
    }
}

/// Passes transactions this node's clients submitted on to every validator, in batches, so
/// each one holds them (the primary proposes them; the others time the request, §4.4).
fn forward<P: NodeProtocol>(driver: &mut NodeDriver<P>, transactions: Vec<Transaction>) {
    for chunk in transactions.chunks(MAX_GOSSIP_TXS) {
        let bytes = aegis_types::encoding::encode(&chunk.to_vec());
        let network = &driver.transport_mut().network;
        if bytes.len() <= network.max_payload_bytes() {
            network.broadcast(Message::bulk(tags::MEMPOOL, bytes));
        } else {
            // Rare: a batch of large transactions over the frame limit goes one by one.
            for tx in chunk {
                let one = aegis_types::encoding::encode(&vec![tx.clone()]);
                network.broadcast(Message::bulk(tags::MEMPOOL, one));
            }
        }
    }
}

/// Sends pending transactions that waited [`RESEND_AFTER_MS`] to the current leader again,
/// in rounds over the pool (oldest first), at most [`RESEND_MAX_TXS`] per
/// [`RESEND_INTERVAL_MS`]. A 202 is a promise: a transaction this node accepted stays in its
/// pool until committed, and this makes sure the proposer hears of it even when the first
/// forward was refused (its pool was full) or dropped (a P2P queue was full, the leader
/// changed). The leader itself, and a node between leaders, sends nothing.
#[derive(Debug, Default)]
struct Resend {
    /// Where the current round continues (an arrival number of the pool).
    cursor: u64,
    /// When to look next (node clock, milliseconds).
    due_ms: u64,
    /// When the current round started: a new round waits [`RESEND_AFTER_MS`] after it.
    round_started_ms: u64,
}

impl Resend {
    fn run<P: NodeProtocol>(&mut self, driver: &mut NodeDriver<P>, shared: &NodeShared) {
        let now_ms = aegis_engine::Clock::now_ms(driver.clock_mut());
        if now_ms < self.due_ms {
            return;
        }
        self.due_ms = now_ms.saturating_add(RESEND_INTERVAL_MS);
        let status = driver.status();
        let (aegis_consensus::Role::Follower, Some(leader)) = (status.role, status.leader) else {
            return;
        };
        if self.cursor == 0 {
            if now_ms < self.round_started_ms.saturating_add(RESEND_AFTER_MS) {
                return;
            }
            self.round_started_ms = now_ms;
        }
        let (transactions, next) = driver.mempool().waiting(
            self.cursor,
            now_ms,
            RESEND_AFTER_MS,
            RESEND_MAX_TXS,
            RESEND_MAX_BYTES,
        );
        self.cursor = next.unwrap_or(0);
        if transactions.is_empty() {
            return;
        }
        let network = &driver.transport_mut().network;
        for chunk in transactions.chunks(MAX_GOSSIP_TXS) {
            let bytes = aegis_types::encoding::encode(&chunk.to_vec());
            // Bulk, without waiting: what is lost goes again in the next round.
            if network
                .try_send(leader, Message::bulk(tags::MEMPOOL, bytes))
                .is_ok()
            {
                shared.metrics.resent(chunk.len());
            }
        }
    }
}
