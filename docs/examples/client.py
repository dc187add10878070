#!/usr/bin/env python3
"""A complete AEGIS client in Python, written from docs/api.md and docs/encoding.md alone.

It signs a transaction, submits it to a node over HTTP, waits until it is committed, then
checks everything it is told instead of trusting the node:

- the block header the node serves hashes to the block hash it names;
- the inclusion proof leads from the transaction id to the header's tx_root (RFC 9162) and
  its leaf count is the header's tx_count;
- the block's commit certificate holds a quorum of valid signatures by the validators of the
  genesis file, over that block hash.

Needs PyNaCl (`pip install pynacl`) and the network's genesis.json:

    python3 docs/examples/client.py --node http://localhost:8080 \\
        --genesis devnet/genesis.json --payload "hello"

Exit status 0 when the transaction is committed and every check holds.
"""
import argparse
import hashlib
import json
import os
import struct
import sys
import time
import urllib.error
import urllib.request

import nacl.exceptions
import nacl.signing

TAG_TX = b"AEGIS/tx/v1"
TAG_HEADER = b"AEGIS/block-header/v1"
TAG_VOTE = b"AEGIS/commit-vote/v1"
VERSION = 1


# ---------------------------------------------------------------- encoding (encoding.md)

def u8(v):
    return struct.pack("<B", v)


def u32(v):
    return struct.pack("<I", v)


def u64(v):
    return struct.pack("<Q", v)


def string(s):
    b = s.encode()
    return u32(len(b)) + b


def var_bytes(b):
    return u32(len(b)) + b


def sha256(data):
    return hashlib.sha256(data).digest()


def sign_transaction(key, chain_id, nonce, payload):
    """The JSON form of a signed transaction and its id (encoding.md, Transaction)."""
    sender = bytes(key.verify_key)
    body = u8(VERSION) + string(chain_id) + sender + u64(nonce) + var_bytes(payload)
    signing_bytes = TAG_TX + body
    tx = {
        "version": VERSION,
        "chain_id": chain_id,
        "sender": sender.hex(),
        "nonce": nonce,
        "payload": payload.hex(),
        "signature": key.sign(signing_bytes).signature.hex(),
    }
    return tx, sha256(signing_bytes).hex()


def header_hash(h):
    """SHA-256(TAG || borsh(header)) (encoding.md, Block header and block hash)."""
    body = (
        u8(h["version"])
        + string(h["chain_id"])
        + u64(h["height"])
        + bytes.fromhex(h["prev_hash"])
        + bytes.fromhex(h["tx_root"])
        + u32(h["tx_count"])
        + bytes.fromhex(h["proposer"])
        + u64(h["view"])
        + u64(h["timestamp_ms"])
    )
    return sha256(TAG_HEADER + body)


def commit_vote_bytes(chain_id, height, view, block_hash):
    """The bytes a validator signs to commit a block (encoding.md, Commit vote)."""
    return TAG_VOTE + u8(VERSION) + string(chain_id) + u64(height) + u64(view) + block_hash


# ------------------------------------------------------------ RFC 9162 inclusion proofs

def leaf_hash(tx_id):
    return sha256(b"\x00" + tx_id)


def node_hash(left, right):
    return sha256(b"\x01" + left + right)


def root_from_proof(tx_id, index, leaf_count, path):
    """RFC 9162 §2.1.3.2: the root an inclusion proof leads to, or None if malformed."""
    if index >= leaf_count:
        return None
    fn, sn = index, leaf_count - 1
    r = leaf_hash(tx_id)
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


# ------------------------------------------------------------------------- the node API

def request(url, body=None):
    """(status, JSON body) of a GET, or of a POST when body is given."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node", required=True, help="the node's API, e.g. http://localhost:8080")
    parser.add_argument("--genesis", required=True, help="the network's genesis.json")
    parser.add_argument("--payload", default="hello from python")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the commit")
    args = parser.parse_args()
    node = args.node.rstrip("/")

    with open(args.genesis) as f:
        genesis = json.load(f)
    chain_id = genesis["chain_id"]
    validators = [bytes.fromhex(v["public_key"]) for v in genesis["validators"]]
    n, f = len(validators), genesis["consensus"]["max_byzantine_nodes"]
    quorum = (n + f) // 2 + 1

    key = nacl.signing.SigningKey(os.urandom(32))
    nonce = time.time_ns()
    tx, tx_id = sign_transaction(key, chain_id, nonce, args.payload.encode())

    status, answer = request(f"{node}/v1/transactions", tx)
    if status != 202:
        fail(f"submit: {status} {answer}")
    if answer.get("id") != tx_id:
        fail(f"the node names another id: {answer}")
    print(f"submitted {tx_id}")

    deadline = time.time() + args.timeout
    while True:
        status, answer = request(f"{node}/v1/transactions/{tx_id}")
        if status == 200 and answer["status"] == "committed":
            break
        if status not in (200, 404):
            fail(f"read the transaction: {status} {answer}")
        if time.time() > deadline:
            fail(f"not committed within {args.timeout} s")
        time.sleep(0.2)
    height, proof = answer["height"], answer["proof"]
    print(f"committed at height {height}, index {answer['index']}")

    status, block = request(f"{node}/v1/blocks/{height}")
    if status != 200:
        fail(f"read block {height}: {status} {block}")
    header = block["header"]
    block_hash = header_hash(header)
    if block_hash.hex() != block["hash"] or block_hash.hex() != answer["block_hash"]:
        fail("the block header does not hash to the block hash the node names")
    if header["chain_id"] != chain_id or header["height"] != height:
        fail("the block is not this chain's block at that height")

    if proof["leaf_count"] != header["tx_count"]:
        fail("the proof's leaf count is not the header's transaction count")
    path = [bytes.fromhex(p) for p in proof["path"]]
    root = root_from_proof(bytes.fromhex(tx_id), proof["index"], proof["leaf_count"], path)
    if root is None or root.hex() != header["tx_root"]:
        fail("the inclusion proof does not lead to the header's tx_root")
    print("inclusion proof: ok")

    certificate = block["certificate"]
    if certificate["height"] != height or certificate["block_hash"] != block["hash"]:
        fail("the certificate is for another block")
    message = commit_vote_bytes(chain_id, height, certificate["view"], block_hash)
    signers = set()
    for entry in certificate["signatures"]:
        index = entry["validator"]
        if index >= n or index in signers:
            fail(f"certificate signature by an unknown or repeated validator {index}")
        try:
            nacl.signing.VerifyKey(validators[index]).verify(message, bytes.fromhex(entry["signature"]))
        except nacl.exceptions.BadSignatureError:
            fail(f"validator {index}'s signature does not verify")
        signers.add(index)
    if len(signers) < quorum:
        fail(f"the certificate has {len(signers)} signatures, the quorum is {quorum}")
    print(f"commit certificate: ok ({len(signers)} of {n} validators, quorum {quorum})")


if __name__ == "__main__":
    main()
