-- AEGIS schema version 3 (SQLite): the validators whose consensus engine has run on this ledger.
-- A node that finds its own key here but no consensus log under data/consensus/ has lost the
-- record of what it signed: it syncs from its peers and does not vote until it is past every
-- slot it could have signed before (docs/adr/0013-recovery-and-vote-fence.md).

CREATE TABLE consensus_runs (
    public_key     TEXT    NOT NULL PRIMARY KEY,   -- Ed25519 key, 64 hex characters
    first_run_ms   BIGINT  NOT NULL,
    last_run_ms    BIGINT  NOT NULL
);
