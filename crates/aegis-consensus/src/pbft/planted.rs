//! Planted bugs: realistic one-line mistakes the simulator's tests switch on, one at a time,
//! to show that each checker and each fault catches the kind of bug it was built for.
//!
//! This module exists only with the `planted-bugs` feature, which only `aegis-sim`'s tests
//! enable (a dev-dependency): shipped builds contain neither the switch nor the bugs, and
//! `cargo tree -e normal -p aegis` never turns the feature on. The switch is per thread, so
//! tests running in parallel each plant their own bug; the simulator runs a seed on one
//! thread. With no bug planted, the core behaves exactly as it does without the feature.

use std::cell::Cell;

/// One deliberate mistake in the core. Each names the line it breaks and what catches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PlantedBug {
    /// `try_prepare_and_commit` counts a slot prepared with one PREPARE too few
    /// (`quorum() - 2`). Caught by the prepared-certificate checker.
    PrepareQuorumOffByOne,
    /// `on_pre_prepare` forgets to refuse a second, different PRE-PREPARE for a slot and
    /// replaces the first. Caught by "a COMMIT matches the PREPARE" once an equivocating
    /// primary shows one node both batches.
    ReplaceConflictingPrePrepare,
    /// `check_stable` calls a checkpoint stable with f + 1 votes instead of a quorum. Caught by
    /// the stable-checkpoint checker.
    CheckpointWeakQuorum,
    /// `compute_o` takes min-s from the lowest stable checkpoint in V instead of the highest.
    /// Caught by the NEW-VIEW checker, which recomputes O from the paper.
    NewViewMinSFromLowest,
    /// `on_new_view` accepts a NEW-VIEW with one VIEW-CHANGE fewer than a quorum. Caught by the
    /// NEW-VIEW checker once a colluding primary probes with a short one.
    NewViewQuorumOffByOne,
    /// `on_proposal` sends the PRE-PREPARE at once instead of after the persist. Caught by the
    /// statement checker once a crash hits the primary right after it proposed.
    ProposalSentBeforePersist,
    /// `start_view_change` sends the VIEW-CHANGE at once instead of after the persist. Caught
    /// by the statement checker once a crash hits a replica in the middle of a view change.
    ViewChangeSentBeforePersist,
    /// `start_view_change` reports prepared certificates only above the last executed block,
    /// not above the stable checkpoint. Caught by the VIEW-CHANGE checker.
    ViewChangeSkipsExecuted,
    /// `backoff` never doubles the timeouts. Caught by the liveness checker in a slow phase.
    NoTimeoutBackoff,
    /// `PbftConfig::quorum` is one short. Caught by the checkers' own quorum arithmetic.
    QuorumOffByOne,
    /// `verify_checkpoint_proof` checks each CHECKPOINT's signature but not that there are a
    /// quorum of them. Caught once colluders' VIEW-CHANGEs claim a checkpoint they cannot prove.
    CheckpointProofUncounted,
    /// `status` names the view's primary as leader even while the replica is changing view.
    /// Caught by the core checker, which compares what a core reports with its state.
    StatusLeaderWhileElecting,
}

impl PlantedBug {
    pub const ALL: [PlantedBug; 12] = [
        PlantedBug::PrepareQuorumOffByOne,
        PlantedBug::ReplaceConflictingPrePrepare,
        PlantedBug::CheckpointWeakQuorum,
        PlantedBug::NewViewMinSFromLowest,
        PlantedBug::NewViewQuorumOffByOne,
        PlantedBug::ProposalSentBeforePersist,
        PlantedBug::ViewChangeSentBeforePersist,
        PlantedBug::ViewChangeSkipsExecuted,
        PlantedBug::NoTimeoutBackoff,
        PlantedBug::QuorumOffByOne,
        PlantedBug::CheckpointProofUncounted,
        PlantedBug::StatusLeaderWhileElecting,
    ];
}

thread_local! {
    static PLANTED: Cell<Option<PlantedBug>> = const { Cell::new(None) };
}

