//! What the leader knows of one follower's log (Figure 2's nextIndex and matchIndex), with
//! the flow control etcd-io/raft calls `Progress`: while probing (a new leader, or after a
//! refusal) one append is out at a time; once an append succeeded, entries are sent ahead of
//! the acknowledgements (at most [`MAX_INFLIGHT_ENTRIES`]). A heartbeat with nothing
//! acknowledged since the last one presumes what was in flight lost and resends from the match.

use super::config::MAX_INFLIGHT_ENTRIES;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// nextIndex: the next entry to send.
    pub next: u64,
    /// matchIndex: the highest entry known to match the leader's log (§5.3).
    pub matched: u64,
    /// The follower's committed height, as its latest answer said. Not a maximum: an answer
    /// that vouches only for synced entries leaves before the ledger's flush, so a follower
    /// that crashes then says a height it lost; its next answers say the lower one, and the
    /// next heartbeat sends the certificates from there again.
    pub committed: Option<u64>,
    /// The highest certificate sent to it (sent again only with a heartbeat).
    pub certificates_sent: u64,
    /// Replicating: `matched` is accurate and appends go out ahead of acknowledgements.
    /// Otherwise probing: one append until an answer or the next heartbeat.
    replicating: bool,
    /// Probing and an append is out.
    paused: bool,
    /// Whether it acknowledged anything since the last heartbeat.
    acked: bool,
}

impl Progress {
    /// A new leader's view of a follower: nextIndex just after its own last entry (§5.3),
    /// probing.
    pub fn new(last_index: u64) -> Progress {
        Progress {
            next: last_index + 1,
            matched: 0,
            committed: None,
            certificates_sent: 0,
            replicating: false,
            paused: false,
            acked: false,
        }
    }

    pub fn is_replicating(&self) -> bool {
        self.replicating
    }

    /// Entries sent and not acknowledged (while replicating).
    pub fn inflight(&self) -> u64 {
        self.next.saturating_sub(self.matched + 1)
    }

    /// Whether another append may go out now.
    pub fn may_send(&self) -> bool {
        if self.replicating {
            self.inflight() < MAX_INFLIGHT_ENTRIES
        } else {
            !self.paused
        }
    }

    /// An append with entries up to `last` went out (`last = next - 1` for none).
    pub fn sent(&mut self, last: u64) {
        self.next = self.next.max(last + 1);
        if !self.replicating {
            self.paused = true;
        }
    }

    /// The follower matches up to `index`.
    pub fn succeeded(&mut self, index: u64) {
        if index > self.matched {
            self.matched = index;
            self.acked = true;
        }
        self.next = self.next.max(index + 1);
        self.replicating = true;
        self.paused = false;
    }

    /// The follower said it committed up to `committed`; committed entries are in every
    /// leader's log (Leader Completeness, §5.4), so they match, up to the leader's last entry.
    /// (Its entries were synced before it said so, so the match stays even if the commit
    /// itself was lost in a crash.)
    pub fn committed_to(&mut self, committed: u64, last_index: u64) {
        self.committed = Some(committed);
        let matched = committed.min(last_index);
        if matched > self.matched {
            self.matched = matched;
            self.acked = true;
        }
        self.next = self.next.max(self.matched + 1);
    }

    /// The follower refused the append after `rejected` and could match up to `hint`.
    /// Returns whether that changed anything (a stale refusal, at or below the match, does
    /// not); the leader then probes from the new `next`.
    pub fn rejected(&mut self, rejected: u64, hint: u64) -> bool {
        if rejected <= self.matched {
            return false;
        }
        self.next = (self.matched + 1).max(rejected.min(hint.saturating_add(1)));
        self.replicating = false;
        self.paused = false;
        true
    }

