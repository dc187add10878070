//! The monitoring port: `GET <metrics_path>` (the node's registry, as OpenMetrics when the
//! scraper asks for it in `Accept` and as the classic Prometheus text format otherwise, as
//! the official client libraries negotiate) and `GET /status` (JSON: identity, ledger,
//! consensus, sync, peers, mempool).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::{ApiError, NodeStatus, SyncState};

/// The media type a scraper names in `Accept` to get OpenMetrics.
const OPENMETRICS_MEDIA_TYPE: &str = "application/openmetrics-text";

/// The metrics route at `metrics_path` (a missing leading `/` is added) and `/status`.
pub fn router(status: Arc<NodeStatus>, metrics_path: &str) -> Router {
    let path = if metrics_path.starts_with('/') {
        metrics_path.to_owned()
    } else {
        format!("/{metrics_path}")
    };
    Router::new()
        .route(&path, get(metrics))
        .route("/status", get(node_status))
        .with_state(status)
}

async fn metrics(
    State(status): State<Arc<NodeStatus>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok());
    let (content_type, text) = if wants_openmetrics(accept) {
        (
            aegis_telemetry::OPENMETRICS_CONTENT_TYPE,
            status.metrics().encode_text(),
        )
    } else {
        (
            aegis_telemetry::CLASSIC_CONTENT_TYPE,
            status.metrics().encode_classic_text(),
        )
    };
    let text = text.map_err(|error| ApiError::Internal(format!("encode the metrics: {error}")))?;
    Ok(([(header::CONTENT_TYPE, content_type)], text).into_response())
}

/// True when `accept` prefers OpenMetrics to the classic text format: it names
/// `application/openmetrics-text` with a non-zero quality at least that of `text/plain`.
/// Prometheus sends `application/openmetrics-text;version=1.0.0,...,text/plain;version=0.0.4;q=0.5,...`;
/// curl sends `*/*` and gets the classic format.
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    let Some(accept) = accept else {
        return false;
    };
    let mut openmetrics = 0.0_f64;
    let mut classic = 0.0_f64;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let quality = parts
            .filter_map(|param| param.split_once('='))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
            .and_then(|(_, value)| value.trim().parse::<f64>().ok())
            .unwrap_or(1.0);
        if media == OPENMETRICS_MEDIA_TYPE {
            openmetrics = openmetrics.max(quality);
        } else if media == "text/plain" {
            classic = classic.max(quality);
        }
    }
    openmetrics > 0.0 && openmetrics >= classic
}

async fn node_status(State(status): State<Arc<NodeStatus>>) -> Response {
    let network = status.network();
    let ledger = status.ledger();
    let peers = network.peers();
    let view = status.node().map(|node| node.consensus());
    let block_height = view
        .as_ref()
        .map_or(0, |view| view.height)
        .max(ledger.height());
    let latest_block_hash = match &view {
        Some(view) => Some(view.latest_hash.to_hex()),
        None => match status.ledger_store() {
            // Best effort: a ledger that does not answer shows in `storage` already.
            Some(store) => store
                .tip()
                .await
                .ok()
                .flatten()
                .map(|tip| tip.hash.to_hex()),
            None => None,
        },
    };
    let sync_status = match &view {
        Some(view) => view.sync.as_str(),
        None => status.sync_status(peers.len()),
    };
    let sync_target_height = match view.as_ref().map(|view| view.sync) {
        Some(SyncState::Syncing { target }) => Some(target),
        _ => None,
    };
    // Percent of the target the ledger holds, while syncing.
    let sync_progress = sync_target_height.map(|target| {
        let height = block_height.min(target);
        (height as f64 * 1000.0 / target.max(1) as f64).floor() / 10.0
    });
    let body = json!({
        "node_id": status.node_id(),
        "version": env!("CARGO_PKG_VERSION"),
        "algorithm": status.algorithm(),
        "chain_id": status.chain_id(),
        "validator_id": network.validator_id().map(|id| id.0),
        "public_key": network.public_key().to_hex(),
        "block_height": block_height,
        "latest_block_hash": latest_block_hash,
        "storage": ledger.fault().map_or_else(|| json!("ok"), |fault| json!({ "fault": fault })),
        "sync_status": sync_status,
        "sync_target_height": sync_target_height,
        "sync_progress": sync_progress,
        "network_height": view.as_ref().map(|view| view.network_height),
        "view": view.as_ref().map(|view| view.view),
        "primary": view.as_ref().and_then(|view| view.primary.clone()),
        "role": view.as_ref().map(|view| view.role),
        "peers": peers.len(),
        "validators": status.validator_count(),
        "mempool": view.as_ref().map(|view| json!({
            "size": view.mempool_transactions,
            "bytes": view.mempool_bytes,
        })),
        "consensus": {
            "running": view.as_ref().is_some_and(|view| view.running),
            "last_commit_ms": view.as_ref().and_then(|view| view.last_commit_ms),
        },
        "uptime_seconds": status.uptime_seconds(),
        "process": process_figures(),
        "p2p": {
            "listen": network.local_addr().to_string(),
            "peers": peers.len(),
            "validators": status.validator_count(),
            "banned_ips": network.banned_count(),
            "messages_received": status.messages_received(),
            "connected": peers.iter().map(|p| json!({
                "validator_id": p.id.0,
                "name": p.name,
                "direction": p.direction.label(),
                "remote": p.remote_addr.to_string(),
                "rtt_ms": p.rtt.map(|rtt| rtt.as_secs_f64() * 1000.0),
                "queued": p.queued,
            })).collect::<Vec<_>>(),
        },
    });
    axum::Json(body).into_response()
}

