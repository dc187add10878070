//! What the running node needs from a consensus protocol beyond `aegis_consensus::Protocol`:
//! how to build its core from the node's configuration and what its log replays to, and what
//! it knows of the network's height. The node is generic over it, so PBFT and Raft run behind
//! the same engine, API, storage, sync and tools; the genesis `algorithm` picks one.

use std::sync::Arc;

use aegis_consensus::pbft::{Pbft, PbftConfig};
use aegis_consensus::raft::{Raft, RaftConfig};
use aegis_consensus::verifier::SignatureCheck;
use aegis_consensus::{Protocol, Reject};
use anyhow::Context;

use crate::preflight::Preflight;

/// A consensus protocol the node can run.
pub trait NodeProtocol:
    Protocol<Message: Send, Persisted: Send, Timer: Send, Reject: Reject + Send>
    + Sized
    + Send
    + 'static
{
    /// `algorithm` in `/status` and the metrics: `pbft` or `raft`.
    const ALGORITHM: &'static str;

    /// This node's core, new or restored from what its consensus log replays to, checking
    /// signatures with `verifier`.
    fn build(
        node: &Preflight,
        restored: Option<Self::Persisted>,
        verifier: Arc<dyn SignatureCheck>,
    ) -> anyhow::Result<Self>;

    /// The highest height authentic evidence says peers reached (0 when unknown), for
    /// `sync_status` and readiness.
    fn network_height(&self) -> u64;

    /// How many slots beyond its ledger's height a validator may have voted for before it
    /// stopped: the margin of the vote fence of a validator that lost its consensus log.
    fn vote_window(&self) -> u64 {
        0
    }
}

impl NodeProtocol for Pbft {
    const ALGORITHM: &'static str = "pbft";

    fn build(
        node: &Preflight,
        restored: Option<Self::Persisted>,
        verifier: Arc<dyn SignatureCheck>,
    ) -> anyhow::Result<Pbft> {
        let consensus = &node.config.consensus;
        let config = PbftConfig::from_genesis(
            &node.genesis,
            node.validator,
            consensus.timeout.as_millis() as u64,
            consensus.message_timeout.as_millis() as u64,
        )
        .context("configure PBFT from the genesis")?;
        let core = match restored {
            Some(state) => Pbft::restore(config, node.secret.clone(), state),
            None => Pbft::new(config, node.secret.clone()),
        }
        .context("build the PBFT core")?;
        Ok(core.with_verifier(verifier))
    }

    fn network_height(&self) -> u64 {
        self.behind_hint()
    }

    fn vote_window(&self) -> u64 {
        // PBFT votes only between its watermarks (§4.3).
        self.config().log_window()
    }
}

impl NodeProtocol for Raft {
    const ALGORITHM: &'static str = "raft";

    fn build(
        node: &Preflight,
        restored: Option<Self::Persisted>,
        verifier: Arc<dyn SignatureCheck>,
    ) -> anyhow::Result<Raft> {
        let consensus = &node.config.consensus;
        let config = RaftConfig::from_genesis(
            &node.genesis,
            node.validator,
            consensus.heartbeat_interval.as_millis() as u64,
            consensus.election_timeout.as_millis() as u64,
        )
        .context(
            "configure Raft from the genesis and consensus.heartbeat_interval/election_timeout",
        )?;
        let core = match restored {
            Some(state) => Raft::restore(config, node.secret.clone(), state),
            None => Raft::new(config, node.secret.clone()),
        }
        .context("build the Raft core")?;
        Ok(core.with_verifier(verifier))
    }

    fn network_height(&self) -> u64 {
        Raft::network_height(self)
    }

    fn vote_window(&self) -> u64 {
        // A follower signs commit votes only for the entries it holds, at most this many
        // beyond its committed height; a new term's election vote is fenced by the lease
        // (a follower that hears its leader grants no vote, thesis §9.6).
        aegis_consensus::raft::config::MAX_UNCOMMITTED_ENTRIES as u64
    }
}
