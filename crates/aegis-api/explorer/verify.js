// What the explorer checks in the browser, from docs/encoding.md alone: transaction ids,
// block hashes, RFC 9162 transaction roots and inclusion proofs, and commit certificates.
// SHA-256 comes from Web Crypto; browsers offer Web Crypto only to secure contexts (HTTPS,
// or a page from localhost), so over plain HTTP to another host the page uses its own SHA-256
// below, and says so. Ed25519 (certificate signatures) is Web Crypto only.

const TEXT = new TextEncoder();

export const TAG_TX = "AEGIS/tx/v1";
export const TAG_HEADER = "AEGIS/block-header/v1";
export const TAG_COMMIT_VOTE = "AEGIS/commit-vote/v1";
/// The encoding version every object of docs/encoding.md carries.
export const ENCODING_VERSION = 1;
/// Integers with more digits than this may exceed 2^53 and lose precision as JS numbers.
const SAFE_DIGITS = 15;

/// JSON.parse, keeping integers too large for a JS number exact: they become strings
/// (u64 nonces, heights and views; BigInt() takes them back).
export function parseJson(text) {
  const number = /("(?:[^"\\]|\\.)*")|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/g;
  const quoted = text.replace(number, (match, string, value) => {
    if (string !== undefined) return string;
    const integer = /^-?\d+$/.test(value);
    return integer && value.replace("-", "").length > SAFE_DIGITS ? `"${value}"` : value;
  });
  return JSON.parse(quoted);
}

export function hexToBytes(hex) {
  if (typeof hex !== "string" || hex.length % 2 !== 0 || /[^0-9a-fA-F]/.test(hex)) {
    throw new Error(`not hex: ${String(hex).slice(0, 80)}`);
  }
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

export function bytesToHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/// Whether this page may use Web Crypto (a secure context).
export function webCrypto() {
  return typeof crypto !== "undefined" && crypto.subtle !== undefined;
}

/// SHA-256 of `bytes`: Web Crypto's, or this page's own where Web Crypto is unavailable.
export async function sha256(bytes) {
  if (webCrypto()) return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return sha256Fallback(bytes);
}

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

/// FIPS 180-4 SHA-256, for pages without Web Crypto.
export function sha256Fallback(bytes) {
  const length = bytes.length;
  const padded = new Uint8Array(Math.ceil((length + 9) / 64) * 64);
  padded.set(bytes);
  padded[length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, Math.floor(length / 0x20000000));
  view.setUint32(padded.length - 4, (length * 8) >>> 0);
  const h = new Uint32Array([
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
  ]);
  const w = new Uint32Array(64);
  const rotr = (x, n) => (x >>> n) | (x << (32 - n));
  for (let block = 0; block < padded.length; block += 64) {
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(block + 4 * i);
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
      const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) >>> 0;
    }
    let [a, b, c, d, e, f, g, k] = h;
    for (let i = 0; i < 64; i++) {
      const t1 = (k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i]) >>> 0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
      [k, g, f, e, d, c, b, a] = [g, f, e, (d + t1) >>> 0, c, b, a, (t1 + t2) >>> 0];
    }
    const add = [a, b, c, d, e, f, g, k];
    for (let i = 0; i < 8; i++) h[i] = (h[i] + add[i]) >>> 0;
  }
  const out = new Uint8Array(32);
  const outView = new DataView(out.buffer);
  for (let i = 0; i < 8; i++) outView.setUint32(4 * i, h[i]);
  return out;
}

/// Borsh, as docs/encoding.md uses it.
export class Borsh {
  constructor(tag) {
    this.parts = [TEXT.encode(tag)];
  }
  u8(value) {
    this.parts.push(Uint8Array.of(Number(value)));
    return this;
  }
  u32(value) {
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setUint32(0, Number(value), true);
    this.parts.push(bytes);
    return this;
  }
  u64(value) {
    const bytes = new Uint8Array(8);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(value), true);
    this.parts.push(bytes);
    return this;
  }
  fixed(hex, length) {
    const bytes = hexToBytes(hex);
    if (bytes.length !== length) throw new Error(`expected ${length} bytes, got ${bytes.length}`);
    this.parts.push(bytes);
    return this;
  }
  bytes(bytes) {
    this.u32(bytes.length);
    this.parts.push(bytes);
    return this;
  }
  string(text) {
    return this.bytes(TEXT.encode(text));
  }
  done() {
    return concat(...this.parts);
  }
}

/// A transaction's signing bytes: "AEGIS/tx/v1" || borsh(TxBody).
export function txSigningBytes(tx) {
  return new Borsh(TAG_TX)
    .u8(tx.version)
    .string(tx.chain_id)
    .fixed(tx.sender, 32)
    .u64(tx.nonce)
    .bytes(hexToBytes(tx.payload))
    .done();
}

