#!/usr/bin/env python3
"""Builds and signs an AEGIS transaction without any AEGIS code (docs/encoding.md).

Needs PyNaCl (`pip install pynacl`). With no arguments it signs the golden-vector transaction
and prints its id, signing bytes, signature and JSON form; the test suite compares them with
crates/aegis-crypto/tests/golden/encoding-v1.json.
"""
import hashlib
import json
import struct

import nacl.signing


def borsh_str(s: str) -> bytes:
    b = s.encode()
    return struct.pack('<I', len(b)) + b


def borsh_bytes(b: bytes) -> bytes:
    return struct.pack('<I', len(b)) + b


def sign_transaction(key: nacl.signing.SigningKey, chain_id: str, nonce: int, payload: bytes) -> dict:
    sender = bytes(key.verify_key)
    body = bytes([1]) + borsh_str(chain_id) + sender + struct.pack('<Q', nonce) + borsh_bytes(payload)
    signing_bytes = b"AEGIS/tx/v1" + body
    return {
        "id": hashlib.sha256(signing_bytes).hexdigest(),
        "signing_bytes": signing_bytes.hex(),
        "json": {
            "version": 1,
            "chain_id": chain_id,
            "sender": sender.hex(),
            "nonce": nonce,
            "payload": payload.hex(),
            "signature": key.sign(signing_bytes).signature.hex(),
        },
    }


if __name__ == "__main__":
    key = nacl.signing.SigningKey(bytes([0x11]) * 32)
    print(json.dumps(sign_transaction(key, "golden-chain", 42, b"transfer 10 from alice to bob")))
