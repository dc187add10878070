//! The heaps of the `aegis` process. Rust's heap is jemalloc's (docs/adr/0022-jemalloc.md),
//! with the options below; C code (SQLite) allocates from glibc malloc, whose arenas this
//! caps and whose freed pages it hands back to the OS (docs/adr/0019-malloc-arenas.md): only
//! on glibc, elsewhere nothing is changed.

use std::time::Duration;

/// jemalloc's options in the `aegis` binary (docs/adr/0023-jemalloc-decay.md): jemalloc's
/// background threads hand freed pages back to the OS after 1 s instead of jemalloc's default
/// 10 s (and at once, not kept as "muzzy" pages: jemalloc's default, stated). Under a node's
/// sustained load the allocator otherwise kept 20-35 MB beyond what the program held, in
/// swings that follow the load's bursts. `_RJEM_MALLOC_CONF`, read after this, overrides any
/// of them. jemalloc reads the options at start-up from its `malloc_conf` variable (here the
/// prefixed build's `_rjem_malloc_conf`), which it declares weak for programs to define.
// SAFETY: jemalloc declares `const char *malloc_conf`; this defines it as a pointer
// (`&[u8; N]` is one, not a slice's pointer and length) to a static, NUL-terminated array
// that lives for the whole process and is never written. jemalloc only reads it once, while
// it initialises.
#[expect(
    unsafe_code,
    reason = "jemalloc's documented way to set options at build time"
)]
#[unsafe(export_name = "_rjem_malloc_conf")]
#[used]
static JEMALLOC_CONF: &[u8; 60] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

/// How often a running node returns the heap's free pages to the OS (`malloc_trim`).
/// glibc gives memory back on its own only from the top of each arena, so under sustained
/// load resident memory keeps each arena's high-water mark and creeps up as free space
/// fragments; every 10 s the whole pages inside free chunks go back instead.
pub const HEAP_TRIM_INTERVAL: Duration = Duration::from_secs(10);

/// At most two glibc malloc arenas, unless the operator set `MALLOC_ARENA_MAX` (glibc reads
/// it itself). By default glibc gives each new thread that meets a locked arena an arena of
/// its own (up to eight per core), and memory freed into one arena is not reused by the
/// others: under sustained load a node's heap kept growing after warm-up (155 MB after 100 s
/// at 6,300 tx/s and still rising; with two arenas flat at 130 MB from the 50th second on, at
/// the same throughput).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn cap_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    // SAFETY: `mallopt` only sets one of glibc malloc's tunables (a plain integer) and is
    // safe to call at any time; this runs first thing in `main`, before any thread starts.
    // It returns 0 if the value is refused, which leaves glibc's default: nothing to undo.
    #[expect(unsafe_code, reason = "a libc call with no safe wrapper; see above")]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn cap_malloc_arenas() {}

/// Starts the thread that trims the heap every [`HEAP_TRIM_INTERVAL`] for the life of the
/// process (a node). If the thread cannot start, the node runs without it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn start_heap_trimmer() {
    let spawned = std::thread::Builder::new()
        .name("aegis-heap-trim".into())
        .spawn(|| {
            loop {
                std::thread::sleep(HEAP_TRIM_INTERVAL);
                trim();
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "Cannot start the heap trimmer; freed memory stays with malloc");
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn start_heap_trimmer() {}

/// One `malloc_trim(0)`: every arena's free whole pages back to the OS (glibc 2.8 and later).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: `malloc_trim` takes a plain integer, locks each arena itself while it works and
    // only releases pages that no allocation holds; it is safe from any thread at any time.
    #[expect(unsafe_code, reason = "a libc call with no safe wrapper; see above")]
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    /// A block of glibc's heap, as SQLite allocates (the binary's Rust heap is jemalloc's),
    /// filled with `fill` so that its pages are resident; freed when dropped.
    struct GlibcBlock(*mut libc::c_void);

    const BLOCK_BYTES: usize = 4000;

    impl GlibcBlock {
        fn new(fill: u8) -> GlibcBlock {
            // SAFETY: `malloc` returns either null or a block of BLOCK_BYTES bytes owned by
            // this value alone; it is written only within those bytes, and freed once (Drop).
            #[expect(unsafe_code, reason = "glibc's own heap, as SQLite uses it")]
            unsafe {
                let block = libc::malloc(BLOCK_BYTES);
                assert!(!block.is_null(), "malloc({BLOCK_BYTES}) failed");
                std::ptr::write_bytes(block.cast::<u8>(), fill, BLOCK_BYTES);
                GlibcBlock(block)
            }
        }
    }

    impl Drop for GlibcBlock {
        fn drop(&mut self) {
            // SAFETY: the block came from `malloc` and is freed exactly once, here.
            #[expect(unsafe_code, reason = "glibc's own heap, as SQLite uses it")]
            unsafe {
                libc::free(self.0);
            }
        }
    }

    /// jemalloc runs with [`JEMALLOC_CONF`]: the variable is linked under the name jemalloc
    /// reads (a misspelt or unlinked one is ignored silently, and jemalloc keeps its default
    /// dirty decay of 10 s).
    #[test]
    fn jemalloc_runs_with_the_binarys_options() {
        // SAFETY: both options are `ssize_t` in jemalloc, read into an `isize`.
        #[expect(
            unsafe_code,
            reason = "jemalloc's mallctl has no safe reader for these"
        )]
        let (dirty, muzzy) = unsafe {
            (
                tikv_jemalloc_ctl::raw::read::<isize>(b"opt.dirty_decay_ms\0"),
                tikv_jemalloc_ctl::raw::read::<isize>(b"opt.muzzy_decay_ms\0"),
            )
        };
        assert_eq!(dirty.ok(), Some(1000), "opt.dirty_decay_ms");
        assert_eq!(muzzy.ok(), Some(0), "opt.muzzy_decay_ms");
        assert_eq!(
            tikv_jemalloc_ctl::opt::background_thread::read().ok(),
            Some(true),
            "opt.background_thread"
        );
    }

    /// Freed memory below a live block is returned by a trim, not by `free` alone.
    #[test]
    fn a_trim_gives_freed_pages_back() {
        let rss = || crate::ops::host::process_rss_bytes(std::process::id()).unwrap_or(0);
        // Many small blocks (served from the arena, not mmapped), all touched, then freed,
        // with one allocated after them that keeps the arena's top from shrinking by itself.
        let blocks: Vec<GlibcBlock> = (0..20_000).map(|i| GlibcBlock::new(i as u8)).collect();
        let keep = GlibcBlock::new(1);
        let with_blocks = rss();
        drop(blocks);
        trim();
        let after_trim = rss();
        assert!(
            after_trim + 40 * 1024 * 1024 < with_blocks,
            "resident {with_blocks} bytes with the blocks, {after_trim} after freeing and a trim"
        );
        drop(keep);
    }
}
