//! Four validators; the primary of view 0 equivocates, sending one batch to half the backups
//! and another to the rest. Reference: Castro & Liskov, OSDI '99, §4.2 (a backup accepts one
//! pre-prepare per view and sequence number, so at most one batch can prepare) and §4.4 (the
//! faulty primary is replaced).

use aegis_sim::{Behavior, NetworkFaults, TestBuilder};

#[test]
fn conflicting_pre_prepares_never_commit_two_blocks() {
    let outcome = TestBuilder::new(4)
        .byzantine(0, Behavior::EquivocatingPrimary)
        .run();
    assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
    assert!(
        outcome.view_changes_started > 0,
        "the equivocating primary is replaced"
    );
    for node in 1..4 {
        assert!(outcome.heights[node] >= 5);
    }
}

/// Byzantine f = 2 of 7, every misbehaviour the simulator knows, on a lossy network.
#[test]
fn n7f2_mixed_byzantine_behaviours() {
    for (a, b) in [
        (Behavior::EquivocatingPrimary, Behavior::ConflictingVotes),
        (Behavior::InvalidSignatures, Behavior::Flood),
        (Behavior::Replay, Behavior::Silent),
    ] {
        let outcome = TestBuilder::new(7)
            .byzantine(0, a)
            .byzantine(3, b)
            .network(NetworkFaults {
                drop_per_mille: 50,
                duplicate_per_mille: 50,
                reorder_per_mille: 50,
                min_delay_ms: 1,
                max_delay_ms: 30,
            })
            .run();
        assert!(
            outcome.violations.is_empty(),
            "{a:?}+{b:?}: {:?}",
            outcome.violations
        );
        let rejected: u64 = outcome.rejections.values().sum();
        assert!(rejected > 0);
    }
}
