//! The storage benchmark behind `aegis bench storage`.
//!
//! Appends `blocks` valid blocks of `txs_per_block` really signed transactions carrying
//! `tx_size`-byte payloads, each with a commit certificate signed by a quorum, one database
//! transaction (and one disk sync) per block, with durability on. Blocks are generated in
//! batches between timed sections, so the figures measure storage, not signing. Then reads
//! transactions by id and reports the latency percentiles.

use std::fmt;
use std::time::{Duration, Instant};

use aegis_types::Hash;

use crate::StorageError;
use crate::fixtures::ChainFixture;
use crate::traits::Ledger;

/// Blocks generated (signed) per untimed batch.
const GENERATE_BATCH_BLOCKS: usize = 50;

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
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            blocks: 10_000,
            txs_per_block: 100,
            tx_size: 256,
            reads: 10_000,
            blocks_per_commit: 1,
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
    /// Time spent inside `append_block` calls.
    pub append_time: Duration,
    /// Time spent generating and signing the chain (not part of the figures).
    pub generate_time: Duration,
    pub tx_per_second: f64,
    pub blocks_per_second: f64,
    pub append_p50: Duration,
    pub append_p99: Duration,
    pub reads: usize,
    pub read_p50: Duration,
    pub read_p99: Duration,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Storage benchmark ({}): {} blocks x {} tx x {} B, durability on (one transaction and disk sync per {})",
            self.backend,
            self.blocks,
            self.transactions.checked_div(self.blocks).unwrap_or(0),
            self.tx_size,
            if self.blocks_per_commit <= 1 {
                "block".to_owned()
            } else {
                format!("{} blocks", self.blocks_per_commit)
            }
        )?;
        writeln!(
            f,
            "  append: {} tx in {:.2} s = {:.0} tx/s, {:.1} blocks/s (per commit p50 {:.2} ms, p99 {:.2} ms)",
            self.transactions,
            self.append_time.as_secs_f64(),
            self.tx_per_second,
            self.blocks_per_second,
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
pub async fn run<L: Ledger + ?Sized>(
    store: &L,
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
    let mut remaining = options.blocks;
    while remaining > 0 {
        let batch = remaining.min(GENERATE_BATCH_BLOCKS.max(per_commit) as u64) as usize;
        let started = Instant::now();
        let blocks = fixture.next_blocks(batch, options.txs_per_block, options.tx_size, threads);
        generate_time += started.elapsed();
        for group in blocks.chunks(per_commit) {
            let started = Instant::now();
            match group {
                [(block, certificate)] => store.append_block(block, certificate).await?,
                _ => store.append_blocks(group).await?,
            }
            let took = started.elapsed();
            append_time += took;
            append_latencies.push(took);
        }
        for (block, _) in &blocks {
            for tx in &block.txs {
                if seen.is_multiple_of(stride) && sample_ids.len() < options.reads {
                    sample_ids.push(tx.id());
                }
                seen += 1;
            }
        }
        remaining -= batch as u64;
    }
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
