//! Four validators; the primary of view 0 is Byzantine and silent. Reference: Castro &
//! Liskov, OSDI '99, §4.4 (view changes): the backups' request timers expire, they move to
//! view 1, whose primary sends NEW-VIEW, and requests commit there.

use aegis_sim::{Behavior, TestBuilder};

#[test]
fn backups_elect_the_next_primary_and_commit() {
    let outcome = TestBuilder::new(4).byzantine(0, Behavior::Silent).run();
    assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
    for node in 1..4 {
        assert!(outcome.views[node] >= 1, "node {node} left view 0");
        assert_eq!(outcome.statuses[node], "normal");
        assert!(outcome.heights[node] >= 5);
    }
    assert!(outcome.view_changes_started >= 3);
}

/// Seven validators, the primaries of views 0 and 1 both silent (f = 2): two view changes in
/// a row, the second with a doubled timeout (§4.5.2), then progress in view 2.
#[test]
fn two_silent_primaries_in_a_row_of_seven() {
    let outcome = TestBuilder::new(7)
        .byzantine(0, Behavior::Silent)
        .byzantine(1, Behavior::Silent)
        .run();
    assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
    for node in 2..7 {
        assert!(
            outcome.views[node] >= 2,
            "node {node}: view {}",
            outcome.views[node]
        );
        assert!(outcome.heights[node] >= 1);
    }
}
