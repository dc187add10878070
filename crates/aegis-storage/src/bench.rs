//! The storage benchmark behind `aegis bench storage`.
//!
//! Appends `blocks` valid blocks of `txs_per_block` really signed transactions carrying
//! `tx_size`-byte payloads, each with a commit certificate signed by a quorum, with
//! durability on: one database transaction (and one disk sync) per block, per fixed group of
//! blocks (`append_blocks`), or per whatever is queued (the pipelined [`GroupCommitter`]).
//! Blocks are generated in batches between timed sections, so the figures measure storage,
//! not signing. Then reads transactions by id and reports the latency percentiles.

use std::fmt;
use std::time::{Duration, Instant};

use aegis_types::Hash;

use crate::fixtures::ChainFixture;
use crate::traits::Ledger;
use crate::{GroupCommitter, SqlStore, StorageError};

/// Blocks generated (signed) per untimed batch.
const GENERATE_BATCH_BLOCKS: usize = 200;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BenchOptions {
    pub blocks: u64,
    pub txs_per_block: usize,
    /// Payload bytes per transaction.
    pub tx_size: usize,
    /// Transactions read back by id to measure read latency.
    pub reads: usize,
    /// Blocks written per database transaction: 1 (the default) is how the engine appends
    /// committed blocks; more shows group commit through `append_blocks`, as catch-up uses.
    pub blocks_per_commit: usize,
    /// When non-zero, append through a [`GroupCommitter`] that commits whatever blocks are
    /// queued, at most this many per transaction (a pipelined commit stream). Latencies are
    /// then per block, from submission to durable.
    pub group_commit: usize,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            blocks: 10_000,
            txs_per_block: 100,
            tx_size: 256,
            reads: 10_000,
            blocks_per_commit: 1,
            group_commit: 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct BenchReport {
    pub backend: &'static str,
    pub blocks: u64,
    pub transactions: u64,
    pub tx_size: usize,
    pub blocks_per_commit: usize,
    /// Most blocks per commit in group-commit mode, 0 otherwise.
    pub group_commit: usize,
    /// Database transactions committed.
    pub commits: u64,
    /// Time spent appending (inside `append_block` calls, or from the first submission of a
    /// generated batch until its last block is durable).
    pub append_time: Duration,
    /// Time spent generating and signing the chain (not part of the figures).
    pub generate_time: Duration,
    pub tx_per_second: f64,
    pub blocks_per_second: f64,
    /// Per commit (per block in group-commit mode): p50, p99.
    pub append_p50: Duration,
    pub append_p99: Duration,
    pub reads: usize,
    pub read_p50: Duration,
    pub read_p99: Duration,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = if self.group_commit > 0 {
            format!(
                "group commit: whatever is queued, at most {} blocks; {} commits, {:.1} blocks each",
                self.group_commit,
                self.commits,
                self.blocks as f64 / self.commits.max(1) as f64
            )
        } else if self.blocks_per_commit <= 1 {
            "block".to_owned()
        } else {
            format!("{} blocks", self.blocks_per_commit)
        };
        writeln!(
            f,
            "Storage benchmark ({}): {} blocks x {} tx x {} B, durability on (one transaction and disk sync per {})",
            self.backend,
            self.blocks,
            self.transactions.checked_div(self.blocks).unwrap_or(0),
            self.tx_size,
            mode
        )?;
        writeln!(
            f,
            "  append: {} tx in {:.2} s = {:.0} tx/s, {:.1} blocks/s (per {} p50 {:.2} ms, p99 {:.2} ms)",
            self.transactions,
            self.append_time.as_secs_f64(),
            self.tx_per_second,
            self.blocks_per_second,
            if self.group_commit > 0 {
                "block, submitted to durable,"
            } else {
                "commit"
            },
            ms(self.append_p50),
            ms(self.append_p99)
        )?;
        writeln!(
            f,
            "  read transaction by id: p50 {:.3} ms, p99 {:.3} ms ({} reads)",
            ms(self.read_p50),
            ms(self.read_p99),
            self.reads
        )?;
        write!(
            f,
            "  (generating and signing the chain took {:.1} s, not counted)",
            self.generate_time.as_secs_f64()
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs the benchmark on `store`, continuing the chain of `fixture` from the store's tip.
pub async fn run(
    store: &SqlStore,
    backend: &'static str,
    fixture: &mut ChainFixture,
    options: &BenchOptions,
) -> Result<BenchReport, StorageError> {
    fixture.resume(store.tip().await?);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut append_time = Duration::ZERO;
    let mut generate_time = Duration::ZERO;
    let mut append_latencies = Vec::with_capacity(options.blocks as usize);
    // Sample ids spread over the whole chain for the read phase.
    let total_txs = options.blocks.saturating_mul(options.txs_per_block as u64);
    let stride = (total_txs / options.reads.max(1) as u64).max(1);
    let mut sample_ids: Vec<Hash> = Vec::with_capacity(options.reads);
    let mut seen: u64 = 0;
    let per_commit = options.blocks_per_commit.max(1);
    let group: Option<GroupCommitter> =
        (options.group_commit > 0).then(|| store.group_committer(options.group_commit));
    let mut direct_commits: u64 = 0;
    let mut remaining = options.blocks;
    while remaining > 0 {
        let batch = remaining.min(GENERATE_BATCH_BLOCKS.max(per_commit) as u64) as usize;
        let started = Instant::now();
        let blocks = fixture.next_blocks(batch, options.txs_per_block, options.tx_size, threads);
        generate_time += started.elapsed();
        for (block, _) in &blocks {
            for tx in &block.txs {
                if seen.is_multiple_of(stride) && sample_ids.len() < options.reads {
                    sample_ids.push(tx.id());
                }
                seen += 1;
            }
        }
        match &group {
            Some(group) => {
                append_time += submit_all(group, blocks, &mut append_latencies).await?;
            }
            None => {
                for chunk in blocks.chunks(per_commit) {
                    let started = Instant::now();
                    match chunk {
                        [(block, certificate)] => store.append_block(block, certificate).await?,
                        _ => store.append_blocks(chunk).await?,
                    }
                    let took = started.elapsed();
                    append_time += took;
                    append_latencies.push(took);
                    direct_commits += 1;
                }
            }
        }
        remaining -= batch as u64;
    }
    let commits = match group {
        Some(group) => {
            let commits = group.commits();
            group.finish().await;
            commits
        }
        None => direct_commits,
    };
    // Read in a scrambled order so consecutive reads do not hit neighbouring rows.
    let n = sample_ids.len();
    if n > 1 {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        for i in (1..n).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            sample_ids.swap(i, (state % (i as u64 + 1)) as usize);
        }
    }
    let mut read_latencies = Vec::with_capacity(n);
    for id in &sample_ids {
        let started = Instant::now();
        let found = store.transaction(id).await?;
        read_latencies.push(started.elapsed());
        if found.is_none() {
            return Err(StorageError::corrupt(
                None,
                format!("benchmark transaction {id} was appended but cannot be read back"),
            ));
        }
    }
    let secs = append_time.as_secs_f64().max(f64::MIN_POSITIVE);
    Ok(BenchReport {
        backend,
        blocks: options.blocks,
        transactions: total_txs,
        tx_size: options.tx_size,
        blocks_per_commit: per_commit,
        group_commit: options.group_commit,
        commits,
        append_time,
        generate_time,
        tx_per_second: total_txs as f64 / secs,
        blocks_per_second: options.blocks as f64 / secs,
        append_p50: percentile(&mut append_latencies, 50.0),
        append_p99: percentile(&mut append_latencies, 99.0),
        reads: n,
        read_p50: percentile(&mut read_latencies, 50.0),
        read_p99: percentile(&mut read_latencies, 99.0),
    })
}

/// Submits `blocks` to the group committer as fast as it takes them and waits until the last
/// is durable; records each block's latency from submission to acknowledgement. Returns the
/// elapsed time.
async fn submit_all(
    group: &GroupCommitter,
    blocks: Vec<(aegis_types::Block, aegis_types::CommitCertificate)>,
    latencies: &mut Vec<Duration>,
) -> Result<Duration, StorageError> {
    let started = Instant::now();
    // Acknowledgements are awaited by a separate task, in order, so each is timed when it
    // arrives rather than after the submission loop.
    let (pending, mut acks) = tokio::sync::mpsc::unbounded_channel();
    let waiter = tokio::spawn(async move {
        let mut took = Vec::new();
        while let Some((submitted, ticket)) = acks.recv().await {
            let submitted: Instant = submitted;
            let ticket: crate::CommitTicket = ticket;
            ticket.wait().await?;
            took.push(submitted.elapsed());
        }
        Ok::<_, StorageError>(took)
    });
    for (block, certificate) in blocks {
        let submitted = Instant::now();
        let ticket = group.submit(block, &certificate).await?;
        // The waiter only stops early on an error, which it returns below.
        let _ = pending.send((submitted, ticket));
    }
    drop(pending);
    let took = waiter
        .await
        .map_err(|error| StorageError::Config(format!("benchmark waiter failed: {error}")))??;
    latencies.extend(took);
    Ok(started.elapsed())
}

/// Nearest-rank percentile.
fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut samples: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        assert_eq!(percentile(&mut samples, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&mut samples, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&mut [], 50.0), Duration::ZERO);
    }
}
