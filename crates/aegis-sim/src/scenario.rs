//! What a simulated run does: cluster size, faults, Byzantine nodes, load. Built by hand
//! with [`TestBuilder`] for scenario tests, or drawn from a seed by [`Scenario::random`].

use rand_chacha::ChaCha8Rng;

use crate::protocol::Moment;
use rand_chacha::rand_core::{Rng, SeedableRng};

/// How a Byzantine node misbehaves. It runs the real core; the simulator rewrites, drops or
/// adds to what it sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Behavior {
    /// Sends nothing at all (a crashed or mute node that still counts as a validator).
    Silent,
    /// As primary, sends each peer one of two batches for a slot, drawn afresh on every
    /// (re)transmission, so some peers receive both.
    EquivocatingPrimary,
    /// Sends each PREPARE and COMMIT to some peers, and a conflicting one to the others,
    /// drawn afresh on every (re)transmission.
    ConflictingVotes,
    /// Corrupts the signature of about half its messages, and of the blocks it serves in sync.
    InvalidSignatures,
    /// Replays old messages (its own and others') to random peers.
    Replay,
    /// Floods peers with well-signed junk: random views, sequence numbers and digests.
    Flood,
    /// Acts with the other colluding nodes: the primary splits the honest nodes in two and
    /// every colluder prepares and commits both halves; under an honest primary colluders
    /// vote towards some honest nodes only; their VIEW-CHANGEs hide what they prepared; a
    /// colluding new primary builds the NEW-VIEW that preserves least (probing first with one
    /// VIEW-CHANGE too few). With f + 1 colluders this breaks agreement; with f it must not.
    /// Random runs draw f colluders in a quarter of the seeds.
    Colluding,
    /// As primary, orders every transaction but those of half the clients (ids with an even
    /// first byte), which it leaves out of its batches: the request timer must replace it.
    Censoring,
}

impl Behavior {
    pub const RANDOM_CHOICES: [Behavior; 7] = [
        Behavior::Silent,
        Behavior::EquivocatingPrimary,
        Behavior::ConflictingVotes,
        Behavior::InvalidSignatures,
        Behavior::Replay,
        Behavior::Flood,
        Behavior::Censoring,
    ];

    /// Whether a censoring primary leaves this transaction out.
    pub fn censors(id: &aegis_types::Hash) -> bool {
        id.0[0].is_multiple_of(2)
    }
}

/// Network faults, as probabilities in parts per thousand and delays in milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkFaults {
    pub drop_per_mille: u32,
    pub duplicate_per_mille: u32,
    /// Messages delayed up to ten times `max_delay_ms`, which reorders them.
    pub reorder_per_mille: u32,
    pub min_delay_ms: u64,
    pub max_delay_ms: u64,
}

impl NetworkFaults {
    pub fn none() -> NetworkFaults {
        NetworkFaults {
            drop_per_mille: 0,
            duplicate_per_mille: 0,
            reorder_per_mille: 0,
            min_delay_ms: 1,
            max_delay_ms: 20,
        }
    }
}

/// A partition: `side` cannot talk to the other nodes from `at_ms` to `heal_ms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    pub side: Vec<usize>,
    pub at_ms: u64,
    pub heal_ms: u64,
}

/// A phase of a slow but reliable network: from `at_ms` to `until_ms` (which may lie past the
/// healing) every message takes `min_delay_ms` to `max_delay_ms`, longer than the base
/// timeouts, and none is dropped or duplicated. Only timeouts that grow (§4.5.2) let a view
/// change finish in such a phase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlowPhase {
    pub at_ms: u64,
    pub until_ms: u64,
    pub min_delay_ms: u64,
    pub max_delay_ms: u64,
}

/// A crash of `node` at `at_ms`, restarted from its persisted state at `restart_ms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Crash {
    pub node: usize,
    pub at_ms: u64,
    pub restart_ms: u64,
}

