//! PBFT's certificates checked from the paper, with the checker's own code: signing bytes
//! rebuilt from the wire format (docs/encoding.md), quorums from [`crate::quorum`], and O
//! recomputed as §4.4 says. None of it calls the core's verifiers, so a weakened check in the
//! core cannot weaken the checker.
//!
//! References: Castro & Liskov, OSDI '99, §4.2 (prepared certificates), §4.3 (stable
//! checkpoints), §4.4 (VIEW-CHANGE and NEW-VIEW); TOCS 2002 §2.3 for the certificate sizes.

use std::collections::BTreeMap;

use aegis_consensus::pbft::messages::{
    TAG_BATCH, TAG_CHECKPOINT, TAG_NEW_VIEW, TAG_PRE_PREPARE, TAG_PREPARE, TAG_VIEW_CHANGE,
};
use aegis_consensus::pbft::{
    Batch, CheckpointProof, NewView, PrePrepare, Prepare, PreparedCert, ViewChange,
};
use aegis_types::encoding::tagged_bytes;
use aegis_types::{Hash, ValidatorSet};

use crate::quorum::{self, SignatureMemo};

/// What the checks need to know about the cluster.
#[derive(Debug, Clone, Copy)]
pub struct Params<'a> {
    pub chain_id: &'a str,
    pub validators: &'a ValidatorSet,
    pub f: usize,
    /// K: checkpoints every K sequence numbers (§4.3).
    pub checkpoint_interval: u64,
    /// L: the log window between the watermarks (§4.3).
    pub log_window: u64,
    pub genesis_hash: Hash,
}

impl Params<'_> {
    pub fn n(&self) -> usize {
        self.validators.len()
    }

    pub fn quorum(&self) -> usize {
        quorum::quorum(self.n(), self.f)
    }

    pub fn primary(&self, view: u64) -> usize {
        quorum::primary(view, self.n())
    }
}

/// The request digest d of a batch: SHA-256 of its tagged canonical encoding.
pub fn batch_digest(batch: &Batch) -> Hash {
    Hash::digest(&tagged_bytes(TAG_BATCH, batch))
}

pub fn pre_prepare_bytes(chain_id: &str, view: u64, seq: u64, digest: &Hash) -> Vec<u8> {
    tagged_bytes(TAG_PRE_PREPARE, &(chain_id, view, seq, digest))
}

pub fn prepare_bytes(p: &Prepare, chain_id: &str) -> Vec<u8> {
    tagged_bytes(TAG_PREPARE, &(chain_id, p.view, p.seq, &p.digest, p.from))
}

pub fn checkpoint_bytes(chain_id: &str, seq: u64, block_hash: &Hash, from: u16) -> Vec<u8> {
    tagged_bytes(
        TAG_CHECKPOINT,
        &(chain_id, seq, block_hash, aegis_types::ValidatorId(from)),
    )
}

pub fn view_change_bytes(vc: &ViewChange, chain_id: &str) -> Vec<u8> {
    tagged_bytes(
        TAG_VIEW_CHANGE,
        &(chain_id, vc.new_view, &vc.checkpoint, &vc.prepared, vc.from),
    )
}

pub fn new_view_bytes(nv: &NewView, chain_id: &str) -> Vec<u8> {
    tagged_bytes(
        TAG_NEW_VIEW,
        &(chain_id, nv.view, &nv.view_changes, &nv.pre_prepares),
    )
}

/// A PRE-PREPARE signed by the primary of its view.
pub fn check_pre_prepare(
    memo: &mut SignatureMemo,
    params: &Params<'_>,
    pp: &PrePrepare,
) -> Result<(), String> {
    let bytes = pre_prepare_bytes(params.chain_id, pp.view, pp.seq, &batch_digest(&pp.batch));
    let primary = params.primary(pp.view);
    if memo.check_validator(params.validators, primary, &bytes, &pp.signature) {
        Ok(())
    } else {
        Err(format!(
            "PRE-PREPARE for view {}, sequence {} is not signed by the primary {primary}",
            pp.view, pp.seq
        ))
    }
}

