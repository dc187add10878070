//! [`Metrics`]: the node's Prometheus registry, created once and passed in.

use std::sync::{Mutex, PoisonError};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Metric, Registry, Unit};

use crate::TelemetryError;

/// Every metric name the node exports starts with this (`aegis_`), added by [`Metrics`].
pub const METRIC_PREFIX: &str = "aegis";

/// The `Content-Type` to serve [`Metrics::encode_text`] with.
///
/// The text is OpenMetrics 1.0 (`prometheus-client` only writes that): it ends with
/// `# EOF` and uses the `info` type. Prometheus chooses its parser from the response's
/// content type and its classic `text/plain; version=0.0.4` parser rejects the `info`
/// type, so OpenMetrics text must be sent with this header, and only to a scraper that
/// asks for it; the others get [`Metrics::encode_classic_text`] with
/// [`CLASSIC_CONTENT_TYPE`](crate::CLASSIC_CONTENT_TYPE).
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The former name of [`OPENMETRICS_CONTENT_TYPE`].
pub const METRICS_CONTENT_TYPE: &str = OPENMETRICS_CONTENT_TYPE;

/// The node's metric registry. Create one per node in `main` and pass `&Metrics` (or an
/// `Arc<Metrics>`) to each component, which registers its own metrics struct (STYLE.md,
/// item 10). Nothing here is global, so tests can run several nodes in one process.
///
/// Names are given without the `aegis_` prefix; the registry adds it
/// (`consensus_view` is exported as `aegis_consensus_view`). Counters get OpenMetrics'
/// `_total` suffix when encoded.
#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// An empty registry whose names start with [`METRIC_PREFIX`].
    pub fn new() -> Self {
        Self {
            registry: Mutex::new(Registry::with_prefix(METRIC_PREFIX)),
        }
    }

    /// Registers one metric. `metric` is usually a clone of a field of the component's
    /// metrics struct; the registry keeps the other clone for encoding.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.with_registry(|registry| registry.register(name, help, metric));
    }

    /// Registers one metric with a unit suffix (`_seconds`, `_bytes`, …).
    pub fn register_with_unit(&self, name: &str, help: &str, unit: Unit, metric: impl Metric) {
        self.with_registry(|registry| registry.register_with_unit(name, help, unit, metric));
    }

    /// Gives `f` the underlying registry, e.g. to register a component's metrics under
    /// `registry.sub_registry_with_prefix("consensus")`.
    pub fn with_registry<R>(&self, f: impl FnOnce(&mut Registry) -> R) -> R {
        // Registering cannot leave the registry half-updated in a way that matters, so a
        // poisoned lock is still usable.
        let mut registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut registry)
    }

    /// Encodes every metric in the OpenMetrics text format; serve it with
    /// [`METRICS_CONTENT_TYPE`].
    ///
    /// # Errors
    ///
    /// [`TelemetryError::EncodeMetrics`] if a metric's encoder fails (the built-in metric
    /// types never do; a custom collector might).
    pub fn encode_text(&self) -> Result<String, TelemetryError> {
        let mut text = String::new();
        self.with_registry(|registry| encode(&mut text, registry))
            .map_err(TelemetryError::EncodeMetrics)?;
        Ok(text)
    }

    /// Encodes every metric in the classic Prometheus text format (0.0.4); serve it with
    /// [`CLASSIC_CONTENT_TYPE`](crate::CLASSIC_CONTENT_TYPE). `promtool check metrics`
    /// accepts it.
    ///
    /// # Errors
    ///
    /// As [`encode_text`](Self::encode_text).
    pub fn encode_classic_text(&self) -> Result<String, TelemetryError> {
        self.encode_text()
            .map(|text| crate::classic::openmetrics_to_classic(&text))
    }

    /// Registers `aegis_node_info{version, node_id, chain_id} 1`, which lets dashboards
    /// join any metric to the node's build and identity.
    pub fn register_node_info(&self, version: &str, node_id: &str, chain_id: &str) {
        self.register_node_labels(vec![
            ("version".to_string(), version.to_string()),
            ("node_id".to_string(), node_id.to_string()),
            ("chain_id".to_string(), chain_id.to_string()),
        ]);
    }

    /// Registers `aegis_node_info{version, node_id, chain_id, algorithm} 1`: as
    /// [`register_node_info`](Self::register_node_info) with the consensus algorithm
    /// (`pbft` or `raft`). Register one of the two, once.
    pub fn register_node_info_with_algorithm(
        &self,
        version: &str,
        node_id: &str,
        chain_id: &str,
        algorithm: &str,
    ) {
        self.register_node_labels(vec![
            ("version".to_string(), version.to_string()),
            ("node_id".to_string(), node_id.to_string()),
            ("chain_id".to_string(), chain_id.to_string()),
            ("algorithm".to_string(), algorithm.to_string()),
        ]);
    }

    fn register_node_labels(&self, labels: Vec<(String, String)>) {
        // The encoder appends `_info` to an info metric's name: "node" -> `aegis_node_info`.
        self.register("node", "AEGIS node build and identity", Info::new(labels));
    }
}
