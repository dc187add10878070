//! Valid chains made in-process: validator keys, a genesis, blocks of really signed
//! transactions and commit certificates signed by a quorum. Used by the benchmark and tests.

use aegis_crypto::SecretKey;
use aegis_types::encoding::ENCODING_VERSION;
use aegis_types::{
    Block, CommitCertificate, ConsensusParams, Genesis, Hash, TxBody, Validator, ValidatorId,
};

use crate::traits::Tip;

/// Distinct transaction senders the generator rotates through.
const CLIENTS: usize = 16;

/// Makes the next valid blocks of a chain.
#[derive(Debug)]
pub struct ChainFixture {
    pub genesis: Genesis,
    /// Secret keys of the genesis validators, in genesis order.
    pub validator_keys: Vec<SecretKey>,
    client_keys: Vec<SecretKey>,
    next_height: u64,
    prev_hash: Hash,
    next_nonce: u64,
}

impl ChainFixture {
    /// A fresh network of `validators` validators (f = (n-1)/3) with chain id `chain_id`.
    pub fn new(validators: usize, chain_id: &str) -> ChainFixture {
        let n = validators.max(1);
        let keys: Vec<SecretKey> = (0..n).map(|_| SecretKey::generate()).collect();
        let genesis = Genesis {
            chain_id: chain_id.to_owned(),
            genesis_time_ms: 1_767_225_600_000,
            validators: keys
                .iter()
                .enumerate()
                .map(|(i, key)| Validator {
                    name: format!("node{i}"),
                    public_key: key.public_key(),
                    p2p_address: format!("127.0.0.1:{}", 8000 + i),
                    api_address: format!("127.0.0.1:{}", 8080 + i),
                })
                .collect(),
            consensus: ConsensusParams {
                max_byzantine_nodes: ((n - 1) / 3) as u32,
                ..ConsensusParams::default()
            },
        };
        ChainFixture::from_parts(genesis, keys)
    }

    /// Blocks for an existing genesis whose validator secret keys the caller holds.
    pub fn from_parts(genesis: Genesis, validator_keys: Vec<SecretKey>) -> ChainFixture {
        let prev_hash = genesis.hash();
        ChainFixture {
            genesis,
            validator_keys,
            client_keys: (0..CLIENTS).map(|_| SecretKey::generate()).collect(),
            next_height: 1,
            prev_hash,
            next_nonce: 0,
        }
    }

    /// Continues after a stored tip (or from the genesis for `None`).
    pub fn resume(&mut self, tip: Option<Tip>) {
        match tip {
            Some(tip) => {
                self.next_height = tip.height + 1;
                self.prev_hash = tip.hash;
            }
            None => {
                self.next_height = 1;
                self.prev_hash = self.genesis.hash();
            }
        }
        // Nonces stay unique across resumes within one fixture.
        self.next_nonce = self.next_nonce.max(self.next_height << 20);
    }

    pub fn next_height(&self) -> u64 {
        self.next_height
    }

    /// The next block with `txs` transactions of `payload_bytes` bytes, and its certificate.
    pub fn next_block(&mut self, txs: usize, payload_bytes: usize) -> (Block, CommitCertificate) {
        self.next_blocks(1, txs, payload_bytes, 1)
            .pop()
            .unwrap_or_else(|| self.empty_block())
    }

    fn empty_block(&mut self) -> (Block, CommitCertificate) {
        self.seal(Vec::new())
    }

    /// `count` consecutive blocks, signing transactions on `threads` threads.
    pub fn next_blocks(
        &mut self,
        count: usize,
        txs: usize,
        payload_bytes: usize,
        threads: usize,
    ) -> Vec<(Block, CommitCertificate)> {
        let bodies: Vec<TxBody> = (0..count * txs)
            .map(|_| {
                let nonce = self.next_nonce;
                self.next_nonce += 1;
                TxBody {
                    version: ENCODING_VERSION,
                    chain_id: self.genesis.chain_id.clone(),
                    sender: self.client_keys[(nonce as usize) % CLIENTS].public_key(),
                    nonce,
                    payload: payload(nonce, payload_bytes),
                }
            })
            .collect();
        let signed = sign_all(&self.client_keys, bodies, threads.max(1));
        let mut out = Vec::with_capacity(count);
        let mut signed = signed.into_iter();
        for _ in 0..count {
            let block_txs: Vec<_> = signed.by_ref().take(txs).collect();
            out.push(self.seal(block_txs));
        }
        out
    }

    fn seal(&mut self, txs: Vec<aegis_types::Transaction>) -> (Block, CommitCertificate) {
        let height = self.next_height;
        let n = self.validator_keys.len().max(1) as u64;
        let block = Block::new(
            &self.genesis.chain_id,
            height,
            self.prev_hash,
            self.validator_keys
                .get((height % n) as usize)
                .map(SecretKey::public_key)
                .unwrap_or(aegis_types::PublicKey([0; 32])),
            height / 7,
            self.genesis.genesis_time_ms + height * 1000,
            txs,
        );
        let certificate = self.certify(&block);
        self.next_height += 1;
        self.prev_hash = block.hash();
        (block, certificate)
    }

    /// A commit certificate for `block` signed by the first quorum of validators.
    pub fn certify(&self, block: &Block) -> CommitCertificate {
        let quorum = self
            .genesis
            .validator_set()
            .map(|set| set.quorum())
            .unwrap_or(self.validator_keys.len());
        let mut certificate = CommitCertificate {
            height: block.height(),
            view: block.header.view,
            block_hash: block.hash(),
            signatures: Vec::with_capacity(quorum),
        };
        let vote = certificate.vote(&self.genesis.chain_id);
        for (i, key) in self.validator_keys.iter().enumerate().take(quorum) {
            certificate
                .signatures
                .push(key.sign_commit_vote(ValidatorId(i as u16), &vote));
        }
        certificate
    }
}

/// Cheap varied payload bytes (xorshift), so pages do not compress to nothing.
fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn sign_all(
    clients: &[SecretKey],
    bodies: Vec<TxBody>,
    threads: usize,
) -> Vec<aegis_types::Transaction> {
    // The sender of nonce k is client k mod CLIENTS (see `next_blocks`).
    let sign_chunk = |chunk: Vec<TxBody>| -> Vec<aegis_types::Transaction> {
        chunk
            .into_iter()
            .map(|body| {
                let key = &clients[(body.nonce as usize) % clients.len()];
                key.sign_transaction(body)
            })
            .collect()
    };
    if threads <= 1 || bodies.len() < 64 {
        return sign_chunk(bodies);
    }
    let per = bodies.len().div_ceil(threads);
    let mut chunks: Vec<Vec<TxBody>> = Vec::with_capacity(threads);
    let mut rest = bodies;
    while !rest.is_empty() {
        let tail = rest.split_off(per.min(rest.len()));
        chunks.push(rest);
        rest = tail;
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| scope.spawn(|| sign_chunk(chunk)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}
