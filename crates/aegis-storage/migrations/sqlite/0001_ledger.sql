-- AEGIS schema version 1 (SQLite). Same tables and columns as migrations/postgres/0001_ledger.sql.
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
    height          INTEGER NOT NULL PRIMARY KEY CHECK (height >= 1),
    hash            TEXT    NOT NULL UNIQUE,       -- SHA-256 of the tagged header, hex
    prev_hash       TEXT    NOT NULL,
    tx_root         TEXT    NOT NULL,
    proposer        TEXT    NOT NULL,
    consensus_view  BIGINT  NOT NULL,
    timestamp_ms    BIGINT  NOT NULL,
    tx_count        INTEGER NOT NULL,
    header          BLOB    NOT NULL,              -- borsh(BlockHeader)
    certificate     BLOB    NOT NULL               -- borsh(CommitCertificate)
);

CREATE TABLE transactions (
    block_height  BIGINT   NOT NULL REFERENCES blocks (height),
    tx_index      INTEGER  NOT NULL,
    id            BLOB     NOT NULL,               -- SHA-256 of the tagged body, 32 bytes
    version       SMALLINT NOT NULL,
    chain_id      TEXT     NOT NULL,
    sender        BLOB     NOT NULL,               -- Ed25519 key, 32 bytes
    nonce         BIGINT   NOT NULL,               -- u64 stored as its two's-complement i64
    payload       BLOB     NOT NULL,
    signature     BLOB     NOT NULL,               -- Ed25519 signature, 64 bytes
    PRIMARY KEY (block_height, tx_index)
);

-- Lookup by id goes through the first 8 bytes of the id (ids are hashes, so a prefix is as
-- selective as the whole id). Keys are random, so every insert lands on a different leaf
-- page; an 8-byte key keeps the index about a quarter the size of one on the full id, with
-- fewer pages to rewrite per commit. Queries say `substr(id, 1, 8) = substr(?, 1, 8) AND id = ?`.
CREATE INDEX transactions_id_idx ON transactions (substr(id, 1, 8));
