//! What the running node tells the machine it runs on: systemd's readiness notification
//! (`Type=notify` in `deploy/systemd/aegis.service`), and the metrics an operator's alerts
//! need beyond the components' own (how full the data directory's file system and the
//! mempool may get, how many validators make a quorum).
//!
//! Both are called once by `aegis run` ([`crate::cmd::run`]): [`register_metrics`] when the
//! registry is made, [`notify_when_ready`] once every component is started.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use aegis_api::NodeApi;
use aegis_telemetry::{Metrics, info, warn};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Unit;

use crate::preflight::Preflight;

/// How often [`notify_when_ready`] looks at the consensus engine until it runs.
pub const READY_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// Tells systemd (when the node runs under it, with `NOTIFY_SOCKET` set) that the node is
/// ready, once it is: its P2P, API and monitoring ports are bound (the caller has started
/// them) and its consensus engine runs, so `/health` answers 200. `systemctl start aegis`
/// returns only then, and units ordered after it start only then; a node that never gets
/// there is stopped by systemd's `TimeoutStartSec`, or exits by itself (engine failure).
/// Without `NOTIFY_SOCKET` (not under systemd, or `Type=simple`) nothing is sent.
///
/// Runs as a task of the node's runtime, which ends it if the node stops first.
pub fn notify_when_ready(node: &Preflight, engine: Arc<dyn NodeApi>) {
    let config = &node.config;
    let monitoring = if config.monitoring.enabled {
        format!("metrics {}", config.monitoring.metrics_port)
    } else {
        "metrics off".to_owned()
    };
    let status = format!(
        "Serving: P2P {}, API {}, {monitoring}",
        config.p2p.port, config.api.port
    );
    tokio::spawn(async move {
        while !engine.consensus().running {
            tokio::time::sleep(READY_POLL).await;
        }
        notify_ready(&status);
    });
}

fn notify_ready(status: &str) {
    let states = [
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(status),
    ];
    match sd_notify::notify(&states) {
        Ok(()) if std::env::var_os("NOTIFY_SOCKET").is_some() => {
            info!(status = %status, "Readiness sent to systemd");
        }
        Ok(()) => {}
        // The node serves either way; systemd will time the start out and say so.
        Err(error) => warn!(%error, "Cannot notify systemd of readiness"),
    }
}

/// Registers the node's operational metrics into `metrics`:
///
/// - `aegis_storage_disk_available_bytes` and `aegis_storage_disk_size_bytes`: the file
///   system holding `node.data_dir` (the ledger, the consensus log, the peer book), read at
///   each scrape (the bytes an unprivileged process may still use, and the total);
/// - `aegis_mempool_max_transactions` and `aegis_mempool_max_bytes`: the configured bounds
///   of the mempool (`mempool.max_transactions`, `mempool.max_bytes`), beside
///   `aegis_mempool_size` and `aegis_mempool_bytes`;
/// - `aegis_consensus_validators` and `aegis_consensus_quorum`: the genesis validator set's
///   size and the votes a block needs, beside `aegis_p2p_peers`.
pub fn register_metrics(metrics: &Metrics, node: &Preflight) {
    let constant = |name: &str, help: &str, value: u64| {
        let gauge = Gauge::<i64>::default();
        gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
        metrics.register(name, help, gauge);
    };
    let mempool = &node.config.mempool;
    constant(
        "mempool_max_transactions",
        "Most transactions the mempool holds (mempool.max_transactions)",
        mempool.max_transactions as u64,
    );
    constant(
        "mempool_max_bytes",
        "Most encoded bytes the mempool holds (mempool.max_bytes)",
        mempool.max_bytes as u64,
    );
    let validators = node.genesis.validators.len() as u64;
    let quorum = match node.genesis.validator_set() {
        Ok(set) => set.quorum() as u64,
        // Preflight checked the set already; fall back to the n = 3f + 1 arithmetic.
        Err(_) => validators * 2 / 3 + 1,
    };
    constant(
        "consensus_validators",
        "Validators in the genesis",
        validators,
    );
    constant("consensus_quorum", "Votes a block needs to commit", quorum);
    metrics.with_registry(|registry| {
        registry.register_collector(Box::new(DiskSpace {
            path: node.config.node.data_dir.clone(),
        }));
    });
}

/// `aegis_storage_disk_*_bytes` of the file system holding `path`, read when scraped.
#[derive(Debug)]
struct DiskSpace {
    path: PathBuf,
}

/// Bytes available to an unprivileged process, and the file system's size.
fn disk_space(path: &Path) -> std::io::Result<(u64, u64)> {
    let stats = rustix::fs::statvfs(path)?;
    let block = stats.f_frsize;
    Ok((
        stats.f_bavail.saturating_mul(block),
        stats.f_blocks.saturating_mul(block),
    ))
}

impl Collector for DiskSpace {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // A file system that cannot be read (the directory vanished) has no samples: an
        // absent series, not a misleading zero. The alert on it then does not fire, but
        // storage faults turn /health unhealthy by themselves.
        let Ok((available, size)) = disk_space(&self.path) else {
            return Ok(());
        };
        for (name, help, value) in [
            (
                "storage_disk_available",
                "Bytes still available to the node on the file system of its data directory",
                available,
            ),
            (
                "storage_disk_size",
                "Size of the file system of the node's data directory",
                size,
            ),
        ] {
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            let metric =
                encoder.encode_descriptor(name, help, Some(&Unit::Bytes), MetricType::Gauge)?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn disk_space_of_an_existing_directory_is_some_of_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let (available, size) = disk_space(dir.path()).unwrap();
        assert!(size > 0);
        assert!(available <= size);
    }

    #[test]
    fn the_collector_encodes_both_gauges_with_the_prefix_and_unit() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Metrics::new();
        metrics.with_registry(|registry| {
            registry.register_collector(Box::new(DiskSpace {
                path: dir.path().to_owned(),
            }));
        });
        let text = metrics.encode_classic_text().unwrap();
        assert!(
            text.contains("# TYPE aegis_storage_disk_available_bytes gauge"),
            "{text}"
        );
        assert!(text.contains("\naegis_storage_disk_size_bytes "), "{text}");

        // A directory that is gone has no samples rather than zeros.
        let gone = Metrics::new();
        gone.with_registry(|registry| {
            registry.register_collector(Box::new(DiskSpace {
                path: dir.path().join("missing"),
            }));
        });
        let text = gone.encode_classic_text().unwrap();
        assert!(!text.contains("aegis_storage_disk"), "{text}");
    }
}
