-- AEGIS schema version 2 (SQLite): the transaction-id index becomes a table filled in bulk.
-- An index on random keys (ids are hashes) made every commit rewrite about one index page per
-- transaction; `transaction_ids` is instead filled a few hundred blocks at a time, its rows
-- sorted by key. It covers every block up to transaction_ids_state.indexed_through; the node
-- finds the transactions of the blocks above that height through an in-memory map it keeps
-- of them (docs/adr/0006-sqlite-deferred-id-index.md). To find a transaction by id in SQL:
--   SELECT t.* FROM transactions t WHERE t.id = X'...'
-- scans the table; `aegis` itself reads through transaction_ids.

DROP INDEX transactions_id_idx;

CREATE TABLE transaction_ids (
    id_prefix     BLOB    NOT NULL,                -- substr(transactions.id, 1, 8)
    block_height  BIGINT  NOT NULL,
    tx_index      INTEGER NOT NULL,
    PRIMARY KEY (id_prefix, block_height, tx_index)
) WITHOUT ROWID;

CREATE TABLE transaction_ids_state (
    singleton        INTEGER NOT NULL PRIMARY KEY CHECK (singleton = 1),
    indexed_through  BIGINT  NOT NULL CHECK (indexed_through >= 0)
);

INSERT INTO transaction_ids (id_prefix, block_height, tx_index)
    SELECT substr(id, 1, 8), block_height, tx_index FROM transactions ORDER BY 1, 2, 3;

INSERT INTO transaction_ids_state (singleton, indexed_through)
    VALUES (1, (SELECT coalesce(max(height), 0) FROM blocks));
