//! Each checker and each fault catches the kind of bug it was built for: a realistic
//! one-line mistake is planted in the core (`aegis_consensus::pbft::planted`, a test-only
//! feature), the scenario runs, and the named checker reports it; the same scenario on the
//! real core is clean. For the faults, the same bug with the fault switched off goes unseen:
//! the fault is what exposes it. These also serve as the fast mutation sample CI runs
//! (docs/consensus.md, "Mutation testing"): twelve named mutants, switched at run time, no
//! rebuild.

use aegis_consensus::pbft::planted::{PlantedBug, plant};
use aegis_sim::{Behavior, Moment, Outcome, TestBuilder, run_seed};

/// Runs `builder` with `bug` planted, and without.
fn with_and_without(bug: PlantedBug, builder: TestBuilder) -> (Outcome, Outcome) {
    let buggy = {
        let _planted = plant(bug);
        builder.clone().run()
    };
    (buggy, builder.run())
}

fn reported(outcome: &Outcome, checker: &str) -> bool {
    outcome
        .violations
        .iter()
        .any(|v| v.starts_with(&format!("{checker}:")))
}

/// `bug` makes `checker` fire on `builder`'s scenario, and the real core passes it.
fn assert_caught(bug: PlantedBug, checker: &str, builder: TestBuilder) {
    let (buggy, real) = with_and_without(bug, builder);
    assert!(
        reported(&buggy, checker),
        "{bug:?}: no {checker} violation in {:?}",
        buggy.violations
    );
    assert!(
        real.violations.is_empty(),
        "real core: {:?}",
        real.violations
    );
}

// ------------------------------------------------------------------------------ checkers

/// §4.2: prepared needs the PRE-PREPARE and 2f matching PREPAREs. One short, the colluding
/// primary's split prepares one batch at the lone honest node and another at the other two.
#[test]
fn prepared_checker_catches_a_prepare_quorum_one_short() {
    assert_caught(
        PlantedBug::PrepareQuorumOffByOne,
        "prepared",
        TestBuilder::new(4)
            .pipeline_depth(1)
            .byzantine(0, Behavior::Colluding)
            .load_until(1_500),
    );
}

/// A replica that swaps its PRE-PREPARE for the equivocating primary's second one commits a
/// block other than the batch it PREPAREd.
#[test]
fn commit_checker_catches_a_commit_that_does_not_match_the_prepare() {
    assert_caught(
        PlantedBug::ReplaceConflictingPrePrepare,
        "commit",
        TestBuilder::new(4)
            .seed(3)
            .byzantine(0, Behavior::EquivocatingPrimary),
    );
}

/// §4.3: a checkpoint is stable with a quorum of matching CHECKPOINTs, not f + 1.
#[test]
fn checkpoint_checker_catches_a_weak_stable_checkpoint() {
    assert_caught(
        PlantedBug::CheckpointWeakQuorum,
        "checkpoint",
        TestBuilder::new(4).checkpoint_interval(2).load_until(1_500),
    );
}

/// §4.4: a VIEW-CHANGE reports every prepared certificate above the stable checkpoint,
/// executed or not.
#[test]
fn view_change_checker_catches_a_view_change_that_drops_certificates() {
    assert_caught(
        PlantedBug::ViewChangeSkipsExecuted,
        "view-change",
        TestBuilder::new(4)
            .checkpoint_interval(5)
            .partition(&[0], 1_000, 2_500),
    );
}

/// §4.4: min-s is the latest stable checkpoint in V. The checker recomputes O from the
/// VIEW-CHANGEs and refuses the NEW-VIEW every backup (sharing the bug) accepted.
#[test]
fn new_view_checker_recomputes_o_from_the_paper() {
    let _planted = plant(PlantedBug::NewViewMinSFromLowest);
    let caught = (0..60).find(|seed| reported(&run_seed(4, *seed), "new-view"));
    assert!(caught.is_some(), "no seed of 0..60 caught it");
}

