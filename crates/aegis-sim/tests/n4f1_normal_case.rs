//! Four validators, no faults. Reference: Castro & Liskov, OSDI '99, §4.2 (normal-case
//! operation): requests are ordered in view 0 without any view change.

use aegis_sim::TestBuilder;

#[test]
fn every_node_commits_the_same_chain_in_view_zero() {
    let outcome = TestBuilder::new(4).run();
    assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
    assert!(
        outcome
            .heights
            .iter()
            .all(|h| *h == outcome.heights[0] && *h >= 10),
        "{:?}",
        outcome.heights
    );
    assert_eq!(outcome.views, vec![0, 0, 0, 0]);
    assert_eq!(outcome.view_changes_started, 0);
    // The probe commits within a few message delays.
    let liveness = outcome.liveness_ms.unwrap();
    assert!(liveness < 3_100 + 500, "probe committed at {liveness} ms");
}

#[test]
fn seven_nodes_with_lossy_network_still_agree() {
    let outcome = TestBuilder::new(7)
        .network(aegis_sim::NetworkFaults {
            drop_per_mille: 100,
            duplicate_per_mille: 50,
            reorder_per_mille: 50,
            min_delay_ms: 1,
            max_delay_ms: 40,
        })
        .run();
    assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
    assert!(outcome.heights.iter().all(|h| *h == outcome.heights[0]));
}
