//! Four validators; the primary of view 0 orders every transaction but those of half the
//! clients. Reference: Castro & Liskov, OSDI '99, §4.4: a backup waiting for a request runs a
//! timer that stops only when *that* request executes, so a primary that keeps ordering other
//! requests is still suspected and replaced, and the censored requests commit in a later view.

use aegis_sim::{Behavior, TestBuilder};

#[test]
fn a_censoring_primary_is_replaced_and_the_censored_transactions_commit() {
    // The load goes on while the probe is awaited: the primary keeps committing the other
    // half's transactions, which must not keep restarting the request timer.
    let outcome = TestBuilder::new(4)
        .byzantine(0, Behavior::Censoring)
        .load_after_heal()
        .liveness_bound(30_000)
        .run();
    assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
    assert!(
        outcome.view_changes_started > 0,
        "the censoring primary is replaced"
    );
    for node in 1..4 {
        assert!(outcome.views[node] >= 1, "node {node} left view 0");
    }
}