/// One run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    pub seed: u64,
    pub validators: usize,
    pub checkpoint_interval: u64,
    pub pipeline_depth: u32,
    pub max_block_txs: u32,
    pub progress_timeout_ms: u64,
    pub message_timeout_ms: u64,
    pub byzantine: Vec<(usize, Behavior)>,
    /// Faults of the network until `heal_ms`; afterwards only delays remain.
    pub network: NetworkFaults,
    pub partitions: Vec<Partition>,
    pub crashes: Vec<Crash>,
    /// Per mille chance that a node crashes just before a persist completes, losing the
    /// state and the messages of that step (random runs only).
    pub torn_persist_per_mille: u32,
    /// Per mille chance that an honest node crashes at a step that persisted a
    /// [`crate::Moment`] (a proposal, a VIEW-CHANGE, a NEW-VIEW), before healing, at most
    /// `aimed_crash_budget` times a run: half tear the step (the crash comes before its sync),
    /// half come right after its messages left.
    pub aimed_crash_per_mille: u32,
    pub aimed_crash_budget: u32,
    /// Aim only at this kind of step (random runs aim at all of them).
    pub aimed_at: Option<Moment>,
    pub slow_phases: Vec<SlowPhase>,
    pub clock_skew_max_ms: u64,
    /// Client transactions are submitted every `tx_interval_ms` until `heal_ms`.
    pub tx_interval_ms: u64,
    pub txs_per_submit: usize,
    /// Everything is healed at this time; crashed nodes restart.
    pub heal_ms: u64,
    /// After healing (and after any slow phase still running then), probe transactions must
    /// be committed by every honest node within this much virtual time (the liveness bound).
    pub liveness_bound_ms: u64,
    /// While a slow phase lasts past healing, every honest node must commit a block within
    /// this much virtual time of healing: progress on a slow but reliable network.
    pub slow_progress_bound_ms: u64,
    /// After every flush that left nothing unsynced, check that each node's consensus log
    /// replays to exactly its core's state.
    pub check_replay: bool,
    /// Keep submitting transactions after healing too (a primary that commits some while
    /// withholding others must still be replaced).
    pub load_after_heal: bool,
    /// A planted bug for the checkers' own tests: a restarted node forgets whom it voted for
    /// in its term (Raft; PBFT ignores it).
    pub forget_vote_on_restart: bool,
    /// Most Byzantine nodes a random run draws ((n - 1) / 3 for PBFT, 0 for Raft); printed
    /// with the seed's fault rates.
    pub byzantine_max: usize,
}

impl Scenario {
    /// f for this cluster size.
    pub fn max_faulty(&self) -> usize {
        (self.validators - 1) / 3
    }

    pub fn is_byzantine(&self, node: usize) -> bool {
        self.byzantine.iter().any(|(n, _)| *n == node)
    }

    pub fn behavior(&self, node: usize) -> Option<Behavior> {
        self.byzantine
            .iter()
            .find(|(n, _)| *n == node)
            .map(|(_, b)| *b)
    }

    /// When the slow phases running at healing end, if one is.
    pub fn slow_after_heal_until(&self) -> Option<u64> {
        self.slow_phases
            .iter()
            .filter(|p| p.at_ms <= self.heal_ms && self.heal_ms < p.until_ms)
            .map(|p| p.until_ms)
            .max()
    }

    /// A quiet cluster: no faults, steady load.
    pub fn quiet(validators: usize, seed: u64) -> Scenario {
        Scenario {
            seed,
            validators,
            checkpoint_interval: 5,
            pipeline_depth: 4,
            max_block_txs: 4,
            progress_timeout_ms: 1_000,
            message_timeout_ms: 500,
            byzantine: Vec::new(),
            network: NetworkFaults::none(),
            partitions: Vec::new(),
            crashes: Vec::new(),
            torn_persist_per_mille: 0,
            aimed_crash_per_mille: 0,
            aimed_crash_budget: 0,
            aimed_at: None,
            slow_phases: Vec::new(),
            clock_skew_max_ms: 0,
            tx_interval_ms: 150,
            txs_per_submit: 2,
            heal_ms: 3_000,
            liveness_bound_ms: 60_000,
            slow_progress_bound_ms: 30_000,
            check_replay: true,
            load_after_heal: false,
            forget_vote_on_restart: false,
            byzantine_max: (validators.max(1) - 1) / 3,
        }
    }

    /// Every fault at once, drawn from `seed`: up to f Byzantine nodes with random
    /// behaviours (or, in a quarter of the seeds, f colluders), drops, duplicates, reordering,
    /// partitions, crashes, torn persists, crashes aimed at proposals and view changes, a
    /// slow phase in a third of the seeds, skew.
    pub fn random(validators: usize, seed: u64) -> Scenario {
        Scenario::random_with(validators, seed, (validators.max(1) - 1) / 3)
    }

