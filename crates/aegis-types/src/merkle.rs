//! Merkle trees over transaction ids, as in RFC 9162 (Certificate Transparency v2) §2.1.
//!
//! Leaves and interior nodes are hashed with different prefixes (`0x00` and `0x01`), so an
//! interior node can never be passed off as a leaf; the tree is not padded, so no two
//! different lists of ids share a root (unlike Bitcoin's duplicate-the-last-node rule).

use serde::{Deserialize, Serialize};

use crate::Hash;

const LEAF_PREFIX: [u8; 1] = [0x00];
const NODE_PREFIX: [u8; 1] = [0x01];
/// Deepest proof accepted: enough for 2^64 leaves.
pub const MAX_PROOF_DEPTH: usize = 64;

fn leaf_hash(id: &Hash) -> Hash {
    Hash::digest_parts(&[&LEAF_PREFIX, id.as_bytes()])
}

fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Hash::digest_parts(&[&NODE_PREFIX, left.as_bytes(), right.as_bytes()])
}

/// Largest power of two strictly below `n` (n >= 2).
fn split_point(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// Merkle tree hash of already-hashed leaves (RFC 9162 MTH).
fn tree_hash(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Hash::digest(&[]),
        1 => leaves[0],
        n => {
            let k = split_point(n);
            node_hash(&tree_hash(&leaves[..k]), &tree_hash(&leaves[k..]))
        }
    }
}

/// Root over the transaction ids of a block, in block order. The root of no ids is SHA-256("").
pub fn merkle_root(ids: &[Hash]) -> Hash {
    let leaves: Vec<Hash> = ids.iter().map(leaf_hash).collect();
    tree_hash(&leaves)
}

/// Proof that one transaction id is the `index`-th of `leaf_count` ids under a root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerkleProof {
    pub index: u64,
    pub leaf_count: u64,
    /// Sibling hashes from the leaf up to the root.
    pub path: Vec<Hash>,
}

impl MerkleProof {
    /// Builds the inclusion proof of `ids[index]`; `None` when `index` is out of range.
    pub fn build(ids: &[Hash], index: usize) -> Option<MerkleProof> {
        if index >= ids.len() {
            return None;
        }
        let leaves: Vec<Hash> = ids.iter().map(leaf_hash).collect();
        let mut path = Vec::new();
        collect_path(index, &leaves, &mut path);
        Some(MerkleProof {
            index: index as u64,
            leaf_count: ids.len() as u64,
            path,
        })
    }

    /// True when `id` is in the block with this header: the proof's leaf count must be the
    /// header's `tx_count` (an RFC 9162 proof does not bind the tree size by itself) and the
    /// path must lead to the header's `tx_root`.
    pub fn verify_in_block(&self, id: &Hash, header: &crate::BlockHeader) -> bool {
        self.leaf_count == u64::from(header.tx_count) && self.verify(id, &header.tx_root)
    }

    /// RFC 9162 §2.1.3.2: true when `id` at `index` hashes up to `root`.
    pub fn verify(&self, id: &Hash, root: &Hash) -> bool {
        if self.index >= self.leaf_count || self.path.len() > MAX_PROOF_DEPTH {
            return false;
        }
        let mut f = self.index;
        let mut s = self.leaf_count - 1;
        let mut r = leaf_hash(id);
        for p in &self.path {
            if s == 0 {
                return false;
            }
            if f & 1 == 1 || f == s {
                r = node_hash(p, &r);
                if f & 1 == 0 {
                    while f & 1 == 0 && f != 0 {
                        f >>= 1;
                        s >>= 1;
                    }
                }
            } else {
                r = node_hash(&r, p);
            }
            f >>= 1;
            s >>= 1;
        }
        s == 0 && r == *root
    }
}

fn collect_path(index: usize, leaves: &[Hash], path: &mut Vec<Hash>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split_point(n);
    if index < k {
        collect_path(index, &leaves[..k], path);
        path.push(tree_hash(&leaves[k..]));
    } else {
        collect_path(index - k, &leaves[k..], path);
        path.push(tree_hash(&leaves[..k]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ids(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| Hash::digest(&(i as u64).to_le_bytes()))
            .collect()
    }

    #[test]
    fn empty_root_is_hash_of_nothing() {
        assert_eq!(merkle_root(&[]), Hash::digest(b""));
    }

    #[test]
    fn single_leaf_root_is_its_leaf_hash() {
        let ids = ids(1);
        assert_eq!(merkle_root(&ids), leaf_hash(&ids[0]));
        let proof = MerkleProof::build(&ids, 0).unwrap();
        assert!(proof.path.is_empty());
        assert!(proof.verify(&ids[0], &merkle_root(&ids)));
    }

    #[test]
    fn every_proof_verifies_for_sizes_up_to_33() {
        for n in 1..=33 {
            let ids = ids(n);
            let root = merkle_root(&ids);
            for i in 0..n {
                let proof = MerkleProof::build(&ids, i).unwrap();
                assert!(proof.verify(&ids[i], &root), "n={n} i={i}");
            }
        }
    }

    #[test]
    fn tampered_proofs_fail() {
        let ids = ids(7);
        let root = merkle_root(&ids);
        let proof = MerkleProof::build(&ids, 5).unwrap();
        // Wrong leaf.
        assert!(!proof.verify(&ids[4], &root));
        // Wrong index.
        assert!(
            !MerkleProof {
                index: 4,
                ..proof.clone()
            }
            .verify(&ids[5], &root)
        );
        // A flipped bit in a sibling.
        let mut bad = proof.clone();
        bad.path[0].0[0] ^= 1;
        assert!(!bad.verify(&ids[5], &root));
        // A sibling dropped or added.
        let mut short = proof.clone();
        short.path.pop();
        assert!(!short.verify(&ids[5], &root));
        let mut long = proof.clone();
        long.path.push(Hash::ZERO);
        assert!(!long.verify(&ids[5], &root));
        // Index out of range. (A proof does not pin the leaf count on its own: the verifier
        // takes it from the signed header, see `verify_in_block`.)
        assert!(!MerkleProof { index: 7, ..proof }.verify(&ids[5], &root));
        assert!(MerkleProof::build(&ids, 7).is_none());
    }

    #[test]
    fn interior_node_is_not_a_leaf() {
        // The second-preimage attack on unprefixed trees: present the hash of two leaves as
        // one leaf of a shorter list. Prefixes make the roots differ.
        let ids = ids(2);
        let combined = node_hash(&leaf_hash(&ids[0]), &leaf_hash(&ids[1]));
        assert_ne!(merkle_root(&[combined]), merkle_root(&ids));
    }

    proptest! {
        #[test]
        fn proofs_hold_for_any_size(n in 1usize..200, seed in any::<u64>()) {
            let ids: Vec<Hash> = (0..n).map(|i| Hash::digest(&(seed ^ i as u64).to_le_bytes())).collect();
            let root = merkle_root(&ids);
            let i = (seed as usize) % n;
            let proof = MerkleProof::build(&ids, i).unwrap();
            prop_assert!(proof.verify(&ids[i], &root));
            let other = (i + 1) % n;
            if n > 1 && ids[other] != ids[i] {
                prop_assert!(!proof.verify(&ids[other], &root));
            }
        }
    }
}
