-- AEGIS schema version 1 (PostgreSQL). Same tables and columns as migrations/sqlite/0001_ledger.sql.
-- The canonical bytes (blocks.header, blocks.certificate and the transaction columns) are the
-- source of truth; hash, prev_hash, tx_root, proposer, consensus_view, timestamp_ms and
-- tx_count are readable copies that `aegis verify` checks against them.
-- Transaction ids, senders and signatures are raw bytes: `SELECT encode(id, 'hex')` on
-- PostgreSQL, `SELECT hex(id)` on SQLite shows them.

CREATE TABLE nodes (
    public_key     TEXT    NOT NULL PRIMARY KEY,   -- Ed25519 key, 64 hex characters
    name           TEXT    NOT NULL,
    p2p_address    TEXT    NOT NULL,
    api_address    TEXT    NOT NULL,
    is_validator   BOOLEAN NOT NULL,
    first_seen_ms  BIGINT  NOT NULL,
    last_seen_ms   BIGINT
);

CREATE TABLE blocks (
    height          BIGINT  NOT NULL PRIMARY KEY CHECK (height >= 1),
    hash            TEXT    NOT NULL UNIQUE,       -- SHA-256 of the tagged header, hex
    prev_hash       TEXT    NOT NULL,
    tx_root         TEXT    NOT NULL,
    proposer        TEXT    NOT NULL,
    consensus_view  BIGINT  NOT NULL,
    timestamp_ms    BIGINT  NOT NULL,
    tx_count        INTEGER NOT NULL,
    header          BYTEA   NOT NULL,              -- borsh(BlockHeader)
    certificate     BYTEA   NOT NULL               -- borsh(CommitCertificate)
);

CREATE TABLE transactions (
    block_height  BIGINT   NOT NULL REFERENCES blocks (height),
    tx_index      INTEGER  NOT NULL,
    id            BYTEA    NOT NULL,               -- SHA-256 of the tagged body, 32 bytes
    version       SMALLINT NOT NULL,
    chain_id      TEXT     NOT NULL,
    sender        BYTEA    NOT NULL,               -- Ed25519 key, 32 bytes
    nonce         BIGINT   NOT NULL,               -- u64 stored as its two's-complement i64
    payload       BYTEA    NOT NULL,
    signature     BYTEA    NOT NULL,               -- Ed25519 signature, 64 bytes
    PRIMARY KEY (block_height, tx_index)
);

-- Lookup by id: a hash index stores a 4-byte hash code per row instead of the 32-byte id,
-- so it is smaller than a B-tree on a random key and each insert dirties less of it.
CREATE INDEX transactions_id_idx ON transactions USING hash (id);
