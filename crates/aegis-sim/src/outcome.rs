//! What a simulated run found.

use std::collections::BTreeMap;

/// What a run found.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub seed: u64,
    /// Every checker failure, in the order found; empty for a correct run.
    pub violations: Vec<String>,
    /// Each node's committed height at the end.
    pub heights: Vec<u64>,
    /// Each node's view (epoch) at the end (crashed nodes: when they went down).
    pub views: Vec<u64>,
    /// Each node's stable checkpoint at the end.
    pub stable_checkpoints: Vec<u64>,
    /// Each node's status at the end ("normal", "view-changing", "down").
    pub statuses: Vec<&'static str>,
    /// Each node's pending transaction count (its mempool) at the end.
    pub pending: Vec<usize>,
    /// Virtual time at which every honest node had committed the probe, if it did.
    pub liveness_ms: Option<u64>,
    /// Transactions the final leader acknowledged that were found committed on every honest
    /// node with the probe (protocols with `CHECK_LEADER_ACKNOWLEDGED`).
    pub acknowledged_checked: u64,
    pub end_ms: u64,
    pub events: u64,
    pub messages_delivered: u64,
    /// Rejections by the reason's stable label.
    pub rejections: BTreeMap<String, u64>,
    pub view_changes_started: u64,
    pub sync_requests: u64,
    pub torn_persists: u64,
    /// Crashes aimed at a proposal, a VIEW-CHANGE or a NEW-VIEW.
    pub aimed_crashes: u64,
    /// Ed25519 verifications the checkers ran themselves (each distinct signature once).
    pub signatures_checked: u64,
    /// Bytes every node's consensus log wrote (records and snapshots), summed.
    pub log_bytes: u64,
    /// Disk syncs of the consensus logs (a compaction counts three), summed.
    pub log_syncs: u64,
    pub log_compactions: u64,
    /// The event log, when the run was traced (`aegis simulate --seed S --trace`).
    pub trace: Vec<String>,
}
