//! Raft's messages (Ongaro & Ousterhout, USENIX ATC 2014, Figure 2; PreVote from Ongaro's
//! thesis §9.6) and the catch-up hint that stands in for InstallSnapshot (§7).
//!
//! Messages are not signed: Raft tolerates crashes, not lies, and the P2P layer authenticates
//! every peer (mutual TLS), so `Input::Message { from }` names the sender. The one signature
//! that matters is the commit vote a follower returns for each block it holds durably: a
//! majority of them is the block's [`aegis_types::CommitCertificate`], checked by anyone with
//! the genesis.

use aegis_types::{Block, CommitCertificate, Signature, ValidatorId};
use borsh::{BorshDeserialize, BorshSerialize};

/// Every Raft message.
#[allow(
    clippy::large_enum_variant,
    reason = "messages are moved to the transport once and never stored in bulk"
)]
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum RaftMessage {
    RequestVote(RequestVote),
    Vote(VoteResponse),
    Append(AppendEntries),
    AppendResponse(AppendResponse),
    CatchUp(CatchUp),
}

/// RequestVote RPC (§5.2, §5.4.1): the candidate's term and how up to date its log is. With
/// `pre_vote`, `term` is the term it would campaign in; granting it changes nothing at the
/// voter (thesis §9.6).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct RequestVote {
    pub term: u64,
    pub last_index: u64,
    pub last_term: u64,
    pub pre_vote: bool,
}

/// The answer to a [`RequestVote`]. `term` is the request's term when a pre-vote is granted,
/// otherwise the voter's current term (so a stale candidate learns the newer one).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct VoteResponse {
    pub term: u64,
    /// The candidate the answer is for: a granted vote names whom the voter voted for, so
    /// an observer (the simulator's vote checker) sees a second vote in one term.
    pub candidate: ValidatorId,
    pub granted: bool,
    pub pre_vote: bool,
}

/// AppendEntries RPC (§5.3): entries are blocks, an entry's index is the block's height and
/// its term the header's `view`. `leader_commit` is the leader's committed height, and
/// `certificates` prove the blocks the follower has not committed yet (oldest first).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct AppendEntries {
    pub term: u64,
    pub prev_index: u64,
    pub prev_term: u64,
    pub entries: Vec<Block>,
    pub leader_commit: u64,
    pub certificates: Vec<CommitCertificate>,
}

/// A follower's commit vote for the block at `height`: its signature over
/// `CommitVote(chain, height, view = the current term, block hash)`.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct VoteSignature {
    pub height: u64,
    pub signature: Signature,
}

/// The answer to an [`AppendEntries`] (§5.3).
///
/// On success `index` is the highest index known to match the leader's log. On failure it is
/// the rejected `prev_index`, and `hint` the highest index the follower could match (the
/// §5.3 optimisation: the leader skips back past a whole conflicting term at once).
/// `committed` is the follower's committed height either way. `votes` are commit votes for
/// the entries above the leader's commit that the follower holds durably, given only when its
/// log ends in an entry of the current term, so a majority of them means a majority holds a
/// current-term entry at or above the height: committed by §5.4.2.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct AppendResponse {
    pub term: u64,
    pub success: bool,
    pub index: u64,
    pub hint: u64,
    pub committed: u64,
    pub votes: Vec<VoteSignature>,
}

/// The leader no longer holds the entries a follower needs (they were committed and left its
/// memory): the follower fetches the committed blocks with their certificates through sync,
/// the ledger standing in for the snapshot of §7.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct CatchUp {
    pub term: u64,
    pub committed: u64,
}
