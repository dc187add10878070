//! The checkers can fail: with f + 1 = 2 colluding Byzantine validators out of 4, more than
//! PBFT tolerates (Castro & Liskov §4.1 assume at most f = (n - 1) / 3 faulty replicas), the
//! colluding primary shows each honest node a different batch and both colluders vote for
//! both; each honest node then commits a different block at height 1.

use aegis_sim::{Behavior, TestBuilder};

#[test]
fn two_colluders_out_of_four_break_agreement_and_the_checker_says_so() {
    let outcome = TestBuilder::new(4)
        .pipeline_depth(1)
        .byzantine(0, Behavior::Colluding)
        .byzantine(1, Behavior::Colluding)
        .liveness_bound(5_000)
        .run();
    assert!(
        outcome
            .violations
            .iter()
            .any(|v| v.starts_with("agreement:")),
        "{:?}",
        outcome.violations
    );
}

#[test]
fn one_colluder_out_of_four_is_tolerated() {
    let outcome = TestBuilder::new(4)
        .pipeline_depth(1)
        .byzantine(0, Behavior::Colluding)
        .run();
    assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
    assert!(
        outcome.view_changes_started > 0,
        "the split primary is replaced"
    );
}

/// With seven validators, f = 2 colluders (the primary among them) are still tolerated.
#[test]
fn two_colluders_out_of_seven_are_tolerated() {
    let outcome = TestBuilder::new(7)
        .pipeline_depth(1)
        .byzantine(0, Behavior::Colluding)
        .byzantine(1, Behavior::Colluding)
        .run();
    assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
}