    /// As [`Scenario::random`], with at most `byzantine_max` Byzantine nodes (0 for a
    /// protocol that tolerates crashes only: every other fault stays).
    pub fn random_with(validators: usize, seed: u64, byzantine_max: usize) -> Scenario {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_5ce7_a110);
        let mut pick = |n: u64| rng.next_u64() % n.max(1);
        let mut scenario = Scenario::quiet(validators, seed);
        let f = byzantine_max;
        scenario.byzantine_max = byzantine_max;
        let heal_ms = 2_000 + pick(4_000);
        scenario.heal_ms = heal_ms;
        scenario.checkpoint_interval = 2 + pick(5);
        scenario.pipeline_depth = 1 + pick(4) as u32;
        scenario.max_block_txs = 1 + pick(4) as u32;
        scenario.tx_interval_ms = 100 + pick(300);
        let byzantine_count = pick(f as u64 + 1) as usize;
        let mut nodes: Vec<usize> = (0..validators).collect();
        for _ in 0..byzantine_count {
            let index = pick(nodes.len() as u64) as usize;
            let node = nodes.remove(index);
            let behavior =
                Behavior::RANDOM_CHOICES[pick(Behavior::RANDOM_CHOICES.len() as u64) as usize];
            scenario.byzantine.push((node, behavior));
        }
        scenario.byzantine.sort();
        scenario.network = NetworkFaults {
            drop_per_mille: pick(150) as u32,
            duplicate_per_mille: pick(100) as u32,
            reorder_per_mille: pick(100) as u32,
            min_delay_ms: 1 + pick(5),
            max_delay_ms: 10 + pick(60),
        };
        for _ in 0..pick(3) {
            let at_ms = pick(heal_ms);
            let size = 1 + pick(validators as u64 / 2) as usize;
            let mut side: Vec<usize> = Vec::new();
            while side.len() < size {
                let node = pick(validators as u64) as usize;
                if !side.contains(&node) {
                    side.push(node);
                }
            }
            side.sort();
            scenario.partitions.push(Partition {
                side,
                at_ms,
                heal_ms: (at_ms + 300 + pick(2_500)).min(heal_ms),
            });
        }
        // Honest nodes crash too (any number: safety must not depend on it).
        for _ in 0..pick(3) {
            let node = pick(validators as u64) as usize;
            if scenario.is_byzantine(node) {
                continue;
            }
            let at_ms = pick(heal_ms);
            scenario.crashes.push(Crash {
                node,
                at_ms,
                restart_ms: (at_ms + 100 + pick(2_000)).min(heal_ms),
            });
        }
        scenario.torn_persist_per_mille = pick(3) as u32;
        scenario.clock_skew_max_ms = pick(500);
        // The sharper faults are drawn last, so the draws above stay what they were.
        // (A protocol without Byzantine nodes draws the same, and has no colluders.)
        if pick(4) == 0 && f > 0 {
            // f colluders, one of them a primary of view 0 or 1.
            let mut colluders = vec![pick(2) as usize];
            while colluders.len() < f {
                let node = pick(validators as u64) as usize;
                if !colluders.contains(&node) {
                    colluders.push(node);
                }
            }
            colluders.sort();
            scenario.byzantine = colluders
                .into_iter()
                .map(|node| (node, Behavior::Colluding))
                .collect();
            scenario
                .crashes
                .retain(|c| !colluders_contain(&scenario.byzantine, c.node));
        }
        scenario.aimed_crash_per_mille = 100 + pick(400) as u32;
        scenario.aimed_crash_budget = 1 + pick(4) as u32;
        if pick(3) == 0 {
            // Delays past the view-change timeout, the retransmission interval and (in three
            // message delays) the request timeout, possibly well after healing.
            // Half of them last long after healing: honest nodes must then commit on the slow
            // network, which only timeouts that grow allow.
            let at_ms = pick(heal_ms);
            let min_delay_ms = scenario.message_timeout_ms * (11 + pick(5)) / 10;
            let until_ms = if pick(2) == 0 {
                heal_ms + scenario.slow_progress_bound_ms + 5_000 + pick(25_000)
            } else {
                at_ms + 1_500 + pick(6_000)
            };
            scenario.slow_phases.push(SlowPhase {
                at_ms,
                until_ms,
                min_delay_ms,
                max_delay_ms: min_delay_ms + pick(scenario.message_timeout_ms),
            });
        }
        scenario
    }

    /// The seed's fault rates on one line, printed with the seed (TigerBeetle's VOPR prints
    /// every knob a seed drew).
    pub fn fault_rates(&self) -> String {
        let byzantine: Vec<String> = self
            .byzantine
            .iter()
            .map(|(node, behavior)| format!("{node}:{behavior:?}"))
            .collect();
        let slow: Vec<String> = self
            .slow_phases
            .iter()
            .map(|p| {
                format!(
                    "{}-{} ms at {}-{} ms",
                    p.at_ms, p.until_ms, p.min_delay_ms, p.max_delay_ms
                )
            })
            .collect();
        let network = &self.network;
        format!(
            "n={} f={} byzantine=[{}] drop={}‰ dup={}‰ reorder={}‰ delay={}-{} ms \
             partitions={} crashes={} torn={}‰ aimed-crashes={}‰ x{} slow=[{}] skew<{} ms \
             K={} depth={} block-txs={} load-every={} ms heal={} ms",
            self.validators,
            self.byzantine_max,
            byzantine.join(" "),
            network.drop_per_mille,
            network.duplicate_per_mille,
            network.reorder_per_mille,
            network.min_delay_ms,
            network.max_delay_ms,
            self.partitions.len(),
            self.crashes.len(),
            self.torn_persist_per_mille,
            self.aimed_crash_per_mille,
            self.aimed_crash_budget,
            slow.join(", "),
            self.clock_skew_max_ms,
            self.checkpoint_interval,
            self.pipeline_depth,
            self.max_block_txs,
            self.tx_interval_ms,
            self.heal_ms,
        )
    }
}