/// Plants `bug` in every core this thread runs until the guard drops.
#[must_use = "the bug is removed when the guard drops"]
pub fn plant(bug: PlantedBug) -> Planted {
    let previous = PLANTED.with(|cell| cell.replace(Some(bug)));
    Planted { previous }
}

/// Removes the planted bug (restoring any earlier one) when dropped.
#[derive(Debug)]
pub struct Planted {
    previous: Option<PlantedBug>,
}

impl Drop for Planted {
    fn drop(&mut self) {
        PLANTED.with(|cell| cell.set(self.previous));
    }
}

/// Whether `bug` is planted on this thread.
pub(crate) fn active(bug: PlantedBug) -> bool {
    PLANTED.with(|cell| cell.get()) == Some(bug)
}

// The bugs themselves. Each is called from one line of the core, under the feature, and
// returns the core's own value unchanged unless its bug is planted; keeping the wrong
// arithmetic here (a file cargo-mutants skips) leaves no mutable operator in the core's
// feature-gated lines.

/// [`PlantedBug::PrepareQuorumOffByOne`] and [`PlantedBug::NewViewQuorumOffByOne`].
pub(crate) fn one_fewer(bug: PlantedBug, count: usize) -> usize {
    if active(bug) {
        count.saturating_sub(1)
    } else {
        count
    }
}

/// [`PlantedBug::ReplaceConflictingPrePrepare`]: the slot's accepted PRE-PREPARE is not looked at.
pub(crate) fn forget<T>(bug: PlantedBug, existing: Option<T>) -> Option<T> {
    if active(bug) { None } else { existing }
}

/// [`PlantedBug::CheckpointProofUncounted`]: the count a proof must reach.
pub(crate) fn proof_quorum(quorum: usize) -> usize {
    if active(PlantedBug::CheckpointProofUncounted) {
        1
    } else {
        quorum
    }
}

/// [`PlantedBug::CheckpointWeakQuorum`].
pub(crate) fn checkpoint_quorum(quorum: usize, weak_quorum: usize) -> usize {
    if active(PlantedBug::CheckpointWeakQuorum) {
        weak_quorum
    } else {
        quorum
    }
}

/// [`PlantedBug::NewViewMinSFromLowest`]: whether a VIEW-CHANGE's checkpoint at `candidate`
/// replaces the one chosen so far.
pub(crate) fn min_s_replaces(replaces: bool, candidate: u64, chosen: Option<u64>) -> bool {
    if active(PlantedBug::NewViewMinSFromLowest) {
        chosen.is_none_or(|seq| candidate < seq)
    } else {
        replaces
    }
}

/// [`PlantedBug::ProposalSentBeforePersist`] and [`PlantedBug::ViewChangeSentBeforePersist`]:
/// the message just queued to leave after the persist leaves at once instead.
pub(super) fn send_early(bug: PlantedBug, out: &mut super::Outbox) {
    if active(bug)
        && let Some(message) = out.signed.pop()
    {
        out.plain.push(message);
    }
}

/// [`PlantedBug::ViewChangeSkipsExecuted`]: prepared certificates at or below the last
/// executed sequence number are left out of the VIEW-CHANGE.
pub(crate) fn skip_executed(
    prepared: Vec<super::PreparedCert>,
    last_executed: u64,
) -> Vec<super::PreparedCert> {
    if active(PlantedBug::ViewChangeSkipsExecuted) {
        prepared
            .into_iter()
            .filter(|cert| cert.pre_prepare.seq > last_executed)
            .collect()
    } else {
        prepared
    }
}

/// [`PlantedBug::NoTimeoutBackoff`].
pub(crate) fn backoff_exponent(exponent: u32) -> u32 {
    if active(PlantedBug::NoTimeoutBackoff) {
        0
    } else {
        exponent
    }
}

/// [`PlantedBug::StatusLeaderWhileElecting`]: the leader a status names.
pub(crate) fn reported_leader<T>(leader: Option<T>, primary: T) -> Option<T> {
    if active(PlantedBug::StatusLeaderWhileElecting) {
        Some(primary)
    } else {
        leader
    }
}
