//! `performance:`: worker counts, caches and buffer sizes.

use std::time::Duration;

use crate::file::{BufferSizesFile, CacheFile, MemoryFile, PerformanceFile};

use super::checker::Checker;

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
        max_workers: ck.count("performance.max_workers", max_workers),
        thread_pool_size: ck.count("performance.thread_pool_size", thread_pool_size),
        connection_pool_size: ck.count("performance.connection_pool_size", connection_pool_size),
        cache: CacheConfig {
            enabled,
            max_size,
            ttl: ck.seconds("performance.cache.ttl", ttl),
        },
        memory: MemoryConfig {
            max_cache_size_mb: ck.int(
                "performance.memory.max_cache_size",
                max_cache_size,
                1,
                u64::MAX >> 20,
            ),
            gc_threshold,
        },
        buffer_sizes: BufferSizes {
            network_bytes: ck.size("performance.buffer_sizes.network", network),
            storage_bytes: ck.size("performance.buffer_sizes.storage", storage),
            consensus_bytes: ck.size("performance.buffer_sizes.consensus", consensus),
        },
    }
}
