//! A survey, not a test: how many random seeds each planted bug fails, and which checkers
//! see it. Run with `cargo run --release -p aegis-sim --example planted_survey`
//! (`SURVEY_N4`, `SURVEY_N7` set the seed counts, `SURVEY_BUG` runs one bug).

use std::collections::BTreeMap;

use aegis_consensus::pbft::planted::{PlantedBug, plant};
use aegis_sim::run_seed;

fn main() {
    let (n4, n7): (u64, u64) = (
        std::env::var("SURVEY_N4")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(100),
        std::env::var("SURVEY_N7")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(40),
    );
    let only = std::env::var("SURVEY_BUG").ok();
    for bug in PlantedBug::ALL {
        if only
            .as_ref()
            .is_some_and(|name| *name != format!("{bug:?}"))
        {
            continue;
        }
        let _planted = plant(bug);
        let mut failed = [0u64; 2];
        let mut checkers: BTreeMap<String, u64> = BTreeMap::new();
        for (k, (validators, seeds)) in [(4, n4), (7, n7)].into_iter().enumerate() {
            for seed in 0..seeds {
                let outcome = run_seed(validators, seed);
                if !outcome.violations.is_empty() {
                    failed[k] += 1;
                }
                let mut names: Vec<String> = outcome
                    .violations
                    .iter()
                    .map(|v| v.split(':').next().unwrap_or("").to_owned())
                    .collect();
                names.sort();
                names.dedup();
                for name in names {
                    *checkers.entry(name).or_default() += 1;
                }
            }
        }
        println!(
            "{bug:?}: n=4 {}/{n4} seeds, n=7 {}/{n7} seeds; checkers {checkers:?}",
            failed[0], failed[1]
        );
    }
}
