-- AEGIS schema version 1 (PostgreSQL). Same tables and columns as migrations/sqlite/0001_ledger.sql.
-- The canonical bytes (blocks.header, blocks.certificate and the transaction columns) are the
-- source of truth; hash, prev_hash, tx_root, proposer, consensus_view, timestamp_ms and
-- tx_count are readable copies that `aegis verify` checks against them.

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
    id            TEXT     NOT NULL,               -- SHA-256 of the tagged body, hex
    version       SMALLINT NOT NULL,
    chain_id      TEXT     NOT NULL,
    sender        TEXT     NOT NULL,               -- Ed25519 key, hex
    nonce         BIGINT   NOT NULL,               -- u64 stored as its two's-complement i64
    payload       BYTEA    NOT NULL,
    signature     TEXT     NOT NULL,               -- Ed25519 signature, hex
    PRIMARY KEY (block_height, tx_index)
);

CREATE INDEX transactions_id_idx ON transactions (id);
