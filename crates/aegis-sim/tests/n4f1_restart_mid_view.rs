//! Four validators; nodes crash and restart from their persisted state while requests are in
//! flight and while a view change is running. Reference: Castro & Liskov, OSDI '99, §4.4 and
//! the durability rule of ADR 0003 (what a message commits to is persisted before it is
//! sent): the simulator's equivocation checker fails the run if a restarted node ever signs
//! two different messages for one slot.

use aegis_sim::{Behavior, TestBuilder};

#[test]
fn backup_restarts_mid_view_and_keeps_its_promises() {
    let outcome = TestBuilder::new(4).crash(2, 700, 1_600).run();
    assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
    assert_eq!(outcome.heights[2], outcome.heights[0]);
}

#[test]
fn primary_restarts_mid_view() {
    let outcome = TestBuilder::new(4).crash(0, 900, 1_300).run();
    assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
    assert!(outcome.heights.iter().all(|h| *h == outcome.heights[0]));
}

/// Node 1, the next primary, crashes during the view change away from a silent primary and
/// restarts from its persisted VIEW-CHANGE.
#[test]
fn next_primary_restarts_during_the_view_change() {
    let outcome = TestBuilder::new(4)
        .byzantine(0, Behavior::Silent)
        .crash(1, 1_300, 2_600)
        .run();
    assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
    for node in 1..4 {
        assert!(outcome.heights[node] >= 1);
    }
}
