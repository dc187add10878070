//! The vote fence of a validator that lost its consensus log (`data/consensus/`) but not its
//! ledger: before the loss it may have signed votes for slots beyond its ledger's height, and
//! it no longer knows which. Voting again in those slots could contradict what it signed, so
//! it sends no consensus message until its ledger is past every slot it could have signed:
//! the highest head that at least f+1 peers report, plus the protocol's log window (PBFT
//! votes only inside its watermarks). It still receives, commits what the others certify and
//! syncs, so it catches up; then the fence lifts and it votes again. ADR 0013.

use std::sync::atomic::{AtomicU64, Ordering};

/// The fence is open: the node votes.
const OPEN: u64 = 0;
/// The fence is raised and its height is not known yet (too few peers answered).
const UNKNOWN: u64 = u64::MAX;

/// Whether this node may send consensus messages, shared by the transport (which drops
/// them while the fence is raised) and the syncer (which sets its height and lifts it).
#[derive(Debug)]
pub struct VoteFence {
    until: AtomicU64,
}

impl VoteFence {
    /// A fence that is open: the node votes (its consensus state is intact, or new).
    pub fn open() -> VoteFence {
        VoteFence {
            until: AtomicU64::new(OPEN),
        }
    }

    /// A raised fence whose height the syncer learns from its peers.
    pub fn raised() -> VoteFence {
        VoteFence {
            until: AtomicU64::new(UNKNOWN),
        }
    }

    /// Whether a node whose ledger holds `height` blocks may vote.
    pub fn allows(&self, height: u64) -> bool {
        match self.until.load(Ordering::Acquire) {
            OPEN => true,
            UNKNOWN => false,
            until => height >= until,
        }
    }

    /// Whether the fence is raised and waits for its height.
    pub fn height_unknown(&self) -> bool {
        self.until.load(Ordering::Acquire) == UNKNOWN
    }

    /// The height the node must reach, while the fence is raised with a known height.
    pub fn height(&self) -> Option<u64> {
        match self.until.load(Ordering::Acquire) {
            OPEN | UNKNOWN => None,
            until => Some(until),
        }
    }

    /// Sets the height of a raised fence (at least 1).
    pub fn set_height(&self, height: u64) {
        self.until
            .store(height.clamp(1, UNKNOWN - 1), Ordering::Release);
    }

    /// Lifts the fence: the node votes again.
    pub fn lift(&self) {
        self.until.store(OPEN, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raised_fence_allows_nothing_until_its_height_is_reached_and_then_lifts() {
        let fence = VoteFence::raised();
        assert!(fence.height_unknown());
        assert!(!fence.allows(u64::MAX - 1));
        fence.set_height(120);
        assert_eq!(fence.height(), Some(120));
        assert!(!fence.allows(119));
        assert!(fence.allows(120));
        fence.lift();
        assert!(fence.allows(0) && fence.height().is_none() && !fence.height_unknown());
        assert!(VoteFence::open().allows(0));
        // A height of 0 would read as open: it is kept raised at 1 instead.
        let fence = VoteFence::raised();
        fence.set_height(0);
        assert!(!fence.allows(0) && fence.allows(1));
    }
}