    /// A heartbeat: a probe may go out again, and with nothing acknowledged since the last
    /// heartbeat, what was in flight is presumed lost and sent again from the match.
    pub fn heartbeat(&mut self) {
        // While probing `matched` may not be known yet: the probe itself is resent.
        if self.replicating && !self.acked {
            self.next = self.matched + 1;
        }
        self.paused = false;
        self.acked = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_leader_probes_one_append_at_a_time() {
        let mut p = Progress::new(10);
        assert_eq!((p.next, p.matched), (11, 0));
        assert!(p.may_send());
        p.sent(10);
        assert!(!p.may_send(), "one probe out");
        p.heartbeat();
        assert!(p.may_send(), "a heartbeat lets the probe go again");
        assert_eq!(
            p.next, 11,
            "the match is not known while probing: next stays"
        );
    }

    #[test]
    fn after_a_success_appends_go_out_ahead_of_acknowledgements() {
        let mut p = Progress::new(10);
        p.sent(10);
        p.succeeded(10);
        assert_eq!((p.next, p.matched, p.inflight()), (11, 10, 0));
        p.sent(13);
        assert!(p.may_send());
        assert_eq!((p.next, p.inflight()), (14, 3));
        // An older acknowledgement arriving late moves nothing back.
        p.succeeded(9);
        assert_eq!((p.next, p.matched), (14, 10));
        p.sent(10 + MAX_INFLIGHT_ENTRIES);
        assert!(!p.may_send(), "in-flight entries are bounded");
    }

    #[test]
    fn rejections_move_next_back_unless_stale() {
        let mut p = Progress::new(10);
        p.succeeded(4);
        assert!(!p.rejected(3, 0), "at or below the match: stale");
        assert!(p.rejected(10, 6));
        assert_eq!(p.next, 7, "the follower's hint");
        assert!(!p.is_replicating(), "probing again");
        assert!(p.rejected(6, 100));
        assert_eq!(p.next, 6, "one step back when the hint is above");
        assert!(p.rejected(5, 0));
        assert_eq!(p.next, 5, "never below the match");
    }

    #[test]
    fn a_silent_follower_is_resent_from_its_match_at_the_next_heartbeat() {
        let mut p = Progress::new(0);
        p.succeeded(2);
        p.sent(8);
        p.heartbeat();
        assert_eq!(p.next, 9, "it acknowledged since the last heartbeat");
        p.heartbeat();
        assert_eq!(p.next, 3, "nothing since: resend from the match");
    }

    #[test]
    fn a_committed_height_is_a_match() {
        let mut p = Progress::new(10);
        p.committed_to(7, 10);
        assert_eq!((p.matched, p.next, p.committed), (7, 11, Some(7)));
        p.committed_to(5, 10);
        assert_eq!(
            (p.matched, p.committed),
            (7, Some(5)),
            "a follower that lost a commit in a crash gets its certificates again"
        );
        p.committed_to(12, 10);
        assert_eq!(p.matched, 10, "never past the leader's own log");
    }

    /// Only an answer that acknowledges more than the match counts as progress: a follower
    /// that keeps answering with the same index (its heartbeats) while the entries after it
    /// were lost gets them again at the next heartbeat. The next entry to send is always just
    /// above what the follower holds or committed.
    #[test]
    fn only_new_acknowledgements_count_and_next_follows_the_match() {
        let mut p = Progress::new(0);
        p.succeeded(5);
        p.sent(8);
        assert_eq!((p.next, p.matched), (9, 5));
        p.heartbeat();
        p.succeeded(5);
        p.committed_to(5, 8);
        p.heartbeat();
        assert_eq!(p.next, 6, "6-8 presumed lost and sent again");
        p.succeeded(7);
        assert_eq!((p.next, p.matched), (8, 7), "next just above the match");
        let mut q = Progress::new(4);
        q.committed_to(10, 20);
        assert_eq!((q.next, q.matched, q.committed), (11, 10, Some(10)));
        q.heartbeat();
        q.committed_to(10, 20);
        q.heartbeat();
        assert_eq!(q.next, 11);
    }
}