/// The transaction id: SHA-256 of its signing bytes, hex.
export async function txId(tx) {
  return bytesToHex(await sha256(txSigningBytes(tx)));
}

/// The block hash: SHA-256("AEGIS/block-header/v1" || borsh(header)), hex.
export async function headerHash(header) {
  const bytes = new Borsh(TAG_HEADER)
    .u8(header.version)
    .string(header.chain_id)
    .u64(header.height)
    .fixed(header.prev_hash, 32)
    .fixed(header.tx_root, 32)
    .u32(header.tx_count)
    .fixed(header.proposer, 32)
    .u64(header.view)
    .u64(header.timestamp_ms)
    .done();
  return bytesToHex(await sha256(bytes));
}

const leafHash = (id) => sha256(concat(Uint8Array.of(0), hexToBytes(id)));
const nodeHash = (left, right) => sha256(concat(Uint8Array.of(1), left, right));

/// RFC 9162 §2.1.1: the Merkle tree hash of the transaction ids, hex.
export async function merkleRoot(ids) {
  const mth = async (leaves) => {
    if (leaves.length === 0) return sha256(new Uint8Array(0));
    if (leaves.length === 1) return leafHash(leaves[0]);
    let split = 1;
    while (split * 2 < leaves.length) split *= 2;
    return nodeHash(await mth(leaves.slice(0, split)), await mth(leaves.slice(split)));
  };
  return bytesToHex(await mth(ids));
}

/// RFC 9162 §2.1.3.2: the root an inclusion proof of `id` leads to, hex, or null when the
/// proof cannot be valid (index out of range, path too long or too short).
export async function proofRoot(id, proof) {
  const index = Number(proof.index);
  const size = Number(proof.leaf_count);
  if (!(index < size)) return null;
  let fn = index;
  let sn = size - 1;
  let r = await leafHash(id);
  for (const sibling of proof.path) {
    if (sn === 0) return null;
    const p = hexToBytes(sibling);
    if (fn % 2 === 1 || fn === sn) {
      r = await nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 ? bytesToHex(r) : null;
}

/// The bytes each validator signs to commit a block: "AEGIS/commit-vote/v1" || borsh(vote).
export function commitVoteBytes(chainId, certificate) {
  return new Borsh(TAG_COMMIT_VOTE)
    .u8(ENCODING_VERSION)
    .string(chainId)
    .u64(certificate.height)
    .u64(certificate.view)
    .fixed(certificate.block_hash, 32)
    .done();
}

/// Whether this browser verifies Ed25519 with Web Crypto.
export async function ed25519Available() {
  if (!webCrypto()) return false;
  try {
    await crypto.subtle.importKey("raw", new Uint8Array(32).fill(1), { name: "Ed25519" }, false, ["verify"]);
    return true;
  } catch {
    return false;
  }
}

/// Checks a commit certificate for `block` against the validators of `GET /v1/peers`:
/// it names this block, its signers are distinct genesis validators, at least a quorum of
/// them, and (where the browser has Ed25519) every signature verifies.
/// Returns {ok, signers, quorum, verified (count or null when not checked), problems}.
export async function checkCertificate(chainId, blockHash, height, certificate, peers) {
  const problems = [];
  if (certificate.block_hash !== blockHash) problems.push("it names another block hash");
  if (String(certificate.height) !== String(height)) problems.push("it names another height");
  const seen = new Set();
  for (const { validator } of certificate.signatures) {
    if (seen.has(validator)) problems.push(`validator ${validator} signs twice`);
    if (!peers.validators[validator]) problems.push(`no validator ${validator} in the genesis`);
    seen.add(validator);
  }
  if (seen.size < peers.quorum) problems.push(`${seen.size} signers, the quorum is ${peers.quorum}`);
  let verified = null;
  if (await ed25519Available()) {
    verified = 0;
    const message = commitVoteBytes(chainId, certificate);
    for (const { validator, signature } of certificate.signatures) {
      const member = peers.validators[validator];
      if (!member) continue;
      const key = await crypto.subtle.importKey("raw", hexToBytes(member.public_key), { name: "Ed25519" }, false, ["verify"]);
      if (await crypto.subtle.verify({ name: "Ed25519" }, key, hexToBytes(signature), message)) {
        verified += 1;
      } else {
        problems.push(`the signature of ${member.name} does not verify`);
      }
    }
  }
  return { ok: problems.length === 0, signers: seen.size, quorum: peers.quorum, verified, problems };
}
