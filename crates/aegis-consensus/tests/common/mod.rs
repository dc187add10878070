//! Helpers for PBFT's tests: genesis, keys, transactions, and a small cluster run by the
//! engine's driver.

#![allow(dead_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail the test loudly"
)]

use aegis_consensus::pbft::{PbftEffect, PbftMessage, PrePrepare};
use aegis_consensus::{Effect, Outgoing};

#[allow(unused_imports, reason = "each test binary uses a different subset")]
pub use aegis_testkit::cluster::{env, pbft_config as config};
#[allow(unused_imports, reason = "each test binary uses a different subset")]
pub use aegis_testkit::{CHAIN, genesis, tx, validator_key as key};

pub type Cluster = aegis_testkit::cluster::Cluster;

/// Messages sent by a step, with their destinations, whether or not they waited for a persist.
pub fn sent(effects: &[PbftEffect]) -> Vec<Outgoing<PbftMessage>> {
    let mut out = Vec::new();
    for effect in effects {
        match effect {
            Effect::Send(o) => out.push(o.clone()),
            Effect::Persist { messages, .. } => out.extend(messages.iter().cloned()),
            _ => {}
        }
    }
    out
}

/// The PRE-PREPARE waiting in the cluster's queue for node `to` (the first one).
pub fn queued_pre_prepare(cluster: &Cluster, to: usize) -> PrePrepare {
    cluster
        .queue
        .iter()
        .find_map(|(_, dest, m)| match m {
            PbftMessage::PrePrepare(pp) if *dest == to => Some(pp.clone()),
            _ => None,
        })
        .expect("a PRE-PREPARE queued for that node")
}
