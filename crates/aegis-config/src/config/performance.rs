//! `performance:`: worker counts, caches and buffer sizes.

use std::ops::RangeInclusive;
use std::time::Duration;

use crate::file::{BufferSizesFile, CacheFile, MemoryFile, PerformanceFile};

use super::checker::{Checker, up_to};

/// `performance.max_workers`: each worker is an OS thread; no machine the node runs on has
/// a thousand cores to keep them busy.
pub const PERFORMANCE_MAX_WORKERS_RANGE: RangeInclusive<u64> = 1..=1024;
/// `performance.thread_pool_size`: threads too, bounded as `max_workers`.
pub const PERFORMANCE_THREAD_POOL_SIZE_RANGE: RangeInclusive<u64> = 1..=1024;
/// `performance.connection_pool_size`: connections, bounded as `storage.pool_size`.
pub const PERFORMANCE_CONNECTION_POOL_SIZE_RANGE: RangeInclusive<u64> = 1..=1000;
/// `performance.cache.max_size`: entries held in memory; ten million is gigabytes already.
pub const PERFORMANCE_CACHE_MAX_SIZE_RANGE: RangeInclusive<u64> = 0..=10_000_000;
/// `performance.cache.ttl`: an entry older than a day is better read again.
pub const PERFORMANCE_CACHE_TTL_RANGE: RangeInclusive<Duration> =
    up_to(Duration::from_secs(24 * 3600));
/// `performance.memory.max_cache_size`, in MiB: 64 GiB; a larger number is most likely a
/// value written in KB or bytes.
pub const PERFORMANCE_MEMORY_MAX_CACHE_SIZE_RANGE: RangeInclusive<u64> = 1..=65_536;
/// `performance.buffer_sizes.*`: buffers allocated per connection or per task.
pub const PERFORMANCE_BUFFER_SIZE_RANGE: RangeInclusive<u64> = 1..=64 << 20;

/// `performance:` — worker counts, caches and buffer sizes.
#[derive(Clone, Debug, PartialEq)]
pub struct PerformanceConfig {
    pub max_workers: u32,
    pub thread_pool_size: u32,
    pub connection_pool_size: u32,
    pub cache: CacheConfig,
    pub memory: MemoryConfig,
    pub buffer_sizes: BufferSizes,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    pub enabled: bool,
    /// Entries.
    pub max_size: u64,
    pub ttl: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MemoryConfig {
    /// `memory.max_cache_size`, in megabytes (MiB).
    pub max_cache_size_mb: u64,
    /// Fraction of memory in use that triggers cache eviction; 0 < x <= 1.
    pub gc_threshold: f64,
}

/// `performance.buffer_sizes`, in bytes (the file's "64KB" is 64 × 1024).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BufferSizes {
    pub network_bytes: usize,
    pub storage_bytes: usize,
    pub consensus_bytes: usize,
}

pub(super) fn build_performance(
    ck: &mut Checker<'_, '_>,
    file: PerformanceFile,
) -> PerformanceConfig {
    let PerformanceFile {
        max_workers,
        thread_pool_size,
        connection_pool_size,
        cache,
        memory,
        buffer_sizes,
    } = file;
    let CacheFile {
        enabled,
        max_size,
        ttl,
    } = cache;
    let MemoryFile {
        max_cache_size,
        gc_threshold,
    } = memory;
    let BufferSizesFile {
        network,
        storage,
        consensus,
    } = buffer_sizes;
    if !(gc_threshold > 0.0 && gc_threshold <= 1.0) {
        ck.error(
            "performance.memory.gc_threshold",
            format!("{gc_threshold} is out of range (greater than 0, at most 1)"),
        );
    }
    PerformanceConfig {
        max_workers: ck.int(
            "performance.max_workers",
            max_workers,
            PERFORMANCE_MAX_WORKERS_RANGE,
        ),
        thread_pool_size: ck.int(
            "performance.thread_pool_size",
            thread_pool_size,
            PERFORMANCE_THREAD_POOL_SIZE_RANGE,
        ),
        connection_pool_size: ck.int(
            "performance.connection_pool_size",
            connection_pool_size,
            PERFORMANCE_CONNECTION_POOL_SIZE_RANGE,
        ),
        cache: CacheConfig {
            enabled,
            max_size: ck.int(
                "performance.cache.max_size",
                max_size,
                PERFORMANCE_CACHE_MAX_SIZE_RANGE,
            ),
            ttl: ck.seconds("performance.cache.ttl", ttl, PERFORMANCE_CACHE_TTL_RANGE),
        },
        memory: MemoryConfig {
            max_cache_size_mb: ck.int(
                "performance.memory.max_cache_size",
                max_cache_size,
                PERFORMANCE_MEMORY_MAX_CACHE_SIZE_RANGE,
            ),
            gc_threshold,
        },
        buffer_sizes: BufferSizes {
            network_bytes: ck.size(
                "performance.buffer_sizes.network",
                network,
                PERFORMANCE_BUFFER_SIZE_RANGE,
            ),
            storage_bytes: ck.size(
                "performance.buffer_sizes.storage",
                storage,
                PERFORMANCE_BUFFER_SIZE_RANGE,
            ),
            consensus_bytes: ck.size(
                "performance.buffer_sizes.consensus",
                consensus,
                PERFORMANCE_BUFFER_SIZE_RANGE,
            ),
        },
    }
}
