//! The pipelined group committer: blocks queued in chain order, committed as many per
//! database transaction as are queued, each acknowledged by its ticket once durable.

use std::borrow::Cow;
use std::sync::Arc;

use aegis_types::{Block, CommitCertificate};

use crate::StorageError;
use crate::traits::Tip;

use super::SqlStore;
use super::append::{PreparedBlock, check_follows, prepare};

/// Blocks a [`GroupCommitter`] queues, in groups of its `max_blocks`: enough for the caller
/// to keep submitting while a group is synced or an id index merge (a few hundred ms) runs.
pub const GROUP_COMMIT_QUEUE_GROUPS: usize = 4;

/// A pipelined append stream: blocks are queued in chain order and one writer task commits
/// whatever is queued, up to `max_blocks`, in one database transaction (one disk sync).
///
/// This is what a pipelined commit stream gives storage: while one group is being synced,
/// the next blocks are checked and encoded ([`GroupCommitter::submit`] does that in the
/// caller's task) and wait in the queue. A block is acknowledged, by its
/// [`CommitTicket`], only once the transaction holding it has committed: the guarantee is the
/// same as [`Ledger::append_block`]'s (the block is durable, whole, with its certificate),
/// but an acknowledgement can wait for the blocks queued with it. If a group fails, its
/// blocks are retried one by one, so each gets its own verdict.
#[derive(Debug)]
pub struct GroupCommitter {
    queue: tokio::sync::mpsc::Sender<Queued>,
    commits: Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

struct Queued {
    block: PreparedBlock<'static>,
    done: tokio::sync::oneshot::Sender<Result<(), StorageError>>,
}

/// Resolves when the submitted block is durable, or with the error that kept it out.
#[derive(Debug)]
pub struct CommitTicket(tokio::sync::oneshot::Receiver<Result<(), StorageError>>);

impl CommitTicket {
    pub async fn wait(self) -> Result<(), StorageError> {
        self.0.await.unwrap_or_else(|_| {
            Err(StorageError::Config(
                "the group commit writer stopped before storing the block".to_owned(),
            ))
        })
    }
}

impl SqlStore {
    /// Starts a [`GroupCommitter`] on this store (needs a Tokio runtime). Appends through it
    /// and through [`Ledger::append_block`] are serialised on the same writer connection.
    pub fn group_committer(&self, max_blocks: usize) -> GroupCommitter {
        let max_blocks = max_blocks.max(1);
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
                        let _ = done.send(Ok(()));
                    }
                    continue;
                }
                for (block, done) in blocks.iter().zip(done) {
                    let result = store.append_prepared(std::slice::from_ref(block)).await;
                    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let _ = done.send(result);
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
        let (done, ticket) = tokio::sync::oneshot::channel();
        self.queue
            .send(Queued { block, done })
            .await
            .map_err(|_| StorageError::Config("the group commit writer has stopped".to_owned()))?;
        Ok(CommitTicket(ticket))
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