/// Most bytes read of `/proc/self/stat` or `/proc/self/status`.
const MAX_PROC_SELF_BYTES: u64 = 64 * 1024;

/// This process's CPU time, resident memory and threads, from `/proc/self` (for `aegis
/// monitor`, which turns CPU seconds into a percentage between two reads), and the part of
/// the memory SQLite holds (its page caches, bounded by configuration) and the allocator's
/// heap figures; `null` where `/proc` is not there.
fn process_figures() -> serde_json::Value {
    use std::io::Read;
    let read = |path: &str| {
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|file| file.take(MAX_PROC_SELF_BYTES).read_to_string(&mut text))
            .ok()
            .map(|_| text)
    };
    let Some(stat) = read("/proc/self/stat") else {
        return serde_json::Value::Null;
    };
    let status = read("/proc/self/status").unwrap_or_default();
    let heap = heap_figures();
    // Fields after the command name, which may hold spaces: utime and stime are the 12th
    // and 13th after the closing parenthesis.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // USER_HZ is 100 on every Linux architecture AEGIS runs on.
    let cpu_seconds = (ticks(11) + ticks(12)) as f64 / 100.0;
    let kb = |name: &str| {
        status
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    json!({
        "pid": std::process::id(),
        "cpu_seconds": cpu_seconds,
        "rss_bytes": kb("VmRSS:").map(|kb| kb * 1024),
        "threads": kb("Threads:"),
        "sqlite_memory_bytes": aegis_storage::sqlite_memory().map(|memory| memory.used_bytes),
        "heap_in_use_bytes": heap.map(|heap| heap.in_use),
        "heap_held_bytes": heap.map(|heap| heap.held),
    })
}

/// The allocators' own account of the heap: what the program holds now and what the
/// allocators keep from the OS. Resident memory is a high-water mark of the second; the first
/// falling back after a burst shows the memory was freed and only kept for reuse. The
/// `aegis` binary allocates through jemalloc (Rust's heap) and glibc malloc (SQLite and
/// other C code): the figures are the sum of both.
#[derive(Clone, Copy, Debug)]
struct HeapFigures {
    in_use: u64,
    held: u64,
}

/// Both allocators' figures; `None` where glibc does not report its own.
fn heap_figures() -> Option<HeapFigures> {
    let glibc = glibc_heap_figures()?;
    let jemalloc = jemalloc_heap_figures().unwrap_or(HeapFigures { in_use: 0, held: 0 });
    Some(HeapFigures {
        in_use: glibc.in_use + jemalloc.in_use,
        held: glibc.held + jemalloc.held,
    })
}

/// jemalloc's figures (`stats.allocated`, `stats.resident`, refreshed by advancing its
/// epoch); near zero where jemalloc is linked but is not the global allocator.
fn jemalloc_heap_figures() -> Option<HeapFigures> {
    tikv_jemalloc_ctl::epoch::advance().ok()?;
    let in_use = tikv_jemalloc_ctl::stats::allocated::read().ok()?;
    let held = tikv_jemalloc_ctl::stats::resident::read().ok()?;
    Some(HeapFigures {
        in_use: in_use as u64,
        held: held.max(in_use) as u64,
    })
}

/// glibc's `mallinfo2`, all arenas and mmapped blocks.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn glibc_heap_figures() -> Option<HeapFigures> {
    // SAFETY: `mallinfo2` takes no argument and returns a plain struct by value; it reads
    // the allocator's statistics under each arena's own lock and is safe from any thread.
    #[expect(unsafe_code, reason = "glibc's heap statistics have no safe wrapper")]
    let info = unsafe { libc::mallinfo2() };
    let bytes = |v: usize| v as u64;
    Some(HeapFigures {
        in_use: bytes(info.uordblks) + bytes(info.hblkhd),
        held: bytes(info.arena) + bytes(info.hblkhd),
    })
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn glibc_heap_figures() -> Option<HeapFigures> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrapers_that_ask_for_openmetrics_get_it_and_others_the_classic_format() {
        // Prometheus 2.x and 3.x.
        assert!(wants_openmetrics(Some(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        )));
        assert!(wants_openmetrics(Some(
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        )));
        for classic in [
            None,
            Some("*/*"),
            Some("text/plain"),
            Some("text/plain;version=0.0.4;q=1,application/openmetrics-text;q=0.5"),
            Some("application/openmetrics-text;q=0"),
            Some("application/json"),
        ] {
            assert!(!wants_openmetrics(classic), "{classic:?}");
        }
    }
}
