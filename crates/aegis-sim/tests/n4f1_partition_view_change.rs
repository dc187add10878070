//! Four validators and partitions. Reference: Castro & Liskov, OSDI '99, §4.4 (view changes)
//! and §4.5.2 (liveness: view-change timeouts double; a replica joins a view change that f + 1
//! others asked for).

use aegis_sim::TestBuilder;

/// The primary is cut off: the other three form a quorum, change view and go on; after the
/// partition heals the old primary learns the new view and catches up.
#[test]
fn isolated_primary_is_replaced_and_rejoins_after_heal() {
    let outcome = TestBuilder::new(4)
        .partition(&[0], 500, 2_500)
        .load_until(3_000)
        .run();
    assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
    for node in 1..4 {
        assert!(outcome.views[node] >= 1);
    }
    assert_eq!(
        outcome.heights[0], outcome.heights[1],
        "the old primary caught up"
    );
}

/// A 2-2 split leaves no quorum anywhere: nothing commits and view changes fail, with
/// growing timeouts, until the network heals; then the cluster agrees on a view and commits.
#[test]
fn split_without_quorum_stalls_safely_then_recovers() {
    let outcome = TestBuilder::new(4)
        .partition(&[0, 1], 400, 4_000)
        .load_until(4_000)
        .run();
    assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
    assert!(outcome.view_changes_started >= 2);
    assert!(outcome.heights.iter().all(|h| *h == outcome.heights[0]));
    assert!(outcome.liveness_ms.is_some());
}