/// The checkers count quorums with their own arithmetic: a core whose quorum is one short
/// commits blocks whose certificates the checker refuses.
#[test]
fn checkers_keep_their_own_quorum_when_the_cores_is_wrong() {
    let (buggy, real) = with_and_without(
        PlantedBug::QuorumOffByOne,
        TestBuilder::new(4).checkpoint_interval(2).load_until(1_500),
    );
    for checker in ["certificate", "prepared", "checkpoint"] {
        assert!(
            reported(&buggy, checker),
            "{checker}: {:?}",
            buggy.violations
        );
    }
    assert!(real.violations.is_empty(), "{:?}", real.violations);
}

/// A core's report on itself (what `/status`, the metrics and the engine read) agrees with
/// its state: a core that names a leader while it is still electing one is caught.
#[test]
fn core_checker_catches_a_status_that_names_a_leader_during_a_view_change() {
    assert_caught(
        PlantedBug::StatusLeaderWhileElecting,
        "core",
        TestBuilder::new(4).byzantine(0, Behavior::Silent),
    );
}

// -------------------------------------------------------------------------------- faults

/// f colluders: a colluding new primary probes with a NEW-VIEW one VIEW-CHANGE short. Honest
/// primaries never send one, so without the colluder the bug is never exercised.
#[test]
fn colluders_expose_a_new_view_quorum_one_short() {
    let scenario = |builder: TestBuilder| builder.partition(&[0], 300, 2_500).load_until(3_000);
    let (buggy, real) = with_and_without(
        PlantedBug::NewViewQuorumOffByOne,
        scenario(TestBuilder::new(4).byzantine(1, Behavior::Colluding)),
    );
    assert!(reported(&buggy, "new-view"), "{:?}", buggy.violations);
    assert!(real.violations.is_empty(), "{:?}", real.violations);
    let unseen = {
        let _planted = plant(PlantedBug::NewViewQuorumOffByOne);
        scenario(TestBuilder::new(4)).run()
    };
    assert!(unseen.violations.is_empty(), "{:?}", unseen.violations);
}

/// A crash aimed right after the primary proposed: a PRE-PREPARE that left before it was
/// durable is proposed again, differently, after the restart.
#[test]
fn crashes_aimed_at_proposals_expose_a_pre_prepare_sent_before_its_persist() {
    let scenario = TestBuilder::new(4).load_until(2_000);
    let (buggy, real) = with_and_without(
        PlantedBug::ProposalSentBeforePersist,
        scenario
            .clone()
            .aimed_crashes_at(Moment::Proposing, 1_000, 3),
    );
    assert!(reported(&buggy, "equivocation"), "{:?}", buggy.violations);
    assert!(real.violations.is_empty(), "{:?}", real.violations);
    let unseen = {
        let _planted = plant(PlantedBug::ProposalSentBeforePersist);
        scenario.run()
    };
    assert!(unseen.violations.is_empty(), "{:?}", unseen.violations);
}

/// A crash aimed in the middle of a view change: a VIEW-CHANGE that left before it was
/// durable is forgotten, and the restarted replica goes back to the view it had left.
#[test]
fn crashes_aimed_at_view_changes_expose_a_view_change_sent_before_its_persist() {
    let scenario = TestBuilder::new(4)
        .partition(&[0], 1_000, 2_500)
        .load_until(3_000);
    let (buggy, real) = with_and_without(
        PlantedBug::ViewChangeSentBeforePersist,
        scenario
            .clone()
            .aimed_crashes_at(Moment::LeavingEpoch, 1_000, 3),
    );
    assert!(
        reported(&buggy, "left-view") || reported(&buggy, "equivocation"),
        "{:?}",
        buggy.violations
    );
    assert!(real.violations.is_empty(), "{:?}", real.violations);
    let unseen = {
        let _planted = plant(PlantedBug::ViewChangeSentBeforePersist);
        scenario.run()
    };
    assert!(unseen.violations.is_empty(), "{:?}", unseen.violations);
}

