//! The metrics text a Prometheus scrape and `curl | grep` see.

// Helpers outside `#[test]` functions are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aegis_telemetry::Metrics;
use aegis_telemetry::prometheus_client::metrics::counter::Counter;
use aegis_telemetry::prometheus_client::metrics::gauge::Gauge;

#[test]
fn node_info_and_component_metrics_are_encoded() {
    let metrics = Metrics::new();
    metrics.register_node_info("0.1.0", "validator-1", "aegis-test");

    // A component's own metrics, registered under its subsystem prefix.
    let blocks = Counter::<u64>::default();
    let view = Gauge::<i64>::default();
    metrics.with_registry(|registry| {
        let consensus = registry.sub_registry_with_prefix("consensus");
        consensus.register("blocks_committed", "Blocks committed", blocks.clone());
        consensus.register("view", "Current PBFT view", view.clone());
    });
    blocks.inc_by(3);
    view.set(7);

    let text = metrics.encode_text().unwrap();
    assert!(text.contains("# TYPE aegis_node info\n"), "{text}");
    assert!(
        text.contains(
            "aegis_node_info{version=\"0.1.0\",node_id=\"validator-1\",chain_id=\"aegis-test\"} 1\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("aegis_consensus_blocks_committed_total 3\n"),
        "{text}"
    );
    assert!(text.contains("aegis_consensus_view 7\n"), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
}

#[test]
fn registries_are_independent() {
    let a = Metrics::new();
    let b = Metrics::new();
    a.register_node_info("0.1.0", "validator-1", "aegis-test");
    assert!(!b.encode_text().unwrap().contains("aegis_node_info"));
}