/// §4.2 / §4.4: a prepared certificate is a PRE-PREPARE from the view's primary and a quorum
/// minus one (2f for n = 3f + 1) PREPAREs from distinct backups matching its view, sequence
/// number and digest, each validly signed.
pub fn check_prepared_cert(
    memo: &mut SignatureMemo,
    params: &Params<'_>,
    cert: &PreparedCert,
) -> Result<(), String> {
    let pp = &cert.pre_prepare;
    check_pre_prepare(memo, params, pp)?;
    let digest = batch_digest(&pp.batch);
    let primary = params.primary(pp.view);
    let mut signers = std::collections::BTreeSet::new();
    for p in &cert.prepares {
        let from = usize::from(p.from.0);
        if p.view != pp.view || p.seq != pp.seq || p.digest != digest {
            return Err(format!(
                "a PREPARE from {from} does not match the PRE-PREPARE (view {}, sequence {})",
                pp.view, pp.seq
            ));
        }
        if from == primary {
            return Err(format!("a PREPARE from the primary {from}"));
        }
        if !signers.insert(from) {
            return Err(format!("two PREPAREs from {from}"));
        }
        if !memo.check_validator(
            params.validators,
            from,
            &prepare_bytes(p, params.chain_id),
            &p.signature,
        ) {
            return Err(format!("the PREPARE from {from} is not validly signed"));
        }
    }
    let need = params.quorum() - 1;
    if signers.len() < need {
        return Err(format!(
            "{} PREPAREs for view {}, sequence {}; the paper needs {need} (a quorum minus the primary)",
            signers.len(),
            pp.view,
            pp.seq
        ));
    }
    Ok(())
}

/// §4.3: a stable checkpoint's proof is a quorum of CHECKPOINT messages from distinct
/// replicas for the same sequence number (a multiple of K) and digest. Sequence 0 is the
/// genesis, which needs no proof.
pub fn check_checkpoint_proof(
    memo: &mut SignatureMemo,
    params: &Params<'_>,
    proof: &CheckpointProof,
) -> Result<(), String> {
    if proof.seq == 0 {
        return if proof.block_hash == params.genesis_hash {
            Ok(())
        } else {
            Err("a checkpoint at 0 that is not the genesis".into())
        };
    }
    if !proof.seq.is_multiple_of(params.checkpoint_interval) {
        return Err(format!(
            "checkpoint at {} is not a multiple of K = {}",
            proof.seq, params.checkpoint_interval
        ));
    }
    let mut signers = std::collections::BTreeSet::new();
    for c in &proof.checkpoints {
        let from = usize::from(c.from.0);
        if c.seq != proof.seq || c.block_hash != proof.block_hash {
            return Err(format!("a CHECKPOINT from {from} for another state"));
        }
        let bytes = checkpoint_bytes(params.chain_id, c.seq, &c.block_hash, c.from.0);
        if !memo.check_validator(params.validators, from, &bytes, &c.signature) {
            return Err(format!("the CHECKPOINT from {from} is not validly signed"));
        }
        signers.insert(from);
    }
    let need = params.quorum();
    if signers.len() < need {
        return Err(format!(
            "checkpoint {} is proven by {} distinct CHECKPOINTs; the paper needs a quorum of {need}",
            proof.seq,
            signers.len()
        ));
    }
    Ok(())
}

/// §4.4: ⟨VIEW-CHANGE, v+1, n, C, P, i⟩ signed by i, C a valid proof of the checkpoint n, and
/// P one valid prepared certificate per sequence number above n (inside the log window), each
/// from a view before v+1.
pub fn check_view_change(
    memo: &mut SignatureMemo,
    params: &Params<'_>,
    vc: &ViewChange,
) -> Result<(), String> {
    let from = usize::from(vc.from.0);
    if !memo.check_validator(
        params.validators,
        from,
        &view_change_bytes(vc, params.chain_id),
        &vc.signature,
    ) {
        return Err(format!("VIEW-CHANGE from {from} is not validly signed"));
    }
    check_checkpoint_proof(memo, params, &vc.checkpoint)
        .map_err(|why| format!("VIEW-CHANGE from {from}: {why}"))?;
    let low = vc.checkpoint.seq;
    let mut previous = low;
    for cert in &vc.prepared {
        let seq = cert.pre_prepare.seq;
        if seq <= previous || seq > low + params.log_window {
            return Err(format!(
                "VIEW-CHANGE from {from}: prepared certificate for {seq} out of order or outside ({low}, {}]",
                low + params.log_window
            ));
        }
        previous = seq;
        if cert.pre_prepare.view >= vc.new_view {
            return Err(format!(
                "VIEW-CHANGE from {from} for view {}: a certificate from view {}",
                vc.new_view, cert.pre_prepare.view
            ));
        }
        check_prepared_cert(memo, params, cert)
            .map_err(|why| format!("VIEW-CHANGE from {from}: {why}"))?;
    }
    Ok(())
}