/// §4.5.2: view-change timeouts double. On a network slower than the base timeout, a core
/// whose timeouts never grow changes views forever; with fast delays nobody notices.
#[test]
fn a_slow_phase_exposes_timeouts_that_never_grow() {
    let scenario = TestBuilder::new(4)
        .byzantine(0, Behavior::Silent)
        .load_until(2_000);
    let (buggy, real) = with_and_without(
        PlantedBug::NoTimeoutBackoff,
        scenario.clone().slow_phase(500, 40_000, 600, 900),
    );
    assert!(reported(&buggy, "liveness"), "{:?}", buggy.violations);
    assert!(real.violations.is_empty(), "{:?}", real.violations);
    let unseen = {
        let _planted = plant(PlantedBug::NoTimeoutBackoff);
        scenario.run()
    };
    assert!(unseen.violations.is_empty(), "{:?}", unseen.violations);
}

/// An equivocating primary that redraws its version on every retransmission shows some
/// replicas both batches of one slot (the commit checker's test above relies on it).
#[test]
fn an_equivocating_primary_shows_one_replica_both_versions() {
    let outcome = TestBuilder::new(4)
        .seed(3)
        .byzantine(0, Behavior::EquivocatingPrimary)
        .run();
    assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
    assert!(
        outcome.rejections.get("equivocation").copied().unwrap_or(0) > 0,
        "no replica saw both versions: {:?}",
        outcome.rejections
    );
}

// ------------------------------------------------------------------------- the feature

/// The bugs exist only in test builds: the shipped binary's dependency tree never turns
/// on `planted-bugs`.
#[test]
fn the_shipped_binary_never_enables_planted_bugs() {
    let workspace = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args(["tree", "-e", "normal,features", "-p", "aegis", "--offline"])
        .current_dir(workspace)
        .output()
        .expect("run cargo tree");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8_lossy(&output.stdout);
    assert!(tree.contains("aegis-consensus"), "{tree}");
    assert!(!tree.contains("planted-bugs"), "{tree}");
}

// ------------------------------------------------------------------------------ triage

/// A failing seed is printed with its fault rates and the command that replays it; the
/// replay's event log shows the violation where it happened.
#[test]
fn a_failing_seed_prints_its_faults_and_the_command_that_replays_it() {
    let _planted = plant(PlantedBug::CheckpointWeakQuorum);
    let mut out = Vec::new();
    let violations = aegis_sim::run_cli(4, 1, 5, &mut out).expect("write to a Vec");
    let text = String::from_utf8_lossy(&out);
    assert!(violations > 0, "{text}");
    assert!(text.contains("seed 5: "), "{text}");
    assert!(text.contains("  faults: n=4 f=1 "), "{text}");
    assert!(
        text.contains("  replay: aegis simulate --validators 4 --seed 5 --trace"),
        "{text}"
    );
    assert!(
        text.trim_end()
            .ends_with(&format!("seeds: 1, violations: {violations}")),
        "{text}"
    );
    let mut replay = Vec::new();
    let again = aegis_sim::run_one(4, 5, true, &mut replay).expect("write to a Vec");
    let log = String::from_utf8_lossy(&replay);
    assert_eq!(again, violations, "the replay finds the same violations");
    assert!(log.contains(" ms  VIOLATION checkpoint: "), "{log}");
}

/// f colluders' VIEW-CHANGEs claim a stable checkpoint that only they signed. A core that
/// checks each CHECKPOINT's signature but forgets to count them adopts it through the
/// NEW-VIEW; without colluders nobody sends such a proof.
#[test]
fn colluders_expose_a_checkpoint_proof_that_is_not_counted() {
    let _planted = plant(PlantedBug::CheckpointProofUncounted);
    let caught = (0..200).find(|seed| {
        let scenario = aegis_sim::Scenario::random(4, *seed);
        let colluders = scenario
            .byzantine
            .iter()
            .any(|(_, b)| *b == Behavior::Colluding);
        colluders && {
            let outcome = aegis_sim::Simulation::new(scenario).run();
            reported(&outcome, "checkpoint") || reported(&outcome, "new-view")
        }
    });
    drop(_planted);
    let seed = caught.expect("a colluder seed of 0..200 catches it");
    let real = run_seed(4, seed);
    assert!(
        real.violations.is_empty(),
        "seed {seed}: {:?}",
        real.violations
    );
}
