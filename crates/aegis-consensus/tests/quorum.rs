//! Quorum arithmetic, table-driven. Reference: Castro & Liskov, OSDI '99, §4.1 (n = 3f + 1
//! replicas, quorums of 2f + 1 intersect in at least one correct replica) and §4.3 (the log
//! window L between the watermarks).

mod common;

use common::{config, genesis};

#[test]
fn quorum_weak_quorum_and_primary_rotation() {
    // (n, f, quorum 2f+1, weak quorum f+1)
    for (n, f, q, w) in [(4, 1, 3, 2), (7, 2, 5, 3), (10, 3, 7, 4), (13, 4, 9, 5)] {
        let g = genesis(n, f, 10, 4);
        let c = config(&g, 0);
        assert_eq!(c.quorum(), q, "n={n}");
        assert_eq!(c.weak_quorum(), w, "n={n}");
        // Any two quorums share f + 1 replicas, so at least one correct one.
        assert!(2 * q - n > f as usize);
        for view in 0..(2 * n as u64) {
            assert_eq!(
                c.primary(view).0 as u64,
                view % n as u64,
                "§4.1: p = v mod |R|"
            );
        }
    }
}

#[test]
fn log_window_is_two_checkpoint_intervals_but_never_narrower_than_the_pipeline() {
    for (k, depth, window) in [(100, 4, 200), (5, 4, 10), (1, 4, 4), (2, 64, 64)] {
        let g = genesis(4, 1, k, depth);
        assert_eq!(config(&g, 1).log_window(), window, "K={k} depth={depth}");
    }
}
