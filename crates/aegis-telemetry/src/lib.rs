//! AEGIS telemetry: the node's logs and metrics plumbing.
//!
//! This crate owns:
//!
//! - **The log line format** ([`JsonLayer`]): one flat JSON object per line with
//!   `timestamp`, `level` (`WARNING`, not `WARN`), `logger`, `message`, `module`,
//!   `function`, `line`, `node_id`, and `peer_id` / `transaction_id` where they apply
//!   (SPEC.md, "Logs"). The operators' scripts and the fail2ban filter grep these lines.
//! - **The log file** ([`LogFile`]): created with its directory, written synchronously
//!   one whole line per write, reopened in place after logrotate.
//! - **Logging setup** ([`init`]): the global subscriber with the file, an optional
//!   human-readable console on stderr, and the level filter (config, overridden by
//!   `AEGIS_LOG` or `RUST_LOG`).
//! - **SIGHUP fan-out** ([`SighupHub`]): one signal thread for the process; the log file
//!   and any other component (TLS certificate reload, …) subscribe to it.
//! - **The metrics registry** ([`Metrics`]): one per node, passed in, encoded as
//!   OpenMetrics text or the classic Prometheus text format ([`openmetrics_to_classic`]),
//!   with the `aegis_node_info` metric.
//! - **The metrics structs of consensus, mempool, storage writes and sync**
//!   ([`ConsensusMetrics`], [`MempoolMetrics`], [`StorageMetrics`], [`SyncMetrics`]),
//!   which the node's wiring registers and updates.
//!
//! It does not own what gets logged or measured: each component emits its own events and
//! defines its own metrics struct, registered into the node's [`Metrics`].
//!
//! # Typical startup
//!
//! ```no_run
//! # fn main() -> Result<(), aegis_telemetry::TelemetryError> {
//! use aegis_telemetry::{LogOptions, Metrics, SighupHub};
//!
//! let handle = aegis_telemetry::init(&LogOptions::new("validator-1"))?;
//! let hub = SighupHub::start()?;
//! if let Some(file) = handle.log_file() {
//!     aegis_telemetry::reopen_on_sighup(&hub, file.clone());
//! }
//! hub.subscribe("tls reload", || { /* notify the TLS component */ });
//!
//! let metrics = Metrics::new();
//! metrics.register_node_info(env!("CARGO_PKG_VERSION"), "validator-1", "aegis-main");
//! // ... pass `&metrics` to each component; serve `metrics.encode_text()?`.
//! # Ok(()) }
//! ```

mod classic;
mod error;
mod file;
mod init;
mod json;
mod macros;
mod metrics;
mod node_metrics;
mod sighup;

pub use classic::{CLASSIC_CONTENT_TYPE, openmetrics_to_classic};
pub use error::TelemetryError;
pub use file::{LogFile, LogFileWriter};
pub use init::{
    AEGIS_LOG_ENV, DEFAULT_LOG_FILE, LogHandle, LogOptions, RUST_LOG_ENV, init, level_filter,
};
pub use json::{JsonLayer, format_rfc3339_millis};
pub use metrics::{METRIC_PREFIX, METRICS_CONTENT_TYPE, Metrics, OPENMETRICS_CONTENT_TYPE};
pub use node_metrics::{
    COMMIT_LATENCY_BUCKETS, ConsensusMetrics, MempoolMetrics, ReasonLabels,
    STORAGE_WRITE_LATENCY_BUCKETS, StorageMetrics, SyncMetrics,
};
pub use sighup::{SighupHub, reopen_on_sighup, spawn_sighup_reopen};

/// The `prometheus-client` version this crate builds on, so components use the same
/// metric types as the registry.
pub use prometheus_client;

#[doc(hidden)]
pub use macros::fn_name_of;
#[doc(hidden)]
pub use tracing as __tracing;
