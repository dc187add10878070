//! Four validators, checkpoints every 3 blocks. Reference: Castro & Liskov, OSDI '99, §4.3
//! (garbage collection): checkpoints become stable with 2f + 1 matching votes and move the
//! low watermark, bounding the log.

use aegis_sim::{Crash, TestBuilder};

#[test]
fn stable_checkpoints_follow_the_chain() {
    let outcome = TestBuilder::new(4)
        .checkpoint_interval(3)
        .pipeline_depth(2)
        .run();
    assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
    for (height, stable) in outcome.heights.iter().zip(&outcome.stable_checkpoints) {
        assert!(*stable > 0 && stable % 3 == 0, "stable {stable}");
        assert!(
            *stable <= *height && height - stable < 2 * 3,
            "height {height}, stable {stable}"
        );
    }
}

/// A node down across several checkpoints learns the stable proof from its peers and
/// fetches the blocks it missed (§4.3 state transfer, here block sync with certificates).
#[test]
fn a_node_down_across_checkpoints_catches_up_by_sync() {
    let mut builder = TestBuilder::new(4).checkpoint_interval(2);
    builder = builder.crash(3, 200, 2_500);
    let scenario = builder.scenario();
    assert_eq!(
        scenario.crashes,
        vec![Crash {
            node: 3,
            at_ms: 200,
            restart_ms: 2_500
        }]
    );
    let outcome = aegis_sim::Simulation::new(scenario).run();
    assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
    assert_eq!(outcome.heights[3], outcome.heights[0]);
    assert!(outcome.sync_requests > 0);
}