fn colluders_contain(byzantine: &[(usize, Behavior)], node: usize) -> bool {
    byzantine.iter().any(|(n, _)| *n == node)
}

/// Builds a scenario for a test that reads like a specification:
///
/// ```
/// use aegis_sim::{Behavior, TestBuilder};
/// let outcome = TestBuilder::new(4).byzantine(0, Behavior::Silent).run();
/// assert!(outcome.violations.is_empty());
/// ```
#[derive(Debug, Clone)]
pub struct TestBuilder {
    scenario: Scenario,
}

impl TestBuilder {
    /// `validators` nodes, no faults, steady load for three seconds, then a liveness probe.
    pub fn new(validators: usize) -> TestBuilder {
        TestBuilder {
            scenario: Scenario::quiet(validators, 1),
        }
    }

    pub fn seed(mut self, seed: u64) -> Self {
        self.scenario.seed = seed;
        self
    }

    pub fn byzantine(mut self, node: usize, behavior: Behavior) -> Self {
        self.scenario.byzantine.push((node, behavior));
        self.scenario.byzantine.sort();
        self
    }

    pub fn checkpoint_interval(mut self, k: u64) -> Self {
        self.scenario.checkpoint_interval = k;
        self
    }

    pub fn pipeline_depth(mut self, depth: u32) -> Self {
        self.scenario.pipeline_depth = depth;
        self
    }

    pub fn network(mut self, faults: NetworkFaults) -> Self {
        self.scenario.network = faults;
        self
    }

    pub fn partition(mut self, side: &[usize], at_ms: u64, heal_ms: u64) -> Self {
        self.scenario.partitions.push(Partition {
            side: side.to_vec(),
            at_ms,
            heal_ms,
        });
        self
    }

    pub fn crash(mut self, node: usize, at_ms: u64, restart_ms: u64) -> Self {
        self.scenario.crashes.push(Crash {
            node,
            at_ms,
            restart_ms,
        });
        self
    }

    /// Crashes aimed at proposals, VIEW-CHANGEs and NEW-VIEWs: `per_mille` of such steps, at
    /// most `budget` of them, before healing.
    pub fn aimed_crashes(mut self, per_mille: u32, budget: u32) -> Self {
        self.scenario.aimed_crash_per_mille = per_mille;
        self.scenario.aimed_crash_budget = budget;
        self
    }

    /// Crashes aimed at one kind of step only.
    pub fn aimed_crashes_at(mut self, moment: Moment, per_mille: u32, budget: u32) -> Self {
        self.scenario.aimed_at = Some(moment);
        self.aimed_crashes(per_mille, budget)
    }

    pub fn torn_persists(mut self, per_mille: u32) -> Self {
        self.scenario.torn_persist_per_mille = per_mille;
        self
    }

    /// A slow but reliable network from `at_ms` to `until_ms`: every message takes
    /// `min_delay_ms` to `max_delay_ms`.
    pub fn slow_phase(
        mut self,
        at_ms: u64,
        until_ms: u64,
        min_delay_ms: u64,
        max_delay_ms: u64,
    ) -> Self {
        self.scenario.slow_phases.push(SlowPhase {
            at_ms,
            until_ms,
            min_delay_ms,
            max_delay_ms,
        });
        self
    }

    pub fn clock_skew(mut self, max_ms: u64) -> Self {
        self.scenario.clock_skew_max_ms = max_ms;
        self
    }

    /// Submit load until `heal_ms`; the liveness probe follows.
    pub fn load_until(mut self, heal_ms: u64) -> Self {
        self.scenario.heal_ms = heal_ms;
        self
    }

    /// Keep the load going after healing, while the liveness probe is awaited.
    pub fn load_after_heal(mut self) -> Self {
        self.scenario.load_after_heal = true;
        self
    }

    pub fn liveness_bound(mut self, bound_ms: u64) -> Self {
        self.scenario.liveness_bound_ms = bound_ms;
        self
    }

    pub fn scenario(self) -> Scenario {
        self.scenario
    }

    pub fn run(self) -> crate::Outcome {
        crate::Simulation::new(self.scenario).run()
    }

    /// Runs the scenario with protocol `P` (`run` is PBFT).
    pub fn run_with<P: crate::SimProtocol>(self) -> crate::Outcome {
        crate::Sim::<P>::new(self.scenario).run()
    }
}
