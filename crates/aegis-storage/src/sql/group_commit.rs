//! The pipelined group committer: blocks queued in chain order, committed as many per
//! database transaction as are queued, each acknowledged by its ticket once durable. It is
//! [`SqlStore`]'s [`BlockSink`], which [`crate::Ledger::group_commit`] hands out.

use std::borrow::Cow;
use std::sync::Arc;

use aegis_types::{Block, CommitCertificate};

use crate::StorageError;
use crate::traits::{
    BlockSink, CommitAck, CommitTicket, GROUP_COMMIT_QUEUE_GROUPS, MAX_GROUP_COMMIT_BLOCKS,
    StoreFuture, Tip,
};

use super::SqlStore;
use super::append::{PreparedBlock, check_follows, prepare};

/// A pipelined append stream: blocks are queued in chain order and one writer task commits
/// whatever is queued, up to `max_blocks`, in one database transaction (one disk sync).
///
/// This is what a pipelined commit stream gives storage: while one group is being synced,
/// the next blocks are checked and encoded ([`GroupCommitter::submit`] does that in the
/// caller's task) and wait in the queue. A block is acknowledged, by its
/// [`CommitTicket`], only once the transaction holding it has committed: the guarantee is the
/// same as [`crate::Ledger::append_block`]'s (the block is durable, whole, with its
/// certificate), but an acknowledgement can wait for the blocks queued with it. If a group fails, its
/// blocks are retried one by one, so each gets its own verdict.
#[derive(Debug)]
pub struct GroupCommitter {
    queue: tokio::sync::mpsc::Sender<Queued>,
    commits: Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

struct Queued {
    block: PreparedBlock<'static>,
    done: CommitAck,
}

impl SqlStore {
    /// Starts a [`GroupCommitter`] on this store (needs a Tokio runtime). Appends through it
    /// and through [`crate::Ledger::append_block`] are serialised on the same writer
    /// connection. `max_blocks` is taken as 1 when 0 and as [`MAX_GROUP_COMMIT_BLOCKS`] above
    /// that.
    pub fn group_committer(&self, max_blocks: usize) -> GroupCommitter {
        let max_blocks = max_blocks.clamp(1, MAX_GROUP_COMMIT_BLOCKS);
        let (queue, mut rx) =
            tokio::sync::mpsc::channel::<Queued>(max_blocks * GROUP_COMMIT_QUEUE_GROUPS);
        let commits = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let store = self.clone();
        let counter = commits.clone();
        let task = tokio::spawn(async move {
            let mut group: Vec<Queued> = Vec::with_capacity(max_blocks);
            while let Some(first) = rx.recv().await {
                group.push(first);
                while group.len() < max_blocks {
                    match rx.try_recv() {
                        Ok(next) => group.push(next),
                        Err(_) => break,
                    }
                }
                let linked = group.windows(2).all(|pair| {
                    let tip = Tip {
                        height: pair[0].block.height as u64,
                        hash: pair[0].block.hash,
                    };
                    check_follows(Some(tip), &pair[1].block).is_ok()
                });
                let (blocks, done): (Vec<_>, Vec<_>) =
                    group.drain(..).map(|q| (q.block, q.done)).unzip();
                let together = if linked && blocks.len() > 1 {
                    store.append_prepared(&blocks).await
                } else {
                    Err(StorageError::Config("append one by one".to_owned()))
                };
                if together.is_ok() {
                    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    for done in done {
                        done.resolve(Ok(()));
                    }
                    continue;
                }
                for (block, done) in blocks.iter().zip(done) {
                    let result = store.append_prepared(std::slice::from_ref(block)).await;
                    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    done.resolve(result);
                }
            }
        });
        GroupCommitter {
            queue,
            commits,
            task,
        }
    }
}

impl GroupCommitter {
    /// Checks and encodes the next block, then queues it (waiting while the queue is full).
    /// An invalid block is refused here, before it is queued.
    pub async fn submit(
        &self,
        block: Block,
        certificate: &CommitCertificate,
    ) -> Result<CommitTicket, StorageError> {
        let block = prepare(Cow::Owned(block), certificate)?;
        self.enqueue(block).await
    }

    /// Queues a prepared block (waiting while the queue is full) and returns its ticket.
    async fn enqueue(&self, block: PreparedBlock<'static>) -> Result<CommitTicket, StorageError> {
        let (ticket, done) = CommitTicket::pending();
        self.queue
            .send(Queued { block, done })
            .await
            .map_err(|_| StorageError::Config("the group commit writer has stopped".to_owned()))?;
        Ok(ticket)
    }

    /// Database transactions committed so far.
    pub fn commits(&self) -> u64 {
        self.commits.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stores everything queued, then stops the writer task.
    pub async fn finish(self) {
        drop(self.queue);
        let _ = self.task.await;
    }
}

impl SqlStore {
    /// [`crate::Ledger::group_commit`]: a [`GroupCommitter`] behind the trait, once
    /// `max_blocks` is in range and the calling thread has a runtime to run the writer on (the
    /// inherent [`SqlStore::group_committer`] clamps the first and panics without the second).
    pub(super) fn group_commit_sink(
        &self,
        max_blocks: usize,
    ) -> Result<Box<dyn BlockSink>, StorageError> {
        if !(1..=MAX_GROUP_COMMIT_BLOCKS).contains(&max_blocks) {
            return Err(StorageError::Config(format!(
                "group commit of {max_blocks} blocks per transaction is out of range (1-{MAX_GROUP_COMMIT_BLOCKS})"
            )));
        }
        if let Err(error) = tokio::runtime::Handle::try_current() {
            return Err(StorageError::Task(format!(
                "cannot start the group commit writer: no Tokio runtime on this thread (a synchronous caller enters one with Handle::enter): {error}"
            )));
        }
        Ok(Box::new(self.group_committer(max_blocks)))
    }
}

impl BlockSink for GroupCommitter {
    fn submit<'a>(
        &'a self,
        block: Block,
        certificate: &'a CommitCertificate,
    ) -> StoreFuture<'a, CommitTicket> {
        Box::pin(async move {
            match prepare(Cow::Owned(block), certificate) {
                Ok(block) => self.enqueue(block).await,
                Err(refused) => {
                    // Through the trait, a refusal reaches the block's ticket like every other
                    // verdict, so the caller handles each block's outcome in one place.
                    let (ticket, done) = CommitTicket::pending();
                    done.resolve(Err(refused));
                    Ok(ticket)
                }
            }
        })
    }

    fn commits(&self) -> u64 {
        GroupCommitter::commits(self)
    }

    fn finish(self: Box<Self>) -> StoreFuture<'static, ()> {
        Box::pin(async move {
            let GroupCommitter { queue, task, .. } = *self;
            drop(queue);
            task.await.map_err(|error| {
                StorageError::Task(format!("the group commit writer failed: {error}"))
            })
        })
    }
}