/// O as §4.4 computes it from V: min-s is the latest stable checkpoint in V, max-s the highest
/// sequence number prepared in V; each sequence number in (min-s, max-s] gets the batch of
/// the prepared certificate with the highest view, or a null request (`None`).
pub fn compute_o(view_changes: &[ViewChange]) -> (u64, BTreeMap<u64, Option<Batch>>) {
    let min_s = view_changes
        .iter()
        .map(|vc| vc.checkpoint.seq)
        .max()
        .unwrap_or(0);
    let mut best: BTreeMap<u64, &PreparedCert> = BTreeMap::new();
    for cert in view_changes.iter().flat_map(|vc| &vc.prepared) {
        let seq = cert.pre_prepare.seq;
        if seq <= min_s {
            continue;
        }
        if best
            .get(&seq)
            .is_none_or(|chosen| cert.pre_prepare.view > chosen.pre_prepare.view)
        {
            best.insert(seq, cert);
        }
    }
    let max_s = best.keys().next_back().copied().unwrap_or(min_s);
    let o = (min_s + 1..=max_s)
        .map(|seq| (seq, best.get(&seq).map(|c| c.pre_prepare.batch.clone())))
        .collect();
    (min_s, o)
}

/// §4.4: a NEW-VIEW a backup may accept: signed by the new primary, a quorum of valid
/// VIEW-CHANGEs for its view from distinct replicas, and O exactly as recomputed from them
/// (each PRE-PREPARE signed by the new primary; a null request is an empty batch of the new
/// primary in the new view). Returns min-s and the digest O orders at each sequence number.
pub fn check_new_view(
    memo: &mut SignatureMemo,
    params: &Params<'_>,
    nv: &NewView,
) -> Result<(u64, BTreeMap<u64, Hash>), String> {
    let primary = params.primary(nv.view);
    if !memo.check_validator(
        params.validators,
        primary,
        &new_view_bytes(nv, params.chain_id),
        &nv.signature,
    ) {
        return Err(format!(
            "NEW-VIEW for view {} is not signed by its primary {primary}",
            nv.view
        ));
    }
    let mut senders = std::collections::BTreeSet::new();
    for vc in &nv.view_changes {
        if vc.new_view != nv.view {
            return Err(format!(
                "NEW-VIEW for view {} holds a VIEW-CHANGE for view {}",
                nv.view, vc.new_view
            ));
        }
        if !senders.insert(vc.from) {
            return Err(format!(
                "NEW-VIEW for view {} holds two VIEW-CHANGEs from {}",
                nv.view, vc.from.0
            ));
        }
        check_view_change(memo, params, vc)
            .map_err(|why| format!("NEW-VIEW for view {}: {why}", nv.view))?;
    }
    if senders.len() < params.quorum() {
        return Err(format!(
            "NEW-VIEW for view {} carries {} VIEW-CHANGEs; the paper needs a quorum of {}",
            nv.view,
            senders.len(),
            params.quorum()
        ));
    }
    let (min_s, o) = compute_o(&nv.view_changes);
    if nv.pre_prepares.len() != o.len() {
        return Err(format!(
            "NEW-VIEW for view {}: O has {} PRE-PREPAREs, the paper's has {} (min-s {min_s})",
            nv.view,
            nv.pre_prepares.len(),
            o.len()
        ));
    }
    let mut digests = BTreeMap::new();
    for ((seq, batch), pp) in o.iter().zip(&nv.pre_prepares) {
        if pp.seq != *seq || pp.view != nv.view {
            return Err(format!(
                "NEW-VIEW for view {}: O has (view {}, sequence {}) where the paper has (view {}, sequence {seq})",
                nv.view, pp.view, pp.seq, nv.view
            ));
        }
        match batch {
            Some(batch) if *batch != pp.batch => {
                return Err(format!(
                    "NEW-VIEW for view {}: O orders another batch at {seq} than the prepared certificate of the highest view",
                    nv.view
                ));
            }
            Some(_) => {}
            None => {
                let null = pp.batch.txs.is_empty()
                    && usize::from(pp.batch.proposer.0) == primary
                    && pp.batch.view == nv.view;
                if !null {
                    return Err(format!(
                        "NEW-VIEW for view {}: O orders a batch at {seq} where the paper has a null request",
                        nv.view
                    ));
                }
            }
        }
        check_pre_prepare(memo, params, pp).map_err(|why| format!("NEW-VIEW: {why}"))?;
        digests.insert(*seq, batch_digest(&pp.batch));
    }
    Ok((min_s, digests))
}
